"""Which persons are one human over the whole video: clustering with cannot-link constraints.

Pure: arrays and dicts in, a list of joins out. Runs after ``group``'s links between tracklet
ends and starts (``ptrack.persons.group``), on the persons they made. Two persons that are on
screen together (more than the hand-over overlap) can never be one human: a hard constraint,
and also the video's own evidence of what *different* looks like. Agglomerative clustering
(average of the members' appearance, as a joined person's descriptor is in linking) joins the
closest pair of clusters that

* never share the screen (with each other, nor with the user's splits),
* have an appearance distance of at most ``max_distance``, and
* are closer to each other by at least ``margin`` than either is to any person it shares the
  screen with (its nearest certainly-different person; for a person never on screen with
  anyone, the 10th percentile of the distances of all persons seen together: a video where
  nobody is ever seen with anyone has no measure of "different", and nothing is joined there);

then recomputes that cluster's distances and repeats until no pair qualifies. No gap limit and
no number of humans is given: the constraints and the margin decide.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Join:
    """One clustering join and its evidence (what ``group --explain`` shows)."""

    a: list[int]  # tracklets of one side
    b: list[int]  # tracklets of the other
    distance: float  # appearance distance of the two sides
    nearest_different: float  # least distance of either side to a person on screen with it
    max_distance: float
    margin: float
    overlap: int = 0  # frames the two share (within the hand-over allowance)
    parts: dict = field(default_factory=dict)


def _mean(vectors: list, normalise: bool) -> np.ndarray | None:
    vs = [np.asarray(v, float) for v in vectors if v is not None]
    if not vs:
        return None
    m = np.mean(vs, axis=0)
    return m / max(m.sum(), 1e-12) if normalise else m


def _descriptor(members: list[int], hsv: dict | None, embed: dict | None) -> tuple:
    return (_mean([hsv.get(t) for t in members], True) if hsv else None,
            _mean([embed.get(t) for t in members], False) if embed else None)


def _distances(one: tuple, others: list[tuple]) -> np.ndarray:
    """Appearance distance of ``one`` to each of ``others`` (NaN where either lacks one)."""
    from ptrack.persons.appearance import link_distances

    n = len(others)
    if n == 0:
        return np.zeros(0)
    kinds = []
    for k in (0, 1):
        dims = [len(d[k]) for d in [one, *others] if d[k] is not None]
        if not dims or one[k] is None:
            kinds += [None, None]
            continue
        a = np.tile(one[k], (n, 1))
        b = np.full((n, dims[0]), np.nan)
        for i, d in enumerate(others):
            if d[k] is not None:
                b[i] = d[k]
        kinds += [a, b]
    if kinds[0] is None and kinds[2] is None:
        return np.full(n, np.nan)
    dist, _ = link_distances(*kinds)
    return dist


def pair_evidence(a: list[int], b: list[int], clusters: list[list[int]], frames_of: dict,
                  hsv: dict | None, embed: dict | None, over: int) -> dict:
    """The clustering criteria of two sides ``a`` and ``b`` (tracklet lists) among the other
    ``clusters``: distance, frames shared, and each side's nearest person on screen with it."""
    da, db = _descriptor(a, hsv, embed), _descriptor(b, hsv, embed)
    fa = np.unique(np.concatenate([frames_of[t] for t in a]))
    fb = np.unique(np.concatenate([frames_of[t] for t in b]))
    shared = int(len(np.intersect1d(fa, fb, assume_unique=True)))
    dist = float(_distances(da, [db])[0])
    nearest = np.inf
    others = [c for c in clusters if not set(c) & (set(a) | set(b))]
    for side, fs in ((da, fa), (db, fb)):
        on_screen = [c for c in others if len(np.intersect1d(
            fs, np.unique(np.concatenate([frames_of[t] for t in c])), assume_unique=True)) > over]
        if on_screen:
            d = _distances(side, [_descriptor(c, hsv, embed) for c in on_screen])
            if np.isfinite(d).any():
                nearest = min(nearest, float(np.nanmin(d)))
    if not np.isfinite(nearest):
        nearest = _video_scale(clusters, frames_of, hsv, embed, over)
    return {"distance": dist, "overlap": shared, "nearest_different": nearest}


