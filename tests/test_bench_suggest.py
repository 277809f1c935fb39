"""The pure parts of ``bench/suggest.py``: MOT15 public detections as material, the held-out cut."""

from __future__ import annotations

import json
from pathlib import Path

import bench.suggest as bs


def _seq(root: Path, name: str, rate: int = 14) -> None:
    d = root / "mot15" / name
    d.mkdir(parents=True)
    (d / "det.txt").write_text("1,-1,10,20,30,60,0.9,-1,-1,-1\n")
    (d / "gt.txt").write_text("1,1,10,20,30,60,1,-1,-1,-1\n")
    (d / "seqinfo.ini").write_text(f"[Sequence]\nname={name}\nframeRate={rate}\nseqLength=1\n"
                                   "imWidth=640\nimHeight=480\nimExt=.jpg\n")


def test_public_detections_are_imported_with_their_sequence_geometry(tmp_path, monkeypatch):
    monkeypatch.setattr(bs, "SHARED", tmp_path)
    _seq(tmp_path, "ETH-Sunnyday")
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "ETH-Sunnyday.map.json").write_text(json.dumps({"3": 1}))
    [c] = bs.clips(labels, None, [], public=["ETH-Sunnyday", "KITTI-17"])  # KITTI-17 absent
    assert c["name"] == "ETH-Sunnyday (public)" and c["model"] == "public"
    assert c["fold"] == "ETH-Sunnyday" and c["video_name"] == "ETH-Sunnyday-public"
    assert c["import"] == ["--fps", "14", "--width", "640", "--height", "480"]
    assert c["map"] == {3: 1} and c["extra"] is None
    assert bs.clips(labels, ["TUD-Campus"], [], public=["ETH-Sunnyday"]) == []


def test_the_other_detector_is_not_run_on_public_boxes(tmp_path, monkeypatch):
    monkeypatch.setattr(bs, "SHARED", tmp_path)
    _seq(tmp_path, "KITTI-17")
    got = bs.clips(tmp_path, None, [], other=True, public=["KITTI-17"])
    assert [c["name"] for c in got] == ["KITTI-17 (public)"]


def _row(first, whole):
    return {"first": [[1, 2, r] for r in first], "whole_after": whole}


def test_the_cut_meets_the_precision_bar_then_makes_most_clips_whole_then_is_largest():
    by_value = {
        0.3: [_row([True], 0), _row([], None)],               # 100%, 1 whole
        0.45: [_row([True], 0), _row([True, False], 1)],      # 67%: under the bar
        0.5: [_row([True], 0), _row([True], 1)],              # 100%, 2 whole
        0.6: [_row([True], 0), _row([True], 1)],              # the same: the largest wins
    }
    assert bs.choose(by_value) == 0.6
    # no value meets the bar: the most precise first
    assert bs.choose({0.3: [_row([False, True], 0)], 0.5: [_row([False], 0)]}) == 0.3
    assert bs.pooled(by_value[0.45]) == (2, 3)
    assert bs.whole_within(by_value[0.3]) == 1

