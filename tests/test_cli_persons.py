"""`ptrack import | track | group | rank | eval` through the CLI on real temporary projects."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ptrack.cli import app
from ptrack.store import Store
from tests.conftest import shared_file

runner = CliRunner()


def cli(project: Path, *args):
    """Run ptrack with a short lost-track buffer, so a 1.2 s gap breaks a track."""
    cfg = project.parent / "short-buffer.yaml"
    cfg.write_text("track:\n  track_buffer_s: 0.5\n")
    return runner.invoke(app, ["--project", str(project), "--config", str(cfg), *map(str, args)])


def two_walkers(path: Path, gap: tuple[int, int] = (40, 70)) -> Path:
    """MOT lines: person A walks right for 100 frames (missing in ``gap``), B walks left."""
    lines = []
    for f in range(100):
        if not gap[0] <= f < gap[1]:
            lines.append(f"{f + 1},-1,{100 + 4 * f},200,50,120,0.9,-1,-1,-1")
        lines.append(f"{f + 1},-1,{900 - 3 * f},180,60,140,0.8,-1,-1,-1")
    path.write_text("\n".join(lines) + "\n")
    return path


def gt_of_two_walkers(path: Path) -> Path:
    lines = []
    for f in range(100):
        lines.append(f"{f + 1},1,{100 + 4 * f},200,50,120,1,-1,-1,-1")
        lines.append(f"{f + 1},2,{900 - 3 * f},180,60,140,1,-1,-1,-1")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def imported(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    result = cli(proj, "import", two_walkers(tmp_path / "det.txt"), "--video", "walkers",
                 "--fps", "25", "--width", "1280", "--height", "720")
    assert result.exit_code == 0, result.output
    assert "walkers: import done" in result.output and "detections 170" in result.output
    return proj


def test_track_fps_sets_the_real_frame_rate_and_the_stages_follow_it(imported: Path):
    # imported at 25 frames/s: A's 30-frame gap is 1.2 s, past the 0.5 s buffer: cut
    assert "tracklets 3" in cli(imported, "track").output
    assert cli(imported, "group").exit_code == 0
    # the pictures really were 100 a second: the gap is 0.3 s, ByteTrack bridges it
    tr = cli(imported, "track", "--fps", "100")
    assert tr.exit_code == 0, tr.output
    assert "tracklets 2" in tr.output and "frame rate 25 -> 100 frames/s" in tr.output
    with Store.open(imported) as st:
        v = st.video("walkers")
        assert v.fps == 100.0
        assert st.stage_state(v.id, "group") == "stale"  # the next group runs again
    listed = cli(imported, "list", "videos", "--json")
    assert json.loads(listed.stdout)[0]["fps"] == 100.0
    # the same rate again changes nothing; a bad one is a usage error that stores nothing
    assert "frame rate" not in cli(imported, "track", "--fps", "100").output
    bad = cli(imported, "track", "--fps", "0")
    assert bad.exit_code == 2 and "--fps" in bad.output
    with Store.open(imported) as st:
        assert st.video("walkers").fps == 100.0


def test_track_group_rank_join_the_broken_walker(imported: Path):
    tr = cli(imported, "track")
    assert tr.exit_code == 0, tr.output
    assert "tracklets 3" in tr.output  # the 1.2 s gap breaks A's track
    gr = cli(imported, "group")
    assert gr.exit_code == 0, gr.output
    assert "persons 2" in gr.output
    rk = cli(imported, "rank")
    assert rk.exit_code == 0, rk.output
    with Store.open(imported, create=False) as store:
        v = store.video("walkers")
        persons = store.persons(v.id)
        assert [p["rank"] for p in persons] == [1, 2]
        assert sorted(p["n_frames"] for p in persons) == [100, 100]
        a = next(p for p in persons if p["n_observed"] == 70)
        boxes = store.person_boxes(v.id, a["id"])
        filled = boxes["frame"][boxes["source"] == 1].tolist()
        assert filled == list(range(40, 70))  # the gap is interpolated, and marked so
        np.testing.assert_allclose(boxes["xyxy"][boxes["frame"] == 55][0], [320, 200, 370, 320], atol=0.5)
        assert store.stage_state(v.id, "rank") == "done"


def test_rerunning_track_marks_later_stages_stale_and_rank_catches_up(imported: Path):
    assert cli(imported, "rank").exit_code == 0  # runs track and group first
    assert cli(imported, "track").exit_code == 0
    with Store.open(imported, create=False) as store:
        v = store.video(None)
        assert store.stage_state(v.id, "group") == "stale"
        assert store.stage_state(v.id, "rank") == "stale"
    result = cli(imported, "rank")
    assert result.exit_code == 0
    assert "group results are stale; running group first" in result.output


def test_explain_prints_each_criterion(imported: Path):
    assert cli(imported, "group").exit_code == 0
    with Store.open(imported, create=False) as store:
        links = store.person_tracklets(store.video(None).id)
    a, b = sorted(links)[:2]
    result = cli(imported, "group", "--explain", a, b)
    assert result.exit_code == 0, result.output
    for word in ("criterion", "threshold", "verdict", "gap seconds", "motion", "link"):
        assert word in result.output


def test_eval_known_answer(imported: Path, tmp_path: Path):
    assert cli(imported, "group").exit_code == 0
    result = cli(imported, "eval", gt_of_two_walkers(tmp_path / "gt.txt"), "--json")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    persons = scores["persons"]
    assert persons["IDSW"] == 0 and persons["subjects"] == 2
    assert persons["coverage"] == pytest.approx(100.0)
    assert persons["purity"] == pytest.approx(100.0)
    assert persons["IDF1"] == pytest.approx(100.0)
    assert scores["tracklets"]["coverage"] < 100.0


def test_eval_humans_map_joins_gt_ids_into_humans(imported: Path, tmp_path: Path):
    assert cli(imported, "group").exit_code == 0
    gt = gt_of_two_walkers(tmp_path / "gt.txt")
    # walker 1 gets a new gt id (3) half-way, as MOT ground truth does at a re-entry
    lines = [ln.replace(",1,", ",3,", 1) if ln.split(",")[1] == "1" and int(ln.split(",")[0]) > 50
             else ln for ln in gt.read_text().splitlines()]
    gt.write_text("\n".join(lines) + "\n")
    plain = json.loads(cli(imported, "eval", gt, "--json").output)["persons"]
    assert plain["humans"] == 3 and plain["human_purity"] < 100.0
    mapping = tmp_path / "map.json"
    mapping.write_text('{"3": 1}')
    result = cli(imported, "eval", gt, "--humans", mapping, "--json")
    assert result.exit_code == 0, result.output
    persons = json.loads(result.output)["persons"]
    assert persons["humans"] == 2 and persons["humans_whole"] == 2
    assert persons["human_coverage"] == pytest.approx(100.0)
    assert persons["human_purity"] == pytest.approx(100.0)
    assert persons["persons_per_human"] == 1
    table = cli(imported, "eval", gt, "--humans", mapping)
    assert "human coverage" in table.output and "humans whole" in table.output
    mapping.write_text("[1, 2]")
    bad = cli(imported, "eval", gt, "--humans", mapping)
    assert bad.exit_code == 2 and "Error: --humans" in bad.output and "Traceback" not in bad.output


def test_import_malformed_line_names_it(tmp_path: Path):
    bad = tmp_path / "det.txt"
    bad.write_text("1,-1,10,10,20,40,0.9,-1,-1,-1\n2,-1,abc,10,20,40,0.9,-1,-1,-1\n")
    result = cli(tmp_path / "p", "import", bad, "--video", "x", "--fps", "25", "--width", "640",
                 "--height", "480")
    assert result.exit_code == 1
    assert f"{bad}:2:" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_import_without_video_needs_geometry(tmp_path: Path):
    result = cli(tmp_path / "p", "import", two_walkers(tmp_path / "d.txt"), "--video", "x")
    assert result.exit_code == 2
    assert "give --fps, --width and --height" in result.output


def test_import_twice_needs_force(imported: Path, tmp_path: Path):
    again = cli(imported, "import", two_walkers(tmp_path / "d2.txt"), "--video", "walkers")
    assert again.exit_code == 1 and "--force" in again.output
    forced = cli(imported, "import", two_walkers(tmp_path / "d2.txt"), "--video", "walkers", "--force")
    assert forced.exit_code == 0


def test_stage_without_detections_says_what_to_run(tmp_path: Path):
    with Store.open(tmp_path / "p") as store:
        store.add_video(name="v", path="/v.mp4", size=1, fingerprint="f", fps=25, width=10,
                        height=10, frame_count=5)
    result = cli(tmp_path / "p", "track")
    assert result.exit_code == 1
    assert "run `ptrack detect /v.mp4` or `ptrack import` first" in result.output


def test_mot15_tud_campus_import_and_eval(tmp_path: Path):
    seq = shared_file("mot15", "TUD-Campus")
    proj = tmp_path / "p"
    assert cli(proj, "import", seq / "det.txt", "--video", seq / "TUD-Campus.mp4").exit_code == 0
    assert cli(proj, "group").exit_code == 0
    result = cli(proj, "eval", seq / "gt.txt", "--json")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    # grouping must not lose coverage against the tracker's own tracklets
    assert scores["persons"]["coverage"] >= scores["tracklets"]["coverage"]
    assert scores["persons"]["subjects"] == scores["tracklets"]["subjects"] > 0


def test_user_corrections_are_kept_by_group(imported: Path):
    assert cli(imported, "group").exit_code == 0
    with Store.open(imported, create=False) as store:
        v = store.video(None)
        links = store.person_tracklets(v.id)
        walker = next(p for p, ts in links.items() if len(ts) == 2)  # A, joined across its gap
        other = next(p for p in links if p != walker)
    # split A at frame 80: the frames from 80 on become another person, on every later run
    assert cli(imported, "split", walker, "--at", 80).exit_code == 0
    assert cli(imported, "group").exit_code == 0
    with Store.open(imported, create=False) as store:
        v = store.video(None)
        persons = {p["id"]: p for p in store.persons(v.id)}
        assert len(persons) == 3
        assert persons[walker]["last"] == 79
    # merge the two walkers although they cross the image in opposite directions
    refused = cli(imported, "merge", walker, other)  # both on screen at once: two people
    assert refused.exit_code == 1 and "both on screen in" in refused.output
    merged = cli(imported, "merge", walker, other, "--force")
    assert merged.exit_code == 0, merged.output
    assert cli(imported, "group").exit_code == 0
    with Store.open(imported, create=False) as store:
        v = store.video(None)
        persons = store.person_tracklets(v.id)
        assert len(persons) == 2  # A before 80 + B, and A from 80 on
        assert min(walker, other) in persons
        assert len(store.constraints(v.id)) == 2
    # unmerge undoes the user's own merge (the split stays)
    undone = cli(imported, "unmerge", min(walker, other))
    assert undone.exit_code == 0 and "removed merge #" in undone.output
    with Store.open(imported, create=False) as store:
        assert [c["kind"] for c in store.constraints(store.video(None).id)] == ["split"]


def test_export_mot_levels_round_trip(imported: Path, tmp_path: Path):
    from ptrack.formats.mot import read_mot

    assert cli(imported, "group").exit_code == 0
    for level, ids in (("tracklets", 3), ("persons", 2)):
        out = tmp_path / f"{level}.txt"
        result = cli(imported, "export", "--format", "mot", "--level", level, "--out", out)
        assert result.exit_code == 0, result.output
        boxes = read_mot(out)
        assert len(set(boxes.tracklet.tolist())) == ids
        assert boxes.frame.min() == 0 and boxes.frame.max() == 99  # 1-based in the file
    assert len(read_mot(tmp_path / "persons.txt")) == 200  # 170 observed + 30 interpolated


@pytest.fixture(scope="module")
def one_by_one(tmp_path_factory: pytest.TempPathFactory, person_model: Path) -> Path:
    """one-by-one-person.mp4 (1,394 frames) detected once with the test model, then ranked."""
    clip = shared_file("clips", "one-by-one-person.mp4")
    proj = tmp_path_factory.mktemp("one-by-one") / "p"
    result = runner.invoke(app, ["--project", str(proj), "detect", str(clip), "--model",
                                 "pkg:fall_detection/models/best.pt", "--classes", "all",
                                 "--precision", "f32"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["--project", str(proj), "rank"]).exit_code == 0
    return proj


@pytest.mark.slow
def test_same_spot_different_people_stay_apart_on_real_video(one_by_one: Path):
    """one-by-one-person.mp4: six people, one after another, at the same table."""
    with Store.open(one_by_one, create=False) as store:
        v = store.video(None)
        people = sorted((p["first"], p["last"]) for p in store.persons(v.id) if p["n_frames"] >= 50)
        assert store.latest_run(v.id, "group").stats["appearance"] is True
    assert len(people) == 6
    for (_, last), (first, _) in zip(people, people[1:]):
        assert last < first  # nobody was merged with the next person at the table


@pytest.mark.slow
def test_one_by_one_person_people_stay_apart_and_each_is_one_person(one_by_one: Path):
    """Against the clip's identity labels (tests/data/labels, first 1,056 frames): the people
    who come to the table one at a time stay separate persons, and each of them is one person."""
    from bench.end_to_end import LABELS, clip_max_frames, clip_verdicts

    assert LABELS.is_file() and clip_max_frames() == 1056
    v = clip_verdicts(one_by_one)
    assert v["usable"], v.get("why")
    assert set(v["people"]) == {"woman-ombre", "man-cap", "woman-blonde", "man-tshirt", "woman-dark"}
    assert v["separate"], v["mixed_persons"]
    assert v["one_each"], v["people"]


# ------------------------------------------------------------------------- stage freshness
def test_rank_after_a_merge_regroups_and_the_merged_person_is_ranked(imported: Path):
    assert cli(imported, "rank").exit_code == 0
    with Store.open(imported, create=False) as store:
        v = store.video(None)
        before = store.person_tracklets(v.id)
        assert len(before) == 2
        a, b = sorted(before)
    # a correction recorded without being applied (as by an older ptrack): rank catches up
    with Store.open(imported, create=False) as store:
        store.add_constraint(store.video(None).id, "merge", sorted(before[a] + before[b]))
    result = cli(imported, "rank")
    assert result.exit_code == 0, result.output
    assert "group results are older than your corrections" in result.output
    assert result.output.index("running group first") < result.output.index("rank done")
    with Store.open(imported, create=False) as store:
        v = store.video(None)
        persons = store.persons(v.id)
        assert [p["id"] for p in persons] == [min(a, b)]  # one person, ranked
        assert sorted(store.person_tracklets(v.id)[min(a, b)]) == sorted(before[a] + before[b])
    # now current: a second rank re-runs nothing
    again = cli(imported, "rank")
    assert again.exit_code == 0 and "first" not in again.output


def test_rank_after_a_track_settings_change_retracks_then_regroups(imported: Path, tmp_path: Path):
    assert cli(imported, "rank").exit_code == 0  # buffer 0.5 s: A's track breaks in two
    cfg = tmp_path / "long-buffer.yaml"
    cfg.write_text("track:\n  track_buffer_s: 3.0\n  split_gap_s: 0.0\n")
    result = runner.invoke(app, ["--project", str(imported), "--config", str(cfg), "rank"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "track results are from other settings; running track first" in out
    assert out.index("running track first") < out.index("running group first") < out.index("rank done")
    with Store.open(imported, create=False) as store:
        v = store.video(None)
        assert store.latest_run(v.id, "track").settings["track_buffer_s"] == 3.0
        tid, _ = store.tracklet_boxes(v.id)
        assert len(np.unique(tid[tid >= 0])) == 2  # the 3 s buffer bridges A's 1.2 s gap, uncut


def test_ensure_current_reruns_only_what_is_stale(imported: Path):
    from ptrack.settings import load_config
    from ptrack.persons.stages import ensure_current

    cfg = load_config(None, {"track": {"track_buffer_s": 0.5}})
    said: list[str] = []
    with Store.open(imported, create=False) as store:
        v = store.video(None)
        done = ensure_current(store, v, cfg, "group", said.append)
        assert [s.stage for s in done] == ["track", "group"]
        assert store.stage_state(v.id, "rank") == "missing"
        assert ensure_current(store, v, cfg, "group", said.append) == []
        done = ensure_current(store, v, cfg, "rank", said.append)
        assert [s.stage for s in done] == ["rank"]
        # a new correction makes group (and so rank) stale
        store.add_constraint(v.id, "unmerge", [1, 2])
        done = ensure_current(store, v, cfg, "rank", said.append)
        assert [s.stage for s in done] == ["group", "rank"]
    assert [m.split(";")[1].strip() for m in said] == [
        "running track first", "running group first", "running rank first",
        "running group first", "running rank first"]


def test_ensure_current_on_current_results_imports_no_torch(imported: Path):
    import subprocess
    import sys

    assert cli(imported, "rank").exit_code == 0
    code = (
        "import sys\n"
        "from ptrack.settings import load_config\n"
        "from ptrack.persons.stages import ensure_current\n"
        "from ptrack.store import Store\n"
        f"cfg = load_config({str(imported.parent / 'short-buffer.yaml')!r})\n"
        f"with Store.open({str(imported)!r}, create=False) as store:\n"
        "    assert ensure_current(store, store.video(None), cfg, 'rank', print) == []\n"
        "print(sorted(m for m in ('torch', 'ultralytics') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_suggest_on_boxes_without_crops_says_it_rests_on_motion_alone(imported: Path):
    # group held to 0.2 s gaps leaves the walker's two halves apart; suggest's gates 10x looser
    # see his motion across the 1.2 s gap
    cfg = imported.parent / "strict.yaml"
    cfg.write_text("track:\n  track_buffer_s: 0.5\ngroup:\n  max_gap_s: 0.2\n"
                   "  motion_max_gap_s: 0.2\n  suggest_loosen: 10.0\n")

    def run(*args):
        res = runner.invoke(app, ["--project", str(imported), "--config", str(cfg), *args])
        assert res.exit_code == 0, res.output
        return res.stdout

    run("rank")
    out = json.loads(run("suggest", "--json"))
    assert [(s["a"], s["b"]) for s in out["suggestions"]] == [(1, 3)]
    assert out["suggestions"][0]["appearance"] is None
    assert len(out["notes"]) == 1 and "motion alone" in out["notes"][0]
    text = run("suggest").splitlines()
    assert text[0].startswith("walkers: 1 of 1 suggested merges")
    assert text[1].startswith("note: this video has no crops") and "about 1 in 5" in text[1]
    assert text[2] == "#1  P1 + P3"
    run("suggest", "--reject", "1")
    assert run("suggest").splitlines() == [
        "walkers: no suggested merges (no two persons that are never on screen together move "
        "like one (no crops to compare))"]
