"""Frame-by-frame ByteTrack over stored detections.

Pure function: numpy arrays in, one tracklet id per detection row out. Ultralytics' ``BYTETracker``
does the work; this module only feeds it cheaply and maps its output back to input rows.
"""

from __future__ import annotations

import os

import numpy as np

from ptrack.errors import PtrackError

# Tuned on MOT15 public detections (bench/tune_group.py); Ultralytics' bytetrack.yaml has
# 0.25 / 0.1 / 0.25 / 30 frames / 0.8 / True. The lost buffer is in seconds here.
DEFAULTS = dict(
    track_high_thresh=0.7,
    track_low_thresh=0.1,
    new_track_thresh=0.7,
    track_buffer_s=2.0,
    match_thresh=0.8,
    fuse_score=True,
    split_gap_s=0.6,
    conf_reference_q=0.9,
)


def confidence_scale(conf: np.ndarray, q: float) -> float:
    """What the confidence thresholds are fractions of: the ``q`` quantile of the video's
    detection confidences (1.0 when ``q`` is 0, or there are no detections).

    Detectors spread their scores differently (MOT15's public detections sit in 0.5-1, a
    fine-tuned YOLOv8s tops out near 0.8), so thresholds relative to the video's confident
    boxes carry over from one detector to another where absolute ones do not.
    """
    if q <= 0 or len(conf) == 0:
        return 1.0
    return float(np.quantile(np.asarray(conf, dtype=np.float64), min(q, 1.0)))


class _Dets:
    """The minimal Results-like object ``BYTETracker.update`` needs (conf, xyxy, xywh, cls, indexing)."""

    __slots__ = ("conf", "xyxy", "xywh", "cls")

    def __init__(self, conf, xyxy, xywh, cls):
        self.conf, self.xyxy, self.xywh, self.cls = conf, xyxy, xywh, cls

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, m) -> "_Dets":
        return _Dets(self.conf[m], self.xyxy[m], self.xywh[m], self.cls[m])


def track_detections(
    frame: np.ndarray,
    xyxy: np.ndarray,
    conf: np.ndarray,
    cls: np.ndarray | None = None,
    *,
    fps: float,
    **params,
) -> np.ndarray:
    """Run ByteTrack over stored detections; return each row's tracklet id (int64, -1 = untracked).

    ``frame`` is 0-based per detection row, ``xyxy`` (N, 4) in pixels, ``conf`` (N,), ``cls`` (N,) or None.
    Rows may come in any order. Every frame between the first and last detection is fed to the tracker
    (empty ones too) so lost tracks age in real time. ``track_buffer_s`` is converted with ``fps``.
    The first detection of a track (before ByteTrack confirms it) is given the track's id too.
    A track that ByteTrack re-finds after more than ``split_gap_s`` seconds without a box is cut
    there into two tracklets: ByteTrack re-finds by IoU with a velocity-less prediction, and the
    grouping step (``ptrack.group``) judges such joins better (0 = never cut).
    Ids are renumbered 1..K in order of first appearance (frame, then left to right), so the output
    does not depend on the order of the rows.
    """
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise PtrackError(f"unknown track setting(s): {', '.join(sorted(unknown))}")
    p = {**DEFAULTS, **params}
    if not fps or fps <= 0:
        raise PtrackError(f"fps must be positive, got {fps}")
    frame = np.asarray(frame, dtype=np.int64).reshape(-1)
    n = len(frame)
    out = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return out
    xyxy = np.asarray(xyxy, dtype=np.float32).reshape(n, 4)
    conf = np.asarray(conf, dtype=np.float32).reshape(n)
    cls = np.zeros(n, np.float32) if cls is None else np.asarray(cls, dtype=np.float32).reshape(n)

    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    os.environ.setdefault("YOLO_VERBOSE", "false")
    from types import SimpleNamespace

    from ultralytics.trackers.byte_tracker import BYTETracker

    scale = confidence_scale(conf, float(p["conf_reference_q"]))
    buffer = max(1, int(round(float(p["track_buffer_s"]) * float(fps))))
    split_gap = int(round(float(p["split_gap_s"]) * float(fps)))
    args = SimpleNamespace(
        tracker_type="bytetrack",
        track_high_thresh=float(p["track_high_thresh"]) * scale,
        track_low_thresh=float(p["track_low_thresh"]) * scale,
        new_track_thresh=float(p["new_track_thresh"]) * scale,
        track_buffer=buffer,
        match_thresh=float(p["match_thresh"]),
        fuse_score=bool(p["fuse_score"]),
    )
    try:  # older Ultralytics: max_time_lost = int(frame_rate / 30 * track_buffer)
        tracker = BYTETracker(args, frame_rate=30)
    except TypeError:
        tracker = BYTETracker(args)
    for attr in ("max_frames_lost", "max_time_lost", "buffer_size"):
        if hasattr(tracker, attr):
            setattr(tracker, attr, buffer)

    # within a frame, feed boxes left to right (then top, conf, row): ids do not depend on row order
    order = np.lexsort((np.arange(n), -conf, xyxy[:, 3], xyxy[:, 2], xyxy[:, 1], xyxy[:, 0], frame))
    f_sorted = frame[order]
    xywh = np.empty_like(xyxy)
    xywh[:, :2] = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    xywh[:, 2:] = xyxy[:, 2:] - xyxy[:, :2]
    all_dets = _Dets(conf[order], xyxy[order], xywh[order], cls[order])
    f0, f1 = int(f_sorted[0]), int(f_sorted[-1])
    bounds = np.searchsorted(f_sorted, np.arange(f0, f1 + 2))
    empty = all_dets[np.zeros(0, dtype=np.int64)]

    raw = np.full(n, -1, dtype=np.int64)  # in sorted order
    pending: dict[int, int] = {}  # raw track id -> sorted row of its unconfirmed first detection
    seen: set[int] = set()
    for k in range(f1 - f0 + 1):
        a, b = bounds[k], bounds[k + 1]
        if a == b:
            if not tracker.tracked_stracks and not tracker.lost_stracks:
                tracker.frame_id += 1  # nothing to age; skip the call
                continue
            tracker.update(empty)
            continue
        res = tracker.update(all_dets[slice(a, b)])
        if len(res):
            tids = res[:, 4].astype(np.int64)
            rows = a + res[:, 7].astype(np.int64)
            raw[rows] = tids
            for t in tids.tolist():
                if t not in seen:
                    seen.add(t)
                    r = pending.pop(t, None)
                    if r is not None and raw[r] < 0:
                        raw[r] = t
        for st in tracker.tracked_stracks:
            if not st.is_activated and st.frame_id == tracker.frame_id:
                pending[int(st.track_id)] = a + int(st.idx)

    if split_gap > 0:  # cut tracks at long internal gaps, then number the pieces
        m = np.flatnonzero(raw >= 0)
        o = m[np.lexsort((f_sorted[m], raw[m]))]
        t, f = raw[o], f_sorted[o]
        cut = np.r_[False, (t[1:] == t[:-1]) & (f[1:] - f[:-1] > split_gap)]
        raw[o] = np.cumsum(np.r_[True, (t[1:] != t[:-1]) | cut[1:]])
    # Renumber 1..K in order of first appearance (sorted order = frame, then left to right).
    valid = raw >= 0
    if valid.any():
        uniq, first = np.unique(raw[valid], return_index=True)
        rank = np.empty(len(uniq), dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(1, len(uniq) + 1)
        raw[valid] = rank[np.searchsorted(uniq, raw[valid])]
    out[order] = raw
    return out
