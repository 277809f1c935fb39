"""`ptrack run`: every stage for several videos; one failure does not stop the others."""

from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from ptrack.cli import app
from ptrack.store import Store
from tests.conftest import REPO

runner = CliRunner()


def test_run_processes_each_video_and_reports(tmp_path: Path, person_model):
    proj = tmp_path / "p"
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    result = runner.invoke(app, ["--project", str(proj), "run", str(REPO / "tests/data/walking-pair.mp4"),
                                 str(broken), "--model", "pkg:fall_detection/models/best.pt",
                                 "--classes", "all", "--batch", "4", "--imgsz", "640"])
    assert result.exit_code == 1  # one video failed ...
    assert "broken.mp4 is a text file, not a video" in result.output
    table = proj / "outputs" / "walking-pair" / "selection_table.png"
    assert table.is_file()  # ... the other went all the way
    assert Image.open(table).size[0] > 600
    with Store.open(proj, create=False) as store:
        v = store.video("walking-pair")
        assert [store.stage_state(v.id, s) for s in ("detect", "track", "group", "rank")] == ["done"] * 4
        persons = store.persons(v.id)
        assert len(persons) == 2 and persons[0]["rank"] == 1
    out = result.stdout.splitlines()
    assert out[0] == "ptrack run: 1 of 2 videos done, 1 failed"
    assert out[1].startswith("walking-pair: 2 persons; top P")
    assert out[2] == f"  table: {table}"  # a path on a line of its own, never wrapped
    assert out[3].startswith("broken: failed: ") and "not a video" in out[3]
    # one line per stage, in order, with words rather than Python values
    stages = [line.split(" done")[0] for line in result.stderr.splitlines()
              if line.startswith("walking-pair: ") and " done" in line]
    assert stages == [f"walking-pair: {s}" for s in ("detect", "track", "group", "rank", "table")]
    group = next(line for line in result.stderr.splitlines() if "group done" in line)
    assert "appearance on" in group and "corrections 0" in group and "True" not in group


def test_run_takes_every_detect_option():
    import typer.main

    cmd = typer.main.get_command(app)
    names = lambda c: {o for p in c.params for o in p.opts if o.startswith("--")}  # noqa: E731
    detect, run = cmd.commands["detect"], cmd.commands["run"]
    assert names(detect) - names(run) == set()
    assert {"--model", "--conf", "--imgsz", "--classes", "--stride", "--batch"} <= names(run)


def test_one_progress_display_for_the_run():
    """On a terminal: the video's bar says it loads the model until frames flow (an export
    message printed above it), then frames, frames/s and ETA; stage lines follow."""
    import io
    import re

    from rich.console import Console

    from ptrack.cli.detect_cmd import DetectProgress

    buf = io.StringIO()
    err = Console(file=buf, force_terminal=True, width=120, markup=False, highlight=False,
                  color_system=None)
    with DetectProgress(err) as p:
        p.start("clip [bold].mp4")
        p.bar.refresh()
        p.log("exporting the model for OpenVINO (once, 384x640) into /cache/m")
        p.tick(8, 100)
        p.tick(16, 100)
        p.bar.refresh()
        p.stop()
        p.log("clip: track done in 0.10 s (tracklets 3)")
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buf.getvalue())
    assert "clip [bold].mp4: loading the model" in text
    assert "clip [bold].mp4: detect" in text and "16/100" in text
    assert "frames/s" in text and "ETA" in text
    assert "0/?" not in text and "0.0 frames/s" not in text  # nothing made up while loading
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    export = lines.index("exporting the model for OpenVINO (once, 384x640) into /cache/m")
    assert lines.index("clip: track done in 0.10 s (tracklets 3)") > export
