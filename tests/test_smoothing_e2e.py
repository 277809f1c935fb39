"""Smoothed person trajectories end to end (issue 11, part 2): ``group`` stores a smoothed box
beside the detector's, ``select`` writes both, ``export`` and ``eval`` take ``--boxes``."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ptrack.cli import app
from ptrack.formats.export import clip_boxes
from ptrack.formats.mot import read_mot
from ptrack.persons.stages import smoothed_person_boxes
from ptrack.store import Store
from tests.conftest import REPO, shared_file

runner = CliRunner()


def cli(project: Path, *args, code: int = 0):
    result = runner.invoke(app, ["--project", str(project), *map(str, args)])
    assert result.exit_code == code, result.output
    return result


# ------------------------------------------------------------------- pure: per-person smoothing

def test_smoothing_per_person_keeps_a_straight_walk_and_fills_its_gap_on_the_line():
    xyxy = np.array([[10 + 4 * f, 20, 60 + 4 * f, 220] for f in [0, 1, 2, 3, 4, 5, 6]], float)
    person = np.full(7, 8)
    source = np.array([0, 0, 0, 0, 1, 0, 0])
    conf = np.where(source == 0, 0.9, 0.0)
    out = smoothed_person_boxes(person, np.arange(7), xyxy, conf, source, fps=25)
    assert out.shape == (7, 4) and out.dtype == np.float32
    # constant velocity comes out unchanged (to 1/100 pixel), the gap on the line
    np.testing.assert_allclose(out, xyxy, atol=0.01)


def test_smoothing_per_person_reduces_jitter_and_keeps_persons_apart():
    rng = np.random.default_rng(0)
    n = 60
    truth = np.array([[100 + 3 * f, 50, 150 + 3 * f, 250] for f in range(n)], float)
    noisy = truth + rng.normal(0, 6, truth.shape)
    other = np.array([[900.0, 50, 950, 250]] * n)  # a second person standing still
    person = np.r_[np.full(n, 2), np.full(n, 5)]
    frame = np.r_[np.arange(n), np.arange(n)]
    xyxy = np.r_[noisy, other]
    out = smoothed_person_boxes(person, frame, xyxy, np.full(2 * n, 0.8), np.zeros(2 * n), fps=25)
    err_raw = np.abs(noisy - truth).mean()
    err_smooth = np.abs(out[:n] - truth).mean()
    assert err_smooth < 0.6 * err_raw
    np.testing.assert_allclose(out[n:], other, atol=1e-3)  # not pulled towards person 2


def test_smoothing_per_person_of_nothing_is_nothing():
    out = smoothed_person_boxes(np.zeros(0), np.zeros(0), np.zeros((0, 4)), np.zeros(0),
                                np.zeros(0), fps=25)
    assert out.shape == (0, 4)


# ------------------------------------------------------------- real video, test model, CLI

@pytest.fixture(scope="module")
def walking(tmp_path_factory, person_model) -> Path:
    """walking-pair.mp4 detected with the offline test model and ranked."""
    proj = tmp_path_factory.mktemp("smooth") / "p"
    cli(proj, "detect", REPO / "tests" / "data" / "walking-pair.mp4", "--model",
        "pkg:fall_detection/models/best.pt", "--classes", "all")
    cli(proj, "rank")
    return proj


def _stored(proj: Path):
    with Store.open(proj, create=False) as store:
        v = store.video(None)
        top = store.persons(v.id)[0]["id"]
        return top, store.person_boxes(v.id, top), store.detections(v.id)


def _detection_boxes(pb, det) -> np.ndarray:
    """The stored detection of each observed person box."""
    index = {(int(f), int(d)): i for i, (f, d) in enumerate(zip(det.frame, det.det))}
    obs = pb["source"] == 0
    rows = [index[(int(f), int(d))] for f, d in zip(pb["frame"][obs], pb["det"][obs])]
    return det.xyxy[rows]


def test_select_writes_smoothed_bboxes_and_the_detections_as_bboxes_raw(walking: Path, tmp_path):
    top, pb, det = _stored(walking)
    out = tmp_path / "sel.npz"
    cli(walking, "select", top, "--out", out)
    data = np.load(out, allow_pickle=True)
    person = data["primary_person"].item()
    bboxes, raw = person["bboxes"], person["bboxes_raw"]
    assert bboxes.shape == raw.shape == (len(pb["frame"]), 4)
    obs = data["sources"] == 0
    np.testing.assert_allclose(raw[obs], _detection_boxes(pb, det), atol=1e-3)
    # the smoothed boxes, clipped to the frame (a smoothed box may reach past the edge)
    clipped = clip_boxes(pb["smoothed"], int(data["width"]), int(data["height"]))
    np.testing.assert_allclose(bboxes, clipped, atol=1e-3)
    shift = np.abs(bboxes - raw).max(axis=1)
    assert (shift > 0.5).mean() > 0.5  # the smoother moves most boxes by more than half a pixel
    assert np.abs(bboxes - raw).mean() < 0.1 * (raw[:, 3] - raw[:, 1]).mean()  # and not far


def test_export_boxes_raw_are_the_detections_and_the_default_is_smoothed(walking: Path, tmp_path):
    top, pb, det = _stored(walking)
    cli(walking, "export", top, "--boxes", "raw", "--observed-only", "--out", tmp_path / "raw.txt")
    np.testing.assert_allclose(read_mot(tmp_path / "raw.txt").xyxy, _detection_boxes(pb, det),
                               atol=0.01)
    cli(walking, "export", top, "--out", tmp_path / "s.txt")
    np.testing.assert_allclose(read_mot(tmp_path / "s.txt").xyxy, pb["smoothed"], atol=0.01)
    for fmt in ("csv", "json"):
        cli(walking, "export", top, "--boxes", "raw", "--out", tmp_path / f"raw.{fmt}")
        cli(walking, "export", top, "--out", tmp_path / f"s.{fmt}")
    doc = json.loads((tmp_path / "raw.json").read_text())["persons"][0]
    np.testing.assert_allclose(doc["bboxes"], pb["xyxy"], atol=0.01)
    doc = json.loads((tmp_path / "s.json").read_text())["persons"][0]
    np.testing.assert_allclose(doc["bboxes"], pb["smoothed"], atol=0.01)
    header, *rows = (tmp_path / "raw.csv").read_text().splitlines()
    assert [float(v) for v in rows[0].split(",")[4:8]] == pytest.approx(pb["xyxy"][0], abs=0.01)


def test_export_and_eval_refuse_an_unknown_box_kind(walking: Path, tmp_path):
    res = cli(walking, "export", "--boxes", "kalman", "--out", tmp_path / "x.txt", code=2)
    assert "--boxes must be smoothed or raw, not 'kalman'" in res.output
    gt = tmp_path / "gt.txt"
    gt.write_text("1,1,10,10,20,40,1,-1,-1,-1\n")
    res = cli(walking, "eval", gt, "--boxes", "kalman", code=2)
    assert "--boxes must be smoothed or raw" in res.output
    res = cli(walking, "render", "--boxes", "kalman", "--out", tmp_path / "x.mp4", code=2)
    assert "--boxes must be smoothed or raw, not 'kalman'" in res.output
    assert not (tmp_path / "x.txt").exists() and not (tmp_path / "x.mp4").exists()


def test_a_schema1_project_is_regrouped_with_smoothed_boxes(walking: Path, tmp_path):
    """An old project (no smoothed boxes) opens, is upgraded, and `select` regroups it."""
    import shutil

    old = tmp_path / "old"
    shutil.copytree(walking, old)
    conn = sqlite3.connect(old / "ptrack.db")
    for col in ("sx1", "sy1", "sx2", "sy2"):
        conn.execute(f"ALTER TABLE person_boxes DROP COLUMN {col}")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    top, pb, _ = _stored(walking)
    res = cli(old, "select", top, "--out", tmp_path / "sel.npz")
    assert "group results are stale; running group first" in res.output
    data = np.load(tmp_path / "sel.npz")
    w, h = int(data["width"]), int(data["height"])
    np.testing.assert_allclose(data["bboxes"], clip_boxes(pb["smoothed"], w, h), atol=1e-3)
    np.testing.assert_allclose(data["bboxes_raw"], clip_boxes(pb["xyxy"], w, h), atol=1e-3)
    assert np.abs(data["bboxes"] - data["bboxes_raw"]).max() > 0.5


# ------------------------------------------------------------ MOT15, public detections, eval

def test_eval_scores_smoothed_by_default_and_raw_on_request(tmp_path):
    seq = shared_file("mot15", "TUD-Stadtmitte")
    proj = tmp_path / "p"
    cli(proj, "import", seq / "det.txt", "--video-file", seq / "TUD-Stadtmitte.mp4")
    cli(proj, "group")
    default = json.loads(cli(proj, "eval", seq / "gt.txt", "--json").output)
    smoothed = json.loads(cli(proj, "eval", seq / "gt.txt", "--json", "--boxes", "smoothed").output)
    raw = json.loads(cli(proj, "eval", seq / "gt.txt", "--json", "--boxes", "raw").output)
    assert default == smoothed
    assert raw["tracklets"] == smoothed["tracklets"]  # tracklets are the detector's boxes
    # smoothing buys MOTA on this sequence (72.7 raw -> 75.8 smoothed when written)
    assert smoothed["persons"]["MOTA"] > raw["persons"]["MOTA"] + 1.0
