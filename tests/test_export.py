"""Selection and export files: merging persons, npz/JSON/CSV layouts, MOT lines."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import numpy as np

from ptrack.boxes import Boxes
import pytest

from ptrack.formats.export import (Track, atomic_path, merge_tracks, track_from_boxes, write_export,
                           write_selection)

VIDEO = SimpleNamespace(path="/videos/match.mp4", name="match", fps=25.0, width=1920, height=1080,
                        frame_count=500)


def track(pid, frames, conf, tracklet=None, source=None, offset=0.0):
    n = len(frames)
    xyxy = np.array([[10 + f + offset, 20, 60 + f + offset, 220] for f in frames], float).reshape(-1, 4)
    return Track(pid, np.asarray(frames, np.int64), xyxy, np.asarray(conf, float),
                 np.zeros(n, np.int8) if source is None else np.asarray(source, np.int8),
                 np.full(n, pid) if tracklet is None else np.asarray(tracklet))


def test_merge_keeps_more_confident_box_and_counts_contested():
    a = track(14, [0, 1, 2, 3], [0.9, 0.2, 0.5, 0.4], tracklet=[14, 14, 15, 15])
    b = track(29, [2, 3, 4], [0.5, 0.6, 0.7], offset=100)
    m, contested = merge_tracks([a, b])
    assert m.person_id == 14 and contested == 2
    assert m.frame.tolist() == [0, 1, 2, 3, 4]
    assert m.tracklet.tolist() == [14, 14, 15, 29, 29]  # frame 2 ties: first-listed wins
    assert m.conf.tolist() == [0.9, 0.2, 0.5, 0.6, 0.7]
    assert m.xyxy[3].tolist() == [113.0, 20.0, 163.0, 220.0]


def test_merge_single_and_disjoint():
    a = track(3, [5, 6], [0.5, 0.5])
    m, contested = merge_tracks([a])
    assert contested == 0 and m.frame.tolist() == [5, 6]
    m, contested = merge_tracks([track(9, [7], [0.1]), a], person_id=3)
    assert contested == 0 and m.person_id == 3 and m.frame.tolist() == [5, 6, 7]
    with pytest.raises(ValueError):
        merge_tracks([])


def test_npz_reads_like_the_old_pipeline(tmp_path):
    t = track(14, [3, 4, 5], [0.9, 0.0, 0.8], source=[0, 1, 0], tracklet=[14, -1, 22])
    path = write_selection(tmp_path / "primary_person.npz", "npz", t, VIDEO, [14, 22])
    data = np.load(path, allow_pickle=True)
    person = data["primary_person"].item()
    assert person["person_id"] == 14
    assert person["frame_numbers"].tolist() == [3, 4, 5]
    assert person["frame_numbers"].dtype.kind == "i"
    assert person["bboxes"].shape == (3, 4) and person["bboxes"].dtype == np.float64
    assert person["bboxes"][0].tolist() == [13.0, 20.0, 63.0, 220.0]
    assert person["confidences"].tolist() == [0.9, 0.0, 0.8]
    assert person["sources"].tolist() == [0, 1, 0]
    assert person["tracklets"].tolist() == [14, -1, 22]
    data.close()
    top = np.load(path)  # top-level arrays need no pickle
    assert int(top["person_id"]) == 14 and top["person_ids"].tolist() == [14, 22]
    assert top["frame_numbers"].tolist() == [3, 4, 5]
    assert np.array_equal(top["bboxes"], t.xyxy)
    assert str(top["video_path"]) == "/videos/match.mp4" and float(top["fps"]) == 25.0
    assert (int(top["width"]), int(top["height"]), int(top["frame_count"])) == (1920, 1080, 500)
    assert top["sources"].tolist() == [0, 1, 0] and top["tracklets"].tolist() == [14, -1, 22]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["primary_person.npz"]


def test_json_and_csv_selection(tmp_path):
    t = track(7, [0, 50], [0.5, 0.25])
    doc = json.loads(write_selection(tmp_path / "p.json", "json", t, VIDEO, [7]).read_text())
    assert doc["person_id"] == 7 and doc["frame_numbers"] == [0, 50]
    assert doc["bboxes"] == [[10.0, 20.0, 60.0, 220.0], [60.0, 20.0, 110.0, 220.0]]
    assert doc["times"] == [0.0, 2.0] and doc["fps"] == 25.0 and doc["sources"] == [0, 0]
    rows = list(csv.reader((write_selection(tmp_path / "p.csv", "csv", t, VIDEO, [7])).open()))
    assert rows[0] == ["person_id", "frame", "time", "x1", "y1", "x2", "y2", "conf", "source",
                       "tracklet", "raw_x1", "raw_y1", "raw_x2", "raw_y2"]
    assert rows[2] == ["7", "50", "2.0", "60.0", "20.0", "110.0", "220.0", "0.25", "0", "7",
                       "60.0", "20.0", "110.0", "220.0"]


def test_mot_export_is_one_based_and_sorted_by_frame(tmp_path):
    a = track(14, [0, 1], [0.9, 0.8])
    b = track(3, [1], [0.5], offset=0.5)
    path, rows = write_export(tmp_path / "p.txt", "mot", [a, b], VIDEO)
    assert rows == 3
    assert path.read_text().splitlines() == [
        "1,14,10.0,20.0,50.0,200.0,0.9,-1,-1,-1",
        "2,3,11.5,20.0,50.0,200.0,0.5,-1,-1,-1",
        "2,14,11.0,20.0,50.0,200.0,0.8,-1,-1,-1"]


def test_csv_and_json_export(tmp_path):
    a = track(14, [0, 1], [0.9, 0.8], source=[0, 1])
    path, _ = write_export(tmp_path / "p.csv", "csv", [a], VIDEO, {14: 1})
    rows = list(csv.reader(path.open()))
    assert rows[0][:4] == ["person_id", "rank", "frame", "time"]
    assert rows[2] == ["14", "1", "1", "0.04", "11.0", "20.0", "61.0", "220.0", "0.8", "1", "14"]
    doc = json.loads(write_export(tmp_path / "p.json", "json", [a], VIDEO, {14: 1})[0].read_text())
    assert doc["video_path"] == "/videos/match.mp4"
    assert doc["persons"][0]["person_id"] == 14 and doc["persons"][0]["rank"] == 1
    assert doc["persons"][0]["frame_numbers"] == [0, 1] and doc["persons"][0]["sources"] == [0, 1]


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.npz"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]


def _tracks_strategy():
    from hypothesis import strategies as st

    one = st.dictionaries(st.integers(0, 30), st.floats(0, 1, allow_nan=False), min_size=1,
                          max_size=12)
    return st.lists(one, min_size=1, max_size=4)


def test_merge_property_every_frame_once_with_best_conf():
    from hypothesis import given, settings

    @settings(max_examples=60, deadline=None)
    @given(_tracks_strategy())
    def check(specs):
        tracks = [track(i + 1, sorted(d), [d[f] for f in sorted(d)]) for i, d in enumerate(specs)]
        m, contested = merge_tracks(tracks)
        frames = sorted(set().union(*specs))
        assert m.frame.tolist() == frames
        for f, c, pid in zip(m.frame.tolist(), m.conf.tolist(), m.tracklet.tolist()):
            claims = [(d[f], -i) for i, d in enumerate(specs) if f in d]
            best = max(claims)
            assert c == best[0] and pid == -best[1] + 1
        assert contested == sum(1 for f in frames if sum(f in d for d in specs) > 1)

    check()


# ------------------------------------------------------------ smoothed and raw boxes (issue 11)

def _stored_boxes():
    """What ``store.person_boxes`` returns for one person: raw boxes and smoothed ones."""
    return Boxes(np.array([2, 0, 1]),
                 np.array([[2, 0, 12, 20], [0, 0, 10, 20], [1, 0, 11, 20]], np.float32),
                 np.array([0.9, 0.8, 0.0], np.float32), person=np.array([5, 5, 5]),
                 source=np.array([0, 0, 1], np.int8), tracklet=np.array([5, 5, -1]),
                 det=np.array([0, 0, -1]),
                 data={"smoothed": np.array([[2.5, 0, 12.5, 20], [0.5, 0, 10.5, 20],
                                             [1.5, 0, 11.5, 20]], np.float32)})


def test_track_from_boxes_picks_smoothed_or_raw():
    t = track_from_boxes(5, _stored_boxes())
    assert t.frame.tolist() == [0, 1, 2]
    assert t.xyxy[:, 0].tolist() == [0.5, 1.5, 2.5]  # smoothed by default
    assert t.raw[:, 0].tolist() == [0.0, 1.0, 2.0]
    r = track_from_boxes(5, _stored_boxes(), "raw")
    assert r.xyxy[:, 0].tolist() == [0.0, 1.0, 2.0] and r.raw[:, 0].tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(ValueError, match="smoothed, raw"):
        track_from_boxes(5, _stored_boxes(), "kalman")


def test_selection_writes_smoothed_bboxes_and_raw_beside_them(tmp_path):
    t = track_from_boxes(5, _stored_boxes())
    data = np.load(write_selection(tmp_path / "p.npz", "npz", t, VIDEO, [5]), allow_pickle=True)
    person = data["primary_person"].item()
    assert person["bboxes"][:, 0].tolist() == [0.5, 1.5, 2.5]
    assert person["bboxes_raw"][:, 0].tolist() == [0.0, 1.0, 2.0]
    assert data["bboxes_raw"].shape == (3, 4)
    doc = json.loads(write_selection(tmp_path / "p.json", "json", t, VIDEO, [5]).read_text())
    assert [b[0] for b in doc["bboxes"]] == [0.5, 1.5, 2.5]
    assert [b[0] for b in doc["bboxes_raw"]] == [0.0, 1.0, 2.0]
    rows = list(csv.reader(write_selection(tmp_path / "p.csv", "csv", t, VIDEO, [5]).open()))
    assert [r[3] for r in rows[1:]] == ["0.5", "1.5", "2.5"]
    assert [r[10] for r in rows[1:]] == ["0.0", "1.0", "2.0"]


def test_merge_keeps_raw_boxes_of_the_kept_rows():
    a = track_from_boxes(5, _stored_boxes())
    b = Track(9, np.array([2, 3]), np.full((2, 4), 50.0), np.array([0.95, 0.5]),
              np.zeros(2, np.int8), np.array([9, 9]), np.full((2, 4), 40.0))
    m, contested = merge_tracks([a, b])
    assert contested == 1 and m.frame.tolist() == [0, 1, 2, 3]
    assert m.xyxy[:, 0].tolist() == [0.5, 1.5, 50.0, 50.0]  # frame 2: b's box is more confident
    assert m.raw[:, 0].tolist() == [0.0, 1.0, 40.0, 40.0]


@pytest.mark.parametrize("fmt", ["mot", "csv", "json"])
def test_export_writes_the_chosen_boxes(tmp_path, fmt):
    def first_x(which):
        path, _ = write_export(tmp_path / f"{which}.{fmt}", fmt,
                               [track_from_boxes(5, _stored_boxes(), which)], VIDEO)
        if fmt == "json":
            return [b[0] for b in json.loads(path.read_text())["persons"][0]["bboxes"]]
        col = 2 if fmt == "mot" else 4
        rows = list(csv.reader(path.open()))[(fmt == "csv"):]
        return [float(r[col]) for r in rows]
    assert first_x("smoothed") == [0.5, 1.5, 2.5]
    assert first_x("raw") == [0.0, 1.0, 2.0]
