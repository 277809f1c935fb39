"""ptrack.persons.metric: KISSME learned from tracklet structure, on constructed Gaussian identities."""

from __future__ import annotations

import numpy as np
import pytest

from ptrack.persons.metric import (MIN_TRACKLET_PAIRS, Metric, NotEnoughPairs, cooccurring, learn_kissme, pca, psd,
                           tracklet_distances, tracklet_means, tracklet_pairs, tracklet_vectors)


def auc(same: np.ndarray, diff: np.ndarray) -> float:
    """P(distance of a same pair < distance of a different pair), ties half."""
    s, d = np.asarray(same)[:, None], np.asarray(diff)[None, :]
    return float(((s < d).sum() + 0.5 * (s == d).sum()) / (s.size * d.size))


def identities(seed: int = 0, *, people: int = 8, dim: int = 12, nuisance: float = 6.0):
    """Boxes of ``people`` identities, each cut into short tracklets; 3 people on screen at once.

    Identity centres differ by ~1 per dimension; every box also gets a large random offset along
    direction 0 (pose/lighting: ``nuisance`` x the identity spread) and small noise elsewhere.
    Returns features X, tracklet, frame and the true identity of each tracklet.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1.0, (people, dim))
    X, trk, frm, who = [], [], [], {}
    t = 0
    frame0 = 0
    for group in range(0, people, 3):  # people in the same group share frames
        members = range(group, min(group + 3, people))
        for p in members:
            f = frame0
            for _ in range(3):  # three tracklets of 4 boxes per person
                for k in range(4):
                    x = centres[p] + rng.normal(0, 0.15, dim)
                    x[0] += rng.normal(0, nuisance)
                    X.append(x)
                    trk.append(t)
                    frm.append(f + k)
                who[t] = p
                t += 1
                f += 10
        frame0 += 100
    return np.array(X), np.array(trk), np.array(frm), who


def pair_auc(ids, D, who):
    same, diff = [], []
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            (same if who[ids[i]] == who[ids[j]] else diff).append(D[i, j])
    return auc(np.array(same), np.array(diff))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_learned_metric_separates_identities_better_than_euclidean(seed):
    X, trk, frm, who = identities(seed)
    ids, means = tracklet_means(X, trk)
    eucl = np.linalg.norm(means[:, None] - means[None], axis=2)
    m = learn_kissme(X, trk, frm, dims=8, per_group=50)
    ids2, learned = tracklet_distances(X, trk, m)
    assert np.array_equal(ids, ids2)
    a_e, a_l = pair_auc(ids, eucl, who), pair_auc(ids, learned, who)
    assert a_e < 0.8  # the nuisance direction swamps plain distances
    assert a_l > 0.95 and a_l > a_e + 0.15
    # scale: different people sit around 1 in distance / scale, the same person well below
    same = [learned[i, j] / m.scale for i in range(len(ids)) for j in range(i + 1, len(ids)) if who[ids[i]] == who[ids[j]]]
    diff = [learned[i, j] / m.scale for i in range(len(ids)) for j in range(i + 1, len(ids)) if who[ids[i]] != who[ids[j]]]
    assert np.median(same) < 0.5 < 0.7 < np.median(diff) < 1.5


def test_metric_downweights_the_nuisance_direction():
    X, trk, frm, _ = identities(0)
    m = learn_kissme(X, trk, frm, dims=12, per_group=50)
    e0 = np.zeros(X.shape[1]); e0[0] = 1.0
    e1 = np.zeros(X.shape[1]); e1[1] = 1.0
    assert m.distance(np.zeros(X.shape[1]), e0) < 0.1 * m.distance(np.zeros(X.shape[1]), e1)


def test_metric_is_a_pseudo_metric():
    X, trk, frm, _ = identities(3)
    m = learn_kissme(X, trk, frm, dims=6, per_group=30)
    D = m.pairwise(X[:20])
    assert D.shape == (20, 20)
    assert np.allclose(np.diag(D), 0, atol=1e-6)
    assert np.allclose(D, D.T, atol=1e-9)
    assert (D >= 0).all()
    assert np.isclose(D[2, 7], m.distance(X[2], X[7]), rtol=1e-6)
    assert np.all(np.linalg.eigvalsh(m.M) >= -1e-9)
    assert m.dims == 6 and m.transform(X[:3]).shape == (3, 6)


def test_pairs_come_from_tracklet_structure_only():
    #            rows: 0  1  2  3  4  5  6
    trk = np.array([1, 1, 1, 2, 2, 3, -1])
    frm = np.array([0, 1, 2, 1, 2, 9, 1])
    pos, neg = tracklet_pairs(trk, frm)
    assert {tuple(sorted(p)) for p in pos.tolist()} == {(0, 1), (0, 2), (1, 2), (3, 4)}
    # 1 and 2 share frames 1 and 2; 3 shares none; the untracked row 6 is never used
    assert {tuple(p) for p in neg.tolist()} == {(a, b) for a in (0, 1, 2) for b in (3, 4)}


def test_one_person_boxed_twice_gives_no_negatives():
    trk = np.array([1, 1, 2, 2, 3, 3])
    frm = np.array([0, 1, 0, 1, 0, 1])
    box = np.array([0, 0, 10, 20], float)
    xyxy = np.stack([box, box, box + 1, box + 1, box + 50, box + 50])  # 2 duplicates 1; 3 elsewhere
    _, neg = tracklet_pairs(trk, frm, xyxy=xyxy)
    pairs = {tuple(sorted(trk[p].tolist())) for p in neg}
    assert pairs == {(1, 3), (2, 3)}
    _, neg_all = tracklet_pairs(trk, frm)
    assert {tuple(sorted(trk[p].tolist())) for p in neg_all} == {(1, 2), (1, 3), (2, 3)}


def test_pairs_are_capped_per_group():
    trk = np.repeat([0, 1], 50)
    frm = np.tile(np.arange(50), 2)
    pos, neg = tracklet_pairs(trk, frm, per_group=7)
    assert len(pos) == 14 and len(neg) == 7
    assert np.all(trk[pos[:, 0]] == trk[pos[:, 1]]) and np.all(pos[:, 0] != pos[:, 1])
    assert np.all(trk[neg[:, 0]] != trk[neg[:, 1]])


def test_no_shared_frames_means_no_metric():
    X = np.random.default_rng(0).normal(size=(40, 5))
    trk = np.repeat([0, 1], 20)
    frm = np.arange(40)  # one after the other: never on screen together
    with pytest.raises(NotEnoughPairs, match="negative"):
        learn_kissme(X, trk, frm)


def test_nan_rows_are_ignored():
    X, trk, frm, who = identities(1)
    X2 = X.copy()
    X2[::5] = np.nan
    m = learn_kissme(X2, trk, frm, dims=8, per_group=50)
    ids, D = tracklet_distances(X2, trk, m)
    assert np.isfinite(D).all()
    assert pair_auc(ids, D, who) > 0.9


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="len"):
        learn_kissme(np.zeros((5, 3)), np.zeros(4, int), np.zeros(5, int))
    with pytest.raises(ValueError, match="differ"):
        tracklet_pairs(np.zeros(3, int), np.zeros(2, int))
    with pytest.raises(ValueError, match="shapes"):
        Metric(mean=np.zeros(3), proj=np.zeros((3, 2)), M=np.eye(3))


def test_pca_and_psd_helpers():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4)) * np.array([5.0, 2.0, 1.0, 0.0])
    mean, P = pca(X, 10)
    assert P.shape == (4, 3)  # the constant column adds no component
    Z = (X - mean) @ P
    assert np.allclose(np.cov(Z.T), np.eye(3), atol=1e-8)  # whitened
    A = np.array([[1.0, 0.0], [0.0, -2.0]])
    assert np.allclose(psd(A), [[1.0, 0.0], [0.0, 0.0]])


def test_cosine_distances_without_metric():
    X = np.array([[1.0, 0], [1.0, 0], [0, 1.0], [0, 2.0]])
    ids, D = tracklet_distances(X, np.array([5, 5, 7, 7]))
    assert ids.tolist() == [5, 7]
    assert np.allclose(D, [[0, 1], [1, 0]])


def test_cooccurring_pairs_from_all_boxes_feed_a_sample():
    trk = np.array([1, 1, 2, 2, 3, 3, -1])
    frm = np.array([0, 5, 5, 9, 20, 21, 5])
    assert cooccurring(trk, frm) == {(1, 2)}
    # a sample of the rows (tracklet 1's frame-5 box left out) no longer shows 1 and 2 together,
    # so the pairs of all boxes are passed in
    keep = np.array([0, 2, 3, 4, 5])
    _, neg = tracklet_pairs(trk[keep], frm[keep])
    assert len(neg) == 0
    _, neg = tracklet_pairs(trk[keep], frm[keep], cooccur=cooccurring(trk, frm))
    assert {tuple(sorted(trk[keep][p].tolist())) for p in neg} == {(1, 2)}


def test_metric_learned_on_a_sample_of_each_tracklet_still_separates():
    X, trk, frm, who = identities(2)
    sample = np.flatnonzero(frm % 4 != 3)  # 3 of every 4 boxes, as group's sampling keeps a few
    m = learn_kissme(X[sample], trk[sample], frm[sample], dims=8, per_group=50,
                     cooccur=cooccurring(trk, frm))
    ids, V = tracklet_vectors(X[sample], trk[sample], m)
    D = np.linalg.norm(V[:, None] - V[None], axis=2)
    assert pair_auc(ids, D, who) > 0.95
    # the vectors' distances are the metric's, in units of its scale
    _, learned = tracklet_distances(X[sample], trk[sample], m)
    np.testing.assert_allclose(D, learned / m.scale, atol=1e-6)


def test_a_metric_needs_several_pairs_of_people_on_screen_together():
    # A with B, then B with C: hundreds of box pairs, but two pairs of people, which describe
    # those people, not the video: no metric (the caller falls back to colours)
    rng = np.random.default_rng(0)
    spans = {1: range(0, 100), 2: range(0, 200), 3: range(100, 200)}
    trk = np.concatenate([np.full(len(r), t) for t, r in spans.items()])
    frm = np.concatenate([np.array(r) for r in spans.values()])
    X = rng.normal(0, 1, (3, 16))[trk - 1] + rng.normal(0, 0.2, (len(trk), 16))
    with pytest.raises(NotEnoughPairs, match=r"too few tracklets on screen together .*2 pairs"):
        learn_kissme(X, trk, frm, dims=8, per_group=50)
    assert MIN_TRACKLET_PAIRS > 2
    m = learn_kissme(X, trk, frm, dims=8, per_group=50, min_tracklet_pairs=2)  # the old rule
    assert m.dims == 8
