"""Output files and text that never lie: ``--out`` formats, ``--out -``, kept selections,
``list selections``, closed pipes, narrow terminals and names shown as data (issue 12)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ptrack.cli import app
from ptrack.store import Store
from tests.conftest import REPO
from tests.test_views import build_project

from tests.test_cli_views import proj, template  # noqa: F401  (fixtures)

runner = CliRunner()


# the test project and its per-test copy, shared with test_cli_views
def run(proj, *args, code=0, env=None):
    result = runner.invoke(app, ["--project", str(proj), *map(str, args)], env=env)
    assert result.exit_code == code, (result.exit_code, result.output)
    return result


# ------------------------------------------------------------------------ --out formats
def test_out_extension_picks_the_format(proj, tmp_path):
    run(proj, "select", 3, "--out", tmp_path / "p.json")
    assert json.loads((tmp_path / "p.json").read_text())["frame_numbers"] == [5, 6, 7, 8, 9]
    run(proj, "select", 3, "--out", tmp_path / "p.csv")
    assert (tmp_path / "p.csv").read_text().splitlines()[0].startswith("person_id,frame,time,")
    run(proj, "export", "--out", tmp_path / "e.csv")
    rows = list(csv.reader((tmp_path / "e.csv").open()))
    assert rows[0][:3] == ["person_id", "rank", "frame"] and len(rows) == 76
    run(proj, "export", 2, "--out", tmp_path / "e.json")
    assert [p["person_id"] for p in json.loads((tmp_path / "e.json").read_text())["persons"]] == [2]
    run(proj, "table", "--top", 1, "--k", 2, "--out", tmp_path / "t.html")
    assert (tmp_path / "t.html").read_text().count("data:image/jpeg;base64,") == 2
    with Store.open(proj) as store:
        assert [s["format"] for s in store.selections(1)] == ["json", "csv"]


def test_extension_contradicting_format_is_an_error(proj, tmp_path):
    res = run(proj, "select", 1, "--out", tmp_path / "p.json", "--format", "csv", code=2)
    assert res.output == (f"Error: --out {tmp_path / 'p.json'} ends in .json, which is json, "
                          f"but --format is csv; change one of them\n")
    res = run(proj, "export", "--out", tmp_path / "e.csv", "-f", "json", code=2)
    assert "ends in .csv, which is csv, but --format is json" in res.output
    assert "ends in .png, which is png" in run(proj, "table", "--out", tmp_path / "t.png",
                                               "--html", code=2).output
    assert list(tmp_path.iterdir()) == [proj]  # nothing written
    with Store.open(proj) as store:
        assert store.selections(1) == []


def test_out_dash_writes_to_standard_output(proj):
    res = run(proj, "select", 3, "--format", "json", "--out", "-")
    assert json.loads(res.stdout)["frame_numbers"] == [5, 6, 7, 8, 9]
    assert "selected P3: 5 frames" in res.stderr
    res = run(proj, "export", 3, "-f", "csv", "--out", "-")
    assert res.stdout.splitlines()[0].startswith("person_id,rank,frame")
    assert len(res.stdout.splitlines()) == 6
    res = run(proj, "select", 3, "--out", "-")  # npz bytes, readable by numpy
    data = np.load(io.BytesIO(res.stdout_bytes), allow_pickle=True)
    assert data["primary_person"].item()["frame_numbers"].tolist() == [5, 6, 7, 8, 9]
    assert not (proj / "outputs/walking-pair/primary_person.npz").exists()
    assert "give --out FILE.mp4" in run(proj, "render", "--out", "-", code=2).output


# -------------------------------------------------------------------------- selections
def test_second_select_keeps_the_first_and_list_points_at_true_files(proj, tmp_path):
    out = proj / "outputs/walking-pair"
    run(proj, "select", 1)
    run(proj, "select", 2)
    latest = np.load(out / "primary_person.npz", allow_pickle=True)
    assert latest["primary_person"].item()["person_id"] == 2  # the latest selection
    p1 = np.load(out / "primary_person_P1.npz", allow_pickle=True)
    assert int(p1["person_id"]) == 1 and p1["frame_numbers"].tolist() == list(range(35))
    run(proj, "select", 1)  # again: a new file, the first one is never overwritten
    assert (out / "primary_person_P1-2.npz").is_file()
    sel = json.loads(run(proj, "list", "selections", "--json").stdout)
    assert [(s["person_id"], Path(s["path"]).name, s["file"]) for s in sel] == [
        (1, "primary_person_P1.npz", "ok"), (2, "primary_person_P2.npz", "ok"),
        (1, "primary_person_P1-2.npz", "ok")]
    for s in sel:  # each recorded file holds the person it says
        assert int(np.load(s["path"])["person_id"]) == s["person_id"]
    run(proj, "select", 1, "--out", tmp_path / "x.npz")
    run(proj, "select", 3, "--out", tmp_path / "x.npz")
    sel = json.loads(run(proj, "list", "selections", "--json").stdout)
    assert [s["file"] for s in sel[-2:]] == [f"replaced by #{sel[-1]['id']}", "ok"]


# -------------------------------------------------------------------------------- pipes
def test_closed_pipe_exits_quietly(proj):
    """`ptrack list persons | head -1`: the reader is gone before ptrack writes."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for args in (["list", "persons"], ["list", "videos"], ["export", "--out", "-"]):
        proc = subprocess.Popen([sys.executable, "-m", "ptrack", "--project", str(proj), *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        proc.stdout.close()  # like `head` exiting before the first write
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == 0, err
        assert err == "", err


# ------------------------------------------------------------------ terminals and names
def _as_terminal(monkeypatch, columns: int) -> None:
    import ptrack.cli.output as output

    monkeypatch.setattr(output, "stdout_is_terminal", lambda: True)
    monkeypatch.setenv("COLUMNS", str(columns))


def _long_named_project(root: Path) -> tuple[str, str]:
    name = "camera-north-entrance-2026-11-26-morning"
    path = "/data/recordings/site-a/building-7/" + name + ".mp4"
    with Store.open(root) as store:
        v = store.add_video(name=name, path=path, size=1, fingerprint="n", fps=25, width=1920,
                            height=1080, frame_count=1500)
        store.finish_run(store.start_run(v.id, "detect", {}).id, "done", {})
    return name, path


def test_80_columns_drop_columns_but_never_cut_ids_names_or_paths(proj, tmp_path, monkeypatch):
    root = tmp_path / "long"
    name, path = _long_named_project(root)
    _as_terminal(monkeypatch, 80)
    res = run(root, "list", "videos")
    lines = res.stdout.splitlines()
    assert max(len(line) for line in lines) <= max(80, len(name) + len(path) + 8)
    row = next(line for line in lines if name in line)
    assert path in row and row.split()[0] == "1"  # id, name and path whole, on one line
    assert "columns left out to fit 80 columns" in res.stderr
    res = run(proj, "list", "persons")
    lines = res.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    header = lines[1].split()
    assert header[:2] == ["rank", "person"] and "frames" in header
    assert [line.split()[:2] for line in lines[2:5]] == [["1", "1"], ["2", "2"], ["3", "3"]]
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal shows every column
    wide = run(proj, "list", "persons").stdout.splitlines()[1].split()
    assert wide == ["rank", "person", "frames", "first", "last", "from", "to", "detected",
                    "tracklets", "height", "px", "conf", "score", "suggested"]


@pytest.mark.parametrize("terminal", [False, True])
def test_names_from_files_are_data_not_markup(tmp_path, monkeypatch, terminal):
    with Store.open(tmp_path / "p") as store:
        for i, name in enumerate(["x [bold red] y", "bell\x07and\x1b[31mred"]):
            store.add_video(name=name, path=f"/v/{i}.mp4", size=1, fingerprint=str(i), fps=10,
                            width=64, height=48, frame_count=20)
    if terminal:
        _as_terminal(monkeypatch, 120)
    res = run(tmp_path / "p", "list", "videos")
    assert "x [bold red] y" in res.stdout
    assert "bell\\x07and\\x1b[31mred" in res.stdout and "\x1b" not in res.stdout
    res = run(tmp_path / "p", "list", "persons", "--video", "x [bold red] y", code=1)
    assert "x [bold red] y has no detections yet" in res.output
    res = run(tmp_path / "p", "list", "persons", "--video", "no\x1bpe", code=2)
    assert "unknown video 'no\\x1bpe'" in res.output and "\x1b" not in res.output
