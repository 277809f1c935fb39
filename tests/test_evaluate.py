"""Tests for ptrack.formats.evaluate, with answers worked out by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ptrack.errors import PtrackError
from ptrack.formats.evaluate import evaluate, iou_matrix, match_boxes
from ptrack.boxes import Boxes
from ptrack.formats.mot import mot_boxes, read_mot

MOT15 = Path(__file__).parents[2] / "shared/data/mot15"

BOX_A = [0.0, 0.0, 10.0, 20.0]
BOX_B = [100.0, 0.0, 110.0, 20.0]
BOX_FAR = [500.0, 500.0, 510.0, 520.0]


def _gt(frame, ids, xyxy, keep=None) -> Boxes:
    """Ground truth from literal lists."""
    n = len(frame)
    keep = np.ones(n, bool) if keep is None else np.asarray(keep, bool)
    return mot_boxes(frame, ids, np.asarray(xyxy, np.float32).reshape(n, 4),
                     keep.astype(np.float32), keep=keep)


def _track(frames, ident, box):
    """One id standing on one box over the given frames: (frame, ids, xyxy) lists."""
    frames = list(frames)
    return frames, [ident] * len(frames), [box] * len(frames)


def _join(*tracks):
    frame, ids, xyxy = (sum((list(t[i]) for t in tracks), []) for i in range(3))
    return np.array(frame), np.array(ids), np.array(xyxy, dtype=float).reshape(-1, 4)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (BOX_A, BOX_A, 1.0),
        (BOX_A, BOX_B, 0.0),
        ([0, 0, 10, 10], [5, 0, 15, 10], 50 / 150),
        ([0, 0, 10, 10], [0, 0, 5, 5], 0.25),
        ([0, 0, 0, 10], [0, 0, 0, 10], 0.0),
        ([0, 0, 10, 10], [10, 0, 20, 10], 0.0),
    ],
)
def test_iou_pairs(a, b, expected):
    assert iou_matrix(np.array([a]), np.array([b]))[0, 0] == pytest.approx(expected)


def test_iou_matrix_shapes():
    assert iou_matrix(np.zeros((0, 4)), np.zeros((3, 4))).shape == (0, 3)
    m = iou_matrix(np.array([BOX_A, BOX_B]), np.array([BOX_B, BOX_A, BOX_FAR]))
    np.testing.assert_allclose(m, [[0, 1, 0], [1, 0, 0]])


def test_matching_prefers_more_valid_pairs_over_more_raw_iou():
    # Raw-IoU Hungarian would pick (0,0)+(1,1) (0.95+0.4 > 0.5+0.55) and keep one valid pair;
    # among pairs >= 0.5 the best is (0,1)+(1,0), two matches.
    sim = np.array([[0.95, 0.5], [0.55, 0.4]])
    rows, cols = match_boxes(sim, 0.5)
    assert sorted(zip(rows.tolist(), cols.tolist())) == [(0, 1), (1, 0)]


def test_matching_drops_pairs_below_threshold():
    rows, cols = match_boxes(np.array([[0.49]]), 0.5)
    assert len(rows) == 0 == len(cols)


def test_perfect_result_scores_100():
    frame, ids, xyxy = _join(_track(range(60), 1, BOX_A), _track(range(60), 2, BOX_B))
    scores = evaluate(_gt(frame, ids, xyxy), frame, ids + 10, xyxy)
    for key in ("HOTA", "MOTA", "IDF1", "coverage", "purity", "precision"):
        assert scores[key] == pytest.approx(100.0), key
    assert scores["IDSW"] == 0
    assert scores["subjects"] == 2
    assert scores["subjects_covered_90"] == 2
    assert scores["ids_per_subject"] == 1.0
    assert [r["best_id"] for r in scores["per_subject"]] == [11, 12]


def test_subject_split_60_40():
    gt_frame, gt_ids, gt_xyxy = _join(_track(range(100), 1, BOX_A))
    frame, ids, xyxy = _join(_track(range(60), 7, BOX_A), _track(range(60, 100), 8, BOX_A))
    scores = evaluate(_gt(gt_frame, gt_ids, gt_xyxy), frame, ids, xyxy)
    assert scores["coverage"] == pytest.approx(60.0)
    assert scores["purity"] == pytest.approx(100.0)
    assert scores["precision"] == pytest.approx(100.0)
    assert scores["ids_per_subject"] == 2.0
    assert scores["subjects_covered_90"] == 0
    assert scores["IDSW"] == 1
    assert scores["MOTA"] == pytest.approx(99.0)  # (100 - 1 IDSW) / 100
    assert scores["IDF1"] == pytest.approx(60.0)  # IDTP 60, IDFN 40, IDFP 40


def test_false_boxes_in_best_id_lower_precision_not_purity():
    gt_frame, gt_ids, gt_xyxy = _join(_track(range(100), 1, BOX_A))
    # id 5 follows the subject for 100 frames, then 50 more frames on nobody.
    frame, ids, xyxy = _join(_track(range(100), 5, BOX_A), _track(range(100, 150), 5, BOX_FAR))
    scores = evaluate(_gt(gt_frame, gt_ids, gt_xyxy), frame, ids, xyxy)
    assert scores["coverage"] == pytest.approx(100.0)
    assert scores["purity"] == pytest.approx(100.0)
    assert scores["precision"] == pytest.approx(100.0 * 100 / 150)
    assert scores["precision"] < scores["purity"]
    assert scores["MOTA"] == pytest.approx(50.0)  # (100 TP - 50 FP) / 100


def test_id_jumping_to_another_person_lowers_purity():
    gt_frame, gt_ids, gt_xyxy = _join(_track(range(100), 1, BOX_A), _track(range(100), 2, BOX_B))
    frame, ids, xyxy = _join(
        _track(range(80), 1, BOX_A),  # id 1 follows A ...
        _track(range(80, 100), 1, BOX_B),  # ... then jumps to B
        _track(range(80), 2, BOX_B),
        _track(range(80, 100), 3, BOX_A),
    )
    scores = evaluate(_gt(gt_frame, gt_ids, gt_xyxy), frame, ids, xyxy)
    rows = {r["gt_id"]: r for r in scores["per_subject"]}
    assert rows[1]["best_id"] == 1 and rows[1]["purity"] == pytest.approx(80.0)
    assert rows[2]["best_id"] == 2 and rows[2]["purity"] == pytest.approx(100.0)
    assert scores["coverage"] == pytest.approx(80.0)
    assert scores["purity"] == pytest.approx(90.0)
    assert scores["precision"] == pytest.approx(90.0)
    assert scores["ids_per_subject"] == 2.0


def test_subject_weights_are_frame_counts():
    gt_frame, gt_ids, gt_xyxy = _join(_track(range(150), 1, BOX_A), _track(range(50), 2, BOX_B))
    frame, ids, xyxy = _join(_track(range(150), 1, BOX_A))  # B never tracked
    scores = evaluate(_gt(gt_frame, gt_ids, gt_xyxy), frame, ids, xyxy)
    assert scores["coverage"] == pytest.approx(75.0)  # (150*100 + 50*0) / 200
    assert scores["per_subject"][1]["best_id"] is None


def test_short_identities_are_not_subjects():
    gt_frame, gt_ids, gt_xyxy = _join(_track(range(49), 1, BOX_A))
    scores = evaluate(_gt(gt_frame, gt_ids, gt_xyxy), gt_frame, gt_ids, gt_xyxy)
    assert scores["subjects"] == 0
    assert np.isnan(scores["coverage"])
    assert scores["HOTA"] == pytest.approx(100.0)
    gt = _gt(gt_frame, gt_ids, gt_xyxy)
    assert evaluate(gt, gt_frame, gt_ids, gt_xyxy, min_subject_frames=49)["subjects"] == 1


def test_empty_result():
    gt_frame, gt_ids, gt_xyxy = _join(_track(range(60), 1, BOX_A))
    scores = evaluate(_gt(gt_frame, gt_ids, gt_xyxy), [], [], np.zeros((0, 4)))
    assert scores["HOTA"] == 0.0
    assert scores["MOTA"] == 0.0
    assert scores["IDF1"] == 0.0
    assert scores["FN"] == 60
    assert scores["coverage"] == 0.0


@pytest.mark.parametrize(("drop", "fp"), [(True, 0), (False, 1)])
def test_results_on_ignored_gt(drop, fp):
    gt = _gt([0, 0], [1, 2], [BOX_A, BOX_B], keep=[True, False])
    scores = evaluate(gt, [0, 0], [1, 2], [BOX_A, BOX_B], drop_results_on_ignored=drop)
    assert scores["FP"] == fp
    assert scores["FN"] == 0
    assert scores["MOTA"] == pytest.approx(100.0 - 100.0 * fp)


def test_duplicate_result_id_in_a_frame_is_an_error():
    gt = _gt([0], [1], [BOX_A])
    with pytest.raises(PtrackError, match="twice"):
        evaluate(gt, [0, 0], [3, 3], [BOX_A, BOX_B])


@pytest.mark.parametrize("sequence", ["TUD-Campus", "KITTI-17"])
def test_real_gt_against_itself_scores_100(sequence):
    path = MOT15 / sequence / "gt.txt"
    if not path.is_file():
        pytest.skip(f"MOT15 data not found at {path}")
    gt = read_mot(path, kind="gt")
    k = gt.data["keep"]  # the boxes to score, as a perfect tracker would output them
    scores = evaluate(gt, gt.frame[k], gt.tracklet[k], gt.xyxy[k])
    for key in ("HOTA", "MOTA", "IDF1", "coverage", "purity", "precision"):
        assert scores[key] == pytest.approx(100.0), key
    assert scores["IDSW"] == 0
    assert scores["subjects"] > 0
