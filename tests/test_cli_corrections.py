"""Corrections that make sense: ``merge`` of persons on screen together, conflicts found when
a correction is recorded, repeats stored once, and a merge that reaches ``select``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from ptrack.cli import app
from ptrack.cli.corrections import conflicts, same_as, shared_frames
from ptrack.store import Store
from tests.test_views import CLIP, build_project

from tests.test_cli_views import proj, run, template  # noqa: F401  (fixtures)

runner = CliRunner()


# the test project and its per-test copy, shared with test_cli_views
def recorded(proj):
    with Store.open(proj) as store:
        return [(c["id"], c["kind"], c["ids"], c["frame"]) for c in store.constraints(1)]


# ------------------------------------------------------------------------------ merge
def test_merge_of_persons_on_screen_together_is_refused_or_forced(proj):
    res = run(proj, "merge", 1, 2, code=1)
    assert res.output == (
        "Error: P1 and P2 are both on screen in 32 frames (0, 1, 2, 3, 4, ...), so they are "
        "different people. Compare them with `ptrack show 1 2`; --force merges anyway, keeping "
        "the better box in each shared frame\n")
    assert recorded(proj) == []
    res = run(proj, "merge", 1, 3, code=1)  # the ghost shares 5 frames with P1
    assert "P1 and P3 are both on screen in 5 frames (5, 6, 7, 8, 9)," in res.output
    res = run(proj, "merge", 1, 2, "--force")
    assert res.stdout.splitlines() == [
        "recorded merge #1: persons 1, 2 (tracklets 1, 2, 4) are one person: P1",
        "applied: regrouped walking-pair, 2 persons now"]
    assert recorded(proj) == [(1, "merge", [1, 2, 4], None)]


def test_same_merge_twice_is_stored_once(proj):
    run(proj, "merge", 1, 3, "--force")
    res = run(proj, "merge", 3, 1, "--force")
    assert res.stdout == ("already recorded as merge #1: persons 3, 1 (tracklets 1, 3, 4) are "
                          "one person; nothing new recorded\n")
    run(proj, "split", 1, "--at", 20)
    assert run(proj, "split", 1, "--at", 20).stdout.startswith("already recorded as split #2")
    assert [c[1] for c in recorded(proj)] == ["merge", "split"]


def test_contradicting_correction_is_refused_with_the_first_conflict(proj):
    run(proj, "merge", 1, 3, "--force")  # P1 is now tracklets 1, 3, 4 (applied at once)
    res = run(proj, "split", 1, "--at", 10, code=2)  # cuts tracklet 1, which merge #1 joins to 4
    assert res.output == (
        "Error: this split contradicts the recorded corrections (2 conflicts); nothing "
        "recorded; first: tracklets 1 and 4 are joined by merge #1 (tracklets 1, 3, 4) but kept "
        "apart by this split (tracklets 1, 3, 4 at frame 10) (and 1 more: --verbose lists "
        "them); see `ptrack constraints`; remove one with `ptrack constraints --delete ID`\n")
    res = run(proj, "split", 1, "--at", 10, "--verbose", code=2)
    assert res.output == (
        "Error: this split contradicts the recorded corrections (2 conflicts); nothing "
        "recorded:\n"
        "  tracklets 1 and 4 are joined by merge #1 (tracklets 1, 3, 4) but kept apart by this "
        "split (tracklets 1, 3, 4 at frame 10)\n"
        "  tracklets 3 and 4 are joined by merge #1 (tracklets 1, 3, 4) but kept apart by this "
        "split (tracklets 1, 3, 4 at frame 10)\n"
        "see `ptrack constraints`; remove one with `ptrack constraints --delete ID`\n")
    assert [c[1] for c in recorded(proj)] == ["merge"]


def test_unmerge_undoes_the_users_merge_and_keeps_groups_joins_apart(proj):
    run(proj, "merge", 1, 3, "--force")
    res = run(proj, "unmerge", 1)
    assert res.stdout.splitlines() == [
        "removed merge #1 (tracklets 1, 3, 4): P1 is no longer joined by your merge",
        "applied: regrouped walking-pair, 3 persons now"]
    assert "running" not in res.output  # the regrouping is said once, by the last line
    assert recorded(proj) == []
    out = run(proj, "unmerge", 1).stdout  # P1 = tracklets 1 + 4, joined by group itself
    assert out.startswith("recorded unmerge #") and ": tracklets 1, 4 of P1 are kept apart" in out
    assert [c[1:3] for c in recorded(proj)] == [("unmerge", [1, 4])]


def test_a_merged_persons_old_id_answers(proj):
    run(proj, "merge", 1, 3, "--force")
    res = run(proj, "select", 3, "--format", "json", "--out", "-")
    assert "note: P3 was merged into P1" in res.stderr
    assert json.loads(res.stdout)["person_id"] == 1


def test_conflicts_lists_each_pair_with_its_corrections():
    tid = np.array([1, 1, 2, 2, 3, 3, 4])
    frame = np.array([0, 9, 10, 19, 20, 29, 30])
    cs = [{"id": 1, "kind": "merge", "ids": [1, 2], "frame": None},
          {"id": 2, "kind": "merge", "ids": [2, 3], "frame": None},
          {"id": 3, "kind": "unmerge", "ids": [1, 3], "frame": None},
          {"id": None, "kind": "split", "ids": [1, 2, 3, 4], "frame": 15}]
    found = conflicts(cs, tid, frame)
    assert [(f.a, f.b, f.kept_apart_by["id"]) for f in found] == [(1, 3, 3), (1, 3, None),
                                                                 (2, 3, None)]
    assert found[0].text() == ("tracklets 1 and 3 are joined by merge #1 (tracklets 1, 2) and "
                               "merge #2 (tracklets 2, 3) but kept apart by unmerge #3 "
                               "(tracklets 1, 3)")
    assert conflicts(cs[:2], tid, frame) == []
    # a split that cuts tracklet 2 keeps the merge of its first part with 1
    cut = [cs[0], {"id": 5, "kind": "split", "ids": [2], "frame": 15}]
    assert conflicts(cut, tid, frame) == []
    assert shared_frames(np.array([3, 1, 2]), np.array([2, 3, 5])).tolist() == [2, 3]
    assert same_as({"kind": "merge", "ids": [2, 1]}, cs)["id"] == 1
    assert same_as({"kind": "unmerge", "ids": [1]}, cs) is None


# --------------------------------------------------------- a merge reaches select
def test_merge_group_rank_select_exports_the_merged_person(proj):
    run(proj, "track")
    run(proj, "group")
    run(proj, "rank")
    before = json.loads(run(proj, "list", "persons", "--json").stdout)
    assert len(before) >= 2
    a, b = before[0]["person"], before[1]["person"]
    with Store.open(proj) as store:
        frames = set(store.person_boxes(1, a)["frame"].tolist()) | set(
            store.person_boxes(1, b)["frame"].tolist())
    run(proj, "merge", a, b, code=1)  # the man and the woman walk side by side
    run(proj, "merge", a, b, "--force")
    res = run(proj, "group")
    assert "corrections 1" in res.stdout and "appearance on" in res.stdout
    run(proj, "rank")
    after = json.loads(run(proj, "list", "persons", "--json").stdout)
    assert len(after) == len(before) - 1
    merged = min(a, b)
    run(proj, "select", merged, "--out", proj / "m.json")
    doc = json.loads((proj / "m.json").read_text())
    assert set(doc["frame_numbers"]) == frames  # one box per frame, from both
    assert len(doc["frame_numbers"]) == len(frames)
    # --explain in JSON, and no `inf` in its table
    rows = json.loads(run(proj, "group", "--explain", a, b, "--json").stdout)
    assert rows[-1]["criterion"] == "link" and {"value", "threshold", "verdict"} <= set(rows[-1])
    assert "inf" not in run(proj, "group", "--explain", a, b).stdout


# ------------------------------------------------------------- several videos: hints
def test_hints_name_the_video_when_the_project_has_several(tmp_path):
    build_project(tmp_path / "p", persons=False).close()
    with Store.open(tmp_path / "p") as store:
        store.add_video(name="other", path=str(CLIP), size=1, fingerprint="o", fps=12,
                        width=480, height=270, frame_count=35)
    res = run(tmp_path / "p", "list", "persons", "--video", "walking-pair", code=1)
    assert res.output == (
        "Error: walking-pair has 73 detections but no persons yet; run `ptrack track --video "
        "walking-pair; ptrack group --video walking-pair; ptrack rank --video walking-pair`\n")


def test_import_takes_the_video_file_as_video_file(tmp_path):
    det = tmp_path / "det.txt"
    det.write_text("".join(f"{f},-1,{10 + f},20,30,60,0.9,-1,-1,-1\n" for f in range(1, 11)))
    res = run(tmp_path / "p", "import", det, "--video-file", "cam", "--fps", 25, "--width", 640,
              "--height", 480)
    assert res.stdout.startswith("cam: import done")
    help_text = run(tmp_path / "p", "import", "--help").stdout
    assert "--video-file FILE" in help_text and "--video " not in help_text
    res = run(tmp_path / "q", "import", det, code=2)
    assert res.output.startswith("Error: import needs --video-file FILE")


def test_views_say_when_a_detect_is_replacing_the_boxes(proj):
    with Store.open(proj) as store:
        store.start_run(1, "detect", {"detect": {"conf": 0.2}})  # a `detect --force` under way
    res = run(proj, "list", "persons", "--json")
    assert "its boxes are being replaced; showing the persons found before" in res.output
    assert {p["person"] for p in json.loads(res.stdout)} == {1, 2, 3}


def test_stage_hints_name_the_video_to_detect(proj):
    with Store.open(proj) as store:
        store.add_video(name="other", path="/videos/other.mp4", size=1, fingerprint="x", fps=25.0,
                        width=64, height=48, frame_count=10)
    res = run(proj, "track", "--video", "other", code=1)
    assert res.output.strip() == ("Error: other has no finished detections; run "
                                  "`ptrack detect /videos/other.mp4` or `ptrack import` first")
