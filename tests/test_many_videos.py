"""Many videos (issue 23): folder / glob / list inputs, `--workers N` and `--ray` equal to one
process, `combine` equal to one project that ran both, a killed worker retried, a failing
video reported while the others finish.

Every run here uses the test model at imgsz 320 on copies of the 35-frame bundled clip, each
made a different video by a trailing MP4 `free` box of its own length."""

from __future__ import annotations

import os
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ptrack.batch.inputs import find_videos
from ptrack.cli import app
from ptrack.cli.common import ray_address
from ptrack.errors import PtrackError
from ptrack.store import Store
from tests.conftest import REPO

runner = CliRunner()
MODEL = ["--model", "pkg:fall_detection/models/best.pt", "--classes", "all", "--imgsz", "320"]


def clip_copy(dest: Path, k: int) -> Path:
    """The bundled clip with a trailing `free` box of 8 + k bytes: a different video."""
    data = (REPO / "tests/data/walking-pair.mp4").read_bytes()
    dest.write_bytes(data + struct.pack(">I", 8 + k) + b"free" + b"\0" * k)
    return dest


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    d = tmp_path_factory.mktemp("clips")
    return [clip_copy(d / f"{name}.mp4", k) for k, name in enumerate(("a", "b"))]


def invoke(project: Path, *args: str):
    return runner.invoke(app, ["--project", str(project), *args])


@pytest.fixture(scope="module")
def reference(clips, tmp_path_factory, person_model) -> Path:
    """One process, both videos."""
    proj = tmp_path_factory.mktemp("ref") / "p"
    res = invoke(proj, "run", *map(str, clips), *MODEL)
    assert res.exit_code == 0, res.output
    return proj


def contents(project: Path) -> dict[str, dict]:
    """Per video name: detections, tracklets, persons and their boxes."""
    out = {}
    with Store.open(project, create=False) as s:
        for v in s.videos():
            det = s.detections(v.id)
            tid, tb = s.tracklet_boxes(v.id)
            pb = s.person_boxes(v.id)
            persons = [(p["id"], p["rank"], p["n_frames"], p["first"], p["last"], p["n_tracklets"])
                       for p in s.persons(v.id)]
            out[v.name] = {
                "det_keys": np.c_[det.frame, det["det"], det.cls], "det_xyxy": det.xyxy,
                "det_conf": det.conf, "tracklets": np.c_[tid, tb.frame, tb["det"]],
                "persons": persons, "person_keys": np.c_[pb["person"], pb.frame, pb["source"]],
                "person_xyxy": pb.xyxy, "smoothed": pb["smoothed"],
                "stages": [s.stage_state(v.id, st) for st in ("detect", "track", "group", "rank")]}
    return out


def assert_same(a: Path, b: Path, *, only: set[str] | None = None, detect_only: bool = False) -> None:
    """The same detections (float noise aside), tracklets and persons per video."""
    ca, cb = contents(a), contents(b)
    names = only if only is not None else set(ca)
    assert names <= set(ca) and names <= set(cb), (set(ca), set(cb))
    for name in names:
        x, y = ca[name], cb[name]
        np.testing.assert_array_equal(x["det_keys"], y["det_keys"])
        np.testing.assert_allclose(x["det_xyxy"], y["det_xyxy"], atol=0.05)
        np.testing.assert_allclose(x["det_conf"], y["det_conf"], atol=1e-3)
        if detect_only:
            continue
        np.testing.assert_array_equal(x["tracklets"], y["tracklets"])
        assert x["persons"] == y["persons"] and len(x["persons"]) == 2
        np.testing.assert_array_equal(x["person_keys"], y["person_keys"])
        np.testing.assert_allclose(x["person_xyxy"], y["person_xyxy"], atol=0.05)
        np.testing.assert_allclose(x["smoothed"], y["smoothed"], atol=0.05)
        assert x["stages"] == y["stages"] == ["done"] * 4


def healthy(project: Path) -> None:
    res = invoke(project, "integrity")
    assert res.exit_code == 0 and "healthy" in res.output, res.output