def _video_scale(clusters, frames_of, hsv, embed, over) -> float:
    """10th percentile of the distances of clusters seen together (-inf when none are)."""
    clusters = [c for c in clusters if c]
    if len(clusters) < 2:
        return -np.inf
    shared = _shared_frames(clusters, frames_of)
    desc = [_descriptor(c, hsv, embed) for c in clusters]
    ds = []
    for i in range(len(clusters)):
        j = np.flatnonzero(shared[i, i + 1:] > over) + i + 1
        if len(j):
            ds += list(_distances(desc[i], [desc[k] for k in j]))
    ds = [d for d in ds if np.isfinite(d)]
    return float(np.quantile(ds, 0.1)) if ds else -np.inf


def _shared_frames(clusters: list[list[int]], frames_of: dict) -> np.ndarray:
    """Frames each pair of clusters both hold (n x n ints), by one sparse product."""
    from scipy.sparse import csr_matrix

    rows, cols = [], []
    for i, p in enumerate(clusters):
        fs = np.unique(np.concatenate([frames_of[t] for t in p]))
        rows.append(np.full(len(fs), i))
        cols.append(fs)
    r, c = np.concatenate(rows), np.concatenate(cols)
    m = csr_matrix((np.ones(len(r), np.int32), (r, c)), shape=(len(clusters), int(c.max()) + 1))
    return np.asarray((m @ m.T).todense(), dtype=np.int64)


def cluster_persons(
    persons: list[list[int]],
    frames_of: dict[int, np.ndarray],
    *,
    hsv: dict | None,
    embed: dict | None,
    max_distance: float,
    margin: float,
    over: int,
    cannot: dict[int, set[int]] | None = None,
) -> list[Join]:
    """Join persons that are one human, by appearance under cannot-link constraints.

    Args:
        persons: Each person's tracklet ids (the persons linking made).
        frames_of: Observed frames of each tracklet (sorted int arrays).
        hsv: Colour descriptor per tracklet (or None).
        embed: Embedding vector per tracklet (or None).
        max_distance: Largest appearance distance (0-1) of a join; 0 = no clustering.
        margin: How much closer the two must be to each other than either is to its nearest
            person on screen with it.
        over: Frames two persons may share (a hand-over) and still be joined.
        cannot: User splits: tracklet -> tracklets it must never share a person with.

    Returns:
        The joins in the order made; each side lists its tracklets at the time of the join.
    """
    if max_distance <= 0 or len(persons) < 2 or not (hsv or embed):
        return []
    cannot = cannot or {}
    clusters = [list(p) for p in persons]
    n = len(clusters)
    shared = _shared_frames(clusters, frames_of)
    desc = [_descriptor(p, hsv, embed) for p in clusters]
    D = np.full((n, n), np.nan)
    for i in range(n):
        D[i, i + 1:] = _distances(desc[i], desc[i + 1:])
        D[i + 1:, i] = D[i, i + 1:]
    alive = np.ones(n, bool)
    user = np.zeros((n, n), bool)
    owner = {t: i for i, p in enumerate(clusters) for t in p}
    for t, others in cannot.items():
        for u in others:
            if t in owner and u in owner:
                user[owner[t], owner[u]] = user[owner[u], owner[t]] = True
    joins: list[Join] = []
    while True:
        apart = shared > over
        np.fill_diagonal(apart, False)
        seen = apart & alive[None, :] & alive[:, None] & np.isfinite(D)
        neg = np.where(seen, D, np.inf).min(axis=1)
        # a person never on screen with anyone takes the video's own scale of "different"
        # (the 10th percentile of the distances of persons seen together); a video where
        # nobody is ever seen with anyone gives no such scale, and nothing is joined
        scale = float(np.quantile(D[seen], 0.1)) if seen.any() else -np.inf
        neg = np.where(np.isfinite(neg), neg, scale)
        ok = ~apart & ~user & alive[:, None] & alive[None, :] & np.isfinite(D)
        np.fill_diagonal(ok, False)
        ok &= D <= max_distance
        ok &= D + margin <= np.minimum(neg[:, None], neg[None, :])
        if not ok.any():
            return joins
        cand = np.where(ok, D, np.inf)
        i, j = np.unravel_index(int(np.argmin(cand)), cand.shape)
        i, j = (i, j) if i < j else (j, i)
        joins.append(Join(a=sorted(clusters[i]), b=sorted(clusters[j]), distance=float(D[i, j]),
                          nearest_different=float(min(neg[i], neg[j])), max_distance=max_distance,
                          margin=margin, overlap=int(shared[i, j])))
        clusters[i] = clusters[i] + clusters[j]
        clusters[j] = []
        alive[j] = False
        # frames shared with the joined cluster (i and j themselves share at most `over`)
        shared[i, :] += shared[j, :]
        shared[:, i] = shared[i, :]
        shared[j, :] = shared[:, j] = 0
        user[i] |= user[j]
        user[:, i] |= user[:, j]
        desc[i] = _descriptor(clusters[i], hsv, embed)
        d = _distances(desc[i], desc)
        d[~alive] = np.nan
        D[i, :] = D[:, i] = d
        D[i, i] = np.nan
        D[j, :] = D[:, j] = np.nan


