from pathlib import Path

import pytest

from ptrack.settings import canonical_json, load_config, load_defaults, overlay
from ptrack.errors import PtrackError


def test_defaults_have_every_section():
    cfg = load_defaults()
    assert cfg["detect"]["model"] == "yolov8s.pt"
    assert cfg["detect"]["conf"] == pytest.approx(0.1)
    assert cfg["crops"] == {"height": 256, "width": 128, "quality": 90, "initial_map_mb": 64}


def test_default_file_comments_every_key():
    from ptrack.settings import _default_file

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


# ------------------------------------------------------------------- shipped defaults, Settings
REPO = Path(__file__).resolve().parents[1]


def test_packaged_defaults_equal_the_documented_copy():
    # ptrack/default.yaml is what ptrack reads (it ships in the wheel); configs/default.yaml is
    # the documented copy: the two must be byte-identical
    assert (REPO / "ptrack" / "default.yaml").read_bytes() == (REPO / "configs" / "default.yaml").read_bytes()


def test_defaults_are_read_from_the_package():
    from importlib import resources

    from ptrack.settings import _default_file

    assert _default_file() == resources.files("ptrack").joinpath("default.yaml")
    assert "default.yaml" in (REPO / "pyproject.toml").read_text()


def test_every_yaml_key_is_a_settings_field_and_back():
    import dataclasses

    from ptrack.settings import SECTIONS, Settings, defaults

    cfg = load_defaults()
    assert set(cfg) == set(SECTIONS)
    for name, kind in SECTIONS.items():
        assert [f.name for f in dataclasses.fields(kind)] == list(cfg[name]), name
    assert defaults().as_dict() == cfg
    assert Settings.from_dict(cfg) == defaults()


def test_settings_are_frozen_and_replace_validates():
    import dataclasses

    from ptrack.settings import defaults

    g = defaults().group
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.max_gap_s = 1.0  # type: ignore[misc]
    assert g.replace(max_gap_s=4).max_gap_s == 4.0
    with pytest.raises(PtrackError, match="'group.max_gap_s' must be in"):
        g.replace(max_gap_s=-1.0)
    with pytest.raises(PtrackError, match="unknown group setting"):
        g.replace(max_gap=3)


def test_track_settings_attributes_are_the_yaml_keys():
    from ptrack.settings import defaults

    t = defaults().track
    for key, value in load_defaults()["track"].items():
        assert getattr(t, key) == value


# ---------------------------------------------------------------------- hostile configuration
BOMB = """a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_yaml_alias_bomb_is_refused(tmp_path: Path):
    f = tmp_path / "bomb.yaml"
    f.write_text(BOMB)
    assert len(BOMB) < 1024
    with pytest.raises(PtrackError, match="line 1 uses a YAML anchor or alias"):
        load_config(f)


def test_even_a_harmless_alias_is_refused(tmp_path: Path):
    f = tmp_path / "alias.yaml"
    f.write_text("detect:\n  conf: &c 0.3\n  iou: *c\n")
    with pytest.raises(PtrackError, match="line 2 uses a YAML anchor"):
        load_config(f)


def test_huge_or_deeply_nested_config_is_refused(tmp_path: Path):
    f = tmp_path / "huge.yaml"
    f.write_text("# " + "x" * (2 << 20) + "\n")
    with pytest.raises(PtrackError, match="larger than 1 MB"):
        load_config(f)
    f.write_text("detect: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(PtrackError, match="nested more than 32 levels deep"):
        load_config(f)


@pytest.mark.parametrize("text, key", [
    ("rank:\n  w_duration: .nan\n", "rank.w_duration"),
    ("rank:\n  w_size: .inf\n", "rank.w_size"),
    ("group:\n  max_gap_s: -.inf\n", "group.max_gap_s"),
    ("track:\n  match_thresh: .NaN\n", "track.match_thresh"),
    ("detect:\n  conf: .nan\n", "detect.conf"),
])
def test_nan_and_infinity_are_refused_naming_the_key(tmp_path: Path, text: str, key: str):
    f = tmp_path / "nan.yaml"
    f.write_text(text)
    with pytest.raises(PtrackError, match=f"config key '{key}' must be a finite number"):
        load_config(f)


@pytest.mark.parametrize("section, key, value", [
    ("detect", "conf", -1.0), ("detect", "conf", 2.0), ("detect", "iou", 1.5),
    ("detect", "imgsz", 0), ("detect", "imgsz", -640), ("detect", "imgsz", 100000),
    ("detect", "batch", -1), ("detect", "stride", 0), ("detect", "max_frames", -1),
    ("crops", "quality", 0), ("crops", "quality", 101), ("crops", "height", 0),
    ("track", "track_buffer_s", -1.0), ("track", "split_gap_s", -0.5),
    ("track", "track_high_thresh", 1.5), ("group", "max_gap_s", -1.0),
    ("group", "interp_max_s", -2.0), ("group", "app_max", 1.5), ("group", "n_rounds", 0),
    ("group", "appearance_samples", 0), ("rank", "w_duration", -1.0), ("rank", "size_full", 0.0),
])
def test_out_of_range_values_name_the_key(section: str, key: str, value):
    with pytest.raises(PtrackError, match=f"config key '{section}.{key}' must be in"):
        load_config(None, {section: {key: value}})


def test_imgsz_must_be_a_multiple_of_the_stride():
    with pytest.raises(PtrackError, match="'detect.imgsz' must be a multiple of 32"):
        load_config(None, {"detect": {"imgsz": 33}})
    assert load_config(None, {"detect": {"imgsz": 320}})["detect"]["imgsz"] == 320


def test_all_zero_rank_weights_are_refused(tmp_path: Path):
    f = tmp_path / "zero.yaml"
    f.write_text("rank:\n" + "".join(f"  w_{c}: 0\n" for c in
                                     ("duration", "coverage", "size", "centrality", "confidence")))
    with pytest.raises(PtrackError, match="at least one rank weight must be positive"):
        load_config(f)


def test_load_defaults_hands_out_a_fresh_copy_each_time():
    from ptrack.settings import load_defaults

    first = load_defaults()
    first["detect"]["conf"] = 0.99
    first["group"].clear()
    again = load_defaults()
    assert again["detect"]["conf"] != 0.99 and again["group"]