# ------------------------------------------------------------------------------ inputs
def test_folders_globs_and_list_files(tmp_path: Path):
    top = tmp_path / "videos"
    (top / "day2").mkdir(parents=True)
    for p in (top / "m1.mp4", top / "M2.MOV", top / "day2" / "m3.mkv"):
        p.write_bytes(b"x")
    (top / "notes.txt").write_text("hello")
    (top / ".hidden.mp4").write_bytes(b"x")
    (top / "day2" / "thumb.jpg").write_bytes(b"x")

    flat = find_videos([top])
    assert [p.name for p in flat.paths] == ["M2.MOV", "m1.mp4"] and flat.skipped == 1
    assert flat.note() == "skipped 1 file that is not a video (by file name) in the folders given"
    deep = find_videos([top], recursive=True)
    assert sorted(p.name for p in deep.paths) == ["M2.MOV", "m1.mp4", "m3.mkv"]
    assert deep.skipped == 2
    assert [p.name for p in find_videos([str(top / "*.mp4")]).paths] == ["m1.mp4"]
    assert sorted(p.name for p in find_videos([str(top / "**" / "*.mkv")], recursive=True).paths) == ["m3.mkv"]
    listing = tmp_path / "list.txt"
    listing.write_text("# my videos\nvideos/m1.mp4\n\n" + str(top / "day2" / "m3.mkv") + "\nvideos/m1.mp4\n")
    listed = find_videos([], from_file=listing)
    assert listed.paths == [tmp_path / "videos" / "m1.mp4", top / "day2" / "m3.mkv"]  # once each
    named = find_videos([top / "notes.txt"])  # a file named on the command line is taken as is
    assert named.paths == [top / "notes.txt"] and named.skipped == 0
    for bad, message in (([str(top / "*.avi")], "no file matches"), ([], "no videos given"),
                         ([tmp_path / "empty"], "no videos found")):
        if bad and bad[0] == tmp_path / "empty":
            bad[0].mkdir()
        with pytest.raises(PtrackError, match=message) as exc:
            find_videos(bad)
        assert exc.value.exit_code == 2
    with pytest.raises(PtrackError, match="--from-file .*no such file"):
        find_videos([], from_file=tmp_path / "missing.txt")


def test_ray_takes_an_optional_address():
    assert ray_address(["run", "a.mp4", "--ray"]) == ["run", "a.mp4", "--ray", "local"]
    assert ray_address(["run", "--ray", "a.mp4"]) == ["run", "--ray", "local", "a.mp4"]
    assert ray_address(["run", "--ray", "--workers", "2"]) == ["run", "--ray", "local", "--workers", "2"]
    for address in ("auto", "ray://head:10001", "10.0.0.5:6379", "local"):
        assert ray_address(["run", "--ray", address, "x"]) == ["run", "--ray", address, "x"]


def test_run_takes_a_folder_and_skips_other_files(tmp_path: Path, clips, reference):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(clips[0].read_bytes())
    (folder / "readme.txt").write_text("not a video")
    proj = tmp_path / "p"
    res = invoke(proj, "run", str(folder), *MODEL)
    assert res.exit_code == 0, res.output
    assert "skipped 1 file that is not a video" in res.stderr
    assert res.stdout.splitlines()[0] == "ptrack run: 1 of 1 video done"
    with Store.open(proj, create=False) as s:
        assert [v.name for v in s.videos()] == ["a"]  # the text file was never registered
    assert_same(reference, proj, only={"a"})


