"""Outputs a user can trust (issue 24): errors fail, files hold what their name says, boxes stay
in the frame, joined selections are checked like merges, text files are not videos, and the
project keeps its settings.

Driven through the real CLI on small real projects (the walking-pair clip's project from
``tests/test_views.py``, or boxes written into a real store)."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from typer.testing import CliRunner

from ptrack.cli import app
from ptrack.store import Store

try:
    from tests.test_cli_views import proj, run, template  # noqa: F401  (the same fixtures)
    from tests.test_views import CLIP, build_project
except ImportError:  # tests/ not a package
    from test_cli_views import proj, run, template  # noqa: F401
    from test_views import CLIP, build_project

runner = CliRunner()


def empty_project(root):
    """A project whose video was detected and holds nobody."""
    store = Store.open(root, create=True)
    v = store.add_video(name="empty", path=str(CLIP), size=CLIP.stat().st_size,
                        fingerprint="empty", fps=12.0, width=480, height=270, frame_count=35)
    r = store.start_run(v.id, "detect", {})
    store.commit_detections(v.id, r.id, 35, [], [])
    store.finish_run(r.id, "done", {})
    store.close()
    return root


# ------------------------------------------------------------------- 4: errors fail
@pytest.mark.parametrize("args", [("show", 1), ("select", 1), ("table",), ("export",)])
def test_nobody_found_is_an_error_with_a_nonzero_exit(tmp_path, args):
    root = empty_project(tmp_path / "p")
    res = run(root, *args, code=1)
    assert "Error: nobody was found in empty" in res.stderr
    # a listing still answers with an empty table
    assert "nobody was found" in run(root, "list", "persons").output


def test_unknown_run_and_missing_video_exit_2(proj, tmp_path):
    res = run(proj, "config", "show", "--run", 99, code=2)
    assert "no run 99" in res.stderr
    res = run(tmp_path / "new", "detect", tmp_path / "nonexistent.mp4", code=2)
    assert "video not found" in res.stderr


# --------------------------------------------------- 6: files hold what their name says
@pytest.mark.parametrize("args", [("select", 1, "--out", "p.txt"),
                                  ("table", "--out", "t.jpg"),
                                  ("export", 1, "--out", "p3.tsv"),
                                  ("select", 1, "--format", "npz", "--out", "p.txt")])
def test_an_extension_that_cannot_be_written_is_refused(proj, tmp_path, args):
    args = [str(tmp_path / a) if str(a).startswith(("p.", "t.", "p3.")) else a for a in args]
    res = run(proj, *args, code=2)
    assert "cannot write a" in res.stderr and "the extension picks the format" in res.stderr
    assert not list(tmp_path.glob("p*.*")) and not list(tmp_path.glob("t.*"))


def test_extension_names_the_format_written(proj, tmp_path):
    run(proj, "select", 1, "--out", tmp_path / "p.json")
    assert json.loads((tmp_path / "p.json").read_text())["person_id"] == 1
    run(proj, "select", 1, "--out", tmp_path / "p.npz")
    assert zipfile.is_zipfile(tmp_path / "p.npz")
    run(proj, "table", "--out", tmp_path / "t.png")
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    run(proj, "export", "--out", tmp_path / "e.csv")
    assert (tmp_path / "e.csv").read_text().startswith("person_id,")


def test_binary_output_is_refused_on_a_terminal(proj, monkeypatch):
    import ptrack.cli.output as output

    monkeypatch.setattr(output, "stdout_is_terminal", lambda: True)
    res = run(proj, "select", 1, "--out", "-", code=2)
    assert "npz bytes on the terminal" in res.stderr
    res = run(proj, "table", "--out", "-", code=2)
    assert "png bytes on the terminal" in res.stderr
    res = run(proj, "select", 1, "--out", "-", "--format", "json")  # text is fine
    assert json.loads(res.stdout)["person_id"] == 1
    monkeypatch.setattr(output, "stdout_is_terminal", lambda: False)  # piped: written
    res = run(proj, "select", 1, "--out", "-")
    assert zipfile.is_zipfile(io.BytesIO(res.stdout_bytes))


# ----------------------------------------------------------- 7: boxes stay in the frame
def test_smoothed_boxes_are_clipped_to_the_frame():
    from ptrack.persons.stages import smoothed_person_boxes

    # a person running right, stopping hard at the right edge: the smoother overshoots
    f = np.arange(40)
    x1 = np.minimum(20.0 * f, 700.0)
    xyxy = np.stack([x1, np.full(40, 100.0), x1 + 68.0, np.full(40, 300.0)], 1)
    args = (np.ones(40, int), f, xyxy, np.full(40, 0.9), np.zeros(40, int))
    loose = smoothed_person_boxes(*args, fps=25.0)
    assert loose[:, 2].max() > 768  # what the smoother alone gives
    clipped = smoothed_person_boxes(*args, fps=25.0, width=768, height=576)
    assert clipped[:, 2].max() <= 768 and clipped[:, 0].min() >= 0
    assert clipped[:, 1].min() >= 0 and clipped[:, 3].max() <= 576
    inside = (loose[:, 2] <= 768) & (loose[:, 0] >= 0)
    assert inside.sum() > 20
    assert np.allclose(clipped[inside], loose[inside])


def test_group_stores_clipped_smoothed_boxes_and_raw_boxes_as_detected(tmp_path):
    store = Store.open(tmp_path / "p", create=True)
    v = store.add_video(name="edge", path=str(CLIP), size=1, fingerprint="edge", fps=25.0,
                        width=768, height=576, frame_count=40, has_crops=False)
    r = store.start_run(v.id, "detect", {})
    rows = []
    for f in range(40):
        x1 = min(20.0 * f, 700.0)
        rows.append((f, 0, x1, 100.0, x1 + 68.0 + (0.5 if f == 39 else 0.0), 300.0, 0.9, 0))
    store.commit_detections(v.id, r.id, 40, rows, [])
    store.finish_run(r.id, "done", {})
    store.close()
    run(tmp_path / "p", "rank")
    store = Store.open(tmp_path / "p")
    b = store.person_boxes(v.id)
    store.close()
    assert b["smoothed"][:, 2].max() <= 768
    assert b["xyxy"][:, 2].max() == pytest.approx(768.5)  # bboxes_raw: as detected


# ------------------------------------------------- 2: select A B is checked like merge
def test_select_refuses_persons_on_screen_together_unless_forced(proj, tmp_path):
    res = run(proj, "select", 1, 2, "--out", tmp_path / "p.json", code=1)
    assert "P1 and P2 are both on screen in 32 frames" in res.stderr
    assert "--force selects them as one anyway" in res.stderr
    assert not (tmp_path / "p.json").exists()
    run(proj, "select", 1, 2, "--out", tmp_path / "p.json", "--force")
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["person_ids"] == [1, 2] and len(doc["frame_numbers"]) == 35
    # one box per frame: the more confident (the man's 0.9 beats the woman's 0.8)
    assert len(set(doc["frame_numbers"])) == len(doc["frame_numbers"])
    assert set(doc["tracklets"]) <= {1, 2, 4}
    # persons one after the other (a hand-over) are joined without --force
    run(proj, "select", 2, 3, code=1)  # the ghost is on screen with the woman too


# ------------------------------------------------------ 3: a text file is not a video
def test_a_text_file_is_not_taken_for_a_video(tmp_path):
    gt = tmp_path / "gt.txt"
    gt.write_text("".join(f"{f},1,10,20,30,40,1,-1,-1,-1\n" for f in range(1, 3000)))
    res = run(tmp_path / "proj", "detect", gt, code=2)
    assert res.stderr.strip() == f"Error: {gt} is a text file, not a video"
    assert not (tmp_path / "proj" / "ptrack.db").exists()  # nothing created


def test_images_and_directories_are_refused_before_the_project_is_created(tmp_path):
    import cv2

    img = tmp_path / "frame.png"
    cv2.imwrite(str(img), np.zeros((32, 32, 3), np.uint8))
    res = run(tmp_path / "proj", "detect", img, code=2)
    assert "is a PNG image, not a video" in res.stderr
    res = run(tmp_path / "proj", "detect", tmp_path, code=2)  # a folder: the videos inside
    assert "no videos found in" in res.stderr
    res = run(tmp_path / "proj", "run", tmp_path, code=2)
    assert not (tmp_path / "proj").exists()


def test_the_text_codec_is_refused_by_probe(tmp_path):
    """Text that does not look like text (a long ANSI log with control bytes) is still refused
    by its codec: FFmpeg's tty demuxer."""
    from ptrack.detect.video import not_a_video, probe
    from ptrack.errors import PtrackError

    assert not_a_video(CLIP) is None
    log = tmp_path / "log.txt"
    log.write_bytes(b"\x1b[31m\x01\x02 red \x1b[0m\x03\x04\n" * 5000)
    assert not_a_video(log) is None  # not printable enough to be called text by its bytes
    with pytest.raises(PtrackError) as err:
        probe(log)
    assert err.value.exit_code == 2 and "not a video" in err.value.message


