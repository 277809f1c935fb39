"""Suggested merges: pairs of persons that ``group`` left apart but may be one human, best first.

Pure: the tracklet rows, the grouping (tracklet -> person), the appearance ``group`` used and the
user's cannot-links in; a frozen :class:`Suggestions` out. Nothing is learned from labels.

What is suggested. Only pairs of persons that are never on screen together (at most a
hand-over, ``group.handover_s``, of shared frames), that no cannot-link (a rejected suggestion,
a split, an unmerge) keeps apart, and whose gap is at most ``group.suggest_max_gap_s``.

How they are ranked. With the same per-video appearance model as ``group`` (a person's
descriptor is the mean of its tracklets', :func:`ptrack.persons.appearance.link_distances`) a
pair's distance is placed against this video's own ranges, learned from its structure:

* same person: the two halves (in time) of one tracklet's sampled crops;
* different people: tracklets on screen together (:func:`ptrack.persons.metric.cooccurring`);
  a video where nobody is on screen with anybody else uses all pairs of tracklets, most of
  which are different people.

``position = (distance - median same) / (median different - median same)``: 0 is a typical
distance of one person here, 1 one of two people. The rank key is the position, less a bonus
when the motion across a short gap agrees (``group``'s motion and scale gates, each
``suggest_loosen`` times wider; a person seen inside another's gap is judged against the
other's boxes interpolated across it; two persons boxed twice at a hand-over, one box inside
the other in every frame they share, agree), plus a penalty when it clearly disagrees (one
leaves at one place and the other appears far away a moment later: growing from twice the
loose gates to three times), plus a little per doubling of the gap beyond ``group.max_gap_s``.
Pairs outside ``group``'s gates made ``suggest_loosen`` times looser pay up to
``OUTSIDE_PENALTY``, so the near misses lead the list: by motion the edge is soft (nothing at
the loose gate, the whole penalty at twice it: 1.51 against 1.5 does not decide), by
appearance alone (no motion to back it: a long gap, a poor fit) a pair is a near miss only
with a distance under ``app_strong`` made looser and under this video's different-people range
(its 10th percentile: where different people here look that alike, appearance alone says
little). Pairs whose key is above ``MAX_KEY`` (they look nearer two people than one, all told)
are not suggested: a short list of likely merges, not every pair (``bench/suggest.py``: the
precision of the first 10 against human labels, the accepts until every human is one person,
and the leave-one-clip-out choice of ``MAX_KEY``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from ptrack.errors import PtrackError
from ptrack.persons.sampling import intersection
from ptrack.settings import GroupSettings

MOTION_BONUS = 0.4
"""Rank-key bonus (in position units) of a short-gap pair whose motion fits the loose gates exactly; less as it nears their edge."""
MOTION_PENALTY = 0.4
"""Rank-key penalty of a short-gap pair whose motion error is beyond three times the loose gate
(from nothing at twice it)."""
GAP_PENALTY = 0.1
"""Rank-key penalty per doubling of the gap beyond ``group.max_gap_s``."""
OUTSIDE_PENALTY = 0.3
"""Rank-key penalty of a pair clearly outside the loose gates (by motion: from nothing at the
loose gate to all of it at twice the gate): near misses come first, but a clear
look-alike beyond them (a return after a long absence) still outranks a poor near miss."""
EDGE_SHARE = 0.03
"""A box within this share of the frame's width / height of a border touches that border."""
MIN_RANGE_SAMPLES = 3
"""Fewest distances a range is estimated from; below, ``group``'s thresholds stand in."""
RANGE_PAIRS = 20000
"""Most tracklet pairs the different-people range is estimated from when it uses all pairs."""
MAX_KEY = 0.75
"""Pairs whose rank key is above this are not suggested: their look is nearer to two people's
than to one person's in this video (bonuses and penalties included). ``bench/suggest.py``
chooses it leave-one-clip-out (8 labelled clips, among 0.2-0.8: of the values whose pooled
top-10 precision is >= 80%, the ones making the most clips whole within 10 accepts, and the
largest of those): with today's ``group`` that is 0.45 on all 8 clips and in 5 of the 8 folds
(0.3 in 2, 0.75 in 1); earlier the same day, before ``group`` joined four of those pairs by
itself, 0.75. It ships at 0.75 against the folds' 0.45 for what the clips cannot show: none of
them holds a right pair across a long absence, and the key grows by ``GAP_PENALTY`` per
doubling of the gap beyond ``group.max_gap_s``, so at 0.45 a person who looks the same and
comes back after 16 s is on the edge and after 20 s is never suggested (the one use the list is
most for: ``tests/test_suggest.py`` pins a return after 16 s); at 0.75 such a return is shown
up to about two minutes. What 0.45 saves is one wrong pair on these clips (two men dressed alike
in black, 30 s apart, key 0.49): a reject."""
BOXED_TWICE = 0.9
"""Share of the smaller box inside the larger, in every frame two persons share, for them to
count as one person boxed twice (their motion then agrees)."""
KEEP_MAX = 200
"""Most suggestions a project keeps (the best)."""


