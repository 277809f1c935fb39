"""``ptrack detect``: one decoding pass per video into the project.

The detect options are defined once here (:data:`DETECT_OPTIONS`) and taken by both
``detect`` and ``run``; their help shows the defaults read from the packaged settings.
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from ptrack.cli import many
from ptrack.cli.common import handles_errors, keep_settings, open_store, project_overlay, settings
from ptrack.cli.output import console, safe


def _default(key: str) -> str:
    """`` [default: X]`` from the default settings (the one place defaults are written)."""
    try:
        from ptrack.settings import default_value

        return f" [default: {default_value('detect', key)}]"
    except Exception:  # a broken install still shows its help
        return " [default: see `ptrack config show`]"


def detect_options() -> list[inspect.Parameter]:
    """The ``detect`` options, as parameters a command function can take."""
    spec: list[tuple[str, Any, dict]] = [
        ("model", Optional[str], dict(help="YOLO weights: a .pt path, a name looked up in . and "
                                           "Ultralytics' weights dir (never in the project), or "
                                           "pkg:PACKAGE/PATH." + _default("model"))),
        ("conf", Optional[float], dict(help="Minimum confidence." + _default("conf"))),
        ("imgsz", Optional[int], dict(help="Inference size, long side." + _default("imgsz"))),
        ("classes", Optional[str], dict(help="Class names or ids (comma separated) or 'all'."
                                             + _default("classes"))),
        ("backend", Optional[str], dict(help="auto | torch | openvino." + _default("backend"))),
        ("device", Optional[str], dict(help="auto | cpu | cuda:N." + _default("device"))),
        ("stride", Optional[int], dict(min=1, help="Detect every Nth frame." + _default("stride"))),
        ("max_frames", Optional[int], dict(min=0, help="Stop after N frames (0 = all)."
                                                      + _default("max_frames"))),
        ("batch", Optional[int], dict(min=0, help="Frames per batch (0 = auto: 8 on the CPU, 32 "
                                                   "on a GPU)." + _default("batch"))),
        ("precision", Optional[str], dict(help="auto | f32 | fp16 (CUDA) | bf16 | int8 (OpenVINO); auto = "
                                               "the fastest on this CPU of those that pass their "
                                               "accuracy gate (timed once), fp16 on CUDA."
                                               + _default("precision"))),
    ]
    return [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                              annotation=Annotated[kind, typer.Option(show_default=False, **opts)])
                  for name, kind, opts in spec]


DETECT_KEYS = tuple(p.name for p in detect_options())


def with_detect_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add every ``detect`` option to a command; it receives them as ``detect_overrides``,
    the ``{"detect": {...}}`` overlay for :func:`ptrack.cli.common.settings`."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        detect = {k: kwargs.pop(k, None) for k in DETECT_KEYS}
        return fn(*args, detect_overrides={"detect": detect}, **kwargs)

    sig = inspect.signature(fn, eval_str=True)
    params = [p for p in sig.parameters.values() if p.name != "detect_overrides"]
    keyword = [p for p in params if p.kind == inspect.Parameter.KEYWORD_ONLY]
    positional = [p for p in params if p.kind != inspect.Parameter.KEYWORD_ONLY]
    pos_or_kw = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in positional[1:]]
    wrapper.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[positional[0], *pos_or_kw[:1], *detect_options(), *pos_or_kw[1:], *keyword])
    wrapper.__annotations__ = {}
    return wrapper


def time_lines(s) -> list[str]:
    """Where a detect's time went (``detect`` and ``run`` print it)."""
    if not (s.frames and s.seconds > 0):
        return []
    t = s.timing
    share = {k: 100 * t[k] / s.seconds for k in ("detector", "decode_wait", "writer_wait")}
    return [f"  time        detector {share['detector']:.0f}%, waiting for frames "
            f"{share['decode_wait']:.0f}%, waiting for the writer "
            f"{share['writer_wait']:.0f}%: limited by {s.limited_by}"]


