"""Help that reads well, ``--version``, completion, ``config show`` and global options after
the command (issue 12, "Reading well")."""

from __future__ import annotations

import json

import pytest
import typer.main
import yaml
from typer.testing import CliRunner

from ptrack import __version__
from ptrack.cli import app
from ptrack.settings import load_config, load_defaults
from ptrack.store import Store

runner = CliRunner()


def _commands() -> list[list[str]]:
    root = typer.main.get_command(app)
    out = []
    for name, cmd in root.commands.items():
        subs = getattr(cmd, "commands", None)
        if subs:
            out += [[name, sub] for sub in subs]
        else:
            out.append([name])
    return out


COMMANDS = _commands()


def test_every_command_listed():
    res = runner.invoke(app, ["--help"], terminal_width=120)
    section = res.output.split("Commands:\n", 1)[1].splitlines()
    listed = {line.split()[0] for line in section if line.startswith("  ")}
    assert listed == {c[0] for c in COMMANDS}
    assert all(len(line.split()) > 1 for line in section if line.startswith("  "))  # + summary
    assert {" ".join(c) for c in COMMANDS} >= {
        "run", "detect", "track", "group", "rank", "import", "eval", "show", "crops", "table",
        "render", "select", "export", "merge", "split", "unmerge", "constraints", "list videos",
        "list persons", "list tracklets", "list selections", "list runs", "config show"}


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_has_no_markup_placeholders_or_braces(command):
    res = runner.invoke(app, [*command, "--help"], terminal_width=100)
    assert res.exit_code == 0, res.output
    usage = res.output.splitlines()[0]
    assert usage.startswith("Usage: ") and "{" not in usage, usage
    for raw in ("<bool>", "``", "[bold", "[/", "<list["):
        assert raw not in res.output, (raw, res.output)
    assert "Example: ptrack " in res.output  # every command shows a real call


def test_help_shows_every_default():
    defaults = load_defaults()["detect"]
    for command in (["detect"], ["run"]):
        text = " ".join(runner.invoke(app, [*command, "--help"], terminal_width=200).output.split())
        for key in ("model", "conf", "imgsz", "classes", "backend", "device", "stride", "batch"):
            assert f"[default: {defaults[key]}]" in text, (command, key)
    text = " ".join(runner.invoke(app, ["--help"], terminal_width=200).output.split())
    assert "[default: ./ptrack-project]" in text
    for command, default in ((["select"], "<project>/outputs/<video>/primary_person.<format>"),
                             (["export"], "<project>/outputs/<video>/persons.<txt|csv|json>"),
                             (["table"], "<project>/outputs/<video>/selection_table.<png|html>"),
                             (["render"], "<project>/outputs/<video>/annotated.mp4"),
                             (["list", "persons"], "[default: 0; x>=0]")):
        text = " ".join(runner.invoke(app, [*command, "--help"], terminal_width=200).output.split())
        assert default in text, (command, text)
    usage = runner.invoke(app, ["detect", "--help"]).output.splitlines()[0]
    assert usage.endswith("detect [OPTIONS] [VIDEO...]")  # optional: --from-file LIST
    flags = runner.invoke(app, ["detect", "--help"], terminal_width=200).output
    assert "--force " in flags and "--force <" not in flags


def test_version_and_completion():
    res = runner.invoke(app, ["--version"])
    assert (res.exit_code, res.output) == (0, f"ptrack {__version__}\n")
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    # Typer's own completion, as a user gets it (a fresh process: Typer keeps completion state);
    # the shell named, not detected from the parent processes (none is found under a CI runner)
    out = subprocess.run([sys.executable, "-m", "ptrack", "--show-completion", "bash"],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                         env={**os.environ, "PYTHONPATH": str(REPO),
                              "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert out.returncode == 0, out.stderr
    assert "COMPREPLY" in out.stdout and "_COMPLETE" in out.stdout


def test_global_options_after_the_command(tmp_path):
    with Store.open(tmp_path / "p") as store:
        store.add_video(name="v", path="/v.mp4", size=1, fingerprint="f", fps=10, width=64,
                        height=48, frame_count=20)
    after = runner.invoke(app, ["list", "videos", "--json", "--project", str(tmp_path / "p")])
    assert after.exit_code == 0, after.output
    assert [v["name"] for v in json.loads(after.stdout)] == ["v"]
    short = runner.invoke(app, ["list", "videos", "-p", str(tmp_path / "p"), "--nl"])
    assert json.loads(short.stdout)["name"] == "v"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("detect:\n  conf: 0.33\n")
    res = runner.invoke(app, ["config", "show", f"--config={cfg}"])
    assert yaml.safe_load(res.stdout)["detect"]["conf"] == 0.33


def test_config_show_effective_and_of_a_run(tmp_path):
    res = runner.invoke(app, ["--project", str(tmp_path / "p"), "config", "show"])
    assert res.exit_code == 0, res.output
    assert yaml.safe_load(res.stdout) == load_config(None)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("group:\n  max_gap_s: 3.5\n")
    res = runner.invoke(app, ["--config", str(cfg), "config", "show"])
    shown = yaml.safe_load(res.stdout)
    assert shown["group"]["max_gap_s"] == 3.5 and shown == load_config(cfg)
    assert res.stdout.splitlines()[0] == f"# effective settings: defaults + {cfg}"
    with Store.open(tmp_path / "p") as store:
        v = store.add_video(name="v", path="/v.mp4", size=1, fingerprint="f", fps=10, width=64,
                            height=48, frame_count=20)
        run = store.start_run(v.id, "group", {"max_gap_s": 5.0, "n_rounds": 2})
        store.finish_run(run.id, "done", {})
    runs = json.loads(runner.invoke(app, ["-p", str(tmp_path / "p"), "list", "runs", "--json"]).stdout)
    assert [{k: r[k] for k in ("run", "video", "stage", "status", "settings")} for r in runs] == [
        {"run": run.id, "video": "v", "stage": "group", "status": "done",
         "settings": {"max_gap_s": 5.0, "n_rounds": 2}}]
    res = runner.invoke(app, ["-p", str(tmp_path / "p"), "config", "show", "--run", str(run.id)])
    assert res.stdout.splitlines()[0] == f"# run {run.id}: group of v (done)"
    assert yaml.safe_load(res.stdout) == {"group": {"max_gap_s": 5.0, "n_rounds": 2}}
    res = runner.invoke(app, ["-p", str(tmp_path / "p"), "config", "show", "--run", "99"])
    assert (res.exit_code, res.output) == (2, "Error: no run 99 (run ids: `ptrack list runs`)\n")