# ----------------------------------------------------------------------------- combine
def test_combine_equals_one_project_that_ran_both(tmp_path: Path, clips, reference):
    parts = []
    for clip in clips:
        proj = tmp_path / clip.stem
        res = invoke(proj, "run", str(clip), *MODEL)
        assert res.exit_code == 0, res.output
        parts.append(proj)
    with Store.open(parts[1], create=False) as s:  # a correction and a selection travel too
        v = s.video()
        s.add_constraint(v.id, "merge", [1, 2])
        s.add_selection(v.id, [2], 2, 35, str(parts[1] / "outputs" / "b" / "primary_person.npz"), "npz")
    (parts[1] / "outputs" / "b" / "primary_person.npz").write_bytes(b"npz")
    target = tmp_path / "all"
    res = invoke(target, "combine", *map(str, parts))
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    n = len(contents(reference)["a"]["det_conf"])
    assert lines[0].startswith(f"added a (id 1) from {parts[0]}: {n} detections, {n} crops, 2 persons")
    assert lines[1].startswith("added b (id 2)") and lines[1].endswith("1 corrections, 1 selections")
    # group re-runs under the merge when asked; the stored results are still the one-process ones
    assert_same(reference, target)
    healthy(target)
    with Store.open(target, create=False) as s:
        b = s.video("b")
        assert [c["ids"] for c in s.constraints(b.id)] == [[1, 2]]
        (sel,) = s.selections(b.id)
        assert sel["path"] == str(target / "outputs" / "b" / "primary_person.npz")
        assert Path(sel["path"]).read_bytes() == b"npz"
        assert (target / "outputs" / "a" / "selection_table.png").is_file()
        crops = s.crops([(b.id, 0, 0)])
        assert crops[0] is not None and crops[0][:2] == b"\xff\xd8"
    again = invoke(target, "combine", str(parts[0]))
    assert again.exit_code == 2
    assert again.stderr.strip() == (f"Error: nothing combined from {parts[0]}: a is already in this "
                                    f"project (as 'a', id 1); --replace replaces it")
    replaced = invoke(target, "combine", str(parts[0]), "--replace")
    assert replaced.exit_code == 0 and replaced.stdout.startswith("replaced a (id 3)"), replaced.output
    with Store.open(target, create=False) as s:
        assert [(v.id, v.name) for v in s.videos()] == [(2, "b"), (3, "a")]
    assert_same(reference, target)
    healthy(target)
    assert invoke(target, "combine", str(target)).exit_code == 2  # itself
    assert invoke(target, "combine", str(tmp_path / "nothing")).exit_code == 2
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom ptrack.cli import app\n"
            f"res = CliRunner().invoke(app, ['-p', {str(tmp_path / 'fresh')!r}, 'combine', "
            f"{str(parts[0])!r}, {str(parts[1])!r}])\n"
            "assert res.exit_code == 0, res.output\n"
            "print(sorted(m for m in ('torch', 'ultralytics', 'openvino', 'ray') if m in sys.modules))\n")
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "[]"  # combine needs no model


# ----------------------------------------------------------------------------- workers
def test_workers_equal_one_process_and_a_failing_video_does_not_stop_them(tmp_path, clips, reference):
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    proj = tmp_path / "p"
    res = invoke(proj, "run", *map(str, clips), str(broken), "--workers", "2", *MODEL)
    assert res.exit_code == 1, res.output
    out = res.stdout.splitlines()
    assert out[0] == "ptrack run: 2 of 3 videos done, 1 failed"
    assert out[1].startswith("a: 2 persons; top P") and out[2] == f"  table: {proj}/outputs/a/selection_table.png"
    assert out[5].startswith("broken: failed: ") and "not a video" in out[5]
    assert out[6] == f"  retry: ptrack -p {proj} run {broken} (with the same options)"
    assert "2 videos on 2 worker processes" in res.stderr
    assert_same(reference, proj)
    healthy(proj)
    assert not any((proj / "shards").iterdir())  # combined and cleared
    again = invoke(proj, "run", *map(str, clips), "--workers", "2", *MODEL)
    assert again.exit_code == 0
    assert again.stdout.splitlines()[1].endswith("(already done)")  # only what is not done
    assert "worker processes" not in again.stderr


def test_a_worker_killed_mid_video_is_retried(tmp_path, clips, reference):
    """The test kills a worker process once its video has a committed batch; the video is
    tried again, resumes from its shard, and the project equals one process's."""
    proj = tmp_path / "p"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "ptrack", "--project", str(proj), "run",
                             *map(str, clips), "--workers", "2", "--batch", "1", *MODEL],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    killed = None
    deadline = time.monotonic() + 240
    while killed is None and proc.poll() is None and time.monotonic() < deadline:
        for shard in sorted((proj / "shards").glob("*")) if (proj / "shards").is_dir() else []:
            try:
                with sqlite3.connect(f"file:{shard / 'ptrack.db'}?mode=ro", uri=True) as c:
                    done = c.execute("SELECT MAX(frames_done) FROM runs WHERE stage = 'detect'").fetchone()[0]
                pid = int((shard / "worker.pid").read_text())
            except (sqlite3.Error, OSError, ValueError):
                continue
            if done and 0 < done < 30:
                os.kill(pid, signal.SIGKILL)
                killed = done
                break
        time.sleep(0.05)
    stdout, stderr = proc.communicate(timeout=300)
    assert killed is not None, stderr
    assert proc.returncode == 0, stderr
    assert "its worker died (exit code -9); trying again (try 2 of 3" in stderr
    assert "resuming " in stderr and " from frame " in stderr
    assert stdout.splitlines()[0] == "ptrack run: 2 of 2 videos done"
    assert_same(reference, proj)
    healthy(proj)


