"""Tracklets from tracking a video both ways: forwards and backwards in time.

ptrack has the whole video before it tracks, so it can run ByteTrack twice, once from the first
frame to the last and once from the last to the first, and keep what the two runs agree on.
Pure: per-row track ids of both runs in, one id per row out.

- **Cut where they disagree.** A forward track whose rows the backward run gives to two
  different tracks is cut where the backward id changes: one run followed a person through a
  crossing that the other saw as two people, so the link is doubtful and ``group`` (which judges
  motion across the cut with velocities, not only box overlap) decides it instead. This raises
  the purity of the tracklets, which caps the purity of the persons made from them.
- **Keep what only one run saw.** A box the forward run left untracked but the backward run
  tracked (typically a person's first, faint boxes: going forwards a track starts only at a
  confident box, going backwards the same track runs on through the faint ones) joins the
  piece of the forward track its backward track shares; a backward track with no forward rows at
  all becomes a tracklet of its own.
"""

from __future__ import annotations

import numpy as np

MIN_RUN = 3
"""Least rows a backward id must hold within a forward track to count: a shorter run is the
backward run flickering, not a person. Chosen in-sample on the nine sets of
``bench/cross_validate.py`` (group shipped, motion only; persons coverage / purity): 1 gave
74.2 / 90.6 (public detections 72.5 / 90.9), 3 gave 74.1 / 90.8 (72.3 / 92.3), 5 gave
73.7 / 90.7 (71.4 / 92.3). Counted in rows (boxes), so about 0.1-0.3 s at 10-30 fps."""


def _last_valid(values: np.ndarray, group_start: np.ndarray) -> np.ndarray:
    """For each position, the last ``values >= 0`` at or before it within its group (-1 if none).

    ``group_start[i]`` is the index where position i's group begins (positions of one group are
    contiguous).
    """
    idx = np.where(values >= 0, np.arange(len(values)), -1)
    last = np.maximum.accumulate(idx) if len(idx) else idx
    ok = last >= group_start
    return np.where(ok, values[np.maximum(last, 0)], -1)


def _next_valid(values: np.ndarray, start: np.ndarray) -> np.ndarray:
    """For each position, the next ``values >= 0`` at or after it within its group (-1 if none);
    ``start`` marks the first position of each group."""
    r = _last_valid(values[::-1], _group_start(np.r_[start[1:], True][::-1]))
    return r[::-1]


def _group_start(start: np.ndarray) -> np.ndarray:
    pos = np.arange(len(start))
    return np.maximum.accumulate(np.where(start, pos, 0)) if len(start) else pos


