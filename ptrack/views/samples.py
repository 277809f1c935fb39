"""Choosing which crops show a person: K time bins across their presence, the best box of each.

"Best" is a box that no other detection of the same frame covers, when the time bin has one
(so a preview shows the person and not the one walking in front of them), then the most
confident and largest. Only observed boxes
(``source == 0``) have crops; interpolated ones are never sampled.

Example::

    boxes = store.person_boxes(video.id, 14)
    picks = sample_person(boxes, store.detections(video.id), k=8)
    images = load_crops(store, video.id, picks)   # [(sample, BGR image), ...]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ptrack.boxes import Boxes

from ptrack.persons.sampling import covered_share, pick_spread, rows_of

# Detections below this confidence never count as covering another box: low-score boxes are
# often fragments or duplicates of the very person being sampled.
MIN_OTHER_CONF = 0.25
# Up to this fraction of a box's quality is lost at the edge of its time bin.
CENTRE_PULL = 0.2
# A box at most this much covered by another counts as free: a free box of a time bin is always
# preferred to a covered one (someone walking in front fills the crop), whatever its score.
FREE_MAX = 0.02


@dataclass(frozen=True)
class Sample:
    """One chosen crop of a person."""

    frame: int
    det: int
    xyxy: tuple[float, float, float, float]
    conf: float
    covered: float  # largest fraction of this box covered by another detection of the frame
    quality: float  # the score it won its bin with
    bin: int  # time bin index, 0..k-1


def coverage_by_others(frame: np.ndarray, det: np.ndarray, xyxy: np.ndarray, conf: np.ndarray,
                       min_other_conf: float = MIN_OTHER_CONF) -> np.ndarray:
    """:func:`ptrack.persons.sampling.covered_share` with the views' credibility threshold: for each
    detection, the largest share of its area covered by another detection of its frame.

    >>> f = np.array([0, 0, 1]); d = np.array([0, 1, 0])
    >>> b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [0, 0, 10, 10]], float)
    >>> coverage_by_others(f, d, b, np.ones(3)).tolist()
    [0.5, 0.5, 0.0]
    """
    return covered_share(frame, xyxy, conf, min_other_conf=min_other_conf)


def covered_for(boxes: Boxes, detections: Any | None,
                 min_other_conf: float = MIN_OTHER_CONF) -> np.ndarray:
    """Coverage of each person box by the other detections of its frame."""
    n = len(boxes["frame"])
    if detections is None or len(detections) == 0 or n == 0:
        return np.zeros(n)
    near = np.isin(detections.frame, np.unique(boxes["frame"]))  # only frames that matter
    if not near.all():
        detections = detections[near]
    if len(detections) == 0:
        return np.zeros(n)
    cov = covered_share(detections.frame, detections.xyxy, detections.conf,
                        min_other_conf=min_other_conf)
    pos = rows_of(boxes["frame"], boxes["det"], detections.frame, detections.det)
    return np.where(pos >= 0, cov[np.maximum(pos, 0)], 0.0)


def quality(conf: np.ndarray, height: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Score of a box as a preview: confidence x relative height^0.5 x (1 - covered)^2."""
    h = np.asarray(height, dtype=np.float64)
    rel = h / max(float(h.max()), 1e-9) if len(h) else h
    return np.asarray(conf, np.float64) * np.sqrt(rel) * (1.0 - np.asarray(covered)) ** 2


