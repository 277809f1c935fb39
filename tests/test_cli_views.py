"""``list``, ``show``, ``crops``, ``table``, ``render``, ``select``, ``export`` and the
corrections, driven through the real CLI on a real temporary project."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from ptrack.cli import app
from ptrack.store import Store

try:
    from tests.test_views import CLIP, N, build_project
except ImportError:  # tests/ not a package
    from test_views import CLIP, N, build_project

runner = CliRunner()


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = tmp_path_factory.mktemp("template") / "proj"
    build_project(root).close()
    return root


@pytest.fixture()
def proj(template, tmp_path):
    """A fresh copy of the project for each test."""
    root = tmp_path / "proj"
    shutil.copytree(template, root)
    return root


def run(proj, *args, code=0):
    result = runner.invoke(app, ["--project", str(proj), *map(str, args)])
    assert result.exit_code == code, (result.exit_code, result.output)
    return result


# --------------------------------------------------------------------------------- list
def test_list_persons_plain(proj):
    out = run(proj, "list", "persons").stdout.splitlines()
    assert out == [
        "rank  person  frames  first  last    from      to  detected  tracklets  height px  conf  score  suggested",
        "   1       1      35      0    34  0:00.0  0:02.8       91%          2        178  0.89  0.900          -",
        "   2       2      35      0    34  0:00.0  0:02.8      100%          1        155  0.80  0.750          -",
        "   3       3       5      5     9  0:00.4  0:00.8      100%          1        160  0.30  0.050          -"]


def test_list_persons_json_csv_top_min_frames(proj):
    rows = json.loads(run(proj, "list", "persons", "--json").stdout)
    assert [r["person"] for r in rows] == [1, 2, 3]
    assert rows[0] == {"rank": 1, "person": 1, "frames": 35, "observed": 32, "first": 0,
                       "last": 34, "first_time": 0.0, "last_time": 2.833, "detected": 0.9143,
                       "tracklets": 2, "mean_height": 178.2, "mean_conf": 0.8876, "score": 0.9,
                       "suggestions": 0}
    assert [r["person"] for r in json.loads(run(proj, "list", "persons", "--json", "--top", 2).stdout)] == [1, 2]
    text = run(proj, "list", "persons", "--csv", "--min-frames", 10).stdout
    table = list(csv.reader(io.StringIO(text)))
    assert table[0] == ["rank", "person", "frames", "observed", "first", "last", "first_time",
                        "last_time", "detected", "tracklets", "mean_height", "mean_conf", "score",
                        "suggestions"]
    assert [r[1] for r in table[1:]] == ["1", "2"]
    tsv = run(proj, "list", "persons", "--tsv", "--top", 1).stdout.splitlines()
    assert tsv[1].split("\t")[:3] == ["1", "1", "35"]
    nl = run(proj, "list", "persons", "--nl").stdout.splitlines()
    assert [json.loads(line) for line in nl] == rows  # JSON lines: one object per line
    res = run(proj, "list", "persons", "--json", "--csv", code=2)
    assert res.output == "Error: choose one of --json, --nl, --csv and --tsv\n"


def test_list_persons_without_persons_says_what_to_run(tmp_path):
    build_project(tmp_path / "p", persons=False).close()
    res = run(tmp_path / "p", "list", "persons", code=1)
    assert res.output.strip() == ("Error: walking-pair has 73 detections but no persons yet; "
                                  "run `ptrack track; ptrack group; ptrack rank`")
    run(tmp_path / "p", "select", 1, code=1)


def test_list_persons_video_with_nobody(tmp_path):
    with Store.open(tmp_path / "p") as store:
        v = store.add_video(name="empty", path="/x/empty.mp4", size=1, fingerprint="e", fps=10,
                            width=64, height=48, frame_count=20)
        store.finish_run(store.start_run(v.id, "detect", {}).id, "done", {})
    res = run(tmp_path / "p", "list", "persons")
    assert res.stdout.strip() == "nobody was found in empty (no detections in 20 frames)"
    assert json.loads(run(tmp_path / "p", "list", "persons", "--json").stdout) == []


def test_list_videos_tracklets_selections(proj):
    videos = json.loads(run(proj, "list", "videos", "--json").stdout)
    assert len(videos) == 1
    v = videos[0]
    assert (v["name"], v["frames"], v["fps"], v["width"], v["height"], v["detections"],
            v["persons"], v["rank"]) == ("walking-pair", 35, 12.0, 480, 270, 73, 3, "done")
    tracks = json.loads(run(proj, "list", "tracklets", "--json").stdout)
    assert [(t["tracklet"], t["boxes"], t["first"], t["last"], t["person"]) for t in tracks] == [
        (1, 15, 0, 14, 1), (2, 35, 0, 34, 2), (3, 5, 5, 9, 3), (4, 17, 18, 34, 1)]
    assert run(proj, "list", "selections").stdout.strip() == "nothing selected yet (ptrack select ID)"
    run(proj, "select", 2)
    sel = json.loads(run(proj, "list", "selections", "--json").stdout)
    assert [(s["person_id"], s["person_ids"], s["frames"], s["format"]) for s in sel] == [
        (2, [2], 35, "npz")]


def test_list_unknown_video(proj):
    res = run(proj, "list", "persons", "--video", "nope", code=2)
    assert "unknown video 'nope'" in res.output


# --------------------------------------------------------------------------------- show
def test_show_blocks_and_stats(proj):
    out = run(proj, "show", 1, "--graphics", "blocks", "--height", 6, "--k", 4).stdout
    assert out.count("▀") >= 4 * 6 * 6
    for needle in ("P1", "#1", "35 (32 observed)", "0-34 (35 frames)", "91%", "2 ", "178 px"):
        assert needle in out, needle


def test_show_several_side_by_side(proj):
    out = run(proj, "show", 1, 2, "--graphics", "blocks", "--height", 5, "--k", 3).stdout
    first = out.splitlines()[0]
    assert "P1" in first and "P2" in first
    assert "▀" in out


def test_show_piped_draws_no_images_and_unknown_id(proj):
    res = run(proj, "show", 3)
    assert "▀" not in res.stdout and "P3" in res.stdout and "5 (5 observed)" in res.stdout
    res = run(proj, "show", 1, 99, code=2)
    assert res.output.strip().splitlines()[-1] == (
        "Error: unknown person 99; available: 1 (35 frames), 2 (35 frames), 3 (5 frames)")
    assert "--graphics must be" in run(proj, "show", 1, "--graphics", "x", code=2).output


# -------------------------------------------------------------------------------- crops
def test_crops_all_and_sampled(proj, tmp_path):
    res = run(proj, "crops", 1, "--out", tmp_path / "all")
    names = sorted(p.name for p in (tmp_path / "all").iterdir())
    assert len(names) == 32 and names[0] == "p1_f000000.jpg" and "p1_f000015.jpg" not in names
    assert res.stdout.strip() == f"wrote 32 crops of P1 to {tmp_path / 'all'}"
    run(proj, "crops", 2, "--out", tmp_path / "four", "--k", 4)
    four = sorted((tmp_path / "four").iterdir())
    assert len(four) == 4
    from ptrack.detect.crops import decode

    assert decode(four[0].read_bytes()).shape[2] == 3
    res = run(proj, "crops", 3)
    assert (proj / "outputs/walking-pair/crops_p3/p3_f000005.jpg").exists()


# -------------------------------------------------------------------------------- table
def test_table_png_and_html(proj, tmp_path):
    from PIL import Image

    res = run(proj, "table")
    path = proj / "outputs/walking-pair/selection_table.png"
    assert res.stdout.strip() == f"wrote {path} (3 of 3 persons)"
    wide = Image.open(path)
    run(proj, "table", "--top", 1, "--k", 3, "--out", tmp_path / "t.png")
    small = Image.open(tmp_path / "t.png")
    assert small.height < wide.height and small.width < wide.width
    res = run(proj, "table", "--html")
    html = (proj / "outputs/walking-pair/selection_table.html").read_text()
    assert html.count("data:image/jpeg;base64,") == 8 + 8 + 5
    run(proj, "table", "--out", tmp_path / "t.html", "--top", 2)
    assert (tmp_path / "t.html").read_text().count("<b>P") == 2


# ------------------------------------------------------------------------------- select
def test_select_npz_field_by_field(proj):
    res = run(proj, "select", 1)
    path = proj / "outputs/walking-pair/primary_person.npz"
    kept = proj / "outputs/walking-pair/primary_person_P1.npz"
    assert res.stdout.splitlines() == [
        "selected P1: 35 frames (32 observed), frames 0-34",
        f"wrote {path} (the latest selection)", f"wrote {kept} (kept)"]
    assert path.read_bytes() == kept.read_bytes()
    with Store.open(proj) as store:
        boxes = store.person_boxes(1, 1)
        sel = store.selections(1)
    data = np.load(path, allow_pickle=True)
    person = data["primary_person"].item()
    assert person["person_id"] == 1
    assert person["frame_numbers"].tolist() == list(range(N))
    assert np.allclose(person["bboxes"], boxes["xyxy"])
    assert person["bboxes"].shape == (N, 4)
    assert np.allclose(person["confidences"], boxes["conf"])
    for key in ("frame_numbers", "bboxes", "confidences"):
        assert np.array_equal(data[key], person[key])
    assert int(data["person_id"]) == 1
    assert data["sources"].tolist() == [0] * 15 + [1] * 3 + [0] * 17
    assert data["tracklets"].tolist() == [1] * 15 + [-1] * 3 + [4] * 17
    assert str(data["video_path"]) == str(CLIP)
    assert (float(data["fps"]), int(data["width"]), int(data["height"]),
            int(data["frame_count"])) == (12.0, 480, 270, 35)
    assert [(s["person_ids"], s["person_id"], s["n_frames"], s["path"], s["format"])
            for s in sel] == [([1], 1, 35, str(kept.resolve()), "npz")]


def test_select_several_ids_merges(proj, tmp_path):
    res = run(proj, "select", 1, 2, "--out", tmp_path / "both.npz", "--force")  # on screen together
    assert res.stdout.splitlines()[:2] == [
        "selected P1 (persons 1, 2 joined): 35 frames (35 observed), frames 0-34",
        "35 frames were claimed by more than one person; the more confident box was kept"]
    data = np.load(tmp_path / "both.npz")
    # the man is more confident everywhere he was seen; the woman fills his gap 15-17
    assert data["tracklets"].tolist() == [1] * 15 + [2] * 3 + [4] * 17
    assert data["person_ids"].tolist() == [1, 2]


def test_select_formats_and_errors(proj, tmp_path):
    run(proj, "select", 3, "--format", "json", "--out", tmp_path / "p.json")
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["person_id"] == 3 and doc["frame_numbers"] == [5, 6, 7, 8, 9]
    run(proj, "select", 3, "--format", "csv")
    lines = (proj / "outputs/walking-pair/primary_person.csv").read_text().splitlines()
    assert len(lines) == 6 and lines[1].startswith("3,5,0.4167,")
    res = run(proj, "select", 42, code=2)
    assert res.output.strip() == ("Error: unknown person 42; available: 1 (35 frames), "
                                  "2 (35 frames), 3 (5 frames)")
    assert "--format must be one of npz, json, csv" in run(proj, "select", 1, "-f", "xml", code=2).output
    with Store.open(proj) as store:
        assert [s["format"] for s in store.selections(1)] == ["json", "csv"]


# ---------------------------------------------------------------------- corrections
def test_merge_split_unmerge_store_tracklet_ids(proj):
    res = run(proj, "merge", 1, 3, "--force")
    assert res.stdout.splitlines() == [
        "recorded merge #1: persons 1, 3 (tracklets 1, 3, 4) are one person: P1",
        "applied: regrouped walking-pair, 2 persons now"]
    res = run(proj, "split", 1, "--at", 20)
    assert res.stdout.splitlines()[1] == "  before: tracklets 1, 4; from 20: tracklets 4; 4 cut at 20"
    run(proj, "unmerge", 2, code=1)  # a single tracklet
    with Store.open(proj) as store:
        got = [(c["kind"], c["ids"], c["frame"]) for c in store.constraints(1)]
    assert got == [("merge", [1, 3, 4], None), ("split", [1, 3, 4], 20)]
    listed = json.loads(run(proj, "constraints", "--json").stdout)
    assert [(c["id"], c["kind"], c["tracklets"]) for c in listed] == [
        (1, "merge", [1, 3, 4]), (2, "split", [1, 3, 4])]
    run(proj, "constraints", "--delete", 1)
    assert [c["id"] for c in json.loads(run(proj, "constraints", "--json").stdout)] == [2]
    run(proj, "unmerge", 1)
    assert [c["kind"] for c in json.loads(run(proj, "constraints", "--json").stdout)] == [
        "split", "unmerge"]
    assert "unknown constraint 9" in run(proj, "constraints", "--delete", 9, code=2).output


def test_correction_errors(proj):
    assert "P2 is a single tracklet" in run(proj, "unmerge", 2, code=1).output
    assert "at least two" in run(proj, "merge", 1, 1, code=2).output
    assert "unknown person 8" in run(proj, "merge", 1, 8, code=2).output
    assert "outside" in run(proj, "split", 1, "--at", 0, code=2).output
    assert "outside" in run(proj, "split", 3, "--at", 10, code=2).output
    with Store.open(proj) as store:
        assert store.constraints(1) == []


# ------------------------------------------------------------------------------- export
def test_export_mot_csv_json(proj, tmp_path):
    res = run(proj, "export")
    path = proj / "outputs/walking-pair/persons.txt"
    assert res.stdout.strip() == f"wrote {path} (3 persons, 75 boxes, mot)"
    lines = path.read_text().splitlines()
    assert lines[:2] == ["1,1,298.0,100.0,49.0,168.0,0.9,-1,-1,-1",
                         "1,2,250.0,115.0,47.0,147.0,0.8,-1,-1,-1"]
    assert len(lines) == 75 and lines[-1].startswith("35,2,")
    run(proj, "export", 1, "--observed-only", "--out", tmp_path / "p1.txt")
    assert len((tmp_path / "p1.txt").read_text().splitlines()) == 32
    run(proj, "export", "-f", "csv", "--out", tmp_path / "p.csv")
    rows = list(csv.reader((tmp_path / "p.csv").open()))
    assert rows[1][:3] == ["1", "1", "0"] and len(rows) == 76
    run(proj, "export", 3, 2, "-f", "json", "--out", tmp_path / "p.json")
    doc = json.loads((tmp_path / "p.json").read_text())
    assert [p["person_id"] for p in doc["persons"]] == [3, 2]
    assert [p["rank"] for p in doc["persons"]] == [3, 2]
    assert "unknown person 5" in run(proj, "export", 5, code=2).output


# ------------------------------------------------------------------------------- render
def test_render(proj, tmp_path):
    import cv2

    res = run(proj, "render", "--top", 2, "--out", tmp_path / "a.mp4")
    assert res.stdout.startswith(f"wrote {tmp_path / 'a.mp4'} (35 frames, 2 persons, ")
    cap = cv2.VideoCapture(str(tmp_path / "a.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == N
    cap.release()
    assert [p.name for p in tmp_path.iterdir() if p.name != "proj"] == ["a.mp4"]
    run(proj, "render", 3, "--encoder", "mp4v")
    assert (proj / "outputs/walking-pair/annotated.mp4").exists()


# ------------------------------------------------------------------------------ imports
def test_views_never_import_torch(proj):
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from ptrack.cli import app\n"
        "r = CliRunner()\n"
        f"p = {str(proj)!r}\n"
        "for args in (['list', 'persons'], ['list', 'videos', '--json'], ['show', '1', '--graphics', 'blocks'],\n"
        "             ['table'], ['select', '1'], ['export'], ['list', 'tracklets']):\n"
        "    res = r.invoke(app, ['--project', p, *args])\n"
        "    assert res.exit_code == 0, (args, res.output)\n"
        "print(sorted(m for m in ('torch', 'ultralytics', 'openvino') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
