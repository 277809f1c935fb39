"""``ptrack pose``: keypoints of the chosen persons (default: the latest selection, else the
top person), stored in the project for ``select``, ``export`` and ``render``."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ptrack.cli.common import (VideoOpt, handles_errors, open_store, require_persons,
                               resolve_ids, settings)
from ptrack.cli.output import safe
from ptrack.errors import PtrackError


def _default(key: str) -> str:
    """`` [default: X]`` from the packaged settings (the one place defaults are written)."""
    try:
        from ptrack.settings import default_value

        return f" [default: {default_value('pose', key)}]"
    except Exception:  # a broken install still shows its help
        return " [default: see `ptrack config show`]"


PoseIdsArg = Annotated[Optional[list[int]], typer.Argument(
    help="Person ids (see `ptrack list persons`). [default: the latest selection's persons, "
         "else the top person]", show_default=False, metavar="ID")]


def default_persons(store, video, persons: list[dict], top: int | None) -> list[dict]:
    """``--top N`` persons; else the latest selection's persons when they all still exist;
    else the top person."""
    if top:
        return persons[:top]
    ids = {int(p["id"]) for p in persons}
    chosen = store.selections(video.id)
    if chosen and set(chosen[-1]["person_ids"]) <= ids:
        return resolve_ids(persons, chosen[-1]["person_ids"])
    return persons[:1]


def summary_lines(s) -> list[str]:
    """The end-of-pose summary (a line, then one per person)."""
    who = ", ".join(f"P{p}" for p in s.persons)
    if s.status == "skipped":
        lines = [f"{s.video}: keypoints of {who} are current; nothing to do (--force redoes them)"]
    else:
        head = f"{s.video}: pose {s.status}"
        if s.resumed_from:
            head += f" (resumed at frame {s.resumed_from})"
        lines = [head + f": {who}, {s.person_frames} person-frames in {s.seconds:.1f} s = "
                 f"{s.rate:.1f}/s ({s.backend}); a pose of the person in {s.found}"]
    for p, c in s.coverage.items():
        share = "-" if c != c else f"{100 * c:.1f}%"
        lines.append(f"  P{p}: {share} of observed frames with 8+ confident keypoints")
    return lines


def run_pose_cli(ctx: typer.Context, store, video, cfg: dict, persons: list[dict],
                 force: bool = False, log=None) -> object:
    """Run the pose stage with a progress bar on stderr (when it is a terminal)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ptrack.pose.stage import run_pose

    err = Console(stderr=True, highlight=False)
    log = log or (lambda m: err.print(safe(m), soft_wrap=True, markup=False))
    with Progress(TextColumn("pose"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("pose", total=None)
        return run_pose(store, video, cfg, [p["id"] for p in persons], force=force, log=log,
                        progress=lambda d, t: bar.update(task, completed=d, total=t))


def register(app: typer.Typer) -> None:
    """Add ``pose`` to ``app``."""

    @app.command()
    @handles_errors
    def pose(
        ctx: typer.Context,
        ids: PoseIdsArg = None,
        video: VideoOpt = None,
        top: Annotated[Optional[int], typer.Option(
            "--top", "-n", min=1, show_default=False,
            help="The N best ranked persons instead of IDs.")] = None,
        model: Annotated[Optional[str], typer.Option(
            show_default=False, help="Ultralytics pose weights: a .pt path, a name looked up "
                                     "like detect's, or pkg:PACKAGE/PATH." + _default("model"))] = None,
        pad: Annotated[Optional[float], typer.Option(
            show_default=False, help="Crop margin around the smoothed box, a fraction of its "
                                     "width and height on each side." + _default("pad"))] = None,
        imgsz: Annotated[Optional[int], typer.Option(
            show_default=False, help="Network input height for a crop (width half). "
                                     "" + _default("imgsz"))] = None,
        backend: Annotated[Optional[str], typer.Option(
            show_default=False, help="auto | torch | openvino." + _default("backend"))] = None,
        device: Annotated[Optional[str], typer.Option(
            show_default=False, help="auto | cpu | cuda:N." + _default("device"))] = None,
        precision: Annotated[Optional[str], typer.Option(
            show_default=False, help="auto | f32 | fp16 (CUDA) | bf16 (OpenVINO). "
                                     "" + _default("precision"))] = None,
        force: Annotated[bool, typer.Option("--force", help="Redo keypoints that are current.")] = False,
    ) -> None:
        """Keypoints (COCO-17: x, y, confidence, in video pixels) of the chosen persons on
        every frame of theirs, interpolated frames too.

        One decoding pass: each frame's person crops (the smoothed box padded and clipped to
        the frame) go through the pose model in batches; in a crop holding several people the
        pose whose box matches the person's is kept. Stored in the project (`select` writes
        them, `export --format coco` too, `render` draws them); running it again does nothing
        while they are current, and an interrupted run resumes.

        Example: ptrack pose 14 --pad 0.3
        """
        if ids and top:
            raise PtrackError("give person ids or --top N, not both", exit_code=2)
        overrides = {"pose": {"model": model, "pad": pad, "imgsz": imgsz, "backend": backend,
                              "device": device, "precision": precision}}
        cfg = settings(ctx, overrides)
        from ptrack.pose.model import check_settings

        check_settings(cfg["pose"])
        with open_store(ctx) as store:
            store.require_writable()
            v = store.video(video)
            persons = require_persons(store, v, ctx)
            chosen = resolve_ids(persons, ids) if ids else default_persons(store, v, persons, top)
            summary = run_pose_cli(ctx, store, v, cfg, chosen, force)
        for note in summary.notes:
            if summary.status != "skipped" and note:
                typer.echo(safe(f"{summary.video}: {note}"), err=True)
        for line in summary_lines(summary):
            typer.echo(safe(line))
        if summary.status == "interrupted":
            raise typer.Exit(summary.exit_code or 130)
