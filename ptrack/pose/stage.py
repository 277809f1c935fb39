"""``ptrack pose``: keypoints of the chosen persons, stored in the project.

One decoding pass over the frames the persons span: each frame's person crops (the smoothed
box padded by ``pose.pad`` and clipped to the frame) are batched through the pose model; in
each crop the pose whose box matches the person's box is kept (:func:`ptrack.pose.keypoints.choose_pose`)
and mapped back to video pixels. Interpolated frames get keypoints too (their rows keep the
box's ``source``). Each batch is committed with the run's progress marker, so Ctrl-C,
SIGTERM or a kill leaves every committed batch and the same command resumes; a run whose
keypoints are current does nothing. The new keypoints replace a person's old ones only when
the new run commits its first batch.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ptrack.errors import PtrackError
from ptrack.pose.keypoints import choose_pose, coverage, pad_regions, to_video
from ptrack.pose.stored import pose_state, run_settings
from ptrack.store import POSE_STAGE, Store, Video

Progress = Callable[[int, int], None]  # (person-frames done in this run, person-frames to do)
LEAST_CONFIDENT = 8  # keypoints a usable pose has (coverage)


@dataclass
class PoseSummary:
    """What one ``pose`` of one video did."""

    video: str
    status: str  # done | skipped | interrupted
    persons: list[int]
    person_frames: int = 0  # person-frames run through the model in this invocation
    found: int = 0  # of which with a pose of the person
    seconds: float = 0.0
    model_seconds: float = 0.0
    resumed_from: int = 0
    backend: str = ""
    coverage: dict = field(default_factory=dict)  # person -> share of observed frames, 8+ points
    notes: list[str] = field(default_factory=list)
    exit_code: int = 0

    @property
    def rate(self) -> float:
        """Person-frames per second of this invocation."""
        return self.person_frames / self.seconds if self.seconds > 0 else 0.0


def person_coverage(store: Store, video: Video, person: int, kpt_conf: float) -> float:
    """Share of the person's observed frames whose stored keypoints have 8+ confident points."""
    from ptrack.pose.stored import PersonPose

    boxes = store.person_boxes(video.id, int(person))
    frame, _, score, kpts = store.keypoints(video.id, int(person))
    stored = PersonPose(int(person), frame, kpts, score, 0, "", "")
    return coverage(stored.aligned(boxes["frame"]), boxes["source"] == 0, kpt_conf,
                    LEAST_CONFIDENT)


def run_pose(store: Store, video: Video, cfg: dict, person_ids: Sequence[int], *,
             force: bool = False, log: Callable[[str], None] = print,
             progress: Progress | None = None) -> PoseSummary:
    """Keypoints for ``person_ids`` of ``video`` (persons must be current: the caller brings
    them up to date). See the module docstring."""
    from ptrack.pose.model import check_settings, model_identity

    ids = sorted({int(p) for p in person_ids})
    summary = PoseSummary(video=video.name, status="done", persons=ids)
    check_settings(cfg["pose"])
    group = store.latest_run(video.id, "group")
    if group is None or group.status != "done":
        raise PtrackError(f"{video.name} has no current persons; run `ptrack rank` first")
    _, digest = model_identity(cfg["pose"], store.root)
    wanted = run_settings(cfg, digest)
    states = pose_state(store, video, ids, wanted)
    if not force and all(s == "current" for s in states.values()):
        summary.status = "skipped"
        summary.coverage = {p: person_coverage(store, video, p, cfg["pose"]["kpt_conf"]) for p in ids}
        summary.notes.append("keypoints already current for these persons; nothing to do "
                             "(--force redoes them)")
        return summary
    for p, s in states.items():
        if s in ("stale", "other settings"):
            summary.notes.append(f"P{p}: stored keypoints are "
                                 f"{'older than the persons' if s == 'stale' else 'from other settings'};"
                                 f" replacing them")
    src = Path(video.path)
    if not src.is_file():
        raise PtrackError(f"video file {src} not found (moved? the project remembers this path); "
                          f"pose needs the video's frames")
    store.require_writable()
    with _pose_lock(store, video):
        return _run_locked(store, video, cfg, ids, wanted, group, summary, force, log, progress)


