"""``ptrack run``: detect -> track -> group -> rank -> table for each video."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ptrack.cli.common import handles_errors, open_store, settings
from ptrack.errors import PtrackError


def _one_video(store, path: Path, cfg: dict, force: bool, top: int, log) -> dict:
    """Every stage for one video; returns its summary row (errors caught by the caller)."""
    from ptrack.detect import detect_video
    from ptrack.stages import run_group, run_rank, run_track
    from ptrack.views.sheet import sheet_rows, write_png

    summary = detect_video(store, path, cfg, force=force, log=log)
    if summary.status == "interrupted":
        raise KeyboardInterrupt
    video = store.video(summary.video)
    for note in summary.notes:
        log(f"{video.name}: {note}")
    run_track(store, video, cfg, log)
    run_group(store, video, cfg, log)
    run_rank(store, video, cfg, log)
    persons = store.persons(video.id)
    row = {"video": video.name, "persons": len(persons), "top": "-", "outputs": "-", "error": ""}
    if persons:
        best = persons[0]
        row["top"] = (f"P{best['id']} ({best['n_frames']} frames, "
                      f"{best['n_frames'] / video.fps:.1f} s)")
        out = store.output_dir(video) / "selection_table.png"
        write_png(sheet_rows(store, video, persons[:top], 8), video, out, 8,
                  total_persons=len(persons))
        row["outputs"] = str(out)
    else:
        row["error"] = "nobody was found"
    return row


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""

    @app.command()
    @handles_errors
    def run(
        ctx: typer.Context,
        videos: Annotated[list[Path], typer.Argument(help="Video files to process.", show_default=False)],
        model: Annotated[Optional[str], typer.Option(help="YOLO weights (.pt). [default: yolov8s.pt]")] = None,
        classes: Annotated[Optional[str], typer.Option(
            help="Class names or ids (comma separated) or 'all'. [default: person]")] = None,
        backend: Annotated[Optional[str], typer.Option(help="auto | torch | openvino.")] = None,
        precision: Annotated[Optional[str], typer.Option(
            help="auto | f32 | bf16 | int8 (OpenVINO); auto = INT8 when it passes its accuracy "
                 "gate. [default: auto]")] = None,
        top: Annotated[int, typer.Option("--top", "-n", min=1, help="Persons in each table.")] = 20,
        force: Annotated[bool, typer.Option("--force", help="Redo detection of videos already done.")] = False,
    ) -> None:
        """Everything for each video: detect, track, group, rank and the selection table.

        A failing video does not stop the others; a summary table ends the run (exit code 1
        when any video failed).

        Example: ptrack run match.mp4 training.mp4
        """
        from rich.console import Console
        from rich.table import Table

        cfg = settings(ctx, {"detect": {"model": model, "classes": classes, "backend": backend,
                                       "precision": precision}})
        err = Console(stderr=True)

        def log(message: str) -> None:
            err.print(message, highlight=False, soft_wrap=True)

        rows = []
        with open_store(ctx, create=True) as store:
            for path in videos:
                err.print(f"[bold]{path.name}[/bold]", highlight=False)
                try:
                    rows.append(_one_video(store, path, cfg, force, top, log))
                except PtrackError as exc:
                    rows.append({"video": path.stem, "persons": "-", "top": "-", "outputs": "-",
                                 "error": exc.message})
                    log(f"Error: {exc.message}")
        table = Table(title="ptrack run", title_justify="left")
        for col in ("video", "persons", "top person", "outputs", "errors"):
            table.add_column(col, overflow="fold")
        for r in rows:
            table.add_row(r["video"], str(r["persons"]), r["top"], r["outputs"], r["error"] or "-")
        Console().print(table)
        if any(r["error"] and r["error"] != "nobody was found" for r in rows):
            raise typer.Exit(1)  # scripts see that something failed; the others are done
