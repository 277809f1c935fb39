"""Settings: the shipped ``ptrack/default.yaml`` overlaid by a user file and by command flags.

Every tunable value lives in the default file with a one-line comment; ``configs/default.yaml``
is the documented copy of it (a test keeps the two identical). A user file may hold any subset
of the same layout; unknown keys, wrong types, NaN/infinity and out-of-range values raise
:class:`PtrackError` naming the key (the checks are :mod:`ptrack.settings`'). YAML anchors and
aliases are refused, so an alias bomb costs nothing. The result is a plain nested dict
(JSON-serialisable, stored with each run); :meth:`ptrack.settings.Settings.from_dict` turns it
into the frozen objects the stages and algorithms take.
"""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml

from ptrack.errors import PtrackError

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
    try:
        if path.is_file() and path.stat().st_size > MAX_CONFIG_BYTES:
            raise PtrackError(f"config file {path} is larger than {MAX_CONFIG_BYTES >> 20} MB; "
                              f"a ptrack config is a few KB")
        text = path.read_text(encoding="utf-8")
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
    from ptrack.settings import Settings

    settings = load_defaults()
    if path is not None:
        data = _read_yaml(Path(path))
        if data is not None:
            settings = overlay(settings, data)
    if overrides:
        clean = {s: {k: v for k, v in sec.items() if v is not None} for s, sec in overrides.items()}
        settings = overlay(settings, clean)
    Settings.from_dict(settings)  # types, ranges, NaN/infinity: one-line errors naming the key
    return settings


def canonical_json(settings: Mapping[str, Any]) -> str:
    """Stable JSON text for storing settings and comparing runs."""
    return json.dumps(settings, sort_keys=True, separators=(",", ":"))