# ------------------------------------------------------ 1: the project keeps its settings
def test_views_keep_the_settings_a_stage_ran_with(proj, tmp_path):
    my = tmp_path / "my.yaml"
    my.write_text("group:\n  pos_tol: 0.25\n")
    res = runner.invoke(app, ["--project", str(proj), "--config", str(my), "group"])
    assert res.exit_code == 0, res.output
    assert "project settings: group.pos_tol = 0.25 (was 0.13)" in res.output
    # the first view ranks the new persons (a new input, said), none re-groups
    assert "rank results are stale; running rank first" in run(proj, "list", "persons").output
    for args in (("list", "persons"), ("show", 1), ("select", 1), ("table",), ("export",)):
        out = run(proj, *args).output
        assert "running" not in out, (args, out)
    with Store.open(proj) as store:
        assert store.latest_run(1, "group").settings["pos_tol"] == 0.25
        assert store.project_settings() == {"group": {"pos_tol": 0.25}}
    # later stage commands use them without --config
    assert "running" not in run(proj, "rank").output
    shown = run(proj, "config", "show").stdout
    assert "  pos_tol: 0.25  # project" in shown and "the project (1 keys" in shown
    # a view given another --config does not re-run a stage with it
    other = tmp_path / "other.yaml"
    other.write_text("group:\n  pos_tol: 0.5\n")
    res = runner.invoke(app, ["--project", str(proj), "--config", str(other), "list", "persons"])
    assert res.exit_code == 0 and "running group" not in res.output
    assert "this command uses the project's settings" in res.output


