import sqlite3
from pathlib import Path

import numpy as np
import pytest

from ptrack.errors import PtrackError
from ptrack.store import SCHEMA_VERSION, Store, crop_key, parse_crop_key


def _video(store: Store, name: str = "clip", fp: str = "abc"):
    return store.add_video(name=name, path=f"/videos/{name}.mp4", size=10, fingerprint=fp,
                           fps=25.0, width=640, height=480, frame_count=100)


def test_keys_sort_by_frame_then_detection():
    keys = [crop_key(1, f, d) for f, d in [(10, 0), (2, 5), (2, 11), (100, 1), (9, 999)]]
    assert [parse_crop_key(k) for k in sorted(keys)] == [
        (1, 2, 5), (1, 2, 11), (1, 9, 999), (1, 10, 0), (1, 100, 1)]
    assert sorted([crop_key(2, 0, 0), crop_key(1, 99999, 0)])[0] == crop_key(1, 99999, 0)


def test_open_creates_project_with_wal_and_schema(tmp_path: Path):
    with Store.open(tmp_path / "p") as store:
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        v = store.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
        assert int(v) == SCHEMA_VERSION
        assert store.integrity_ok()


def test_read_only_open_of_missing_project_is_clear(tmp_path: Path):
    with pytest.raises(PtrackError, match="no ptrack project at"):
        Store.open(tmp_path / "missing", create=False)


def test_newer_schema_is_refused(tmp_path: Path):
    Store.open(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "ptrack.db")
    conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(PtrackError, match="newer ptrack"):
        Store.open(tmp_path)


def test_detections_and_crops_round_trip(tmp_path: Path):
    with Store.open(tmp_path) as store:
        v = _video(store)
        run = store.start_run(v.id, "detect", {"x": 1})
        rows = [(3, 0, 1.5, 2.5, 30.0, 80.0, 0.9, 0), (1, 0, 0.0, 0.0, 10.0, 20.0, 0.5, 0),
                (1, 1, 5.0, 5.0, 15.0, 25.0, 0.25, 0)]
        crops = [(crop_key(v.id, f, d), bytes([f, d]) * 10) for f, d, *_ in rows]
        store.commit_detections(v.id, run.id, 4, rows, crops)
        d = store.detections(v.id)
        assert d.frame.tolist() == [1, 1, 3]
        assert d.det.tolist() == [0, 1, 0]
        np.testing.assert_allclose(d.xyxy[2], [1.5, 2.5, 30.0, 80.0])
        np.testing.assert_allclose(d.conf, [0.5, 0.25, 0.9])
        assert store.crop(v.id, 1, 1) == bytes([1, 1]) * 10
        assert store.crop(v.id, 7, 0) is None
        assert store.crop_keys(v.id) == [(1, 0), (1, 1), (3, 0)]
        assert store.crop_stats(v.id) == (3, 60)
        assert store.run(run.id).frames_done == 4


def test_discard_removes_detections_and_crops_from_a_frame_on(tmp_path: Path):
    with Store.open(tmp_path) as store:
        a, b = _video(store, "a", "1"), _video(store, "b", "2")
        for v in (a, b):
            run = store.start_run(v.id, "detect", {})
            rows = [(f, 0, 0, 0, 1, 1, 0.5, 0) for f in range(10)]
            store.commit_detections(v.id, run.id, 10, rows,
                                    [(crop_key(v.id, f, 0), b"x") for f in range(10)])
        store.discard_detections(a.id, 6)
        assert store.detections(a.id).frame.tolist() == list(range(6))
        assert [f for f, _ in store.crop_keys(a.id)] == list(range(6))
        assert len(store.crop_keys(b.id)) == 10  # the other video is untouched
        store.discard_detections(a.id, 0)
        assert store.crop_keys(a.id) == [] and store.count_detections(a.id) == 0


def test_crop_map_grows_when_full(tmp_path: Path):
    with Store.open(tmp_path, map_size=1 << 20) as store:  # 1 MiB map
        v = _video(store)
        blob = np.random.default_rng(0).bytes(50_000)
        for batch in range(10):  # 10 x 4 x 50 kB = 2 MB > 1 MiB
            store.put_crops([(crop_key(v.id, batch * 4 + i, 0), blob) for i in range(4)])
        assert store.crop_stats(v.id) == (40, 40 * 50_000)
        assert store.crop_store.env().info()["map_size"] > 1 << 20
    with Store.open(tmp_path, map_size=1 << 20) as again:  # reopening keeps the bigger map
        assert again.crop(v.id, 39, 0) == blob


