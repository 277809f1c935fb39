"""A cheap appearance descriptor for tracklets: colour histograms of the upper and lower body.

Pure: BGR crops (numpy uint8 arrays) in, a 1-D float descriptor out. No model, no file I/O.
The descriptor is the concatenation of two L1-normalised HSV histograms (upper and lower half of
the central part of the box, where the person rather than the background dominates), averaged
over several crops and normalised to sum 1. Distances are Bhattacharyya-like, in [0, 1].
"""

from __future__ import annotations

import numpy as np

from ptrack.errors import PtrackError

H_BINS, S_BINS, V_BINS = 8, 4, 4
"""Hue x saturation bins for coloured pixels, plus V_BINS brightness bins for grey pixels."""
PART_DIM = H_BINS * S_BINS + V_BINS
DIM = 2 * PART_DIM
"""Length of a descriptor: upper body then lower body."""
MIN_SATURATION, MIN_VALUE = 0.2, 0.15
"""A pixel counts as coloured (hue bins) above both; below, its hue is noise and it goes to a brightness bin."""
MARGIN_X, MARGIN_Y = 0.2, 0.1
"""Share of a crop's width (each side) and height (top and bottom) left out: background and neighbours dominate there."""
MAX_OVERLAP = 0.3
"""A box more than this share covered by another box is avoided as a descriptor sample (it shows the other person)."""