def summary_lines(s) -> list[str]:
    """A short, never-truncated summary of one video's detect."""
    if s.status == "skipped":
        return [f"{s.video}: already detected with these settings ({s.detections} detections); "
                f"nothing to do (--force redoes it)"]
    head = f"{s.video}: {s.status}"
    if s.resumed_from:
        head += f" (resumed at frame {s.resumed_from})"
    lines = [head]
    if s.resumed_from:  # this session's figures, then the video's in all
        new = s.detections - s.detections_before
        lines += [f"  frames      {s.frames} in this session, {s.seconds:.1f} s = {s.fps:.1f} "
                  f"frames/s ({s.backend}); frames before {s.resumed_from} were done earlier",
                  f"  detections  {new} in this session, {s.detections} in all "
                  f"({s.people_per_frame:.2f} people per frame)"]
    else:
        lines += [f"  frames      {s.frames} in {s.seconds:.1f} s = {s.fps:.1f} frames/s "
                  f"({s.backend})",
                  f"  detections  {s.detections} ({s.people_per_frame:.2f} people per frame)"]
    lines += time_lines(s)
    if s.crop_count:
        lines.append(f"  crops       {s.crop_count}, {s.crop_bytes / 1e6:.1f} MB "
                     f"({s.crop_bytes / s.crop_count / 1024:.1f} KB each)")
    return lines


def status_text(done: int, total: int, rate: float) -> str:
    """``120/3000 frames, 11.2 frames/s`` (the rate once it is measured).

    >>> status_text(8, 3000, 0.0), status_text(120, 3000, 11.24)
    ('8/3000 frames', '120/3000 frames, 11.2 frames/s')
    """
    text = f"{done}/{total} frames" if total else f"{done} frames"
    return f"{text}, {rate:.1f} frames/s" if rate > 0 else text


