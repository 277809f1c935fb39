"""ptrack.persons.bytetrack against Ultralytics' BYTETracker: the same tracks on real and random scenes.

Ultralytics is the reference here, and only here: ``_reference`` feeds its ``BYTETracker`` frame
by frame and reads its internals (``tracked_stracks``, ``is_activated``, ``idx``, ``frame_id``,
result column 7) to map tracks back to rows, as ptrack's tracker did before it had its own.
``test_ultralytics_internals_still_there`` fails loudly when those internals change.
"""

from __future__ import annotations

import configparser
import os
from types import SimpleNamespace

import numpy as np
import pytest

from ptrack.persons.bytetrack import _assign, _limit, _predict, _update, bytetrack, det_geometry
from ptrack.settings import load_config
from ptrack.persons.track import confidence_scale, track_detections

from .conftest import MOT15, shared_file

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "false")

ULTRALYTICS_DEFAULTS = dict(track_high_thresh=0.25, track_low_thresh=0.1, new_track_thresh=0.25,
                            track_buffer=30, match_thresh=0.8, fuse_score=True)


class _Dets:
    """The Results-like object ``BYTETracker.update`` reads (conf, xyxy, xywh, cls, indexing)."""

    def __init__(self, conf, xyxy, xywh, cls):
        self.conf, self.xyxy, self.xywh, self.cls = conf, xyxy, xywh, cls

    def __len__(self):
        return len(self.conf)

    def __getitem__(self, m):
        return _Dets(self.conf[m], self.xyxy[m], self.xywh[m], self.cls[m])


def _reference(bounds, xyxy, conf, **p) -> np.ndarray:
    """Ultralytics' BYTETracker over the same frames: raw track id per row (first boxes included)."""
    from ultralytics.trackers.byte_tracker import BYTETracker

    args = SimpleNamespace(tracker_type="bytetrack", **p)
    tracker = BYTETracker(args)
    tracker.max_frames_lost = p["track_buffer"]
    xyxy = np.asarray(xyxy, np.float32)
    conf = np.asarray(conf, np.float32)
    xywh = np.empty_like(xyxy)
    xywh[:, :2] = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    xywh[:, 2:] = xyxy[:, 2:] - xyxy[:, :2]
    dets = _Dets(conf, xyxy, xywh, np.zeros(len(conf), np.float32))
    raw = np.full(len(conf), -1, np.int64)
    pending, seen = {}, set()
    for k in range(len(bounds) - 1):
        a, b = int(bounds[k]), int(bounds[k + 1])
        if a == b and not tracker.tracked_stracks and not tracker.lost_stracks:
            tracker.frame_id += 1
            continue
        res = tracker.update(dets[a:b])
        if len(res):
            tids = res[:, 4].astype(np.int64)
            raw[a + res[:, 7].astype(np.int64)] = tids
            for t in tids.tolist():
                if t not in seen:
                    seen.add(t)
                    r = pending.pop(t, None)
                    if r is not None and raw[r] < 0:
                        raw[r] = t
        for st in tracker.tracked_stracks:
            if not st.is_activated and st.frame_id == tracker.frame_id:
                pending[int(st.track_id)] = a + int(st.idx)
    return raw


