"""Reliability: interruption, bad input, concurrency, fuzz. Real processes, real files."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ptrack.cli import app
from ptrack.store import Store
from tests.conftest import REPO, make_video

runner = CliRunner()
MODEL = "pkg:fall_detection/models/best.pt"


def cli(project: Path, *args, **kw):
    return runner.invoke(app, ["--project", str(project), *map(str, args)], **kw)


def ptrack_cmd(project: Path, *args) -> list[str]:
    return [sys.executable, "-m", "ptrack", "--project", str(project), *map(str, args)]


def snapshot(project: Path) -> str:
    """A digest of everything the project holds (database rows and crop files)."""
    h = hashlib.sha256()
    if (project / "ptrack.db").exists():
        conn = sqlite3.connect(project / "ptrack.db")
        for line in conn.iterdump():
            h.update(line.encode())
        conn.close()
    with Store.open(project, create=False) as store:
        for v in store.videos():
            h.update(repr(store.crop_keys(v.id)).encode())
    return h.hexdigest()


def state(project: Path):
    """(frame, det, box, conf) rows, crop keys, integrity of a project's only video."""
    with Store.open(project, create=False) as store:
        v = store.video(None)
        d = store.detections(v.id)
        keys = store.crop_keys(v.id)
        return d, keys, store.integrity_ok(), store.latest_run(v.id, "detect")


def one_line_error(result, *fragments: str, code: int = 1) -> None:
    assert result.exit_code == code, result.output
    text = result.output.strip()
    assert text.startswith("Error: ") and "Traceback" not in text
    assert len(text.splitlines()) == 1, text
    for f in fragments:
        assert f in text, text