def sample_person(boxes: Boxes, detections: Any | None = None, k: int = 8,
                  *, min_other_conf: float = MIN_OTHER_CONF, per_bin: int = 1,
                  covered: np.ndarray | None = None) -> list[Sample] | list[list[Sample]]:
    """Pick the best observed box in each of ``k`` equal time bins over the person's span.

    ``boxes`` is ``store.person_boxes(video_id, person)``; ``detections`` is
    ``store.detections(video_id)`` (or None to ignore overlaps). Bins without an observed box
    are skipped, so fewer than ``k`` samples come back for a person with gaps or few frames.
    With ``per_bin > 1`` each bin gives its best few (a list per bin), for callers that need a
    fallback when a crop is missing. ``k <= 0`` means every observed box, in frame order.
    """
    source = boxes["source"]
    keep = (source == 0) & (boxes["det"] >= 0)
    if not keep.any():
        return []
    sub = boxes[keep]
    frames = sub["frame"]
    xyxy = sub["xyxy"].astype(np.float64)
    if covered is None:
        cov = covered_for(sub, detections, min_other_conf)
    else:
        cov = np.asarray(covered, np.float64)[keep]
    score = quality(sub["conf"], xyxy[:, 3] - xyxy[:, 1], cov)
    first, last = int(boxes["frame"].min()), int(boxes["frame"].max())
    if k > 0:
        # a mild pull towards the middle of each bin spreads the samples evenly in time
        span = max(last - first + 1, 1)
        bins = np.minimum(((frames - first) * k) // span, k - 1)
        width = span / k
        centre = first + (bins + 0.5) * width - 0.5
        score = score * (1.0 - CENTRE_PULL * np.minimum(np.abs(frames - centre) / max(width / 2, 0.5), 1.0))
    score = score + (cov <= FREE_MAX)  # quality is at most 1: every free box beats a covered one
    picked: list[list[Sample]] = []
    for b, rows in pick_spread(frames, score, k, span=(first, last), per_bin=per_bin):
        picked.append([Sample(int(frames[i]), int(sub["det"][i]),
                              tuple(float(v) for v in xyxy[i]),  # type: ignore[arg-type]
                              float(sub["conf"][i]), float(cov[i]), float(score[i]), b)
                       for i in rows.tolist()])
    if per_bin == 1:
        return [group[0] for group in picked]
    return picked


def sample_persons_from_store(store: Any, video_id: int, persons: Sequence[int], k: int,
                              *, per_bin: int = 3, shortlist: int = 12) -> dict[int, list]:
    """:func:`sample_person` for each of ``persons``, reading only the boxes it needs.

    A long-lived person has tens of thousands of boxes, and the overlap test needs the other
    boxes of a frame only for the few best candidates of each bin. So the store shortlists
    ``shortlist`` boxes per time bin by confidence and size (inside SQLite), the detections of
    those frames are read, and each person's samples are chosen among them as
    :func:`sample_person` does. Returns ``{person: picks}``.
    """
    ids = [int(p) for p in persons]
    if k <= 0:  # every observed box: nothing to shortlist
        out = {}
        for pid in ids:
            boxes = store.person_boxes(video_id, pid)
            out[pid] = sample_person(boxes, store.detections(video_id, frames=boxes["frame"]),
                                     k, per_bin=per_bin)
        return out
    short = store.person_box_shortlist(video_id, ids, k, shortlist)
    candidate = short["source"] == 0
    detections = store.detections(video_id, frames=short["frame"][candidate])
    starts = np.searchsorted(short["person"], ids)
    ends = np.searchsorted(short["person"], ids, side="right")
    return {pid: sample_person(short[int(s):int(e)], detections, k, per_bin=per_bin)
            for pid, s, e in zip(ids, starts, ends)}


def load_crops(store: Any, video_id: int, picks: Sequence[Sample] | Sequence[Sequence[Sample]],
               *, decode: bool = True) -> list[tuple[Sample, Any]]:
    """The crop of each pick as ``(sample, image)``; a bin given as a list falls back to its next
    candidate when a crop is missing. Images are BGR arrays, or JPEG bytes with ``decode=False``.
    Picks whose crops are all missing are left out.
    """
    groups = [list(p) if isinstance(p, (list, tuple)) and p and isinstance(p[0], Sample) else [p]
              for p in picks]
    flat = [s for g in groups for s in g]
    data = store.crops([(video_id, s.frame, s.det) for s in flat])
    found = {(s.frame, s.det): d for s, d in zip(flat, data)}
    out = []
    for g in groups:
        for s in g:
            jpeg = found.get((s.frame, s.det))
            if jpeg and not _oversized(jpeg):
                if decode:
                    from ptrack.detect.crops import decode as _decode

                    img = _decode(jpeg)
                    if img is None:
                        continue
                    out.append((s, img))
                else:
                    out.append((s, jpeg))
                break
    return out


def _oversized(jpeg: bytes) -> bool:
    """A JPEG whose header claims more pixels than any stored crop has (never decoded)."""
    from ptrack.detect.crops import MAX_SIDE, jpeg_size

    size = jpeg_size(jpeg)
    return size is not None and max(size) > MAX_SIDE