def _canonical(raw: np.ndarray) -> np.ndarray:
    """Ids renumbered 1..K by first row, so two trackers' partitions compare with ``==``."""
    out = raw.copy()
    valid = raw >= 0
    if valid.any():
        uniq, first = np.unique(raw[valid], return_index=True)
        rank = np.empty(len(uniq), np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(1, len(uniq) + 1)
        out[valid] = rank[np.searchsorted(uniq, raw[valid])]
    return out


def _frames(frame: np.ndarray, xyxy: np.ndarray, conf: np.ndarray):
    """Rows sorted as track.py feeds them, and the per-frame bounds."""
    n = len(frame)
    order = np.lexsort((np.arange(n), -conf, xyxy[:, 3], xyxy[:, 2], xyxy[:, 1], xyxy[:, 0], frame))
    f = frame[order]
    return np.searchsorted(f, np.arange(f[0], f[-1] + 2)), xyxy[order], conf[order]


def _agree(frame, xyxy, conf, **p) -> float:
    bounds, x, c = _frames(np.asarray(frame), np.asarray(xyxy, np.float32), np.asarray(conf, np.float32))
    ours = _canonical(bytetrack(bounds, x, c, **p))
    ref = _canonical(_reference(bounds, x, c, **p))
    return float(np.mean(ours == ref))


def _ptrack_params(conf: np.ndarray, fps: float) -> dict:
    cfg = load_config()["track"]
    scale = confidence_scale(conf, cfg["conf_reference_q"])
    return dict(track_high_thresh=cfg["track_high_thresh"] * scale,
                track_low_thresh=cfg["track_low_thresh"] * scale,
                new_track_thresh=cfg["new_track_thresh"] * scale,
                track_buffer=max(1, round(cfg["track_buffer_s"] * fps)),
                match_thresh=cfg["match_thresh"], fuse_score=cfg["fuse_score"])


def test_ultralytics_internals_still_there():
    """The reference reads BYTETracker internals: fail loudly (not skip) if they change."""
    from ultralytics.trackers.byte_tracker import BYTETracker, STrack

    tracker = BYTETracker(SimpleNamespace(tracker_type="bytetrack", **ULTRALYTICS_DEFAULTS))
    for name in ("tracked_stracks", "lost_stracks", "frame_id", "max_frames_lost"):
        assert hasattr(tracker, name), f"Ultralytics BYTETracker has no '{name}' any more"
    xyxy = np.array([[10, 10, 50, 90]], np.float32)
    dets = _Dets(np.array([0.9], np.float32), xyxy, np.array([[30, 50, 40, 80]], np.float32),
                 np.zeros(1, np.float32))
    res = tracker.update(dets)  # frame 1: activated at once
    assert res.shape == (1, 8), "BYTETracker.update no longer returns [x1,y1,x2,y2,id,score,cls,idx]"
    assert res[0, 4] == 1 and res[0, 7] == 0
    st = tracker.tracked_stracks[0]
    assert isinstance(st, STrack) and st.is_activated and int(st.idx) == 0 and st.frame_id == 1


@pytest.mark.parametrize("seq", ["TUD-Stadtmitte", "TUD-Campus", "KITTI-17", "ETH-Sunnyday",
                                 "ADL-Rundle-6"])
@pytest.mark.parametrize("settings", ["ptrack", "ultralytics"])
def test_same_tracks_as_ultralytics_on_mot15(seq, settings):
    from ptrack.formats.mot import read_mot

    det = read_mot(shared_file("mot15", seq, "det.txt"), kind="det")
    ini = configparser.ConfigParser()
    ini.read(MOT15 / seq / "seqinfo.ini")
    fps = float(ini["Sequence"]["frameRate"])
    p = _ptrack_params(det.conf, fps) if settings == "ptrack" else ULTRALYTICS_DEFAULTS
    assert _agree(det.frame, det.xyxy, det.conf, **p) == 1.0


@pytest.fixture(scope="module")
def clip_detections(person_model):
    """The test model's boxes on the bundled clip (both classes, conf 0.1, as `ptrack detect
    --classes all` stores them)."""
    from pathlib import Path

    from ptrack.detect.detector import quiet_ultralytics

    quiet_ultralytics()
    from ultralytics import YOLO

    clip = Path(__file__).parent / "data" / "walking-pair.mp4"
    frame, xyxy, conf = [], [], []
    for k, r in enumerate(YOLO(str(person_model)).predict(str(clip), conf=0.1, stream=True, verbose=False,
                                                          device="cpu")):
        b = r.boxes.cpu().numpy()
        frame += [k] * len(b)
        xyxy.append(b.xyxy)
        conf.append(b.conf)
    return np.array(frame), np.concatenate(xyxy).astype(np.float32), np.concatenate(conf).astype(np.float32)


def test_same_tracks_as_ultralytics_on_the_test_models_boxes(clip_detections):
    frame, xyxy, conf = clip_detections
    assert len(frame) > 30  # two people over 35 frames
    for p in (_ptrack_params(conf, 12.0), ULTRALYTICS_DEFAULTS):
        assert _agree(frame, xyxy, conf, **p) == 1.0


def _scene(seed: int):
    """A crowded random scene: walkers, gaps, near-duplicate and exactly duplicated boxes,
    integer coordinates (IoU costs exactly at a threshold), scores spread over all stages."""
    rng = np.random.default_rng(seed)
    people, n_frames = int(rng.integers(1, 12)), int(rng.integers(2, 60))
    x0, y0 = rng.uniform(0, 400, people), rng.uniform(0, 200, people)
    vx, vy = rng.normal(0, 4, people), rng.normal(0, 2, people)
    w = rng.uniform(20, 80, people)
    h = w * rng.uniform(1.5, 3, people)
    f = np.repeat(np.arange(n_frames), people)
    k = np.tile(np.arange(people), n_frames)
    jit = rng.uniform(0, 6)
    x = x0[k] + vx[k] * f + rng.normal(0, jit, len(f))
    y = y0[k] + vy[k] * f + rng.normal(0, jit, len(f))
    xyxy = np.c_[x, y, x + w[k], y + h[k]]
    if rng.random() < 0.5:
        xyxy = np.round(xyxy / 4) * 4  # coarse integer boxes: equal costs happen
    keep = rng.random(len(f)) < rng.uniform(0.5, 1.0)
    f, xyxy = f[keep], xyxy[keep]
    dup = rng.random(len(f)) < 0.15
    same = rng.random(int(dup.sum())) < 0.5  # half of them exact copies
    f = np.r_[f, f[dup]]
    xyxy = np.r_[xyxy, xyxy[dup] + (~same[:, None]) * rng.normal(0, 3, (int(dup.sum()), 4))]
    conf = np.round(rng.uniform(0.05, 1.0, len(f)), 1)  # coarse scores: ties
    p = dict(ULTRALYTICS_DEFAULTS, track_high_thresh=float(rng.uniform(0.2, 0.8)),
             new_track_thresh=float(rng.uniform(0.2, 0.9)), track_buffer=int(rng.integers(1, 40)),
             match_thresh=float(rng.choice([0.5, 0.7, 0.8, 0.9])), fuse_score=bool(rng.random() < 0.5))
    return f, xyxy.astype(np.float32), conf.astype(np.float32), p


def test_same_tracks_as_ultralytics_on_random_crowded_scenes():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=60, deadline=None)
    @given(st.integers(0, 2**31 - 1))
    def check(seed):
        f, xyxy, conf, p = _scene(seed)
        assert _agree(f, xyxy, conf, **p) == 1.0

    check()


