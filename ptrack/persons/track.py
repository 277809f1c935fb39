"""Frame-by-frame ByteTrack over stored detections.

Pure function: numpy arrays in, one tracklet id per detection row out. The tracking itself is
:func:`ptrack.persons.bytetrack.bytetrack` (Ultralytics' ByteTrack algorithm in numpy, the same tracks);
this module turns ptrack's settings (durations in seconds, thresholds relative to the video's
confidences) into the tracker's units, and cuts and numbers the tracks it returns.
"""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

import numpy as np

from ptrack.persons.bidirectional import combine_tracks
from ptrack.persons.bytetrack import bytetrack
from ptrack.errors import PtrackError

SETTINGS = ("track_high_thresh", "track_low_thresh", "new_track_thresh", "track_buffer_s",
            "match_thresh", "fuse_score", "split_gap_s", "conf_reference_q", "bidirectional")
"""The ``track:`` keys of the config that :func:`track_detections` reads."""
OPTIONAL = {"bidirectional": False}
"""Keys that may be absent (older stored settings): their value then."""


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


def _settings(settings: Any, params: dict) -> Any:
    """The settings object: ``settings`` itself, or (older callers) the keyword arguments."""
    if settings is not None and params:
        raise PtrackError("give the track settings either as one settings object or as keywords")
    if settings is None:
        unknown = set(params) - set(SETTINGS)
        if unknown:
            raise PtrackError(f"unknown track setting(s): {', '.join(sorted(unknown))}")
        settings = SimpleNamespace(**params)
    missing = [k for k in SETTINGS if not hasattr(settings, k) and k not in OPTIONAL]
    if missing:
        raise PtrackError(f"missing track setting(s): {', '.join(missing)}")
    return settings


def track_detections(
    frame: np.ndarray,
    xyxy: np.ndarray,
    conf: np.ndarray,
    cls: np.ndarray | None = None,
    *,
    fps: float,
    settings: Any = None,
    **params: Any,
) -> np.ndarray:
    """Run ByteTrack over stored detections; return each row's tracklet id (int64, -1 = untracked).

    ``frame`` is 0-based per detection row, ``xyxy`` (N, 4) in pixels, ``conf`` (N,), ``cls`` (N,) or
    None (ByteTrack ignores the class). ``settings`` is any object with the attributes of the
    config's ``track:`` section (:data:`SETTINGS`), e.g. ``SimpleNamespace(**cfg["track"])``; the
    same values may be given as keyword arguments instead.

    Rows may come in any order. Every frame between the first and last detection is fed to the
    tracker (empty ones too) so lost tracks age in real time. ``track_buffer_s`` is converted with
    ``fps``. The first detection of a track (before ByteTrack confirms it) is given the track's id
    too. A track that ByteTrack re-finds after more than ``split_gap_s`` seconds without a box is
    cut there into two tracklets: ByteTrack re-finds by IoU with a velocity-less prediction, and
    the grouping step (``ptrack.persons.group``) judges such joins better (0 = never cut). With
    ``bidirectional``, ByteTrack also runs from the last frame to the first and the two runs are
    combined (:func:`ptrack.persons.bidirectional.combine_tracks`): forward tracks are cut where the
    backward run disagrees, and boxes only the backward run tracked are kept.
    Ids are renumbered 1..K in order of first appearance (frame, then left to right), so the output
    does not depend on the order of the rows.
    """
    p = _settings(settings, params)
    if not fps or fps <= 0:
        raise PtrackError(f"fps must be positive, got {fps}")
    frame = np.asarray(frame, dtype=np.int64).reshape(-1)
    n = len(frame)
    out = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return out
    xyxy = np.asarray(xyxy, dtype=np.float32).reshape(n, 4)
    conf = np.asarray(conf, dtype=np.float32).reshape(n)

    scale = confidence_scale(conf, float(p.conf_reference_q))
    buffer = max(1, int(round(float(p.track_buffer_s) * float(fps))))
    split_gap = int(round(float(p.split_gap_s) * float(fps)))

    # within a frame, feed boxes left to right (then top, conf, row): ids do not depend on row order
    order = np.lexsort((np.arange(n), -conf, xyxy[:, 3], xyxy[:, 2], xyxy[:, 1], xyxy[:, 0], frame))
    f_sorted = frame[order]
    f0, f1 = int(f_sorted[0]), int(f_sorted[-1])
    bounds = np.searchsorted(f_sorted, np.arange(f0, f1 + 2))
    params = dict(
        track_high_thresh=float(p.track_high_thresh) * scale,
        track_low_thresh=float(p.track_low_thresh) * scale,
        new_track_thresh=float(p.new_track_thresh) * scale,
        track_buffer=buffer,
        match_thresh=float(p.match_thresh),
        fuse_score=bool(p.fuse_score),
    )
    if bool(getattr(p, "bidirectional", OPTIONAL["bidirectional"])):
        # the same rows from the last frame to the first (left to right within a frame)
        back = np.lexsort((np.arange(n), f1 - f_sorted))
        b_bounds = np.searchsorted((f1 - f_sorted)[back], np.arange(0, f1 - f0 + 2))
        raw, b_raw = _both_ways((bounds, xyxy[order], conf[order]),
                                (b_bounds, xyxy[order][back], conf[order][back]), params)
        backward = np.empty(n, np.int64)
        backward[back] = b_raw
        raw = combine_tracks(f_sorted, raw, backward)
    else:
        raw = bytetrack(bounds, xyxy[order], conf[order], **params)

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


PARALLEL_MIN_ROWS = 20_000
"""Detections from which the backward run goes to a second process while this one runs the
forward run (a Python process takes ~0.5 s to start; on a 30-minute video each run takes ~18 s,
``bench/person_stages.py``)."""


def _both_ways(forward: tuple, backward: tuple, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """ByteTrack's forward and backward runs (``(bounds, xyxy, conf)`` each): side by side in
    two processes on a machine of 2+ cores for a long video, else one after the other.

    The backward run goes to a worker process (:mod:`ptrack.persons.track_worker`) that dies
    with this one: a plain child over pipes (no pool, no resource tracker), which asks the
    kernel to kill it when its parent dies (Linux) and watches its parent otherwise, so a
    ``kill``, ``timeout`` or kill -9 of ``ptrack track`` leaves nothing running."""
    if len(forward[1]) >= PARALLEL_MIN_ROWS and (os.cpu_count() or 1) > 1:
        from ptrack.persons import track_worker

        try:
            worker = track_worker.start(bytetrack, backward, params)
        except OSError:  # no second process here: one after the other
            worker = None
        if worker is not None:
            try:
                ahead = bytetrack(*forward, **params)
            except BaseException:
                worker.kill()
                raise
            result = worker.result()
            if result is not None:
                return ahead, result
            return ahead, bytetrack(*backward, **params)
    return bytetrack(*forward, **params), bytetrack(*backward, **params)
