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
    assert set(r.components) == set(COMPONENTS) | {"observed", "quality"}
    row = r.as_rows()[0]
    assert row["person"] == 7 and row["rank"] == 1


def test_weights_change_the_order():
    # the weights order persons whose evidence is close (70 vs 60 observed frames)
    long_small = boxes(1, range(0, 70), [300, 200, 320, 240])
    short_big = boxes(2, range(0, 60), [200, 40, 440, 440])
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


def test_observed_frames_dominate_the_score():
    """A 2-frame person, big, central and confident, never ranks above persons detected in 67
    and 98 frames (issue 24: it did); the formula's factor-2 bound holds for any quality."""
    blip = boxes(1, [50, 51], [220, 40, 420, 440], conf=0.95)
    walker = boxes(2, range(0, 98), [0, 400, 20, 430], conf=0.3)
    sitter = boxes(3, list(range(0, 67)) + list(range(200, 201)), [600, 0, 640, 30], conf=0.3)
    r = rank_persons(*cat(blip, walker, sitter), n_frames=300, width=W, height=H, settings=rs())
    assert r.person.tolist() == [2, 3, 1]
    q, obs = r.components["quality"], r.components["observed"]
    assert r.score == pytest.approx(obs * (0.5 + 0.5 * q))
    assert obs.tolist() == pytest.approx([98 / 300, 68 / 300, 2 / 300])
    # twice the observed frames at the worst quality beats the best quality
    worst = boxes(4, range(0, 40, 2), [0, 470, 1, 471], conf=0.0)  # 20 frames spread over 40
    best = boxes(5, range(100, 110), [220, 0, 420, 480], conf=1.0)  # 10 frames, perfect
    r = rank_persons(*cat(worst, best), n_frames=300, width=W, height=H, settings=rs())
    assert r.person.tolist() == [4, 5]
    # quality_share 0: the observed share alone
    r0 = rank_persons(*cat(blip, walker, sitter), n_frames=300, width=W, height=H,
                      settings=rs(quality_share=0.0))
    assert r0.score.tolist() == pytest.approx([98 / 300, 68 / 300, 2 / 300])


def test_rank_help_states_the_formula():
    from typer.testing import CliRunner

    from ptrack.cli import app

    text = " ".join(CliRunner().invoke(app, ["rank", "--help"], terminal_width=200).output.split())
    assert "score = observed x (1 - s + s x quality)" in text
    assert "rank.quality_share" in text and "never ranks lower" in text