def _run_locked(store: Store, video: Video, cfg: dict, ids: list[int], wanted: dict, group,
                summary: PoseSummary, force: bool, log, progress) -> PoseSummary:
    from ptrack.detect.loop import _fault_after, _sigterm_as_interrupt, Terminated
    from ptrack.pose.model import load_pose_model

    last = store.latest_run(video.id, POSE_STAGE)
    run_cfg = {**wanted, "persons": ids}
    resume = (not force and last is not None and last.status in ("running", "interrupted", "failed")
              and last.input_run == group.id and last.settings == run_cfg and last.frames_done > 0)
    model = load_pose_model(cfg["pose"], project=store.root, log=log)
    summary.backend = f"{model.backend} {model.precision}"
    summary.notes.append(model.precision_note)
    if resume:
        run, start, replace = last, last.frames_done, None
        summary.resumed_from = start
        log(f"resuming the pose of {video.name} from frame {start}")
    else:
        run, start, replace = store.start_run(video.id, POSE_STAGE, run_cfg, input_run=group.id), 0, ids
    fault = _fault_after()
    t0 = time.perf_counter()
    try:
        with _sigterm_as_interrupt():
            _loop(store, video, cfg["pose"], ids, model, run.id, start, replace, summary,
                  progress, fault)
    except KeyboardInterrupt as exc:
        store.set_run_status(run.id, "interrupted")
        summary.status = "interrupted"
        summary.exit_code = 143 if isinstance(exc, Terminated) else 130
        summary.seconds = time.perf_counter() - t0
        summary.notes.append(f"interrupted; keypoints up to frame {store.run(run.id).frames_done} "
                             f"are stored; run the same command again to resume")
        return summary
    except BaseException:
        with contextlib.suppress(BaseException):
            if store.run(run.id).frames_done == 0 and not resume:
                store.drop_run(run.id)
            else:
                store.finish_run(run.id, "failed")
        raise
    summary.seconds = time.perf_counter() - t0
    kpt_conf = float(cfg["pose"]["kpt_conf"])
    summary.coverage = {p: person_coverage(store, video, p, kpt_conf) for p in ids}
    stats = {"person_frames": summary.person_frames, "found": summary.found,
             "seconds": round(summary.seconds, 3), "model_seconds": round(summary.model_seconds, 3),
             "backend": model.backend, "precision": model.precision, "model": model.name,
             "coverage_8": {str(p): round(c, 4) for p, c in summary.coverage.items()}}
    store.finish_run(run.id, "done", stats)
    return summary


def _pose_lock(store: Store, video: Video):
    """One ``ptrack pose`` of a video at a time in a project (a lock file never followed
    through a symbolic link)."""
    from ptrack.store.locks import video_lock

    return video_lock(store.root, video.id, "pose")


def _loop(store: Store, video: Video, pose: dict, ids: list[int], model, run_id: int,
          start: int, replace: list[int] | None, summary: PoseSummary,
          progress: Progress | None, fault: int) -> None:
    from ptrack.detect.video import FrameReader

    boxes = store.person_boxes(video.id, ids)
    order = np.lexsort((boxes["person"], boxes["frame"]))
    frame = boxes["frame"][order].astype(np.int64)
    person = boxes["person"][order].astype(np.int64)
    source = boxes["source"][order].astype(np.int64)
    smoothed = boxes["smoothed"][order].astype(np.float64)
    todo = frame >= start
    total = int(todo.sum())
    if not total:
        store.commit_keypoints(video.id, run_id, start, [], replace)
        return
    first, last = int(frame[todo][0]), int(frame[todo][-1])
    lo = np.searchsorted(frame, np.arange(first, last + 2))  # rows of frame f: lo[f-first]:lo[f-first+1]
    batch = max(1, int(pose["batch"]))
    pad, min_iou = float(pose["pad"]), float(pose["min_iou"])
    pending: list[tuple] = []  # (row, region, crop)
    state = {"replace": replace, "batches": 0}

    def flush(marker: int) -> None:
        t = time.perf_counter()
        results = model([c for _, _, c in pending])
        summary.model_seconds += time.perf_counter() - t
        rows = []
        for (i, region, _), (pboxes, scores, kpts) in zip(pending, results):
            offset = np.array([region[0], region[1], region[0], region[1]], np.float64)
            k = choose_pose(pboxes, scores, smoothed[i] - offset, min_iou)
            if k < 0:
                rows.append((person[i], frame[i], source[i], None, None))
                continue
            rows.append((person[i], frame[i], source[i], float(scores[k]),
                         to_video(kpts[k], region).astype(np.float32).tobytes()))
            summary.found += 1
        store.commit_keypoints(video.id, run_id, marker, rows, state["replace"])
        state["replace"] = None
        summary.person_frames += len(pending)
        pending.clear()
        if progress:
            progress(summary.person_frames, total)
        state["batches"] += 1
        if fault and state["batches"] >= fault:
            raise KeyboardInterrupt

    reader = FrameReader(Path(video.path), start=first, end=last + 1, expected=video.frame_count)
    with reader:
        for index, image in reader:
            a, b = lo[index - first], lo[index - first + 1]
            if a == b:
                continue
            h, w = image.shape[:2]
            regions = pad_regions(smoothed[a:b], pad, w, h)
            for i, r in zip(range(a, b), regions):
                pending.append((i, r, image[r[1]:r[3], r[0]:r[2]]))
            if len(pending) >= batch:
                flush(index + 1)
    if pending:
        flush(last + 1)
    else:
        store.commit_keypoints(video.id, run_id, last + 1, [], state["replace"])