def test_config_set_unset_reset_and_views_rerun_for_project_settings(proj):
    res = run(proj, "config", "set", "group.pos_tol", "0.3")
    assert res.stdout.strip() == "project setting group.pos_tol = 0.3"
    out = run(proj, "list", "persons").output
    assert "group results are from other settings; running group first" in out
    with Store.open(proj) as store:
        assert store.latest_run(1, "group").settings["pos_tol"] == 0.3
    assert "running" not in run(proj, "list", "persons").output  # now current
    run(proj, "config", "set", "track.bidirectional", "false")
    run(proj, "config", "unset", "group.pos_tol")
    with Store.open(proj) as store:
        assert store.project_settings() == {"track": {"bidirectional": False}}
    res = run(proj, "config", "reset")
    assert "1 keys were set: track.bidirectional" in res.stdout
    with Store.open(proj) as store:
        assert store.project_settings() == {}
    # bad keys and values are usage errors naming them
    assert "unknown setting 'group.nope'" in run(proj, "config", "set", "group.nope", "1", code=2).stderr
    assert "group.pos_tol must be a number" in run(proj, "config", "set", "group.pos_tol", "x", code=2).stderr
    res = run(proj, "config", "set", "--", "group.pos_tol", "-1", code=2)
    assert "group.pos_tol must be in [0, 1000000], got -1.0" in res.stderr


def test_a_detected_video_does_not_need_its_model_again(tmp_path):
    """`ptrack run VIDEO` on a detected video uses the model the project remembers."""
    from ptrack.detect.detector import file_hash
    from ptrack.detect.loop import run_settings
    from ptrack.detect.video import probe
    from ptrack.settings import load_config

    model = tmp_path / "models" / "my-people.pt"
    model.parent.mkdir()
    model.write_bytes(b"weights")
    info = probe(CLIP)
    store = build_project(tmp_path / "p", persons=False)
    store.update_video(1, fingerprint=info.fingerprint)
    cfg = load_config(overrides={"detect": {"model": str(model)}})
    r = store.start_run(1, "detect", run_settings(cfg, file_hash(model)))
    store.finish_run(r.id, "done", {})
    store.close()
    res = run(tmp_path / "p", "run", CLIP)
    assert "detect already done" in res.output and "model file" not in res.output
    assert "ptrack run: 1 of 1 video done" in res.output
    with Store.open(tmp_path / "p") as store:
        assert store.project_settings()["detect"]["model"] == str(model)


