"""ByteTrack in numpy: the algorithm of Ultralytics' ``BYTETracker``, without its per-box objects.

Pure function over a whole video's detections, sorted by frame: one raw track id per row out.
It follows Ultralytics 8.4's ``BYTETracker.update`` step by step, so it gives the same tracks
(``tests/test_bytetrack.py`` runs both on real sequences), but keeps the tracks' state in a few
arrays instead of one Python object per track and per detection:

- Kalman filter on ``(x, y, a, h)`` (box centre, aspect w/h, height) with constant velocity,
  noise scaled by the box height (Ultralytics' ``KalmanFilterXYAH``). Its 8x8 covariance never
  couples two coordinates, so it is kept as four 2x2 blocks (position/velocity per coordinate)
  and predict/update are elementwise over all tracks of a frame. The arithmetic is done in the
  order numpy/OpenBLAS does it for the 8x8 matrices, so the numbers agree to the last bit.
- Association as in the ByteTrack paper: high-score boxes against tracked and lost tracks on
  IoU (optionally times the box score) with ``lap.lapjv``; low-score boxes against the tracked
  tracks left over (IoU, fixed 0.5); new-but-unconfirmed tracks against the high boxes left
  (fixed 0.7); boxes left at or above ``new_track_thresh`` start tracks, which are confirmed by
  a match in the next frame (or at once in the first frame). Lost tracks are kept
  ``track_buffer`` frames, then dropped; a tracked and a lost track whose boxes overlap at IoU
  above 0.85 are merged by keeping the older one.
- Ultralytics' bookkeeping quirks are kept on purpose (a dropped lost track can still be
  re-found in the frame after, and is dropped at once when it is lost again), because the
  point of this module is to reproduce its tracks exactly, only faster.

The first detection of a track (before it is confirmed) is given the track's id too.
"""

from __future__ import annotations

from collections import deque

import numpy as np

TRACKED, LOST, REMOVED = 1, 2, 3

# Ultralytics' KalmanFilterXYAH noise: standard deviations per unit of box height
STD_POS = 1.0 / 20
STD_VEL = 1.0 / 160
# ByteTrack's fixed association thresholds (Ultralytics byte_tracker.py)
LOW_MATCH_THRESH = 0.5  # second stage (low-score boxes), IoU cost
UNCONFIRMED_MATCH_THRESH = 0.7  # new tracks against the next frame's high boxes
DUPLICATE_IOU_COST = 0.15  # a tracked and a lost track closer than this are one object
REMOVED_MEMORY = 1000  # Ultralytics keeps this many removed tracks (affects re-finding)

# Rows of the Kalman state array (24, n), one column per track: mean position (x, y, a, h) and
# velocity, then the covariance as four 2x2 blocks per coordinate (position/velocity).
_POS, _VEL = slice(0, 4), slice(4, 8)
_PPP, _PVP, _PPV, _PVV = slice(8, 12), slice(12, 16), slice(16, 20), slice(20, 24)
# Noise standard deviations as h * W + C per coordinate (x, y, a, h): initial position and
# velocity, process position and velocity, measurement (Ultralytics' KalmanFilterXYAH)
_INIT_W = np.array([2 * STD_POS, 2 * STD_POS, 0.0, 2 * STD_POS,
                    10 * STD_VEL, 10 * STD_VEL, 0.0, 10 * STD_VEL])[:, None]
_INIT_C = np.array([0, 0, 1e-2, 0, 0, 0, 1e-5, 0])[:, None]
_PROC_W = np.array([STD_POS] * 2 + [0.0] + [STD_POS] + [STD_VEL] * 2 + [0.0] + [STD_VEL])[:, None]
_PROC_C = _INIT_C
_MEAS_W = np.array([STD_POS] * 2 + [0.0] + [STD_POS])[:, None]
_MEAS_C = np.array([0, 0, 1e-1, 0])[:, None]


