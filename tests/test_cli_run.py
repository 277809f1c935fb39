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
                                 "--classes", "all"])
    assert result.exit_code == 1  # one video failed ...
    assert "broken.mp4 is not a video that can be decoded" in result.output
    table = proj / "outputs" / "walking-pair" / "selection_table.png"
    assert table.is_file()  # ... the other went all the way
    assert Image.open(table).size[0] > 600
    with Store.open(proj, create=False) as store:
        v = store.video("walking-pair")
        assert [store.stage_state(v.id, s) for s in ("detect", "track", "group", "rank")] == ["done"] * 4
        persons = store.persons(v.id)
        assert len(persons) == 2 and persons[0]["rank"] == 1
    assert "walking-pair" in result.output and "P" in result.output
