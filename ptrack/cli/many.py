"""What ``run`` and ``detect`` share for many videos: the input options (folders, globs,
``--from-file``), ``--workers`` and ``--ray``, and the glue to :mod:`ptrack.batch`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from ptrack.cli.common import state
from ptrack.cli.output import console, safe

VideosArg = Annotated[Optional[list[Path]], typer.Argument(
    help="Video files, folders (the videos inside) or glob patterns ('videos/*.mp4').",
    show_default=False, metavar="VIDEO")]
RecursiveOpt = Annotated[bool, typer.Option(
    "--recursive", "-r", help="Look for videos in the sub-folders of the folders given too.")]
FromFileOpt = Annotated[Optional[Path], typer.Option(
    "--from-file", help="A text file of videos, one path a line (# comments; relative to the "
                        "file's folder).", show_default=False, metavar="LIST")]
WorkersOpt = Annotated[Optional[int], typer.Option(
    "--workers", "-j", min=1, show_default=False,
    help="Videos processed at once, each in a process of its own with a share of the cores "
         "(or a GPU of its own); with --ray, the Ray actors. [default: one per GPU, else one "
         "per 4 cores (1 on 2 cores); with --ray, one per node]")]
RayOpt = Annotated[Optional[str], typer.Option(
    "--ray", metavar="[ADDRESS]", show_default=False,
    help="Run the videos on a Ray cluster: ADDRESS (ray://HOST:10001, HOST:6379, auto) or, "
         "given alone, a cluster on this machine. Needs `pip install 'ptrack[ray]'`.")]


def gather(videos: list[Path] | None, recursive: bool, from_file: Path | None,
           log: Callable[[str], None]) -> list[Path]:
    """The videos to do, with a note about files passed over."""
    from ptrack.batch.inputs import find_videos

    found = find_videos(list(videos or []), recursive=recursive, from_file=from_file)
    note = found.note()
    if note:
        log(note)
    return found.paths


def workers_for(workers: int | None, ray: str | None, cfg: dict) -> int | None:
    """Workers to start: as asked, else what the machine can feed (None with --ray: one
    actor per node)."""
    if workers is not None or ray is not None:
        return workers
    from ptrack.batch.pool import default_workers

    return default_workers(str(cfg["detect"]["device"]))


def parallel(workers: int | None, ray: str | None, n_videos: int) -> bool:
    """Does the command go through the many-video driver?"""
    return ray is not None or ((workers or 1) > 1 and n_videos > 1)


def drive(ctx: typer.Context, paths: list[Path], cfg: dict, *, fn: Callable, describe: Callable,
          command: str, force: bool, top: int, workers: int | None, ray: str | None) -> Any:
    """Run :func:`ptrack.batch.runner.run_many` for the command."""
    from ptrack.batch.runner import run_many

    return run_many(state(ctx).project, paths, cfg, fn=fn, describe=describe, command=command,
                    force=force, top=top, workers=workers or 1 if ray is None else workers,
                    ray=ray, err=console(stderr=True), safe=safe)
