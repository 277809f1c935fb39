"""Score tracking results against MOTChallenge ground truth.

Two families of numbers:

* The standard ones, HOTA, MOTA, IDF1 and IDSW, computed by the ``trackeval`` package's metric
  classes (``HOTA``, ``CLEAR``, ``Identity``), fed directly with per-frame data.
* Subject metrics, which ask "does one id follow each person?". Ground truth and result boxes
  are matched frame by frame (Hungarian assignment on IoU, pairs with IoU >= ``iou``). A
  *subject* is a ground-truth identity present in at least ``min_subject_frames`` frames. Its
  *best id* is the result id matched to it in the most frames (ties: the lowest id).

  - coverage = best-id frames / the subject's frames;
  - purity = best-id frames / frames in which the best id matches any ground-truth person
    (only identity mistakes count against it);
  - precision = best-id frames / all frames of the best id (false and badly placed boxes count
    against it too).

  The three are averaged with weights equal to each subject's frame count.

* Human metrics (:func:`human_metrics`), which ask "does one person hold each human?": the
  subject numbers computed after ground-truth ids are mapped to humans (a human who leaves the
  view and comes back may have several ground-truth ids), counting every human, plus the
  perfect-merge ceiling (what the same result ids would score if each were merged into the
  human it matches most).

Ground-truth boxes with ``keep == False`` are ignored the MOTChallenge way: result boxes matched
to them (IoU >= 0.5) are removed, then those ground-truth boxes are dropped. (trackeval's
MOT15 benchmark skips the first step; ``drop_results_on_ignored=False`` does the same.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from scipy.optimize import linear_sum_assignment

from ptrack.errors import PtrackError
from ptrack.boxes import Boxes

IGNORE_IOU = 0.5
"""IoU at which a result box counts as lying on an ignored ground-truth box (as MOTChallenge)."""

MIN_ID_SHARE = 0.05
"""Share of a subject's frames an id must cover to count in ``ids_per_subject``."""

COVERED_SHARE = 0.9
"""Coverage at which one id counts as following a subject in ``subjects_covered_90``."""