class DetectProgress:
    """One progress display on stderr for a whole command: a bar per video's detect (frames,
    frames/s, elapsed, ETA) and, printed above it, a line per message. Off when stderr is
    not a terminal (then messages are plain lines)."""

    def __init__(self, err=None) -> None:
        from rich.progress import (BarColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.err = err if err is not None else console(stderr=True)
        # frames and rate appear with the first batch (no "0/? 0.0 frames/s" while loading)
        self.bar = Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                            TextColumn("{task.fields[status]}", markup=False), TimeElapsedColumn(),
                            TextColumn("{task.fields[eta]}", markup=False), TimeRemainingColumn(),
                            console=self.err, transient=True, disable=not self.err.is_terminal)
        self.task = None
        self.t0 = 0.0

    def __enter__(self) -> "DetectProgress":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def log(self, message: str) -> None:
        self.err.print(safe(message), soft_wrap=True)

    def start(self, name: str) -> None:
        """A new bar for a video (the previous one goes)."""
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(safe(f"{name}: loading the model"), total=None, status="",
                                      eta="")
        self.t0 = 0.0
        self._name = safe(name)

    def tick(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if not self.t0:  # the first batch: the model is loaded (and exported), frames flow
            self.t0 = now
            self.bar.update(self.task, description=f"{self._name}: detect")
            self._first = done
        rate = (done - self._first) / max(now - self.t0, 1e-9) if done > self._first else 0.0
        self.bar.update(self.task, completed=done, total=total, eta="ETA",
                        status=status_text(done, total, rate))

    def stop(self) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
            self.task = None


def _detect_job(store, path: Path, cfg: dict, force: bool, top: int, progress) -> dict:
    """One video's detect as a many-video job (:mod:`ptrack.batch`): its summary row."""
    from ptrack.detect.loop import detect_video

    progress.start(path.name)
    try:
        summary = detect_video(store, path, cfg, force=force, progress=progress.tick,
                               log=progress.log)
    finally:
        progress.stop()
    if summary.status == "interrupted":
        raise KeyboardInterrupt
    for note in summary.notes:
        if summary.status != "skipped":
            progress.log(f"{summary.video}: {note}")
    return {"video": summary.video, "error": "", "lines": summary_lines(summary)}


def _detect_describe(store, video) -> dict:
    """The row of a video already detected with these settings."""
    return {"video": video.name, "error": "",
            "lines": [f"{video.name}: already detected with these settings "
                      f"({store.count_detections(video.id)} detections); nothing to do"]}


def _many_summary(rows: list[dict], interrupted: bool) -> None:
    out = console()
    stopped = [r for r in rows if r["error"].startswith("interrupted;")]
    failed = [r for r in rows if r["error"] and r not in stopped]
    out.print(f"ptrack detect: {len(rows) - len(failed) - len(stopped)} of {len(rows)} videos "
              f"done" + (f", {len(failed)} failed" if failed else "")
              + (f", {len(stopped)} interrupted" if stopped else ""), soft_wrap=True)
    for r in rows:
        if r in stopped:
            out.print(safe(f"{r['video']}: {r['error']}"), soft_wrap=True)
        elif r["error"]:
            out.print(safe(f"{r['video']}: failed: {r['error']}"), soft_wrap=True)
            if r.get("retry"):
                out.print(safe(f"  retry: {r['retry']}"), soft_wrap=True)
        for line in r.get("lines", []):
            out.print(safe(line), soft_wrap=True)
    if interrupted:
        raise typer.Exit(130)
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""

    @app.command()
    @handles_errors
    @with_detect_options
    def detect(
        ctx: typer.Context,
        videos: many.VideosArg = None,
        force: Annotated[bool, typer.Option("--force", help="Redo videos already detected.")] = False,
        recursive: many.RecursiveOpt = False,
        from_file: many.FromFileOpt = None,
        workers: many.WorkersOpt = None,
        ray: many.RayOpt = None,
        *,
        detect_overrides: dict,
    ) -> None:
        """Detect people in each VIDEO once: boxes and crops go into the project.

        VIDEO may be a folder or a glob pattern (see `ptrack run`); --workers N or --ray
        detect several videos at once.

        Example: ptrack detect match.mp4 --model yolov8s.pt
        """
        from ptrack.detect.loop import detect_video
        from ptrack.detect.video import refuse_non_videos
        from ptrack.store import Store

        before = project_overlay(ctx)
        cfg = settings(ctx, detect_overrides)
        check_detect_options(cfg)
        out = console()
        err = console(stderr=True)
        videos = many.gather(videos, recursive, from_file, lambda m: err.print(safe(m), soft_wrap=True))
        refuse_non_videos(videos)  # before the project is created: a refused command leaves nothing
        workers = many.workers_for(workers, ray, cfg)
        if many.parallel(workers, ray, len(videos)):
            outcome = many.drive(ctx, videos, cfg, fn=_detect_job, describe=_detect_describe,
                                 command="detect", force=force, top=0, workers=workers, ray=ray)
            _many_summary(outcome.rows, outcome.interrupted)
            return
        fresh = _fresh_project(ctx)
        store: Store = open_store(ctx, create=True)
        try:
            from ptrack.batch.job import models_kept

            with DetectProgress() as progress, models_kept(len(videos) > 1):
                for path in videos:
                    progress.start(path.name)
                    summary = detect_video(store, path, cfg, force=force, progress=progress.tick,
                                           log=progress.log)
                    progress.stop()
                    for line in summary_lines(summary):
                        out.print(safe(line), soft_wrap=True)
                    if summary.status in ("done", "skipped"):
                        keep_settings(store, cfg, before, progress.log)
                    for note in summary.notes:
                        if summary.status != "skipped":
                            progress.log(f"{summary.video}: {note}")
                    if summary.status == "interrupted":
                        raise typer.Exit(summary.exit_code or 130)
        except BaseException:
            store.close()
            if fresh is not None:
                _remove_if_unused(fresh)
            raise
        finally:
            store.close()


def check_detect_options(cfg: dict) -> None:
    """The checks of detect options that need no model, before the project is touched."""
    from ptrack.detect.detector import check_precision

    check_precision(cfg["detect"])


def _fresh_project(ctx: typer.Context):
    """The project folder when this command is about to create it (None when it exists)."""
    from ptrack.cli.common import state
    from ptrack.store import DB_NAME

    root = state(ctx).project
    return None if (root / DB_NAME).exists() else root


def _remove_if_unused(root: Path) -> None:
    """A project this command created but registered nothing in (a bad --classes found once
    the model is loaded, a video that does not decode) is removed again: nothing is created."""
    import shutil

    from ptrack.store import DB_NAME, Store

    try:
        with Store.open(root, create=False) as store:
            if store.videos():
                return
    except Exception:
        return
    for name in (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm"):
        (root / name).unlink(missing_ok=True)
    for name in ("crops.lmdb", "locks"):
        if (root / name).is_dir() and not (root / name).is_symlink():
            shutil.rmtree(root / name, ignore_errors=True)
    try:
        root.rmdir()  # only when empty
    except OSError:
        pass
