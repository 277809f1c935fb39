"""Views: crop sampling, terminal previews, the selection sheet and the annotated video.

``build_project`` makes a small real project from the walking-pair clip (two people walking
towards the camera): synthetic detections placed on the two people, real JPEG crops cut from
the clip's frames, tracklets, persons and a ranking. The other view tests import it.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ptrack.boxes import Boxes
import pytest

from ptrack.store import Store
from ptrack.detect.video import first_frames

# the clip bundled with the tests (the same file as ../shared/data/clips/walking-pair.mp4)
CLIP = Path(__file__).resolve().parent / "data" / "walking-pair.mp4"
assert CLIP.is_file(), f"bundled test clip missing: {CLIP}"

FPS, W, H, N = 12.0, 480, 270, 35
# key frames (0, 17, 34) of the two people in the clip, xyxy
MAN = np.array([[298, 100, 347, 268], [255, 93, 337, 270], [228, 80, 345, 270]], float)
WOMAN = np.array([[250, 115, 297, 262], [198, 113, 253, 270], [138, 110, 217, 270]], float)
GHOST = np.array([186, 55, 242, 215], float)  # the window: a short false person


def path_box(keys: np.ndarray, f: int) -> np.ndarray:
    """Linear motion between the key frames 0, 17, 34."""
    return np.array([np.interp(f, [0, 17, 34], keys[:, j]) for j in range(4)])


def read_frames(path: Path) -> list[np.ndarray]:
    return first_frames(path)


def build_project(root: Path, *, persons: bool = True) -> Store:
    """A project with one video, 3 persons: P1 (the man, tracklets 1+4, frames 15-17
    interpolated), P2 (the woman, tracklet 2) and P3 (a 5-frame ghost on the window). Frame 25
    has a confident duplicate box over the man, so samples should avoid it."""
    from ptrack.detect.crops import encode

    frames = read_frames(CLIP)
    assert len(frames) == N
    store = Store.open(root, create=True)
    v = store.add_video(name="walking-pair", path=str(CLIP), size=CLIP.stat().st_size,
                        fingerprint="test", fps=FPS, width=W, height=H, frame_count=N)
    run = store.start_run(v.id, "detect", {})
    rows, crops, tracks = [], [], []
    boxes = []  # (person, frame, x1, y1, x2, y2, conf, source, tracklet, det)
    for f in range(N):
        dets = []  # (box, conf, tracklet, person)
        man = path_box(MAN, f)
        if not 15 <= f <= 17:
            dets.append((man, round(0.9 - 0.004 * (f % 7), 4), 1 if f < 15 else 4, 1))
        dets.append((path_box(WOMAN, f), round(0.8 + 0.002 * (f % 5), 4), 2, 2))
        if 5 <= f <= 9:
            dets.append((GHOST + f, 0.3, 3, 3))
        if f == 25:
            dets.append((man + [4, 2, 4, 2], 0.5, -1, None))
        for d, (box, conf, tracklet, person) in enumerate(dets):
            rows.append((f, d, *box.tolist(), conf, 0))
            crops.append((b"%08d/%08d/%04d" % (v.id, f, d),
                          encode(frames[f], box, max_h=256, max_w=128, quality=90)))
            tracks.append((f, d, tracklet))
            if person is not None:
                boxes.append((person, f, *box.tolist(), conf, 0, tracklet, d))
        if 15 <= f <= 17:
            boxes.append((1, f, *man.tolist(), 0.0, 1, -1, -1))
    store.commit_detections(v.id, run.id, N, rows, crops)
    store.finish_run(run.id, "done", {})
    if not persons:
        return store
    t = np.array(tracks)
    store.replace_tracklets(v.id, t[:, 0], t[:, 1], t[:, 2])
    # stage runs as `ptrack rank` records them (default settings, each made from the one
    # before), so views find the persons current and do not re-run the stages over them
    from ptrack.settings import load_config

    cfg, upstream = load_config(), run
    for stage in ("track", "group", "rank"):
        upstream = store.start_run(v.id, stage, cfg[stage], input_run=upstream.id)
        store.finish_run(upstream.id, "done", {})
    prow = []
    for pid, ntr in ((1, 2), (2, 1), (3, 1)):
        b = [x for x in boxes if x[0] == pid]
        obs = [x for x in b if x[7] == 0]
        prow.append({"id": pid, "n_frames": len(b), "n_observed": len(obs), "first": b[0][1],
                     "last": b[-1][1], "n_tracklets": ntr,
                     "mean_height": float(np.mean([x[5] - x[3] for x in obs])),
                     "mean_conf": float(np.mean([x[6] for x in obs]))})
    links = [(1, 1), (1, 4), (2, 2), (3, 3)]
    store.replace_persons(v.id, prow, boxes, links)
    store.set_ranking(v.id, [(1, 1, 0.9, {"duration": 1.0}), (2, 2, 0.75, {}), (3, 3, 0.05, {})])
    return store


@pytest.fixture()
def project(tmp_path):
    store = build_project(tmp_path / "proj")
    yield store
    store.close()


# ------------------------------------------------------------------------------ samples
def test_coverage_by_others_pairs_within_frames_only():
    from ptrack.views.samples import coverage_by_others

    frame = np.array([0, 0, 0, 1, 2, 2])
    det = np.array([0, 1, 2, 0, 0, 1])
    xyxy = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [100, 100, 110, 110], [0, 0, 10, 10],
                     [0, 0, 10, 20], [0, 0, 10, 10]], float)
    conf = np.array([0.9, 0.9, 0.9, 0.9, 0.9, 0.1])
    cov = coverage_by_others(frame, det, xyxy, conf)
    # frame 0: half of each of the first two; frame 2: the low-confidence box covers nothing,
    # but the confident one covers all of it
    assert cov.tolist() == [0.5, 0.5, 0.0, 0.0, 0.0, 1.0]


def _boxes(frames, conf, height=100.0, source=None, det=None):
    n = len(frames)
    xyxy = np.zeros((n, 4), np.float32)
    xyxy[:, 2] = 50
    xyxy[:, 3] = height
    return Boxes(np.asarray(frames), xyxy, np.asarray(conf, np.float32), person=np.full(n, 7),
                 source=np.zeros(n, np.int8) if source is None else np.asarray(source, np.int8),
                 tracklet=np.full(n, 7), det=np.zeros(n, int) if det is None else np.asarray(det))


def test_sample_person_one_best_per_time_bin():
    from ptrack.views.samples import sample_person

    frames = np.arange(100)
    conf = np.full(100, 0.5)
    conf[[3, 30, 77]] = 0.9
    picks = sample_person(_boxes(frames, conf), None, k=4)
    assert [p.bin for p in picks] == [0, 1, 2, 3]
    # bin 2 (frames 50-74) has no confident box: the one nearest its middle
    assert [p.frame for p in picks] == [3, 30, 62, 77]


def test_sample_person_skips_interpolated_and_empty_bins():
    from ptrack.views.samples import sample_person

    frames = [0, 1, 2, 50, 51, 99]
    src = [0, 0, 1, 1, 1, 0]
    det = [0, 0, -1, -1, -1, 0]
    picks = sample_person(_boxes(frames, [0.5, 0.6, 1.0, 1.0, 1.0, 0.5], source=src, det=det),
                          None, k=4)
    assert [(p.frame, p.bin) for p in picks] == [(1, 0), (99, 3)]
    assert sample_person(_boxes([4], [0.5], source=[1], det=[-1]), None, k=8) == []


def test_sample_person_avoids_covered_boxes(project):
    from ptrack.views.samples import sample_person

    v = project.video()
    dets = project.detections(v.id)
    boxes = project.person_boxes(v.id, 1)
    # k=35 bins of one frame each: frame 25 is sampled but its coverage is known
    every = sample_person(boxes, dets, k=35)
    by_frame = {s.frame: s for s in every}
    assert set(by_frame) == set(range(35)) - {15, 16, 17}
    assert by_frame[25].covered > 0.8 and by_frame[24].covered < 0.05
    # 4 bins: 25 falls in bin 2 (frames 18-26), which has clear frames to prefer
    picks = sample_person(boxes, dets, k=4)
    assert len(picks) == 4 and 25 not in [p.frame for p in picks]
    assert all(p.covered < 0.05 for p in picks)


def test_sampling_from_the_store_reads_few_frames_and_picks_alike(project):
    from ptrack.views.samples import sample_person, sample_persons_from_store

    v = project.video()
    ids = [p["id"] for p in project.persons(v.id)]
    fast = sample_persons_from_store(project, v.id, ids, 4, per_bin=3)
    assert sorted(fast) == sorted(ids)
    for pid in ids:
        boxes = project.person_boxes(v.id, pid)
        full = sample_person(boxes, project.detections(v.id), k=4, per_bin=3)
        assert [[s.frame for s in g] for g in fast[pid]] == [[s.frame for s in g] for g in full]
    assert 25 not in [g[0].frame for g in fast[1]]  # the covered frame is still avoided
    # the shortlist holds at most per_bin boxes a bin plus the span's two ends, per person
    short = project.person_box_shortlist(v.id, ids, 4, 2)
    for pid in ids:
        mine = short[short["person"] == pid]
        assert (mine["source"] == 0).sum() <= 4 * 2 and (mine["source"] == 1).sum() >= 1
        whole = project.person_boxes(v.id, pid)
        assert mine["frame"].min() == whole["frame"].min()
        assert mine["frame"].max() == whole["frame"].max()


def test_load_crops_falls_back_to_next_candidate(project):
    from ptrack.views.samples import load_crops, sample_person

    v = project.video()
    picks = sample_person(project.person_boxes(v.id, 2), None, k=2, per_bin=3)
    assert [len(g) for g in picks] == [3, 3]
    project.delete_crops(v.id, 0)  # no crops at all: everything falls through
    assert load_crops(project, v.id, picks) == []


def test_load_crops_decodes(project):
    from ptrack.views.samples import load_crops, sample_person

    v = project.video()
    got = load_crops(project, v.id, sample_person(project.person_boxes(v.id, 2), None, k=3))
    assert len(got) == 3
    for sample, img in got:
        assert img.ndim == 3 and img.shape[2] == 3 and img.shape[0] > img.shape[1]


# ----------------------------------------------------------------------------- terminal
def _record(renderable, width=160):
    from rich.console import Console

    console = Console(record=True, width=width, force_terminal=True, color_system="truecolor",
                      file=io.StringIO())
    console.print(renderable)
    return console.export_text(styles=False, clear=False), console.export_text(styles=True)


def test_person_view_half_blocks_with_stats(project):
    from ptrack.views.samples import load_crops, sample_person
    from ptrack.views.terminal import person_view

    v = project.video()
    person = project.persons(v.id)[0]
    crops = load_crops(project, v.id, sample_person(project.person_boxes(v.id, 1),
                                                    project.detections(v.id), k=8))
    assert len(crops) == 8
    text, styled = _record(person_view(person, crops, v.fps, width=160, height=8,
                                       graphics="blocks"))
    assert text.count("▀") >= 8 * 8 * 8  # 8 crops, each 8 columns x 8 rows of half blocks
    assert "38;2;" in styled  # truecolour pixels
    for needle in ("P1", "#1", "35 (32 observed)", "0-34 (35 frames)", "91%", "0:00.0-0:02.8",
                   "0.900"):
        assert needle in text, needle
    lines = text.splitlines()
    assert len(lines) == 12  # strip 8 rows high beside the 12-line panel
    assert "rank" in lines[1] and "▀" in lines[1] and "▀" not in lines[8]
    assert "crops at" in text


def test_compare_view_side_by_side(project):
    from ptrack.views.samples import load_crops, sample_person
    from ptrack.views.terminal import compare_view, person_view

    v = project.video()
    persons = {p["id"]: p for p in project.persons(v.id)}
    views = []
    for pid in (1, 2):
        crops = load_crops(project, v.id, sample_person(project.person_boxes(v.id, pid), None, k=4))
        views.append(person_view(persons[pid], crops, v.fps, width=60, height=6, graphics="blocks",
                                 beside=False))
    text, _ = _record(compare_view(views), width=130)
    first = text.splitlines()[0]
    assert "P1" in first and "P2" in first  # both panels on the same line


def test_person_view_without_graphics(project):
    from ptrack.views.terminal import person_view

    v = project.video()
    text, _ = _record(person_view(project.persons(v.id)[2], [], v.fps, width=80, graphics="none"))
    assert "P3" in text and "no crops stored" in text and "▀" not in text


def test_fit_tile_keeps_aspect():
    from ptrack.views.terminal import fit_tile

    img = np.full((100, 100, 3), 255, np.uint8)  # square white crop in a 1:2 tile
    tile = fit_tile(img, 64, 128)
    assert tile.shape == (128, 64, 3)
    white_rows = np.flatnonzero((tile == 255).all(axis=(1, 2)))
    assert len(white_rows) == 64 and white_rows[0] == 32


# -------------------------------------------------------------------------------- sheet
def test_png_sheet(project, tmp_path):
    from PIL import Image

    from ptrack.views.sheet import TILE_H, sheet_rows, write_png

    v = project.video()
    persons = project.persons(v.id)
    rows = sheet_rows(project, v, persons, k=8)
    assert [len(r.crops) for r in rows] == [8, 8, 5]  # P3 lives 5 frames
    assert 25 not in [s.frame for s, _ in rows[0].crops]
    out = write_png(rows, v, tmp_path / "t.png", 8, total_persons=3)
    img = Image.open(out)
    assert img.width >= 8 * 80 and img.height >= 3 * TILE_H
    assert not list(tmp_path.glob(".*part*"))


def test_html_sheet(project, tmp_path):
    from ptrack.views.sheet import sheet_rows, write_html

    v = project.video()
    rows = sheet_rows(project, v, project.persons(v.id)[:2], k=3)
    text = write_html(rows, v, tmp_path / "t.html", 3, total_persons=3).read_text()
    assert text.count("data:image/jpeg;base64,") == 6
    assert "2 of 3" in text and "<b>P1</b>" in text and "<b>P2</b>" in text
    assert "src=\"http" not in text


# ------------------------------------------------------------------------------- render
def test_render_writes_video_and_no_partial(project, tmp_path):
    import cv2

    from ptrack.views.render import render_video

    v = project.video()
    persons = project.persons(v.id)
    res = render_video(v, persons[:2], project.person_boxes(v.id), tmp_path / "a.mp4",
                       encoder="mp4v")
    assert res.frames == N and res.path.exists()
    cap = cv2.VideoCapture(str(res.path))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == N
    cap.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "proj"]


def test_render_interrupted_leaves_nothing(project, tmp_path):
    from ptrack.views.render import render_video

    v = project.video()

    def stop(done, total):
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        render_video(v, project.persons(v.id), project.person_boxes(v.id), tmp_path / "b.mp4",
                     encoder="auto", progress=stop)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj"]


def test_draw_frame_labels_boxes():
    from ptrack.views.render import PALETTE, draw_frame, frame_boxes

    persons = [{"id": 14, "rank": 1}, {"id": 29, "rank": 2}]
    boxes = {"person": np.array([14, 29, 14]), "frame": np.array([0, 0, 1]),
             "xyxy": np.array([[10, 30, 60, 150], [100, 30, 160, 150], [12, 30, 62, 150]], np.float32),
             "source": np.array([0, 0, 1], np.int8)}
    by_frame = frame_boxes(persons, boxes)
    assert [it[2] for it in by_frame[0]] == ["P14 #1", "P29 #2"]
    assert by_frame[1][0][3] is True
    img = draw_frame(np.zeros((200, 200, 3), np.uint8), 0, 2, 12.0, by_frame[0])
    assert (img[100, 10] == PALETTE[0]).all() and (img[100, 100] == PALETTE[1]).all()


def test_render_draws_the_smoothed_boxes_unless_asked_for_raw():
    from ptrack.boxes import Boxes
    from ptrack.views.render import frame_boxes

    raw = np.array([[10, 30, 60, 150], [14, 34, 64, 154]], np.float32)
    smooth = np.array([[11, 31, 61, 151], [13, 33, 63, 153]], np.float32)
    boxes = Boxes(frame=np.array([0, 1]), xyxy=raw, conf=np.array([0.9, 0.8], np.float32),
                  person=np.array([3, 3]), source=np.array([0, 0], np.int8),
                  data={"smoothed": smooth})
    persons = [{"id": 3, "rank": 1}]
    assert np.array_equal(frame_boxes(persons, boxes)[1][0][0], smooth[1])
    assert np.array_equal(frame_boxes(persons, boxes, "raw")[1][0][0], raw[1])


def test_coverage_matches_brute_force():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from ptrack.views.samples import coverage_by_others

    box = st.tuples(st.integers(0, 3), st.integers(0, 50), st.integers(0, 50),
                    st.integers(1, 30), st.integers(1, 30), st.sampled_from([0.1, 0.5, 0.9]))

    @settings(max_examples=60, deadline=None)
    @given(st.lists(box, min_size=1, max_size=15))
    def check(items):
        items = sorted(items, key=lambda b: b[0])
        frame = np.array([b[0] for b in items])
        xyxy = np.array([[b[1], b[2], b[1] + b[3], b[2] + b[4]] for b in items], float)
        conf = np.array([b[5] for b in items])
        got = coverage_by_others(frame, np.arange(len(items)), xyxy, conf)
        for i in range(len(items)):
            want = 0.0
            for j in range(len(items)):
                if i != j and frame[i] == frame[j] and conf[j] >= 0.25:
                    ix = max(0, min(xyxy[i, 2], xyxy[j, 2]) - max(xyxy[i, 0], xyxy[j, 0]))
                    iy = max(0, min(xyxy[i, 3], xyxy[j, 3]) - max(xyxy[i, 1], xyxy[j, 1]))
                    want = max(want, ix * iy / ((xyxy[i, 2] - xyxy[i, 0]) * (xyxy[i, 3] - xyxy[i, 1])))
            assert abs(got[i] - min(want, 1.0)) < 1e-9

    check()
