"""The real pipeline on ``one-by-one-person.mp4`` against its identity labels (issue 11 targets):
the people who come to the table one at a time stay separate persons, and each of them is one
person. Detect (test model, the labels' ``--max-frames 1056``), then ``rank`` with the shipped
settings; the labels are mapped onto the stored detections by ``bench/end_to_end.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ptrack.cli import app
from tests.conftest import shared_file

runner = CliRunner()


def cli(project: Path, *args):
    result = runner.invoke(app, ["--project", str(project), *map(str, args)])
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.slow
def test_one_by_one_person_people_stay_apart_and_each_is_one_person(tmp_path, person_model):
    clip = shared_file("clips", "one-by-one-person.mp4")
    from bench.end_to_end import LABELS, clip_max_frames, clip_verdicts

    assert LABELS.is_file() and clip_max_frames() == 1056
    proj = tmp_path / "p"
    cli(proj, "detect", clip, "--model", "pkg:fall_detection/models/best.pt", "--classes", "all",
        "--max-frames", clip_max_frames(), "--precision", "f32")
    cli(proj, "rank")
    v = clip_verdicts(proj)
    assert v["usable"], v.get("why")
    assert set(v["people"]) == {"woman-ombre", "man-cap", "woman-blonde", "man-tshirt", "woman-dark"}
    assert v["separate"], v["mixed_persons"]
    assert v["one_each"], v["people"]