@dataclass(frozen=True)
class Range:
    """A distance range: 10th, 50th and 90th percentile of ``n`` distances; ``source`` says
    where they came from (``tracklet halves``, ``on screen together``, ``all tracklet pairs``
    or ``group's thresholds``)."""

    lo: float
    mid: float
    hi: float
    n: int
    source: str

    def as_dict(self) -> dict:
        return {"lo": round(self.lo, 4), "mid": round(self.mid, 4), "hi": round(self.hi, 4),
                "n": self.n, "source": self.source}


@dataclass(frozen=True)
class Suggestion:
    """One candidate merge. ``a`` is the person that is seen first (ids are person ids).

    ``app`` (0-1, NaN without appearance) with its ``parts``; ``position`` of ``app`` between
    the video's same-person (0) and different-people (1) medians; ``gap_s`` from the end of
    ``a`` to the start of ``b`` (0 when ``b`` fills a gap of ``a``); ``motion``/``scale``:
    error over ``group``'s gate at that gap (NaN beyond the loose candidate window of
    ``group`` or when ``b`` lies inside ``a``'s span); ``exit``/``entry``: where ``a`` is last seen and
    ``b`` first (``left``, ``right``, ``top``, ``bottom`` edge or ``inside``) with the box's
    top-centre as shares of the frame; ``near_miss``: inside the loose gates; ``boxed_twice``:
    one box lies inside the other in every frame the two share (one person boxed twice at a
    hand-over; motion and scale then count as agreeing, 0); ``key``: the rank key (lower
    first)."""

    a: int
    b: int
    key: float
    app: float
    parts: dict
    position: float
    gap_s: float
    a_end: int
    b_start: int
    motion: float
    scale: float
    exit: tuple
    entry: tuple
    near_miss: bool
    in_group_gates: bool
    boxed_twice: bool = False

    def as_dict(self) -> dict:
        def num(x, nd=4):
            return None if x is None or not np.isfinite(x) else round(float(x), nd)

        return {"a": self.a, "b": self.b, "key": num(self.key), "appearance": num(self.app),
                "appearance_parts": {k: num(v) for k, v in self.parts.items()},
                "position": num(self.position), "gap_s": num(self.gap_s, 3),
                "a_end": self.a_end, "b_start": self.b_start,
                "motion": num(self.motion), "scale": num(self.scale),
                "exit": [self.exit[0], num(self.exit[1], 3), num(self.exit[2], 3)],
                "entry": [self.entry[0], num(self.entry[1], 3), num(self.entry[2], 3)],
                "near_miss": bool(self.near_miss), "in_group_gates": bool(self.in_group_gates),
                "boxed_twice": bool(self.boxed_twice)}


@dataclass(frozen=True)
class Suggestions:
    """The ranked suggestions and the video's ranges they were judged against."""

    items: list[Suggestion]
    same: Range
    different: Range
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CropFeatures:
    """Per sampled crop, as ``group`` averages them into a tracklet's appearance: colour
    histograms (``hsv`` (n, dim), NaN rows = unusable crop) with each crop's tracklet
    (``owner``) and ``frame``, and/or learned-embedding vectors in the metric's space
    (``embed`` (m, k)) with ``embed_owner`` and ``embed_frame``. Either kind may be None."""

    owner: np.ndarray | None = None
    frame: np.ndarray | None = None
    hsv: np.ndarray | None = None
    embed_owner: np.ndarray | None = None
    embed_frame: np.ndarray | None = None
    embed: np.ndarray | None = None


# --------------------------------------------------------------------------- appearance ranges