def explain_rows(a: list[int], b: list[int], joins: list[Join], persons: list[list[int]],
                 frames_of: dict, hsv: dict | None, embed: dict | None, *, over: int,
                 max_distance: float, margin: float) -> list[dict]:
    """``group --explain`` rows of the clustering for tracklets ``a`` and ``b`` (each side's
    tracklets): the join that brought them together with its evidence, else the criteria of
    their two final persons now. Same row layout as :func:`ptrack.persons.group.explain`."""

    def row(name, value, thr, ok):
        return {"criterion": name, "value": float(value), "threshold": float(thr),
                "verdict": "n/a" if ok is None else ("pass" if ok else "fail")}

    sa, sb = set(a), set(b)
    for j in joins:
        if (sa & set(j.a) and sb & set(j.b)) or (sb & set(j.a) and sa & set(j.b)):
            return [
                row("cluster: frames on screen together", j.overlap, over, True),
                row("cluster: appearance distance", j.distance, max_distance, True),
                row("cluster: nearest person on screen with either, minus distance",
                    j.nearest_different - j.distance, margin, True),
                row("cluster join (after linking; tracklets "
                    f"{','.join(map(str, j.a))} + {','.join(map(str, j.b))})",
                    j.distance, max_distance, True),
            ]
    pa = next((p for p in persons if sa & set(p)), list(a))
    pb = next((p for p in persons if sb & set(p)), list(b))
    if set(pa) == set(pb):
        return [row("cluster join (one person by links already)", np.nan, max_distance, None)]
    if max_distance <= 0 or not (hsv or embed):
        return [row("cluster join (off: group.cluster_max 0 or no appearance)", np.nan,
                    max_distance, None)]
    ev = pair_evidence(pa, pb, persons, frames_of, hsv, embed, over)
    apart = ev["overlap"] > over
    near = bool(np.isfinite(ev["distance"]) and ev["distance"] <= max_distance)
    room = ev["nearest_different"] - ev["distance"]
    return [
        row("cluster: frames on screen together", ev["overlap"], over, not apart),
        row("cluster: appearance distance", ev["distance"], max_distance, near),
        row("cluster: nearest person on screen with either, minus distance", room, margin,
            bool(room >= margin)),
        row("cluster join (after linking)", ev["distance"], max_distance,
            (not apart) and near and bool(room >= margin)),
    ]
