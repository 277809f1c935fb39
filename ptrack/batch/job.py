"""The per-video job as a worker runs it: the command's own job function (``run``'s every stage,
or ``detect``'s one pass) on one video, inside a shard project of its own on the worker's local
disk (SQLite and LMDB must not live on a network filesystem). A shard that survives a lost
worker is resumed from its committed batches by the next try."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

JobFn = Callable[..., dict]
"""``fn(store, path, cfg, force, top, progress) -> row``: the command's job for one video (it
raises :class:`ptrack.errors.PtrackError` for a video that fails, KeyboardInterrupt when it is
interrupted)."""


@dataclass(frozen=True)
class JobSpec:
    """What every video of a command gets (sent to each worker once)."""

    fn: JobFn
    cfg: dict
    top: int = 20


@dataclass
class Task:
    """One video to do."""

    index: int
    path: str  # absolute
    name: str
    fingerprint: str
    shard: str = ""  # where its shard project is (on the worker's disk)
    attempts: int = 0


PID_FILE = "worker.pid"


def run_in_shard(spec: JobSpec, task: Task, shard: Path, progress: Any) -> dict:
    """Run the job for ``task`` in the shard project at ``shard`` (made or resumed); returns
    the job's row. The worker's process id is left in the shard (``worker.pid``)."""
    from ptrack.store import Store

    shard.mkdir(parents=True, exist_ok=True)
    (shard / PID_FILE).write_text(str(os.getpid()))
    with Store.open(shard, create=True) as store:
        return spec.fn(store, Path(task.path), spec.cfg, False, spec.top, progress)


def builds_int8(settings: dict, frame_count: int) -> bool:
    """Would loading a detector for a video of ``frame_count`` frames calibrate an INT8 model
    when none exists yet? (``precision`` int8 always; auto from ``int8_min_frames`` frames.)"""
    asked = str(settings.get("precision", "auto"))
    if asked == "int8":
        return True
    return asked == "auto" and frame_count >= int(settings.get("int8_min_frames", 2000))


def reusable(settings: dict, detector: Any, frame_count: int = 0) -> bool:
    """May a worker use this detector again for its next video of the same size whose load
    would not build an INT8 model either? Yes, unless its load could have built one and did
    not (an INT8 model missing, its calibration failed): one process would try again for the
    next video. A detector whose INT8 model and gate exist, a torch one, or one of a short
    video under ``precision`` auto (no INT8 model is built for it) is kept."""
    asked = str(settings.get("precision", "auto"))
    return asked not in ("auto", "int8") or getattr(detector, "gate", None) is not None \
        or getattr(detector, "backend", "") == "torch" or not builds_int8(settings, frame_count)


class ModelCache:
    """A worker's detectors, loaded once and taken video after video (same settings, frame
    size, and whether the load would build an INT8 model); installed over
    :func:`ptrack.detect.detector.load_detector` in the worker process only. One model is
    kept at a time, so a video that builds an INT8 model replaces it, and the next short video
    loads again and finds that INT8 model, as one process would. A detector the next video
    might get differently (:func:`reusable`) is not kept."""

    def __init__(self, load: Callable[..., Any]) -> None:
        self.load = load
        self.kept: dict[str, Any] = {}
        self.hits = 0

    def __call__(self, settings: dict, *, width: int, height: int, **kwargs: Any) -> Any:
        import json

        frames = int(kwargs.get("frame_count", 0) or 0)
        key = json.dumps([settings, width, height, builds_int8(settings, frames)],
                         sort_keys=True, default=str)
        if key in self.kept:
            self.hits += 1
            return self.kept[key]
        detector = self.load(settings, width=width, height=height, **kwargs)
        if reusable(settings, detector, frames):
            self.kept = {key: detector}  # one model in memory at a time
        return detector


def keep_models() -> ModelCache:
    """Make this (worker) process load each detector once (see :class:`ModelCache`)."""
    from ptrack.detect import detector as det

    if not isinstance(det.load_detector, ModelCache):
        det.load_detector = ModelCache(det.load_detector)
    return det.load_detector


@contextlib.contextmanager
def models_kept(on: bool = True) -> Iterator[None]:
    """:func:`keep_models` for the length of a block (one process taking several videos one
    after another), then the plain loader again; ``on`` False: nothing changes."""
    from ptrack.detect import detector as det

    before = det.load_detector
    if on:
        keep_models()
    try:
        yield
    finally:
        det.load_detector = before


def thread_env(cores: int) -> dict[str, str]:
    """Environment that keeps a worker's libraries to its share of the cores (set before
    torch or OpenVINO load)."""
    n = str(max(1, cores))
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n,
            "PTRACK_CROP_THREADS": str(max(1, min(8, cores // 2)))}
