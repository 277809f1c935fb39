"""The OpenVINO backend on real frames of the bundled clip with the real test model: its boxes
agree with Ultralytics' predictions, one person gets one box, the export is cached per user,
INT8 is calibrated on the video and gated."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from ptrack.detect import openvino_backend as ob
from ptrack.detect import quantize as q
from ptrack.settings import load_defaults
from ptrack.detect.detector import file_hash, input_shape, load_detector, quiet_ultralytics

pytest.importorskip("openvino")


def frames_of(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, image = cap.read()
        if not ok:
            return out
        out.append(image)


def settings(model: Path, **extra) -> dict:
    cfg = dict(load_defaults()["detect"])
    cfg.update(model=str(model), classes="all", backend="openvino", **extra)
    return cfg


CLIP = Path(__file__).resolve().parent / "data" / "walking-pair.mp4"


@pytest.fixture(scope="module")
def clip():
    return CLIP, frames_of(CLIP)


def test_boxes_agree_with_ultralytics(person_model, clip, tmp_path):
    """f32 OpenVINO, our letterbox and NMS vs Ultralytics' own predictor on the .pt, conf 0.25:
    >= 98% of boxes matched at IoU >= 0.9, same count within 1 per 10 frames."""
    path, frames = clip
    det = load_detector(settings(person_model, precision="f32", conf=0.25), width=480, height=270,
                        project=tmp_path)
    assert det.backend == "openvino" and det.precision == "f32" and det.imgsz == (384, 640)
    ours = det(frames)
    quiet_ultralytics()
    from ultralytics import YOLO

    model = YOLO(str(person_model))
    theirs = []
    for r in model.predict(frames, imgsz=[384, 640], conf=0.25, iou=0.7, agnostic_nms=True,
                           verbose=False, device="cpu"):
        theirs.append((r.boxes.xyxy.numpy(), r.boxes.conf.numpy(), r.boxes.cls.numpy()))
    f = q.compare(theirs, ours, thr=0.9)
    assert f["boxes_ref"] >= 50  # two people in most of the 35 frames
    assert f["recall"] >= 0.98 and f["precision"] >= 0.98, f
    assert abs(f["boxes"] - f["boxes_ref"]) <= max(1, len(frames) // 10)
    assert f["conf_shift"] < 0.01
    # classes agree on the matched boxes
    for (ta, _, tc), (oa, _, oc) in zip(theirs, ours):
        ia, ib, _ = q.match_boxes(ta, oa, 0.9)
        assert (tc[ia].astype(int) == oc[ib]).all()


def test_one_person_one_box_across_classes(person_model, clip, tmp_path):
    """--classes all on Normal + Fall: no two kept boxes overlap more than the NMS IoU."""
    _, frames = clip
    cfg = settings(person_model, precision="f32")
    det = load_detector(cfg, width=480, height=270, project=tmp_path)
    worst = 0.0
    for xyxy, conf, cls in det(frames):
        if len(xyxy) > 1:
            iou = ob.box_iou(xyxy, xyxy)
            np.fill_diagonal(iou, 0)
            worst = max(worst, float(iou.max()))
        assert set(cls.tolist()) <= {0, 1}
    assert worst <= cfg["iou"]


def test_export_cached_per_user_and_not_redone(person_model, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("PTRACK_CACHE_DIR", str(cache))
    cache.mkdir()
    leftover = cache / ".export-999999999-killed"  # a killed export's folder (no such pid)
    leftover.mkdir()
    digest = file_hash(person_model)
    shape = input_shape(640, 480, 270)
    messages: list[str] = []
    first = ob.export_ir(person_model, digest, shape, log=messages.append)
    assert first == cache / f"{digest[:16]}-384x640"
    assert (first / "model.xml").is_file() and (first / "model.bin").is_file()
    assert messages == [f"exporting the model for OpenVINO (once, 640x384) into {first}"]
    assert not leftover.exists()
    assert [p.name for p in cache.iterdir()] == [first.name]  # nothing half-written left
    stamp = (first / "model.bin").stat().st_mtime_ns
    # a second project: same folder, no export
    det = load_detector(settings(person_model, precision="f32"), width=480, height=270,
                        project=tmp_path / "other-project", log=messages.append)
    assert len(messages) == 1 and (first / "model.bin").stat().st_mtime_ns == stamp
    assert not (tmp_path / "other-project" / "models").exists()
    assert det.requests >= 1
    # auto on a short clip: building INT8 would cost more than it saves, so it runs float
    auto = load_detector(settings(person_model), width=480, height=270, project=tmp_path,
                         video=CLIP, frame_count=35, log=messages.append)
    assert auto.precision in ("f32", "bf16") and auto.gate is None
    no_int8 = ("no INT8 model for this model and input shape yet; building one pays from 2000 "
               "frames, this video has 35 (--precision int8 builds it now)")
    if "BF16" in ob.cpu_capabilities():  # f32 and bf16 timed here, the faster runs
        assert auto.precision_note.startswith(f"auto: {auto.precision}, the fastest precision "
                                              f"that passes its gate here (f32 ")
        assert auto.precision_note.endswith(f"; before timing: bf16 ({no_int8}))")
        assert messages[1:] == ["timing f32, bf16 on this CPU (once per model and input shape)"]
        assert (first / "speed.json").is_file()
    else:
        assert auto.precision_note == f"auto: f32 ({no_int8})"
        assert len(messages) == 1
    assert sorted(p.name for p in cache.iterdir()) == [first.name]


def test_int8_calibrated_on_the_video_and_gated(person_model, clip, tmp_path):
    path, frames = clip
    messages: list[str] = []
    det = load_detector(settings(person_model, precision="int8"), width=480, height=270,
                        project=tmp_path, video=path, frame_count=len(frames), log=messages.append)
    assert det.precision == "int8"
    assert any(m.startswith("quantizing the model to INT8") for m in messages)
    gate = det.gate
    assert set(gate) >= {"recall", "precision", "median_iou", "conf_shift", "frames", "boxes_ref"}
    assert gate["frames"] >= 1 and gate["boxes_ref"] >= 1
    int8_dir = q.int8_dir(ob.export_dir(file_hash(person_model), (384, 640)))
    record = q.load_gate(int8_dir)
    assert not set(record["calibration_frames"]) & set(record["gate_frames"])
    assert record["recipe"] == q.RECIPE.describe()
    # INT8 boxes still find the two people the f32 model finds (IoU 0.5)
    ref = load_detector(settings(person_model, precision="f32"), width=480, height=270,
                        project=tmp_path)
    f = q.compare(ref(frames), det(frames))
    assert f["recall"] >= 0.9 and f["precision"] >= 0.9, f
    # auto: decided by the gate, and says why
    auto = load_detector(settings(person_model), width=480, height=270, project=tmp_path,
                         video=path, frame_count=len(frames))
    ok, _ = q.gate_verdict(gate, settings(person_model))
    floating = "bf16" if "BF16" in ob.cpu_capabilities() else "f32"
    # the fastest measured of those that pass: INT8 only when its gate passed
    candidates = {"f32", floating} | ({"int8"} if ok else set())
    assert auto.precision in candidates
    assert auto.precision_note.startswith("auto: ")
    if len(candidates) > 1:
        assert "the fastest precision that passes its gate here" in auto.precision_note
    assert os.environ["PTRACK_CACHE_DIR"] in str(int8_dir)


def test_cli_precision_errors(person_model, tmp_path):
    """Unknown precisions, and bf16 on a CPU without it, are one-line errors (exit 1)."""
    from typer.testing import CliRunner

    from ptrack.cli import app

    def detect(*args):
        return CliRunner().invoke(app, ["--project", str(tmp_path / "p"), "detect", str(CLIP),
                                        "--model", str(person_model), "--classes", "all",
                                        "--backend", "openvino", *args])

    bad = detect("--precision", "fp8")
    assert bad.exit_code == 2
    assert "Error: --precision: unknown precision 'fp8' (use auto, f32, fp16, bf16, int8)" in bad.output
    if "BF16" in ob.cpu_capabilities():
        pytest.skip("this CPU runs bf16")
    no = detect("--precision", "bf16")
    assert no.exit_code == 1
    assert "Error: --precision bf16: this CPU has no bf16 in OpenVINO (it offers FP32" in no.output
    assert "Traceback" not in no.output
