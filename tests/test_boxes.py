"""The one box-set type: validation at construction, indexing, sorting, concatenation."""

import numpy as np
import pytest

from ptrack.boxes import Boxes


def _boxes(n=4, **ids):
    frame = np.arange(n)[::-1]
    xyxy = np.stack([np.arange(n), np.zeros(n), np.arange(n) + 10, np.full(n, 20)], axis=1)
    return Boxes(frame, xyxy, np.linspace(0.1, 0.9, n), **ids)


def test_columns_get_canonical_dtypes_and_cls_defaults_to_unknown():
    b = _boxes(3)
    assert b.frame.dtype == np.int64 and b.xyxy.dtype == np.float32 and b.conf.dtype == np.float32
    assert b.cls.tolist() == [-1, -1, -1]
    assert b.tracklet is None
    assert len(b) == 3


@pytest.mark.parametrize("bad", [
    dict(frame=np.zeros((2, 2)), xyxy=np.zeros((2, 4)), conf=np.zeros(2)),
    dict(frame=np.zeros(2), xyxy=np.zeros((2, 3)), conf=np.zeros(2)),
    dict(frame=np.zeros(2), xyxy=np.zeros((2, 4)), conf=np.zeros(3)),
    dict(frame=np.zeros(2), xyxy=np.zeros((2, 4)), conf=np.zeros(2), tracklet=np.zeros(1)),
    dict(frame=np.array([0.5, 1.0]), xyxy=np.zeros((2, 4)), conf=np.zeros(2)),
    dict(frame=np.zeros(2), xyxy=np.zeros((2, 4)), conf=np.zeros(2), data={"x": np.zeros(5)}),
])
def test_wrong_shapes_and_fractional_ids_are_refused(bad):
    with pytest.raises(ValueError):
        Boxes(**bad)


def test_indexing_keeps_every_column_aligned():
    b = _boxes(4, tracklet=[7, 8, 9, 10], data={"tag": np.array(list("abcd"))})
    picked = b[np.array([True, False, True, False])]
    assert picked.tracklet.tolist() == [7, 9]
    assert picked.data["tag"].tolist() == ["a", "c"]
    assert picked.frame.tolist() == [3, 1]
    one = b[2]
    assert len(one) == 1 and one.tracklet.tolist() == [9]


def test_sorted_by_several_keys_and_concat_keeps_shared_columns():
    b = Boxes([2, 1, 2, 1], np.zeros((4, 4)), np.zeros(4), person=[1, 2, 2, 1])
    s = b.sorted("person", "frame")
    assert list(zip(s.person.tolist(), s.frame.tolist())) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    both = Boxes.concat([b, _boxes(2)])
    assert len(both) == 6 and both.person is None
    assert Boxes.concat([b, b]).person.tolist() == [1, 2, 2, 1] * 2


def test_empty_and_geometry():
    e = Boxes.empty("tracklet")
    assert len(e) == 0 and e.xyxy.shape == (0, 4) and e.tracklet.shape == (0,)
    b = Boxes([0], [[10, 20, 30, 60]], [0.5])
    assert b.height.tolist() == [40.0]
    assert b.center.tolist() == [[20.0, 40.0]]
    assert b.xywh.tolist() == [[20.0, 40.0, 20.0, 40.0]]
    assert b.with_columns(person=[3], xyxy_raw=[[0, 0, 1, 1]]).data["xyxy_raw"].shape == (1, 4)
    with pytest.raises(KeyError):
        b.column("person")