def test_video_resolution_by_name_id_and_single(tmp_path: Path):
    with Store.open(tmp_path) as store:
        with pytest.raises(PtrackError, match="holds no videos"):
            store.video(None)
        a = _video(store, "match", "1")
        assert store.video(None).id == a.id
        b = _video(store, "training", "2")
        assert store.video("training").id == b.id
        assert store.video(str(a.id)).name == "match"
        assert store.video("/some/dir/match.mp4").id == a.id
        with pytest.raises(PtrackError, match="choose one with --video"):
            store.video(None)
        with pytest.raises(PtrackError, match="unknown video 'nope'") as info:
            store.video("nope")
        assert info.value.exit_code == 2


def test_same_name_other_content_gets_a_new_name(tmp_path: Path):
    with Store.open(tmp_path) as store:
        _video(store, "clip", "1")
        second = _video(store, "clip", "2")
        assert second.name == "clip~2"
        assert store.find_video_by_fingerprint("2").id == second.id


def test_runs_and_staleness(tmp_path: Path):
    with Store.open(tmp_path) as store:
        v = _video(store)
        for stage in ("detect", "track", "group", "rank"):
            store.finish_run(store.start_run(v.id, stage, {"s": stage}).id, "done", {"n": 1})
        store.mark_stale(v.id, "track")
        assert [store.stage_state(v.id, s) for s in ("detect", "track", "group", "rank")] == [
            "done", "done", "stale", "stale"]
        assert store.latest_run(v.id, "track").stats == {"n": 1}
        assert store.stage_state(v.id, "nothing") == "missing"


def test_tracklets_and_persons_round_trip(tmp_path: Path):
    with Store.open(tmp_path) as store:
        v = _video(store)
        run = store.start_run(v.id, "detect", {})
        rows = [(f, d, 10.0 * d, 0, 10.0 * d + 5, 20, 0.5 + d / 10, 0) for f in range(3) for d in range(2)]
        store.commit_detections(v.id, run.id, 3, rows, [])
        det = store.detections(v.id)
        store.replace_tracklets(v.id, det.frame, det.det, np.where(det.det == 0, 4, 7))
        tid, boxes = store.tracklet_boxes(v.id)
        assert tid.tolist() == [4, 4, 4, 7, 7, 7]
        assert boxes.det.tolist() == [0, 0, 0, 1, 1, 1]
        person = {"id": 4, "n_frames": 3, "n_observed": 2, "first": 0, "last": 2, "n_tracklets": 1,
                  "mean_height": 20.0, "mean_conf": 0.5}
        store.replace_persons(v.id, [person], [(4, 0, 0, 0, 5, 20, 0.5, 0, 4, 0),
                                               (4, 1, 0, 0, 5, 20, 0.5, 1, 4, -1)], [(4, 4)])
        store.set_ranking(v.id, [(4, 1, 0.75, {"duration": 1.0})])
        p = store.persons(v.id)[0]
        assert (p["id"], p["rank"], p["score"], p["components"]) == (4, 1, 0.75, {"duration": 1.0})
        pb = store.person_boxes(v.id, 4)
        assert pb["frame"].tolist() == [0, 1] and pb["source"].tolist() == [0, 1]
        assert pb["det"].tolist() == [0, -1]
        assert store.person_tracklets(v.id) == {4: [4]}


def test_constraints_and_selections(tmp_path: Path):
    with Store.open(tmp_path) as store:
        v = _video(store)
        cid = store.add_constraint(v.id, "merge", [3, 9])
        assert store.constraints(v.id)[0]["ids"] == [3, 9]
        store.delete_constraints([cid])
        assert store.constraints(v.id) == []
        store.add_selection(v.id, [3, 9], 3, 120, "/out/p.npz", "npz")
        sel = store.selections(v.id)[0]
        assert sel["person_ids"] == [3, 9] and sel["n_frames"] == 120
