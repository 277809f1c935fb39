"""ptrack.persons.cluster: joining persons across long absences under cannot-link constraints."""

from __future__ import annotations

import numpy as np
import pytest

from ptrack.persons.appearance import link_distances
from ptrack.persons.cluster import cluster_persons, pair_evidence
from tests.test_group import Scene, person_of


def dist(a, b) -> float:
    return float(link_distances(a[None], b[None], None, None)[0][0])


def frames(a, b):
    return np.arange(a, b)


_rng = np.random.default_rng(1)
RED, _OTHER, _THIRD, BLUE = (_rng.dirichlet(np.ones(64)) for _ in range(4))
RED2 = 0.9 * RED + 0.1 * _OTHER  # the same clothes seen again: distance 0.07


def test_the_same_look_after_a_long_absence_is_one_human():
    # 1 leaves and comes back 36 s later as 2; 3 (blue) was on screen with 1: the video's
    # measure of "different"
    f = {1: frames(0, 100), 2: frames(1000, 1100), 3: frames(0, 100)}
    kw = dict(embed=None, max_distance=0.15, margin=0.05, over=5)
    joins = cluster_persons([[1], [2], [3]], f, hsv={1: RED, 2: RED2, 3: BLUE}, **kw)
    assert len(joins) == 1 and (joins[0].a, joins[0].b) == ([1], [2])
    assert joins[0].distance == pytest.approx(dist(RED, RED2))
    assert joins[0].nearest_different == pytest.approx(dist(RED, BLUE))
    assert cluster_persons([[1], [2], [3]], f, hsv={1: RED, 2: _OTHER, 3: BLUE}, **kw) == []
    assert cluster_persons([[1], [2], [3]], f, hsv={1: RED, 2: RED2, 3: BLUE},
                           **{**kw, "max_distance": 0.0}) == []


def test_a_video_where_nobody_is_seen_with_anyone_joins_nothing():
    # people come one at a time (the one-by-one clip): no pair says what "different" looks
    # like here, so two people in similar clothes are not joined on appearance alone
    f = {1: frames(0, 100), 2: frames(1000, 1100)}
    assert cluster_persons([[1], [2]], f, hsv={1: RED, 2: RED2}, embed=None,
                           max_distance=0.15, margin=0.05, over=5) == []


def test_persons_on_screen_together_are_never_joined():
    f = {1: frames(0, 100), 2: frames(50, 150)}
    assert cluster_persons([[1], [2]], f, hsv={1: RED, 2: RED}, embed=None,
                           max_distance=0.5, margin=0.0, over=5) == []
    # a hand-over overlap within `over` frames does not count as together
    f = {1: frames(0, 100), 2: frames(97, 150), 3: frames(0, 100)}
    assert len(cluster_persons([[1], [2], [3]], f, hsv={1: RED, 2: RED, 3: BLUE}, embed=None,
                               max_distance=0.5, margin=0.0, over=5)) == 1


def test_margin_against_the_nearest_person_on_screen_together():
    # 1 and 3 look alike, but 1 shared the screen with 2, who looks about as close to it
    near = 0.85 * RED + 0.15 * _THIRD  # distance 0.095 to RED
    f = {1: frames(0, 100), 2: frames(0, 100), 3: frames(500, 600)}
    hsv = {1: RED, 2: near, 3: RED2}
    assert dist(RED, near) - dist(RED, RED2) < 0.05
    assert cluster_persons([[1], [2], [3]], f, hsv=hsv, embed=None, max_distance=0.3,
                           margin=0.05, over=5) == []
    joins = cluster_persons([[1], [2], [3]], f, hsv=hsv, embed=None, max_distance=0.3,
                            margin=0.0, over=5)
    assert [(j.a, j.b) for j in joins] == [([1], [3])]
    assert joins[0].nearest_different == pytest.approx(dist(RED, near))


def test_a_joined_cluster_inherits_its_members_constraints():
    # 1 and 2 are the same look at different times, 3 the same look but on screen with 2:
    # after 1+2 join, 3 may not join them, though it never met 1
    f = {1: frames(0, 100), 2: frames(500, 600), 3: frames(550, 700)}
    hsv = {1: RED, 2: RED, 3: RED2}
    joins = cluster_persons([[1], [2], [3]], f, hsv=hsv, embed=None, max_distance=0.3,
                            margin=0.0, over=5)
    assert len(joins) == 1 and sorted(joins[0].a + joins[0].b) == [1, 2]
    # user splits are hard constraints too
    joins = cluster_persons([[1], [2], [3]], {1: frames(0, 10), 2: frames(50, 60),
                                              3: frames(0, 60)},
                            hsv={1: RED, 2: RED, 3: BLUE}, embed=None, max_distance=0.3,
                            margin=0.0, over=5, cannot={1: {2}, 2: {1}})
    assert joins == []


def test_evidence_of_a_pair_matches_the_join():
    f = {1: frames(0, 100), 2: frames(0, 100), 3: frames(500, 600)}
    hsv = {1: RED, 2: BLUE, 3: RED2}
    ev = pair_evidence([1], [3], [[1], [2], [3]], f, hsv, None, over=5)
    assert ev["overlap"] == 0
    assert ev["distance"] == pytest.approx(dist(RED, RED2))
    assert ev["nearest_different"] == pytest.approx(dist(RED, BLUE))


def test_group_joins_a_return_after_20_seconds_and_explain_shows_it():
    s = Scene().add(1, range(0, 100), 100, 100, 60, 180, vx=-1)
    s.add(2, range(600, 700), 500, 100, 60, 180, vx=-1)  # 20 s later, other side
    s.add(3, range(0, 100), 400, 100, 60, 180)  # a different man on screen with the first
    g = s.group(descriptors={1: RED, 2: RED2, 3: BLUE})
    assert person_of(g) == {1: 1, 2: 1, 3: 3}
    assert len(g.joins) == 1
    g = s.group(descriptors={1: RED, 2: RED2, 3: BLUE}, cluster_max=0.0)
    assert person_of(g) == {1: 1, 2: 2, 3: 3}


def test_explain_rows_show_the_join_and_why_others_stay_apart():
    from ptrack.persons.cluster import explain_rows

    f = {1: frames(0, 100), 2: frames(0, 100), 3: frames(500, 600)}
    hsv = {1: RED, 2: BLUE, 3: RED2}
    kw = dict(over=5, max_distance=0.15, margin=0.05)
    joins = cluster_persons([[1], [2], [3]], f, hsv=hsv, embed=None, **kw)
    persons = [[1, 3], [2]]
    rows = explain_rows([3], [1], joins, persons, f, hsv, None, **kw)
    assert rows[-1]["criterion"].startswith("cluster join") and rows[-1]["verdict"] == "pass"
    assert rows[1]["value"] == pytest.approx(dist(RED, RED2))
    rows = explain_rows([2], [3], joins, persons, f, hsv, None, **kw)
    verdict = {r["criterion"]: r["verdict"] for r in rows}
    assert verdict["cluster: frames on screen together"] == "fail"  # 2 met 1, now 3's person
    assert rows[-1]["verdict"] == "fail"
    rows = explain_rows([1], [3], [], [[1, 3], [2]], f, hsv, None, **kw)
    assert rows[-1]["verdict"] == "n/a"  # one person by links already
