"""What ``select`` and ``export`` hand over beside the boxes: each person's keypoints (when
they are current) on its track, and the provenance of the whole (ptrack's version, the
detector's and the pose model's names and hashes, the run ids, the corrections' fingerprint).
No model is imported here."""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from ptrack.pose.stored import PersonPose, current_pose, pose_state


def with_pose(track: Any, pose: PersonPose | None) -> Any:
    """The track (:class:`ptrack.formats.export.Track`) with the person's keypoints aligned
    with its frames; unchanged without a pose."""
    if pose is None:
        return track
    import numpy as np

    kpts = pose.aligned(track.frame)
    score = np.full(len(track.frame), np.nan, np.float32)
    if len(pose.frame):
        pos = np.clip(np.searchsorted(pose.frame, track.frame), 0, len(pose.frame) - 1)
        hit = pose.frame[pos] == track.frame
        score[hit] = pose.score[pos[hit]]
    return dataclasses.replace(track, keypoints=kpts, kpt_score=score)


def person_poses(store: Any, video: Any, person_ids: Sequence[int]) -> tuple[dict, list[str]]:
    """({person: PersonPose} of the persons whose keypoints are current, notes for those whose
    keypoints are stale or unfinished)."""
    poses, notes = {}, []
    states = pose_state(store, video, person_ids)
    for p in person_ids:
        state = states[int(p)]
        if state == "current":
            poses[int(p)] = current_pose(store, video, int(p))
        elif state in ("stale", "unfinished"):
            why = "older than the persons (they changed since)" if state == "stale" else "unfinished"
            notes.append(f"note: the keypoints of P{p} are {why}, so they are left out; run "
                         f"`ptrack pose {p}` to compute them")
    return poses, notes


def provenance(store: Any, video: Any, poses: dict[int, PersonPose]) -> dict:
    """Where a hand-off comes from: versions, models, run ids, corrections (plain JSON data)."""
    from ptrack import __version__
    from ptrack.persons.constraints import fingerprint

    runs = {}
    for stage in ("detect", "track", "group", "rank"):
        r = store.latest_run(video.id, stage)
        runs[stage] = None if r is None else r.id
    detect = store.latest_run(video.id, "detect")
    detector: dict = {"model": None, "sha256": None}
    if detect is not None:
        s = detect.settings
        if "import" in s:
            detector = {"model": None, "sha256": None, "imported": str(s["import"])}
        else:
            d = s.get("detect", {})
            detector = {"model": d.get("model"), "sha256": d.get("model_sha256")}
    pose_models = sorted({(p.model, p.model_sha256) for p in poses.values()})
    return {
        "ptrack_version": __version__,
        "detector": detector,
        "pose_model": ({"model": pose_models[0][0], "sha256": pose_models[0][1]}
                       if len(pose_models) == 1 else
                       [{"model": m, "sha256": h} for m, h in pose_models] or None),
        "runs": {**runs, "pose": sorted({p.run_id for p in poses.values()}) or None},
        "corrections_fingerprint": fingerprint(store.constraints(video.id)),
    }
