"""A per-video appearance metric learned from the tracklets alone (KISSME after PCA), no labels.

The tracker's own structure gives free supervision: two boxes of one tracklet show the same
person (positive pairs) and two tracklets that share a frame are two different people (negative
pairs: any box of one with any box of the other). KISSME (Koestinger et al., CVPR 2012) turns
these into a Mahalanobis metric: with ``S_pos`` and ``S_neg`` the covariances of the
differences ``x_i - x_j`` of positive and negative pairs, ``M = inv(S_pos) - inv(S_neg)``,
projected onto the positive semi-definite cone (negative eigenvalues set to 0). It down-weights
the directions in which one person varies a lot (pose, lighting, partial occlusion) and
up-weights those in which people differ. The features are first reduced by PCA to ``dims``
dimensions (whitened) so the covariances are well estimated from one video's boxes.

Pure numpy: arrays in, arrays out.

Example:
    >>> m = learn_kissme(X, tracklet, frame)          # X: (n, d) per-box embeddings
    >>> ids, D = tracklet_distances(X, tracklet, m)  # (t,), (t, t) distances of tracklet means
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ptrack.errors import PtrackError


MIN_TRACKLET_PAIRS = 3
"""Fewest distinct pairs of tracklets on screen together a metric is learned from: negatives
from one or two pairs of people describe those people, not the video's (the test model on the
one-by-one clip: 2 such pairs gave thousands of box pairs, and the metric learned from them
joined two different people, purity 100 -> 56.5 with ``group.appearance: combo``;
``bench/appearance_humans.py``). Below it, colours alone decide."""


class NotEnoughPairs(PtrackError):
    """The tracklets give too few positive or negative pairs to learn a metric (fall back)."""


@dataclass(frozen=True)
class Metric:
    """``d(a, b) = ||L^T P^T (a - b)||``: PCA ``P`` (centred on ``mean``), then KISSME ``M = L L^T``.

    Attributes:
        mean: (d,) centre of the features.
        proj: (d, k) PCA projection, whitened.
        M: (k, k) positive semi-definite KISSME matrix.
        scale: Median distance of the negative (different-people) training pairs, so that
            ``distance / scale`` is unitless across videos: about 1 for two different people.
    """

    mean: np.ndarray
    proj: np.ndarray
    M: np.ndarray
    scale: float = 1.0

    def __post_init__(self) -> None:
        d, k = self.proj.shape
        if self.mean.shape != (d,) or self.M.shape != (k, k):
            raise ValueError(f"metric shapes disagree: mean {self.mean.shape}, proj {self.proj.shape}, M {self.M.shape}")

    @property
    def dims(self) -> int:
        return self.proj.shape[1]

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Features -> the space where the metric is plain Euclidean distance, ``(n, k)``."""
        w, V = np.linalg.eigh(self.M)
        L = V * np.sqrt(np.clip(w, 0, None))
        return (np.atleast_2d(np.asarray(X, np.float64)) - self.mean) @ self.proj @ L

    def distance(self, a: np.ndarray, b: np.ndarray) -> float:
        """Metric distance between two feature vectors."""
        d = (np.asarray(a, np.float64) - np.asarray(b, np.float64)) @ self.proj
        return float(np.sqrt(max(d @ self.M @ d, 0.0)))

    def pairwise(self, A: np.ndarray, B: np.ndarray | None = None) -> np.ndarray:
        """``(len(A), len(B))`` metric distances (B = A when omitted)."""
        ta = self.transform(A)
        tb = ta if B is None else self.transform(B)
        sq = (ta * ta).sum(1)[:, None] + (tb * tb).sum(1)[None, :] - 2 * ta @ tb.T
        return np.sqrt(np.clip(sq, 0, None))