def test_kalman_steps_match_ultralytics_bit_for_bit():
    from ultralytics.trackers.utils.kalman_filter import KalmanFilterXYAH

    from ptrack.persons.bytetrack import _initiate

    kf = KalmanFilterXYAH()
    rng = np.random.default_rng(1)
    z0 = rng.uniform([0, 0, 0.2, 20], [900, 500, 0.8, 300], (6, 4)).astype(np.float32).astype(np.float64)
    ours = _initiate(z0.T)
    ref = [kf.initiate(z) for z in z0]
    for step in range(8):
        tracked = 4  # the last two tracks are lost: their height velocity is zeroed
        ours = _predict(ours, tracked)
        means = np.array([m for m, _ in ref])
        means[tracked:, 7] = 0
        pm, pc = kf.multi_predict(means, np.array([c for _, c in ref]))
        ref = list(zip(pm, pc))
        z = (z0 + rng.normal(0, 3, z0.shape) * [1, 1, 0.01, 1]).astype(np.float32).astype(np.float64)
        ours = _update(ours, z.T)
        ref = [kf.update(m, c, zz) for (m, c), zz in zip(ref, z)]
        for i, (m, c) in enumerate(ref):
            assert np.array_equal(ours[:8, i], m)
            blocks = [np.diag(c[:4, :4]), np.diag(c[4:, :4]), np.diag(c[:4, 4:]), np.diag(c[4:, 4:])]
            assert np.array_equal(ours[8:, i], np.concatenate(blocks))
            off = c.copy()
            for d in range(4):
                off[[d, d, d + 4, d + 4], [d, d + 4, d, d + 4]] = 0
            assert not off.any()  # the 8x8 covariance really is four 2x2 blocks per coordinate