def _hsv_mean(rows: np.ndarray) -> np.ndarray:
    d = rows.mean(axis=0)
    return d / max(float(d.sum()), 1e-12)


def _halves(owner, frame, X, mean) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Tracklet -> (mean of the first half of its usable crops by time, of the second half)."""
    if owner is None or X is None or not len(owner):
        return {}
    owner = np.asarray(owner, np.int64)
    frame = np.asarray(frame, np.int64)
    X = np.asarray(X, float)
    usable = ~np.isnan(X).any(axis=1)
    out = {}
    for t in np.unique(owner[usable]).tolist():
        rows = np.flatnonzero(usable & (owner == t))
        if len(rows) < 2:
            continue
        rows = rows[np.argsort(frame[rows], kind="stable")]
        half = (len(rows) + 1) // 2
        out[t] = (mean(X[rows[:half]]), mean(X[rows[half:]]))
    return out


def _half_vectors(crops: CropFeatures):
    """(hsv1, hsv2, emb1, emb2) over the tracklets with two usable crops of some kind, NaN rows
    where a tracklet lacks that kind (None: no tracklet has it), as link_distances takes them."""
    kinds = [_halves(crops.owner, crops.frame, crops.hsv, _hsv_mean),
             _halves(crops.embed_owner, crops.embed_frame, crops.embed, lambda r: r.mean(0))]
    ids = sorted(set(kinds[0]) | set(kinds[1]))
    if not ids:
        return None
    out = []
    for k in kinds:
        if not k:
            out += [None, None]
            continue
        dim = len(next(iter(k.values()))[0])
        for side in (0, 1):
            out.append(np.array([k[t][side] if t in k else np.full(dim, np.nan) for t in ids]))
    return tuple(out)


def _range(values: np.ndarray, source: str, fallback: tuple[float, float, float]) -> Range:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if len(v) < MIN_RANGE_SAMPLES:
        return Range(*fallback, n=int(len(v)), source="group's thresholds")
    lo, mid, hi = np.percentile(v, [10, 50, 90])
    return Range(float(lo), float(mid), float(hi), n=int(len(v)), source=source)


def appearance_ranges(desc: dict, crops: CropFeatures | None, cooccur: Iterable[tuple[int, int]],
                      settings: GroupSettings) -> tuple[Range, Range]:
    """This video's same-person and different-people distance ranges (see the module doc).

    ``desc``: tracklet -> (colour descriptor or None, embedding or None), as ``group`` uses them.
    Without enough samples, ``group``'s thresholds stand in: same around ``app_strong`` (the
    most ``group`` trusts to join without motion), different around ``2.5 * app_strong``.
    """
    from ptrack.persons.appearance import link_distances
    from ptrack.persons.group import _pair_vectors

    p = settings
    same_fb = (p.app_strong * 0.5, p.app_strong, min(1.0, p.app_strong * 2.0))
    diff_fb = (min(1.0, p.app_strong * 1.5), min(1.0, p.app_strong * 2.5), min(1.0, p.app_strong * 3.5))
    same = np.zeros(0)
    if crops is not None:
        vec = _half_vectors(crops)
        if vec is not None:
            same, _ = link_distances(*vec)
    pairs = sorted({(min(a, b), max(a, b)) for a, b in cooccur if a in desc and b in desc})
    source = "on screen together"
    if len(pairs) < MIN_RANGE_SAMPLES:
        ids = sorted(desc)
        i, j = np.triu_indices(len(ids), 1)
        if len(i) > RANGE_PAIRS:  # a spread sample is as good as all (deterministic)
            pick = np.linspace(0, len(i) - 1, RANGE_PAIRS).astype(np.int64)
            i, j = i[pick], j[pick]
        pairs = [(ids[x], ids[y]) for x, y in zip(i.tolist(), j.tolist())]
        source = "all tracklet pairs"
    diff = np.zeros(0)
    if pairs and desc:
        pa = np.array([x for x, _ in pairs], np.int64)
        pb = np.array([y for _, y in pairs], np.int64)
        diff, _ = link_distances(*_pair_vectors(desc, pa, pb))
    return _range(same, "tracklet halves", same_fb), _range(diff, source, diff_fb)


def cooccurring(tid: np.ndarray, frame: np.ndarray, xyxy: np.ndarray,
                max_iou: float = 0.5) -> set[tuple[int, int]]:
    """:func:`ptrack.persons.metric.cooccurring` (tracklets that share a frame, less those
    boxed twice: IoU above ``max_iou`` in a shared frame), vectorised by offsets within each
    frame's rows: the same pairs, about 50x faster on a 30-minute video (12 s there)."""
    from ptrack.persons.metric import _iou_rows

    tid = np.asarray(tid, np.int64).reshape(-1)
    frame = np.asarray(frame, np.int64).reshape(-1)
    ok = np.flatnonzero(tid >= 0)
    order = ok[np.lexsort((tid[ok], frame[ok]))]
    f, t, b = frame[order], tid[order], np.asarray(xyxy, np.float64).reshape(-1, 4)[order]
    n = len(f)
    lo_l, hi_l, twice_l = [], [], []
    for d in range(1, n):
        i = np.flatnonzero(f[: n - d] == f[d:])  # rows d apart in one frame
        if not len(i):
            break  # rows are sorted by frame: no frame holds more than d rows
        j = i + d
        keep = t[i] != t[j]
        i, j = i[keep], j[keep]
        lo_l.append(np.minimum(t[i], t[j]))
        hi_l.append(np.maximum(t[i], t[j]))
        twice_l.append(_iou_rows(b[i], b[j]) > max_iou)
    if not lo_l:
        return set()
    lo, hi, twice = np.concatenate(lo_l), np.concatenate(hi_l), np.concatenate(twice_l)
    base = int(hi.max()) + 1 if len(hi) else 1
    code = lo * base + hi
    pairs = np.setdiff1d(np.unique(code), np.unique(code[twice]))
    return {(int(c // base), int(c % base)) for c in pairs}


# --------------------------------------------------------------------------------- the pairs


PAIR_BLOCK = 512
"""Persons per block of the pairwise distance products (a block x persons matrix at a time)."""


def _pair_distances(desc: dict, units: np.ndarray, ia: np.ndarray, ib: np.ndarray
                    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """:func:`ptrack.persons.appearance.link_distances` of the pairs ``(units[ia], units[ib])``
    (the same numbers up to rounding), as matrix products over blocks of persons: gathering
    two (pairs x dim) arrays took 15 s for the million pairs of a 30-minute video."""
    from ptrack.persons.appearance import EMBED_UNIT

    n = len(ia)
    parts = {"hsv": np.full(n, np.nan), "embed": np.full(n, np.nan)}
    for kind, name in ((0, "hsv"), (1, "embed")):
        vecs = [desc.get(int(u), (None, None))[kind] for u in units.tolist()]
        dim = next((len(v) for v in vecs if v is not None), 0)
        if not dim:
            continue
        X = np.zeros((len(units), dim))
        ok = np.zeros(len(units), bool)
        for i, v in enumerate(vecs):
            if v is not None and np.all(np.isfinite(v)):
                X[i], ok[i] = v, True
        if name == "hsv":  # Hellinger distance of each half, averaged (appearance_distance)
            halves = [slice(0, dim // 2), slice(dim // 2, dim)] if dim % 2 == 0 else [slice(0, dim)]
            roots = []
            for sl in halves:
                h = X[:, sl]
                roots.append(np.sqrt(h / np.maximum(h.sum(1, keepdims=True), 1e-300)))
        else:
            sq = (X * X).sum(1)
        out = np.full(n, np.nan)
        for lo in range(0, len(units), PAIR_BLOCK):
            sel = np.flatnonzero((ia >= lo) & (ia < lo + PAIR_BLOCK))
            if not len(sel):
                continue
            r, c = ia[sel] - lo, ib[sel]
            if name == "hsv":
                d = np.zeros(len(sel))
                for R in roots:
                    bc = (R[lo:lo + PAIR_BLOCK] @ R.T)[r, c]
                    d += np.sqrt(np.maximum(0.0, 1.0 - np.minimum(1.0, bc)))
                d /= len(roots)
            else:
                g = (X[lo:lo + PAIR_BLOCK] @ X.T)[r, c]
                d = np.minimum(1.0, EMBED_UNIT * np.sqrt(np.maximum(sq[ia[sel]] + sq[c] - 2 * g, 0.0)))
            out[sel] = d
        parts[name] = np.where(ok[ia] & ok[ib], out, np.nan)
    both = np.stack([parts["hsv"], parts["embed"]])
    count = (~np.isnan(both)).sum(0)
    with np.errstate(invalid="ignore"):
        dist = np.where(count > 0, np.nansum(both, 0) / np.maximum(count, 1), np.nan)
    return dist, parts



def _where(xyxy: np.ndarray, width: float, height: float) -> tuple:
    """(``left``/``right``/``top``/``bottom``/``inside``, x share, y share) of a box."""
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    cx, cy = (x1 + x2) / 2, y1
    if not width or not height:
        return ("inside", float("nan"), float("nan"))
    ex, ey = EDGE_SHARE * width, EDGE_SHARE * height
    side = ("left" if x1 <= ex else "right" if x2 >= width - ex else
            "bottom" if y2 >= height - ey else "top" if y1 <= ey else "inside")
    return (side, cx / width, cy / height)


def _fills_gap(ra: np.ndarray, rb: np.ndarray, frame, xyxy, fps: float, p) -> tuple:
    """(longer gap s, motion ratio, scale ratio) of person b (rows ``rb``) seen inside a gap
    of person a (rows ``ra``; both sorted by frame). a's boxes on either side of the gap,
    interpolated to b's first and last frames, say where a would be: b's boxes there are
    judged against ``group``'s gates at the time to the nearer side (position error in box
    heights over ``pos_tol + pos_tol_per_s * t``, |log height ratio| over ``scale_tol +
    scale_tol_per_s * t``); the worse of the two counts. NaN ratios when a has no box on one
    side."""
    fa, fb = frame[ra], frame[rb]
    before, after = ra[fa < fb[0]], ra[fa > fb[-1]]
    if not len(before) or not len(after):
        return 0.0, np.nan, np.nan
    x0, x1 = before[-1], after[0]
    f0, f1 = float(frame[x0]), float(frame[x1])
    b0, b1 = xyxy[x0].astype(float), xyxy[x1].astype(float)
    worst_m = worst_s = 0.0
    for y in (rb[0], rb[-1]):
        fy = float(frame[y])
        w = (fy - f0) / max(f1 - f0, 1.0)
        pred, got = b0 * (1 - w) + b1 * w, xyxy[y].astype(float)
        hp, hg = max(pred[3] - pred[1], 1.0), max(got[3] - got[1], 1.0)
        t = min(fy - f0, f1 - fy) / fps
        dist = np.hypot((pred[0] + pred[2] - got[0] - got[2]) / 2, pred[1] - got[1]) / np.sqrt(hp * hg)
        worst_m = max(worst_m, dist / (p.pos_tol + p.pos_tol_per_s * t))
        worst_s = max(worst_s, abs(np.log(hp / hg)) / (p.scale_tol + p.scale_tol_per_s * t))
    return max(float(frame[rb[0]]) - f0, f1 - float(frame[rb[-1]])) / fps, worst_m, worst_s


def _boxed_twice(ra: np.ndarray, rb: np.ndarray, frame, xyxy) -> bool:
    """Whether persons a and b (rows ``ra``, ``rb``, sorted by frame) are one person boxed
    twice at a hand-over: in every frame both have, one box lies inside the other (at least
    ``BOXED_TWICE`` of its area), as when a detector boxes a person together with what stands
    behind. (Two people passing one behind the other overlap in some frames, not all.)"""
    fa, fb = frame[ra], frame[rb]
    shared = np.intersect1d(fa, fb)
    if not len(shared):
        return False
    a = xyxy[ra[np.searchsorted(fa, shared)]].astype(float)
    b = xyxy[rb[np.searchsorted(fb, shared)]].astype(float)
    area = lambda x: np.clip(x[:, 2] - x[:, 0], 0, None) * np.clip(x[:, 3] - x[:, 1], 0, None)  # noqa: E731
    held = intersection(a, b) / np.maximum(np.minimum(area(a), area(b)), 1e-9)
    return bool((held >= BOXED_TWICE).all())


def suggest_merges(
    tracklet_ids: np.ndarray,
    person_of_tracklet: np.ndarray,
    tid: np.ndarray,
    frame: np.ndarray,
    xyxy: np.ndarray,
    conf: np.ndarray,
    *,
    fps: float,
    width: float = 0.0,
    height: float = 0.0,
    descriptors: dict[int, np.ndarray] | None = None,
    embeddings: dict[int, np.ndarray] | None = None,
    crops: CropFeatures | None = None,
    cannot_link: Iterable[tuple[int, int]] = (),
    settings: GroupSettings,
    max_key: float | None = None,
) -> Suggestions:
    """Rank the pairs of persons that may be one human (see the module doc).

    Args:
        tracklet_ids, person_of_tracklet: The grouping (:class:`ptrack.persons.group.GroupResult`).
        tid, frame, xyxy, conf: The tracklet rows ``group`` took (tid -1 = untracked).
        fps: The video's frame rate.
        width, height: The frame size (for where a person leaves and enters).
        descriptors, embeddings: Per-tracklet appearance, as ``group`` takes it.
        crops: Per-crop features for the same-person range (None: ``group``'s thresholds).
        cannot_link: Tracklet pairs the user keeps apart; persons holding such a pair are
            never suggested.
        settings: ``group``'s settings (its gates, ``suggest_loosen``, ``suggest_max_gap_s``).
        max_key: Only the pairs whose rank key is at most this (the others are dropped as
            early as possible: a long video has a million pairs); None for every pair.

    Returns:
        :class:`Suggestions`, best first; deterministic.
    """
    from ptrack.persons.group import _dedupe, _link_features, _states
    p = settings
    if not fps or fps <= 0:
        raise PtrackError(f"fps must be positive, got {fps}")
    fps = float(fps)
    L = float(p.suggest_loosen)
    tracklet_ids = np.asarray(tracklet_ids, np.int64)
    person_of_tracklet = np.asarray(person_of_tracklet, np.int64)
    tid = np.asarray(tid, np.int64).reshape(-1)
    frame = np.asarray(frame, np.int64).reshape(-1)
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    conf = np.asarray(conf, np.float32).reshape(-1)
    person_of = dict(zip(tracklet_ids.tolist(), person_of_tracklet.tolist()))

    desc_t: dict[int, tuple] = {}
    for t in tracklet_ids.tolist():
        h = descriptors.get(t) if descriptors else None
        e = embeddings.get(t) if embeddings else None
        if h is not None or e is not None:
            desc_t[t] = (h, e)
    co = cooccurring(tid, frame, xyxy=xyxy)
    same, diff = appearance_ranges(desc_t, crops, co, p) if desc_t else (
        Range(np.nan, np.nan, np.nan, 0, "no appearance"),
        Range(np.nan, np.nan, np.nan, 0, "no appearance"))
    notes = []
    if not desc_t:
        notes.append("no appearance (no crops): suggestions rest on motion alone")

    rows = np.flatnonzero(np.isin(tid, tracklet_ids))
    unit = np.full(len(tid), -1, np.int64)
    unit[rows] = np.array([person_of[int(t)] for t in tid[rows]], np.int64) if len(rows) else []
    if not len(rows):
        return Suggestions([], same, diff, notes)
    S = _states(unit, frame, xyxy, conf, rows, fps, p)
    U = len(S.units)
    members: dict[int, list[int]] = {}
    for t, owner in person_of.items():
        members.setdefault(int(owner), []).append(int(t))

    # person descriptors: the mean of its tracklets' (as group's _unit_appearance)
    desc_p: dict[int, tuple] = {}
    for u in S.units.tolist():
        hs = [np.asarray(desc_t[t][0], float) for t in members[u] if t in desc_t and desc_t[t][0] is not None]
        es = [np.asarray(desc_t[t][1], float) for t in members[u] if t in desc_t and desc_t[t][1] is not None]
        h = None
        if hs:
            h = np.mean(hs, axis=0)
            h = h / max(h.sum(), 1e-12)
        e = np.mean(es, axis=0) if es else None
        if h is not None or e is not None:
            desc_p[u] = (h, e)

    # candidate pairs: ia starts first (ties: ends first, then id); window on the gap
    over = int(round(p.handover_s * fps))
    max_gap = int(round(p.suggest_max_gap_s * fps))
    order = np.lexsort((S.units, S.end, S.start))
    starts = S.start[order]
    hi = np.searchsorted(starts, S.end[order] + max_gap, side="right")
    lo = np.arange(1, U + 1)
    cnt = np.maximum(hi - lo, 0)
    pos_a = np.repeat(np.arange(U), cnt)
    offs = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    ia = order[pos_a]
    ib = order[np.repeat(lo, cnt) + offs]
    if not len(ia):
        return Suggestions([], same, diff, notes)

    def appearance(ia, ib):
        if desc_p:
            return _pair_distances(desc_p, S.units, ia, ib)
        nan = np.full(len(ia), np.nan)
        return nan, {"hsv": nan, "embed": nan}

    span = max(diff.mid - same.mid, 0.02) if np.isfinite(diff.mid) and np.isfinite(same.mid) else np.nan

    def place(app):
        has = np.isfinite(app)
        return has, (np.where(has, (app - same.mid) / span, 0.5) if np.isfinite(span)
                     else np.full(len(app), 0.5))

    inside = S.start[ib] < S.end[ia] - over
    gap_s = np.where(inside, 0.0, np.maximum(S.start[ib] - S.end[ia], 0) / fps)
    app, parts = appearance(ia, ib)
    has_app, position = place(app)
    # appearance alone (no motion to back it) makes a near miss only clearly below the
    # different-people range of this video (its 10th percentile)
    app_alone = min(1.0, L * p.app_strong, diff.lo if np.isfinite(diff.lo) else 1.0)
    if max_key is not None:  # drop the pairs no bonus can bring to max_key before the costly part
        # (a person seen inside another's gap is judged at that gap's ends: it may fit)
        window = np.where(has_app, max(p.max_gap_s, p.motion_max_gap_s), p.motion_max_gap_s)
        may_fit = (inside | (gap_s <= L * window)) & (~has_app | (app <= min(1.0, L * p.app_max)))
        may_near = may_fit | (has_app & (app <= app_alone) & (gap_s <= L * p.max_gap_s))
        best = (position + GAP_PENALTY * np.log2(np.maximum(gap_s / max(p.max_gap_s, 1e-9), 1.0))
                - np.where(inside | (gap_s <= L * p.motion_max_gap_s), MOTION_BONUS, 0.0)
                + np.where(may_near, 0.0, OUTSIDE_PENALTY))
        hope = best <= max_key
        ia, ib, app, position, has_app = ia[hope], ib[hope], app[hope], position[hope], has_app[hope]
        parts = {k: v[hope] for k, v in parts.items()}
    # never on screen together: shared observed frames at most a hand-over
    span_overlap = (S.start[ib] <= S.end[ia]) & (S.start[ia] <= S.end[ib])
    keep = np.ones(len(ia), bool)
    for e in np.flatnonzero(span_overlap):
        n = len(np.intersect1d(S.frames[ia[e]], S.frames[ib[e]], assume_unique=True))
        keep[e] = n <= over
    cannot: dict[int, set[int]] = {}
    for a, b in cannot_link:
        pa, pb = person_of.get(int(a)), person_of.get(int(b))
        if pa is not None and pb is not None:
            cannot.setdefault(pa, set()).add(pb)
            cannot.setdefault(pb, set()).add(pa)
    for e in np.flatnonzero(keep):
        if int(S.units[ib[e]]) in cannot.get(int(S.units[ia[e]]), ()):
            keep[e] = False
    ia, ib, app, position, has_app = ia[keep], ib[keep], app[keep], position[keep], has_app[keep]
    parts = {k: v[keep] for k, v in parts.items()}
    if not len(ia):
        return Suggestions([], same, diff, notes)
    ua, ub = S.units[ia], S.units[ib]

    # motion across the gap, with group's own features; b inside a gap of a: both ends of it
    inside = S.start[ib] < S.end[ia] - over
    feat = _link_features(S, ia, ib, fps, p)
    gap_s = np.where(inside, 0.0, feat["gap_s"])
    m = feat["motion"] / feat["motion_tol"]
    s = feat["scale"] / feat["scale_tol"]
    dd = _dedupe(unit, frame, conf, rows)  # sorted by (unit, frame), as S.frames
    bounds = np.flatnonzero(np.r_[True, unit[dd][1:] != unit[dd][:-1], True])
    rows_of = dict(zip(unit[dd][bounds[:-1]].tolist(),
                       (dd[x:y] for x, y in zip(bounds[:-1], bounds[1:]))))
    for e in np.flatnonzero(inside):
        gap_s[e], m[e], s[e] = _fills_gap(rows_of[int(S.units[ia[e]])], rows_of[int(S.units[ib[e]])],
                                          frame, xyxy, fps, p)
    inside &= ~np.isfinite(m)  # judged like a link when both ends of the gap are known
    twice = np.zeros(len(ia), bool)
    for e in np.flatnonzero((S.start[ib] <= S.end[ia]) & (S.start[ia] <= S.end[ib])):
        if _boxed_twice(rows_of[int(S.units[ia[e]])], rows_of[int(S.units[ib[e]])], frame, xyxy):
            m[e] = s[e] = 0.0  # one person boxed twice at the hand-over: the motion agrees
            inside[e], twice[e] = False, True
    q = np.maximum(m, s)
    # group judges motion up to its candidate window (longer with appearance), the bonus and
    # penalty only count on short gaps (over a long one a person can be anywhere)
    window = np.where(has_app, max(p.max_gap_s, p.motion_max_gap_s), p.motion_max_gap_s)
    judged = ~inside & (gap_s <= L * window)
    short = ~inside & (gap_s <= L * p.motion_max_gap_s)
    motion = np.where(judged, m, np.nan)
    scale = np.where(judged, s, np.nan)
    fits = judged & (q <= L)
    # group's gates, and the same gates one step (suggest_loosen) looser
    in_group = (~inside & (gap_s <= window) & (q <= 1) & (~has_app | (app <= p.app_max))) | \
        (has_app & (app <= p.app_strong) & (gap_s <= p.max_gap_s))
    # how far outside the loose gates (0 inside, 1 clearly out): by motion, a soft edge from
    # the loose gate (q = L) to twice it; by appearance alone, in or out
    out_motion = np.where(judged & (~has_app | (app <= min(1.0, L * p.app_max))),
                          np.clip(np.nan_to_num(q / L - 1.0, nan=1.0), 0.0, 1.0), 1.0)
    out_app = np.where(has_app & (app <= app_alone) & (gap_s <= L * p.max_gap_s), 0.0, 1.0)
    outside = np.minimum(out_motion, out_app) if desc_p else out_motion
    near_miss = outside == 0.0
    key = position.astype(float).copy()
    key -= np.where(fits & short, MOTION_BONUS * (1 - q / L), 0.0)
    key += np.where(short, MOTION_PENALTY * np.clip(np.nan_to_num(q / L - 2.0), 0.0, 1.0), 0.0)
    key += GAP_PENALTY * np.log2(np.maximum(gap_s / max(p.max_gap_s, 1e-9), 1.0))
    key += OUTSIDE_PENALTY * outside
    rank = np.lexsort((ub, ua, key))
    if max_key is not None:
        rank = rank[key[rank] <= max_key]

    # last box of a, first box of b (most confident of the frame)
    first_row, last_row = {}, {}
    for r in dd.tolist():
        u = int(unit[r])
        first_row.setdefault(u, r)
        last_row[u] = r
    items = []
    for e in rank.tolist():
        a, b = int(ua[e]), int(ub[e])
        items.append(Suggestion(
            a=a, b=b, key=float(key[e]), app=float(app[e]),
            parts={k: float(v[e]) for k, v in parts.items() if np.isfinite(v[e])},
            position=float(position[e]) if has_app[e] else float("nan"),
            gap_s=float(gap_s[e]), a_end=int(S.end[ia[e]]), b_start=int(S.start[ib[e]]),
            motion=float(motion[e]), scale=float(scale[e]),
            exit=_where(xyxy[last_row[a]], width, height),
            entry=_where(xyxy[first_row[b]], width, height),
            near_miss=bool(near_miss[e]), in_group_gates=bool(in_group[e]),
            boxed_twice=bool(twice[e])))
    return Suggestions(items, same, diff, notes)


def kept(items: list[Suggestion]) -> list[Suggestion]:
    """The suggestions worth showing (best first): rank key at most ``MAX_KEY``, each person
    in at most one of them (its best), at most ``KEEP_MAX``.

    One decision per person at a time: a person's other candidates depend on the answer to
    its best one (a fragment accepted into one person is on screen with the other candidate,
    or no longer a fragment), so they come when the list is made again after that answer."""
    out, seen = [], set()
    for s in items:
        if s.key > MAX_KEY or s.a in seen or s.b in seen:
            continue
        out.append(s)
        seen.update((s.a, s.b))
        if len(out) == KEEP_MAX:
            break
    return out
