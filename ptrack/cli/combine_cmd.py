"""``ptrack combine SRC_PROJECT ...``: copy the videos of other projects into this one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ptrack.cli.common import handles_errors, open_store
from ptrack.cli.output import safe


def result_lines(result) -> list[str]:
    """One line per video copied in."""
    lines = []
    for v in result.videos:
        rows = v.rows
        what = (f"{rows.get('detections', 0)} detections, {v.crops} crops, "
                f"{rows.get('persons', 0)} persons, {rows.get('runs', 0)} runs")
        extra = [f"{rows[k]} {w}" for k, w in (("constraints", "corrections"),
                                                ("selections", "selections")) if rows.get(k)]
        renamed = f" (was '{v.source_name}' there)" if v.name != v.source_name else ""
        verb = "replaced" if v.replaced else "added"
        lines.append(f"{verb} {v.name}{renamed} (id {v.video_id}) from {result.source}: "
                     + ", ".join([what, *extra]))
    return lines


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""

    @app.command()
    @handles_errors
    def combine(
        ctx: typer.Context,
        sources: Annotated[list[Path], typer.Argument(
            help="Projects to copy from (left as they are).", show_default=False,
            metavar="SRC_PROJECT")],
        replace: Annotated[bool, typer.Option(
            "--replace", help="Replace a video this project already holds (same content) with "
                              "the source's copy, and all that is stored for it.")] = False,
    ) -> None:
        """Copy every video of each SRC_PROJECT into this project, with its runs, detections,
        crops, tracklets, persons, corrections and selections (ids renumbered).

        For projects made elsewhere: on other machines, by a Slurm array, by `run --ray`'s
        workers. Each source goes in whole or not at all (one transaction); a video already
        here is refused unless --replace. Run `ptrack integrity` afterwards to check.

        Example: ptrack -p all combine node1/ptrack-project node2/ptrack-project
        """
        from ptrack.store.combine import combine as combine_project

        with open_store(ctx, create=True) as store:
            for src in sources:
                result = combine_project(store, src, replace=replace,
                                         log=lambda m: typer.echo(safe(m), err=True))
                for line in result_lines(result):
                    typer.echo(safe(line))
