"""Offline smoothing of one person's boxes: a Rauch-Tung-Striebel Kalman smoother.

Pure function, numpy in and out. A person's boxes are the detector's, which jitter from frame
to frame (a YOLO at conf 0.1 moves a box's edges by several percent of its height), and have
gaps. :func:`smooth_boxes` runs a Kalman filter forward over every frame of the track's span
and a Rauch-Tung-Striebel pass backward, so every smoothed box uses the boxes before and after
it, and frames without a box get one from the same model (gaps filled).

Model: box centre x, centre y, width and height (pixels), each an independent
constant-velocity process driven by white acceleration; measurements are the detector's boxes.
Both noises are in box heights, so the same settings fit a person near the camera and one far
away; the height used for the scale is the track's own (measured heights, interpolated over
gaps). Low-confidence boxes count less (their measurement variance is divided by the
confidence).

Two parameters:

- ``accel_noise`` (box heights per s^2, default 1.0): how fast a box's velocity may change.
  A walking person changes speed or direction within about a second by about their height per
  second; lower smooths more (boxes lag at sudden turns), higher follows the detector closer.
- ``meas_noise`` (box heights, default 0.05): the detector's box jitter, one standard deviation
  per coordinate. 1/20 of the height is the value ByteTrack's Kalman filter uses for the same
  boxes (Ultralytics' ``KalmanFilterXYAH``).

The smoothed boxes depend on the two (almost) only through their ratio (scaling both by one
factor scales every variance but the diffuse start alike), so in practice there is one knob,
``accel_noise / meas_noise``: keep ``meas_noise`` at ByteTrack's value and tune ``accel_noise``
if at all. The defaults were
set before measuring; on MOT15's public detections they give (persons, raw -> smoothed):
TUD-Stadtmitte MOTA 72.7 -> 75.8, IDF1 80.8 -> 82.7; TUD-Campus MOTA 78.0 -> 84.7,
IDF1 84.9 -> 87.7 (not tuned on them; those sequences were used to tune ``group``).
"""

from __future__ import annotations

import numpy as np

ACCEL_NOISE = 1.0
"""White acceleration of the box coordinates, box heights per s^2 (see the module docstring)."""
MEAS_NOISE = 0.05
"""Detector box jitter, box heights per coordinate (ByteTrack's Kalman filter uses 1/20)."""
MIN_CONF = 0.05
"""Confidences are clipped up to this before weighting, so a 0-confidence box still counts a little."""


