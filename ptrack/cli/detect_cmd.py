"""``ptrack detect``: one decoding pass per video into the project."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ptrack.cli.common import handles_errors, open_store, settings


def _summary_lines(s) -> list[str]:
    """A short, never-truncated summary of one video's detect."""
    if s.status == "skipped":
        return [f"{s.video}: already detected with these settings ({s.detections} detections); "
                f"nothing to do (--force redoes it)"]
    head = f"{s.video}: {s.status}"
    if s.resumed_from:
        head += f" (resumed at frame {s.resumed_from})"
    lines = [head,
             f"  frames      {s.frames} in {s.seconds:.1f} s = {s.fps:.1f} frames/s ({s.backend})",
             f"  detections  {s.detections} ({s.people_per_frame:.2f} people per frame)"]
    if s.crop_count:
        lines.append(f"  crops       {s.crop_count}, {s.crop_bytes / 1e6:.1f} MB "
                     f"({s.crop_bytes / s.crop_count / 1024:.1f} KB each)")
    return lines


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""

    @app.command()
    @handles_errors
    def detect(
        ctx: typer.Context,
        videos: Annotated[list[Path], typer.Argument(help="Video files to process.",
                                                     show_default=False)],
        model: Annotated[Optional[str], typer.Option(help="YOLO weights (.pt). [default: yolov8s.pt]")] = None,
        conf: Annotated[Optional[float], typer.Option(help="Minimum confidence. [default: 0.1]")] = None,
        imgsz: Annotated[Optional[int], typer.Option(help="Inference size, long side. [default: 640]")] = None,
        classes: Annotated[Optional[str], typer.Option(
            help="Class names or ids (comma separated) or 'all'. [default: person]")] = None,
        backend: Annotated[Optional[str], typer.Option(help="auto | torch | openvino. [default: auto]")] = None,
        device: Annotated[Optional[str], typer.Option(help="auto | cpu | cuda:N. [default: auto]")] = None,
        stride: Annotated[Optional[int], typer.Option(min=1, help="Detect every Nth frame. [default: 1]")] = None,
        max_frames: Annotated[Optional[int], typer.Option(min=0, help="Stop after N frames (0 = all).")] = None,
        batch: Annotated[Optional[int], typer.Option(min=1, help="Frames per batch. [default: 8]")] = None,
        precision: Annotated[Optional[str], typer.Option(
            help="auto | f32 | bf16 | int8 (OpenVINO); auto = INT8 when it passes its accuracy "
                 "gate. [default: auto]")] = None,
        force: Annotated[bool, typer.Option("--force", help="Redo videos already detected.")] = False,
    ) -> None:
        """Detect people in VIDEOS once: boxes and crops go into the project.

        Example: ptrack detect match.mp4 --model yolov8s.pt
        """
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        from ptrack.detect import detect_video
        from ptrack.store import Store

        overrides = {"detect": {"model": model, "conf": conf, "imgsz": imgsz, "classes": classes,
                                "backend": backend, "device": device, "stride": stride,
                                "max_frames": max_frames, "batch": batch,
                                "precision": precision}}
        cfg = settings(ctx, overrides)
        err = Console(stderr=True)
        out = Console()
        summaries = []
        store: Store = open_store(ctx, create=True)
        try:
            for path in videos:
                columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TextColumn("{task.fields[fps]:.1f} frames/s"), TimeElapsedColumn(),
                           TextColumn("ETA"), TimeRemainingColumn()]
                with Progress(*columns, console=err, transient=True,
                              disable=not err.is_terminal) as bar:
                    task = bar.add_task(path.name, total=None, fps=0.0)
                    import time

                    t0 = time.perf_counter()

                    def tick(done: int, total: int) -> None:
                        rate = done / max(time.perf_counter() - t0, 1e-9)
                        bar.update(task, completed=done, total=total, fps=rate)

                    summary = detect_video(store, path, cfg, force=force, progress=tick,
                                           log=lambda m: err.print(m, highlight=False, soft_wrap=True))
                summaries.append(summary)
                for line in _summary_lines(summary):
                    out.print(line, highlight=False, soft_wrap=True)
                for note in summary.notes:
                    if summary.status != "skipped":
                        err.print(f"{summary.video}: {note}", highlight=False, soft_wrap=True)
                if summary.status == "interrupted":
                    raise typer.Exit(130)
        finally:
            store.close()
