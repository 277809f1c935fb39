"""A project someone sent you: opening it never runs code, never touches files outside it,
never hangs or exhausts memory, and never shows stale data silently (issue 25).

Each test builds a real project (real SQLite, real LMDB, real JPEG crops of the bundled clip),
plants what a hostile or damaged project could hold, and runs the real commands.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ptrack.cli import app
from ptrack.store import Store, crop_key
from tests.conftest import REPO
from tests.test_views import build_project

runner = CliRunner()


def cli(project: Path, *args, **kw):
    return runner.invoke(app, ["--project", str(project), *map(str, args)], **kw)


def ptrack_cmd(project: Path, *args) -> list[str]:
    return [sys.executable, "-m", "ptrack", "--project", str(project), *map(str, args)]


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def one_line_error(result, *fragments: str, code: int = 1) -> str:
    assert result.exit_code == code, (result.exit_code, result.output)
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for f in fragments:
        assert f in line, line
    return line


@pytest.fixture()
def proj(tmp_path):
    build_project(tmp_path / "proj").close()
    return tmp_path / "proj"


def rename_video(proj: Path, name: str) -> None:
    conn = sqlite3.connect(proj / "ptrack.db")
    with conn:
        conn.execute("UPDATE videos SET name = ?", (name,))
    conn.close()


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")} if folder.exists() else set()


# ------------------------------------------------------------------ 1. planted model
def test_planted_model_in_project_is_never_loaded(tmp_path):
    """A project holding models/yolov8s.pt (a pickle that would run code) is not where
    `detect`'s default model is found: the command fails offline naming the places it looked,
    and the planted file's payload never ran."""
    from ptrack.detect.detector import _online

    if _online():
        pytest.skip("online: Ultralytics' yolov8s.pt would be fetched instead")
    proj = tmp_path / "p"
    (proj / "models").mkdir(parents=True)
    marker = tmp_path / "payload-ran"
    import pickle

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (proj / "models" / "yolov8s.pt").write_bytes(pickle.dumps(Payload()))
    proc = subprocess.run(ptrack_cmd(proj, "detect", REPO / "tests/data/walking-pair.mp4"),
                          env=env(), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "not found" in proc.stderr and str(proj / "models") not in proc.stderr
    assert not marker.exists()


# ------------------------------------------------------------------ 2. planted symlinks
def test_planted_lock_symlink_is_not_followed(proj, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (proj / "locks").mkdir(exist_ok=True)
    (proj / "locks" / "detect-1.lock").symlink_to(victim)
    one_line_error(cli(proj, "rm", "walking-pair"), "symbolic link")
    assert victim.read_text() == "precious"
    with Store.open(proj, create=False) as store:
        assert store.videos()  # nothing removed


def test_planted_pose_lock_symlink_is_not_followed(proj, tmp_path):
    from ptrack.errors import PtrackError
    from ptrack.store.locks import video_lock

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (proj / "locks").mkdir(exist_ok=True)
    (proj / "locks" / "pose-1.lock").symlink_to(victim)
    with pytest.raises(PtrackError, match="symbolic link"):
        with video_lock(proj, 1, "pose"):
            pass
    assert victim.read_text() == "precious"


def test_planted_lmdb_symlinks_are_refused(proj, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (proj / "crops.lmdb" / "lock.mdb").unlink(missing_ok=True)
    (proj / "crops.lmdb" / "lock.mdb").symlink_to(victim)
    one_line_error(cli(proj, "show", "1", "--graphics", "none"), "symbolic link")
    assert victim.read_text() == "precious"
    (proj / "crops.lmdb" / "lock.mdb").unlink()
    real = tmp_path / "elsewhere.lmdb"
    shutil.move(proj / "crops.lmdb", real)
    (proj / "crops.lmdb").symlink_to(real)
    one_line_error(cli(proj, "show", "1", "--graphics", "none"), "symbolic link")
    assert not (real / "lock.mdb").exists()


def test_planted_outputs_symlink_is_refused(proj, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (proj / "outputs").symlink_to(outside)
    for args in (("table",), ("select", "1"), ("crops", "1"), ("export",)):
        one_line_error(cli(proj, *args), "symbolic link")
    assert files_under(outside) == set()
    (proj / "outputs").unlink()
    (proj / "outputs" / "walking-pair").mkdir(parents=True)
    (proj / "outputs" / "walking-pair" / "crops_p1").symlink_to(outside)
    one_line_error(cli(proj, "crops", "1"), "symbolic link")
    assert files_under(outside) == set()
    (proj / "outputs" / "walking-pair" / "crops_p1").unlink()
    link = tmp_path / "via-link"  # the project folder itself may be a link the user made
    link.symlink_to(proj)
    assert cli(link, "crops", "1").exit_code == 0
    assert len(list((proj / "outputs" / "walking-pair" / "crops_p1").glob("*.jpg"))) > 0


# ------------------------------------------------------------------ 3. names become paths
@pytest.mark.parametrize("name", ["../../outside/escaped", "/ABS/escaped", "..", ".", "a/../../b"])
def test_video_name_never_becomes_a_path(proj, tmp_path, name):
    name = name.replace("/ABS", str(tmp_path))
    rename_video(proj, name)
    before_outside = files_under(tmp_path) - files_under(proj)
    for args in (("table",), ("select", "1"), ("export",), ("crops", "1", "--k", "2"),
                 ("render", "1")):
        result = cli(proj, *args, "--video", "1")
        assert result.exit_code == 0, (args, result.output)
    after_outside = files_under(tmp_path) - files_under(proj)
    assert after_outside == before_outside
    outputs = (proj / "outputs").resolve()
    written = [p for p in files_under(proj) if p.is_file() and "outputs" in p.parts]
    assert len(written) >= 5
    for p in written:
        assert p.resolve().is_relative_to(outputs) and p.resolve().parent != outputs
    assert not (proj / "primary_person.npz").exists() and not (proj / "selection_table.png").exists()


# ------------------------------------------------------------------ 4. control characters
EVIL = "pair\x1b]0;owned\x07\x1b[2J\x9b31m"


def test_control_characters_in_names_never_reach_the_terminal(proj, tmp_path):
    rename_video(proj, EVIL)
    outs = []
    for args in (("crops", "1", "--out", tmp_path / "c"), ("render", "1", "--out", tmp_path / "r.mp4"),
                 ("config", "show", "--run", "1"), ("merge", "1", "3"), ("unmerge", "1"),
                 ("split", "2", "--at", "20"), ("constraints", "--delete", "1"),
                 ("list", "persons"), ("rm", "1")):
        result = cli(proj, *args)
        assert result.exit_code in (0, 1, 2), (args, result.output)
        outs.append((args, result.output))
    for args, out in outs:
        assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out, (args, out)
    assert any("\\x1b]0;owned" in out for _, out in outs)


def test_one_helper_prints_names():
    """Every command prints through ptrack.cli.output (say/safe), never typer.echo of an
    f-string holding a name."""
    import re

    offenders = []
    for path in (REPO / "ptrack" / "cli").glob("*.py"):
        if path.name in ("output.py", "app.py"):  # app.py prints only ptrack's version
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"typer\.echo\(\s*f[\"']", line):
                offenders.append(f"{path.name}:{n}")
    assert offenders == []


# ------------------------------------------------------------------ 5. hostile databases
def test_triggers_and_views_are_refused_and_schema_untrusted(proj):
    conn = sqlite3.connect(proj / "ptrack.db")
    conn.executescript("""
        CREATE TRIGGER hang AFTER DELETE ON persons BEGIN
            SELECT COUNT(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)
                                  SELECT x FROM c);
        END;""")
    conn.close()
    t0 = time.monotonic()
    proc = subprocess.run(ptrack_cmd(proj, "group"), env=env(), capture_output=True, text=True,
                          timeout=120)
    assert time.monotonic() - t0 < 120
    assert proc.returncode == 1 and "trigger 'hang'" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    conn = sqlite3.connect(proj / "ptrack.db")
    conn.executescript("DROP TRIGGER hang; CREATE VIEW v AS SELECT 1;")
    conn.close()
    one_line_error(cli(proj, "list", "persons"), "view 'v'")
    conn = sqlite3.connect(proj / "ptrack.db")
    conn.executescript("DROP VIEW v;")
    conn.close()
    with Store.open(proj, create=False) as store:
        assert store.conn.execute("PRAGMA trusted_schema").fetchone()[0] == 0


def test_video_path_to_a_fifo_does_not_hang_render(proj, tmp_path):
    fifo = tmp_path / "fifo.mp4"
    os.mkfifo(fifo)
    conn = sqlite3.connect(proj / "ptrack.db")
    with conn:
        conn.execute("UPDATE videos SET path = ?", (str(fifo),))
    conn.close()
    proc = subprocess.run(ptrack_cmd(proj, "render", "1", "--out", tmp_path / "r.mp4"), env=env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "not a regular file" in proc.stderr, proc.stderr


@pytest.mark.parametrize("kind", ["dev", "fifo"])
def test_config_must_be_a_regular_file(tmp_path, kind):
    path = Path("/dev/zero")
    if kind == "fifo":
        path = tmp_path / "cfg.yaml"
        os.mkfifo(path)
    proc = subprocess.run(ptrack_cmd(tmp_path / "p", "--config", path, "config", "show"), env=env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode in (1, 2) and "not a regular file" in proc.stderr, proc.stderr


def bomb_jpeg(real: bytes, height: int = 16000, width: int = 16000) -> bytes:
    """``real`` with its frame header claiming ``height`` x ``width`` pixels."""
    data = bytearray(real)
    i = 2
    while i < len(data):
        marker, size = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            data[i + 5:i + 9] = struct.pack(">HH", height, width)
            return bytes(data)
        i += 2 + size
    raise AssertionError("no SOF marker")


def test_crops_claiming_huge_dimensions_are_not_decoded(proj):
    from ptrack.detect.crops import decode, jpeg_size

    with Store.open(proj, create=False) as store:
        v = store.video(None)
        keys = [(v.id, f, d) for f, d in store.crop_keys(v.id)]
        real = store.crops(keys[:1])[0]
        assert jpeg_size(real) is not None and decode(real) is not None
        bomb = bomb_jpeg(real)
        assert jpeg_size(bomb) == (16000, 16000)
        assert decode(bomb) is None
        store.put_crops([(crop_key(*k), bomb) for k in keys])
    for args in (("show", "1", "2", "--graphics", "blocks"), ("table", "--format", "png"),
                 ("table", "--format", "html")):
        proc = subprocess.run(["bash", "-c", "ulimit -v 3000000; exec \"$@\"", "x",
                               *ptrack_cmd(proj, *args)], env=env(), capture_output=True,
                              text=True, timeout=300)
        assert "Traceback" not in proc.stderr and "DecompressionBomb" not in proc.stderr, proc.stderr
        assert proc.returncode in (0, 1), (args, proc.returncode, proc.stderr)


# ------------------------------------------------------------------ 6. detect --force ordering
def _force_commit(store: Store, v, marker_frames: int = 2):
    run = store.start_run(v.id, "detect", {"x": 1})
    rows = [(f, 0, 1.0, 1.0, 5.0, 9.0, 0.7, 0) for f in range(marker_frames)]
    crops = [(crop_key(v.id, f, 0), b"NEW-%d" % f) for f in range(marker_frames)]
    store.commit_detections(v.id, run.id, marker_frames, rows, crops, replace_from=0)


def _whole(store: Store, v) -> tuple[str, bool]:
    """('old' | 'new' | 'mixed', every detection has its crop and every crop its detection)."""
    det = store.detections(v.id)
    keys = set(store.crop_keys(v.id))
    pairs = set(zip(det.frame.tolist(), det.det.tolist()))
    data = store.crops([(v.id, f, d) for f, d in sorted(pairs)])
    new = [bool(x and x.startswith(b"NEW")) for x in data]
    kind = "new" if all(new) else "old" if not any(new) else "mixed"
    return kind, keys == pairs and all(x is not None for x in data)


@pytest.mark.parametrize("crash_at", ["sqlite", "after_sqlite", "after_swap"])
def test_detect_force_first_commit_crash_leaves_old_or_new_whole(proj, monkeypatch, crash_at):
    from ptrack.store import meta

    class Crash(BaseException):
        pass

    with Store.open(proj, create=False) as store:
        v = store.video(None)
        before = _whole(store, v)
        assert before == ("old", True)
        n_before = len(store.detections(v.id))
        if crash_at == "sqlite":
            monkeypatch.setattr(meta.MetaStore, "commit_detections",
                                lambda *a, **k: (_ for _ in ()).throw(Crash()))
        elif crash_at == "after_sqlite":
            monkeypatch.setattr(Store, "_finish_replace", lambda *a, **k: (_ for _ in ()).throw(Crash()))
        else:  # the crops are swapped in, the note saying so is not yet gone
            from ptrack.store.crops_db import CropStore

            real = CropStore.promote_staged

            def swap_then_crash(self, *a, **k):
                real(self, *a, **k)
                raise Crash()

            monkeypatch.setattr(CropStore, "promote_staged", swap_then_crash)
        with pytest.raises(Crash):
            _force_commit(store, v)
    monkeypatch.undo()
    with Store.open(proj, create=False) as store:  # the next command (a reader, a resume)
        kind, whole = _whole(store, v)
        assert whole, kind
        assert kind == ("old" if crash_at == "sqlite" else "new")
        assert len(store.detections(v.id)) == (n_before if kind == "old" else 2)
        if kind == "old":
            assert store.crops([(v.id, 0, 0)])[0] == before_crop(proj)
        assert store.integrity().ok


def before_crop(proj: Path) -> bytes:
    build_project(proj.parent / "ref").close()
    with Store.open(proj.parent / "ref", create=False) as ref:
        return ref.crops([(1, 0, 0)])[0]


# ------------------------------------------------------------------ 7. truncated data.mdb
def test_truncated_crop_store_is_reported_not_sigbus(proj):
    data = proj / "crops.lmdb" / "data.mdb"
    with open(data, "r+b") as f:
        f.truncate(data.stat().st_size // 3)
    for args, fragment in ((("integrity",), "DAMAGED"), (("show", "1", "--graphics", "none"), "Error:"),
                           (("table",), "Error:")):
        proc = subprocess.run(ptrack_cmd(proj, *args), env=env(), capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 1, (args, proc.returncode, proc.stderr)
        text = proc.stdout + proc.stderr
        assert fragment in text and "truncated" in text and "detect --force" in text, text


# ------------------------------------------------------------------ 8. read-only + WAL
def test_read_only_project_reads_its_committed_wal(tmp_path):
    from tests.test_reliability import read_only_copy

    proj = tmp_path / "p"
    build_project(proj).close()
    writer = sqlite3.connect(proj / "ptrack.db")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    with writer:
        writer.execute("UPDATE persons SET n_frames = 777 WHERE id = 2")
    assert (proj / "ptrack.db-wal").stat().st_size > 0
    copy = tmp_path / "copy"
    shutil.copytree(proj, copy)  # a snapshot with the WAL holding committed rows
    writer.close()
    with read_only_copy(tmp_path, copy) as ro:
        result = cli(ro, "list", "persons", "--json")
        assert result.exit_code == 0, result.output
        rows = json.loads(result.output[result.output.index("["):])
        assert {r["person"]: r["frames"] for r in rows}[2] == 777
        assert sorted(p.name for p in ro.iterdir()) == sorted(p.name for p in copy.iterdir())


# ------------------------------------------------------------------ 9. track's worker
def _children(pid: int) -> set[int]:
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_backward_tracking_worker_dies_with_its_parent(tmp_path, sig):
    script = tmp_path / "t.py"
    script.write_text(
        "import numpy as np\n"
        "import ptrack.persons.track as t\n"
        "from ptrack.settings import defaults\n"
        "if __name__ == '__main__':\n"
        "    t.PARALLEL_MIN_ROWS = 0\n"
        "    n = 400_000\n"
        "    frame = np.repeat(np.arange(n // 4), 4)\n"
        "    x = (np.tile(np.arange(4) * 200.0, n // 4) + (frame % 50))\n"
        "    xyxy = np.stack([x, x * 0 + 10, x + 50, x * 0 + 150], 1)\n"
        "    print('go', flush=True)\n"
        "    t.track_detections(frame, xyxy, np.full(n, 0.9), fps=25.0, settings=defaults().track)\n")
    proc = subprocess.Popen([sys.executable, str(script)], env={**env(), "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "go"
        deadline = time.monotonic() + 60
        kids: set[int] = set()
        while time.monotonic() < deadline and not kids:
            kids = {k for k in _children(proc.pid) if _alive(k)}
            time.sleep(0.2)
        assert kids, "no worker started"
        time.sleep(1.0)
        kids |= {g for k in kids for g in _children(k)}
        proc.send_signal(sig)
        proc.wait(30)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(k) for k in kids):
            time.sleep(0.2)
        left = [k for k in kids if _alive(k)]
        for k in left:
            os.kill(k, signal.SIGKILL)
        assert left == []
    finally:
        if proc.poll() is None:
            proc.kill()


# ------------------------------------------------------------------ 10. integrity never crashes
def test_integrity_reports_foreign_keys_and_bad_settings(proj):
    with Store.open(proj, create=False) as store:
        store.put_crops([(b"not-a-crop-key", b"x"), (b"a/b/c", b"y")])
        store.conn.execute("UPDATE runs SET settings = '{not json' WHERE stage = 'track'")
        store.conn.execute("UPDATE runs SET stats = ? WHERE stage = 'group'", ("[" * 100000,))
        store.conn.commit()
    result = cli(proj, "integrity")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "unexpected" not in result.output, result.output
    assert "2 keys that are not crop keys" in result.output
    assert "run 2" in result.output and "run 3" in result.output and "unreadable" in result.output


# ------------------------------------------------------------------ 11. runs, flags, bounds
def test_run_of_a_dead_process_is_closed(proj):
    with Store.open(proj, create=False) as store:
        v = store.video(None)
        run = store.start_run(v.id, "group", {})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    conn = sqlite3.connect(proj / "ptrack.db")
    with conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = ?",
                     (json.dumps({"pid": dead.pid, "host": socket.gethostname(), "start": 1}),
                      f"run_process:{run.id}"))
    conn.close()
    result = cli(proj, "integrity")
    assert result.exit_code == 0 and "left running" not in result.output, result.output
    with Store.open(proj, create=False) as store:
        assert store.run(run.id).status == "interrupted"
        mine = store.start_run(v.id, "group", {})  # this process: alive, stays running
    with Store.open(proj, create=False) as store:
        assert store.run(mine.id).status == "running"


@pytest.mark.parametrize("flag, value", [("--classes", "dog"), ("--precision", "f64")])
def test_bad_classes_or_precision_exit_2_and_create_nothing(tmp_path, person_model, flag, value):
    proj = tmp_path / "p"
    result = cli(proj, "detect", REPO / "tests/data/walking-pair.mp4", "--model",
                 "pkg:fall_detection/models/best.pt", flag, value)
    one_line_error(result, flag, code=2)
    assert not (proj / "ptrack.db").exists()


def test_durations_and_counts_have_real_upper_bounds(tmp_path):
    import dataclasses

    from ptrack.settings import SECTIONS

    for name, kind in SECTIONS.items():
        for f in dataclasses.fields(kind):
            if f.type in ("int", "float", int, float):
                assert f.metadata["range"][1] < 1e12, f"{name}.{f.name} has no upper bound"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("track:\n  track_buffer_s: 1.0e+300\n")
    result = runner.invoke(app, ["--config", str(cfg), "config", "show"])
    one_line_error(result, "track.track_buffer_s")


def test_during_a_first_detect_views_say_detect_is_running(tmp_path):
    proj = tmp_path / "p"
    with Store.open(proj) as store:
        v = store.add_video(name="clip", path="/v/clip.mp4", size=1, fingerprint="f", fps=25.0,
                            width=64, height=64, frame_count=100)
        run = store.start_run(v.id, "detect", {})
        store.commit_detections(v.id, run.id, 10, [(f, 0, 0.0, 0.0, 10.0, 20.0, 0.5, 0)
                                                  for f in range(10)],
                                [(crop_key(v.id, f, 0), b"j") for f in range(10)])
    lines = []
    for args in (("list", "persons"), ("track",)):
        line = one_line_error(cli(proj, *args))
        assert "`ptrack detect` of clip is running (10 of 100 frames done)" in line, line
        lines.append(line)
