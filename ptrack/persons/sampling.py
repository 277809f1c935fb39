"""Choosing good boxes of one person or tracklet: the overlap tests and the time-spread picker.

Used by the appearance descriptors (``ptrack.persons.descriptors``) and by the views' samples
(``ptrack.views.samples``), so "covered" and "spread across time" mean one thing everywhere;
``group``'s cut ends and ``track``'s second boxes pair the boxes of a frame with
:func:`same_frame_pairs` and :func:`intersection`.
Pure numpy.
"""

from __future__ import annotations

import numpy as np


def same_frame_pairs(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every ordered pair ``(i, j)`` of distinct rows with the same frame (both orders), as two
    index arrays; vectorised, N x (most boxes in one frame) pairs.

    >>> same_frame_pairs(np.array([3, 1, 3]))
    (array([0, 2]), array([2, 0]))
    """
    frame = np.asarray(frame).reshape(-1)
    n = len(frame)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.argsort(frame, kind="stable")
    f = frame[order]
    first = np.r_[0, np.flatnonzero(f[1:] != f[:-1]) + 1]
    size = np.diff(np.r_[first, n])
    count_of = np.repeat(size, size)
    ia = np.repeat(np.arange(n), count_of)
    ib = np.repeat(np.repeat(first, size), count_of) + (
        np.arange(count_of.sum()) - np.repeat(np.cumsum(count_of) - count_of, count_of))
    keep = ia != ib
    return order[ia[keep]], order[ib[keep]]


def intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Area shared by boxes ``a[k]`` and ``b[k]`` (xyxy, row by row)."""
    w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    return w * h


def covered_share(frame: np.ndarray, xyxy: np.ndarray, conf: np.ndarray | None = None,
                  *, min_other_conf: float = 0.0) -> np.ndarray:
    """For each box, the largest share of its area covered by one other box of the same frame.

    0 = free, 1 = fully hidden behind another box. A box covers others only when its
    confidence is at least ``min_other_conf`` (low-score boxes are often fragments of the very
    person looked at). ``frame``/``xyxy``/``conf`` are all the boxes of the frames concerned, in
    any order. Vectorised over pairs of rows at the same distance in frame order, so the cost
    is N x (most boxes in one frame).

    >>> f = np.array([0, 0, 1])
    >>> b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [0, 0, 10, 10]], float)
    >>> covered_share(f, b).tolist()
    [0.5, 0.5, 0.0]
    """
    frame = np.asarray(frame).reshape(-1)
    n = len(frame)
    out = np.zeros(n, dtype=np.float64)
    if n < 2:
        return out
    order = np.argsort(frame, kind="stable")
    f = frame[order]
    b = np.asarray(xyxy, dtype=np.float64).reshape(n, 4)[order]
    c = np.ones(n) if conf is None else np.asarray(conf, dtype=np.float64).reshape(n)[order]
    area = np.maximum(np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0), 1e-9)
    sorted_out = np.zeros(n)
    _, counts = np.unique(f, return_counts=True)
    for step in range(1, int(counts.max())):
        i = np.arange(n - step)
        j = i + step
        same = f[i] == f[j]
        if not same.any():
            break
        i, j = i[same], j[same]
        ix = np.maximum(0, np.minimum(b[i, 2], b[j, 2]) - np.maximum(b[i, 0], b[j, 0]))
        iy = np.maximum(0, np.minimum(b[i, 3], b[j, 3]) - np.maximum(b[i, 1], b[j, 1]))
        inter = ix * iy
        np.maximum.at(sorted_out, i, np.where(c[j] >= min_other_conf, inter / area[i], 0.0))
        np.maximum.at(sorted_out, j, np.where(c[i] >= min_other_conf, inter / area[j], 0.0))
    out[order] = np.minimum(sorted_out, 1.0)
    return out


def rows_of(frame: np.ndarray, det: np.ndarray, all_frame: np.ndarray,
            all_det: np.ndarray) -> np.ndarray:
    """Index of each (frame, det) in the (frame, det)-sorted ``all_*`` arrays; -1 where absent."""
    key_all = np.asarray(all_frame, np.int64) * 1_000_000 + np.asarray(all_det, np.int64)
    key = np.asarray(frame, np.int64) * 1_000_000 + np.asarray(det, np.int64)
    if not len(key_all):
        return np.full(len(key), -1, np.int64)
    pos = np.clip(np.searchsorted(key_all, key), 0, len(key_all) - 1)
    return np.where(key_all[pos] == key, pos, -1).astype(np.int64)


def pick_spread(frame: np.ndarray, score: np.ndarray, k: int, *,
                span: tuple[int, int] | None = None,
                per_bin: int = 1) -> list[tuple[int, np.ndarray]]:
    """The best rows in each of ``k`` equal time bins: ``[(bin, rows best first), ...]``.

    The span (``(first, last)`` frame, default the rows' own) is cut into ``k`` equal bins;
    each bin gives up to ``per_bin`` rows by descending ``score`` (earlier frame, then lower
    row, on ties). Bins without rows are left out. ``k <= 0``: every row is its own bin.

    >>> pick_spread(np.arange(10), np.r_[np.zeros(9), 1.0], 2)
    [(0, array([0])), (1, array([9]))]
    """
    frame = np.asarray(frame, np.int64).reshape(-1)
    score = np.asarray(score, np.float64).reshape(-1)
    n = len(frame)
    if n == 0:
        return []
    if k <= 0:
        bins = np.arange(n)
    else:
        first, last = (int(frame.min()), int(frame.max())) if span is None else span
        bins = np.minimum(((frame - first) * k) // max(last - first + 1, 1), k - 1)
    order = np.lexsort((np.arange(n), frame, -score, bins))
    b_sorted = bins[order]
    starts = np.flatnonzero(np.r_[True, b_sorted[1:] != b_sorted[:-1]])
    ends = np.r_[starts[1:], n]
    return [(int(b_sorted[s]), order[s:min(s + per_bin, e)])
            for s, e in zip(starts.tolist(), ends.tolist())]
