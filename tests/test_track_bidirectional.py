"""ptrack.persons.bidirectional: forward and backward ByteTrack runs combined into purer tracklets."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from ptrack.persons.bidirectional import combine_tracks
from ptrack.settings import load_config
from ptrack.persons.track import track_detections


def combine(frame, fwd, bwd, min_run=1):
    return combine_tracks(np.array(frame), np.array(fwd), np.array(bwd), min_run=min_run).tolist()


def test_agreeing_runs_give_the_forward_tracks():
    assert combine([0, 1, 2, 0, 1, 2], [1, 1, 1, 2, 2, 2], [7, 7, 7, 3, 3, 3]) == [1, 1, 1, 2, 2, 2]


def test_a_swap_the_backward_run_does_not_make_is_cut():
    # people A and B over frames 0-5; forward track 1 follows A then jumps to B at frame 3, and
    # track 2 the other way round; backward tracks 10 (A) and 11 (B) follow each person throughout
    frame = [0, 1, 2, 3, 4, 5] * 2
    person = ["A"] * 6 + ["B"] * 6
    fwd = [1, 1, 1, 2, 2, 2] + [2, 2, 2, 1, 1, 1]
    bwd = [10] * 6 + [11] * 6
    ids = combine(frame, fwd, bwd)
    pieces = {}
    for i, p in zip(ids, person):
        pieces.setdefault(i, set()).add(p)
    assert len(pieces) == 4 and all(len(s) == 1 for s in pieces.values())  # every piece pure
    # where both runs agree nothing is cut: frames 0-2 of A stay one tracklet
    assert len(set(ids[0:3])) == 1 and len(set(ids[3:6])) == 1


def test_a_backward_id_held_for_fewer_than_min_run_rows_does_not_cut():
    frame = list(range(9))
    fwd = [1] * 9
    flicker = [5, 5, 5, 5, 7, 5, 5, 5, 5]  # one row on another backward track: noise
    assert combine(frame, fwd, flicker, min_run=3) == [1] * 9
    assert combine(frame, fwd, flicker, min_run=1) == [1] * 4 + [2] + [3] * 4
    swap = [5, 5, 5, 5, 7, 7, 7, 7, 7]  # a lasting change: cut, with the default too
    assert combine_tracks(np.array(frame), np.array(fwd), np.array(swap)).tolist() == [1] * 4 + [2] * 5


def test_rows_the_backward_run_left_untracked_do_not_cut():
    assert combine([0, 1, 2, 3], [1, 1, 1, 1], [5, -1, -1, 5]) == [1, 1, 1, 1]


def test_faint_first_boxes_only_the_backward_run_tracked_join_the_track():
    assert combine([0, 1, 2, 3, 4], [-1, -1, 1, 1, 1], [4, 4, 4, 4, 4]) == [1, 1, 1, 1, 1]


def test_an_adopted_box_never_gives_a_tracklet_two_boxes_in_a_frame():
    # frame 1: the forward track has its own box (backward: untracked) and another box only the
    # backward run tracked, on the forward track's backward track
    ids = combine([0, 1, 1, 2], [1, 1, -1, 1], [5, -1, 5, 5])
    assert ids == [1, 1, -1, 1]


def test_two_adopted_boxes_in_one_frame_the_nearer_one_stays():
    # forward track 1 over frames 0-6 is on backward track 5 but for one row on track 7 (too
    # short to cut); at frame 7 two boxes only the backward run tracked, one on each
    frame = list(range(7)) + [7, 7]
    fwd = [1] * 7 + [-1, -1]
    bwd = [5, 5, 5, 7, 5, 5, 5] + [7, 5]
    ids = combine(frame, fwd, bwd, min_run=3)
    assert ids == [1] * 7 + [-1, 1]  # track 5's box (1 frame from its last row) stays


def test_a_track_only_the_backward_run_found_is_a_tracklet_of_its_own():
    ids = combine([0, 1, 0, 1, 2], [1, 1, -1, -1, -1], [3, 3, 9, 9, 9])
    assert ids == [1, 1, 2, 2, 2]


def test_untracked_in_both_stays_untracked_and_bad_lengths_raise():
    assert combine([0, 1], [-1, -1], [-1, -1]) == [-1, -1]
    assert combine([0, 1], [-1, -1], [4, 4]) == [1, 1]  # the backward run alone tracked them
    assert combine([], [], []) == []
    with pytest.raises(ValueError, match="differ in length"):
        combine_tracks(np.array([0, 1]), np.array([1]), np.array([1, 1]))


# --------------------------------------------------------------- through track_detections
def settings(**overrides):
    return SimpleNamespace(**{**load_config()["track"], **overrides})


def test_bidirectional_tracking_keeps_a_persons_faint_first_boxes():
    """A person whose first 10 boxes are faint: forwards, a track starts only at the first
    confident box; backwards the track runs on through the faint ones (ByteTrack's low stage)."""
    n = 40
    frame = np.arange(n)
    x = 50 + 3 * frame
    xyxy = np.stack([x, np.full(n, 100), x + 60, np.full(n, 280)], axis=1).astype(np.float32)
    conf = np.where(frame < 10, 0.3, 0.9).astype(np.float32)
    fwd = track_detections(frame, xyxy, conf, None, fps=25, settings=settings(bidirectional=False))
    both = track_detections(frame, xyxy, conf, None, fps=25, settings=settings(bidirectional=True))
    assert (fwd[:10] == -1).all() and (fwd[10:] == 1).all()
    assert (both == 1).all()


def test_bidirectional_tracking_of_clean_walkers_equals_forward_tracking():
    frame, xyxy = [], []
    for f in range(30):
        for k in range(3):
            x = 50 + 200 * k + 3 * f
            frame.append(f)
            xyxy.append([x, 100, x + 60, 280])
    frame, xyxy = np.array(frame), np.array(xyxy, np.float32)
    conf = np.full(len(frame), 0.9, np.float32)
    fwd = track_detections(frame, xyxy, conf, None, fps=25, settings=settings(bidirectional=False))
    both = track_detections(frame, xyxy, conf, None, fps=25, settings=settings(bidirectional=True))
    assert (fwd == both).all() and set(both.tolist()) == {1, 2, 3}


def test_bidirectional_one_box_per_id_per_frame_on_random_scenes():
    rng = np.random.default_rng(3)
    for _ in range(20):
        n_frames, n_people = 30, int(rng.integers(2, 7))
        frame, xyxy = [], []
        pos = rng.uniform(0, 500, (n_people, 2))
        vel = rng.normal(0, 6, (n_people, 2))
        for f in range(n_frames):
            pos += vel
            for k in range(n_people):
                if rng.random() < 0.15:
                    continue
                x, y = pos[k]
                frame.append(f)
                xyxy.append([x, y, x + 50, y + 130])
        frame, xyxy = np.array(frame), np.array(xyxy, np.float32)
        conf = rng.uniform(0.05, 1.0, len(frame)).astype(np.float32)
        ids = track_detections(frame, xyxy, conf, None, fps=10, settings=settings(bidirectional=True))
        m = ids >= 0
        pairs = np.unique(np.c_[frame[m], ids[m]], axis=0)
        assert len(pairs) == m.sum()
        assert set(np.unique(ids[m]).tolist()) == set(range(1, len(np.unique(ids[m])) + 1))


def test_long_video_tracks_both_ways_in_two_processes_with_the_same_ids(monkeypatch):
    """Above PARALLEL_MIN_ROWS the backward run goes to a second process; ids are the same as
    one after the other in this process."""
    import ptrack.persons.track as tr

    rng = np.random.default_rng(5)
    frames, boxes = [], []
    for k in range(6):  # six people walking across, 400 frames
        x0, v = rng.uniform(0, 600), rng.uniform(-2, 2)
        f = np.arange(400)
        keep = rng.random(400) > 0.1
        x = x0 + v * f[keep] + rng.normal(0, 1, keep.sum())
        frames.append(f[keep])
        boxes.append(np.stack([x, np.full_like(x, 100 + 40 * k), x + 40, np.full_like(x, 200 + 40 * k)], 1))
    frame, xyxy = np.concatenate(frames), np.concatenate(boxes)
    conf = rng.uniform(0.3, 0.95, len(frame))
    cfg = {**load_config(None)["track"], "rescue": 0.0}  # one pass: its two directions counted
    calls = []
    real = tr._both_ways

    def spy(*a):
        calls.append(len(a[0][1]))
        return real(*a)

    monkeypatch.setattr(tr, "_both_ways", spy)
    monkeypatch.setattr(tr, "PARALLEL_MIN_ROWS", 10**9)
    one = tr.track_detections(frame, xyxy, conf, fps=25.0, **cfg)
    monkeypatch.setattr(tr, "PARALLEL_MIN_ROWS", 100)
    two = tr.track_detections(frame, xyxy, conf, fps=25.0, **cfg)
    assert calls == [len(frame)] * 2 and (one >= 0).mean() > 0.9
    assert np.array_equal(one, two)
