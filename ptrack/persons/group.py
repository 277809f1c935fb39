"""Join broken tracklets into whole persons.

Pure: numpy arrays in, a frozen :class:`GroupResult` out. Every threshold is a keyword parameter
(a :class:`ptrack.settings.GroupSettings`); durations are in seconds and converted with the
video's fps.

How it decides. Each tracklet (later: each partial person) has an *end state* and a *start state*:
position (top centre of the box, which occlusion from below moves least), its velocity, estimated
robustly (Theil-Sen) over the last / first ``vel_window_s`` seconds, how far that velocity can be
trusted (``pos_noise`` over the time span it was measured on), and the median log box height. A
candidate link A -> B (B starts after A, overlapping A by at most ``handover_s``, at most
``motion_max_gap_s`` after A ends, or ``max_gap_s`` when both have appearance descriptors) is
judged by

* motion: the distance between where the person's motion across the gap predicts B's start
  (constant velocity, the two ends' velocities combined by their reliability) and where B starts,
  in box heights, against ``pos_tol + pos_tol_per_s * gap + velocity uncertainty * gap``;
* scale: |log| of the box-height ratio against ``scale_tol + scale_tol_per_s * gap`` (no fixed
  area-ratio window: a person walking away over a long gap may shrink a lot);
* appearance (when both have descriptors): distance must be <= ``app_max`` when motion agrees, or
  <= ``app_strong`` for a link the motion gate rejects (a person who leaves and comes back). The
  distance (0-1, :func:`ptrack.persons.appearance.link_distance`) is that of the colour histograms, of the
  learned embeddings, or their mean, depending on what the caller passes (``group.appearance``);
  a joined person's descriptor is the mean of its tracklets'.

A link's cost is the sum of the squared motion and scale ratios (each <= 1 inside the gates), the
weighted squared appearance ratio and ``gap_cost_per_s`` per second of gap; links costing
``no_link_cost`` or more are not made. All candidate links are chosen jointly by a min-cost
assignment (Hungarian with a no-link cost) per connected group of candidates, then accepted in cost
order subject to must-link / cannot-link constraints and the hand-over overlap limit; this repeats
(``n_rounds``) on the merged persons, whose longer histories give better motion estimates. A person
keeps one box per frame (the most confident). Gaps up to ``interp_max_s`` are filled by linear
interpolation (``source == 1``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ptrack.boxes import Boxes
from ptrack.errors import PtrackError
from ptrack.persons.sampling import intersection, same_frame_pairs
from ptrack.settings import GroupSettings

VEL_MAX_SAMPLES = 12
"""Most boxes of a velocity window fed to Theil-Sen (O(n^2) pairs); spread evenly, 12 fit a 1 s window's slope as well as all 25."""
FAR_COST_BASE, FAR_COST_SPAN = 0.5, 0.45
"""A link beyond the motion gate costs ``no_link_cost * (BASE + SPAN * (app / app_strong)^2)``: inside the accepted range, above any motion-consistent link's typical cost, so a motion-consistent alternative wins."""


@dataclass(frozen=True)
class GroupResult:
    """Tracklets joined into persons, and the persons' boxes (one per person per frame).

    Attributes:
        tracklet_ids: Sorted tracklet ids (int64, K).
        person_of_tracklet: Person id of each tracklet (int64, K); person id = its smallest tracklet id.
        person, frame: Person id and 0-based frame of each person box (int64, M), sorted by (person, frame).
        xyxy: Boxes (float32, M x 4).
        conf: Detection confidence (float32, M); 0 for interpolated boxes.
        source: 0 observed, 1 interpolated (int8, M).
        tracklet: Tracklet the box came from (int64, M); -1 for interpolated boxes.
        row: Index of the box in the input rows (int64, M); -1 for interpolated boxes.
    """

    tracklet_ids: np.ndarray
    person_of_tracklet: np.ndarray
    person: np.ndarray
    frame: np.ndarray
    xyxy: np.ndarray
    conf: np.ndarray
    source: np.ndarray
    tracklet: np.ndarray
    row: np.ndarray
    joins: tuple = ()
    """The clustering joins (:class:`ptrack.persons.cluster.Join`) made after linking."""

    def persons(self) -> np.ndarray:
        """Sorted unique person ids."""
        return np.unique(self.person_of_tracklet)

    @property
    def boxes(self) -> Boxes:
        """The person boxes as one :class:`ptrack.boxes.Boxes` (person, frame, xyxy, conf, source,
        tracklet, row columns)."""
        return Boxes(self.frame, self.xyxy, self.conf, person=self.person, source=self.source,
                     tracklet=self.tracklet, row=self.row)


# ---------------------------------------------------------------------------------------------
# parameters and inputs


def _settings(settings) -> GroupSettings:
    if not isinstance(settings, GroupSettings):
        raise PtrackError(f"group settings must be a GroupSettings, got {type(settings).__name__}")
    return settings


def _handover_ok(overlap_frames: int, over: int) -> bool:
    """Two persons may share at most ``over`` frames (a hand-over) to be joined."""
    return overlap_frames <= over


def _inputs(tid, frame, xyxy, conf):
    tid = np.asarray(tid, dtype=np.int64).reshape(-1)
    n = len(tid)
    frame = np.asarray(frame, dtype=np.int64).reshape(-1)
    xyxy = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
    conf = np.asarray(conf, dtype=np.float32).reshape(-1)
    if not (len(frame) == len(xyxy) == len(conf) == n):
        raise PtrackError(
            f"tid, frame, xyxy and conf must have one entry per row, got {n}, {len(frame)}, {len(xyxy)}, {len(conf)}"
        )
    return tid, frame, xyxy, conf


