"""Tests for ptrack.formats.evaluate.human_metrics: one person per human, worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ptrack.boxes import Boxes
from ptrack.errors import PtrackError
from ptrack.formats.evaluate import human_metrics, humans_from_map
from ptrack.formats.mot import mot_boxes, read_mot

BOX_A = [0.0, 0.0, 10.0, 20.0]
BOX_B = [100.0, 0.0, 110.0, 20.0]
BOX_FAR = [500.0, 500.0, 510.0, 520.0]


def _boxes(*tracks, column="tracklet"):
    """Boxes from (frames, id, box) tracks; ids in ``column``."""
    frame = np.concatenate([np.asarray(list(f), np.int64) for f, _, _ in tracks])
    ids = np.concatenate([np.full(len(list(f)), i, np.int64) for f, i, _ in tracks])
    xyxy = np.concatenate([np.tile(np.asarray(b, np.float32), (len(list(f)), 1))
                           for f, _, b in tracks])
    if column == "tracklet":
        return mot_boxes(frame, ids, xyxy)
    return Boxes(frame, xyxy, np.ones(len(frame), np.float32), person=ids)


def test_human_with_two_gt_ids_is_one_human_through_the_map():
    # gt id 1 walks on A in frames 0-59, leaves, comes back as gt id 7 in frames 100-139
    gt = _boxes((range(60), 1, BOX_A), (range(100, 140), 7, BOX_A))
    one_person = _boxes((range(60), 5, BOX_A), (range(100, 140), 5, BOX_A), column="person")
    m = human_metrics(gt, one_person, humans={"7": "1"})
    assert m["humans"] == 1
    assert m["coverage"] == pytest.approx(100.0)
    assert m["purity"] == pytest.approx(100.0)
    assert m["whole"] == 1
    assert m["persons_per_human"] == 1
    assert m["per_human"][0]["human"] == 1
    # without the map the ids are two humans, each whole
    m = human_metrics(gt, one_person)
    assert m["humans"] == 2 and m["whole"] == 2
    assert m["purity"] == pytest.approx(100 * (60 * 60 / 100 + 40 * 40 / 100) / 100)


def test_person_cut_at_the_exit_counts_two_persons_and_the_merge_ceiling_joins_them():
    gt = _boxes((range(60), 1, BOX_A), (range(100, 140), 1, BOX_A))
    two = _boxes((range(60), 5, BOX_A), (range(100, 140), 6, BOX_A), column="person")
    m = human_metrics(gt, two)
    assert m["coverage"] == pytest.approx(60.0)
    assert m["purity"] == pytest.approx(100.0)
    assert m["whole"] == 0
    assert m["persons_per_human"] == 2
    assert m["persons"] == 2
    assert m["per_human"][0]["best_id"] == 5
    assert m["ceiling_coverage"] == pytest.approx(100.0)
    assert m["ceiling_purity"] == pytest.approx(100.0)
    assert m["ceiling_whole"] == 1


def test_person_holding_two_humans_loses_purity_and_ceiling_splits_nothing():
    # person 5 holds human 1 (frames 0-59) then human 2 (frames 60-99) on another box
    gt = _boxes((range(60), 1, BOX_A), (range(60, 100), 2, BOX_B))
    res = _boxes((range(60), 5, BOX_A), (range(60, 100), 5, BOX_B), column="person")
    m = human_metrics(gt, res)
    # human 1: 60/60 covered, purity 60/100; human 2: best 5 too, 40/40, purity 40/100
    assert m["coverage"] == pytest.approx(100.0)
    assert m["purity"] == pytest.approx((60 * 60 + 40 * 40) / 100)
    assert m["whole"] == 2
    assert m["ceiling_purity"] == pytest.approx(m["purity"])


def test_persons_below_five_percent_are_not_counted_per_human():
    gt = _boxes((range(100), 1, BOX_A))
    res = _boxes((range(96), 5, BOX_A), (range(96, 100), 6, BOX_A), column="person")
    m = human_metrics(gt, res)
    assert m["persons_per_human"] == 1  # 4 frames of 100 < 5%
    assert m["whole"] == 1 and m["coverage"] == pytest.approx(96.0)


def test_unmatched_result_ids_stay_alone_in_the_ceiling_and_count_against_precision():
    gt = _boxes((range(50), 1, BOX_A))
    res = _boxes((range(50), 5, BOX_A), (range(50), 6, BOX_FAR), (range(50, 100), 5, BOX_FAR),
                 column="person")
    m = human_metrics(gt, res)
    assert m["coverage"] == pytest.approx(100.0)
    assert m["purity"] == pytest.approx(100.0)
    assert m["precision"] == pytest.approx(50.0)
    assert m["ceiling_coverage"] == pytest.approx(100.0)
    assert m["persons"] == 2


def test_min_frames_and_ids_and_boxes_columns():
    gt = _boxes((range(60), 1, BOX_A), (range(10), 2, BOX_B))
    res = _boxes((range(60), 5, BOX_A), (range(10), 6, BOX_B), column="person")
    res = res.with_columns(tracklet=np.where(res.person == 5, 50, 60), smoothed=res.xyxy + 100)
    assert human_metrics(gt, res)["humans"] == 2
    assert human_metrics(gt, res, min_frames=50)["humans"] == 1
    assert human_metrics(gt, res, ids="tracklet")["per_human"][0]["best_id"] == 50
    assert human_metrics(gt, res, boxes="smoothed")["coverage"] == 0.0


def test_empty_result_scores_zero_and_no_gt_gives_nan():
    gt = _boxes((range(20), 1, BOX_A))
    m = human_metrics(gt, Boxes.empty("person"))
    assert m["coverage"] == 0.0 and m["whole"] == 0 and m["ceiling_coverage"] == 0.0
    assert np.isnan(m["purity"]) and m["persons_per_human"] == 0
    m = human_metrics(Boxes.empty("tracklet").with_columns(keep=np.zeros(0, bool)),
                      _boxes((range(5), 5, BOX_A), column="person"))
    assert m["humans"] == 0 and np.isnan(m["coverage"])


def test_map_joining_two_boxes_of_one_frame_is_an_error():
    gt = _boxes((range(10), 1, BOX_A), (range(10), 2, BOX_B))
    with pytest.raises(PtrackError, match="two ground-truth boxes in one frame"):
        humans_from_map(gt, {2: 1})
    with pytest.raises(PtrackError, match="whole numbers"):
        humans_from_map(gt, {"x": 1})
    assert humans_from_map(gt, None) is gt
    np.testing.assert_array_equal(np.unique(humans_from_map(gt, {2: 9}).tracklet), [1, 9])


HUMANS = Path(__file__).parent / "data" / "labels" / "humans"
MOT15 = Path(__file__).parents[2] / "shared/data/mot15"


@pytest.mark.parametrize("gt_path", sorted(HUMANS.glob("*.gt.txt")), ids=lambda p: p.name)
def test_human_labels_are_valid_ground_truth(gt_path):
    labels = json.loads(gt_path.with_name(gt_path.name.replace(".gt.txt", ".json")).read_text())
    gt = read_mot(gt_path, kind="gt")  # checks one box per human per frame
    names = list(labels["humans"])
    assert sorted(np.unique(gt.tracklet)) == list(range(1, len(names) + 1))
    labelled = {e["human"] for e in labels["tracklets"].values()} - {None}
    assert labelled == set(names)
    for entry in labels["tracklets"].values():
        assert entry["human"] is not None or entry.get("why")
    m = human_metrics(gt, gt.with_columns(person=gt.tracklet))
    assert m["coverage"] == pytest.approx(100.0) and m["whole"] == len(names)


def test_tud_campus_map_joins_the_man_hidden_behind_others():
    path = MOT15 / "TUD-Campus" / "gt.txt"
    if not path.is_file():
        pytest.skip(f"MOT15 data not found at {path}")
    gt = read_mot(path, kind="gt")
    mapping = json.loads((HUMANS / "TUD-Campus.map.json").read_text())
    humans = humans_from_map(gt, mapping)
    assert len(np.unique(gt.tracklet)) == 8 and len(np.unique(humans.tracklet)) == 7
    # scoring the gt ids as persons: the man's two ids are two persons of one human
    m = human_metrics(gt, gt.with_columns(person=gt.tracklet), humans=mapping)
    assert m["humans"] == 7 and m["whole"] == 6 and m["ceiling_whole"] == 7


def test_tud_campus_extra_humans_are_the_two_people_behind_the_window():
    path = MOT15 / "TUD-Campus" / "gt.txt"
    if not path.is_file():
        pytest.skip(f"MOT15 data not found at {path}")
    gt = read_mot(path, kind="gt")
    extra = read_mot(HUMANS / "TUD-Campus.extra-humans.txt", kind="gt")
    assert sorted(np.unique(extra.tracklet)) == [101, 102]
    assert not set(np.unique(extra.tracklet)) & set(np.unique(gt.tracklet))
    assert extra.frame.min() >= 0 and extra.frame.max() <= gt.frame.max()
    # both sit behind the glass: small and still (under 40 px of the frame's 480 in most frames)
    for h in (101, 102):
        x = extra.xyxy[extra.tracklet == h]
        assert np.median(x[:, 3] - x[:, 1]) < 40 and np.ptp(x[:, 0]) < 3
    # one box per human per frame with MOT15's own boxes: a valid ground truth together
    both = Boxes.concat([gt, extra])
    m = human_metrics(both, both.with_columns(person=both.tracklet), humans=json.loads(
        (HUMANS / "TUD-Campus.map.json").read_text()))
    assert m["humans"] == 9 and m["whole"] == 8 and m["ceiling_whole"] == 9


def test_a_human_nobody_holds_lowers_coverage_not_purity():
    gt = _boxes((range(50), 1, BOX_A), (range(50), 2, BOX_B))
    res = _boxes((range(50), 5, BOX_A), column="person")
    m = human_metrics(gt, res)
    assert m["coverage"] == pytest.approx(50.0)
    assert m["purity"] == pytest.approx(100.0)
    assert m["whole"] == 1 and m["persons_per_human"] == 0.5
