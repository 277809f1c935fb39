import os
import shutil
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
        # a deleted correction's number is never given to another one, even after reopening
        again = store.add_constraint(v.id, "split", [4], frame=7)
        assert again == cid + 1
    with Store.open(tmp_path) as store:
        store.delete_constraints([again])
        assert store.add_constraint(v.id, "merge", [5, 6]) == again + 1
    with Store.open(tmp_path) as store:
        store.add_selection(v.id, [3, 9], 3, 120, "/out/p.npz", "npz")
        sel = store.selections(v.id)[0]
        assert sel["person_ids"] == [3, 9] and sel["n_frames"] == 120


# ------------------------------------------------------------------ issue 9 and 10 additions

from ptrack.boxes import Boxes  # noqa: E402
from ptrack.errors import StoreError  # noqa: E402

PERSON = {"id": 1, "n_frames": 1, "n_observed": 1, "first": 0, "last": 0, "n_tracklets": 1,
          "mean_height": 20.0, "mean_conf": 0.5}


def _detected(store: Store, v, frames: int = 5, blob: bytes = b"jpeg") -> int:
    run = store.start_run(v.id, "detect", {})
    rows = [(f, 0, 0.0, 0.0, 10.0, 20.0, 0.5, 0) for f in range(frames)]
    store.commit_detections(v.id, run.id, frames, rows,
                            [(crop_key(v.id, f, 0), blob) for f in range(frames)])
    store.finish_run(run.id, "done", {})
    return run.id


def test_detections_are_boxes_with_det_column(tmp_path: Path):
    with Store.open(tmp_path) as store:
        v = _video(store)
        _detected(store, v, 3)
        d = store.detections(v.id)
        assert isinstance(d, Boxes)
        assert d.det.tolist() == [0, 0, 0] and d.frame.tolist() == [0, 1, 2]
        assert d[1:].frame.tolist() == [1, 2]
        tid, boxes = store.tracklet_boxes(v.id)
        assert isinstance(boxes, Boxes) and len(tid) == 0


