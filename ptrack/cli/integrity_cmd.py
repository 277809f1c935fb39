"""``ptrack integrity``: is the project whole? Exit 0 healthy, 1 damaged."""

from __future__ import annotations

import typer

from ptrack.cli.common import handles_errors, open_store
from ptrack.cli.output import say


def report_lines(report) -> list[str]:
    """The report as plain lines, one fact each."""
    lines = [f"database     {'ok' if not report.database else 'DAMAGED: ' + '; '.join(report.database)}",
             f"crop store   {'ok' if report.crops is None else 'DAMAGED: ' + report.crops}"]
    counts = ", ".join(f"{v} {k}" for k, v in report.counts.items())
    if counts:
        lines.append(f"holds        {counts}")
    for name, n in report.detections_without_crops.items():
        lines.append(f"{name}: {n} detections without their crop")
    for name, n in report.crops_without_detections.items():
        lines.append(f"{name}: {n} crops without a detection")
    for run in report.running:
        lines.append(f"left running: {run} (a command is still working, or was killed: run it "
                     f"again to finish)")
    if report.ok:
        lines.append("healthy")
    else:
        lines.append("damaged: run `ptrack detect --force VIDEO` for each video named above to "
                     "rebuild its detections and crops (or `ptrack rm VIDEO`)")
    return lines


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""

    @app.command()
    @handles_errors
    def integrity(ctx: typer.Context) -> None:
        """Check the project's database and crop store; exit 0 when healthy, 1 when damaged.

        Reports SQLite's and LMDB's state, detections without crops, crops without
        detections, and runs left running.

        Example: ptrack integrity
        """
        with open_store(ctx) as store:
            report = store.integrity()
        for line in report_lines(report):
            say(line)
        if not report.ok:
            raise typer.Exit(1)
