"""Settings: ``configs/default.yaml`` overlaid by a user file and by command flags.

Every tunable value lives in the default file with a one-line comment. A user file may hold
any subset of the same layout; unknown keys and wrong types raise :class:`PtrackError` naming
the key. The result is a plain nested dict (JSON-serialisable, stored with each run).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Mapping

import yaml

from ptrack.errors import PtrackError

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"
_PACKAGED = Path(__file__).resolve().parent / "default.yaml"


def _default_file() -> Path:
    # Source checkout: configs/default.yaml; installed wheel: the copy shipped inside the package.
    return DEFAULT_PATH if DEFAULT_PATH.exists() else _PACKAGED


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PtrackError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise PtrackError(f"config path is a directory, not a file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PtrackError(f"cannot read config file {path}: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        raise PtrackError(f"config file {path}{line} is not valid YAML") from None


def load_defaults() -> dict[str, Any]:
    """The shipped defaults as a nested dict."""
    data = _read_yaml(_default_file())
    if not isinstance(data, dict):
        raise PtrackError(f"default config {_default_file()} is damaged")
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
    """Defaults, then the user file at ``path``, then ``overrides`` (``{"detect": {"conf": 0.2}}``)."""
    settings = load_defaults()
    if path is not None:
        data = _read_yaml(Path(path))
        if data is not None:
            settings = overlay(settings, data)
    if overrides:
        clean = {s: {k: v for k, v in sec.items() if v is not None} for s, sec in overrides.items()}
        settings = overlay(settings, clean)
    return settings


def canonical_json(settings: Mapping[str, Any]) -> str:
    """Stable JSON text for storing settings and comparing runs."""
    return json.dumps(settings, sort_keys=True, separators=(",", ":"))
