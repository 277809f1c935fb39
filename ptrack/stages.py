"""The person stages wired to the store: track, group, rank and MOT import.

Each stage reads the store, runs a pure algorithm module (``track``, ``group``, ``rank``) and
replaces its results in one transaction, so an interrupted run leaves the previous results
intact. A new run marks the later stages stale; a stage whose input is missing or stale runs
it first (and says so through ``log``).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ptrack.errors import PtrackError
from ptrack.store import Store, Video

Log = Callable[[str], None]


@dataclass
class StageSummary:
    """What one stage run did, for the CLI to print."""

    stage: str
    video: str
    seconds: float = 0.0
    counts: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _stage_run(store: Store, video: Video, stage: str, settings: dict, after: str) -> Iterator:
    """A run record for ``stage``: ``interrupted``/``failed`` if the body does not finish.

    Results are replaced in one transaction at the end of the body, so an interrupted run
    leaves the previous results in place.
    """
    upstream = store.latest_run(video.id, after)
    run = store.start_run(video.id, stage, settings, input_run=upstream.id if upstream else None)
    try:
        yield run
    except KeyboardInterrupt:
        store.finish_run(run.id, "interrupted")
        raise
    except BaseException:
        with contextlib.suppress(Exception):
            store.finish_run(run.id, "failed")
        raise


def _need_detections(store: Store, video: Video) -> None:
    state = store.stage_state(video.id, "detect")
    if state not in ("done", "stale"):
        hint = ("its `ptrack detect` was interrupted: run it again to finish"
                if state in ("running", "interrupted") else "run `ptrack detect` or `ptrack import` first")
        raise PtrackError(f"{video.name} has no finished detections; {hint}")


def _ensure(store: Store, video: Video, stage: str, cfg: dict, log: Log) -> None:
    """Run ``stage`` first when its results are missing or stale."""
    run = store.latest_run(video.id, stage)
    state = "missing" if run is None else run.status
    if state == "done" and run.settings == cfg[stage]:
        return
    why = {"done": "from other settings", "stale": "stale"}.get(state, "missing")
    log(f"{video.name}: {stage} results are {why}; running {stage} first")
    RUNNERS[stage](store, video, cfg, log)


def _detect_stride(store: Store, video: Video) -> int:
    """The ``--stride`` of the video's detections (1 for imported boxes)."""
    run = store.latest_run(video.id, "detect")
    try:
        return max(1, int(run.settings["detect"]["stride"])) if run else 1
    except (KeyError, TypeError, ValueError):
        return 1


def run_track(store: Store, video: Video, cfg: dict, log: Log = print) -> StageSummary:
    """ByteTrack over the stored detections -> tracklets."""
    from ptrack.track import track_detections

    _need_detections(store, video)
    t0 = time.perf_counter()
    det = store.detections(video.id)
    stride = _detect_stride(store, video)
    with _stage_run(store, video, "track", cfg["track"], "detect") as run:
        # ByteTrack steps over the detected frames only: fed the skipped frames of a
        # `detect --stride N` run as empty ones, it drops every new track before the second
        # match that confirms it (coverage on TUD-Stadtmitte fell from 78% to 29% at stride 2;
        # with this, 80%; bench/levers.py --only stride)
        tid = track_detections(det.frame // stride, det.xyxy, det.conf, det.cls,
                               fps=video.fps / stride, **cfg["track"])
        n_tracklets = int(len(np.unique(tid[tid >= 0])))
        counts = {"detections": len(det), "tracked": int((tid >= 0).sum()),
                  "tracklets": n_tracklets}
        # results, run 'done' and later stages stale: one transaction
        store.replace_tracklets(video.id, det.frame, det.det, tid, run_id=run.id, stats=counts)
    return StageSummary("track", video.name, time.perf_counter() - t0, counts)


def _descriptors(store: Store, video: Video, tid: np.ndarray, det, cfg: dict) -> dict | None:
    """Appearance descriptor per tracklet from its best stored crops (None without crops)."""
    if not video.has_crops or not len(tid):
        return None
    from ptrack import appearance, crops

    k = int(cfg["group"].get("appearance_samples", 6))
    everyone = store.detections(video.id)  # sorted by frame: the overlap test sees all boxes
    order = np.argsort(tid, kind="stable")
    ids, starts = np.unique(tid[order], return_index=True)
    keys, owners = [], []
    for t, rows in zip(ids.tolist(), np.split(order, starts[1:])):
        if t < 0:
            continue
        lo, hi = np.searchsorted(everyone.frame, [det.frame[rows].min(), det.frame[rows].max() + 1])
        picked = appearance.pick_descriptor_samples(
            det.frame[rows], det.xyxy[rows], det.conf[rows], k,
            frame_boxes=(everyone.frame[lo:hi], everyone.xyxy[lo:hi]))
        for r in rows[picked]:
            keys.append((video.id, int(det.frame[r]), int(det.det[r])))
            owners.append(t)
    if not keys:
        return None
    blobs = store.crops(keys)
    # one tracklet's crops decoded at a time (owners are contiguous): decoding them all first
    # held ~100 KB of pixels per sample, 1.3 GB on a 30-minute video (bench/person_stages.py)
    out: dict[int, np.ndarray] = {}
    start = 0
    for end in range(1, len(owners) + 1):
        if end == len(owners) or owners[end] != owners[start]:
            imgs = [crops.decode(b) for b in blobs[start:end] if b]
            if imgs:
                out[owners[start]] = appearance.crop_descriptor(imgs)
            start = end
    return out or None


