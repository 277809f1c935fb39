"""ptrack.persons.rank: person scores from duration, coverage, size, centrality and confidence."""

from __future__ import annotations

import numpy as np
import pytest

from ptrack.errors import PtrackError
from ptrack.persons.rank import COMPONENTS, rank_persons
from ptrack.settings import RankSettings, defaults

W, H, N = 640, 480, 100


def rs(**overrides) -> RankSettings:
    return defaults().rank.replace(**overrides)


def boxes(pid, frames, box, conf=0.9, source=0):
    n = len(frames)
    return (np.full(n, pid), np.asarray(frames), np.tile(np.float32(box), (n, 1)), np.full(n, conf), np.full(n, source))


def cat(*parts):
    return [np.concatenate(x) for x in zip(*parts)]


def test_long_large_central_person_ranks_first():
    main = boxes(7, range(0, 100), [270, 100, 370, 400])
    passer = boxes(3, range(10, 30), [0, 300, 30, 380], conf=0.6)
    person, frame, xyxy, conf, source = cat(main, passer)
    r = rank_persons(person, frame, xyxy, conf, source, n_frames=N, width=W, height=H, settings=rs())
    assert r.person.tolist() == [7, 3] and r.rank.tolist() == [1, 2]
    assert r.score[0] > r.score[1]
    assert r.components["duration"].tolist() == pytest.approx([1.0, 0.2])
    assert r.components["coverage"].tolist() == pytest.approx([1.0, 1.0])
    assert r.components["size"][0] == pytest.approx(1.0)  # 300 px >= half the image height
    assert r.components["size"][1] == pytest.approx(80 / 240)
    assert r.components["confidence"].tolist() == pytest.approx([0.9, 0.6])
    assert r.components["centrality"][0] > 0.9 > r.components["centrality"][1]
    assert set(r.components) == set(COMPONENTS)
    row = r.as_rows()[0]
    assert row["person"] == 7 and row["rank"] == 1


def test_weights_change_the_order():
    long_small = boxes(1, range(0, 100), [300, 200, 320, 240])
    short_big = boxes(2, range(0, 30), [200, 40, 440, 440])
    args = cat(long_small, short_big)
    r = rank_persons(*args, n_frames=N, width=W, height=H, settings=rs())
    assert r.person.tolist() == [1, 2]
    r = rank_persons(*args, n_frames=N, width=W, height=H, settings=rs(w_duration=0.0, w_coverage=0.0))
    assert r.person.tolist() == [2, 1]


def test_interpolated_boxes_do_not_count_as_observed():
    a = boxes(1, range(0, 50), [270, 100, 370, 400])
    b = boxes(1, range(50, 100), [270, 100, 370, 400], conf=0.0, source=1)
    r = rank_persons(*cat(a, b), n_frames=N, width=W, height=H, settings=rs())
    assert r.components["coverage"][0] == pytest.approx(0.5)
    assert r.components["confidence"][0] == pytest.approx(0.9)
    assert r.components["duration"][0] == pytest.approx(1.0)


def test_ties_break_by_person_id_and_empty_input():
    a = boxes(5, range(0, 10), [270, 100, 370, 400])
    b = boxes(2, range(0, 10), [270, 100, 370, 400])
    r = rank_persons(*cat(a, b), n_frames=N, width=W, height=H, settings=rs())
    assert r.person.tolist() == [2, 5] and r.score[0] == r.score[1]
    e = rank_persons(np.zeros(0), np.zeros(0), np.zeros((0, 4)), np.zeros(0), None, n_frames=N, width=W, height=H, settings=rs())
    assert len(e.person) == 0


def test_bad_settings_raise():
    a = boxes(1, range(0, 10), [0, 0, 10, 10])
    with pytest.raises(PtrackError, match="unknown rank setting"):
        rs(w_speed=1)
    with pytest.raises(PtrackError, match="at least one rank weight"):
        rs(**{"w_" + c: 0.0 for c in COMPONENTS})
    with pytest.raises(PtrackError, match="'rank.w_size' must be a finite number"):
        rs(w_size=float("nan"))
    with pytest.raises(PtrackError, match="RankSettings"):
        rank_persons(*a, n_frames=N, width=W, height=H, settings={"w_size": 1.0})
    with pytest.raises(PtrackError):
        rank_persons(*a, n_frames=0, width=W, height=H, settings=rs())