# --------------------------------------------------------------------------------- ray
@pytest.fixture(scope="session")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="pip install -e '.[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_equals_one_process(tmp_path, clips, reference, ray_cluster):
    proj = tmp_path / "p"
    res = invoke(proj, "run", *map(str, clips), "--ray", "--workers", "2", *MODEL)
    assert res.exit_code == 0, res.output
    assert "2 videos on 2 Ray actors" in res.stderr
    assert res.stdout.splitlines()[0] == "ptrack run: 2 of 2 videos done"
    assert_same(reference, proj)
    healthy(proj)


def test_ray_missing_says_how_to_install(tmp_path, clips, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    res = invoke(tmp_path / "p", "detect", str(clips[0]), "--ray", *MODEL)
    assert res.exit_code == 1
    assert res.stderr.strip() == ("Error: --ray needs the Ray package, which is not installed: "
                                  "pip install 'ptrack[ray]' (ray==2.60.*)")


def test_a_worker_keeps_its_model_only_where_one_process_would_load_the_same():
    from types import SimpleNamespace

    from ptrack.batch.job import ModelCache

    loads = []

    def load(settings, *, width, height, **kw):
        loads.append((settings["precision"], width))
        gate = {"agreement": 0.99} if settings.get("int8_ready") else None
        return SimpleNamespace(backend="openvino", gate=gate)

    cache = ModelCache(load)
    f32 = {"precision": "f32"}
    first = cache(f32, width=640, height=480, video="a.mp4")
    assert cache(f32, width=640, height=480, video="b.mp4") is first  # loaded once
    assert cache(f32, width=1920, height=1080) is not first  # another input size
    auto = {"precision": "auto", "int8_min_frames": 2000}
    long = dict(auto, n=1)
    # a long video would build an INT8 model; none came (calibration failed): try again next time
    cache(long, width=640, height=480, frame_count=5000)
    cache(long, width=640, height=480, frame_count=5000)
    # short videos build no INT8 model under auto: the model is loaded once for all of them
    short = cache(auto, width=640, height=480, frame_count=179)
    assert cache(auto, width=640, height=480, frame_count=300) is short
    forced = {"precision": "int8"}  # --precision int8 with no gate yet: loaded again
    cache(forced, width=640, height=480, frame_count=179)
    cache(forced, width=640, height=480, frame_count=179)
    ready = {"precision": "auto", "int8_ready": True}  # its INT8 model and gate exist
    cache(ready, width=640, height=480, frame_count=5000)
    cache(ready, width=640, height=480, frame_count=5000)
    assert loads == [("f32", 640), ("f32", 1920), ("auto", 640), ("auto", 640), ("auto", 640),
                     ("int8", 640), ("int8", 640), ("auto", 640)]
    assert cache.hits == 3


def test_one_process_loads_the_model_once_for_several_videos(tmp_path, clips, monkeypatch,
                                                            person_model):
    from ptrack.detect import detector as det

    loads = []
    plain = det._load_yolo
    monkeypatch.setattr(det, "_load_yolo", lambda path: loads.append(path) or plain(path))
    before = det.load_detector
    res = invoke(tmp_path / "p", "detect", *map(str, clips), *MODEL)
    assert res.exit_code == 0, res.output
    assert len(loads) == 1  # both videos (same size, same settings) took one model
    assert det.load_detector is before  # the plain loader again after the command
    res = invoke(tmp_path / "q", "detect", str(clips[0]), *MODEL)
    assert res.exit_code == 0, res.output
    assert len(loads) == 2  # one video: nothing kept between commands


def test_summary_says_what_finished_failed_and_was_interrupted():
    from ptrack.batch.runner import INTERRUPTED
    from ptrack.cli.run_cmd import summary_text

    rows = [{"video": "a", "persons": 2, "top": "P1 (35 frames, 2.9 s)", "table": "/p/a.png",
             "error": "", "note": "already done"},
            {"video": "b", "persons": "-", "top": None, "table": None, "error": "b.mp4 is empty",
             "retry": "ptrack -p /p run b.mp4 (with the same options)"},
            {"video": "c", "persons": "-", "top": None, "table": None, "error": INTERRUPTED}]
    assert summary_text(rows) == [
        "ptrack run: 1 of 3 videos done, 1 failed, 1 interrupted",
        "a: 2 persons; top P1 (35 frames, 2.9 s) (already done)", "  table: /p/a.png",
        "b: failed: b.mp4 is empty", "  retry: ptrack -p /p run b.mp4 (with the same options)",
        "c: interrupted; run the same command again to resume"]
