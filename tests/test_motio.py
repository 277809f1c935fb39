"""Tests for ptrack.formats.mot: reading and writing MOTChallenge text files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ptrack.errors import PtrackError
from ptrack.boxes import Boxes
from ptrack.formats.mot import mot_boxes, read_mot, write_mot


def _write(tmp_path: Path, text: str, name: str = "mot.txt") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("line", "kind", "frame", "ident", "xyxy", "conf", "keep"),
    [
        ("1,-1,10,20,30,40,0.9,-1,-1,-1", "det", 0, -1, [10, 20, 40, 60], 0.9, True),
        ("5, 3, 1.5, 2.5, 10, 20, 1, -1, -1, -1", "gt", 4, 3, [1.5, 2.5, 11.5, 22.5], 1.0, True),
        ("2,7,0,0,1,1,0,-1,-1,-1", "gt", 1, 7, [0, 0, 1, 1], 0.0, False),
        ("3,-1,0,0,4,5", "det", 2, -1, [0, 0, 4, 5], 1.0, True),
        ("1,2,0,0,4,5,1,1,0.5", "gt", 0, 2, [0, 0, 4, 5], 1.0, True),
        ("1,2,0,0,4,5,1,7,0.5", "gt", 0, 2, [0, 0, 4, 5], 1.0, False),
        ("1,1,50,191,61,141,1,-5.0036,11.913,0.69979", "gt", 0, 1, [50, 191, 111, 332], 1.0, True),
    ],
)
def test_read_one_line(tmp_path, line, kind, frame, ident, xyxy, conf, keep):
    boxes = read_mot(_write(tmp_path, line + "\n"), kind=kind)
    assert len(boxes) == 1
    assert boxes.frame.dtype == np.int64 and boxes.frame[0] == frame
    assert isinstance(boxes, Boxes)
    assert boxes.tracklet.dtype == np.int64 and boxes.tracklet[0] == ident
    assert boxes.xyxy.dtype == np.float32
    np.testing.assert_allclose(boxes.xyxy[0], xyxy, rtol=1e-6)
    assert boxes.conf[0] == pytest.approx(conf)
    assert bool(boxes.data["keep"][0]) is keep


def test_nine_column_gt_reads_class_and_visibility(tmp_path):
    boxes = read_mot(_write(tmp_path, "1,2,0,0,4,5,1,7,0.25\n"), kind="gt")
    assert boxes.cls[0] == 7
    assert boxes.data["visibility"][0] == pytest.approx(0.25)


def test_ten_column_gt_has_no_class(tmp_path):
    boxes = read_mot(_write(tmp_path, "1,2,0,0,4,5,1,-1,-1,-1\n"), kind="gt")
    assert boxes.cls[0] == -1


@pytest.mark.parametrize("text", ["", "\n", "\n  \n"])
def test_empty_file_gives_empty_arrays(tmp_path, text):
    boxes = read_mot(_write(tmp_path, text))
    assert len(boxes) == 0
    assert boxes.xyxy.shape == (0, 4)
    assert boxes.frame.dtype == np.int64


def test_blank_lines_are_skipped(tmp_path):
    boxes = read_mot(_write(tmp_path, "1,-1,0,0,1,1,1\n\n2,-1,0,0,1,1,1\n"))
    assert boxes.frame.tolist() == [0, 1]


def test_mot_boxes_defaults():
    b = mot_boxes([0, 1], [3, 4], [[0, 0, 1, 1], [0, 0, 2, 2]])
    assert b.conf.tolist() == [1.0, 1.0] and b.cls.tolist() == [-1, -1]
    assert b.data["keep"].tolist() == [True, True] and b.tracklet.tolist() == [3, 4]
    assert len(mot_boxes([], [], np.zeros((0, 4)))) == 0


GOOD = "1,-1,0,0,1,1,1,-1,-1,-1\n"


@pytest.mark.parametrize(
    ("text", "lineno", "fragment"),
    [
        (GOOD + GOOD + "1,-1,0,0,1,1,1,-1,-1\n", 3, "columns"),
        ("1,-1,0,0,1\n", 1, "at least 6"),
        (GOOD + "1,-1,0,0,1\n", 2, "at least 6"),
        (GOOD + "1,-1,x,0,1,1,1,-1,-1,-1\n", 2, "column 3 is not a number"),
        (GOOD + "1,-1,0,0,1,1,1,-1,-1,\n", 2, "column 10 is not a number"),
        (GOOD + GOOD + "0,-1,0,0,1,1,1,-1,-1,-1\n", 3, "frame must be 1 or more"),
        (GOOD + "1.5,-1,0,0,1,1,1,-1,-1,-1\n", 2, "whole number"),
        (GOOD + "1,-1,0,0,0,1,1,-1,-1,-1\n", 2, "width"),
        (GOOD + "1,-1,0,0,1,-2,1,-1,-1,-1\n", 2, "height"),
        (GOOD + "1,-1,nan,0,1,1,1,-1,-1,-1\n", 2, "finite"),
        ("\n\n" + GOOD + "\n" + "1,-1,0,0,1,0,1,-1,-1,-1\n", 5, "height"),
    ],
)
def test_malformed_line_is_named(tmp_path, text, lineno, fragment):
    path = _write(tmp_path, text)
    with pytest.raises(PtrackError) as info:
        read_mot(path)
    assert str(info.value).startswith(f"{path}:{lineno}: ")
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("text", "lineno", "fragment"),
    [
        ("1,1,0,0,1,1,1\n1,2,0,0,1,1,1\n1,1,5,5,1,1,1\n", 3, "twice"),
        ("1,1,0,0,1,1,1\n2,-3,0,0,1,1,1\n", 2, "negative"),
    ],
)
def test_malformed_gt(tmp_path, text, lineno, fragment):
    path = _write(tmp_path, text)
    with pytest.raises(PtrackError, match=fragment) as info:
        read_mot(path, kind="gt")
    assert str(info.value).startswith(f"{path}:{lineno}: ")


def test_missing_file_is_a_ptrack_error(tmp_path):
    with pytest.raises(PtrackError, match="cannot read"):
        read_mot(tmp_path / "nope.txt")


def test_round_trip_sorts_and_converts(tmp_path):
    frame = np.array([3, 0, 0, 7])
    ids = np.array([2, 5, 1, 9])
    xyxy = np.array([[1, 2, 11, 22], [0.5, 0.25, 10.75, 30], [100, 200, 150, 300], [7, 8, 9, 10]])
    conf = np.array([0.5, 0.91, 1.0, 0.333])
    path = tmp_path / "res.txt"
    write_mot(path, frame, ids, xyxy, conf)
    first = path.read_text().splitlines()[0]
    assert first == "1,1,100.00,200.00,50.00,100.00,1.00,-1,-1,-1"
    back = read_mot(path)
    order = np.lexsort((ids, frame))
    assert back.frame.tolist() == frame[order].tolist()
    assert back.tracklet.tolist() == ids[order].tolist()
    np.testing.assert_allclose(back.xyxy, xyxy[order], atol=0.011)
    np.testing.assert_allclose(back.conf, conf[order], atol=0.006)


def test_write_empty(tmp_path):
    path = tmp_path / "res.txt"
    write_mot(path, np.zeros(0), np.zeros(0), np.zeros((0, 4)), np.zeros(0))
    assert path.read_text() == ""
    assert len(read_mot(path)) == 0


def test_write_rejects_mismatched_lengths(tmp_path):
    with pytest.raises(ValueError, match="length"):
        write_mot(tmp_path / "x.txt", np.zeros(2), np.zeros(3), np.zeros((2, 4)), np.zeros(2))


def test_reading_100k_lines_round_trips(tmp_path):
    n = 100_000
    rng = np.random.default_rng(0)
    frame = np.repeat(np.arange(n // 10), 10)
    ids = np.tile(np.arange(10), n // 10)
    xy = rng.uniform(0, 1000, (n, 2))
    xyxy = np.concatenate([xy, xy + rng.uniform(1, 100, (n, 2))], axis=1)
    path = tmp_path / "big.txt"
    write_mot(path, frame, ids, xyxy, rng.uniform(0, 1, n))
    boxes = read_mot(path, kind="gt")  # speed: bench/, not a wall-clock assert here
    assert len(boxes) == n
    assert boxes.tracklet.tolist() == ids.tolist() and boxes.frame.tolist() == frame.tolist()
    np.testing.assert_allclose(boxes.xyxy, xyxy, atol=0.011)