def _wait_for_frames(project: Path, proc: subprocess.Popen, at_least: int = 1, timeout: float = 300) -> int:
    """Poll the store until the running detect has committed ``at_least`` frames."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        try:
            conn = sqlite3.connect(f"file:{project / 'ptrack.db'}?mode=ro", uri=True, timeout=1)
            row = conn.execute("SELECT frames_done FROM runs WHERE stage='detect' ORDER BY id DESC").fetchone()
            conn.close()
            if row and row[0] >= at_least:
                return row[0]
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    return -1


@pytest.fixture(scope="module")
def reference(tmp_path_factory, person_model):
    """One uninterrupted torch run of 20 frames of the bundled clip, batch 2."""
    proj = tmp_path_factory.mktemp("reference")
    args = ["detect", REPO / "tests/data/walking-pair.mp4", "--model", MODEL, "--classes", "all",
            "--backend", "torch", "--batch", "2", "--max-frames", "20"]
    t0 = time.monotonic()
    subprocess.run(ptrack_cmd(proj, *args), check=True, capture_output=True)
    return proj, args, time.monotonic() - t0


@pytest.mark.parametrize("kill_at", [0, 2, 6, 10, 16])
def test_kill_9_while_detecting_resumes_to_identical_detections(tmp_path, reference, kill_at):
    """kill -9 once the run is recorded (0) or once ``kill_at`` of 20 frames are committed; the
    next open closes the dead process's run as interrupted."""
    ref_proj, args, _ = reference
    ref_det, _, _, _ = state(ref_proj)
    proj = tmp_path / "p"
    proc = subprocess.Popen(ptrack_cmd(proj, *args), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    assert _wait_for_frames(proj, proc, kill_at) >= kill_at
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    d, keys, ok, run = state(proj)
    assert ok and run.status == "interrupted" and run.frames_done >= kill_at
    assert keys[:len(d)] == list(zip(d.frame.tolist(), d.det.tolist()))  # every detection has its crop
    done = subprocess.run(ptrack_cmd(proj, *args), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    d, keys, ok, run = state(proj)
    assert ok and run.status == "done"
    assert d.frame.tolist() == ref_det.frame.tolist()
    np.testing.assert_allclose(d.xyxy, ref_det.xyxy, atol=1e-3)
    np.testing.assert_allclose(d.conf, ref_det.conf, atol=1e-4)
    assert keys == list(zip(d.frame.tolist(), d.det.tolist()))  # crop <=> detection


def _slow_args(args: list) -> list:
    """The reference detect over the whole clip, one frame a batch: a signal sent once 4
    frames are committed arrives with 30 frames still to do, however fast the machine."""
    out = [a for a in args if str(a) not in ("--max-frames", "20")]
    return [("1" if prev == "--batch" else a) for prev, a in zip([None, *out], out)]


def test_sigterm_commits_says_how_to_resume_and_exits_143(tmp_path, reference):
    args = _slow_args(reference[1])
    proj = tmp_path / "p"
    proc = subprocess.Popen(ptrack_cmd(proj, *args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert _wait_for_frames(proj, proc, 4) >= 4
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "run the same command again to resume" in out + err and "Traceback" not in out + err
    d, keys, ok, run = state(proj)
    assert ok and run.status == "interrupted" and run.frames_done >= 4
    assert keys == list(zip(d.frame.tolist(), d.det.tolist()))


def _has_video(project: Path) -> bool:
    with Store.open(project, create=False) as store:
        return bool(store.videos())


def _default_sigint() -> None:
    """In the child: SIGINT handled as in a terminal. An ignored SIGINT is inherited across
    exec, and a test run started as a background job of a non-interactive shell (``cmd &``)
    ignores it, so the child ignored the test's Ctrl-C and finished its run."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_quickly_commits_and_says_how_to_resume(tmp_path, reference):
    args = _slow_args(reference[1])
    proj = tmp_path / "p"
    proc = subprocess.Popen(ptrack_cmd(proj, *args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    assert _wait_for_frames(proj, proc, 4) >= 4
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "run the same command again to resume" in out + err
    assert "Traceback" not in out + err
    d, keys, ok, run = state(proj)
    assert ok and run.status == "interrupted" and run.frames_done >= 4
    assert d.frame.max() < run.frames_done and keys == list(zip(d.frame.tolist(), d.det.tolist()))


def test_second_detect_of_same_video_is_refused_while_list_reads(tmp_path, reference):
    _, args, _ = reference
    proj = tmp_path / "p"
    first = subprocess.Popen(ptrack_cmd(proj, *args), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert _wait_for_frames(proj, first, 2) >= 2
    second = subprocess.run(ptrack_cmd(proj, *args), capture_output=True, text=True)
    reader = subprocess.run(ptrack_cmd(proj, "list", "videos"), capture_output=True, text=True)
    first.communicate(timeout=120)
    assert second.returncode == 1
    assert "another `ptrack detect` is already working on this video" in second.stderr
    assert first.returncode == 0
    assert reader.returncode == 0, reader.stderr
    assert "walking-pair" in reader.stdout
    d, keys, ok, run = state(proj)
    assert ok and run.status == "done" and len(d) and keys == list(zip(d.frame.tolist(), d.det.tolist()))


def test_interrupted_track_and_group_keep_previous_results(tmp_path, monkeypatch):
    from tests.test_cli_persons import two_walkers

    proj = tmp_path / "p"
    assert cli(proj, "import", two_walkers(tmp_path / "d.txt"), "--video", "w", "--fps", "25",
               "--width", "1280", "--height", "720").exit_code == 0
    assert cli(proj, "rank").exit_code == 0
    before = snapshot(proj)

    def boom(*a, **k):
        raise KeyboardInterrupt

    import ptrack.persons.group
    import ptrack.persons.track

    monkeypatch.setattr(ptrack.persons.group, "group_tracklets", boom)
    result = cli(proj, "group")
    assert result.exit_code == 130
    monkeypatch.setattr(ptrack.persons.track, "track_detections", boom)
    assert cli(proj, "track").exit_code == 130
    with Store.open(proj, create=False) as store:
        v = store.video(None)
        assert store.stage_state(v.id, "group") == "interrupted"
        assert len(store.persons(v.id)) == 2  # previous persons intact
        assert len(store.tracklet_boxes(v.id)[0]) == 170
        rows = store.conn.execute("SELECT COUNT(*) FROM person_boxes").fetchone()[0]
        assert rows == 200
    assert before != snapshot(proj)  # only the run records differ
    monkeypatch.undo()
    again = cli(proj, "rank")
    assert again.exit_code == 0 and "running track first" in again.output


# ------------------------------------------------------------------------------ bad input


def test_truncated_video_detects_what_decodes_and_warns(tmp_path, person_model):
    full = make_video(tmp_path / "full.mp4", seconds=4)
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 55 // 100])
    result = cli(tmp_path / "p", "detect", cut, "--model", MODEL, "--classes", "all", "--backend", "torch",
                 "--batch", "16")
    assert result.exit_code == 0, result.output
    assert "warning: decoding stopped at frame" in result.output
    with Store.open(tmp_path / "p", create=False) as store:
        v = store.video(None)
        assert 0 < v.frame_count < 100  # the frames that decoded, not the 100 announced


def test_video_with_nobody_says_so_and_exits_0(tmp_path, person_model):
    video = make_video(tmp_path / "empty-room.mp4", source="color=c=gray:size=320x240:rate=10",
                       seconds=2)
    proj = tmp_path / "p"
    det = cli(proj, "detect", video, "--model", MODEL, "--classes", "all", "--conf", "0.5")
    assert det.exit_code == 0, det.output
    assert "detections  0" in det.output
    for stage in ("track", "group", "rank"):
        result = cli(proj, stage)
        assert result.exit_code == 0, result.output
    assert "nobody was found" in result.output


def test_corrupt_model_file(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(os.urandom(4096))
    before_dir = tmp_path / "p"
    one_line_error(cli(before_dir, "detect", REPO / "tests/data/walking-pair.mp4", "--model", bad),
                   "cannot load model")


def test_unknown_video_name(tmp_path):
    from tests.test_cli_persons import two_walkers

    proj = tmp_path / "p"
    assert cli(proj, "import", two_walkers(tmp_path / "d.txt"), "--video", "w", "--fps", "25",
               "--width", "1280", "--height", "720").exit_code == 0
    before = snapshot(proj)
    one_line_error(cli(proj, "track", "--video", "nope"), "unknown video 'nope'", code=2)
    assert snapshot(proj) == before


def test_project_written_by_newer_schema(tmp_path):
    proj = tmp_path / "p"
    Store.open(proj).close()
    conn = sqlite3.connect(proj / "ptrack.db")
    conn.execute("UPDATE meta SET value='7' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    one_line_error(cli(proj, "track"), "written by a newer ptrack (schema 7")


@contextlib.contextmanager
def tmpfs(path: Path, options: str):
    """A small filesystem of the test's own at ``path`` (skips where mounting is not allowed)."""
    path.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs ({options}) here: needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_project_directory_not_writable(tmp_path):
    # root ignores permission bits, so the project lives on a read-only filesystem instead
    with tmpfs(tmp_path / "locked", "ro,size=64k") as proj:
        one_line_error(cli(proj, "detect", REPO / "tests/data/walking-pair.mp4", "--model", MODEL),
                       f"project directory {proj} is not writable")
        assert list(proj.iterdir()) == []


def test_changed_file_content_is_a_new_video(tmp_path, person_model):
    clip = tmp_path / "match.mp4"
    shutil.copy(REPO / "tests/data/walking-pair.mp4", clip)
    proj = tmp_path / "p"
    args = ("--model", MODEL, "--classes", "all", "--max-frames", "4")
    assert cli(proj, "detect", clip, *args).exit_code == 0
    with Store.open(proj, create=False) as store:
        first = store.detections(store.video("match").id)
    make_video(clip, seconds=1)  # same name, other content
    result = cli(proj, "detect", clip, *args)
    assert result.exit_code == 0, result.output
    assert "content changed" in result.output
    with Store.open(proj, create=False) as store:
        names = [v.name for v in store.videos()]
        assert names == ["match", "match~2"]
        kept = store.detections(store.video("match").id)
        assert kept.frame.tolist() == first.frame.tolist()  # old boxes untouched, not mixed


def test_full_disk_keeps_the_store_consistent(tmp_path, person_model):
    with tmpfs(tmp_path / "small", "size=400k") as mnt:
        proj = mnt / "p"
        result = cli(proj, "detect", REPO / "tests/data/walking-pair.mp4", "--model", MODEL,
                     "--classes", "all", "--backend", "torch", "--batch", "2")
        one_line_error(result, "no space left on device", "run the same command again to resume")
        d, keys, ok, run = state(proj)
        assert ok
        assert run.status in ("failed", "running")
        assert set(zip(d.frame.tolist(), d.det.tolist())) <= set(keys)  # no detection lacks its crop
        assert all(f < run.frames_done for f, _ in zip(d.frame.tolist(), d.det.tolist()))


# ------------------------------------------------------------------------------------ fuzz

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@FUZZ
@given(data=st.binary(min_size=1, max_size=4096))
def test_fuzz_random_bytes_as_video(tmp_path, data):
    import tempfile

    example = Path(tempfile.mkdtemp(dir=tmp_path))  # each example its own project
    video = example / "random.mp4"
    video.write_bytes(data)
    result = cli(example / "p", "detect", video, "--model", MODEL, "--classes", "all",
                 "--backend", "torch")
    one_line_error(result, "random.mp4 is ", "not a video", code=2)  # the video check
    assert not (example / "p").exists()  # refused before the project is made: nothing left


@FUZZ
@given(lines=st.lists(st.text(alphabet="0123456789,.-e \tx", max_size=60), max_size=8))
def test_fuzz_random_lines_as_mot_file(tmp_path, lines):
    det = tmp_path / "det.txt"
    det.write_text("\n".join(lines))
    result = cli(tmp_path / "p", "import", det, "--video", "x", "--fps", "25", "--width", "640",
                 "--height", "480", "--force")
    if result.exit_code != 0:
        one_line_error(result)


yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                         st.text(max_size=10))
yaml_docs = st.recursive(yaml_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.sampled_from(["detect", "crops", "track", "group", "rank", "conf", "model",
                                     "quality", "x", "imgsz"]), inner, max_size=3)), max_leaves=8)


@FUZZ
@given(doc=yaml_docs)
def test_fuzz_random_yaml_as_config(tmp_path, doc):
    import yaml

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    result = runner.invoke(app, ["--project", str(tmp_path / "p"), "--config", str(cfg), "detect",
                                 str(tmp_path / "missing.mp4")])
    # a config error (exit 1) or, for a valid config, the missing video (exit 2)
    one_line_error(result, code=2 if "video not found" in result.output else 1)


@contextlib.contextmanager
def read_only_copy(tmp_path: Path, project: Path):
    """``project`` seen through a read-only bind mount (root cannot write it either)."""
    view = tmp_path / "ro"
    view.mkdir()
    if subprocess.run(["mount", "--bind", str(project), str(view)], capture_output=True).returncode:
        pytest.skip("cannot bind-mount here (needs root)")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], check=True)
        yield view
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)


