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
from ptrack.persons.sampling import intersection, same_frame_pairs
from ptrack.errors import PtrackError

SETTINGS = ("track_high_thresh", "track_low_thresh", "new_track_thresh", "track_buffer_s",
            "match_thresh", "fuse_score", "split_gap_s", "conf_reference_q", "bidirectional",
            "height_boost_max", "rescue")
"""The ``track:`` keys of the config that :func:`track_detections` reads."""
OPTIONAL = {"bidirectional": False, "height_boost_max": 1.0, "rescue": 0.0}
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


HEIGHT_BIN = 1.5
"""Box heights are binned by this factor (24-36 px, 36-54 px, ...) for :func:`height_boost`."""
HEIGHT_MIN_BOXES = 30
"""Fewest boxes (in a bin and its two neighbours) a height's own reference is taken from."""
HEIGHT_MIN_BOOST = 1.1
"""A height whose reference is within 10% of the video's is left alone: on MOT15's KITTI-17
boosts of 1.01-1.06 only moved one borderline grouping decision."""


def height_boost(conf: np.ndarray, height: np.ndarray, q: float, most: float) -> np.ndarray:
    """Per box, the factor its confidence is raised by so that it is judged against boxes of
    its own size: ``reference / reference at its height``, where ``reference`` is the ``q``
    quantile of the video's confidences (:func:`confidence_scale`) and the one at its height
    the same quantile over the boxes within a factor of about 1.8 of its height (its bin of
    ``HEIGHT_BIN`` and the two beside it; none where they hold fewer than
    ``HEIGHT_MIN_BOXES``). At most ``most``; 1 below ``HEIGHT_MIN_BOOST`` (and for ``q`` 0:
    absolute thresholds).

    A detector is less sure of small, far people than of near ones even when they are as
    clearly people: on the CAVIAR corridor clips (COCO YOLOv8n) people under 40 px tall score
    a 90th percentile of 0.43-0.68 against 0.87-0.91 for the whole clip, and ByteTrack's
    relative thresholds then never start a tracklet on them."""
    conf = np.asarray(conf, np.float64).reshape(-1)
    n = len(conf)
    out = np.ones(n)
    if q <= 0 or n == 0 or most <= 1.0:
        return out
    ref = confidence_scale(conf, q)
    if ref <= 0:
        return out
    b = np.floor(np.log(np.maximum(np.asarray(height, np.float64).reshape(-1), 1.0))
                 / np.log(HEIGHT_BIN)).astype(np.int64)
    for k in np.unique(b).tolist():
        near = np.abs(b - k) <= 1
        if near.sum() < HEIGHT_MIN_BOXES:
            continue
        local = float(np.quantile(conf[near], min(q, 1.0)))
        boost = ref / local if local > 0 else most
        if boost >= HEIGHT_MIN_BOOST:
            out[b == k] = min(boost, most)
    return out


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
    backward run disagrees, and boxes only the backward run tracked are kept. With
    ``height_boost_max`` above 1, each box's confidence is judged against boxes of its own
    height (:func:`height_boost`); with ``rescue`` above 0, a second ByteTrack over the boxes
    left untracked, at thresholds ``rescue`` times the first's, gives tracklets to people the
    first pass never started one on, changing none of its tracklets (:func:`_rescue`).
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
    most = float(getattr(p, "height_boost_max", OPTIONAL["height_boost_max"]))
    if most > 1.0:  # boxes judged against boxes of their own height (small, far people)
        conf = np.minimum(1.0, conf * height_boost(conf, xyxy[:, 3] - xyxy[:, 1],
                                                   float(p.conf_reference_q), most)).astype(np.float32)
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
    out[order] = _first_appearance(raw)  # sorted order = frame, then left to right
    rescue = float(getattr(p, "rescue", OPTIONAL["rescue"]))
    if rescue > 0 and (out < 0).any():
        out = _rescue(out, frame, xyxy, conf, p, scale * rescue, fps, order)
    return out


def _first_appearance(ids: np.ndarray) -> np.ndarray:
    """``ids`` (-1 = untracked) renumbered 1..K in order of first appearance along the array."""
    out = ids.copy()
    valid = ids >= 0
    if valid.any():
        uniq, first = np.unique(ids[valid], return_index=True)
        rank = np.empty(len(uniq), dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(1, len(uniq) + 1)
        out[valid] = rank[np.searchsorted(uniq, ids[valid])]
    return out


SECOND_BOX_INSIDE = 0.8
"""A leftover box with at least this share of its area inside a box the first pass tracked in
the same frame, and at least half that box's height, is a second box of a person who has a
tracklet (part of them, or the detector's other class): the rescue pass leaves it alone. With
the test model on TUD-Campus such boxes made 43 of the rescue pass's 52 rows, and their
tracklets took links from the real ones (human coverage 70.9 without the rescue pass, 66.6
with it, 71.3 with it and this rule); on the CAVIAR clips, where the rescue pass finds small
far people, no rescued box lies inside another (``bench/humans.py``)."""


def _second_boxes(out: np.ndarray, frame: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
    """Untracked rows (``out < 0``) that are a second box of a tracked person: at least
    ``SECOND_BOX_INSIDE`` of the box inside a tracked box of its frame that is at most twice
    its height. Vectorised over all (untracked, tracked) pairs of a frame."""
    ia, ib = same_frame_pairs(frame)
    keep = (out[ia] < 0) & (out[ib] >= 0)
    ia, ib = ia[keep], ib[keep]
    a, b = xyxy[ia].astype(np.float64), xyxy[ib].astype(np.float64)
    area = np.maximum((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]), 1e-9)
    hit = (intersection(a, b) / area >= SECOND_BOX_INSIDE) & \
        (2.0 * (a[:, 3] - a[:, 1]) >= b[:, 3] - b[:, 1])
    dup = np.zeros(len(out), bool)
    dup[ia[hit]] = True
    return dup


def _rescue(out: np.ndarray, frame: np.ndarray, xyxy: np.ndarray, conf: np.ndarray, p: Any,
            scale: float, fps: float, order: np.ndarray) -> np.ndarray:
    """A second ByteTrack over the boxes the first left untracked (less the second boxes of
    people it tracked, :func:`_second_boxes`), with thresholds ``scale`` times the first's
    units: people the first pass never started a tracklet on (far, small, half hidden) get
    tracklets of their own, and no tracklet of the first pass changes."""
    left = np.flatnonzero((out < 0) & ~_second_boxes(out, frame, xyxy))
    second = SimpleNamespace(**{k: getattr(p, k) for k in SETTINGS if hasattr(p, k)})
    for k in ("track_high_thresh", "track_low_thresh", "new_track_thresh"):
        setattr(second, k, float(getattr(p, k)) * scale)
    second.conf_reference_q, second.height_boost_max, second.rescue = 0.0, 1.0, 0.0
    sub = track_detections(frame[left], xyxy[left], conf[left], fps=fps, settings=second)
    got = sub >= 0
    out = out.copy()
    out[left[got]] = sub[got] + int(out.max(initial=0))
    out[order] = _first_appearance(out[order])  # 1..K again, both passes together
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
