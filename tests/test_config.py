from pathlib import Path

import pytest

from ptrack.config import canonical_json, load_config, load_defaults, overlay
from ptrack.errors import PtrackError


def test_defaults_have_every_section():
    cfg = load_defaults()
    assert cfg["detect"]["model"] == "yolov8s.pt"
    assert cfg["detect"]["conf"] == pytest.approx(0.1)
    assert cfg["crops"] == {"height": 256, "width": 128, "quality": 90, "initial_map_mb": 64}


def test_default_file_comments_every_key():
    from ptrack.config import _default_file

    for line in _default_file().read_text().splitlines():
        if line.startswith("  ") and ":" in line and not line.strip().startswith("#"):
            assert "#" in line, f"key without a comment: {line.strip()}"


def test_file_then_flags_override(tmp_path: Path):
    f = tmp_path / "c.yaml"
    f.write_text("detect:\n  conf: 0.3\n  imgsz: 320\ncrops:\n  quality: 70\n")
    cfg = load_config(f, {"detect": {"imgsz": 480, "conf": None}})
    assert cfg["detect"]["conf"] == pytest.approx(0.3)
    assert cfg["detect"]["imgsz"] == 480
    assert cfg["crops"]["quality"] == 70
    assert cfg["crops"]["height"] == 256


def test_int_is_accepted_for_float_and_stored_as_float():
    cfg = overlay(load_defaults(), {"detect": {"conf": 1}})
    assert isinstance(cfg["detect"]["conf"], float)


@pytest.mark.parametrize("text, message", [
    ("detect:\n  confidence: 0.3\n", "unknown config key 'detect.confidence'"),
    ("detecto:\n  conf: 0.3\n", "unknown config key 'detecto'"),
    ("detect:\n  conf: high\n", "config key 'detect.conf' must be a number"),
    ("detect:\n  imgsz: 640.5\n", "config key 'detect.imgsz' must be an integer"),
    ("detect: 3\n", "config key 'detect' must be a mapping"),
    ("crops:\n  quality: true\n", "config key 'crops.quality' must be an integer"),
    ("- a\n- b\n", "must be a mapping"),
    ("detect: [\n", "is not valid YAML"),
])
def test_bad_config_names_the_key(tmp_path: Path, text: str, message: str):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(PtrackError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_config(f)


def test_missing_config_file(tmp_path: Path):
    with pytest.raises(PtrackError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_canonical_json_is_order_independent():
    assert canonical_json({"b": 1, "a": {"d": 2, "c": 3}}) == canonical_json({"a": {"c": 3, "d": 2}, "b": 1})
