"""Settings: loading, validating and freezing them.

Loading: the shipped ``ptrack/default.yaml`` overlaid by a user file and by command flags.

Every tunable value lives in the default file with a one-line comment; ``configs/default.yaml``
is the documented copy of it (a test keeps the two identical). A user file may hold any subset
of the same layout; unknown keys, wrong types, NaN/infinity and out-of-range values raise
:class:`PtrackError` naming the key (the checks are this module's). YAML anchors and
aliases are refused, so an alias bomb costs nothing. The result is a plain nested dict
(JSON-serialisable, stored with each run); :meth:`Settings.from_dict` turns it
into the frozen objects the stages and algorithms take.

Freezing: frozen, validated settings, one dataclass per section of ``default.yaml``.

:func:`load_config` builds the nested plain dict (stored with runs, compared as
JSON); :meth:`Settings.from_dict` turns it into these objects, which the stages and the pure
algorithms take (``group_tracklets(..., settings=s.group)``). Field names equal the YAML keys,
and a test checks that every YAML key has a field and every field a YAML key. Each numeric
field carries its allowed range; NaN and infinity are always rejected. Errors name the key.

Example::

    s = Settings.from_dict(load_config("my.yaml"))
    g = defaults().group.replace(max_gap_s=4.0)   # tests: shipped defaults plus overrides
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml

from ptrack.errors import PtrackError

INF = math.inf
MAX_SECONDS = 1e6
"""Largest duration a setting may hold (11.6 days): durations become frame counts and the
rank's exponentials, where 1e300 overflowed."""
MAX_COUNT = 10**9
"""Largest count (frames, strides) a setting may hold."""
MAX_VALUE = 1e6
"""Largest value of an unbounded weight, tolerance or cost."""


def _range(lo: float = -INF, hi: float = INF, *, lo_open: bool = False, multiple: int = 0):
    """A field whose value must lie in [lo, hi] (``lo_open``: (lo, hi])."""
    return field(metadata={"range": (lo, hi, lo_open, multiple)})