def _constraint_links(store: Store, video: Video, tid: np.ndarray,
                      frame: np.ndarray) -> tuple[np.ndarray, list, list]:
    """User corrections as (tracklet ids, must-link pairs, cannot-link pairs).

    ``merge`` links all its tracklets; ``unmerge`` keeps them pairwise apart; ``split`` keeps
    the tracklets before its frame apart from those after, cutting a tracklet that spans the
    frame in two (the second part gets a new id above the tracker's).
    """
    tid = tid.copy()
    known = set(np.unique(tid[tid >= 0]).tolist())
    next_id = max(known, default=0) + 1
    must, cannot = [], []
    for c in store.constraints(video.id):
        ids = [i for i in c["ids"] if i in known]
        if c["kind"] == "merge":
            must += [(ids[0], other) for other in ids[1:]]
        elif c["kind"] == "unmerge":
            cannot += [(a, b) for i, a in enumerate(ids) for b in ids[i + 1:]]
        elif c["kind"] == "split" and c["frame"] is not None:
            at = int(c["frame"])
            for t in list(ids):
                rows = tid == t
                if frame[rows].min() < at <= frame[rows].max():
                    tid[rows & (frame >= at)] = next_id
                    ids.append(next_id)
                    known.add(next_id)
                    next_id += 1
            before = [t for t in ids if frame[tid == t].min() < at]
            after = [t for t in ids if frame[tid == t].min() >= at]
            cannot += [(a, b) for a in before for b in after]
    return tid, must, cannot


def group_inputs(store: Store, video: Video, cfg: dict, *, appearance: bool = True):
    """Tracklet rows, descriptors and constraints as ``group`` takes them."""
    tid, det = store.tracklet_boxes(video.id)
    tid, must, cannot = _constraint_links(store, video, tid, det.frame)
    desc = _descriptors(store, video, tid, det, cfg) if appearance and cfg["group"].get(
        "use_appearance", True) else None
    return tid, det, desc, must, cannot


def _group_params(cfg: dict) -> dict:
    return {k: v for k, v in cfg["group"].items() if k not in ("appearance_samples", "use_appearance")}


def run_group(store: Store, video: Video, cfg: dict, log: Log = print) -> StageSummary:
    """Tracklets (+ crops, + user constraints) -> persons with boxes and provenance."""
    from ptrack.group import group_tracklets

    _need_detections(store, video)
    _ensure(store, video, "track", cfg, log)
    t0 = time.perf_counter()
    tid, det, desc, must, cannot = group_inputs(store, video, cfg)
    with _stage_run(store, video, "group", cfg["group"], "track") as run:
        result = group_tracklets(tid, det.frame, det.xyxy, det.conf, fps=video.fps,
                                 descriptors=desc, must_link=must, cannot_link=cannot,
                                 **_group_params(cfg))
        persons, boxes, links = _person_rows(result, det)
        counts = {"tracklets": int(len(result.tracklet_ids)), "persons": len(persons),
                  "interpolated": int((result.source == 1).sum()),
                  "appearance": desc is not None, "constraints": len(must) + len(cannot)}
        store.replace_persons(video.id, persons, boxes, links, run_id=run.id, stats=counts)
    summary = StageSummary("group", video.name, time.perf_counter() - t0, counts)
    if not persons:
        summary.notes.append("nobody was found in this video (no tracked person boxes)")
    return summary


def _person_rows(result, det) -> tuple[list[dict], list[tuple], list[tuple]]:
    """Store rows from a :class:`ptrack.group.GroupResult`."""
    det_index = np.where(result.row >= 0, det.det[np.maximum(result.row, 0)], -1)
    boxes = list(zip(result.person.tolist(), result.frame.tolist(),
                     *(result.xyxy[:, i].astype(float).tolist() for i in range(4)),
                     result.conf.astype(float).tolist(), result.source.astype(int).tolist(),
                     result.tracklet.tolist(), det_index.tolist()))
    links = list(zip(result.person_of_tracklet.tolist(), result.tracklet_ids.tolist()))
    persons = []
    if len(result.person):
        order = np.argsort(result.person, kind="stable")
        ids, starts = np.unique(result.person[order], return_index=True)
        ends = np.append(starts[1:], len(order))
        heights = result.xyxy[:, 3] - result.xyxy[:, 1]
        n_tracklets = dict(zip(*np.unique(result.person_of_tracklet, return_counts=True)))
        for pid, s, e in zip(ids.tolist(), starts, ends):
            rows = order[s:e]
            observed = rows[result.source[rows] == 0]
            persons.append({
                "id": pid, "n_frames": int(len(rows)), "n_observed": int(len(observed)),
                "first": int(result.frame[rows].min()), "last": int(result.frame[rows].max()),
                "n_tracklets": int(n_tracklets.get(pid, 0)),
                "mean_height": float(heights[rows].mean()),
                "mean_conf": float(result.conf[observed].mean()) if len(observed) else 0.0})
    return persons, boxes, links


