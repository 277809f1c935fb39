"""`ptrack integrity` and `ptrack rm` through the CLI on real projects."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from ptrack.cli import app
from ptrack.store import Store, crop_key

runner = CliRunner()
PERSON = {"id": 1, "n_frames": 1, "n_observed": 1, "first": 0, "last": 0, "n_tracklets": 1,
          "mean_height": 20.0, "mean_conf": 0.5}


def cli(project: Path, *args):
    return runner.invoke(app, ["--project", str(project), *map(str, args)])


def project(root: Path, names=("match",)) -> Path:
    """A project with detections, crops, tracklets and persons for each video."""
    with Store.open(root) as store:
        for i, name in enumerate(names):
            v = store.add_video(name=name, path=f"/v/{name}.mp4", size=1, fingerprint=str(i),
                                fps=25.0, width=64, height=64, frame_count=10)
            run = store.start_run(v.id, "detect", {})
            rows = [(f, 0, 0.0, 0.0, 10.0, 20.0, 0.5, 0) for f in range(4)]
            store.commit_detections(v.id, run.id, 4, rows,
                                    [(crop_key(v.id, f, 0), b"jpeg") for f in range(4)])
            store.finish_run(run.id, "done", {})
            store.replace_tracklets(v.id, [0, 1, 2, 3], [0, 0, 0, 0], [5, 5, 5, 5])
            store.replace_persons(v.id, [PERSON], [(1, 0, 0, 0, 5, 20, 0.5, 0, 5, 0)], [(1, 5)])
    return root


def test_healthy_project_exits_0(tmp_path):
    result = cli(project(tmp_path / "p"), "integrity")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "database     ok" and lines[1] == "crop store   ok"
    assert "1 videos, 4 detections, 4 crops" in result.output
    assert lines[-1] == "healthy"


def test_orphans_and_running_runs_are_reported_exit_1(tmp_path):
    proj = project(tmp_path / "p")
    with Store.open(proj) as store:
        v = store.video(None)
        store.put_crops([(crop_key(v.id, 9, 0), b"orphan")])
        store.conn.execute("DELETE FROM detections WHERE frame = 3")
        store.conn.execute("INSERT INTO detections VALUES (?, 7, 0, 0, 0, 1, 1, 0.5, 0)", (v.id,))
        store.conn.commit()
        store.start_run(v.id, "group", {})
    result = cli(proj, "integrity")
    assert result.exit_code == 1
    assert "match: 1 detections without their crop" in result.output
    assert "match: 2 crops without a detection" in result.output
    assert "left running: match: group (run 2)" in result.output
    assert "ptrack detect --force VIDEO" in result.output


def test_missing_crop_store_is_damage(tmp_path):
    proj = project(tmp_path / "p")
    shutil.rmtree(proj / "crops.lmdb")
    result = cli(proj, "integrity")
    assert result.exit_code == 1
    assert "crop store   DAMAGED: missing while 4 detections have crops" in result.output
    assert not (proj / "crops.lmdb").exists()


def test_missing_crop_store_fails_crop_commands_with_recovery(tmp_path):
    proj = project(tmp_path / "p")
    shutil.rmtree(proj / "crops.lmdb")
    result = cli(proj, "group")
    assert result.exit_code == 1
    error = result.output.strip().splitlines()[-1]
    assert error.startswith("Error: project ") and "crop store crops.lmdb is missing" in error
    assert "detect --force" in error


def test_zero_byte_database_is_damage_not_an_empty_project(tmp_path):
    proj = project(tmp_path / "p")
    (proj / "ptrack.db").write_bytes(b"")
    for f in proj.glob("ptrack.db-*"):
        f.unlink()
    for args in (("list", "videos"), ("integrity",)):
        result = cli(proj, *args)
        assert result.exit_code == 1, result.output
        assert "ptrack.db is empty (0 bytes) while its crop store crops.lmdb holds crops" in result.output
        assert "holds no videos" not in result.output
    assert (proj / "ptrack.db").stat().st_size == 0


def test_rm_removes_one_video_and_says_what(tmp_path):
    proj = project(tmp_path / "p", names=("match", "training"))
    result = cli(proj, "rm", "match")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == ("removed match (id 1): 4 detections, 4 crops, 4 tracklet "
                                     "boxes, 1 person, 1 run")
    with Store.open(proj) as store:
        assert [v.name for v in store.videos()] == ["training"]
        assert store.crop_keys(1) == [] and len(store.crop_keys(2)) == 4
    assert cli(proj, "integrity").exit_code == 0
    unknown = cli(proj, "rm", "match")
    assert unknown.exit_code == 2 and "unknown video 'match'" in unknown.output