# --------------------------------------------- 5: config show --run is a valid --config
def test_config_show_of_a_detect_run_is_a_valid_config(tmp_path):
    from ptrack.detect.loop import run_settings
    from ptrack.settings import load_config

    store = build_project(tmp_path / "p", persons=False)
    cfg = load_config(overrides={"detect": {"conf": 0.2, "model": "m.pt"}})
    r = store.start_run(1, "detect", run_settings(cfg, "abc123"))
    store.finish_run(r.id, "done", {})
    store.close()
    shown = run(tmp_path / "p", "config", "show", "--run", r.id).stdout
    assert "# detect.model_sha256: abc123 (recorded with the run, not a setting)" in shown
    saved = tmp_path / "run.yaml"
    saved.write_text(shown)
    res = runner.invoke(app, ["--project", str(tmp_path / "q"), "--config", str(saved),
                              "config", "show"])
    assert res.exit_code == 0, res.output
    assert "  conf: 0.2" in res.stdout and "  model: m.pt" in res.stdout


# --------------------------------------- 9: auto is the fastest precision measured here
def test_fastest_is_measured_not_assumed():
    from ptrack.detect.speed import fastest

    # the Zen 4 figures: bf16 beats INT8, so auto runs bf16 even with INT8 passing
    assert fastest({"f32": 5.9, "bf16": 13.7, "int8": 11.6}, ["f32", "bf16", "int8"]) == "bf16"
    # an AVX2 CPU without bf16: INT8 is faster than f32
    assert fastest({"f32": 5.8, "int8": 8.7}, ["f32", "int8"]) == "int8"
    # a measured candidate that failed its gate is never chosen
    assert fastest({"f32": 5.9, "bf16": 6.0, "int8": 20.0}, ["f32", "bf16"]) == "bf16"


def test_speeds_are_timed_interleaved_and_cached_per_cpu_and_candidates(tmp_path):
    from ptrack.detect import speed

    calls: list[str] = []
    clock = iter(np.arange(0, 100, 0.5))  # every clock read advances 0.5 s

    rates = speed.time_candidates({"f32": lambda: calls.append("f32"),
                                   "bf16": lambda: calls.append("bf16")}, rounds=2,
                                  clock=lambda: float(next(clock)))
    assert calls == ["f32", "bf16", "f32", "bf16", "f32", "bf16"]  # warm-up, then interleaved
    assert rates == {"f32": 2.0, "bf16": 2.0}
    path = tmp_path / "speed.json"
    measured: list[int] = []

    def measure():
        measured.append(1)
        return {"f32": 5.9, "bf16": 13.7}

    got, cached = speed.measured_speeds(path, ["f32", "bf16"], measure, cpu="AMD EPYC x2")
    assert (got, cached, len(measured)) == ({"f32": 5.9, "bf16": 13.7}, False, 1)
    got, cached = speed.measured_speeds(path, ["bf16", "f32"], measure, cpu="AMD EPYC x2")
    assert cached and len(measured) == 1  # the same model, shape and CPU: not timed again
    speed.measured_speeds(path, ["f32", "bf16"], measure, cpu="Intel Xeon x16")
    assert len(measured) == 2  # another CPU is timed
    speed.measured_speeds(path, ["f32", "bf16", "int8"], measure, cpu="AMD EPYC x2")
    assert len(measured) == 3  # a new candidate (INT8 built since) is timed
    path.write_text("{damaged")
    speed.measured_speeds(path, ["f32", "bf16"], measure, cpu="AMD EPYC x2")
    assert len(measured) == 4


