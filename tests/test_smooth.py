"""ptrack.persons.smooth: the RTS smoother keeps straight tracks, removes jitter, fills gaps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptrack.persons.smooth import smooth_boxes


def _track(n, *, x0=100.0, y0=80.0, vx=2.0, vy=0.5, h=120.0, w=50.0, ax=0.0, growth=0.0):
    """True boxes of a walker: centre moving at (vx, vy) px/frame (+ ax px/frame^2), height growing."""
    t = np.arange(n, dtype=np.float64)
    cx = x0 + vx * t + 0.5 * ax * t**2
    cy = y0 + vy * t
    hh = h + growth * t
    ww = w * hh / h
    return np.stack([cx - ww / 2, cy - hh / 2, cx + ww / 2, cy + hh / 2], 1)


def _rms(a, b):
    return float(np.sqrt(np.mean((np.asarray(a, np.float64) - b) ** 2)))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(3, 150), vx=st.floats(-8, 8), vy=st.floats(-3, 3), h=st.floats(30, 400),
       growth=st.floats(-0.2, 0.2), fps=st.sampled_from([10.0, 25.0, 30.0]))
def test_constant_velocity_track_comes_out_unchanged(n, vx, vy, h, growth, fps):
    truth = _track(n, vx=vx, vy=vy, h=h, growth=growth)
    frames, out = smooth_boxes(np.arange(n), truth, fps=fps)
    assert frames.tolist() == list(range(n))
    # float32 output; the start prior (velocity unknown) costs at most a small fraction of a pixel
    assert np.abs(out - truth).max() <= 1e-3 * h + 1e-2


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(20, 200), ax=st.sampled_from([0.0, 0.02, 0.05]),
       noise=st.floats(0.02, 0.08))
def test_noise_goes_down(seed, n, ax, noise):
    """Noisy boxes (jitter ``noise`` box heights) of a constant-velocity or accelerating walker:
    the smoothed boxes are closer to the truth than the raw ones."""
    rng = np.random.default_rng(seed)
    truth = _track(n, vx=3.0, ax=ax, h=150.0, growth=0.1)
    h = truth[:, 3] - truth[:, 1]
    raw = truth + rng.normal(0, 1, truth.shape) * noise * h[:, None]
    _, out = smooth_boxes(np.arange(n), raw, fps=25.0)
    assert _rms(out, truth) < 0.8 * _rms(raw, truth)


def test_gaps_are_filled_and_order_kept():
    truth = _track(30)
    keep = np.r_[0:10, 18:30]
    frames = keep[::-1].copy()  # any order in, same order out
    f, out = smooth_boxes(frames, truth[frames], fps=25.0)
    assert f.tolist() == frames.tolist() and out.shape == (len(frames), 4)
    assert np.abs(out - truth[frames]).max() < 0.5
    f, full = smooth_boxes(frames, truth[frames], fps=25.0, fill=True)
    assert f.tolist() == list(range(30)) and full.dtype == np.float32
    assert np.abs(full[10:18] - truth[10:18]).max() < 1.0  # straight walk: the gap is bridged on the line


@pytest.mark.parametrize("n", [1, 2])
def test_one_or_two_boxes_give_finite_boxes(n):
    boxes = np.array([[10, 20, 60, 140], [14, 21, 64, 143]], float)[:n]
    f, out = smooth_boxes(np.array([5, 9])[:n], boxes, np.array([0.9, 0.2])[:n], fps=30.0, fill=True)
    assert np.isfinite(out).all()
    assert len(f) == (1 if n == 1 else 5)
    if n == 1:
        assert np.allclose(out[0], boxes[0])


def test_low_confidence_boxes_count_less():
    truth = _track(40, vx=0.0)
    raw = truth.copy()
    raw[20] += [30, 0, 30, 0]  # one box 30 px off
    conf = np.full(40, 0.9)
    _, trusting = smooth_boxes(np.arange(40), raw, conf, fps=25.0)
    conf[20] = 0.05
    _, doubting = smooth_boxes(np.arange(40), raw, conf, fps=25.0)
    assert abs(doubting[20, 0] - truth[20, 0]) < abs(trusting[20, 0] - truth[20, 0]) / 3


def test_empty_and_bad_input():
    f, out = smooth_boxes(np.zeros(0), np.zeros((0, 4)), fps=25.0)
    assert f.shape == (0,) and out.shape == (0, 4)
    with pytest.raises(ValueError, match="frames repeat"):
        smooth_boxes(np.array([1, 1]), np.zeros((2, 4)), fps=25.0)
    with pytest.raises(ValueError, match="fps"):
        smooth_boxes(np.array([1]), np.zeros((1, 4)), fps=0)
    boxes = np.array([[1, 2, 3, 4]], float)
    smooth_boxes(np.array([0]), boxes, fps=25.0)
    assert boxes.tolist() == [[1, 2, 3, 4]]  # input untouched


def test_many_tracks_at_once_equal_one_at_a_time():
    from ptrack.persons.smooth import smooth_tracks

    rng = np.random.default_rng(3)
    tracks, frames, boxes, confs = [], [], [], []
    for k in range(25):
        n = int(rng.integers(1, 60))
        f = np.sort(rng.choice(250, n, replace=False))
        xy, wh = rng.uniform(0, 300, (n, 2)), rng.uniform(10, 100, (n, 2))
        tracks += [k * 3 - 5] * n
        frames += f.tolist()
        boxes.append(np.c_[xy, xy + wh])
        confs += rng.uniform(0, 1, n).tolist()
    tracks, frames, confs = np.array(tracks), np.array(frames), np.array(confs)
    boxes = np.concatenate(boxes)
    shuffle = rng.permutation(len(frames))
    t, f, b = smooth_tracks(tracks[shuffle], frames[shuffle], boxes[shuffle], confs[shuffle], fps=10)
    assert (np.diff(t) >= 0).all()
    for k in np.unique(tracks):
        m = tracks == k
        f1, b1 = smooth_boxes(frames[m], boxes[m], confs[m], fps=10, fill=True)
        assert f[t == k].tolist() == f1.tolist()
        np.testing.assert_allclose(b[t == k], b1, atol=1e-4)
    with pytest.raises(ValueError):
        smooth_tracks(np.array([1, 1]), np.array([4, 4]), np.zeros((2, 4)), fps=10)


def test_long_tracks_cut_into_pieces_match_one_pass():
    """Tracks longer than a piece are smoothed in overlapping pieces side by side; their boxes
    match one pass over the whole track (the exact recursion) to 1e-3 pixel, gaps included."""
    from ptrack.persons import smooth
    rng = np.random.default_rng(3)
    tracks, frames, boxes, confs = [], [], [], []
    for t, (first, n) in enumerate([(0, 6000), (500, 300), (40, 3100)]):
        f = first + np.arange(n)
        keep = rng.random(n) > 0.3  # 30% of frames without a box
        keep[[0, -1]] = True
        if n > 3000:
            keep[1500:1900] = False  # a long gap across a piece boundary
        f = f[keep]
        cx = 300 + 80 * np.sin(f / 90.0) + rng.normal(0, 3, len(f))
        h = 120 + 30 * np.cos(f / 200.0) + rng.normal(0, 3, len(f))
        boxes.append(np.stack([cx - h / 4, 100 - h / 2, cx + h / 4, 100 + h / 2], 1))
        tracks.append(np.full(len(f), t))
        frames.append(f)
        confs.append(rng.uniform(0.1, 1.0, len(f)))
    tr, f, b, c = (np.concatenate(x) for x in (tracks, frames, boxes, confs))
    order = np.lexsort((f, tr))
    exact = smooth._lockstep(tr[order], f[order], b[order], c[order], fps=25.0,
                             accel_noise=1.0, meas_noise=0.05)
    shuffled = rng.permutation(len(f))
    cut = smooth.smooth_tracks(tr[shuffled], f[shuffled], b[shuffled], c[shuffled], fps=25.0)
    assert len(smooth._pieces(f[order], *_bounds(tr[order]))[0]) > 5  # really cut
    for a, e in zip(cut[:2], exact[:2]):
        assert np.array_equal(a, e)
    assert np.abs(cut[2] - exact[2]).max() < 1e-3


def _bounds(tr):
    _, start = np.unique(tr, return_index=True)
    return start, np.append(start[1:], len(tr))