def test_read_only_project_is_readable_and_refuses_writes(tmp_path):
    from tests.test_cli_persons import two_walkers

    proj = tmp_path / "p"
    assert cli(proj, "import", two_walkers(tmp_path / "d.txt"), "--video", "w", "--fps", "25",
               "--width", "1280", "--height", "720").exit_code == 0
    assert cli(proj, "rank").exit_code == 0
    before = snapshot(proj)
    out = tmp_path / "out"
    out.mkdir()
    with read_only_copy(tmp_path, proj) as ro:
        listed = cli(ro, "list", "videos")
        assert listed.exit_code == 0 and "w" in listed.output, listed.output
        persons = cli(ro, "list", "persons")
        assert persons.exit_code == 0, persons.output
        exported = cli(ro, "export", "--out", out / "persons.csv", "--format", "csv")
        assert exported.exit_code == 0, exported.output
        assert (out / "persons.csv").stat().st_size > 0
        assert cli(ro, "integrity").exit_code == 0
        selected = cli(ro, "select", "1", "--out", out / "one.npz")
        assert selected.exit_code == 0 and (out / "one.npz").exists(), selected.output
        for args in (("merge", "1", "2"), ("track",), ("rm", "w")):
            one_line_error(cli(ro, *args), f"project {ro} is read-only")
    assert snapshot(proj) == before


def test_bad_crops_are_skipped_and_counted_never_fatal(tmp_path):
    from tests.test_views import build_project

    proj = tmp_path / "p"
    store = build_project(proj)
    try:
        keys = [(1, f, d) for f, d in store.crop_keys(1)]
        store.put_crops([(b"%08d/%08d/%04d" % k, b"not a jpeg") for k in keys[::2]])
    finally:
        store.close()
    result = cli(proj, "group")
    assert result.exit_code == 0, result.output
    assert "bad crops skipped" in result.output, result.output