def _dedupe(unit_of_row, frame, conf, rows):
    """Rows (subset ``rows``) with at most one per (unit, frame): the highest conf, then lowest row."""
    u, f, c = unit_of_row[rows], frame[rows], conf[rows]
    order = np.lexsort((rows, -c, f, u))
    u, f = u[order], f[order]
    keep = np.ones(len(order), bool)
    keep[1:] = (u[1:] != u[:-1]) | (f[1:] != f[:-1])
    return rows[order[keep]]


# ---------------------------------------------------------------------------------------------
# end / start states


@dataclass
class _States:
    units: np.ndarray  # unit ids (sorted)
    start: np.ndarray  # first frame
    end: np.ndarray  # last frame
    n: np.ndarray  # observed frames
    s_pos: np.ndarray  # (U,2) centre at start
    s_logh: np.ndarray
    s_vel: np.ndarray  # (U,3) d(cx,cy)/frame in px, d(logh)/frame
    s_w: np.ndarray  # reliability weight of s_vel
    e_pos: np.ndarray
    e_logh: np.ndarray
    e_vel: np.ndarray
    e_w: np.ndarray
    frames: list  # sorted observed frames per unit
    alt: "_States | None" = None  # the same ends from their uncovered boxes only (group.cover_max)


def _masked_median(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``np.median`` along axis 1 over the ``valid`` entries of each row (all columns alike);
    rows need at least one valid entry. values (R, K, C), valid (R, K) -> (R, C)."""
    v = np.where(valid[:, :, None], values, np.inf)
    v.sort(axis=1)
    cnt = valid.sum(1)
    lo, hi = (cnt - 1) // 2, cnt // 2
    rows = np.arange(len(v))
    return (v[rows, lo] + v[rows, hi]) / 2


def _window_samples(first: np.ndarray, counts: np.ndarray, f: np.ndarray, win: float,
                    side: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows (into the sorted boxes) of at most ``VEL_MAX_SAMPLES`` boxes spread over each unit's
    first (``side="s"``) or last (``"e"``) ``win`` frames: (U, K) row indices and validity."""
    last = first + counts - 1
    if side == "s":  # boxes within win frames of the unit's first one
        lo = first
        hi = np.array([a + np.searchsorted(f[a:b + 1], f[a] + win, side="right") - 1
                       for a, b in zip(first.tolist(), last.tolist())], dtype=np.int64)
    else:
        hi = last
        lo = np.array([a + np.searchsorted(f[a:b + 1], f[b] - win, side="left")
                       for a, b in zip(first.tolist(), last.tolist())], dtype=np.int64)
    n = hi - lo + 1
    j = np.arange(VEL_MAX_SAMPLES)
    spread = np.round(j[None, :] * ((n - 1) / (VEL_MAX_SAMPLES - 1))[:, None]).astype(np.int64)
    offset = np.where((n > VEL_MAX_SAMPLES)[:, None], spread, j[None, :])
    valid = j[None, :] < np.minimum(n, VEL_MAX_SAMPLES)[:, None]
    return np.where(valid, lo[:, None] + offset, lo[:, None]), valid


# ``group.cover_max``: the share of a box that another box in front of it (lower bottom edge)
# may cover for the box to describe its owner's position in an end or start state. A walker's
# box cut by someone passing in front shifts towards the visible part (on a CAVIAR corridor clip
# by 10 px, 0.18 box heights, at the ends of the two pieces of a walker hidden for 0.2 s). Each
# end then has two states, from all its window's boxes and from the uncovered ones, and a link
# is judged by the one that fits it better, but only where appearance can confirm it (a
# distance within ``app_max``): ends of people walking in overlapping groups, joined on motion
# alone from their uncovered boxes, joined the wrong people (MOT15's public boxes: purity -13
# to -20 on TUD-Stadtmitte), and replacing the states outright cost crowds their coverage.
CLEAN_MIN = 3
"""Fewest uncovered boxes in an end's velocity window for the end's state to use only them."""


def box_cover(frame: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
    """Share (0-1) of each box's area covered by another box of its frame whose bottom edge is
    lower (nearer the camera: in front of it); all pairs of a frame at once, vectorised."""
    ia, ib = same_frame_pairs(frame)
    b = np.asarray(xyxy, np.float64)
    front = b[ib, 3] >= b[ia, 3]
    ia, ib = ia[front], ib[front]
    area = np.maximum((b[ia, 2] - b[ia, 0]) * (b[ia, 3] - b[ia, 1]), 1e-9)
    cover = np.zeros(len(frame))
    np.maximum.at(cover, ia, intersection(b[ia], b[ib]) / area)
    return np.minimum(cover, 1.0)


def _states(unit_of_row, frame, xyxy, conf, rows, fps, p, cover=None) -> _States:
    """End and start states of the units; with ``cover`` and ``group.cover_max`` < 1, also the
    same ends from the boxes nobody in front cuts (``alt``): a link may be judged by either."""
    if cover is not None and p.cover_max < 1.0:
        plain = _states_of(unit_of_row, frame, xyxy, conf, rows, fps, p)
        return replace(plain, alt=_states_of(unit_of_row, frame, xyxy, conf, rows, fps, p, cover))
    return _states_of(unit_of_row, frame, xyxy, conf, rows, fps, p, cover)


def _states_of(unit_of_row, frame, xyxy, conf, rows, fps, p, cover=None) -> _States:
    rows = _dedupe(unit_of_row, frame, conf, rows)  # sorted by (unit, frame)
    u_all = unit_of_row[rows]
    units, first_all, counts_all = np.unique(u_all, return_index=True, return_counts=True)
    f_all = frame[rows]
    win = max(2.0, p.vel_window_s * fps)  # frames
    side_rows = {"s": rows, "e": rows}
    if cover is not None and p.cover_max < 1.0:
        # each end's state from its window's boxes that no one in front cuts, when there are
        # CLEAN_MIN of them (else from all its window's boxes); the states stay at the unit's
        # real first and last frames, so the clean boxes are extrapolated at most one window
        clean = cover[rows] <= p.cover_max
        unit_first = np.repeat(f_all[first_all], counts_all)
        unit_last = np.repeat(f_all[first_all + counts_all - 1], counts_all)
        for side, near in (("s", f_all <= unit_first + win), ("e", f_all >= unit_last - win)):
            good = clean & near
            n_good = np.add.reduceat(good.astype(np.int64), first_all) if len(rows) else good
            use = np.repeat(n_good >= CLEAN_MIN, counts_all)
            side_rows[side] = rows[np.where(use, good, True)]
    pairs_i, pairs_j = np.triu_indices(VEL_MAX_SAMPLES, 1)
    vmax = p.max_speed / fps  # box heights per frame
    out, at, w = {}, {}, {}
    for side in ("s", "e"):
        r = side_rows[side]
        f = frame[r]
        b = xyxy[r].astype(np.float64)
        # position = top centre: occlusion by people or objects in front usually cuts the bottom
        y = np.column_stack([(b[:, 0] + b[:, 2]) / 2, b[:, 1],
                             np.log(np.maximum(b[:, 3] - b[:, 1], 1.0))])
        _, first, counts = np.unique(unit_of_row[r], return_index=True, return_counts=True)
        # Theil-Sen over each unit's samples at once: median pairwise slope, then the median
        # intercept at the window's end (t0)
        idx, valid = _window_samples(first, counts, f, win, side)
        t = f[idx].astype(np.float64)
        yy = y[idx]
        t0 = f_all[first_all if side == "s" else first_all + counts_all - 1].astype(np.float64)
        pv = valid[:, pairs_i] & valid[:, pairs_j]
        dt = t[:, pairs_j] - t[:, pairs_i]
        slopes = (yy[:, pairs_j] - yy[:, pairs_i]) / np.where(pv, dt, 1.0)[:, :, None]
        single = pv.sum(1) == 0  # one box: no slope
        v = _masked_median(slopes, pv | single[:, None])
        v[single] = 0.0
        val = _masked_median(yy - v[:, None, :] * (t - t0[:, None])[:, :, None], valid)
        h = np.exp(val[:, 2])
        speed = np.hypot(v[:, 0], v[:, 1]) / h
        fast = speed > vmax
        v[fast, :2] *= (vmax / speed[fast])[:, None]
        v[:, 2] = 0.0  # no size trend: extrapolating a shrinking (occluded) box over a gap misleads
        val[:, 2] = _masked_median(yy[:, :, 2:3], valid)[:, 0]
        n_valid = valid.sum(1)
        span = (t[np.arange(len(t)), n_valid - 1] - t[:, 0])
        out[side], at[side] = v, val
        # velocity uncertainty (box heights per frame): position noise over the span, at most the speed cap
        w[side] = np.where(span > 0, np.minimum(p.pos_noise * 2.0 / np.maximum(span, 1e-9), vmax), vmax)
    frames = np.split(f_all, (first_all + counts_all)[:-1]) if len(units) else []
    return _States(
        units=units,
        start=f_all[first_all],
        end=f_all[first_all + counts_all - 1],
        n=counts_all,
        s_pos=at["s"][:, :2],
        s_logh=at["s"][:, 2],
        s_vel=out["s"],
        s_w=w["s"],
        e_pos=at["e"][:, :2],
        e_logh=at["e"][:, 2],
        e_vel=out["e"],
        e_w=w["e"],
        frames=frames,
    )


# ---------------------------------------------------------------------------------------------
# candidate links


def _link_features(S: _States, ia: np.ndarray, ib: np.ndarray, fps: float, p: dict,
                   alt_ok: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Motion / scale errors and tolerances of links end(ia) -> start(ib), vectorised; with
    states from uncovered boxes beside (``S.alt``), each link where ``alt_ok`` takes the
    better-fitting of the two."""
    f = _link_features_of(S, ia, ib, fps, p)
    if S.alt is None or alt_ok is None or not alt_ok.any():
        return {**f, "uncovered": np.zeros(len(ia), bool), "motion_all": f["motion"],
                "motion_tol_all": f["motion_tol"]}
    g = _link_features_of(S.alt, ia, ib, fps, p)
    fit = lambda x: (x["motion"] / x["motion_tol"]) ** 2 + (x["scale"] / x["scale_tol"]) ** 2  # noqa: E731
    use = alt_ok & (fit(g) < fit(f))
    return {**{k: np.where(use, g[k], f[k]) for k in f}, "uncovered": use,
            "motion_all": f["motion"], "motion_tol_all": f["motion_tol"]}


def _link_features_of(S: _States, ia: np.ndarray, ib: np.ndarray, fps: float, p: dict) -> dict[str, np.ndarray]:
    dt = (S.start[ib] - S.end[ia]).astype(float)  # frames; negative at an overlap
    gap_s = np.maximum(dt, 0.0) / fps
    wa, wb = 1.0 / S.e_w[ia] ** 2, 1.0 / S.s_w[ib] ** 2  # inverse-variance weights of the two velocities
    v = (S.e_vel[ia] * wa[:, None] + S.s_vel[ib] * wb[:, None]) / (wa + wb)[:, None]
    sigma_v = 1.0 / np.sqrt(wa + wb)
    h = np.exp((S.e_logh[ia] + S.s_logh[ib]) / 2)
    pred = S.e_pos[ia] + v[:, :2] * dt[:, None]
    motion = np.hypot(*(S.s_pos[ib] - pred).T) / h
    motion_tol = p.pos_tol + p.pos_tol_per_s * gap_s + sigma_v * np.abs(dt)
    scale = np.abs(S.s_logh[ib] - (S.e_logh[ia] + v[:, 2] * dt))
    scale_tol = p.scale_tol + p.scale_tol_per_s * gap_s
    return dict(dt=dt, gap_s=gap_s, motion=motion, motion_tol=motion_tol, scale=scale, scale_tol=scale_tol)


def _window(p, fps: float, with_app: bool) -> tuple[int, int]:
    """(most overlap, longest gap) in frames of a candidate link; appearance allows longer gaps."""
    over = int(round(p.handover_s * fps))
    longest = max(p.max_gap_s, p.motion_max_gap_s) if with_app else p.motion_max_gap_s
    return over, int(round(longest * fps))


def _in_window(S: _States, ia, ib, over: int, max_gap: int) -> dict[str, np.ndarray]:
    """The order and gap criteria of links end(ia) -> start(ib) (B starts and ends later)."""
    order = (ia != ib) & (S.start[ib] > S.start[ia]) & (S.end[ib] > S.end[ia])
    gap = (S.start[ib] >= S.end[ia] - over) & (S.start[ib] <= S.end[ia] + max_gap)
    return dict(order_ok=order, window_ok=gap)


def _candidates(S: _States, fps: float, p, with_app: bool) -> tuple[np.ndarray, np.ndarray]:
    over, max_gap = _window(p, fps, with_app)
    order = np.argsort(S.start, kind="stable")
    starts = S.start[order]
    lo = np.searchsorted(starts, S.end - over, side="left")
    hi = np.searchsorted(starts, S.end + max_gap + 1, side="left")
    cnt = hi - lo
    ia = np.repeat(np.arange(len(S.units)), cnt)
    offs = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    ib = order[np.repeat(lo, cnt) + offs]
    w = _in_window(S, ia, ib, over, max_gap)
    ok = w["order_ok"] & w["window_ok"]
    return ia[ok], ib[ok]


def _pair_vectors(desc: dict, ua: np.ndarray, ub: np.ndarray) -> tuple:
    """(hsv_a, hsv_b, emb_a, emb_b): each side's vectors of ``desc`` (unit -> (hsv, embed)) as
    (K, dim) arrays with NaN rows where a side lacks one (None where no unit has that kind);
    a pair where either side has no entry at all gets NaN on both sides."""
    keys = list(desc)
    pos = {u: i for i, u in enumerate(keys)}
    ra = np.array([pos.get(u, -1) for u in ua.tolist()], np.int64)
    rb = np.array([pos.get(u, -1) for u in ub.tolist()], np.int64)
    both = (ra >= 0) & (rb >= 0)
    out = []
    for kind in (0, 1):
        vecs = [desc[u][kind] for u in keys]
        dim = next((len(v) for v in vecs if v is not None), 0)
        if not dim:
            out += [None, None]
            continue
        table = np.full((len(keys) + 1, dim), np.nan)
        for i, v in enumerate(vecs):
            if v is not None:
                table[i] = v
        out += [np.where(both[:, None], table[ra], np.nan), np.where(both[:, None], table[rb], np.nan)]
    return out[0], out[1], out[2], out[3]


def _link_costs(S, ia, ib, fps, p, desc) -> tuple[np.ndarray, dict]:
    """Cost of each candidate link; inf where a gate rejects it. ``feat`` holds every criterion."""
    app = np.full(len(ia), np.nan)
    parts = {"hsv": np.full(len(ia), np.nan), "embed": np.full(len(ia), np.nan)}
    if desc is not None and len(ia):
        from ptrack.persons.appearance import link_distances

        app, parts = link_distances(*_pair_vectors(desc, S.units[ia], S.units[ib]))
    has_app = ~np.isnan(app)
    # an end cut by someone in front may be judged from its uncovered boxes instead, only where
    # appearance can confirm the link (motion alone across an occlusion joins the wrong people)
    feat = _link_features(S, ia, ib, fps, p, alt_ok=has_app & (app <= p.app_max))
    m = feat["motion"] / feat["motion_tol"]
    s = feat["scale"] / feat["scale_tol"]
    motion_fit = (m <= 1.0) & (s <= 1.0)
    cost = m**2 + s**2 + p.gap_cost_per_s * feat["gap_s"]
    motion_gap_ok = has_app | (feat["gap_s"] <= p.motion_max_gap_s)  # no appearance: short gaps only
    motion_ok = motion_fit & motion_gap_ok
    app_ok_near = ~has_app | (app <= p.app_max)
    far_gap_ok = feat["gap_s"] <= p.max_gap_s
    app_ok_far = has_app & (app <= p.app_strong) & far_gap_ok
    ok_near = motion_ok & app_ok_near
    ok_far = ~ok_near & app_ok_far
    a_norm = np.where(has_app, app / max(p.app_max, 1e-9), 0.0)
    cost = np.where(ok_near, cost + p.app_weight * a_norm**2, np.inf)
    # beyond the motion gate only appearance speaks: such links rank by appearance alone, in the upper
    # part of the accepted cost range so that a motion-consistent alternative wins
    far_cost = p.no_link_cost * (FAR_COST_BASE + FAR_COST_SPAN * (app / max(p.app_strong, 1e-9)) ** 2)
    cost = np.where(ok_far, far_cost, cost)
    feat.update(app=app, app_hsv=parts["hsv"], app_embed=parts["embed"], has_app=has_app,
                cost=cost, motion_ok=motion_ok, motion_gap_ok=motion_gap_ok,
                far_gap_ok=far_gap_ok, ok_near=ok_near, ok_far=ok_far)
    return cost, feat


DENSE_ASSIGN_MAX = 400
"""Components with more ends + starts than this are solved as a sparse matching: a dense
(m + k)^2 cost matrix of a 30-minute video's largest component took seconds per round."""


def _sparse_assign(a: np.ndarray, b: np.ndarray, cost: np.ndarray, m: int, k: int,
                   half: float) -> list[tuple[int, int]]:
    """The same optimum as the dense no-link assignment in :func:`_assign`, on a sparse graph.

    Rows are the m ends and k "start left unlinked" dummies; columns the k starts and m "end
    left unlinked" dummies. Besides the links (a, b) and each node's own dummy (cost ``half``),
    the dummy of start b meets the dummy of end a only where a link (a, b) exists (cost 0):
    that is all an optimal matching needs, since the dummies pair up exactly where links are
    taken. One constant is added to every edge (a full matching has m + k edges, so the
    optimum does not move) to keep zero-cost edges in the sparse matrix.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    rows = np.concatenate([a, np.arange(m), m + b, m + np.arange(k)])
    cols = np.concatenate([b, k + np.arange(m), k + a, np.arange(k)])
    w = np.concatenate([cost, np.full(m, half), np.zeros(len(a)), np.full(k, half)]) + 1.0
    graph = csr_matrix((w, (rows, cols)), shape=(m + k, k + m))
    r, c = min_weight_full_bipartite_matching(graph)
    sel = (r < m) & (c < k)
    return list(zip(r[sel].tolist(), c[sel].tolist()))


def _assign(ia, ib, cost, no_link_cost) -> list[tuple[int, int, float]]:
    """Min-cost one-to-one links (end ia -> start ib) with a no-link option, per connected component."""
    ok = np.isfinite(cost) & (cost < no_link_cost)
    ia, ib, cost = ia[ok], ib[ok], cost[ok]
    if len(ia) == 0:
        return []
    ea, ea_inv = np.unique(ia, return_inverse=True)
    sb, sb_inv = np.unique(ib, return_inverse=True)
    na, nb = len(ea), len(sb)
    g = coo_matrix((np.ones(len(ia)), (ea_inv, na + sb_inv)), shape=(na + nb, na + nb))
    _, comp = connected_components(g, directed=False)
    edge_comp = comp[ea_inv]
    order = np.argsort(edge_comp, kind="stable")
    bounds = np.flatnonzero(np.diff(edge_comp[order])) + 1
    links = []
    half = no_link_cost / 2.0
    for grp in np.split(order, bounds):
        if len(grp) == 1:
            e = grp[0]
            links.append((int(ia[e]), int(ib[e]), float(cost[e])))
            continue
        ra, ra_inv = np.unique(ea_inv[grp], return_inverse=True)
        rb, rb_inv = np.unique(sb_inv[grp], return_inverse=True)
        m, k = len(ra), len(rb)
        if m + k > DENSE_ASSIGN_MAX:
            for i, j in _sparse_assign(ra_inv, rb_inv, cost[grp], m, k, half):
                e = grp[(ra_inv == i) & (rb_inv == j)][0]
                links.append((int(ia[e]), int(ib[e]), float(cost[e])))
            continue
        big = 1e9
        C = np.full((m + k, k + m), big)
        C[ra_inv, rb_inv] = cost[grp]
        C[np.arange(m), k + np.arange(m)] = half  # end left unlinked
        C[m + np.arange(k), np.arange(k)] = half  # start left unlinked
        C[m:, k:] = 0.0
        r, c = linear_sum_assignment(C)
        sel = (r < m) & (c < k)
        for i, j in zip(r[sel], c[sel]):
            if C[i, j] < big:
                e = grp[(ra_inv == i) & (rb_inv == j)][0]
                links.append((int(ia[e]), int(ib[e]), float(cost[e])))
    return links


# ---------------------------------------------------------------------------------------------
# union-find with constraints


class _Persons:
    """Union-find over tracklets; each root keeps its members and their frame spans."""

    def __init__(self, tracklets: np.ndarray, frames_of: dict[int, np.ndarray]):
        self.parent = {int(t): int(t) for t in tracklets}
        self.members = {int(t): [int(t)] for t in tracklets}
        self.frames_of = frames_of
        self.span = {int(t): (int(frames_of[int(t)][0]), int(frames_of[int(t)][-1])) for t in tracklets}

    def find(self, t: int) -> int:
        root = t
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[t] != root:
            self.parent[t], t = root, self.parent[t]
        return root

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        root, other = min(ra, rb), max(ra, rb)
        self.parent[other] = root
        self.members[root] += self.members.pop(other)
        return root

    def overlap(self, a: int, b: int) -> int:
        """Frames in which both persons (of tracklets a and b) have a box."""
        ma, mb = self.members[self.find(a)], self.members[self.find(b)]
        sa = np.array([self.span[t] for t in ma])
        sb = np.array([self.span[t] for t in mb])
        hit = (sa[:, None, 0] <= sb[None, :, 1]) & (sb[None, :, 0] <= sa[:, None, 1])
        total = 0
        for i, j in zip(*np.nonzero(hit)):
            total += len(np.intersect1d(self.frames_of[ma[i]], self.frames_of[mb[j]], assume_unique=True))
        return total

    def forbidden(self, a: int, b: int, cannot: dict[int, set[int]]) -> bool:
        ma, mb = self.members[self.find(a)], set(self.members[self.find(b)])
        return any(cannot.get(x, set()) & mb for x in ma)


def _constraint_pairs(pairs: Iterable, known: set[int], what: str) -> list[tuple[int, int]]:
    out = []
    for pair in pairs:
        try:
            a, b = (int(x) for x in pair)
        except (TypeError, ValueError):
            raise PtrackError(f"{what} entries must be pairs of tracklet ids, got {pair!r}") from None
        for x in (a, b):
            if x not in known:
                raise PtrackError(f"{what}: unknown tracklet id {x}", exit_code=2)
        out.append((a, b))
    return out


# ---------------------------------------------------------------------------------------------
# public API


def group_tracklets(
    tid: np.ndarray,
    frame: np.ndarray,
    xyxy: np.ndarray,
    conf: np.ndarray,
    *,
    fps: float,
    descriptors: dict[int, np.ndarray] | None = None,
    embeddings: dict[int, np.ndarray] | None = None,
    must_link: Iterable[tuple[int, int]] = (),
    cannot_link: Iterable[tuple[int, int]] = (),
    settings: GroupSettings,
) -> GroupResult:
    """Join tracklets into persons.

    Args:
        tid: Tracklet id of each detection row (int, -1 = not tracked; those rows are ignored).
        frame: 0-based frame of each row.
        xyxy: Boxes (N x 4) in pixels.
        conf: Detection confidence of each row.
        fps: The video's frame rate (durations in ``settings`` are seconds).
        descriptors: Optional colour descriptor per tracklet id (:func:`ptrack.persons.appearance.crop_descriptor`).
        embeddings: Optional learned-embedding vector per tracklet id
            (:func:`ptrack.persons.metric.tracklet_vectors`). With both, a link's appearance distance is
            the mean of the two kinds' (see :func:`ptrack.persons.appearance.link_distance`).
        must_link: Pairs of tracklet ids that must end up in one person (user merges).
        cannot_link: Pairs of tracklet ids that must end up in different persons (user splits).
        settings: The ``group:`` settings (``ptrack.settings.defaults().group`` for the shipped ones).

    Returns:
        A :class:`GroupResult`. Deterministic for the same input.

    Raises:
        PtrackError: Bad settings, inconsistent arrays, unknown ids or contradictory constraints.

    Example:
        >>> g = group_tracklets(tid, frame, xyxy, conf, fps=25.0,
        ...                     settings=defaults().group)  # doctest: +SKIP
        >>> g.person_of_tracklet  # doctest: +SKIP
    """
    p = _settings(settings)
    if not fps or fps <= 0:
        raise PtrackError(f"fps must be positive, got {fps}")
    fps = float(fps)
    tid, frame, xyxy, conf = _inputs(tid, frame, xyxy, conf)
    rows = np.flatnonzero(tid >= 0)
    tracklets = np.unique(tid[rows])
    known = set(tracklets.tolist())
    must = _constraint_pairs(must_link, known, "must-link")
    cannot_pairs = _constraint_pairs(cannot_link, known, "cannot-link")
    cannot: dict[int, set[int]] = {}
    for a, b in cannot_pairs:
        if a == b:
            raise PtrackError(f"cannot-link: tracklet {a} cannot be split from itself", exit_code=2)
        cannot.setdefault(a, set()).add(b)
        cannot.setdefault(b, set()).add(a)

    if len(tracklets) == 0:
        e = np.zeros(0, np.int64)
        return GroupResult(e, e, e, e, np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                           np.zeros(0, np.int8), e, e)

    dd = _dedupe(tid, frame, conf, rows)
    t_sorted = tid[dd]
    starts = np.flatnonzero(np.r_[True, t_sorted[1:] != t_sorted[:-1]])
    frames_of = {int(t): fr for t, fr in zip(t_sorted[starts], np.split(frame[dd], starts[1:]))}
    P = _Persons(tracklets, frames_of)
    for a, b in sorted(must):
        if P.forbidden(a, b, cannot):
            raise PtrackError(f"tracklets {a} and {b} are both merged and split by your corrections; "
                              f"see `ptrack constraints` and remove one with "
                              f"`ptrack constraints --delete ID`", exit_code=2)
        P.union(a, b)

    over = int(round(p.handover_s * fps))
    # uncovered-box states serve only links appearance confirms: none without appearance
    cover = box_cover(frame, xyxy) if (descriptors or embeddings) and p.cover_max < 1.0 else None
    for _ in range(max(1, int(p.n_rounds))):
        unit = np.full(len(tid), -1, np.int64)
        unit[rows] = _roots(P, tid[rows])
        S = _states(unit, frame, xyxy, conf, rows, fps, p, cover)
        desc = _unit_appearance(P, descriptors, embeddings, S.units) \
            if (descriptors or embeddings) else None
        ia, ib = _candidates(S, fps, p, bool(desc))
        cost, _ = _link_costs(S, ia, ib, fps, p, desc)
        links = _assign(ia, ib, cost, p.no_link_cost)
        links.sort(key=lambda x: (x[2], S.units[x[0]], S.units[x[1]]))
        made = 0
        for a, b, _c in links:
            ua, ub = int(S.units[a]), int(S.units[b])
            if P.find(ua) == P.find(ub) or P.forbidden(ua, ub, cannot) \
                    or not _handover_ok(P.overlap(ua, ub), over):
                continue
            P.union(ua, ub)
            made += 1
        if made == 0:
            break

    joins = _cluster(P, tracklets, frames_of, descriptors, embeddings, cannot, over, p)
    person_of = np.array([P.find(int(t)) for t in tracklets], dtype=np.int64)
    result = _person_boxes(tracklets, person_of, tid, frame, xyxy, conf, rows, fps, p)
    return replace(result, joins=tuple(joins))


def _cluster(P: _Persons, tracklets, frames_of, descriptors, embeddings, cannot, over, p) -> list:
    """After linking: join persons that are one human (:mod:`ptrack.persons.cluster`)."""
    if p.cluster_max <= 0 or not (descriptors or embeddings):
        return []
    from ptrack.persons.cluster import cluster_persons

    roots = sorted({P.find(int(t)) for t in tracklets})
    joins = cluster_persons([sorted(P.members[r]) for r in roots], frames_of, hsv=descriptors,
                            embed=embeddings, max_distance=p.cluster_max,
                            margin=p.cluster_margin, over=over, cannot=cannot)
    for j in joins:
        P.union(j.a[0], j.b[0])
    return joins


def _roots(P: _Persons, t: np.ndarray) -> np.ndarray:
    uniq, inv = np.unique(t, return_inverse=True)
    return np.array([P.find(int(x)) for x in uniq], dtype=np.int64)[inv]


def _mean_descriptor(members, descriptors: dict | None, *, normalise: bool) -> np.ndarray | None:
    """Mean of the members' descriptors (None when none has one); histograms re-normalised."""
    if not descriptors:
        return None
    ds = [np.asarray(descriptors[m], float) for m in members if m in descriptors]
    if not ds:
        return None
    d = np.mean(ds, axis=0)
    return d / max(d.sum(), 1e-12) if normalise else d


def _unit_appearance(P: _Persons, descriptors: dict | None, embeddings: dict | None,
                     units: np.ndarray) -> dict[int, tuple]:
    """Unit id -> (colour descriptor or None, embedding vector or None), members averaged."""
    out = {}
    for u in units.tolist():
        members = P.members[P.find(u)]
        h = _mean_descriptor(members, descriptors, normalise=True)
        e = _mean_descriptor(members, embeddings, normalise=False)
        if h is not None or e is not None:
            out[u] = (h, e)
    return out


def _person_boxes(tracklets, person_of, tid, frame, xyxy, conf, rows, fps, p) -> GroupResult:
    lut_t = np.searchsorted(tracklets, tid[rows])
    person_row = np.full(len(tid), -1, np.int64)
    person_row[rows] = person_of[lut_t]
    keep = _dedupe(person_row, frame, conf, rows)  # sorted by (person, frame)
    pers, fr = person_row[keep], frame[keep]
    box = xyxy[keep]
    # interpolation
    max_fill = int(round(p.interp_max_s * fps))
    nxt = np.r_[pers[1:] == pers[:-1], False]
    gap = np.r_[fr[1:] - fr[:-1], 0]
    fill = np.flatnonzero(nxt & (gap > 1) & (gap - 1 <= max_fill))
    if len(fill):
        cnt = gap[fill] - 1
        src = np.repeat(fill, cnt)
        step = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt) + 1
        alpha = (step / gap[src]).astype(np.float32)[:, None]
        i_box = box[src] * (1 - alpha) + box[src + 1] * alpha
        i_pers, i_fr = pers[src], fr[src] + step
    else:
        i_box = np.zeros((0, 4), np.float32)
        i_pers = i_fr = np.zeros(0, np.int64)
    n_i = len(i_pers)
    P_ = np.r_[pers, i_pers]
    F_ = np.r_[fr, i_fr]
    order = np.lexsort((F_, P_))
    return GroupResult(
        tracklet_ids=tracklets.astype(np.int64),
        person_of_tracklet=person_of,
        person=P_[order].astype(np.int64),
        frame=F_[order].astype(np.int64),
        xyxy=np.concatenate([box, i_box]).astype(np.float32)[order],
        conf=np.r_[conf[keep], np.zeros(n_i, np.float32)].astype(np.float32)[order],
        source=np.r_[np.zeros(len(keep), np.int8), np.ones(n_i, np.int8)][order],
        tracklet=np.r_[tid[keep], np.full(n_i, -1, np.int64)][order],
        row=np.r_[keep, np.full(n_i, -1, np.int64)][order],
    )


def explain(
    a: int,
    b: int,
    tid: np.ndarray,
    frame: np.ndarray,
    xyxy: np.ndarray,
    conf: np.ndarray,
    *,
    fps: float,
    descriptors: dict[int, np.ndarray] | None = None,
    embeddings: dict[int, np.ndarray] | None = None,
    settings: GroupSettings,
) -> list[dict]:
    """Why tracklets (or persons) ``a`` and ``b`` would or would not be linked directly.

    Every criterion comes from the functions linking itself uses (``_window``/``_in_window`` as
    in ``_candidates``, ``_link_costs``, ``_handover_ok``), so explain and linking cannot
    disagree. Returns ``{"criterion", "value", "threshold", "verdict"}`` dicts, verdict one of
    ``"pass"``, ``"fail"`` or ``"n/a"``, earlier one first; the last entry, ``"link"``, sums up
    (value = link cost, threshold = no-link cost). Looks at the two alone, not at competing links
    (the first round of linking).
    """
    p = _settings(settings)
    fps = float(fps)
    tid, frame, xyxy, conf = _inputs(tid, frame, xyxy, conf)
    for x in (a, b):
        if not np.any(tid == x):
            raise PtrackError(f"unknown tracklet id {x}", exit_code=2)
    rows = np.flatnonzero((tid == a) | (tid == b))
    S = _states(tid, frame, xyxy, conf, rows, fps, p, box_cover(frame, xyxy))
    i, j = (0, 1) if (S.start[0], S.end[0]) <= (S.start[1], S.end[1]) else (1, 0)
    ia, ib = np.array([i]), np.array([j])
    desc = _unit_descriptors_plain(descriptors, embeddings, (a, b))
    # linking's window depends on whether the video has descriptors at all, as in group_tracklets
    over, max_gap = _window(p, fps, bool(descriptors or embeddings))
    w = _in_window(S, ia, ib, over, max_gap)
    cost, f = _link_costs(S, ia, ib, fps, p, desc)
    overlap = len(np.intersect1d(S.frames[i], S.frames[j]))
    order_ok, window_ok = bool(w["order_ok"][0]), bool(w["window_ok"][0])
    handover_ok = _handover_ok(overlap, over)
    has_app = bool(f["has_app"][0])

    def row(name, value, thr, ok):
        return {"criterion": name, "value": float(value), "threshold": float(thr),
                "verdict": "n/a" if ok is None else ("pass" if ok else "fail")}

    gap_s = float(f["gap_s"][0])
    out = [
        row("order (later one starts and ends later)", float(order_ok), 1.0, order_ok),
        row("overlap frames", overlap, over, handover_ok),
        row("gap seconds", gap_s, max_gap / fps, window_ok),
        row("gap without appearance (s)", gap_s, p.motion_max_gap_s,
            None if has_app else bool(f["motion_gap_ok"][0])),
        row("motion error (box heights)", f["motion"][0], f["motion_tol"][0],
            bool(f["motion"][0] <= f["motion_tol"][0])),
        row("scale error (log height)", f["scale"][0], f["scale_tol"][0],
            bool(f["scale"][0] <= f["scale_tol"][0])),
    ]
    if f["uncovered"][0]:  # the errors above are from the ends' uncovered boxes (cover_max)
        out.append(row("  with the boxes people in front cut", f["motion_all"][0],
                       f["motion_tol_all"][0], None))
    app = f["app"][0]
    near = bool(f["motion_ok"][0])
    thr = p.app_max if near else p.app_strong
    if not has_app:
        out.append(row("appearance distance", np.nan, p.app_max, None))
    elif near:
        out.append(row("appearance distance", app, p.app_max, bool(f["ok_near"][0])))
    else:  # beyond the motion gate: appearance alone, within max_gap_s
        out.append(row("appearance distance (no motion support)", app, p.app_strong,
                       bool(app <= p.app_strong)))
    # the parts the distance is the mean of (one part: the distance itself), same threshold
    for key, name in (("app_hsv", "colour histograms"), ("app_embed", "learned embedding")):
        if has_app and np.isfinite(f[key][0]):
            out.append(row(f"  part: {name}", f[key][0], thr, None))
    if has_app and not near:
        out.append(row("gap for an appearance-only link (s)", gap_s, p.max_gap_s,
                       bool(f["far_gap_ok"][0])))
    made = order_ok and window_ok and handover_ok and bool(np.isfinite(cost[0])) \
        and bool(cost[0] < p.no_link_cost)
    c = float(cost[0]) if order_ok and window_ok and handover_ok else np.inf
    out.append(row("link", c, p.no_link_cost, made))
    return out


def _unit_descriptors_plain(descriptors, embeddings, ids) -> dict | None:
    """Each id's (colour descriptor, embedding) as linking sees them; None unless both ids
    have one of the kinds."""
    out = {}
    for x in ids:
        h = descriptors.get(x) if descriptors else None
        e = embeddings.get(x) if embeddings else None
        out[x] = (h, e)
    if not any(all(out[x][k] is not None for x in ids) for k in (0, 1)):
        return None
    return out