def smooth_boxes(
    frames: np.ndarray,
    xyxy: np.ndarray,
    conf: np.ndarray | None = None,
    *,
    fps: float,
    accel_noise: float = ACCEL_NOISE,
    meas_noise: float = MEAS_NOISE,
    fill: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Smooth one track's boxes over time; return ``(frames, xyxy)``.

    Args:
        frames: (N,) frame of each box, all different, in any order.
        xyxy: (N, 4) boxes in pixels.
        conf: (N,) detection confidences, or None (all boxes weigh the same).
        fps: frames per second of the video (the noises are per second).
        accel_noise: white acceleration, box heights per s^2.
        meas_noise: box jitter, box heights.
        fill: False: the smoothed boxes of the given frames, in the given order. True: one box
            for every frame from the first to the last, in frame order (gaps filled).

    Returns:
        (frames int64 (M,), xyxy float32 (M, 4)).

    Example:
        >>> f, b = smooth_boxes(np.array([0, 1, 3]), np.array([[0, 0, 10, 20]] * 3, float), fps=25, fill=True)
        >>> f.tolist(), b.shape
        ([0, 1, 2, 3], (4, 4))
    """
    frames = np.asarray(frames, dtype=np.int64).reshape(-1)
    n = len(frames)
    _, span, out = smooth_tracks(np.zeros(n, np.int64), frames, xyxy, conf, fps=fps,
                                 accel_noise=accel_noise, meas_noise=meas_noise)
    if fill or n == 0:
        return span, out
    res = out[frames - span[0]]
    return frames.copy(), res


def smooth_tracks(
    track: np.ndarray,
    frames: np.ndarray,
    xyxy: np.ndarray,
    conf: np.ndarray | None = None,
    *,
    fps: float,
    accel_noise: float = ACCEL_NOISE,
    meas_noise: float = MEAS_NOISE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`smooth_boxes` for many tracks at once, gaps filled.

    Args:
        track: (N,) track id of each box; within a track the frames are all different.
        frames, xyxy, conf, fps, accel_noise, meas_noise: as for :func:`smooth_boxes`.

    Returns:
        ``(track, frames, xyxy)``: one row for every frame from each track's first box to its
        last, ordered by track, then frame (int64, int64, float32 (M, 4)).

    The recursion of each track is the same as one :func:`smooth_boxes` call; the tracks run
    in lockstep (step ``t`` advances every track at least ``t + 1`` frames long with one set of
    array operations), so a video's thousands of persons cost about as many Python steps as
    its longest person has frames.
    """
    track = np.asarray(track, dtype=np.int64).reshape(-1)
    frames = np.asarray(frames, dtype=np.int64).reshape(-1)
    n = len(frames)
    if len(track) != n:
        raise ValueError("track and frames must have the same length")
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(n, 4)
    if not fps or fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if accel_noise <= 0 or meas_noise <= 0:
        raise ValueError("accel_noise and meas_noise must be positive")
    if n == 0:
        return track.copy(), frames.copy(), np.zeros((0, 4), np.float32)
    order = np.lexsort((frames, track))
    tr, f, b = track[order], frames[order], xyxy[order]
    if ((np.diff(f) == 0) & (np.diff(tr) == 0)).any():
        raise ValueError("smooth_boxes takes one box per frame; frames repeat")
    c = np.ones(n) if conf is None else np.asarray(conf, dtype=np.float64).reshape(n)[order]
    ids, start = np.unique(tr, return_index=True)
    end = np.append(start[1:], n)
    piece_rows, piece_core, piece_track = _pieces(f, start, end)
    out_t, out_f, out_b = [], [], []
    for batch in _batches(piece_rows, f):
        rows = np.concatenate([piece_rows[i] for i in batch])
        pid = np.repeat(np.asarray(batch), [len(piece_rows[i]) for i in batch])
        pt, pf, pb = _lockstep(pid, f[rows], b[rows], c[rows], fps=fps,
                               accel_noise=accel_noise, meas_noise=meas_noise)
        core = piece_core[pt]
        keep = (pf >= core[:, 0]) & (pf <= core[:, 1])
        out_t.append(ids[piece_track[pt[keep]]])
        out_f.append(pf[keep])
        out_b.append(pb[keep])
    return np.concatenate(out_t), np.concatenate(out_f), np.concatenate(out_b)


SEGMENT = 2048
"""Frames of a long track smoothed as one piece (its core): the recursion steps one frame at a
time for every track at once, so one 54,000-frame person made 54,000 Python steps (10 s of
``group`` in ``bench/person_stages.py``, now 2-3 s); cut into pieces, they run side by side."""
MARGIN = 512
"""Frames of context smoothed on each side of a piece's core and then dropped (and at least
``MARGIN_BOXES`` boxes): a box's influence on its neighbours falls by e for every ~10-20 boxes
(accel_noise / meas_noise at the defaults), so the cores come out as from one pass over the
whole track: within 0.002 pixel on the 30-minute project of ``bench/person_stages.py`` (0.012
with 1,024 / 256), within 1e-3 in ``tests/test_smooth.py``."""
MARGIN_BOXES = 64
BATCH_FRAMES = 1 << 18
"""Timeline frames smoothed together: bounds the memory (about 350 bytes a frame)."""


def _pieces(f: np.ndarray, start: np.ndarray, end: np.ndarray):
    """Cut each track (rows ``start[i]:end[i]`` of frame-sorted ``f``) into pieces: (row
    indices of each piece, its core frames (first, last) (P, 2), its track index (P,)).
    A piece starts and ends on a box; its core is the part whose smoothed boxes are kept."""
    rows, core, owner = [], [], []
    for ti, (s, e) in enumerate(zip(start.tolist(), end.tolist())):
        ff = f[s:e]
        lo, hi = int(ff[0]), int(ff[-1])
        if hi - lo + 1 <= SEGMENT + 2 * MARGIN:
            rows.append(np.arange(s, e))
            core.append((lo, hi))
            owner.append(ti)
            continue
        for c0 in range(lo, hi + 1, SEGMENT):
            c1 = min(c0 + SEGMENT - 1, hi)  # last core frame
            k0 = int(np.searchsorted(ff, c0))  # first box in the core or after it
            i0 = min(int(np.searchsorted(ff, c0 - MARGIN)), k0 - MARGIN_BOXES,
                     int(np.searchsorted(ff, c0, side="right")) - 1)  # a box at or before c0
            k1 = int(np.searchsorted(ff, c1, side="right"))  # one past the core's boxes
            i1 = max(int(np.searchsorted(ff, c1 + MARGIN, side="right")), k1 + MARGIN_BOXES,
                     int(np.searchsorted(ff, c1)) + 1)  # a box at or after c1
            rows.append(np.arange(s + max(i0, 0), s + min(i1, e - s)))
            core.append((c0, c1))
            owner.append(ti)
    return rows, np.asarray(core, np.int64).reshape(-1, 2), np.asarray(owner, np.int64)


def _batches(piece_rows: list, f: np.ndarray) -> list[list[int]]:
    """Consecutive pieces grouped so that each group spans at most ``BATCH_FRAMES`` frames."""
    out, cur, size = [], [], 0
    for i, r in enumerate(piece_rows):
        span = int(f[r[-1]] - f[r[0]] + 1)
        if cur and size + span > BATCH_FRAMES:
            out.append(cur)
            cur, size = [], 0
        cur.append(i)
        size += span
    if cur:
        out.append(cur)
    return out


def _lockstep(tr: np.ndarray, f: np.ndarray, b: np.ndarray, c: np.ndarray, *, fps: float,
              accel_noise: float, meas_noise: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The smoother over rows sorted by (track, frame), every track in one pass: returns one
    row per frame of each track's span, ordered by track then frame."""
    n = len(f)
    # measurements: centre x, centre y, width, height
    z = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)

    # one timeline holding every track's span back to back
    ids, start = np.unique(tr, return_index=True)
    end = np.append(start[1:], n)
    first, last = f[start], f[end - 1]
    length = last - first + 1
    offset = np.concatenate([[0], np.cumsum(length)[:-1]])
    which = np.repeat(np.arange(len(ids)), end - start)  # track index of each box
    at = offset[which] + (f - first[which])  # timeline position of each box
    total = int(length.sum())
    # box height per frame for the noises: each span lies between boxes of its own track
    scale = np.interp(np.arange(total), at, np.maximum(z[:, 3], 1e-6))
    dt = 1.0 / float(fps)
    zz = np.zeros((total, 4))
    zz[at] = z
    r = np.full(total, np.inf)  # no box: infinite variance, so the update changes nothing
    r[at] = (meas_noise * scale[at]) ** 2 / np.clip(c, MIN_CONF, 1.0)
    qa = (accel_noise * scale) ** 2  # acceleration variance per frame, pixels^2 / s^4
    q11, q12, q22 = qa * dt**4 / 4, qa * dt**3 / 2, qa * dt**2

    # Tracks longest first, so the ones still running at step t are a prefix.
    by_len = np.argsort(-length, kind="stable")
    offs, lens = offset[by_len], length[by_len]
    running = np.searchsorted(-lens, -np.arange(int(lens[0]) + 1), side="left")  # lens > t

    # Forward Kalman filter, four coordinates (centre x, y, width, height) per track: mean
    # (pos, vel) per coordinate; the covariance (p11, p12, p22) is the same for all four (the
    # noises are), so it is one value per track. Kept per timeline frame after the update
    # (filtered) and before it (predicted).
    xs = np.zeros((total, 2, 4))
    xp = np.zeros((total, 2, 4))
    ps = np.zeros((total, 3))
    pp = np.zeros((total, 3))
    idx = offs
    pos, vel = zz[idx].copy(), np.zeros((len(idx), 4))
    p11 = r[idx].copy()
    p12 = np.zeros(len(idx))
    p22 = (scale[idx] / dt) ** 2  # diffuse start: speed unknown, up to a height a frame
    for t in range(int(lens[0])):
        k = running[t]
        idx = offs[:k] + t
        if t > 0:  # predict: constant velocity over dt
            pos, vel, p11, p12, p22 = pos[:k], vel[:k], p11[:k], p12[:k], p22[:k]
            pos = pos + dt * vel
            p11, p12, p22 = (p11 + 2 * dt * p12 + dt * dt * p22 + q11[idx],
                             p12 + dt * p22 + q12[idx], p22 + q22[idx])
        xp[idx, 0], xp[idx, 1] = pos, vel
        pp[idx, 0], pp[idx, 1], pp[idx, 2] = p11, p12, p22
        s = p11 + r[idx]  # update with the box (gain 0 where there is none)
        k1, k2 = p11 / s, p12 / s
        innov = np.where(np.isfinite(r[idx])[:, None], zz[idx] - pos, 0.0)
        pos = pos + k1[:, None] * innov
        vel = vel + k2[:, None] * innov
        p11, p12, p22 = (1 - k1) * p11, (1 - k1) * p12, p22 - k2 * p12
        xs[idx, 0], xs[idx, 1] = pos, vel
        ps[idx, 0], ps[idx, 1], ps[idx, 2] = p11, p12, p22

    # Backward Rauch-Tung-Striebel pass: x_t += C (x_{t+1}^s - x_{t+1|t}), C = P_t F' P_{t+1|t}^-1
    sm = xs.copy()
    for t in range(int(lens[0]) - 2, -1, -1):
        idx = offs[:running[t + 1]] + t  # tracks that have a frame t + 1
        a11, a12, a22 = ps[idx, 0], ps[idx, 1], ps[idx, 2]
        # P_t F' for F = [[1, dt], [0, 1]]
        m11, m12 = a11 + dt * a12, a12
        m21, m22 = a12 + dt * a22, a22
        b11, b12, b22 = pp[idx + 1, 0], pp[idx + 1, 1], pp[idx + 1, 2]
        det = b11 * b22 - b12 * b12
        i11, i12, i22 = b22 / det, -b12 / det, b11 / det
        c11, c12 = (m11 * i11 + m12 * i12)[:, None], (m11 * i12 + m12 * i22)[:, None]
        c21, c22 = (m21 * i11 + m22 * i12)[:, None], (m21 * i12 + m22 * i22)[:, None]
        d1 = sm[idx + 1, 0] - xp[idx + 1, 0]
        d2 = sm[idx + 1, 1] - xp[idx + 1, 1]
        sm[idx, 0] = xs[idx, 0] + c11 * d1 + c12 * d2
        sm[idx, 1] = xs[idx, 1] + c21 * d1 + c22 * d2

    cx, cy, w, h = sm[:, 0, 0], sm[:, 0, 1], np.maximum(sm[:, 0, 2], 0), np.maximum(sm[:, 0, 3], 0)
    out = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1).astype(np.float32)
    out_track = np.repeat(ids, length)
    out_frames = np.concatenate([np.arange(a, b + 1) for a, b in zip(first, last)])
    return out_track, out_frames, out
