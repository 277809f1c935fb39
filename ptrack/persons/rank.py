"""Rank persons so a user can pick the one they want (usually the main subject of the video).

Pure: person box arrays in, a frozen :class:`RankResult` out. A person's evidence dominates its
score: ``score = observed * (1 - s + s * quality)``, where ``observed`` is the share of the video's
frames the person was detected in, ``quality`` the weighted mean of the components (each in
[0, 1]; weights ``rank.w_*``) and ``s`` = ``rank.quality_share`` (0.5: quality moves a score by at
most a factor of 2, so a person detected in twice the frames of another never ranks lower; a
2-frame false positive never ranks above a person seen for seconds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ptrack.errors import PtrackError
from ptrack.settings import RankSettings

COMPONENTS = ("duration", "coverage", "size", "centrality", "confidence")
FORMULA = ("score = observed x (1 - s + s x quality); observed = frames the person was detected "
           "in / frames of the video; quality = weighted mean of duration (span / video), "
           "coverage (detected frames / span), size (median box height / (size_full x image "
           "height), capped at 1), centrality (1 - mean distance from the image centre) and "
           "confidence (mean detection confidence), weights rank.w_*; s = rank.quality_share "
           "(0.5: a person detected in twice the frames of another never ranks lower)")
"""The score, in words (``ptrack rank --help`` prints it)."""

@dataclass(frozen=True)
class RankResult:
    """Persons ordered by score, best first.

    Attributes:
        person: Person ids (int64, P), best first.
        rank: 1 = best (int64, P).
        score: Score in [0, 1] (float64, P): see :data:`FORMULA`.
        components: Name -> per-person component in [0, 1] (float64, P), same order as
            ``person``: the five :data:`COMPONENTS`, ``observed`` and ``quality``.
    """

    person: np.ndarray
    rank: np.ndarray
    score: np.ndarray
    components: dict

    def as_rows(self) -> list[dict]:
        """One dict per person (person, rank, score and the components), best first."""
        return [
            {"person": int(p), "rank": int(r), "score": float(s),
             **{k: float(v[i]) for k, v in self.components.items()}}
            for i, (p, r, s) in enumerate(zip(self.person, self.rank, self.score))
        ]


def rank_persons(
    person: np.ndarray,
    frame: np.ndarray,
    xyxy: np.ndarray,
    conf: np.ndarray,
    source: np.ndarray | None = None,
    *,
    n_frames: int,
    width: int,
    height: int,
    settings: RankSettings,
) -> RankResult:
    """Score and rank persons from their boxes.

    ``score = observed * (1 - s + s * quality)`` (:data:`FORMULA`): ``observed`` = observed
    frames / ``n_frames``, ``quality`` = the components' weighted mean,
    ``s = settings.quality_share``.

    Components (each in [0, 1]):
        duration: span (last - first frame + 1) / ``n_frames``;
        coverage: observed frames / span (interpolated boxes, ``source == 1``, do not count);
        size: median box height / (``size_full`` * image height), capped at 1;
        centrality: 1 - mean normalised distance of box centres from the image centre;
        confidence: mean detection confidence of observed boxes.

    Ties in score are broken by the lower person id, so the order is deterministic.

    ``settings`` holds the weights (validated when built: finite, non-negative, one positive).

    Raises:
        PtrackError: Settings of the wrong type, or bad sizes.
    """
    if not isinstance(settings, RankSettings):
        raise PtrackError(f"rank settings must be a RankSettings, got {type(settings).__name__}")
    w = np.array([getattr(settings, "w_" + c) for c in COMPONENTS], dtype=np.float64)
    if n_frames <= 0 or width <= 0 or height <= 0:
        raise PtrackError(f"n_frames, width and height must be positive, got {n_frames}, {width}, {height}")

    person = np.asarray(person, dtype=np.int64).reshape(-1)
    n = len(person)
    frame = np.asarray(frame, dtype=np.int64).reshape(n)
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(n, 4)
    conf = np.asarray(conf, dtype=np.float64).reshape(n)
    observed = np.ones(n, bool) if source is None else (np.asarray(source).reshape(n) == 0)

    ids, inv = np.unique(person, return_inverse=True)
    P = len(ids)
    if P == 0:
        e = np.zeros(0)
        return RankResult(np.zeros(0, np.int64), np.zeros(0, np.int64), e, {c: e for c in COMPONENTS})

    first = np.full(P, np.iinfo(np.int64).max)
    last = np.full(P, np.iinfo(np.int64).min)
    np.minimum.at(first, inv, frame)
    np.maximum.at(last, inv, frame)
    span = (last - first + 1).astype(np.float64)
    n_obs = np.bincount(inv, weights=observed.astype(float), minlength=P)
    # distinct observed frames (a person has at most one box per frame, but be safe)
    key = np.unique(np.stack([inv[observed], frame[observed]], 1), axis=0) if observed.any() else np.zeros((0, 2), int)
    n_obs = np.bincount(key[:, 0], minlength=P).astype(np.float64) if len(key) else np.zeros(P)

    duration = np.clip(span / n_frames, 0, 1)
    coverage = np.clip(n_obs / span, 0, 1)
    h = np.clip(xyxy[:, 3] - xyxy[:, 1], 0, None)
    order = np.lexsort((h, inv))
    bounds = np.searchsorted(inv[order], np.arange(P + 1))
    med_h = np.array([np.median(h[order[a:b]]) for a, b in zip(bounds[:-1], bounds[1:])])
    size = np.clip(med_h / (settings.size_full * height), 0, 1)
    cx = (xyxy[:, 0] + xyxy[:, 2]) / 2 / width - 0.5
    cy = (xyxy[:, 1] + xyxy[:, 3]) / 2 / height - 0.5
    dist = np.clip(np.hypot(cx, cy) / np.hypot(0.5, 0.5), 0, 1)
    centrality = 1 - np.bincount(inv, weights=dist, minlength=P) / np.bincount(inv, minlength=P)
    conf_sum = np.bincount(inv, weights=np.where(observed, conf, 0.0), minlength=P)
    obs_count = np.bincount(inv, weights=observed.astype(float), minlength=P)
    confidence = np.clip(np.divide(conf_sum, obs_count, out=np.zeros(P), where=obs_count > 0), 0, 1)

    comp = np.stack([duration, coverage, size, centrality, confidence], 1)
    quality = comp @ w / w.sum()
    observed_share = np.clip(n_obs / n_frames, 0, 1)
    s = float(settings.quality_share)
    score = observed_share * (1 - s + s * quality)
    best = np.lexsort((ids, -score))
    components = {c: comp[best, k] for k, c in enumerate(COMPONENTS)}
    components["observed"] = observed_share[best]
    components["quality"] = quality[best]
    return RankResult(
        person=ids[best],
        rank=np.arange(1, P + 1, dtype=np.int64),
        score=score[best],
        components=components,
    )