def test_forced_int8_that_fails_its_gate_says_it_ran_anyway():
    from ptrack.detect.detector import _resolve_precision
    from ptrack.settings import load_defaults

    cfg = dict(load_defaults()["detect"], precision="int8")
    figures = {"recall": 0.90, "precision": 0.91, "iou_0.9": 0.80, "median_iou": 0.95,
               "conf_shift": 0.02, "frames": 60, "boxes_ref": 100, "boxes": 98}
    precision, why = _resolve_precision(cfg, ["FP32", "BF16", "INT8"], "dir", {"figures": figures})
    assert precision == "int8"
    assert why.startswith("warning: INT8 ran anyway because --precision int8 asked for it, "
                          "although it failed its accuracy gate (agreement 0.900 < 0.96")
    cfg["precision"] = "auto"
    precision, why = _resolve_precision(cfg, ["FP32", "BF16", "INT8"], "dir", {"figures": figures})
    assert precision == "bf16" and "INT8 failed the accuracy gate" in why


def test_auto_times_the_precisions_on_this_cpu(person_model, tmp_path, monkeypatch):
    """On this CPU (bf16 where it has it), auto times f32 and bf16 on the video's first frames
    and runs the faster; the figures are cached beside the export and reused."""
    pytest.importorskip("openvino")
    from ptrack.detect import openvino_backend as ob
    from ptrack.detect.detector import file_hash, load_detector
    from ptrack.settings import load_defaults

    if "BF16" not in ob.cpu_capabilities():
        pytest.skip("this CPU has no bf16: auto has one float candidate (f32) to time")
    cfg = dict(load_defaults()["detect"], model=str(person_model), classes="all",
               backend="openvino")
    said: list[str] = []
    # a cache of its own: other tests of the session may have timed this model or built INT8
    monkeypatch.setenv("PTRACK_CACHE_DIR", str(tmp_path / "models"))
    cache = ob.export_dir(file_hash(person_model), (384, 640)) / "speed.json"
    det = load_detector(cfg, width=480, height=270, project=tmp_path, video=CLIP,
                        frame_count=35, log=said.append)
    fps = json.loads(cache.read_text())
    (entry,) = fps.values()
    assert set(entry["fps"]) == {"f32", "bf16"}
    best = max(entry["fps"], key=entry["fps"].get)
    assert det.precision == best
    assert "timing f32, bf16 on this CPU (once per model and input shape)" in said
    again = load_detector(cfg, width=480, height=270, project=tmp_path, video=CLIP,
                          frame_count=35, log=said.append)
    assert again.precision == best and "measured earlier" in again.precision_note
    assert said.count("timing f32, bf16 on this CPU (once per model and input shape)") == 1


# ----------------------------------------------------------------- confusing, made clear
def test_list_runs_shows_times_backend_precision_and_json_has_everything(proj):
    with Store.open(proj) as store:
        r = store.start_run(1, "detect", {"detect": {"conf": 0.1}})
        store.finish_run(r.id, "done", {"seconds": 12.5, "backend": "openvino",
                                        "precision": {"precision": "bf16", "why": "auto: bf16",
                                                      "gate": None},
                                        "timing": {"detector": 10.0}})
    import os
    os.environ["COLUMNS"] = "200"
    try:
        plain = run(proj, "list", "runs").stdout.splitlines()
    finally:
        del os.environ["COLUMNS"]
    assert plain[0].split() == ["run", "video", "stage", "status", "started", "seconds",
                                "backend", "precision", "why"]
    detect = next(line for line in plain if " detect " in line)
    assert "12.5" in detect and "openvino" in detect and "bf16" in detect
    rows = json.loads(run(proj, "list", "runs", "--json").stdout)
    d = next(x for x in rows if x["stage"] == "detect")
    assert d["seconds"] == 12.5 and d["precision"] == "bf16" and d["precision_why"] == "auto: bf16"
    assert d["started"] and d["finished"] and d["stats"]["timing"] == {"detector": 10.0}
    assert d["settings"] == {"detect": {"conf": 0.1}}
    assert "runs" in run(proj, "list", "--help").stdout


def test_export_tracklets_names_columns_for_what_they_hold(proj, tmp_path):
    run(proj, "export", "--level", "tracklets", "--out", tmp_path / "t.csv")
    lines = (tmp_path / "t.csv").read_text().splitlines()
    assert lines[0] == "tracklet_id,person_id,frame,time,x1,y1,x2,y2,conf"
    by_tracklet = {}
    for line in lines[1:]:
        t, p = line.split(",")[:2]
        by_tracklet[int(t)] = p
    assert by_tracklet == {1: "1", 2: "2", 3: "3", 4: "1"}  # tracklet 4 joined P1
    run(proj, "export", "--level", "tracklets", "--out", tmp_path / "t.json")
    doc = json.loads((tmp_path / "t.json").read_text())
    assert [(t["tracklet_id"], t["person_id"]) for t in doc["tracklets"]] == \
        [(1, 1), (2, 2), (3, 3), (4, 1)]