@pytest.mark.parametrize("thresh", [0.5, 0.7, 0.8])
def test_assignment_shortcuts_agree_with_lapjv(thresh):
    from lap import lapjv

    lim, exact = _limit(thresh)
    rng = np.random.default_rng(2)
    for _ in range(400):
        n, m = rng.integers(1, 7, 2)
        cost = rng.choice([0.1, 0.3, 0.5, 0.7, 0.75, 0.8, 0.95, 1.0], (n, m)).astype(np.float32)
        if rng.random() < 0.5:
            cost = rng.uniform(0, 1, (n, m)).astype(np.float32)
        rows, cols, free = _assign(cost, thresh, lim, exact, lapjv)
        _, x, y = lapjv(cost, extend_cost=True, cost_limit=thresh)
        assert rows == np.flatnonzero(x >= 0).tolist()
        assert cols == x[x >= 0].tolist()
        assert free == np.flatnonzero(y < 0).tolist()


def test_degenerate_boxes_are_ignored_and_empty_frames_age_tracks():
    box, xyah, valid = det_geometry(np.array([[0, 0, 10, 20], [5, 5, 5, 30], [0, 0, 10, 0]], np.float32))
    assert valid.tolist() == [True, False, False]
    assert xyah[0].tolist() == [5.0, 10.0, 0.5, 20.0]
    # one box per frame for 3 frames, 4 empty frames, then the box again: re-found within a
    # 5-frame buffer, a new track with a 2-frame buffer
    bounds = np.array([0, 1, 2, 3, 3, 3, 3, 3, 4])
    xyxy = np.tile(np.float32([[10, 10, 50, 110]]), (4, 1))
    conf = np.full(4, 0.9, np.float32)
    kw = dict(ULTRALYTICS_DEFAULTS)
    assert bytetrack(bounds, xyxy, conf, **{**kw, "track_buffer": 5}).tolist() == [1, 1, 1, 1]
    assert bytetrack(bounds, xyxy, conf, **{**kw, "track_buffer": 2}).tolist() == [1, 1, 1, -1]
    assert bytetrack(np.array([0]), np.zeros((0, 4)), np.zeros(0), **kw).shape == (0,)


def test_track_detections_is_the_same_as_tracking_with_ultralytics():
    """The whole of track_detections (settings, scaling, cuts, numbering) on a real sequence,
    forward only (the bidirectional layer is tested in test_track_bidirectional.py)."""
    from ptrack.formats.mot import read_mot

    det = read_mot(shared_file("mot15", "TUD-Stadtmitte", "det.txt"), kind="det")
    cfg = load_config()["track"]
    ids = track_detections(det.frame, det.xyxy, det.conf, fps=25.0,
                           settings=SimpleNamespace(**{**cfg, "split_gap_s": 0.0,
                                                           "bidirectional": False,
                                                           "height_boost_max": 1.0, "rescue": 0.0}))
    bounds, x, c = _frames(det.frame, det.xyxy, det.conf)
    n = len(det.frame)
    order = np.lexsort((np.arange(n), -det.conf, det.xyxy[:, 3], det.xyxy[:, 2], det.xyxy[:, 1],
                        det.xyxy[:, 0], det.frame))
    ref = np.full(n, -1)
    ref[order] = _canonical(_reference(bounds, x, c, **_ptrack_params(det.conf, 25.0)))
    assert np.array_equal(ids, ref)
    assert len(np.unique(ids[ids >= 0])) > 10
