"""`ptrack detect` end to end through the CLI, on real clips with real models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from ptrack.cli import app
from ptrack.store import Store

runner = CliRunner()


def detect(project: Path, *args: str, env: dict | None = None):
    return runner.invoke(app, ["--project", str(project), "detect", *map(str, args)], env=env)


def stored(project: Path):
    with Store.open(project, create=False) as store:
        video = store.video(None)
        det = store.detections(video.id)
        keys = store.crop_keys(video.id)
        crops = store.crops([(video.id, f, d) for f, d in keys])
        ok = store.integrity_ok()
    return video, det, keys, crops, ok


def test_help_lists_only_working_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "detect" in result.output


def test_cli_import_leaves_torch_out():
    code = ("import sys; from typer.testing import CliRunner; from ptrack.cli import app; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0; "
            "print('torch' in sys.modules, 'ultralytics' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def _file(name: str, data: bytes):
    def make(d: Path) -> Path:
        (d / name).write_bytes(data)
        return d / name
    return make


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.mp4", "video not found"),
    (lambda d: d, "no videos found in"),  # a folder gives the videos inside: none here
    (_file("empty.mp4", b""), "is empty (0 bytes)"),
    (_file("text.mp4", b"hello, not a video\n" * 50), "is a text file, not a video"),
    (_file("noise.mp4", bytes(range(256)) * 64), "not a video that can be decoded"),
])
def test_bad_video_is_one_line_error(tmp_path: Path, make, message):
    src = tmp_path / "in"
    src.mkdir()
    result = detect(tmp_path / "proj", make(src), "--model", "whatever.pt")
    assert result.exit_code == 2  # a bad input file is a usage error
    assert not (tmp_path / "proj").exists()  # refused before the project is created
    assert result.output.strip().startswith("Error: ") and message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_missing_model_is_clear(tmp_path: Path, walking_pair: Path):
    result = detect(tmp_path / "proj", walking_pair, "--model", "nowhere/yolov8s.pt")
    assert result.exit_code == 1
    assert "Error: model file 'nowhere/yolov8s.pt' not found" in result.output


def test_model_without_person_class_lists_classes(tmp_path, walking_pair, person_model):
    result = detect(tmp_path / "proj", walking_pair, "--model", person_model, "--backend", "torch")
    assert result.exit_code == 1
    assert "no 'person' class; its classes are: Normal (0), Fall (1)" in result.output


def test_bad_config_key_named(tmp_path: Path, walking_pair: Path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("detect:\n  confidence: 0.5\n")
    result = runner.invoke(app, ["--project", str(tmp_path / "p"), "--config", str(cfg), "detect",
                                 str(walking_pair)])
    assert result.exit_code == 1
    assert "unknown config key 'detect.confidence'" in result.output


def test_detect_with_test_model_stores_boxes_and_crops(tmp_path, walking_pair, person_model):
    proj = tmp_path / "proj"
    result = detect(proj, walking_pair, "--model", person_model, "--classes", "all",
                    "--backend", "openvino")
    assert result.exit_code == 0, result.output
    assert "walking-pair: done" in result.output and "(openvino)" in result.output
    video, det, keys, crops, ok = stored(proj)
    assert ok
    assert (video.width, video.height, video.frame_count) == (480, 270, 35)
    assert video.fps == pytest.approx(12.0)
    # two people walk towards the camera: about two boxes per frame, all inside the image
    per_frame = np.bincount(det.frame, minlength=35)
    assert np.median(per_frame) == 2
    assert (det.xyxy[:, 0] >= 0).all() and (det.xyxy[:, 2] <= 480).all()
    assert (det.xyxy[:, 3] - det.xyxy[:, 1]).mean() > 60
    assert keys == list(zip(det.frame.tolist(), det.det.tolist()))  # one crop per detection
    for data in crops[:10]:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape[0] <= 256 and img.shape[1] <= 128
    # the export is cached per user (PTRACK_CACHE_DIR in tests), keyed by model hash and shape
    cache = Path(os.environ["PTRACK_CACHE_DIR"])
    # (other tests of the session may have exported other models into the same cache)
    from ptrack.detect.detector import file_hash

    digest = file_hash(Path(person_model))[:16]
    assert len(list(cache.glob(f"{digest}-288x480/model.xml"))) == 0
    assert len(list(cache.glob(f"{digest}-384x640/model.xml"))) == 1
    assert not (proj / "models").exists()

    again = detect(proj, walking_pair, "--model", person_model, "--classes", "all",
                   "--backend", "openvino")
    assert again.exit_code == 0
    assert "already detected with these settings" in again.output
    other = detect(proj, walking_pair, "--model", person_model, "--classes", "all",
                   "--backend", "openvino", "--conf", "0.3")
    assert other.exit_code == 1 and "detect.conf 0.1 -> 0.3" in other.output
    assert stored(proj)[1].frame.tolist() == det.frame.tolist()  # nothing lost


def test_interrupted_run_resumes_to_identical_result(tmp_path, walking_pair, person_model):
    args = (walking_pair, "--model", person_model, "--classes", "all", "--backend", "torch",
            "--batch", "4", "--max-frames", "20")
    whole = detect(tmp_path / "whole", *args)
    assert whole.exit_code == 0, whole.output
    cut = detect(tmp_path / "cut", *args, env={"PTRACK_FAULT_AFTER_BATCHES": "2"})
    assert cut.exit_code == 130
    assert "run the same command again to resume" in cut.output
    part = stored(tmp_path / "cut")[1]
    assert part.frame.max() < 8  # two batches of four frames were committed
    resumed = detect(tmp_path / "cut", *args)
    assert resumed.exit_code == 0, resumed.output
    assert "resumed at frame 8" in resumed.output
    a, b = stored(tmp_path / "whole"), stored(tmp_path / "cut")
    assert a[1].frame.tolist() == b[1].frame.tolist() and a[1].det.tolist() == b[1].det.tolist()
    np.testing.assert_allclose(a[1].xyxy, b[1].xyxy, atol=1e-3)
    np.testing.assert_allclose(a[1].conf, b[1].conf, atol=1e-4)
    assert a[2] == b[2]  # same crops keys


def test_random_weights_model_exercises_the_loop(tmp_path, walking_pair, random_model):
    result = detect(tmp_path / "p", walking_pair, "--model", random_model, "--classes", "all",
                    "--conf", "0.0", "--backend", "torch", "--max-frames", "6", "--stride", "2")
    assert result.exit_code == 0, result.output
    video, det, keys, crops, ok = stored(tmp_path / "p")
    assert sorted(set(det.frame.tolist())) == [0, 2, 4]  # stride 2 over 6 frames
    assert len(det) == 3 * 100  # max_det boxes per frame at conf 0
    assert len(keys) == len(det) and all(c for c in crops)


# ------------------------------------------------------- issue 10: nothing lost before new work


def project_state(project: Path):
    """Everything a user would lose: detections, crop keys, persons, stage states."""
    if not (project / "ptrack.db").exists():
        return None
    with Store.open(project, create=False) as store:
        out = []
        for v in store.videos():
            d = store.detections(v.id)
            out.append((v.name, d.frame.tolist(), d.xyxy.tolist(), store.crop_keys(v.id),
                        [(p["id"], p["rank"]) for p in store.persons(v.id)],
                        [store.stage_state(v.id, s) for s in ("detect", "track", "group", "rank")]))
        return out


@pytest.mark.parametrize("option, value, message", [
    ("--conf", "-1", "--conf must be in [0, 1], got -1.0"),
    ("--conf", "2", "--conf must be in [0, 1], got 2.0"),
    ("--imgsz", "0", "--imgsz must be in [32, 8192], got 0"),
    ("--imgsz", "33", "--imgsz must be a multiple of 32, got 33"),
    ("--imgsz", "-640", "--imgsz must be in [32, 8192], got -640"),
    ("--imgsz", "100000", "--imgsz must be in [32, 8192], got 100000"),
    ("--backend", "tpu", "--backend 'tpu': must be auto, torch or openvino"),
    ("--device", "gpu7", "--device 'gpu7': must be auto, cpu, cuda or cuda:N"),
])
def test_bad_option_is_refused_before_the_video_is_registered(tmp_path, walking_pair, option,
                                                              value, message):
    proj = tmp_path / "p"
    result = detect(proj, walking_pair, "--model", "pkg:fall_detection/models/best.pt",
                    "--classes", "all", option, value)
    assert result.exit_code == 2, result.output
    assert result.output.strip() == f"Error: {message}" or (
        result.output.startswith(f"Error: {message}") and len(result.output.splitlines()) == 1)
    assert project_state(proj) in (None, [])  # no video registered, no run recorded


def _first_walk(proj: Path, walking_pair: Path, person_model: Path) -> list:
    args = (walking_pair, "--model", person_model, "--classes", "all", "--backend", "torch",
            "--max-frames", "6", "--batch", "3", "--imgsz", "320")
    assert detect(proj, *args).exit_code == 0
    assert runner.invoke(app, ["--project", str(proj), "rank"]).exit_code == 0
    state = project_state(proj)
    assert state[0][4] and state[0][5] == ["done"] * 4 and state[0][3]  # persons, all done
    return list(args)


def test_force_on_a_missing_device_keeps_old_results(tmp_path, walking_pair, person_model):
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    proj = tmp_path / "p"
    args = _first_walk(proj, walking_pair, person_model)
    before = project_state(proj)
    result = detect(proj, *args, "--force", "--device", "cuda:0")
    assert result.exit_code == 1
    assert result.output.strip() == ("Error: device 'cuda:0' asked for, but no CUDA GPU is "
                                     "available")
    assert project_state(proj) == before


def test_force_failing_before_its_first_batch_keeps_old_results(tmp_path, walking_pair,
                                                               person_model, monkeypatch):
    from ptrack.detect.torch_backend import TorchDetector as Detector

    proj = tmp_path / "p"
    args = _first_walk(proj, walking_pair, person_model)
    before = project_state(proj)

    def oom(self, frames):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(Detector, "__call__", oom)
    result = detect(proj, *args, "--force")
    assert result.exit_code == 1 and "out of memory" in result.output
    assert project_state(proj) == before  # no failed run left, persons still 'done'
    new = detect(tmp_path / "fresh", *args)  # a first detect failing: nothing created
    assert new.exit_code == 1
    assert project_state(tmp_path / "fresh") is None and not (tmp_path / "fresh").exists()


def test_crop_store_grows_past_its_initial_map_through_force_and_resume(tmp_path, walking_pair,
                                                                        random_model):
    cfg = tmp_path / "small-map.yaml"
    cfg.write_text("crops:\n  initial_map_mb: 1\n  quality: 100\n")
    proj = tmp_path / "p"
    args = ["--project", str(proj), "--config", str(cfg), "detect", str(walking_pair), "--model",
            str(random_model), "--classes", "all", "--conf", "0.0", "--backend", "torch",
            "--max-frames", "8", "--batch", "2", "--imgsz", "320"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    _, det, keys, crops, ok = stored(proj)
    assert ok and len(keys) == len(det) == 800
    assert sum(map(len, crops)) > 4 << 20  # over four times the initial 1 MiB map
    forced = runner.invoke(app, [*args, "--force"])
    assert forced.exit_code == 0, forced.output
    cut = runner.invoke(app, [*args, "--force"], env={"PTRACK_FAULT_AFTER_BATCHES": "2"})
    assert cut.exit_code == 130, cut.output
    resumed = runner.invoke(app, args)
    assert resumed.exit_code == 0 and "resumed at frame 4" in resumed.output, resumed.output
    _, again, keys2, crops2, ok2 = stored(proj)
    assert ok2 and again.frame.tolist() == det.frame.tolist() and keys2 == keys
    assert [len(c) for c in crops2] == [len(c) for c in crops]
    with Store.open(proj, create=False) as store:
        assert store.integrity().ok