def combine_tracks(frame: np.ndarray, forward: np.ndarray, backward: np.ndarray, *,
                   min_run: int = MIN_RUN) -> np.ndarray:
    """One id per row (int64, -1 = untracked) from a forward and a backward tracking run.

    Args:
        frame: (N,) frame of each row.
        forward: (N,) track id of each row in the forward run (-1 = untracked); one row per
            frame per id.
        backward: (N,) the same for the backward run (ids independent of the forward ones).

    Returns:
        Ids 1..K: the forward tracks cut wherever the backward id of their rows changes (rows the
        backward run left untracked, and backward ids held for fewer than ``min_run`` rows of
        the forward track, do not cut), plus the rows only the backward run tracked,
        joined to the piece that shares their backward track (nearest in time; not into a frame
        the piece already has a box in), or forming a tracklet of their own when their backward
        track shares no row with any forward track. Numbered in order of (forward track, frame),
        then the backward-only tracklets.

    Example:
        >>> combine_tracks(np.arange(6), np.ones(6, int), np.array([5, 5, 5, 6, 6, 6]))
        array([1, 1, 1, 2, 2, 2])
    """
    frame = np.asarray(frame, dtype=np.int64).reshape(-1)
    fwd = np.asarray(forward, dtype=np.int64).reshape(-1)
    bwd = np.asarray(backward, dtype=np.int64).reshape(-1)
    n = len(frame)
    if not len(fwd) == len(bwd) == n:
        raise ValueError(f"frame, forward and backward differ in length: {n}, {len(fwd)}, {len(bwd)}")
    out = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return out

    # 1. forward tracks, in time order, cut where the backward id changes
    m = np.flatnonzero(fwd >= 0)
    n_pieces = 0
    if len(m):
        o = m[np.lexsort((frame[m], fwd[m]))]
        t, b = fwd[o], bwd[o]
        pos = np.arange(len(o))
        start = np.r_[True, t[1:] != t[:-1]]
        group_start = np.maximum.accumulate(np.where(start, pos, 0))
        if min_run > 1:  # backward ids held for fewer rows than min_run count as unknown
            lv = _last_valid(b, group_start)
            nv = _next_valid(b, start)
            lab = np.where(b >= 0, b, -1)
            # runs of one backward id (unknown rows between two rows of one id belong to it)
            key = np.where(lab >= 0, lab, np.where(lv == nv, lv, -1))
            run_start = start | np.r_[True, key[1:] != key[:-1]]
            run_id = np.cumsum(run_start) - 1
            run_len = np.bincount(run_id, weights=(key >= 0))
            short = run_len[run_id] < min_run
            b = np.where(short, -1, b)
        before = np.r_[-1, _last_valid(b, group_start)[:-1]]  # last backward id before i
        before[start] = -1
        cuts = (b >= 0) & (before >= 0) & (b != before)
        piece = np.cumsum(start | cuts)
        out[o] = piece
        n_pieces = int(piece[-1])

    # 2. rows only the backward run tracked: to the piece of their backward track, nearest in time
    only = np.flatnonzero((fwd < 0) & (bwd >= 0))
    if len(only):
        rows = np.flatnonzero(bwd >= 0)
        o = rows[np.lexsort((frame[rows], bwd[rows]))]
        b, lab, f = bwd[o], out[o], frame[o]
        pos = np.arange(len(o))
        start = np.r_[True, b[1:] != b[:-1]]
        gs = np.maximum.accumulate(np.where(start, pos, 0))
        end = np.r_[start[1:], True]
        ge = np.minimum.accumulate(np.where(end, pos, len(o))[::-1])[::-1]  # last index of group
        has = lab >= 0
        prev_i = np.maximum.accumulate(np.where(has, pos, -1))
        prev_ok = prev_i >= gs
        nxt_i = np.minimum.accumulate(np.where(has, pos, len(o))[::-1])[::-1]
        nxt_ok = nxt_i <= ge
        d_prev = np.where(prev_ok, f - f[np.clip(prev_i, 0, None)], np.iinfo(np.int64).max)
        d_next = np.where(nxt_ok, f[np.clip(nxt_i, None, len(o) - 1)] - f, np.iinfo(np.int64).max)
        take = np.where(d_prev <= d_next, lab[np.clip(prev_i, 0, None)],
                        lab[np.clip(nxt_i, None, len(o) - 1)])
        take = np.where(prev_ok | nxt_ok, take, -1)
        adopted = ~has & (take >= 0)
        new = o[adopted]
        out[new] = take[adopted]
        # never two boxes of one piece in a frame: an adopted row yields to the piece's own,
        # and of two adopted rows the one nearer its backward track's row in the piece stays
        dist = np.zeros(n, np.int64)
        dist[new] = np.minimum(d_prev, d_next)[adopted]
        mine = np.zeros(n, bool)
        mine[new] = True
        r = np.flatnonzero(out >= 0)
        r = r[np.lexsort((r, dist[r], mine[r], frame[r], out[r]))]
        dup = np.zeros(len(r), bool)
        dup[1:] = (out[r][1:] == out[r][:-1]) & (frame[r][1:] == frame[r][:-1])
        out[r[dup]] = -1  # only adopted rows: a piece's own rows are one per frame
        # backward tracks that share no row with a forward track: tracklets of their own
        alone = ~has & ~(prev_ok | nxt_ok)
        if alone.any():
            out[o[alone]] = n_pieces + np.unique(b[alone], return_inverse=True)[1] + 1
    return out