def det_geometry(xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detection boxes as the tracker sees them: (xyxy float32 (N, 4), xyah float64 (N, 4), valid).

    Done in float32 in the same steps as Ultralytics (xyxy -> centre/size -> top-left/size), so
    IoUs and Kalman measurements agree with it bit for bit.
    """
    xyxy = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4).T
    c = (xyxy[:2] + xyxy[2:]) / np.float32(2)
    wh = xyxy[2:] - xyxy[:2]
    tl = c - wh / np.float32(2)
    box = np.concatenate([tl, tl + wh]).T.copy()
    ctr = tl + wh / np.float32(2)
    with np.errstate(divide="ignore", invalid="ignore"):
        aspect = wh[0] / wh[1]
    xyah = np.stack([ctr[0], ctr[1], aspect, wh[1]], axis=1).astype(np.float64)
    valid = (wh[0] > 0) & (wh[1] > 0)
    return box, xyah, valid


def _area(box: np.ndarray) -> np.ndarray:
    """Areas of float32 xyxy boxes (4, n), computed as ``bbox_ioa`` does."""
    return (box[2] - box[0]) * (box[3] - box[1])


def _iou_cost(a: np.ndarray, a_area: np.ndarray, b: np.ndarray, b_area: np.ndarray) -> np.ndarray:
    """1 - IoU of float32 boxes a (4, n) x b (4, m), given their areas: (n, m), as ``bbox_ioa``."""
    wh = np.minimum(a[2:, :, None], b[2:, None, :])
    wh -= np.maximum(a[:2, :, None], b[:2, None, :])
    np.maximum(wh, 0, out=wh)
    inter = wh[0] * wh[1]
    union = (b_area + a_area[:, None]) - inter
    union += np.float32(1e-7)
    inter /= union
    return np.subtract(1, inter, out=inter)


def _boxes(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kalman states (24, n) -> (float32 xyxy (4, n), area (n,)), as ``STrack.xyxy``."""
    out = np.empty((4, s.shape[1]))
    np.multiply(s[2], s[3], out=out[2])  # w = a * h
    out[3] = s[3]
    np.subtract(s[:2], out[2:] / 2, out=out[:2])
    out[2:] += out[:2]
    box = out.astype(np.float32)
    return box, _area(box)


def _initiate(z: np.ndarray) -> np.ndarray:
    """New Kalman states (24, n) from xyah measurements (4, n) float64."""
    s = np.zeros((24, z.shape[1]))
    s[_POS] = z
    std = z[3] * _INIT_W + _INIT_C
    std *= std
    s[_PPP] = std[:4]
    s[_PVV] = std[4:]
    return s


def _predict(s: np.ndarray, n_tracked: int) -> np.ndarray:
    """One constant-velocity step of states (24, n), in place; columns from ``n_tracked`` on are
    not tracked (lost), and their height velocity is zeroed first, as Ultralytics does."""
    if n_tracked < s.shape[1]:
        s[7, n_tracked:] = 0.0
    q = s[3] * _PROC_W + _PROC_C
    q *= q
    s[_POS] += s[_VEL]
    ppp = s[_PPP] + s[_PVP]
    pv = s[12:20].reshape(2, 4, -1)
    pv += s[_PVV]  # pvp += pvv, ppv += pvv
    ppp += s[_PPV]
    ppp += q[:4]
    s[_PPP] = ppp
    s[_PVV] += q[4:]
    return s


def _update(s: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Kalman update of states (24, n) with xyah measurements (4, n) float64, in place."""
    r = s[3] * _MEAS_W + _MEAS_C
    r *= r
    S = s[_PPP] + r
    k = s[8:16].reshape(2, 4, -1) * (1.0 / S)  # gains for position, velocity
    mean = s[0:8].reshape(2, 4, -1)
    mean += (z - s[_POS]) * k
    sk = S * k
    cov = s[8:24].reshape(2, 2, 4, -1)
    cov -= k[None] * sk[:, None]
    return s


def _limit(thresh: float) -> tuple[np.float32, bool]:
    """(least float32 >= thresh, whether it equals thresh): ``cost < limit`` on float32 costs
    then decides ``cost < thresh`` exactly as lapjv does in double precision."""
    lim = np.float32(thresh)
    if float(lim) < thresh:
        lim = np.nextafter(lim, np.float32(np.inf))
    return lim, float(lim) == thresh


def _assign(cost: np.ndarray, thresh: float, lim: np.float32, exact: bool,
            lapjv) -> tuple[list[int], list[int], list[int]]:
    """Thresholded minimum-cost assignment, as ``lap.lapjv(cost, extend_cost=True, cost_limit=thresh)``.

    Returns (matched rows, their columns, unmatched columns), ascending lists. Pairs costing
    less than ``thresh`` may match; the matching minimises the total cost with every unmatched
    row or column costing ``thresh / 2``. When no row or column has two candidates, or every
    row's cheapest candidate is strictly cheapest and no two rows want the same column (or the
    same by columns), that is the unique optimum, found here without lapjv (whose wrapper costs
    tens of microseconds a call); otherwise lapjv decides. ``lim``/``exact``: from :func:`_limit`.
    """
    m = cost.shape[1]
    cand = cost < lim
    if not (exact and np.count_nonzero(cost == lim)):  # a pair at exactly the limit: lapjv's tie
        rows, cols = cand.nonzero()
        rl, cl = rows.tolist(), cols.tolist()
        cs = set(cl)
        if len(set(rl)) == len(rl) and len(cs) == len(cl):  # no competition
            return rl, cl, [j for j in range(m) if j not in cs]
        for t in (False, True):
            cc, cm = (cost.T, cand.T) if t else (cost, cand)
            masked = np.where(cm, cc, np.inf)
            best = masked.argmin(1)
            r = np.flatnonzero(cm.any(1))
            c = best[r]
            if len(set(c.tolist())) < len(c):
                continue  # two rows want one column
            picked = masked[r, c]
            masked[r, c] = np.inf
            if (masked[r].min(1) <= picked).any():
                continue  # a tie for a row's cheapest column
            if t:
                order = np.argsort(c)
                r, c = c[order], r[order]
            cs = set(c.tolist())
            return r.tolist(), c.tolist(), [j for j in range(m) if j not in cs]
    _, x, y = lapjv(cost, extend_cost=True, cost_limit=thresh)
    rows = np.flatnonzero(x >= 0)
    return rows.tolist(), x[rows].tolist(), np.flatnonzero(y < 0).tolist()


def bytetrack(
    bounds: np.ndarray,
    xyxy: np.ndarray,
    conf: np.ndarray,
    *,
    track_high_thresh: float,
    track_low_thresh: float,
    new_track_thresh: float,
    track_buffer: int,
    match_thresh: float,
    fuse_score: bool,
) -> np.ndarray:
    """Track detections frame by frame; return one raw track id per row (int64, -1 = untracked).

    Args:
        bounds: (F + 1,) row offsets: frame k's detections are rows ``bounds[k]:bounds[k+1]``,
            for every frame from the first to the last, empty ones included (lost tracks age
            one step per frame).
        xyxy: (N, 4) boxes in pixels, rows sorted by frame (within a frame, in the order the
            tracker should see them; ties in the assignment go to the earlier box).
        conf: (N,) scores, in the same units as the thresholds.
        track_high_thresh: boxes at or above this are matched first and may start tracks.
        track_low_thresh: boxes above this (and below the high one) only extend tracks.
        new_track_thresh: least score of a box that starts a track.
        track_buffer: frames a lost track may be re-found.
        match_thresh: largest cost (1 - IoU, times the score when ``fuse_score``) in the first match.
        fuse_score: weight the first match's IoU by the box score.

    Ids are numbered from 1 in the order tracks start. Rows of boxes that never joined a
    confirmed track keep -1.
    """
    from lap import lapjv

    bounds = np.asarray(bounds, dtype=np.int64)
    conf = np.asarray(conf, dtype=np.float32).reshape(-1)
    n = len(conf)
    raw = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return raw
    box, xyah, valid = det_geometry(xyxy)
    high = valid & (conf >= track_high_thresh)
    low = valid & (conf > track_low_thresh) & (conf < track_high_thresh)
    # Within each frame put the high boxes first, then the low ones, each in input order, so a
    # frame's boxes for the association are one contiguous block: [high | low | unused].
    n_frames = len(bounds) - 1
    row_frame = np.repeat(np.arange(n_frames), np.diff(bounds))
    kind = np.where(high, 0, np.where(low, 1, 2))
    perm = np.lexsort((np.arange(n), kind, row_frame))
    box, xyah, conf, kind = box[perm], xyah[perm], conf[perm], kind[perm]
    area = _area(box.T)
    n_hi = np.bincount(row_frame, weights=kind == 0, minlength=n_frames).astype(np.int64).tolist()
    n_lo = np.bincount(row_frame, weights=kind == 1, minlength=n_frames).astype(np.int64).tolist()
    first = bounds[:-1].tolist()
    new_ok = (conf >= new_track_thresh).tolist()
    one = np.float32(1)
    first_lim, first_exact = _limit(match_thresh)
    low_lim, low_exact = _limit(LOW_MATCH_THRESH)
    unc_lim, unc_exact = _limit(UNCONFIRMED_MATCH_THRESH)

    # Per-track state by slot: Kalman state, its box and box area in arrays (one row per track,
    # worked on transposed: one column per track); scalars in Python lists (cheap to read one
    # at a time). Slots are never reused.
    cap = 256
    kal = np.zeros((cap, 24))
    tbox = np.zeros((cap, 4), np.float32)
    tarea = np.zeros(cap, np.float32)
    state: list[int] = []
    activated: list[bool] = []
    last: list[int] = []  # frame of the last update (Ultralytics' frame_id)
    start: list[int] = []
    tid: list[int] = []
    first_row: list[int] = []  # row of an unconfirmed track's first box, -1 once reported
    det_row: list[int] = []
    tracked: list[int] = []  # slots, in Ultralytics' tracked_stracks order
    lost: list[int] = []  # slots, in lost_stracks order
    removed_log: deque[int] = deque()  # slots in Ultralytics' removed list (last REMOVED_MEMORY)
    removed_count: dict[int, int] = {}
    out_rows: list[int] = []
    out_ids: list[int] = []

    for k in range(n_frames):
        nh, nl = n_hi[k], n_lo[k]
        if not nh and not tracked and not lost:
            continue
        fid = k + 1
        a = first[k]
        refind: list[int] = []
        lost_new: list[int] = []
        removed_now: list[int] = []
        upd_slots: list[int] = []  # matched tracks, and the row of the box each is updated with
        upd_rows: list[int] = []

        pool = [s for s in tracked if activated[s]]
        n_tr = len(pool)
        unconfirmed = [s for s in tracked if not activated[s]] if len(tracked) > n_tr else []
        if lost:
            pool += lost
        n_pool = len(pool)
        rest = range(nh)  # high boxes (column in the frame's block) not matched yet
        if pool or (unconfirmed and nh):
            # one IoU matrix for the frame: rows = pool (predicted) + unconfirmed (as they were),
            # columns = the frame's high and low boxes
            if pool:
                pidx = np.array(pool)
                g = kal.take(pidx, 0)
                ps = _predict(g.T, n_tr)
                kal[pidx] = g
                pb, pa = _boxes(ps)
                tbox[pidx] = pb.T
                tarea[pidx] = pa
            if nh + nl:
                ridx = np.array(pool + unconfirmed)
                cost_all = _iou_cost(tbox.take(ridx, 0).T, tarea.take(ridx), box[a:a + nh + nl].T,
                                     area[a:a + nh + nl])
        if pool:
            u_idx = range(n_pool)  # pool rows not matched yet
            if nh:
                cost = cost_all[:n_pool, :nh]
                if fuse_score:
                    cost = one - (one - cost) * conf[a:a + nh]
                rl, cl, free = _assign(cost, match_thresh, first_lim, first_exact, lapjv)
                if rl:
                    rest = free
                    for i, c in zip(rl, cl):
                        s = pool[i]
                        if state[s] != TRACKED:
                            state[s] = TRACKED
                            activated[s] = True
                            refind.append(s)
                        last[s] = fid
                        upd_slots.append(s)
                        upd_rows.append(a + c)
                    matched = set(rl)
                    u_idx = [i for i in u_idx if i not in matched]
            # second stage: tracked tracks left over against the low-score boxes
            r_i = [i for i in u_idx if state[pool[i]] == TRACKED]
            if r_i:
                left = [pool[i] for i in r_i]
                if nl:
                    cost = cost_all[r_i, nh:nh + nl]
                    rl, cl, _ = _assign(cost, LOW_MATCH_THRESH, low_lim, low_exact, lapjv)
                    if rl:
                        r_tracked = left
                        for i, c in zip(rl, cl):
                            s = r_tracked[i]
                            last[s] = fid
                            upd_slots.append(s)
                            upd_rows.append(a + nh + c)
                        matched = set(rl)
                        left = [s for i, s in enumerate(r_tracked) if i not in matched]
                for s in left:
                    state[s] = LOST
                    lost_new.append(s)
        # unconfirmed tracks against the high boxes left
        if unconfirmed:
            gone = unconfirmed
            if rest:
                cost = cost_all[n_pool:, rest] if len(rest) < nh else cost_all[n_pool:, :nh]
                if fuse_score:
                    cost = one - (one - cost) * (conf.take(np.array(rest) + a) if len(rest) < nh
                                                 else conf[a:a + nh])
                rl, cl, free = _assign(cost, UNCONFIRMED_MATCH_THRESH, unc_lim, unc_exact, lapjv)
                if rl:
                    matched = set()
                    for i, c in zip(rl, cl):
                        s = unconfirmed[i]
                        matched.add(s)
                        activated[s] = True
                        last[s] = fid
                        upd_slots.append(s)
                        upd_rows.append(a + rest[c])
                    gone = [s for s in unconfirmed if s not in matched]
                    rest = [rest[i] for i in free]
            for s in gone:
                state[s] = REMOVED
                removed_now.append(s)
        # new tracks from the high boxes left
        new_slots: list[int] = []
        if rest:
            starts = [a + j for j in rest if new_ok[a + j]]
            if starts:
                m = len(state)
                need = m + len(starts)
                if need > cap:
                    while cap < need:
                        cap *= 2
                    grow = cap - len(kal)
                    kal = np.concatenate([kal, np.zeros((grow, 24))])
                    tbox = np.concatenate([tbox, np.zeros((grow, 4), np.float32)])
                    tarea = np.concatenate([tarea, np.zeros(grow, np.float32)])
                kal[m:need] = _initiate(xyah.take(starts, 0).T).T
                for row in starts:
                    state.append(TRACKED)
                    activated.append(fid == 1)
                    last.append(fid)
                    start.append(fid)
                    tid.append(len(tid) + 1)
                    first_row.append(-1 if fid == 1 else row)
                    det_row.append(row)
                    new_slots.append(len(state) - 1)
                upd_slots += new_slots  # their boxes are computed with the updated ones below
        if upd_slots:  # Kalman update of every matched track at once, then the boxes
            n_upd = len(upd_rows)
            uidx = np.array(upd_slots)
            g = kal.take(uidx, 0)
            if n_upd:
                _update(g[:n_upd].T, xyah.take(upd_rows, 0).T)
                kal[uidx[:n_upd]] = g[:n_upd]
                for s, r in zip(upd_slots, upd_rows):
                    det_row[s] = r
            ub, tarea[uidx] = _boxes(g.T)
            tbox[uidx] = ub.T
        # lost tracks past the buffer are removed (those lost this frame are not in the list yet)
        for s in lost:
            if fid - last[s] > track_buffer:
                state[s] = REMOVED
                removed_now.append(s)

        # merge the pools (Ultralytics' merge_track_pools)
        tracked = [s for s in tracked if state[s] == TRACKED]
        if new_slots or refind:
            tracked += new_slots  # new slots are in no list yet
            if refind:
                have = set(tracked)
                tracked += [s for s in refind if s not in have]
        if lost or lost_new:
            if refind:
                in_tracked = set(tracked)
                lost = [s for s in lost if s not in in_tracked]
            lost = lost + lost_new
            if removed_count:
                lost = [s for s in lost if s not in removed_count]
        if removed_now:
            for s in removed_now:
                removed_log.append(s)
                removed_count[s] = removed_count.get(s, 0) + 1
            while len(removed_log) > REMOVED_MEMORY:
                s = removed_log.popleft()
                c = removed_count[s] - 1
                if c:
                    removed_count[s] = c
                else:
                    del removed_count[s]
        if tracked and lost:  # a tracked and a lost track on the same object: keep the older
            tidx, lidx = np.array(tracked), np.array(lost)
            close = _iou_cost(tbox.take(tidx, 0).T, tarea.take(tidx), tbox.take(lidx, 0).T,
                              tarea.take(lidx)) < DUPLICATE_IOU_COST
            if close.any():
                dp, dq = np.nonzero(close)
                drop_a, drop_b = set(), set()
                for p, q in zip(dp.tolist(), dq.tolist()):
                    sp, sq = tracked[p], lost[q]
                    if last[sp] - start[sp] > last[sq] - start[sq]:
                        drop_b.add(q)
                    else:
                        drop_a.add(p)
                tracked = [s for i, s in enumerate(tracked) if i not in drop_a]
                lost = [s for i, s in enumerate(lost) if i not in drop_b]
        for s in tracked:
            if activated[s]:
                out_rows.append(det_row[s])
                out_ids.append(tid[s])
                r = first_row[s]
                if r >= 0:
                    first_row[s] = -1
                    out_rows.append(r)
                    out_ids.append(tid[s])
    if out_rows:
        raw[perm[np.array(out_rows)]] = np.array(out_ids)
    return raw