@dataclass(frozen=True)
class _Sequence:
    """Per-frame boxes after removing ignored ground truth, ids relabelled to 0..K-1.

    Attributes:
        gt_ids: For each frame, contiguous ground-truth ids.
        res_ids: For each frame, contiguous result ids.
        similarity: For each frame, IoU matrix (gt x result).
        gt_labels: Original ground-truth id of each contiguous id.
        res_labels: Original result id of each contiguous id.
    """

    gt_ids: list[np.ndarray]
    res_ids: list[np.ndarray]
    similarity: list[np.ndarray]
    gt_labels: np.ndarray
    res_labels: np.ndarray


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in ``a`` with every box in ``b``.

    Args:
        a: Boxes ``x1, y1, x2, y2``, shape (N, 4).
        b: Boxes ``x1, y1, x2, y2``, shape (M, 4).

    Returns:
        float64 array of shape (N, M); 0 where a union is empty.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0.0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0.0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0.0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def match_boxes(similarity: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching that maximises total IoU over pairs with IoU >= ``threshold``.

    Args:
        similarity: IoU matrix, shape (N, M).
        threshold: Smallest IoU a matched pair may have.

    Returns:
        Row and column indices of the matched pairs.
    """
    if similarity.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    scores = np.where(similarity >= threshold - np.finfo(float).eps, similarity, 0.0)
    rows, cols = linear_sum_assignment(scores, maximize=True)
    matched = scores[rows, cols] > 0
    return rows[matched], cols[matched]


def evaluate(
    gt: Boxes,
    res_frame: np.ndarray,
    res_ids: np.ndarray,
    res_xyxy: np.ndarray,
    *,
    min_subject_frames: int = 50,
    iou: float = 0.5,
    drop_results_on_ignored: bool = False,
) -> dict[str, Any]:
    """Score a tracking result against ground truth.

    Args:
        gt: Ground truth, e.g. from ``read_mot(path, kind="gt")``.
        res_frame: 0-based frame of each result box, shape (N,).
        res_ids: Track id of each result box, shape (N,); unique within a frame.
        res_xyxy: Result boxes ``x1, y1, x2, y2``, shape (N, 4).
        min_subject_frames: Frames a ground-truth identity needs to count as a subject.
        iou: IoU a result box needs with a ground-truth box to match it.
        drop_results_on_ignored: Remove result boxes matched (IoU >= 0.5) to ground truth with
            ``keep == False`` before scoring. False scores them as false positives, which is
            what trackeval's official MOT15 benchmark does (it only drops the ignored gt).

    Returns:
        ``HOTA``, ``DetA``, ``AssA``, ``MOTA``, ``IDF1`` (0-100 floats), ``IDSW``, ``FP``, ``FN``
        (ints), and the subject metrics ``coverage``, ``purity``, ``precision`` (0-100,
        weighted by subject frames; NaN with no subject), ``ids_per_subject`` (NaN with no
        subject), ``subjects_covered_90``, ``subjects`` and ``per_subject`` (list of dicts).

    Raises:
        PtrackError: When a result id appears twice in one frame, or the arrays' lengths differ.
    """
    res_frame, res_ids, res_xyxy = _result_arrays(res_frame, res_ids, res_xyxy)
    seq = _prepare(gt, res_frame, res_ids, res_xyxy, drop_results_on_ignored)
    scores = _trackeval_scores(seq, iou)
    scores.update(_subject_metrics(seq, iou=iou, min_subject_frames=min_subject_frames))
    return scores


def _result_arrays(
    frame: np.ndarray, ids: np.ndarray, xyxy: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Convert the result arrays and check they agree in length and have unique ids per frame."""
    frame = np.asarray(frame, dtype=np.int64).reshape(-1)
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    if not len(frame) == len(ids) == len(xyxy):
        raise PtrackError(
            f"result arrays differ in length: "
            f"{len(frame)} frames, {len(ids)} ids, {len(xyxy)} boxes"
        )
    pairs = np.unique(np.column_stack([frame, ids]), axis=0)
    if len(pairs) != len(frame):
        raise PtrackError("result has the same track id twice in one frame")
    return frame, ids, xyxy


def _frame_slices(frame: np.ndarray, num_frames: int) -> list[np.ndarray]:
    """Indices of the entries of each frame 0..num_frames-1, in input order."""
    order = np.argsort(frame, kind="stable")
    bounds = np.searchsorted(frame[order], np.arange(num_frames + 1))
    return [order[bounds[t] : bounds[t + 1]] for t in range(num_frames)]


def _prepare(
    gt: Boxes,
    res_frame: np.ndarray,
    res_ids: np.ndarray,
    res_xyxy: np.ndarray,
    drop_results_on_ignored: bool,
) -> _Sequence:
    """Split boxes by frame, drop ignored ground truth (and results on it), relabel ids."""
    num_frames = int(max(gt.frame.max(initial=-1), res_frame.max(initial=-1))) + 1
    gt_idx = _frame_slices(gt.frame.astype(np.int64), num_frames)
    res_idx = _frame_slices(res_frame, num_frames)
    gt_keep = gt.data["keep"]
    gt_labels, gt_contig = np.unique(gt.tracklet[gt_keep], return_inverse=True)
    gt_map = np.full(len(gt), -1, dtype=np.int64)
    gt_map[gt_keep] = gt_contig
    kept_res = np.ones(len(res_frame), dtype=bool)
    gt_ids, similarity = [], []
    for g, r in zip(gt_idx, res_idx):
        sim = iou_matrix(gt.xyxy[g], res_xyxy[r])
        keep_g = gt_keep[g]
        rows, cols = match_boxes(sim, IGNORE_IOU)
        drop = cols[~keep_g[rows]] if drop_results_on_ignored else cols[:0]
        kept_res[r[drop]] = False
        similarity.append(np.delete(sim[keep_g], drop, axis=1))
        gt_ids.append(gt_map[g[keep_g]])
    res_labels, res_contig = np.unique(res_ids[kept_res], return_inverse=True)
    res_map = np.full(len(res_ids), -1, dtype=np.int64)
    res_map[kept_res] = res_contig
    res_per_frame = [res_map[r[kept_res[r]]] for r in res_idx]
    return _Sequence(gt_ids, res_per_frame, similarity, gt_labels, res_labels)


def _trackeval_data(seq: _Sequence) -> dict[str, Any]:
    """The per-sequence data dict trackeval's metric classes read."""
    return {
        "num_timesteps": len(seq.gt_ids),
        "num_gt_ids": len(seq.gt_labels),
        "num_tracker_ids": len(seq.res_labels),
        "num_gt_dets": int(sum(len(x) for x in seq.gt_ids)),
        "num_tracker_dets": int(sum(len(x) for x in seq.res_ids)),
        "gt_ids": seq.gt_ids,
        "tracker_ids": seq.res_ids,
        "similarity_scores": seq.similarity,
    }


def _trackeval_scores(seq: _Sequence, iou: float) -> dict[str, Any]:
    """HOTA, MOTA, IDF1 and friends from trackeval's metric classes."""
    from trackeval.metrics import CLEAR, HOTA, Identity

    data = _trackeval_data(seq)
    config = {"THRESHOLD": iou, "PRINT_CONFIG": False}
    hota = HOTA().eval_sequence(data)
    clear_metric = CLEAR(config)
    clear = _finalised(clear_metric, clear_metric.eval_sequence(data), "MOTA")
    identity_metric = Identity(config)
    identity = _finalised(identity_metric, identity_metric.eval_sequence(data), "IDF1")
    return {
        "HOTA": 100.0 * float(np.mean(hota["HOTA"])),
        "DetA": 100.0 * float(np.mean(hota["DetA"])),
        "AssA": 100.0 * float(np.mean(hota["AssA"])),
        "MOTA": 100.0 * float(clear["MOTA"]),
        "IDF1": 100.0 * float(identity["IDF1"]),
        "IDSW": int(clear["IDSW"]),
        "FP": int(clear["CLR_FP"]),
        "FN": int(clear["CLR_FN"]),
    }


def _finalised(metric: Any, res: dict[str, Any], key: str) -> dict[str, Any]:
    """Fill in the derived fields trackeval skips when the gt or result is empty."""
    if key not in res:
        res = metric._compute_final_fields(res)
    return res


def _match_counts(seq: _Sequence, iou: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames each (gt id, result id) pair is matched, and frames of each gt id and result id."""
    num_gt, num_res = len(seq.gt_labels), len(seq.res_labels)
    counts = np.zeros((num_gt, num_res), dtype=np.int64)
    for g, r, sim in zip(seq.gt_ids, seq.res_ids, seq.similarity):
        rows, cols = match_boxes(sim, iou)
        np.add.at(counts, (g[rows], r[cols]), 1)
    gt_frames = np.bincount(np.concatenate([np.zeros(0, np.int64), *seq.gt_ids]), minlength=num_gt)
    res_frames = np.bincount(
        np.concatenate([np.zeros(0, np.int64), *seq.res_ids]), minlength=num_res
    )
    return counts, gt_frames, res_frames


def _subject_metrics(seq: _Sequence, *, iou: float, min_subject_frames: int) -> dict[str, Any]:
    """Coverage, purity and precision of each subject's best id, and their weighted means.

    Args:
        seq: Prepared per-frame data (see ``_prepare``).
        iou: IoU a result box needs with a ground-truth box to match it.
        min_subject_frames: Frames a ground-truth identity needs to count as a subject.

    Returns:
        The subject keys of ``evaluate``'s result.
    """
    counts, gt_frames, res_frames = _match_counts(seq, iou)
    matched_frames = counts.sum(axis=0)
    rows = []
    for g in np.flatnonzero(gt_frames >= min_subject_frames):
        row = _subject_row(counts[g], int(gt_frames[g]), matched_frames, res_frames, seq.res_labels)
        rows.append({"gt_id": int(seq.gt_labels[g]), **row})
    return _summarise(rows)


def _subject_row(
    row: np.ndarray,
    frames: int,
    matched_frames: np.ndarray,
    res_frames: np.ndarray,
    res_labels: np.ndarray,
) -> dict[str, Any]:
    """The numbers of one subject, given its row of the match-count matrix."""
    ids_over_share = int(np.sum((row > 0) & (row >= MIN_ID_SHARE * frames)))
    best = int(np.argmax(row)) if row.size else -1
    hits = int(row[best]) if best >= 0 else 0
    if hits == 0:
        return {
            "frames": frames,
            "best_id": None,
            "hits": 0,
            "coverage": 0.0,
            "purity": 0.0,
            "precision": 0.0,
            "ids": ids_over_share,
        }
    return {
        "frames": frames,
        "best_id": int(res_labels[best]),
        "hits": hits,
        "coverage": 100.0 * hits / frames,
        "purity": 100.0 * hits / int(matched_frames[best]),
        "precision": 100.0 * hits / int(res_frames[best]),
        "ids": ids_over_share,
    }


def _summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Frame-weighted means of the subject rows, plus the counts."""
    weights = np.array([r["frames"] for r in rows], dtype=np.float64)

    def weighted(key: str) -> float:
        if not rows:
            return float("nan")
        return float(np.dot(weights, [r[key] for r in rows]) / weights.sum())

    covered = sum(1 for r in rows if r["hits"] >= COVERED_SHARE * r["frames"] - 1e-9)
    return {
        "coverage": weighted("coverage"),
        "purity": weighted("purity"),
        "precision": weighted("precision"),
        "ids_per_subject": float(np.mean([r["ids"] for r in rows])) if rows else float("nan"),
        "subjects_covered_90": covered,
        "subjects": len(rows),
        "per_subject": rows,
    }


def humans_from_map(gt: Boxes, humans: Mapping[Any, Any] | None) -> Boxes:
    """Ground truth whose ids are humans: each ground-truth id replaced by its human.

    Args:
        gt: Ground truth (ids in ``tracklet``), e.g. from ``read_mot(path, kind="gt")``.
        humans: ``{gt_id: human_id}`` (keys and values ints or strings of ints); ids not in it
            are humans of their own, keeping their id. None: the ids already are humans.

    Returns:
        The same boxes with ``tracklet`` holding human ids.

    Raises:
        PtrackError: When an id is not a whole number, or one human has two boxes in a frame.
    """
    if not humans:
        return gt
    try:
        table = {int(k): int(v) for k, v in humans.items()}
    except (TypeError, ValueError) as exc:
        raise PtrackError(f"human map: ids must be whole numbers ({exc})") from None
    ids = np.array([table.get(int(i), int(i)) for i in gt.tracklet], dtype=np.int64)
    keep = gt.data["keep"]
    pairs = np.column_stack([gt.frame[keep], ids[keep]])
    if len(np.unique(pairs, axis=0)) != len(pairs):
        raise PtrackError("human map: one human has two ground-truth boxes in one frame")
    return gt.with_columns(tracklet=ids)


def human_metrics(
    gt: Boxes,
    result: Boxes,
    *,
    humans: Mapping[Any, Any] | None = None,
    ids: str | None = None,
    boxes: str = "xyxy",
    iou: float = 0.5,
    min_frames: int = 1,
) -> dict[str, Any]:
    """Score how well result ids (persons) hold whole humans.

    Each ground-truth identity, after ``humans`` maps ids to humans, is a *human*. Boxes are
    matched frame by frame (Hungarian on IoU >= ``iou``); a human's *best person* is the result
    id matched to it in the most frames.

    Args:
        gt: Ground truth, e.g. ``read_mot("gt.txt", kind="gt")`` (ids in ``tracklet``; boxes
            with ``data["keep"]`` False are ignored the MOT15 way).
        result: The result boxes, ids in the ``person`` column (else ``tracklet``).
        humans: ``{gt_id: human_id}`` joining ground-truth ids into humans (see
            :func:`humans_from_map`); None when the ground-truth ids already are humans.
        ids: Result column holding the ids (default: ``person`` when present, else
            ``tracklet``).
        boxes: Result column holding the boxes (``xyxy``, or e.g. ``smoothed``).
        iou: IoU a result box needs with a ground-truth box to match it.
        min_frames: Frames a human needs to count (1: every human).

    Returns:
        ``coverage``: frames of each human its best person holds / the human's frames;
        ``purity``: those frames / the frames in which the best person matches any human;
        ``precision``: those frames / all the best person's frames (all three 0-100, weighted
        by human frames; purity and precision over the humans some person matches, so a
        human nobody holds lowers coverage only; NaN with no such human); ``whole``: humans whose best person holds >= 90%;
        ``humans``; ``persons_per_human``: mean number of persons holding >= 5% of a human;
        ``persons``: result ids; ``ceiling_coverage``, ``ceiling_purity``, ``ceiling_whole``:
        the same after the perfect merge (every result id joined to the human it matches in
        the most frames; ids matching nobody stay alone), which bounds what joining persons
        can reach on these boxes; ``per_human``: one dict per human (``human``, ``frames``,
        ``best_id``, ``hits``, ``coverage``, ``purity``, ``precision``, ``persons``).

    Raises:
        PtrackError: When a result id appears twice in one frame, or the human map joins two
            ground-truth boxes of one frame.

    Example:
        >>> m = human_metrics(read_mot("gt.txt", kind="gt"), store.person_boxes(video_id))
        >>> m["coverage"], m["purity"], m["whole"], m["persons_per_human"]
    """
    gt = humans_from_map(gt, humans)
    id_col = ids or ("person" if result.person is not None else "tracklet")
    res_ids = result.column(id_col)
    frame, res_ids, xyxy = _result_arrays(result.frame, res_ids, result.column(boxes))
    seq = _prepare(gt, frame, res_ids, xyxy, False)
    counts, gt_frames, res_frames = _match_counts(seq, iou)
    matched_frames = counts.sum(axis=0)
    rows = []
    for g in np.flatnonzero(gt_frames >= min_frames):
        row = _subject_row(counts[g], int(gt_frames[g]), matched_frames, res_frames, seq.res_labels)
        row["persons"] = row.pop("ids")
        rows.append({"human": int(seq.gt_labels[g]), **row})
    summary = _summarise([{**r, "ids": r["persons"]} for r in rows])
    held = _summarise([{**r, "ids": r["persons"]} for r in rows if r["hits"] > 0])
    ceiling = _perfect_merge(counts, gt_frames, res_frames, min_frames)
    return {
        "coverage": summary["coverage"],
        "purity": held["purity"],
        "precision": held["precision"],
        "whole": summary["subjects_covered_90"],
        "humans": summary["subjects"],
        "persons_per_human": summary["ids_per_subject"],
        "persons": int(len(seq.res_labels)),
        **ceiling,
        "per_human": rows,
    }


def _perfect_merge(
    counts: np.ndarray, gt_frames: np.ndarray, res_frames: np.ndarray, min_frames: int
) -> dict[str, Any]:
    """Coverage, purity and whole humans after joining each result id to its majority human."""
    num_gt, num_res = counts.shape
    if num_res == 0 or num_gt == 0:
        merged = np.zeros((num_gt, 0), np.int64)
        merged_frames = np.zeros(0, np.int64)
    else:
        owner = np.where(counts.max(axis=0) > 0, np.argmax(counts, axis=0), -1)
        groups = np.where(owner >= 0, owner, num_gt + np.arange(num_res))
        _, group = np.unique(groups, return_inverse=True)
        merged = np.zeros((num_gt, group.max() + 1), np.int64)
        np.add.at(merged.T, group, counts.T)
        merged_frames = np.bincount(group, weights=res_frames).astype(np.int64)
    matched = merged.sum(axis=0)
    labels = np.arange(merged.shape[1])
    rows = [_subject_row(merged[g], int(gt_frames[g]), matched, merged_frames, labels)
            for g in np.flatnonzero(gt_frames >= min_frames)]
    summary = _summarise(rows)
    held = _summarise([r for r in rows if r["hits"] > 0])
    return {
        "ceiling_coverage": summary["coverage"],
        "ceiling_purity": held["purity"],
        "ceiling_whole": summary["subjects_covered_90"],
    }