def test_show_several_persons_at_80_columns_cuts_no_value(proj, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    out = run(proj, "show", 1, 2, 3, "--graphics", "none").stdout
    assert "…" not in out
    assert max(len(line) for line in out.splitlines()) <= 80
    for text in ("35 (32 observed)", "0:00.0-0:02.8", "0-34 (35 frames)", "5-9 (5 frames)"):
        assert text in out
    assert "detected  91% of the span" in out  # the word list and table use too


def test_resumed_detect_reports_this_session_and_all(capsys):
    from ptrack.cli.detect_cmd import summary_lines
    from ptrack.detect.loop import DetectSummary

    s = DetectSummary(video="v", status="done", frames=100, detections=900, seconds=10.0,
                      backend="openvino", resumed_from=200, detections_before=600,
                      total_frames=300)
    lines = summary_lines(s)
    assert lines[0] == "v: done (resumed at frame 200)"
    assert lines[1].startswith("  frames      100 in this session, 10.0 s = 10.0 frames/s")
    assert lines[2] == "  detections  300 in this session, 900 in all (3.00 people per frame)"
    assert lines[3].startswith("  time        detector ")


def test_old_option_spellings_help_command_and_no_short_video(proj):
    out = run(proj, "show", 1, "--k", 2, "--graphics", "none").stdout  # --k still accepted
    assert "crops at" in out
    assert "--crops" in run(proj, "show", "--help").stdout
    assert "--k" not in run(proj, "show", "--help").stdout
    res = run(proj, "help", "list", "persons")
    assert res.stdout == runner.invoke(app, ["list", "persons", "--help"]).stdout
    assert "unknown command 'nope'" in run(proj, "help", "nope", code=2).stderr
    assert "No such option: -v" in run(proj, "list", "persons", "-v", "walking-pair", code=2).output


def test_rm_dry_run_removes_nothing(proj):
    res = run(proj, "rm", "walking-pair", "--dry-run")
    assert res.stdout == ("would remove walking-pair (id 1): 73 detections, 73 crops, 72 tracklet "
                          "boxes, 3 persons, 4 runs; nothing removed (--dry-run)\n")
    with Store.open(proj) as store:
        assert store.count_detections(1) == 73 and len(store.persons(1)) == 3
    assert run(proj, "rm", "walking-pair").stdout.startswith("removed walking-pair (id 1): 73 ")


def test_samples_prefer_a_box_no_other_box_overlaps():
    from ptrack.boxes import Boxes
    from ptrack.views.samples import sample_person

    frames = np.arange(10)
    xyxy = np.tile(np.array([0, 0, 50, 100], np.float32), (10, 1))
    conf = np.full(10, 0.5, np.float32)
    conf[4] = 0.95  # the most confident box is 15% covered by someone walking in front
    covered = np.zeros(10)
    covered[4] = 0.15
    b = Boxes(frames, xyxy, conf, person=np.full(10, 1), source=np.zeros(10, np.int8),
              tracklet=np.full(10, 1), det=np.zeros(10, int))
    (pick,) = sample_person(b, None, k=1, covered=covered)
    assert pick.covered == 0.0 and pick.frame != 4
    covered[:] = 0.3  # nobody free: the best covered one
    covered[4] = 0.15
    (pick,) = sample_person(b, None, k=1, covered=covered)
    assert pick.frame == 4


def test_counts_read_as_words(tmp_path):
    from ptrack.cli.detect_cmd import status_text
    from ptrack.cli.output import plural

    # the progress line says frames and a rate only once they are known
    assert status_text(8, 3000, 0.0) == "8/3000 frames"
    assert status_text(120, 3000, 11.24) == "120/3000 frames, 11.2 frames/s"

    assert [plural(1, "person"), plural(1, "run"), plural(2, "box", "boxes")] == \
        ["1 person", "1 run", "2 boxes"]
    root = empty_project(tmp_path / "p")
    assert "0 persons, 1 run" in run(root, "rm", "empty", "--dry-run").stdout