class _Section:
    """Validation and copying shared by the section dataclasses."""

    SECTION = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            _check(f"{self.SECTION}.{f.name}", getattr(self, f.name), f)

    def replace(self, **changes: Any):
        """A validated copy with ``changes`` (unknown names are errors)."""
        names = {f.name for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        unknown = sorted(set(changes) - names)
        if unknown:
            raise PtrackError(f"unknown {self.SECTION} setting(s): {', '.join(unknown)}")
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if f.name in changes and f.type in ("float", float) and isinstance(changes[f.name], int) \
                    and not isinstance(changes[f.name], bool):
                changes[f.name] = float(changes[f.name])
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def as_dict(self) -> dict[str, Any]:
        """The section as a plain dict (same keys as the YAML)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]


def _check(key: str, value: Any, f: dataclasses.Field) -> None:
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    if kind == "bool":
        if not isinstance(value, bool):
            raise PtrackError(f"config key '{key}' must be a boolean, got {value!r}")
        return
    if kind == "str":
        if not isinstance(value, str):
            raise PtrackError(f"config key '{key}' must be a string, got {value!r}")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PtrackError(f"config key '{key}' must be a number, got {value!r}")
    if kind == "int" and not isinstance(value, int):
        raise PtrackError(f"config key '{key}' must be an integer, got {value!r}")
    if not math.isfinite(value):
        raise PtrackError(f"config key '{key}' must be a finite number, got {value!r}")
    lo, hi, lo_open, multiple = f.metadata.get("range", (-INF, INF, False, 0))
    if (value <= lo if lo_open else value < lo) or value > hi:
        left = "(" if lo_open else "["
        raise PtrackError(f"config key '{key}' must be in {left}{_num(lo)}, {_num(hi)}], got {value!r}")
    if multiple and value % multiple:
        raise PtrackError(f"config key '{key}' must be a multiple of {multiple}, got {value!r}")


def _num(x: float) -> str:
    if x == INF:
        return "inf"
    return str(int(x)) if float(x).is_integer() else str(x)


@dataclass(frozen=True)
class DetectSettings(_Section):
    """``detect:`` — the detector run (see ``default.yaml`` for each key's effect)."""

    SECTION = "detect"
    model: str = _range()
    conf: float = _range(0.0, 1.0)
    iou: float = _range(0.0, 1.0)
    imgsz: int = _range(32, 8192, multiple=32)  # YOLO's largest stride is 32
    classes: str = _range()
    backend: str = _range()
    device: str = _range()
    batch: int = _range(0, 4096)  # 0 = auto (detector.batch_size)
    stride: int = _range(1, MAX_COUNT)
    max_frames: int = _range(0, MAX_COUNT)
    max_det: int = _range(1, 100_000)
    precision: str = _range()
    ov_hint: str = _range()
    int8_min_frames: int = _range(0, MAX_COUNT)
    int8_calib_frames: int = _range(1, 100_000)
    int8_gate_frames: int = _range(1, 100_000)
    int8_min_agree: float = _range(0.0, 1.0)
    int8_min_tight: float = _range(0.0, 1.0)
    int8_min_median_iou: float = _range(0.0, 1.0)
    int8_max_conf_shift: float = _range(0.0, 1.0)


@dataclass(frozen=True)
class CropSettings(_Section):
    """``crops:`` — stored person crops."""

    SECTION = "crops"
    height: int = _range(8, 4096)
    width: int = _range(8, 4096)
    quality: int = _range(1, 100)
    initial_map_mb: int = _range(1, 1 << 20)


@dataclass(frozen=True)
class TrackSettings(_Section):
    """``track:`` — ByteTrack. Attribute names equal the YAML keys (``ptrack.persons.track`` relies on it)."""

    SECTION = "track"
    track_high_thresh: float = _range(0.0, 1.0)
    track_low_thresh: float = _range(0.0, 1.0)
    new_track_thresh: float = _range(0.0, 1.0)
    track_buffer_s: float = _range(0.0, MAX_SECONDS)
    match_thresh: float = _range(0.0, 1.0)
    fuse_score: bool = _range()
    split_gap_s: float = _range(0.0, MAX_SECONDS)
    conf_reference_q: float = _range(0.0, 1.0)
    bidirectional: bool = _range()
    height_boost_max: float = _range(1.0, 10.0)
    rescue: float = _range(0.0, 1.0)


@dataclass(frozen=True)
class GroupSettings(_Section):
    """``group:`` — joining tracklets into persons (``ptrack.persons.group``)."""

    SECTION = "group"
    motion_max_gap_s: float = _range(0.0, MAX_SECONDS)
    max_gap_s: float = _range(0.0, MAX_SECONDS)
    handover_s: float = _range(0.0, MAX_SECONDS)
    vel_window_s: float = _range(0.0, MAX_SECONDS)
    max_speed: float = _range(0.0, MAX_VALUE, lo_open=True)
    pos_noise: float = _range(0.0, MAX_VALUE)
    pos_tol: float = _range(0.0, MAX_VALUE)
    pos_tol_per_s: float = _range(0.0, MAX_VALUE)
    scale_tol: float = _range(0.0, MAX_VALUE)
    scale_tol_per_s: float = _range(0.0, MAX_VALUE)
    gap_cost_per_s: float = _range(0.0, MAX_VALUE)
    no_link_cost: float = _range(0.0, MAX_VALUE)
    app_max: float = _range(0.0, 1.0)
    app_strong: float = _range(0.0, 1.0)
    app_weight: float = _range(0.0, MAX_VALUE)
    interp_max_s: float = _range(0.0, MAX_SECONDS)
    n_rounds: int = _range(1, 100)
    use_appearance: bool = _range()
    appearance_samples: int = _range(1, 1000)
    appearance: str = _range()
    embed_samples: int = _range(2, 1000)
    suggest_loosen: float = _range(1.0, 10.0)
    suggest_max_gap_s: float = _range(0.0, MAX_SECONDS)
    cover_max: float = _range(0.0, 1.0)
    cluster_max: float = _range(0.0, 1.0)
    cluster_margin: float = _range(0.0, 1.0)

    APPEARANCES = ("hsv", "combo")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.appearance not in self.APPEARANCES:
            raise PtrackError(f"config key 'group.appearance' must be one of "
                              f"{', '.join(self.APPEARANCES)}, got {self.appearance!r}")


@dataclass(frozen=True)
class RankSettings(_Section):
    """``rank:`` — the person score's weights."""

    SECTION = "rank"
    w_duration: float = _range(0.0, MAX_VALUE)
    w_coverage: float = _range(0.0, MAX_VALUE)
    w_size: float = _range(0.0, MAX_VALUE)
    w_centrality: float = _range(0.0, MAX_VALUE)
    w_confidence: float = _range(0.0, MAX_VALUE)
    size_full: float = _range(0.0, 1.0, lo_open=True)
    quality_share: float = _range(0.0, 1.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.weights().sum() <= 0:
            raise PtrackError("config keys 'rank.w_*': at least one rank weight must be positive")

    def weights(self):
        """The component weights in ``ptrack.persons.rank.COMPONENTS`` order (float64 array)."""
        import numpy as np

        return np.array([self.w_duration, self.w_coverage, self.w_size, self.w_centrality,
                         self.w_confidence], dtype=np.float64)


@dataclass(frozen=True)
class PoseSettings(_Section):
    """``pose:`` — keypoints of chosen persons (``ptrack.pose``)."""

    SECTION = "pose"
    model: str = _range()
    pad: float = _range(0.0, 2.0)
    imgsz: int = _range(64, 2048, multiple=32)
    conf: float = _range(0.0, 1.0)
    iou: float = _range(0.0, 1.0)
    min_iou: float = _range(0.0, 1.0)
    kpt_conf: float = _range(0.0, 1.0)
    batch: int = _range(1, 4096)
    backend: str = _range()
    device: str = _range()
    precision: str = _range()


SECTIONS: dict[str, type] = {"detect": DetectSettings, "crops": CropSettings,
                             "track": TrackSettings, "group": GroupSettings, "rank": RankSettings,
                             "pose": PoseSettings}


@dataclass(frozen=True)
class Settings:
    """Every section, validated."""

    detect: DetectSettings
    crops: CropSettings
    track: TrackSettings
    group: GroupSettings
    rank: RankSettings
    pose: PoseSettings

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> "Settings":
        """Settings from the nested dict :func:`ptrack.settings.load_config` returns.

        Raises:
            PtrackError: A missing or unknown section or key, a wrong type, NaN/infinity or a
                value out of range; the message names the key.
        """
        if not isinstance(cfg, Mapping):
            raise PtrackError("settings must be a mapping of sections")
        unknown = sorted(set(cfg) - set(SECTIONS))
        if unknown:
            raise PtrackError(f"unknown config key '{unknown[0]}'")
        parts = {}
        for name, kind in SECTIONS.items():
            section = cfg.get(name)
            if not isinstance(section, Mapping):
                raise PtrackError(f"config key '{name}' must be a mapping")
            names = [f.name for f in dataclasses.fields(kind)]
            extra = sorted(set(section) - set(names))
            if extra:
                raise PtrackError(f"unknown config key '{name}.{extra[0]}'")
            missing = [n for n in names if n not in section]
            if missing:
                raise PtrackError(f"config key '{name}.{missing[0]}' is missing")
            parts[name] = kind(**section)
        return cls(**parts)

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """The nested plain dict (the inverse of :meth:`from_dict`)."""
        return {name: getattr(self, name).as_dict() for name in SECTIONS}


@functools.lru_cache(maxsize=1)
def defaults() -> Settings:
    """The shipped defaults (``ptrack/default.yaml``), loaded once."""
    return Settings.from_dict(load_defaults())


# libyaml's parser where PyYAML has it (10-20x faster than the pure-Python one, the same events)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

DEFAULT_NAME = "default.yaml"
"""The defaults, shipped inside the package (``importlib.resources``): a wheel has them too."""
MAX_CONFIG_BYTES = 1 << 20
"""Largest config file read: the full default file is under 8 KB."""


def _default_file():
    return resources.files("ptrack").joinpath(DEFAULT_NAME)


MAX_NESTING = 32
"""Deepest ``[``/``{`` nesting read: PyYAML's scanner is quadratic in it (5,000 levels take minutes)."""


def _flow_depth(text: str) -> int:
    """An upper bound of the ``[``/``{`` nesting: every bracket counts, quoted or not (a config
    has no reason to hold 32 unclosed brackets, and skipping quotes could be fooled)."""
    depth = deepest = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth = max(depth - 1, 0)
    return deepest


def _parse(text: str, where: str) -> Any:
    """YAML text to data, refusing anchors/aliases (an alias bomb expands exponentially)."""
    if _flow_depth(text) > MAX_NESTING:
        raise PtrackError(f"config file {where} is nested more than {MAX_NESTING} levels deep")
    try:
        for event in yaml.parse(text, Loader=_LOADER):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                mark = event.start_mark
                raise PtrackError(f"config file {where} line {mark.line + 1} uses a YAML anchor or "
                                  f"alias (& or *); write the values out")
        return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise PtrackError(f"config file {where}{line} is not valid YAML") from None
    except RecursionError:
        raise PtrackError(f"config file {where} is nested too deeply") from None


def _read_yaml(path: Path) -> Any:
    import stat

    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
            raise PtrackError(f"config file {path} is not a regular file (a pipe, device or "
                              f"socket); give a file")
        if st.st_size > MAX_CONFIG_BYTES:
            raise PtrackError(f"config file {path} is larger than {MAX_CONFIG_BYTES >> 20} MB; "
                              f"a ptrack config is a few KB")
        with path.open("rb") as f:  # at most the limit, whatever the file grows to meanwhile
            text = f.read(MAX_CONFIG_BYTES + 1).decode("utf-8")
        if len(text) > MAX_CONFIG_BYTES:
            raise PtrackError(f"config file {path} is larger than {MAX_CONFIG_BYTES >> 20} MB; "
                              f"a ptrack config is a few KB")
    except FileNotFoundError:
        raise PtrackError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise PtrackError(f"config path is a directory, not a file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PtrackError(f"cannot read config file {path}: {exc}") from None
    return _parse(text, str(path))


def load_defaults() -> dict[str, Any]:
    """The shipped defaults as a nested dict (a fresh copy: callers may change it)."""
    return copy.deepcopy(_shipped_defaults())


def default_value(section: str, key: str) -> Any:
    """One shipped default (for help texts), without copying the whole settings."""
    return copy.deepcopy(_shipped_defaults()[section][key])


@functools.lru_cache(maxsize=1)
def _shipped_defaults() -> dict[str, Any]:
    """The shipped file parsed once per process (``--help`` reads it for every option)."""
    try:
        text = _default_file().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PtrackError(f"the default settings shipped with ptrack cannot be read: {exc}") from None
    data = _parse(text, f"ptrack/{DEFAULT_NAME}")
    if not isinstance(data, dict):
        raise PtrackError(f"the default settings ptrack/{DEFAULT_NAME} are damaged")
    return data


def _type_ok(default: Any, value: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, list):
        return isinstance(value, list)
    if default is None:
        return True
    return isinstance(value, type(default))


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
            dict: "mapping"}.get(type(value), type(value).__name__)


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def overlay(base: Mapping[str, Any], extra: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Return ``base`` updated with ``extra``, checking keys and types against ``base``."""
    out = copy.deepcopy(dict(base))
    if not isinstance(extra, Mapping):
        raise PtrackError(f"config {prefix or 'file'} must be a mapping of keys to values")
    for key, value in extra.items():
        name = f"{prefix}{key}"
        if key not in out:
            known = ", ".join(sorted(str(k) for k in out))
            raise PtrackError(f"unknown config key '{name}' (known here: {known})")
        default = out[key]
        if isinstance(default, dict):
            if not isinstance(value, Mapping):
                raise PtrackError(f"config key '{name}' must be a mapping, got {_type_name(value)}")
            out[key] = overlay(default, value, prefix=f"{name}.")
        elif not _type_ok(default, value):
            raise PtrackError(
                f"config key '{name}' must be {_a(_type_name(default))}, got {_type_name(value)} {value!r}"
            )
        else:
            out[key] = float(value) if isinstance(default, float) else value
    return out


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Defaults, then the user file at ``path``, then ``overrides`` (``{"detect": {"conf": 0.2}}``).

    The result is validated as a whole (:class:`ptrack.settings.Settings`) before it is returned.
    """
    return project_config(None, path, overrides)  # validated: one-line errors naming the key


def canonical_json(settings: Mapping[str, Any]) -> str:
    """Stable JSON text for storing settings and comparing runs."""
    return json.dumps(settings, sort_keys=True, separators=(",", ":"))


# --------------------------------------------------------------------- project settings
# A project keeps its own settings: the keys in which they differ from the shipped defaults (a
# nested "overlay", stored in the project). Every command reads defaults + project settings (+
# ``--config`` + flags for the stage commands), so a later ``ptrack list`` does not undo a
# ``ptrack --config my.yaml group``.

NOT_KEPT = {("detect", "batch")}
"""Keys a stage's settings do not hand on to the project: they decide no result."""


def project_config(project: Mapping[str, Any] | None, path: str | Path | None = None,
                   overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Defaults, then the project's settings, then a ``--config`` file and flags: what a stage
    of this project runs with. A damaged stored overlay (a key this version does not know, a
    value out of range) is an error naming the key and the way out (``ptrack config unset``)."""
    base = load_defaults()
    if project:
        try:
            base = overlay(base, project)
            Settings.from_dict(base)
        except PtrackError as exc:
            raise PtrackError(f"the project's settings are not valid here: {exc.message}; see "
                              f"`ptrack config show`, fix with `ptrack config unset KEY` or "
                              f"`ptrack config reset`") from None
    if path is not None:
        data = _read_yaml(Path(path))
        if data is not None:
            base = overlay(base, data)
    if overrides:
        clean = {s: {k: v for k, v in sec.items() if v is not None} for s, sec in overrides.items()}
        base = overlay(base, clean)
    Settings.from_dict(base)
    return base


def differences(cfg: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The keys of ``cfg`` whose values differ from the shipped defaults (nested, sorted),
    leaving out :data:`NOT_KEPT`: the overlay a project stores.

    >>> differences(load_config(overrides={"group": {"pos_tol": 0.25}}))
    {'group': {'pos_tol': 0.25}}
    """
    base = _shipped_defaults()
    out: dict[str, dict[str, Any]] = {}
    for section in sorted(cfg):
        for key in sorted(cfg[section]):
            if (section, key) in NOT_KEPT:
                continue
            if base.get(section, {}).get(key) != cfg[section][key]:
                out.setdefault(section, {})[key] = cfg[section][key]
    return out


def flat(overlay_: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``{"group.pos_tol": 0.25}`` from ``{"group": {"pos_tol": 0.25}}``."""
    return {f"{s}.{k}": v for s, sec in overlay_.items() for k, v in sec.items()}


def split_key(key: str) -> tuple[str, str]:
    """``group.pos_tol`` -> ``("group", "pos_tol")``; an unknown key is a usage error (exit 2)
    naming the keys of its section (or the sections)."""
    base = _shipped_defaults()
    section, _, name = key.partition(".")
    if section not in base:
        raise PtrackError(f"unknown setting '{key}'; keys are SECTION.KEY with SECTION one of "
                          f"{', '.join(base)} (see `ptrack config show`)", exit_code=2)
    if name not in base[section]:
        raise PtrackError(f"unknown setting '{key}'; {section} keys: "
                          f"{', '.join(base[section])}", exit_code=2)
    return section, name


def parse_value(key: str, text: str) -> Any:
    """A value typed on the command line, read as YAML (``0.25``, ``true``, ``yolov8n.pt``) and
    converted to the key's type; a wrong type or range is a usage error naming the key."""
    section, name = split_key(key)
    default = _shipped_defaults()[section][name]
    if isinstance(default, str):
        return text  # a string key takes the text as typed (a model named "1.pt" stays a name)
    try:
        value = yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError:
        value = text
    if not _type_ok(default, value):
        raise PtrackError(f"{key} must be {_a(_type_name(default))}, got {text!r}", exit_code=2)
    return float(value) if isinstance(default, float) else value
