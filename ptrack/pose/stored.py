"""Reading stored poses: which persons' keypoints are current, and a person's keypoints
aligned with its frames. No model is imported here (``select``, ``export`` and ``render`` use
it and must answer quickly).

A person's keypoints are current when the ``pose`` run that wrote them finished, was made from
the video's latest ``group`` run, and that run is done: a new detect, track or group run (a
merge, a split, other settings) makes them stale, and ``ptrack pose`` computes them again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np


SETTINGS_NOT_DECIDING = ("batch", "kpt_conf")
"""``pose`` settings that change no keypoint (the batch size; the threshold for drawing)."""


def run_settings(cfg: dict, model_sha256: str) -> dict:
    """The settings that decide a pose run's keypoints (what skipping and resuming compare)."""
    pose = {k: v for k, v in cfg["pose"].items() if k not in SETTINGS_NOT_DECIDING}
    return {"pose": pose, "model_sha256": model_sha256}


@dataclass(frozen=True)
class PersonPose:
    """One person's stored keypoints: ``frame`` (n,), ``kpts`` (n, 17, 3) float32 (NaN where the
    crop held no pose of the person), ``score`` (n,) and the run that wrote them."""

    person: int
    frame: np.ndarray
    kpts: np.ndarray
    score: np.ndarray
    run_id: int
    model: str
    model_sha256: str

    def aligned(self, frames: np.ndarray) -> np.ndarray:
        """Keypoints (len(frames), 17, 3) for these frames, NaN where none is stored."""
        frames = np.asarray(frames, np.int64)
        out = np.full((len(frames), 17, 3), np.nan, np.float32)
        if not len(self.frame):
            return out
        pos = np.clip(np.searchsorted(self.frame, frames), 0, len(self.frame) - 1)
        hit = self.frame[pos] == frames
        out[hit] = self.kpts[pos[hit]]
        return out


def pose_state(store: Any, video: Any, persons: Iterable[int],
               wanted: dict | None = None) -> dict[int, str]:
    """Person -> ``current``, ``missing``, ``stale`` (the persons changed since), ``unfinished``
    or, when ``wanted`` settings are given and differ, ``other settings``."""
    group = store.latest_run(video.id, "group")
    runs = store.keypoint_runs(video.id)
    out = {}
    cache: dict[int, Any] = {}
    for p in persons:
        r = runs.get(int(p))
        if r is None:
            out[int(p)] = "missing"
            continue
        run = cache.setdefault(r, store.run(r))
        if run.status == "stale" or group is None or group.status != "done" \
                or run.input_run != group.id:
            out[int(p)] = "stale"
        elif run.status != "done":
            out[int(p)] = "unfinished"
        elif wanted is not None and {k: v for k, v in run.settings.items() if k != "persons"} != wanted:
            out[int(p)] = "other settings"
        else:
            out[int(p)] = "current"
    return out


def current_pose(store: Any, video: Any, person: int) -> PersonPose | None:
    """The person's keypoints when they are current (see the module docstring), else None."""
    if pose_state(store, video, [person])[int(person)] != "current":
        return None
    frame, run, score, kpts = store.keypoints(video.id, int(person))
    r = store.run(int(run.max()))
    return PersonPose(int(person), frame, kpts, score, r.id,
                      str(r.settings.get("pose", {}).get("model", "")),
                      str(r.settings.get("model_sha256", "")))