def _sample_pairs(a: np.ndarray, b: np.ndarray | None, k: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``k`` distinct index pairs: within ``a`` (b None, i != j) or across ``a`` x ``b``."""
    if b is None:
        n = len(a)
        total = n * (n - 1) // 2
        if total == 0:
            return np.zeros((0, 2), np.int64)
        if total <= k:
            i, j = np.triu_indices(n, 1)
        else:
            i = rng.integers(0, n, 2 * k)
            j = rng.integers(0, n, 2 * k)
            keep = i != j
            i, j = i[keep][:k], j[keep][:k]
        return np.stack([a[i], a[j]], 1)
    total = len(a) * len(b)
    if total <= k:
        i, j = np.meshgrid(np.arange(len(a)), np.arange(len(b)), indexing="ij")
        i, j = i.ravel(), j.ravel()
    else:
        i, j = rng.integers(0, len(a), k), rng.integers(0, len(b), k)
    return np.stack([a[i], b[j]], 1)


def _iou_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes ``a[i]`` and ``b[i]`` (xyxy), row by row."""
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    area = lambda x: np.clip(x[:, 2] - x[:, 0], 0, None) * np.clip(x[:, 3] - x[:, 1], 0, None)  # noqa: E731
    union = area(a) + area(b) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def cooccurring(tracklet: np.ndarray, frame: np.ndarray, *, xyxy: np.ndarray | None = None,
                max_iou: float = 0.5) -> set[tuple[int, int]]:
    """Pairs ``(a, b)``, ``a < b``, of tracklets that hold a box in a common frame: two people.

    With ``xyxy`` given, two tracklets whose boxes overlap by more than ``max_iou`` in a shared
    frame are left out: that is one person boxed twice (two classes of one detector, say), not
    two people. Rows with a negative tracklet id are ignored.
    """
    tracklet = np.asarray(tracklet, np.int64).reshape(-1)
    frame = np.asarray(frame, np.int64).reshape(-1)
    if tracklet.shape != frame.shape:
        raise ValueError(f"tracklet and frame differ in length: {tracklet.shape} vs {frame.shape}")
    valid = np.flatnonzero(tracklet >= 0)
    order = valid[np.lexsort((tracklet[valid], frame[valid]))]
    f, t = frame[order], tracklet[order]
    co: set[tuple[int, int]] = set()
    twice: set[tuple[int, int]] = set()
    starts = np.flatnonzero(np.r_[True, f[1:] != f[:-1]]) if len(f) else np.zeros(0, np.int64)
    ends = np.r_[starts[1:], len(f)]
    for s, e in zip(starts, ends):
        if e - s > 1:
            x, y = np.triu_indices(e - s, 1)
            diff = t[s + x] != t[s + y]
            x, y = x[diff], y[diff]
            lo = np.minimum(t[s + x], t[s + y]).tolist()
            hi = np.maximum(t[s + x], t[s + y]).tolist()
            co.update(zip(lo, hi))
            if xyxy is not None and len(x):
                boxes = np.asarray(xyxy, np.float64)[order[s:e]]
                over = _iou_rows(boxes[x], boxes[y]) > max_iou
                twice.update((a, b) for a, b, o in zip(lo, hi, over.tolist()) if o)
    return co - twice


def tracklet_pairs(tracklet: np.ndarray, frame: np.ndarray, *, xyxy: np.ndarray | None = None,
                   max_iou: float = 0.5, per_group: int = 200, seed: int = 0,
                   cooccur: set[tuple[int, int]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Row-index pairs ``(positive (p, 2), negative (q, 2))`` from the tracklet structure alone.

    Positives: two rows of one tracklet. Negatives: a row of tracklet A and a row of tracklet B
    where A and B hold a box in a common frame (:func:`cooccurring` of these rows, or the
    ``cooccur`` pairs given: those of all the tracklets' boxes when the rows are only a sample).
    Each tracklet, and each co-occurring pair of tracklets, gives at most ``per_group`` pairs,
    so long tracklets do not drown short ones. Rows with a negative tracklet id are ignored.
    """
    tracklet = np.asarray(tracklet, np.int64).reshape(-1)
    frame = np.asarray(frame, np.int64).reshape(-1)
    if tracklet.shape != frame.shape:
        raise ValueError(f"tracklet and frame differ in length: {tracklet.shape} vs {frame.shape}")
    rng = np.random.default_rng(seed)
    valid = np.flatnonzero(tracklet >= 0)
    ids = np.unique(tracklet[valid])
    rows = {int(t): valid[tracklet[valid] == t] for t in ids}
    pos = [_sample_pairs(r, None, per_group, rng) for r in rows.values()]
    co = cooccurring(tracklet, frame, xyxy=xyxy, max_iou=max_iou) if cooccur is None else cooccur
    neg = [_sample_pairs(rows[a], rows[b], per_group, rng) for a, b in sorted(co)
           if a in rows and b in rows]
    empty = np.zeros((0, 2), np.int64)
    return (np.concatenate(pos) if pos else empty), (np.concatenate(neg) if neg else empty)


def pca(X: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """``(mean (d,), projection (d, k))`` of the top ``k = min(dims, rank)`` whitened components."""
    X = np.asarray(X, np.float64)
    mean = X.mean(0)
    U, s, Vt = np.linalg.svd(X - mean, full_matrices=False)
    var = s ** 2 / max(len(X) - 1, 1)
    keep = var > var.max() * 1e-10 if len(var) else np.zeros(0, bool)
    k = int(min(dims, keep.sum()))
    if k < 1:
        raise NotEnoughPairs("features do not vary: no metric to learn")
    return mean, Vt[:k].T / np.sqrt(var[:k])


def psd(A: np.ndarray) -> np.ndarray:
    """Nearest positive semi-definite matrix (symmetrised, negative eigenvalues set to 0)."""
    w, V = np.linalg.eigh((A + A.T) / 2)
    return (V * np.clip(w, 0, None)) @ V.T


def learn_kissme(X: np.ndarray, tracklet: np.ndarray, frame: np.ndarray, *,
                 xyxy: np.ndarray | None = None, max_iou: float = 0.5, dims: int = 32,
                 per_group: int = 200, ridge: float = 1e-3, min_pairs: int = 20,
                 min_tracklet_pairs: int = MIN_TRACKLET_PAIRS, seed: int = 0,
                 cooccur: set[tuple[int, int]] | None = None) -> Metric:
    """Learn the per-video metric from per-box features and the tracklet structure.

    Args:
        X: (n, d) features of the boxes (NaN rows are ignored).
        tracklet: (n,) tracklet id of each box (negative = untracked, ignored).
        frame: (n,) frame of each box.
        xyxy: (n, 4) boxes; when given, tracklets overlapping by more than ``max_iou`` in a
            shared frame give no negatives (see :func:`tracklet_pairs`).
        max_iou: See ``xyxy``.
        dims: PCA dimensions kept (fewer = more robust on short videos, less detail).
        per_group: Pairs sampled per tracklet (positives) and per co-occurring tracklet pair
            (negatives).
        ridge: Added to both covariances' diagonals, relative to their mean variance.
        min_pairs: Fewest positive and negative pairs accepted.
        min_tracklet_pairs: Fewest distinct pairs of tracklets on screen together the negatives
            come from (``MIN_TRACKLET_PAIRS``).
        cooccur: Tracklet pairs known to share a frame (see :func:`tracklet_pairs`), when the
            rows are a sample of each tracklet's boxes.

    Raises:
        NotEnoughPairs: Too few positives or negatives (no two tracklets ever share a frame, say):
            the caller falls back to an unlearned distance.
    """
    X = np.asarray(X, np.float64)
    tracklet = np.asarray(tracklet, np.int64).reshape(-1)
    frame = np.asarray(frame, np.int64).reshape(-1)
    if X.ndim != 2 or len(X) != len(tracklet) or len(X) != len(frame):
        raise ValueError(f"X must be (n, d) with n = len(tracklet) = len(frame); got {X.shape}, {tracklet.shape}, {frame.shape}")
    finite = np.all(np.isfinite(X), axis=1)
    tracklet = np.where(finite, tracklet, -1)
    pos, neg = tracklet_pairs(tracklet, frame, xyxy=xyxy, max_iou=max_iou, per_group=per_group,
                              seed=seed, cooccur=cooccur)
    if len(pos) < min_pairs or len(neg) < min_pairs:
        raise NotEnoughPairs(f"too few pairs to learn a metric ({len(pos)} positive, {len(neg)} negative; need {min_pairs})")
    people = len({tuple(sorted(p)) for p in tracklet[neg].tolist()})
    if people < min_tracklet_pairs:
        raise NotEnoughPairs(f"too few tracklets on screen together to learn a metric ({people} "
                             f"pairs; need {min_tracklet_pairs})")
    used = np.unique(np.concatenate([pos.ravel(), neg.ravel()]))
    mean, proj = pca(X[used], min(dims, len(used) - 1))
    Z = (X[used] - mean) @ proj
    at = np.full(len(X), -1, np.int64)
    at[used] = np.arange(len(used))

    def cov(pairs: np.ndarray) -> np.ndarray:
        d = Z[at[pairs[:, 0]]] - Z[at[pairs[:, 1]]]
        c = d.T @ d / len(d)
        return c + np.eye(len(c)) * ridge * max(np.trace(c) / len(c), 1e-12)

    M = psd(np.linalg.inv(cov(pos)) - np.linalg.inv(cov(neg)))
    d = Z[at[neg[:, 0]]] - Z[at[neg[:, 1]]]
    scale = float(np.median(np.sqrt(np.clip(np.einsum("ij,jk,ik->i", d, M, d), 0, None))))
    return Metric(mean=mean, proj=proj, M=M, scale=scale if scale > 0 else 1.0)


def tracklet_means(X: np.ndarray, tracklet: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(ids (t,), means (t, d))``: each tracklet's mean feature (NaN rows ignored)."""
    X = np.asarray(X, np.float64)
    tracklet = np.asarray(tracklet, np.int64).reshape(-1)
    ok = np.all(np.isfinite(X), axis=1) & (tracklet >= 0)
    ids = np.unique(tracklet[ok])
    means = np.stack([X[ok & (tracklet == t)].mean(0) for t in ids]) if len(ids) else np.zeros((0, X.shape[1]))
    return ids, means


def tracklet_distances(X: np.ndarray, tracklet: np.ndarray, metric: Metric | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """``(ids (t,), D (t, t))``: distances of the tracklets' mean features.

    Under ``metric`` when given, else cosine distance (1 - cos) of the means.
    """
    ids, means = tracklet_means(X, tracklet)
    if metric is not None:
        return ids, metric.pairwise(means)
    n = np.linalg.norm(means, axis=1, keepdims=True)
    u = means / np.where(n > 0, n, 1)
    return ids, np.clip(1 - u @ u.T, 0, 2)


def tracklet_vectors(X: np.ndarray, tracklet: np.ndarray, metric: Metric) -> tuple[np.ndarray, np.ndarray]:
    """``(ids (t,), V (t, k))``: each tracklet's mean feature in the metric's space, divided by
    its ``scale``, so that ``||V[i] - V[j]||`` is the tracklets' metric distance in units of the
    typical distance of two different people (about 1). Means of such vectors stand for joined
    tracklets (the map is linear, so that is the metric distance of the mean features)."""
    ids, means = tracklet_means(X, tracklet)
    if not len(ids):
        return ids, np.zeros((0, metric.dims))
    return ids, metric.transform(means) / metric.scale
