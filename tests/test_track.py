"""ptrack.persons.track: ByteTrack over stored detections, ids mapped back to rows."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from ptrack.settings import load_config
from ptrack.errors import PtrackError
from ptrack.persons.track import confidence_scale, height_boost, track_detections


def settings(**overrides):
    """The config's track settings as one object (as ptrack.settings's settings), with overrides."""
    return SimpleNamespace(**{**load_config()["track"], **overrides})


def track(frame, xyxy, conf, *, fps, **overrides):
    return track_detections(frame, xyxy, conf, None, fps=fps, settings=settings(**overrides))


def walkers(n_frames=40, people=2, skip=(), conf=0.9):
    """Rows of ``people`` walkers 200 px apart moving right 3 px/frame; frames in ``skip`` have no boxes."""
    frame, xyxy = [], []
    for f in range(n_frames):
        if f in skip:
            continue
        for k in range(people):
            x = 50 + 200 * k + 3 * f
            frame.append(f)
            xyxy.append([x, 100, x + 60, 280])
    n = len(frame)
    return np.array(frame), np.array(xyxy, np.float32), np.full(n, conf, np.float32)


def test_two_walkers_get_two_ids_numbered_by_first_appearance():
    frame, xyxy, conf = walkers()
    ids = track(frame, xyxy, conf, fps=25)
    assert ids.dtype == np.int64 and len(ids) == len(frame)
    assert (ids[0::2] == 1).all() and (ids[1::2] == 2).all()  # first frame included


def test_later_tracks_get_their_first_detection_too():
    frame, xyxy, conf = walkers(people=1)
    frame2, xyxy2, conf2 = walkers(people=1)
    late = frame2 >= 10
    f = np.r_[frame, frame2[late]]
    b = np.r_[xyxy, xyxy2[late] + np.float32([0, 250, 0, 250])]
    c = np.r_[conf, conf2[late]]
    ids = track(f, b, c, fps=25)
    assert (ids[: len(frame)] == 1).all()
    assert (ids[len(frame) :] == 2).all()  # including its first box, before ByteTrack confirmed it


def test_row_order_does_not_matter():
    frame, xyxy, conf = walkers(people=3)
    perm = np.random.default_rng(0).permutation(len(frame))
    ids = track(frame, xyxy, conf, fps=25)
    ids_p = track(frame[perm], xyxy[perm], conf[perm], fps=25)
    assert np.array_equal(ids[perm], ids_p)


def test_lost_buffer_is_in_seconds():
    # a 12-frame gap: inside a 1 s buffer at 25 fps (25 frames), outside it at 10 fps (10 frames)
    skip = set(range(15, 27))
    frame, xyxy, conf = walkers(people=1, skip=skip)
    # the walker stands still across the gap so the Kalman prediction still overlaps
    xyxy[:] = [50, 100, 110, 280]
    ids25 = track(frame, xyxy, conf, fps=25, track_buffer_s=1.0)
    ids10 = track(frame, xyxy, conf, fps=10, track_buffer_s=1.0)
    assert set(ids25.tolist()) == {1}
    assert set(ids10.tolist()) == {1, 2} and (ids10[frame >= 27] == 2).all()


def test_low_confidence_boxes_do_not_start_tracks():
    frame, xyxy, conf = walkers(people=1, conf=0.5)
    absolute = dict(conf_reference_q=0.0)
    ids = track(frame, xyxy, conf, fps=25, new_track_thresh=0.7, **absolute)
    assert (ids == -1).all()
    ids = track(frame, xyxy, conf, fps=25, new_track_thresh=0.4,
                           track_high_thresh=0.4, **absolute)
    assert (ids == 1).all()


def test_thresholds_are_relative_to_the_videos_confident_boxes():
    # a detector that never scores above 0.5 still gets tracks ...
    frame, xyxy, conf = walkers(people=1, conf=0.5)
    one_pass = dict(rescue=0.0)
    assert (track(frame, xyxy, conf, fps=25, **one_pass) == 1).all()
    # ... while next to confident boxes (0.9) the same 0.5 boxes are too weak to start one
    f2, x2, c2 = walkers(people=1, conf=0.9)
    x2 = x2 + np.array([400, 0, 400, 0], np.float32)
    ids = track(np.concatenate([frame, f2]), np.concatenate([xyxy, x2]),
                np.concatenate([conf, c2]), fps=25, **one_pass)
    assert (ids[: len(frame)] == -1).all() and (ids[len(frame):] >= 1).all()
    assert confidence_scale(np.array([0.5, 0.9, 0.9, 0.9]), 0.9) == pytest.approx(0.9)
    assert confidence_scale(np.array([0.5, 0.9]), 0.0) == 1.0


def test_empty_input_and_bad_settings():
    assert track(np.zeros(0), np.zeros((0, 4)), np.zeros(0), fps=25).shape == (0,)
    frame, xyxy, conf = walkers()
    cfg = load_config()["track"]
    with pytest.raises(PtrackError, match="unknown track setting"):
        track_detections(frame, xyxy, conf, fps=25, **cfg, buffer=3)
    with pytest.raises(PtrackError, match="missing track setting.*split_gap_s"):
        track_detections(frame, xyxy, conf, fps=25,
                         settings=SimpleNamespace(**{k: v for k, v in cfg.items() if k != "split_gap_s"}))
    with pytest.raises(PtrackError, match="either"):
        track_detections(frame, xyxy, conf, fps=25, settings=settings(), track_buffer_s=1.0)
    with pytest.raises(PtrackError, match="fps"):
        track(frame, xyxy, conf, fps=0)


def test_keywords_and_settings_object_give_the_same_tracks():
    frame, xyxy, conf = walkers(people=3, skip={5, 6})
    cfg = load_config()["track"]
    assert np.array_equal(track_detections(frame, xyxy, conf, fps=25, **cfg),
                          track_detections(frame, xyxy, conf, fps=25, settings=SimpleNamespace(**cfg)))


def test_long_internal_gaps_are_cut_for_grouping_to_judge():
    # a standing person unseen for 20 frames (0.8 s at 25 fps): ByteTrack re-finds it (2 s buffer)
    frame, xyxy, conf = walkers(people=1, skip=set(range(15, 35)))
    xyxy[:] = [50, 100, 110, 280]
    kept = track(frame, xyxy, conf, fps=25, track_buffer_s=2.0, split_gap_s=0)
    cut = track(frame, xyxy, conf, fps=25, track_buffer_s=2.0, split_gap_s=0.7)
    assert set(kept.tolist()) == {1}
    assert (cut[frame < 15] == 1).all() and (cut[frame >= 35] == 2).all()
    longer = track(frame, xyxy, conf, fps=25, track_buffer_s=2.0, split_gap_s=1.0)
    assert set(longer.tolist()) == {1}


def test_random_scenes_one_box_per_id_per_frame_and_order_free():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=25, deadline=None)
    @given(st.integers(0, 10_000), st.integers(1, 6), st.integers(1, 30))
    def check(seed, people, n_frames):
        rng = np.random.default_rng(seed)
        frame = np.repeat(np.arange(n_frames), people)
        x = rng.uniform(0, 500, people)[np.tile(np.arange(people), n_frames)] + rng.normal(0, 20, len(frame))
        xyxy = np.c_[x, 100 + 0 * x, x + 50, 250 + 0 * x].astype(np.float32)
        keep = rng.random(len(frame)) < 0.8
        frame, xyxy = frame[keep], xyxy[keep]
        conf = rng.uniform(0.3, 1.0, len(frame)).astype(np.float32)
        ids = track(frame, xyxy, conf, fps=10)
        assert ids.min(initial=-1) >= -1
        tracked = ids >= 0
        pairs = np.stack([frame[tracked], ids[tracked]], 1)
        assert len(np.unique(pairs, axis=0)) == len(pairs)
        if tracked.any():  # numbered 1..K by first appearance
            assert sorted(set(ids[tracked].tolist())) == list(range(1, ids.max() + 1))
        perm = rng.permutation(len(frame))
        assert np.array_equal(track(frame[perm], xyxy[perm], conf[perm], fps=10), ids[perm])

    check()


def small_and_near(small_conf: float, n_frames: int = 40):
    """A near walker (180 px tall, conf 0.9) and a small far one (40 px tall) 300 px to its
    right, both seen in every frame."""
    frame, xyxy, conf = walkers(n_frames=n_frames, people=1, conf=0.9)
    far = np.array([[300 + 2 * f, 100, 316 + 2 * f, 140] for f in range(n_frames)], np.float32)
    return (np.r_[frame, np.arange(n_frames)], np.r_[xyxy, far],
            np.r_[conf, np.full(n_frames, small_conf, np.float32)])


def test_a_box_is_judged_against_boxes_of_its_own_height():
    frame, xyxy, conf = small_and_near(0.55)
    h = xyxy[:, 3] - xyxy[:, 1]
    boost = height_boost(conf, h, 0.9, 1.5)
    assert boost[h > 100] == pytest.approx(1.0)  # the near walker sets the video's reference
    assert boost[h < 100] == pytest.approx(1.5)  # 0.9 / 0.55 = 1.64, at most 1.5
    assert height_boost(conf, h, 0.9, 3.0)[h < 100] == pytest.approx(0.9 / 0.55, rel=1e-3)
    assert (height_boost(conf, h, 0.9, 1.0) == 1).all()  # 1 = off
    assert (height_boost(conf, h, 0.0, 1.5) == 1).all()  # absolute thresholds: nothing relative
    # within 10% of the video's reference: left alone
    f2, x2, c2 = small_and_near(0.85)
    assert (height_boost(c2, x2[:, 3] - x2[:, 1], 0.9, 1.5) == 1).all()
    # too few boxes of a height (29 < 30) to tell what that height scores
    f3, x3, c3 = small_and_near(0.55, n_frames=29)
    assert (height_boost(c3, x3[:, 3] - x3[:, 1], 0.9, 1.5) == 1).all()


def test_small_far_people_start_tracklets_when_judged_by_height():
    frame, xyxy, conf = small_and_near(0.55)
    far = xyxy[:, 3] - xyxy[:, 1] < 100
    # 0.55 < 0.7 x 0.9: by the video's reference the far walker never starts a tracklet
    ids = track(frame, xyxy, conf, fps=25, height_boost_max=1.0, rescue=0.0)
    assert (ids[far] == -1).all() and (ids[~far] == 1).all()
    # against boxes of its own height (0.55 x 1.5 = 0.83) it is tracked, in one tracklet
    ids = track(frame, xyxy, conf, fps=25, height_boost_max=1.5, rescue=0.0)
    assert (ids[~far] == 1).all() and (ids[far] == 2).all()


def test_rescue_tracks_people_the_first_pass_left_and_changes_none_of_its_tracklets():
    frame, xyxy, conf = walkers(n_frames=40, people=3, conf=0.9)
    weak = (np.arange(len(frame)) % 3 == 1) & (frame >= 10)  # the middle walker, from frame 10
    conf = np.where(np.arange(len(frame)) % 3 == 1, 0.55, conf).astype(np.float32)
    keep = ~((np.arange(len(frame)) % 3 == 1) & (frame < 10))
    frame, xyxy, conf, weak = frame[keep], xyxy[keep], conf[keep], weak[keep]
    first = track(frame, xyxy, conf, fps=25, rescue=0.0)
    assert (first[weak] == -1).all()  # 0.55 < 0.7 x 0.9: never started
    both = track(frame, xyxy, conf, fps=25, rescue=0.8)  # second pass: 0.56 x 0.9 = 0.50
    assert len(np.unique(both[weak])) == 1 and both[weak][0] == 3  # numbered by first appearance
    assert np.array_equal(both[~weak], first[~weak])  # the first pass's tracklets as they were
    weaker = np.where(weak, 0.45, conf).astype(np.float32)  # below the second pass's 0.50 too
    assert (track(frame, xyxy, weaker, fps=25, rescue=0.8)[weak] == -1).all()


def test_rescue_leaves_second_boxes_of_tracked_people_alone():
    # two walkers tracked by the first pass; the detector also gives walker 1 a weak second box
    # (its upper 60%, inside its box) and a small far person (30 px) stands inside walker 2's
    # box: the second box is not a person of its own, the far person may be
    from ptrack.persons.track import _second_boxes

    frame, xyxy, conf = walkers(n_frames=40, people=2, conf=0.9)
    f = np.arange(40)
    x = 50 + 3 * f
    part = np.column_stack([x + 2, np.full(40, 100.0), x + 58, np.full(40, 208.0)])
    x2 = 250 + 3 * f
    far = np.column_stack([x2 + 20, np.full(40, 120.0), x2 + 32, np.full(40, 150.0)])
    frame = np.r_[frame, f, f]
    xyxy = np.r_[xyxy, part, far].astype(np.float32)
    conf = np.r_[conf, np.full(40, 0.55), np.full(40, 0.55)].astype(np.float32)
    kind = np.r_[np.zeros(80), np.ones(40), np.full(40, 2)]
    off = {"height_boost_max": 1.0}  # the rescue pass alone
    assert (track(frame, xyxy, conf, fps=25, rescue=0.0, **off)[kind > 0] == -1).all()
    ids = track(frame, xyxy, conf, fps=25, rescue=0.8, **off)
    assert (ids[kind == 1] == -1).all()  # a second box of walker 1: left alone
    assert len(np.unique(ids[kind == 2])) == 1 and ids[kind == 2][0] == 3  # the far person
    out = np.where(kind == 0, 1, -1)
    np.testing.assert_array_equal(_second_boxes(out, frame, xyxy), kind == 1)