def run_rank(store: Store, video: Video, cfg: dict, log: Log = print) -> StageSummary:
    """Score and rank the persons."""
    from ptrack.rank import rank_persons

    _need_detections(store, video)
    _ensure(store, video, "group", cfg, log)
    t0 = time.perf_counter()
    with _stage_run(store, video, "rank", cfg["rank"], "group") as run:
        pb = store.person_boxes(video.id)
        result = rank_persons(pb["person"], pb["frame"], pb["xyxy"], pb["conf"], pb["source"],
                              n_frames=video.frame_count, width=video.width,
                              height=video.height, **cfg["rank"])
        ranking = [(int(p), int(r), float(s), {k: float(v[i]) for k, v in result.components.items()})
                   for i, (p, r, s) in enumerate(zip(result.person, result.rank, result.score))]
        counts = {"persons": len(ranking)}
        if ranking:
            counts["top_person"] = min(ranking, key=lambda x: x[1])[0]
        store.set_ranking(video.id, ranking, run_id=run.id, stats=counts)
    summary = StageSummary("rank", video.name, time.perf_counter() - t0, counts)
    if not ranking:
        summary.notes.append("nobody was found in this video: no persons to rank")
    return summary


RUNNERS: dict[str, Callable[..., StageSummary]] = {
    "track": run_track, "group": run_group, "rank": run_rank}


def import_mot(store: Store, path: Path, *, video_ref: str, fps: float | None, width: int | None,
               height: int | None, force: bool, log: Log = print) -> StageSummary:
    """Load MOTChallenge detections as a video's detections (no crops)."""
    from ptrack.motio import read_mot
    from ptrack.video import fingerprint, probe

    t0 = time.perf_counter()
    boxes = read_mot(path, kind="det")
    file = Path(video_ref)
    video = None
    if file.is_file():
        info = probe(file)
        video = store.find_video_by_fingerprint(info.fingerprint)
        if video is None:
            video = store.add_video(name=info.name, path=str(info.path), size=info.size,
                                    fingerprint=info.fingerprint, fps=fps or info.fps,
                                    width=width or info.width, height=height or info.height,
                                    frame_count=info.frame_count, has_crops=False)
    else:
        known = {v.name: v for v in store.videos()} | {str(v.id): v for v in store.videos()}
        video = known.get(video_ref)
        if video is None:
            if not (fps and width and height):
                raise PtrackError(f"'{video_ref}' is neither a video file nor a video of the "
                                  f"project; give --fps, --width and --height to import boxes "
                                  f"without a video", exit_code=2)
            frames = int(boxes.frame.max()) + 1 if len(boxes) else 0
            video = store.add_video(name=Path(video_ref).stem, path="", size=0,
                                    fingerprint=f"import:{fingerprint(Path(path))}", fps=fps,
                                    width=width, height=height, frame_count=max(frames, 1),
                                    has_crops=False)
    if store.count_detections(video.id) and not force:
        raise PtrackError(f"{video.name} already has detections; use --force to replace them")
    frames = int(boxes.frame.max()) + 1 if len(boxes) else 0
    if frames > video.frame_count:
        store.update_video(video.id, frame_count=frames)
    order = np.lexsort((np.arange(len(boxes)), boxes.frame))
    frame_sorted = boxes.frame[order]
    det_index = np.arange(len(order)) - np.searchsorted(frame_sorted, frame_sorted)
    rows = [(int(f), int(d), float(b[0]), float(b[1]), float(b[2]), float(b[3]), float(c), 0)
            for f, d, b, c in zip(frame_sorted, det_index, boxes.xyxy[order], boxes.conf[order])]
    run = store.start_run(video.id, "detect", {"import": str(Path(path).resolve()),
                                               "fingerprint": fingerprint(Path(path))})
    store.discard_detections(video.id, 0)
    n = store.replace_detections(video.id, rows)
    store.update_video(video.id, has_crops=0)
    store.finish_run(run.id, "done", {"detections": n, "frames_covered": frames})
    store.mark_stale(video.id, "detect")
    return StageSummary("import", video.name, time.perf_counter() - t0,
                        {"detections": n, "frames": frames})
