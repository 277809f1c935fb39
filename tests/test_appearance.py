"""ptrack.persons.appearance: colour descriptors, their distance and the choice of samples."""

from __future__ import annotations

import numpy as np
import pytest

from ptrack.persons.appearance import DIM, appearance_distance, crop_descriptor, pick_descriptor_samples
from ptrack.persons.sampling import covered_share, pick_spread
from ptrack.errors import PtrackError

RED, BLUE, GREEN, GREY = (30, 30, 200), (200, 60, 30), (40, 180, 40), (128, 128, 128)


def person(top, bottom, background=GREY, h=128, w=64, noise=0, seed=0):
    """A BGR crop: background border, a 'shirt' colour above and 'trousers' below."""
    img = np.empty((h, w, 3), np.uint8)
    img[:] = background
    x0, x1 = int(w * 0.15), int(w * 0.85)  # a person fills most of a detection box
    img[h // 20 : h // 2, x0:x1] = top
    img[h // 2 : h - h // 20, x0:x1] = bottom
    if noise:
        rng = np.random.default_rng(seed)
        img = np.clip(img.astype(int) + rng.integers(-noise, noise + 1, img.shape), 0, 255).astype(np.uint8)
    return img


def test_descriptor_shape_and_normalisation():
    d = crop_descriptor([person(RED, BLUE)])
    assert d.shape == (DIM,) and d.sum() == pytest.approx(1.0)
    assert d[: DIM // 2].sum() == pytest.approx(0.5)


def test_same_clothes_are_close_different_clothes_far():
    a = crop_descriptor([person(RED, BLUE, noise=10, seed=k) for k in range(3)])
    b = crop_descriptor([person(RED, BLUE, noise=10, seed=k + 10) for k in range(3)])
    c = crop_descriptor([person(GREEN, GREY, noise=10, seed=k) for k in range(3)])
    swapped = crop_descriptor([person(BLUE, RED)])
    assert appearance_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    assert appearance_distance(a, b) < 0.15
    assert appearance_distance(a, c) > 0.6
    assert appearance_distance(a, swapped) > 0.6  # upper and lower body are kept apart
    assert appearance_distance(a, c) == pytest.approx(appearance_distance(c, a))
    assert 0.0 <= appearance_distance(a, c) <= 1.0


def test_background_at_the_margins_is_ignored():
    a = crop_descriptor([person(RED, BLUE, background=GREY)])
    b = crop_descriptor([person(RED, BLUE, background=GREEN)])
    assert appearance_distance(a, b) < 0.35
    # without margins the background would count
    a0 = crop_descriptor([person(RED, BLUE, background=GREY)], margin_x=0, margin_y=0)
    b0 = crop_descriptor([person(RED, BLUE, background=GREEN)], margin_x=0, margin_y=0)
    assert appearance_distance(a0, b0) > appearance_distance(a, b)


def test_no_usable_crop_raises():
    with pytest.raises(PtrackError):
        crop_descriptor([])
    with pytest.raises(PtrackError):
        crop_descriptor([np.zeros((2, 1, 3), np.uint8)])


def test_pick_samples_spread_confident_large_unoverlapped():
    frame = np.arange(100)
    xyxy = np.tile(np.float32([100, 100, 160, 280]), (100, 1))
    conf = np.full(100, 0.5)
    conf[[5, 40, 90]] = 0.99  # the best in three time slices
    picks = pick_descriptor_samples(frame, xyxy, conf, 3)
    assert picks.tolist() == [5, 40, 90]
    # frame 40 is covered by another person's box: its slice picks another row
    others = (np.array([40]), np.float32([[110, 100, 170, 280]]))
    covered = covered_share(np.r_[frame, others[0]], np.r_[xyxy, others[1]])[:100]
    assert covered[40] > 0.5 and covered[39] == 0
    picks = pick_descriptor_samples(frame, xyxy, conf, 3, covered=covered)
    assert 40 not in picks.tolist() and len(picks) == 3 and {5, 90} <= set(picks.tolist())
    # larger boxes win at equal confidence
    xyxy2 = xyxy.copy()
    xyxy2[70] = [90, 60, 190, 340]
    picks = pick_descriptor_samples(frame, xyxy2, np.full(100, 0.5), 1)
    assert picks.tolist() == [70]


def test_pick_samples_small_tracklets():
    assert pick_descriptor_samples(np.arange(2), np.ones((2, 4)), np.ones(2), 5).tolist() == [0, 1]
    assert pick_descriptor_samples(np.zeros(0), np.zeros((0, 4)), np.zeros(0), 5).tolist() == []


def test_covered_share_is_the_largest_cover_by_one_credible_other_box():
    frame = np.array([0, 0, 0, 1])
    xyxy = np.float32([[0, 0, 10, 10], [0, 0, 5, 10], [5, 0, 10, 10], [0, 0, 10, 10]])
    # box 0 is half covered by each of two boxes: the largest single cover, not their sum
    assert covered_share(frame, xyxy).tolist() == [0.5, 1.0, 1.0, 0.0]
    # low-confidence boxes cover nothing
    got = covered_share(frame, xyxy, np.array([0.9, 0.1, 0.1, 0.9]), min_other_conf=0.25)
    assert got.tolist() == [0.0, 1.0, 1.0, 0.0]
    # order of rows does not matter
    perm = np.array([3, 1, 0, 2])
    assert covered_share(frame[perm], xyxy[perm]).tolist() == [0.0, 1.0, 0.5, 1.0]


def test_pick_spread_bins_span_and_per_bin():
    frame = np.arange(10)
    score = np.array([1, 5, 2, 2, 0, 0, 0, 0, 9, 3], float)
    got = [(b, r.tolist()) for b, r in pick_spread(frame, score, 2, per_bin=2)]
    assert got == [(0, [1, 2]), (1, [8, 9])]
    # a wider span leaves the late bins empty: they are left out
    got = [(b, r.tolist()) for b, r in pick_spread(frame, score, 4, span=(0, 39))]
    assert got == [(0, [8])]
    assert pick_spread(frame[:0], score[:0], 3) == []


def test_link_distances_match_link_distance_pair_by_pair():
    from ptrack.persons.appearance import DIM, link_distance, link_distances

    rng = np.random.default_rng(2)
    h = rng.random((40, DIM)) ** 3
    h[:, : DIM // 2] /= 2 * h[:, : DIM // 2].sum(1, keepdims=True)
    h[:, DIM // 2:] /= 2 * h[:, DIM // 2:].sum(1, keepdims=True)
    e = rng.normal(size=(40, 5))
    h[3] = np.nan  # no colour for unit 3
    e[[4, 7]] = np.nan  # no embedding for units 4 and 7
    h[5, :DIM // 2] = 0  # an empty half
    ia, ib = rng.integers(0, 40, 300), rng.integers(0, 40, 300)
    dist, parts = link_distances(h[ia], h[ib], e[ia], e[ib])
    for k, (a, b) in enumerate(zip(ia, ib)):
        ha, hb = (None if np.isnan(h[x]).any() else h[x] for x in (a, b))
        ea, eb = (None if np.isnan(e[x]).all() else e[x] for x in (a, b))
        want, got = link_distance(ha, hb, ea, eb)
        assert np.isclose(dist[k], want, atol=1e-12, equal_nan=True)
        for name in ("hsv", "embed"):
            assert np.isclose(parts[name][k], got.get(name, np.nan), atol=1e-12, equal_nan=True)
    only_hsv, _ = link_distances(h[ia], h[ib], None, None)
    assert np.allclose(only_hsv, parts["hsv"], equal_nan=True)
