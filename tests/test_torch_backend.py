"""The torch backend (CUDA in use, checked here on the CPU): its letterbox matches OpenCV's, its
batch NMS keeps what the per-frame NMS keeps, its boxes agree with Ultralytics' predictor; the
precision and batch rules; the writer's crop threads store the same crops; a changed batch
is not a changed setting."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ptrack.detect import openvino_backend as ob
from ptrack.detect import quantize as q
from ptrack.cli import app
from ptrack.settings import load_defaults
from ptrack.detect.loop import encode_workers
from ptrack.detect.detector import batch_size, load_detector, quiet_ultralytics, torch_precision
from ptrack.errors import PtrackError
from ptrack.store import Store
from ptrack.detect.torch_backend import batch_nms, letterbox_batch
from tests.conftest import video_frames

CLIP = Path(__file__).resolve().parent / "data" / "walking-pair.mp4"


@pytest.mark.parametrize("size, shape", [((1080, 1920), (384, 640)), ((240, 320), (480, 640)),
                                         ((270, 480), (384, 640)), ((480, 640), (480, 640)),
                                         ((100, 37), (640, 256))])
def test_letterbox_on_the_device_matches_opencv(size, shape):
    """Same padding and placement as Ultralytics' LetterBox; pixels within one grey level."""
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (size[0] // 4 + 1, size[1] // 4 + 1, 3), dtype=np.uint8)
    frames = [cv2.resize(base, size[::-1], interpolation=cv2.INTER_CUBIC) for _ in range(2)]
    frames[1] = 255 - frames[1]
    ours = letterbox_batch(torch.from_numpy(np.stack(frames)), shape).mul(255).round().numpy()
    ref = np.stack([ob.letterbox(f, shape)[0][..., ::-1].transpose(2, 0, 1) for f in frames])
    assert ours.shape == ref.shape == (2, 3, *shape)
    diff = np.abs(ours - ref.astype(np.float32))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.2


def _random_pred(rng, frames: int, anchors: int, classes: int, size: float = 640.0):
    """Raw outputs with clusters of overlapping boxes, so that NMS has work to do."""
    centres = rng.uniform(50, size - 50, (frames, 12, 2))
    pick = rng.integers(0, 12, (frames, anchors))
    xy = np.take_along_axis(centres, pick[..., None], 1) + rng.normal(0, 6, (frames, anchors, 2))
    wh = rng.uniform(30, 90, (frames, anchors, 2))
    scores = rng.uniform(0, 1, (frames, anchors, classes)) ** 3
    pred = np.concatenate([xy, wh, scores], 2).transpose(0, 2, 1).astype(np.float32)
    pred[2, 4:] = 0.0  # a frame with nothing above any threshold
    return pred


@pytest.mark.parametrize("classes, max_det", [(None, 100), ([0], 100), ([1], 3), (None, 1)])
def test_batch_nms_keeps_what_per_frame_nms_keeps(classes, max_det):
    rng = np.random.default_rng(7)
    pred = _random_pred(rng, 5, 400, 2)
    rows, counts = batch_nms(torch.from_numpy(pred), conf=0.3, iou=0.5, classes=classes,
                             max_det=max_det)
    assert counts.sum() == len(rows) and counts[2] == 0
    start = 0
    for i, n in enumerate(counts):
        box, conf, cls = ob.postprocess(pred[i], (640, 640), (640, 640), conf=0.3, iou=0.5,
                                        classes=classes, max_det=max_det)
        got = rows[start:start + n]
        start += n
        assert n == len(box) and n <= max_det
        if n:
            assert np.allclose(got[:, :4], box, atol=1e-3)
            assert np.allclose(got[:, 4], conf) and (got[:, 5] == cls).all()
            assert (np.diff(got[:, 4]) <= 0).all()  # best first
            assert classes is None or set(got[:, 5].astype(int)) <= set(classes)
    assert sum(counts) >= min(20, 4 * max_det)


def test_batch_nms_with_nothing_found():
    rows, counts = batch_nms(torch.zeros((3, 6, 50)), conf=0.1, iou=0.7, classes=None, max_det=10)
    assert rows.shape == (0, 6) and counts.tolist() == [0, 0, 0]


def test_boxes_agree_with_ultralytics(person_model):
    """f32 on the CPU vs Ultralytics' predictor on the same .pt: every box matched at IoU 0.9."""
    frames = video_frames(CLIP, 12)
    cfg = dict(load_defaults()["detect"])
    cfg.update(model=str(person_model), classes="all", backend="torch", device="cpu", conf=0.25)
    det = load_detector(cfg, width=480, height=270, project=Path("."))
    assert det.backend == "torch" and det.precision == "f32" and det.imgsz == (384, 640)
    ours = det(frames[:5]) + det(frames[5:])  # batches of two sizes
    quiet_ultralytics()
    from ultralytics import YOLO

    theirs = [(r.boxes.xyxy.numpy(), r.boxes.conf.numpy(), r.boxes.cls.numpy())
              for r in YOLO(str(person_model)).predict(frames, imgsz=[384, 640], conf=0.25,
                                                       iou=0.7, agnostic_nms=True,
                                                       verbose=False, device="cpu")]
    f = q.compare(theirs, ours, thr=0.9)
    assert f["boxes_ref"] >= 15
    assert f["recall"] == 1.0 and f["precision"] == 1.0 and f["median_iou"] > 0.99, f
    assert f["conf_shift"] < 0.005
    for (ta, _, tc), (oa, _, oc) in zip(theirs, ours):
        ia, ib, _ = q.match_boxes(ta, oa, 0.9)
        assert (tc[ia].astype(int) == oc[ib]).all()


@pytest.mark.parametrize("asked, device, expect", [
    ("auto", "cpu", "f32"), ("auto", "cuda:0", "fp16"), ("f32", "cuda:0", "f32"),
    ("fp16", "cuda", "fp16"), ("f32", "cpu", "f32"),
])
def test_torch_precision(asked, device, expect):
    precision, why = torch_precision(asked, device)
    assert precision == expect and why.startswith(f"torch backend on {device}: {expect}")


@pytest.mark.parametrize("asked, device, message", [
    ("fp16", "cpu", "--precision fp16 needs a CUDA GPU"),
    ("bf16", "cuda:0", "--precision bf16 needs the OpenVINO backend"),
    ("int8", "cpu", "--precision int8 needs the OpenVINO backend"),
])
def test_torch_precision_refusals(asked, device, message):
    with pytest.raises(PtrackError, match=message):
        torch_precision(asked, device)


def test_batch_size_auto():
    assert batch_size({"batch": 0}, "cpu") == 8
    assert batch_size({"batch": 0}, "cuda:0") == 32
    assert batch_size({"batch": 0}, "cuda:0", 640, 480) == 32
    assert batch_size({"batch": 0}, "cuda:0", 1920, 1080) == 32
    assert batch_size({"batch": 0}, "cuda:0", 3840, 2160) == 8
    assert batch_size({"batch": 0}, "cuda:0", 15360, 8640) == 4
    assert batch_size({"batch": 5}, "cuda:0", 3840, 2160) == 5 and batch_size({}, "cpu") == 8


def test_crop_threads_follow_the_cores():
    assert [encode_workers(n) for n in (1, 2, 3, 4, 16, 64)] == [1, 1, 1, 2, 8, 8]


def _detect(project: Path, *args, env: dict | None = None):
    return CliRunner().invoke(app, ["--project", str(project), "detect", str(CLIP), *map(str, args)],
                              env=env)


def _stored(project: Path):
    with Store.open(project, create=False) as store:
        video = store.video(None)
        keys = store.crop_keys(video.id)
        return store.detections(video.id), store.crops([(video.id, f, d) for f, d in keys])


def test_crop_threads_store_the_same_crops_and_batch_is_not_a_setting(tmp_path, person_model):
    args = ("--model", person_model, "--classes", "all", "--backend", "torch", "--max-frames", "12")
    one = _detect(tmp_path / "one", *args, "--batch", "5", env={"PTRACK_CROP_THREADS": "1"})
    three = _detect(tmp_path / "three", *args, "--batch", "5", env={"PTRACK_CROP_THREADS": "3"})
    assert one.exit_code == 0 and three.exit_code == 0, one.output + three.output
    assert "limited by the detector" in one.output  # the time line says where the time went
    det1, crops1 = _stored(tmp_path / "one")
    det3, crops3 = _stored(tmp_path / "three")
    assert len(det1) >= 20 and len(crops1) == len(det1)
    for name in ("frame", "det", "cls", "xyxy", "conf"):
        assert np.array_equal(getattr(det1, name), getattr(det3, name)), name
    assert crops1 == crops3  # byte for byte
    again = _detect(tmp_path / "one", *args, "--batch", "2")  # another batch: same results
    assert again.exit_code == 0 and "already detected with these settings" in again.output


def test_fp16_on_the_cpu_is_a_one_line_error(tmp_path, person_model):
    result = _detect(tmp_path / "p", "--model", person_model, "--classes", "all", "--backend",
                     "torch", "--precision", "fp16")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1] == (
        "Error: --precision fp16 needs a CUDA GPU (--device cuda); on the CPU use f32, or "
        "bf16/int8 with OpenVINO")
    if (tmp_path / "p" / "ptrack.db").exists():  # nothing registered
        with Store.open(tmp_path / "p", create=False) as store:
            assert store.videos() == []


def test_settings_that_decide_no_box_need_no_force():
    from ptrack.detect.loop import _comparable, run_settings

    base = load_defaults()
    f32 = {**base, "detect": {**base["detect"], "precision": "f32"}}
    other = {**f32, "detect": {**f32["detect"], "batch": 3, "ov_hint": "latency",
                               "int8_min_agree": 0.5}}
    assert run_settings(f32, "h") == run_settings(other, "h")
    stored_old = {"detect": {**f32["detect"], "batch": 8, "model_sha256": "h"},
                  "crops": run_settings(f32, "h")["crops"]}
    assert _comparable(stored_old) == run_settings(other, "h")
    auto = {**base, "detect": {**base["detect"], "int8_min_agree": 0.5}}
    assert run_settings(auto, "h") != run_settings(base, "h")  # auto: the gate decides