def test_sqlite_errors_are_store_errors(tmp_path: Path):
    (tmp_path / "ptrack.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="ptrack.db is damaged"):
        Store.open(tmp_path)


def _fill(store: Store, video_id: int, n: int, size: int = 100_000, first: int = 0) -> None:
    blob = np.random.default_rng(video_id).bytes(size)
    for f in range(first, first + n, 5):
        store.put_crops([(crop_key(video_id, g, 0), blob) for g in range(f, min(f + 5, first + n))])


def test_delete_and_resume_cleanup_grow_a_full_map(tmp_path: Path):
    with Store.open(tmp_path, map_size=1 << 20) as store:
        v = _video(store)
        _fill(store, v.id, 80)  # 8 MB through a 1 MiB initial map
        assert store.crop_stats(v.id)[0] == 80
    # reopened with a tiny map, LMDB maps exactly the pages in use: every write needs growth
    with Store.open(tmp_path, map_size=1 << 16) as store:
        store.crop_store.env().set_mapsize(store.crop_store.env().info()["last_pgno"] * 4096 + 4096)
        assert store.delete_crops(v.id, 40) == 40  # a delete copies pages: needs map room
        _fill(store, v.id, 40, first=40)  # resume past the size again
        store.discard_detections(v.id, 60)
        assert [f for f, _ in store.crop_keys(v.id)] == list(range(60))


def test_map_grown_by_another_process_is_adopted(tmp_path: Path):
    import subprocess
    import sys

    with Store.open(tmp_path, map_size=1 << 20) as store:
        a, b = _video(store, "a", "1"), _video(store, "b", "2")
        store.put_crops([(crop_key(a.id, 0, 0), b"x")])  # this process maps 1 MiB
        code = ("import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path\n"
                "from ptrack.store import Store; from tests.test_store import _fill\n"
                "with Store.open(Path(sys.argv[2]), map_size=1 << 20) as s: _fill(s, int(sys.argv[3]), 60)\n")
        subprocess.run([sys.executable, "-c", code, str(Path(__file__).parents[1]), str(tmp_path),
                        str(b.id)], check=True)
        _fill(store, a.id, 30, first=1)  # MDB_MAP_RESIZED here before: "free space"
        assert store.crop_stats(a.id)[0] == 31 and store.crop_stats(b.id)[0] == 60


def test_only_a_real_full_disk_is_blamed_on_the_disk(tmp_path: Path):
    import lmdb

    from ptrack.store.crops_db import CropStore

    crops = CropStore(tmp_path / "c.lmdb")
    assert "no space left" not in str(crops.write_error(lmdb.MapFullError("MDB_MAP_FULL")))
    assert "no space left" not in str(crops.write_error(lmdb.MapResizedError("MDB_MAP_RESIZED")))
    assert "no space left" in str(crops.write_error(OSError(28, "No space left on device")))


def test_force_replaces_old_results_only_with_the_first_new_batch(tmp_path: Path):
    with Store.open(tmp_path) as store:
        v = _video(store)
        _detected(store, v, 5)
        run = store.start_run(v.id, "detect", {"new": 1})
        assert store.replacing(v.id)
        assert store.count_detections(v.id) == 5 and len(store.crop_keys(v.id)) == 5  # kept
        store.commit_detections(v.id, run.id, 2, [(1, 0, 1, 1, 5, 5, 0.9, 0)],
                                [(crop_key(v.id, 1, 0), b"new")], replace_from=0)
        assert store.detections(v.id).frame.tolist() == [1]
        assert store.crop_keys(v.id) == [(1, 0)] and store.crop(v.id, 1, 0) == b"new"
        store.finish_run(run.id, "done", {})
        assert not store.replacing(v.id)


def test_stage_results_status_and_staleness_commit_together(tmp_path: Path):
    with Store.open(tmp_path) as store:
        v = _video(store)
        _detected(store, v, 3)
        for stage in ("track", "group", "rank"):
            store.finish_run(store.start_run(v.id, stage, {}).id, "done", {})
        run = store.start_run(v.id, "track", {"again": 1})
        d = store.detections(v.id)
        store.replace_tracklets(v.id, d.frame, d.det, np.zeros(len(d), np.int64), run_id=run.id,
                                stats={"tracklets": 1})
        assert store.run(run.id).status == "done" and store.run(run.id).stats == {"tracklets": 1}
        assert [store.stage_state(v.id, s) for s in ("group", "rank")] == ["stale", "stale"]
        group = store.start_run(v.id, "group", {})
        with pytest.raises(StoreError):  # a failing insert rolls back results and status alike
            store.replace_persons(v.id, [PERSON, PERSON], [], [], run_id=group.id, stats={})
        assert store.run(group.id).status == "running" and store.persons(v.id) == []
        store.replace_persons(v.id, [PERSON], [(1, 0, 0, 0, 5, 20, 0.5, 0, 0, 0)], [(1, 0)],
                              run_id=group.id, stats={"persons": 1})
        assert store.stage_state(v.id, "group") == "done"
        rank = store.start_run(v.id, "rank", {})
        store.set_ranking(v.id, [(1, 1, 0.5, {})], run_id=rank.id, stats={"persons": 1})
        assert store.stage_state(v.id, "rank") == "done" and store.persons(v.id)[0]["rank"] == 1


def test_empty_database_next_to_crops_is_damage_not_a_new_project(tmp_path: Path):
    with Store.open(tmp_path) as store:
        _detected(store, _video(store))
    (tmp_path / "ptrack.db").write_bytes(b"")
    for f in tmp_path.glob("ptrack.db-*"):
        f.unlink()
    with pytest.raises(StoreError, match=r"ptrack.db is empty \(0 bytes\) while its crop store"):
        Store.open(tmp_path)
    assert (tmp_path / "ptrack.db").stat().st_size == 0  # nothing rewritten


def test_missing_crop_store_is_reported_and_rebuilt_only_on_request(tmp_path: Path):
    with Store.open(tmp_path) as store:
        v = _video(store)
        _detected(store, v)
    shutil.rmtree(tmp_path / "crops.lmdb")
    with Store.open(tmp_path) as store:
        for read in (lambda: store.crop_keys(v.id), lambda: store.crops([(v.id, 0, 0)]),
                     lambda: store.put_crops([(crop_key(v.id, 9, 0), b"x")])):
            with pytest.raises(StoreError, match="crop store crops.lmdb is missing but 5 "
                                                 "detections have crops.*detect --force"):
                read()
        assert not (tmp_path / "crops.lmdb").exists()  # no empty store stands in for it
        report = store.integrity()
        assert not report.ok and "missing" in report.crops
        assert store.rebuild_crops_if_broken() is not None  # what detect --force does
        store.discard_detections(v.id)
        assert store.crop_keys(v.id) == []


def test_garbage_crop_store_is_reported(tmp_path: Path):
    with Store.open(tmp_path) as store:
        v = _video(store)
        _detected(store, v)
    (tmp_path / "crops.lmdb" / "data.mdb").write_bytes(np.random.default_rng(1).bytes(65536))
    with Store.open(tmp_path) as store:
        with pytest.raises(StoreError, match="crop store .* is damaged .*detect --force"):
            store.crop_keys(v.id)
        assert not store.integrity().ok
        note = store.rebuild_crops_if_broken()
        assert "moved to" in note and (tmp_path / "crops.lmdb.damaged-1" / "data.mdb").exists()


def test_undecodable_and_tiny_crops_decode_to_none():
    from ptrack.detect import crops
    frame = np.full((2, 2, 3), 128, np.uint8)  # a 2x2-pixel video
    tiny = crops.encode(frame, np.array([0, 0, 2, 2]), max_h=256, max_w=128, quality=90)
    good = crops.encode(np.full((40, 20, 3), 50, np.uint8), np.array([0, 0, 20, 40]), max_h=256,
                        max_w=128, quality=90)
    assert crops.decode(tiny) is None and crops.decode(b"\xff\xd8garbage") is None
    assert crops.decode(None) is None and crops.decode(good).shape == (40, 20, 3)


def test_integrity_of_a_healthy_project_ignores_sqlites_without_rowid_false_positive(tmp_path: Path):
    with Store.open(tmp_path) as store:
        v = _video(store)
        _detected(store, v, 3)
        store.replace_persons(v.id, [PERSON], [(1, 0, 0, 0, 5, 20, 0.5, 0, 3, 0)], [(1, 3)])
        raw = [r[0] for r in store.conn.execute("PRAGMA integrity_check")]
        report = store.integrity()
        assert store.integrity_ok() and report.ok, (raw, report)
        assert report.counts == {"videos": 1, "detections": 3, "crops": 3}


def test_integrity_finds_orphans_and_running_runs(tmp_path: Path):
    with Store.open(tmp_path) as store:
        v = _video(store)
        _detected(store, v, 4)
        store.put_crops([(crop_key(v.id, 7, 0), b"orphan"), (crop_key(99, 0, 0), b"stray")])
        store.conn.execute("DELETE FROM detections WHERE frame = 0")
        store.conn.execute("INSERT INTO detections VALUES (?, 8, 0, 0, 0, 1, 1, 0.5, 0)", (v.id,))
        store.conn.commit()
        store.start_run(v.id, "track", {})
        report = store.integrity()
        assert not report.ok
        assert report.detections_without_crops == {"clip": 1}
        assert report.crops_without_detections == {"clip": 2, "video id 99": 1}
        assert report.running == ["clip: track (run 2)"]


def test_remove_video_removes_rows_and_crops(tmp_path: Path):
    with Store.open(tmp_path) as store:
        a, b = _video(store, "a", "1"), _video(store, "b", "2")
        _detected(store, a, 4)
        _detected(store, b, 2)
        store.add_constraint(a.id, "merge", [1, 2])
        removed = store.remove_video(a.id)
        assert removed["crops"] == 4 and removed["detections"] == 4 and removed["constraints"] == 1
        assert [v.name for v in store.videos()] == ["b"] and store.crop_keys(a.id) == []
        assert store.count_detections(b.id) == 2 and len(store.crop_keys(b.id)) == 2
        assert store.integrity().ok


def test_leftovers_of_killed_commands_are_cleaned_on_open(tmp_path: Path):
    import os
    import subprocess

    Store.open(tmp_path).close()
    out = tmp_path / "outputs" / "clip"
    out.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = out / f".primary_person.part{dead.pid}.npz"
    live = out / f".annotated.part{os.getpid()}.mp4"
    stale.write_bytes(b"x")
    live.write_bytes(b"x")
    old_export = tmp_path / "models" / ".export-abc"
    new_export = tmp_path / "models" / ".export-def"
    old_export.mkdir(parents=True)
    new_export.mkdir()
    os.utime(old_export, (1, 1))
    with Store.open(tmp_path):
        pass
    assert not stale.exists() and live.exists()  # a running writer's file stays
    assert not old_export.exists() and new_export.exists()


@pytest.fixture
def read_only_mount(tmp_path: Path):
    """A bind mount of ``tmp_path/src`` that nobody (root included) can write."""
    import subprocess

    src, dst = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    dst.mkdir()
    if subprocess.run(["mount", "--bind", str(src), str(dst)], capture_output=True).returncode:
        pytest.skip("cannot bind-mount here (needs root)")
    try:
        yield src, dst, lambda: subprocess.run(["mount", "-o", "remount,ro,bind", str(dst)],
                                               check=True)
    finally:
        subprocess.run(["umount", "-l", str(dst)], check=False)


def test_read_only_project_reads_and_refuses_writes(read_only_mount):
    src, dst, lock = read_only_mount
    with Store.open(src / "p") as store:
        v = _video(store)
        _detected(store, v, 3)
    lock()
    with Store.open(dst / "p", create=True) as store:
        assert store.read_only
        assert store.detections(v.id).frame.tolist() == [0, 1, 2]
        assert store.crop(v.id, 2, 0) == b"jpeg" and store.integrity().ok
        with pytest.raises(StoreError, match=r"project .* is read-only"):
            store.add_constraint(v.id, "merge", [1, 2])
        with pytest.raises(StoreError, match="is read-only"):
            store.put_crops([(crop_key(v.id, 5, 0), b"x")])


def test_integrity_accepts_crops_past_an_interrupted_runs_marker(tmp_path: Path):
    with Store.open(tmp_path) as store:
        v = _video(store)
        run = store.start_run(v.id, "detect", {})
        store.commit_detections(v.id, run.id, 2, [(0, 0, 0, 0, 1, 1, 0.5, 0)],
                                [(crop_key(v.id, 0, 0), b"x")])
        store.put_crops([(crop_key(v.id, 3, 0), b"killed before its rows")])
        store.set_run_status(run.id, "interrupted")
        assert store.integrity().ok  # the resume removes it
        store.finish_run(run.id, "done", {})
        assert store.integrity().crops_without_detections == {"clip": 1}


# ------------------------------------------------- smoothed person boxes, schema 2 (issue 11)

from ptrack.store import meta as _meta  # noqa: E402


def test_person_boxes_round_trip_smoothed_beside_raw(tmp_path: Path):
    with Store.open(tmp_path) as store:
        v = _video(store)
        store.replace_persons(v.id, [PERSON | {"n_frames": 2, "last": 1}], [
            (1, 0, 0, 0, 5, 20, 0.5, 0, 1, 0, 0.5, 1.0, 5.5, 21.0),
            (1, 1, 2, 0, 7, 20, 0.0, 1, -1, -1, 2.25, 0.5, 7.25, 20.5),
            (1, 2, 4, 0, 9, 20, 0.7, 0, 1, 3)], [(1, 1)])  # no smoothed box given: the raw one
        pb = store.person_boxes(v.id, 1)
        assert pb["xyxy"].tolist() == [[0, 0, 5, 20], [2, 0, 7, 20], [4, 0, 9, 20]]
        assert pb["smoothed"].tolist() == [[0.5, 1, 5.5, 21], [2.25, 0.5, 7.25, 20.5],
                                           [4, 0, 9, 20]]
        assert pb["smoothed"].dtype == np.float32


def _schema1_project(root: Path) -> None:
    """A project as ptrack wrote it with schema 1: persons without smoothed boxes, grouped
    and ranked."""
    root.mkdir()
    conn = sqlite3.connect(root / "ptrack.db")
    schema1 = _meta._SCHEMA.replace("    sx1 REAL, sy1 REAL, sx2 REAL, sy2 REAL,\n", "")
    assert schema1 != _meta._SCHEMA
    conn.executescript(schema1)
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    conn.execute("INSERT INTO videos VALUES (1, 'clip', '/c.mp4', 1, 'f', 25, 64, 48, 10, 0, 'x')")
    for rid, stage in enumerate(("detect", "track", "group", "rank"), 1):
        conn.execute("INSERT INTO runs (id, video_id, stage, settings, status, input_run, started)"
                     " VALUES (?, 1, ?, '{}', 'done', ?, 'x')", (rid, stage, rid - 1 or None))
    conn.execute("INSERT INTO persons VALUES (1, 3, 1, 0.5, '{}', 2, 2, 0, 1, 1, 20, 0.5)")
    conn.executemany("INSERT INTO person_boxes VALUES (1, 3, ?, ?, 0, ?, 20, 0.5, 0, 3, 0)",
                     [(0, 1.0, 6.0), (1, 2.0, 7.0)])
    conn.commit()
    conn.close()


def test_schema1_project_is_upgraded_and_its_persons_marked_stale(tmp_path: Path):
    _schema1_project(tmp_path / "old")
    with Store.open(tmp_path / "old", create=False) as store:
        assert store.meta.schema_version() == SCHEMA_VERSION == 4
        pb = store.person_boxes(1, 3)
        assert pb["xyxy"].tolist() == [[1, 0, 6, 20], [2, 0, 7, 20]]
        assert pb["smoothed"].tolist() == pb["xyxy"].tolist()  # filled until group re-runs
        # group (and rank) re-run before anything reads the persons again
        assert [store.stage_state(1, s) for s in ("detect", "track", "group", "rank")] == [
            "done", "done", "stale", "stale"]
        assert store.integrity_ok()
    with Store.open(tmp_path / "old", create=False) as store:  # a second open changes nothing
        assert store.stage_state(1, "group") == "stale"


def test_schema1_project_on_a_read_only_directory_is_read_as_it_is(tmp_path: Path, monkeypatch):
    _schema1_project(tmp_path / "old")
    import ptrack.store as store_module

    real_access = os.access
    def access(path, mode):  # the project directory reads as not writable
        return False if Path(path) == tmp_path / "old" else real_access(path, mode)

    monkeypatch.setattr(store_module.os, "access", access)
    with Store.open(tmp_path / "old", create=False) as store:
        assert store.read_only and store.meta.schema_version() == 1
        pb = store.person_boxes(1, 3)
        assert pb["smoothed"].tolist() == pb["xyxy"].tolist() == [[1, 0, 6, 20], [2, 0, 7, 20]]


@pytest.mark.parametrize("box, want", [
    ((10.2, 20.7, 30.1, 40.0), (10, 20, 31, 40)),   # outwards to whole pixels
    ((-5.0, -3.5, 8.0, 9.9), (0, 0, 8, 10)),         # clipped at the frame's edge
    ((630.5, 470.0, 700.0, 900.0), (630, 470, 640, 480)),
    ((700.0, 500.0, 710.0, 520.0), (639, 479, 640, 480)),  # outside: the last pixel, 1x1
    ((50.0, 60.0, 50.0, 60.0), (50, 60, 51, 61)),    # empty box: at least 1x1
])
def test_crop_cut_rounds_outwards_clips_and_keeps_one_pixel(box, want):
    from ptrack.detect import crops
    image = np.arange(480 * 640 * 3, dtype=np.uint32).reshape(480, 640, 3)
    x1, y1, x2, y2 = want
    got = crops.cut(image, np.array(box, np.float32))
    assert np.array_equal(got, image[y1:y2, x1:x2])


def test_store_db_is_sqlite_utils_on_the_project_connection(tmp_path: Path):
    import sqlite_utils

    with Store.open(tmp_path / "p") as store:
        store.add_video(name="clip", path="/videos/clip.mp4", size=10, fingerprint="f",
                        fps=25.0, width=640, height=480, frame_count=100)
        assert isinstance(store.db, sqlite_utils.Database)
        assert store.db["videos"].count == 1
        assert {"videos", "detections", "tracklet_boxes", "persons"} <= set(store.db.table_names())
