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

# columns of the per-track Kalman state array
_POS, _VEL, _PPP, _PPV, _PVP, _PVV = (slice(4 * i, 4 * i + 4) for i in range(6))


def det_geometry(xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detection boxes as the tracker sees them: (xyxy float32, xyah float64, valid mask).

    Done in float32 in the same steps as Ultralytics (xyxy -> centre/size -> top-left/size), so
    IoUs and Kalman measurements agree with it bit for bit.
    """
    xyxy = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
    c = (xyxy[:, :2] + xyxy[:, 2:]) / np.float32(2)
    wh = xyxy[:, 2:] - xyxy[:, :2]
    tl = c - wh / np.float32(2)
    box = np.concatenate([tl, tl + wh], axis=1)
    ctr = tl + wh / np.float32(2)
    with np.errstate(divide="ignore", invalid="ignore"):
        aspect = wh[:, 0] / wh[:, 1]
    xyah = np.stack([ctr[:, 0], ctr[:, 1], aspect, wh[:, 1]], axis=1).astype(np.float64)
    valid = (wh[:, 0] > 0) & (wh[:, 1] > 0)
    return box, xyah, valid


def _iou_cost(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 - IoU of float32 boxes a (n, 4) x b (m, 4), computed as Ultralytics' ``bbox_ioa``."""
    ax1, ay1, ax2, ay2 = a[:, 0:1], a[:, 1:2], a[:, 2:3], a[:, 3:4]
    bx1, by1, bx2, by2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    inter = (np.minimum(ax2, bx2) - np.maximum(ax1, bx1)).clip(0) * (
        np.minimum(ay2, by2) - np.maximum(ay1, by1)).clip(0)
    area = ((bx2 - bx1) * (by2 - by1) + (ax2 - ax1) * (ay2 - ay1)) - inter
    return np.float32(1) - inter / (area + np.float32(1e-7))


def _boxes(state: np.ndarray) -> np.ndarray:
    """Kalman means (n, 24 state rows) -> float32 xyxy, as ``STrack.xyxy``."""
    x, y, a, h = state[:, 0], state[:, 1], state[:, 2], state[:, 3]
    w = a * h
    x1 = x - w / 2
    y1 = y - h / 2
    return np.stack([x1, y1, x1 + w, y1 + h], axis=1).astype(np.float32)


def _initiate(z: np.ndarray) -> np.ndarray:
    """New Kalman states (n, 24) from xyah measurements (n, 4) float64."""
    n = len(z)
    s = np.zeros((n, 24))
    s[:, _POS] = z
    h = z[:, 3:4]
    pp = np.square((2 * STD_POS) * h) * np.ones((1, 4))
    pp[:, 2] = 1e-2 ** 2
    vv = np.square((10 * STD_VEL) * h) * np.ones((1, 4))
    vv[:, 2] = 1e-5 ** 2
    s[:, _PPP] = pp
    s[:, _PVV] = vv
    return s


def _predict(s: np.ndarray, n_tracked: int) -> np.ndarray:
    """One constant-velocity step for all rows; rows from ``n_tracked`` on are not tracked
    (lost), and their height velocity is zeroed first, as Ultralytics does."""
    s = s.copy()
    s[n_tracked:, 7] = 0.0
    h = s[:, 3:4]
    qp = np.square(STD_POS * h) * np.ones((1, 4))
    qp[:, 2] = 1e-2 ** 2
    qv = np.square(STD_VEL * h) * np.ones((1, 4))
    qv[:, 2] = 1e-5 ** 2
    ppp, ppv, pvp, pvv = s[:, _PPP], s[:, _PPV], s[:, _PVP], s[:, _PVV]
    out = np.empty_like(s)
    out[:, _POS] = s[:, _POS] + s[:, _VEL]
    out[:, _VEL] = s[:, _VEL]
    out[:, _PPP] = ((ppp + pvp) + (ppv + pvv)) + qp
    out[:, _PPV] = ppv + pvv
    out[:, _PVP] = pvp + pvv
    out[:, _PVV] = pvv + qv
    return out


def _update(s: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Kalman update of states (n, 24) with xyah measurements (n, 4) float64."""
    h = s[:, 3:4]
    r = np.square(STD_POS * h) * np.ones((1, 4))
    r[:, 2] = 1e-1 ** 2
    ppp, ppv, pvp, pvv = s[:, _PPP], s[:, _PPV], s[:, _PVP], s[:, _PVV]
    S = ppp + r
    inv = 1.0 / S
    kp, kv = ppp * inv, pvp * inv
    innov = z - s[:, _POS]
    skp, skv = S * kp, S * kv
    out = np.empty_like(s)
    out[:, _POS] = s[:, _POS] + innov * kp
    out[:, _VEL] = s[:, _VEL] + innov * kv
    out[:, _PPP] = ppp - kp * skp
    out[:, _PPV] = ppv - kp * skv
    out[:, _PVP] = pvp - kv * skp
    out[:, _PVV] = pvv - kv * skv
    return out


def _assign(cost: np.ndarray, thresh: float, lapjv) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(matched rows, their columns, unmatched columns mask) of a thresholded assignment."""
    _, x, y = lapjv(cost, extend_cost=True, cost_limit=thresh)
    rows = np.flatnonzero(x >= 0)
    return rows, x[rows], y < 0


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
    new_ok = conf >= new_track_thresh
    hi_rows, lo_rows = np.flatnonzero(high), np.flatnonzero(low)
    hi_b = np.searchsorted(hi_rows, bounds).tolist()
    lo_b = np.searchsorted(lo_rows, bounds).tolist()
    new_ok_l = new_ok.tolist()
    hi_box, hi_xyah, hi_conf = box[hi_rows], xyah[hi_rows], conf[hi_rows]
    lo_box, lo_xyah = box[lo_rows], xyah[lo_rows]
    hi_rows_l, lo_rows_l = hi_rows.tolist(), lo_rows.tolist()

    # per-track state: Kalman arrays by slot, scalars in Python lists (cheap to read one at a time)
    cap = 64
    kal = np.zeros((cap, 24))
    state: list[int] = []
    activated: list[bool] = []
    last: list[int] = []  # frame_id of the last update
    start: list[int] = []
    tid: list[int] = []
    first_row: list[int] = []
    seen: list[bool] = []
    det_row: list[int] = []
    tracked: list[int] = []  # slots, in Ultralytics' tracked_stracks order
    lost: list[int] = []  # slots, in lost_stracks order
    removed_log: deque[int] = deque()  # slots in the removed list (last REMOVED_MEMORY entries)
    removed_count: dict[int, int] = {}
    out_rows: list[int] = []
    out_ids: list[int] = []
    next_id = 1

    n_frames = len(bounds) - 1
    for k in range(n_frames):
        fid = k + 1
        h0, h1, l0, l1 = hi_b[k], hi_b[k + 1], lo_b[k], lo_b[k + 1]
        if h0 == h1 and l0 == l1 and not tracked and not lost:
            continue
        activated_new: list[int] = []  # tracks appended to the tracked list this frame
        refind: list[int] = []
        lost_new: list[int] = []
        removed_now: list[int] = []

        unconfirmed = [s for s in tracked if not activated[s]]
        pool = [s for s in tracked if activated[s]]
        n_tr = len(pool)
        pool += lost
        n_hi = h1 - h0
        u_hi = np.ones(n_hi, dtype=bool)  # high boxes not matched yet
        u_pool = list(range(len(pool)))
        if pool:
            pidx = np.array(pool)
            ps = _predict(kal[pidx], n_tr)
            kal[pidx] = ps
            if n_hi:
                pbox = _boxes(ps)
                cost = _iou_cost(pbox, hi_box[h0:h1])
                if fuse_score:
                    cost = np.float32(1) - (np.float32(1) - cost) * hi_conf[h0:h1]
                rows, cols, u_hi = _assign(cost, match_thresh, lapjv)
                if len(rows):
                    slots = pidx[rows]
                    kal[slots] = _update(ps[rows], hi_xyah[h0 + cols])
                    matched = set(rows.tolist())
                    u_pool = [i for i in u_pool if i not in matched]
                    for i, c in zip(rows.tolist(), cols.tolist()):
                        s = pool[i]
                        if state[s] == TRACKED:
                            pass  # already in the tracked list
                        else:
                            state[s] = TRACKED
                            refind.append(s)
                        activated[s] = True
                        last[s] = fid
                        det_row[s] = hi_rows_l[h0 + c]
            # second stage: tracked tracks left over against the low-score boxes
            r_tracked = [pool[i] for i in u_pool if state[pool[i]] == TRACKED]
            if r_tracked:
                left = r_tracked
                if l1 > l0:
                    ridx = np.array(r_tracked)
                    cost = _iou_cost(_boxes(kal[ridx]), lo_box[l0:l1])
                    rows, cols, _ = _assign(cost, LOW_MATCH_THRESH, lapjv)
                    if len(rows):
                        kal[ridx[rows]] = _update(kal[ridx[rows]], lo_xyah[l0 + cols])
                        for i, c in zip(rows.tolist(), cols.tolist()):
                            s = r_tracked[i]
                            last[s] = fid
                            det_row[s] = lo_rows_l[l0 + c]
                        matched = set(rows.tolist())
                        left = [s for i, s in enumerate(r_tracked) if i not in matched]
                for s in left:
                    state[s] = LOST
                    lost_new.append(s)
        # unconfirmed tracks against the high boxes left
        rest = np.flatnonzero(u_hi)  # indices into this frame's high boxes
        if unconfirmed:
            if len(rest):
                uidx = np.array(unconfirmed)
                cost = _iou_cost(_boxes(kal[uidx]), hi_box[h0 + rest])
                if fuse_score:
                    cost = np.float32(1) - (np.float32(1) - cost) * hi_conf[h0 + rest]
                rows, cols, u_rest = _assign(cost, UNCONFIRMED_MATCH_THRESH, lapjv)
                if len(rows):
                    kal[uidx[rows]] = _update(kal[uidx[rows]], hi_xyah[h0 + rest[cols]])
                    for i, c in zip(rows.tolist(), cols.tolist()):
                        s = unconfirmed[i]
                        activated[s] = True
                        last[s] = fid
                        det_row[s] = hi_rows_l[h0 + int(rest[c])]
                matched = set(rows.tolist())
                gone = [s for i, s in enumerate(unconfirmed) if i not in matched]
                rest = rest[u_rest]
            else:
                gone = unconfirmed
            for s in gone:
                state[s] = REMOVED
                removed_now.append(s)
        # new tracks from the high boxes left
        if len(rest):
            starts = [h0 + int(j) for j in rest.tolist() if new_ok_l[hi_rows_l[h0 + int(j)]]]
            if starts:
                m = len(state)
                need = m + len(starts)
                if need > cap:
                    while cap < need:
                        cap *= 2
                    grown = np.zeros((cap, 24))
                    grown[:m] = kal[:m]
                    kal = grown
                kal[m:need] = _initiate(hi_xyah[starts])
                for j in starts:
                    row = hi_rows_l[j]
                    state.append(TRACKED)
                    activated.append(fid == 1)
                    last.append(fid)
                    start.append(fid)
                    tid.append(next_id)
                    next_id += 1
                    first_row.append(-1 if fid == 1 else row)
                    seen.append(False)
                    det_row.append(row)
                    activated_new.append(len(state) - 1)
        # lost tracks past the buffer are removed (those lost this frame are not in the list yet)
        for s in lost:
            if fid - last[s] > track_buffer:
                state[s] = REMOVED
                removed_now.append(s)

        # merge the pools (Ultralytics' merge_track_pools)
        tracked = [s for s in tracked if state[s] == TRACKED]
        if activated_new or refind:
            have = set(tracked)
            for s in activated_new + refind:
                if s not in have:
                    tracked.append(s)
                    have.add(s)
        if lost or lost_new:
            in_tracked = set(tracked)
            lost = [s for s in lost if s not in in_tracked] + lost_new
            if removed_count:
                lost = [s for s in lost if s not in removed_count]
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
            tb = _boxes(kal[np.array(tracked)])
            lb = _boxes(kal[np.array(lost)])
            dp, dq = np.nonzero(_iou_cost(tb, lb) < DUPLICATE_IOU_COST)
            if len(dp):
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
                if not seen[s]:
                    seen[s] = True
                    if first_row[s] >= 0:
                        out_rows.append(first_row[s])
                        out_ids.append(tid[s])
    if out_rows:
        raw[np.array(out_rows)] = np.array(out_ids)
    return raw
