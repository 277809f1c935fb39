"""The learned embedding in ``group``: its 0-1 distance, the combination with the colour
histograms, long-gap links decided by it, and ``--explain`` showing it (constructed vectors)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ptrack.persons.appearance import EMBED_UNIT, embedding_distance, link_distance
from ptrack.persons.group import explain
from ptrack.persons.metric import cooccurring, learn_kissme, tracklet_vectors

try:
    from tests.test_group import FPS, Scene, gs, person_of
    from tests.test_metric import identities
except ImportError:  # tests/ not a package
    from test_group import FPS, Scene, gs, person_of
    from test_metric import identities

GREY = np.full(72, 1 / 72)  # one colour histogram for everybody: colours cannot tell them apart
K = 0.25 / EMBED_UNIT  # the vectors below are written for EMBED_UNIT 0.25


def test_embedding_distance_is_on_the_0_1_scale():
    a = np.zeros(4)
    assert embedding_distance(a, a) == 0.0
    assert embedding_distance(a, np.r_[1.0, 0, 0, 0]) == pytest.approx(EMBED_UNIT)
    assert embedding_distance(a, np.r_[100.0, 0, 0, 0]) == 1.0
    assert embedding_distance(a, np.full(4, np.nan)) == 1.0
    d = [embedding_distance(a, np.r_[x, 0, 0, 0]) for x in (0.5, 1.0, 2.0)]
    assert d == sorted(d)


def test_link_distance_is_the_mean_of_the_kinds_both_sides_have():
    red = np.r_[np.full(18, 1 / 36), np.zeros(18), np.full(18, 1 / 36), np.zeros(18)]
    blue = np.r_[np.zeros(18), np.full(18, 1 / 36), np.zeros(18), np.full(18, 1 / 36)]
    e0, e1 = np.zeros(3), np.r_[1.0, 0, 0]
    d, parts = link_distance(red, blue, e0, e1)
    assert set(parts) == {"hsv", "embed"}
    assert parts["embed"] == pytest.approx(EMBED_UNIT) and parts["hsv"] == pytest.approx(1.0)
    assert d == pytest.approx((1.0 + EMBED_UNIT) / 2)
    assert link_distance(red, red, e0, None) == (0.0, {"hsv": 0.0})
    assert link_distance(None, red, e0, e1)[1] == {"embed": pytest.approx(EMBED_UNIT)}
    d, parts = link_distance(None, red, None, e1)
    assert math.isnan(d) and parts == {}


@pytest.mark.parametrize("seed", [0, 1])
def test_learned_vectors_rank_the_same_person_closer_even_where_colours_tie(seed):
    X, trk, frm, who = identities(seed)
    m = learn_kissme(X, trk, frm, dims=8, per_group=50, cooccur=cooccurring(trk, frm))
    ids, V = tracklet_vectors(X, trk, m)
    same, diff = [], []
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            d, _ = link_distance(GREY, GREY, V[i], V[j])  # combo: colours say nothing here
            (same if who[ids[i]] == who[ids[j]] else diff).append(d)
    assert np.median(same) < np.median(diff)
    wins = np.mean([s < d for s in same for d in diff])
    assert wins > 0.9


def returning_person():
    """Leaves at the left edge, comes back 6 s later on the right: motion cannot explain it."""
    return (Scene().add(1, range(0, 100), 100, 100, 60, 180, vx=-1)
            .add(2, range(250, 350), 500, 100, 60, 180, vx=-1))


def test_long_gap_is_linked_on_the_embedding_only_when_it_agrees():
    s = returning_person()
    me = np.r_[0.3, -0.2, 0.1]
    close, far = me + np.r_[0.1, 0, 0] * K, me + np.r_[2.0, 0, 0] * K  # distances 0.025 and 0.5
    assert person_of(s.group(embeddings={1: me, 2: close})) == {1: 1, 2: 1}
    assert person_of(s.group(embeddings={1: me, 2: far})) == {1: 1, 2: 2}
    assert person_of(s.group()) == {1: 1, 2: 2}  # nothing to recognise the person by
    # combined with colours that tie, the embedding still decides
    assert person_of(s.group(embeddings={1: me, 2: close}, descriptors={1: GREY, 2: GREY})) == {1: 1, 2: 1}
    assert person_of(s.group(embeddings={1: me, 2: far}, descriptors={1: GREY, 2: GREY})) == {1: 1, 2: 2}


def test_a_joined_person_is_recognised_by_the_mean_of_its_tracklets():
    # 1 -> 2 join on motion (short gap); 3 returns 6 s later: its vector is near the mean of
    # 1 and 2 but beyond app_strong from each of them alone
    s = Scene().add(1, range(0, 50), 100, 100, 60, 180, vx=-1).add(2, range(55, 100), 45, 100, 60, 180, vx=-1)
    s.add(3, range(250, 350), 500, 100, 60, 180, vx=-1)
    e1, e2 = np.r_[-0.7, 0.0] * K, np.r_[0.7, 0.0] * K
    e3 = np.r_[0.0, 0.1] * K
    assert embedding_distance(e1, e3) > gs().app_strong and embedding_distance(e2, e3) > gs().app_strong
    assert embedding_distance((e1 + e2) / 2, e3) < gs().app_strong
    assert person_of(s.group(embeddings={1: e1, 2: e2, 3: e3})) == {1: 1, 2: 1, 3: 1}
    assert person_of(s.group(embeddings={1: e1, 2: e2, 3: e3}, n_rounds=1)) == {1: 1, 2: 1, 3: 3}


def test_explain_shows_the_distance_used_and_its_parts():
    s = returning_person()
    me = np.r_[0.3, -0.2, 0.1]
    emb = {1: me, 2: me + np.r_[0.2, 0, 0] * K}
    ex = explain(1, 2, *s.arrays(), fps=FPS, descriptors={1: GREY, 2: GREY}, embeddings=emb,
                 settings=gs())
    rows = {e["criterion"]: e for e in ex}
    main = rows["appearance distance (no motion support)"]
    assert main["value"] == pytest.approx((0.0 + 0.05) / 2)
    assert main["threshold"] == gs().app_strong and main["verdict"] == "pass"
    assert rows["  part: colour histograms"]["value"] == pytest.approx(0.0)
    assert rows["  part: learned embedding"]["value"] == pytest.approx(0.05)
    assert rows["  part: learned embedding"]["threshold"] == gs().app_strong
    assert ex[-1]["criterion"] == "link" and ex[-1]["verdict"] == "pass"
    assert all(math.isfinite(e["value"]) and math.isfinite(e["threshold"]) for e in ex)
    json.dumps(ex)  # plain floats and strings
    # embeddings alone: one part, equal to the distance
    ex = explain(1, 2, *s.arrays(), fps=FPS, embeddings=emb, settings=gs())
    names = [e["criterion"] for e in ex]
    assert "  part: learned embedding" in names and "  part: colour histograms" not in names


def test_appearance_setting_takes_only_the_kept_choices():
    from ptrack.errors import PtrackError

    assert gs().appearance == "hsv"  # the measured best on persons (bench/appearance_group.py)
    assert gs(appearance="combo").appearance == "combo"
    for bad in ("embed", "HSV", ""):
        with pytest.raises(PtrackError, match="group.appearance"):
            gs(appearance=bad)