def _bgr_to_hsv(crop: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hue in [0, 1), saturation and value in [0, 1] (OpenCV on float pixels: 7x faster than
    the same formula in numpy, which took 5 of ``group``'s 30 s on a 30-minute video)."""
    import cv2

    hsv = cv2.cvtColor(np.ascontiguousarray(crop[..., :3], dtype=np.float32) / 255.0,
                       cv2.COLOR_BGR2HSV)
    return hsv[..., 0] / 360.0, hsv[..., 1], hsv[..., 2]


def _bins(pixels: np.ndarray) -> np.ndarray:
    """Histogram bin (0..PART_DIM-1) of each pixel of a BGR image, same shape as the image."""
    h, s, v = _bgr_to_hsv(pixels)
    coloured = (s > MIN_SATURATION) & (v > MIN_VALUE)
    hi = np.minimum((h * H_BINS).astype(np.int64), H_BINS - 1)
    si = np.minimum((s * S_BINS).astype(np.int64), S_BINS - 1)
    vi = np.minimum((v * V_BINS).astype(np.int64), V_BINS - 1)
    return np.where(coloured, hi * S_BINS + si, H_BINS * S_BINS + vi)


def _normalised(hist: np.ndarray) -> np.ndarray:
    total = hist.sum()
    return hist / total if total > 0 else np.full(len(hist), 1.0 / len(hist))


def _body_hists(body: np.ndarray) -> np.ndarray:
    """Upper-half then lower-half histograms (DIM) of a body crop: one colour conversion and
    one count for both halves."""
    idx = _bins(body)
    idx[body.shape[0] // 2:] += PART_DIM
    hist = np.bincount(idx.ravel(), minlength=DIM).astype(np.float64)
    return np.concatenate([_normalised(hist[:PART_DIM]), _normalised(hist[PART_DIM:])])


HIST_KEY = (f"colour-hist:h{H_BINS}s{S_BINS}v{V_BINS}:sat{MIN_SATURATION}:val{MIN_VALUE}"
            f":margin{MARGIN_X}x{MARGIN_Y}:f32")
"""Names the per-crop histograms of :func:`crop_hist` where the project stores them (beside the
learned embeddings, as float32): a change to the bins, thresholds or margins gives a new name,
so stored histograms of another recipe are never mixed in."""


def crop_hist(crop: np.ndarray, *, margin_x: float = MARGIN_X, margin_y: float = MARGIN_Y
              ) -> np.ndarray | None:
    """Upper-body then lower-body HSV histograms (float64, ``DIM``; each half sums to 1) of one
    BGR crop, or None when it is too small to describe (under 4 x 2 pixels, or not colour).

    The crop loses ``margin_x`` of its width on each side and ``margin_y`` of its height at top
    and bottom (background and neighbours dominate there); the rest is split into an upper half
    (torso) and a lower half (legs).
    """
    c = np.asarray(crop)
    if c.ndim != 3 or c.shape[2] < 3 or c.shape[0] < 4 or c.shape[1] < 2:
        return None
    hgt, wid = c.shape[:2]
    x0, x1 = int(wid * margin_x), max(int(wid * margin_x) + 1, int(round(wid * (1 - margin_x))))
    y0, y1 = int(hgt * margin_y), max(int(hgt * margin_y) + 2, int(round(hgt * (1 - margin_y))))
    return _body_hists(c[y0:y1, x0:x1, :3])


def descriptor_from_hists(hists: np.ndarray) -> np.ndarray:
    """A tracklet's descriptor (float64, ``DIM``, sums to 1) from its crops' :func:`crop_hist`
    rows (n, ``DIM``); rows holding NaN (a crop that could not be described) are left out.

    Raises:
        PtrackError: When no usable row is given.
    """
    h = np.asarray(hists, dtype=np.float64).reshape(-1, DIM)
    h = h[~np.isnan(h).any(axis=1)]
    if not len(h):
        raise PtrackError("no usable crop to describe (need at least one colour crop of 4x2 pixels or more)")
    d = h.mean(axis=0)
    return d / d.sum()


def crop_descriptor(crops: list[np.ndarray], *, margin_x: float = MARGIN_X,
                    margin_y: float = MARGIN_Y) -> np.ndarray:
    """Appearance descriptor (float64, ``DIM``) of one tracklet from several BGR crops of it:
    the mean of their :func:`crop_hist` (crops too small to describe are skipped), normalised to
    sum 1 (each half to 0.5).

    Raises:
        PtrackError: When no usable crop is given.
    """
    parts = [h for h in (crop_hist(c, margin_x=margin_x, margin_y=margin_y) for c in crops)
             if h is not None]
    return descriptor_from_hists(np.array(parts) if parts else np.zeros((0, DIM)))


def appearance_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Distance between two descriptors in [0, 1]: 0 = same colours, 1 = nothing in common.

    Hellinger distance sqrt(1 - BC) of the two halves, averaged (BC = Bhattacharyya coefficient).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise PtrackError(f"descriptors differ in shape: {a.shape} vs {b.shape}")
    return float(_hsv_distances(a.reshape(1, -1), b.reshape(1, -1))[0])


def _hsv_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """:func:`appearance_distance` of each row pair of (K, dim) float64 arrays."""
    n = a.shape[1] // 2 if a.shape[1] % 2 == 0 else a.shape[1]
    halves = (slice(0, n), slice(n, None)) if n != a.shape[1] else (slice(None),)
    d = np.zeros(len(a))
    with np.errstate(invalid="ignore", divide="ignore"):
        for sl in halves:
            pa, pb = a[:, sl], b[:, sl]
            sa, sb = pa.sum(1), pb.sum(1)
            bc = np.sqrt((pa / sa[:, None]) * (pb / sb[:, None])).sum(1)
            part = np.sqrt(np.maximum(0.0, 1.0 - np.minimum(1.0, bc)))
            d += np.where((sa > 0) & (sb > 0), part, 1.0)
    return d / len(halves)


def pick_descriptor_samples(
    frame: np.ndarray,
    xyxy: np.ndarray,
    conf: np.ndarray,
    k: int,
    *,
    covered: np.ndarray | None = None,
    max_overlap: float = MAX_OVERLAP,
) -> np.ndarray:
    """Indices (into the tracklet's rows) of up to ``k`` good observations to describe a tracklet.

    Good = confident, large, not overlapped by another box of the same frame, and spread over
    the tracklet's time span: :func:`ptrack.persons.sampling.pick_spread` takes the best row of each of
    ``k`` equal time slices (score = conf * sqrt(box area), times ``1 - covered / 2``, or almost
    zero when covered by more than ``max_overlap``), then empty slices are filled by the
    next-best rows.

    Args:
        frame, xyxy, conf: The tracklet's rows.
        k: How many samples.
        covered: Share of each row's box covered by another box of its frame
            (:func:`ptrack.persons.sampling.covered_share` over all boxes of the frames), or None.
        max_overlap: Share of a box's area covered by another box above which it is avoided.

    Returns:
        Sorted int64 indices, at most ``k``.
    """
    from ptrack.persons.sampling import pick_spread

    frame = np.asarray(frame, dtype=np.int64).reshape(-1)
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    conf = np.asarray(conf, dtype=np.float64).reshape(-1)
    n = len(frame)
    if n == 0 or k <= 0:
        return np.zeros(0, np.int64)
    if n <= k:
        return np.arange(n, dtype=np.int64)
    area = np.maximum(xyxy[:, 2] - xyxy[:, 0], 0) * np.maximum(xyxy[:, 3] - xyxy[:, 1], 0)
    score = conf * np.sqrt(area)
    cov = np.zeros(n) if covered is None else np.asarray(covered, np.float64).reshape(n)
    score = np.where(cov > max_overlap, score * 1e-3, score * (1 - 0.5 * cov))
    chosen = [int(rows[0]) for _, rows in pick_spread(frame, score, k)]
    if len(chosen) < k:
        rest = np.setdiff1d(np.arange(n), chosen)
        rest = rest[np.lexsort((rest, -score[rest]))]
        chosen += rest[: k - len(chosen)].tolist()
    return np.array(sorted(chosen), dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# the learned embedding (ptrack.persons.embed + ptrack.persons.metric) on the same 0-1 scale, and the combination

EMBED_UNIT = 0.4
"""Maps the embedding distance to the 0-1 scale of :func:`appearance_distance` (and of the
``group.app_max`` / ``app_strong`` thresholds): ``min(1, EMBED_UNIT * d)``, where ``d`` is the
distance of two tracklets' mean embeddings under the video's learned metric in units of the
median distance of two boxes of different people (:func:`ptrack.persons.metric.tracklet_vectors`), so
two different people sit near ``d = 1``. Calibrated without labels: over the tracklet pairs that
share a frame (different people) of TUD-Stadtmitte and TUD-Campus with two detectors, the median
colour-histogram distance over the median embedding distance was 0.38-0.51 (mean 0.43;
``bench/appearance_group.py --calibrate``), so both kinds put different people at about the same
place on the 0-1 scale."""


def embedding_distance(a: np.ndarray, b: np.ndarray) -> float:
    """0-1 distance of two tracklet vectors of :func:`ptrack.persons.metric.tracklet_vectors`."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise PtrackError(f"embedding vectors differ in shape: {a.shape} vs {b.shape}")
    return float(_embed_distances(a.reshape(1, -1), b.reshape(1, -1))[0])


def _embed_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """:func:`embedding_distance` of each row pair of (K, dim) float64 arrays."""
    d = np.linalg.norm(a - b, axis=1)
    return np.where(np.isfinite(d), np.minimum(1.0, EMBED_UNIT * d), 1.0)


def link_distance(hsv_a: np.ndarray | None, hsv_b: np.ndarray | None,
                  emb_a: np.ndarray | None, emb_b: np.ndarray | None) -> tuple[float, dict[str, float]]:
    """The appearance distance (0-1) ``group`` uses for two tracklets or persons, and its parts.

    Each kind both sides have gives a part: ``"hsv"`` (:func:`appearance_distance`) and
    ``"embed"`` (:func:`embedding_distance`); the distance is their mean (one part alone when
    only one kind is there; NaN when neither is). Which kinds are given is the caller's choice
    (``group.appearance``).

    >>> h = np.full(DIM, 1.0 / DIM)
    >>> link_distance(h, h, None, None)
    (0.0, {'hsv': 0.0})
    """
    parts: dict[str, float] = {}
    if hsv_a is not None and hsv_b is not None:
        parts["hsv"] = appearance_distance(hsv_a, hsv_b)
    if emb_a is not None and emb_b is not None:
        parts["embed"] = embedding_distance(emb_a, emb_b)
    if not parts:
        return float("nan"), parts
    return float(np.mean(list(parts.values()))), parts


def link_distances(hsv_a: np.ndarray | None, hsv_b: np.ndarray | None, emb_a: np.ndarray | None,
                   emb_b: np.ndarray | None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """:func:`link_distance` for many pairs at once: row k of each (K, dim) array is one side
    of pair k, a NaN row where that side has no such vector (None: no pair has one). Returns
    (distance (K,), parts {"hsv": (K,), "embed": (K,)}), NaN where a part or all are missing.
    The same numbers as pair by pair, without a Python call per pair (40,000 candidate links
    of a 30-minute video took 4.6 s that way)."""
    k = len(next(x for x in (hsv_a, emb_a, np.zeros(0)) if x is not None))
    parts = {"hsv": np.full(k, np.nan), "embed": np.full(k, np.nan)}
    if hsv_a is not None and hsv_b is not None and k:
        a, b = np.asarray(hsv_a, np.float64), np.asarray(hsv_b, np.float64)
        ok = ~(np.isnan(a).any(1) | np.isnan(b).any(1))
        parts["hsv"] = np.where(ok, _hsv_distances(a, b), np.nan)
    if emb_a is not None and emb_b is not None and k:
        a, b = np.asarray(emb_a, np.float64), np.asarray(emb_b, np.float64)
        ok = ~(np.isnan(a).all(1) | np.isnan(b).all(1))
        parts["embed"] = np.where(ok, _embed_distances(a, b), np.nan)
    with np.errstate(invalid="ignore"):
        both = np.stack([parts["hsv"], parts["embed"]])
        count = (~np.isnan(both)).sum(0)
        dist = np.where(count > 0, np.nansum(both, 0) / np.maximum(count, 1), np.nan)
    return dist, parts
