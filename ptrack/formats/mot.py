"""Read and write MOTChallenge text files (``det.txt``, ``gt.txt``, tracker results).

A MOTChallenge line is ``frame,id,left,top,width,height,conf,x,y,z`` with 1-based frames. Ground
truth from MOT16/17/20 has 9 columns instead: ``...,conf,class,visibility``. In memory ptrack
uses 0-based frames and ``x1, y1, x2, y2`` boxes.

Reading is vectorised (``numpy.loadtxt`` plus array checks); only when that fails is the file
scanned line by line, to name the first bad line in the error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from ptrack.boxes import Boxes
from ptrack.errors import PtrackError

MIN_COLUMNS = 6
"""frame, id, left, top, width, height; the confidence column is optional on reading."""

PEDESTRIAN_CLASS = 1
"""Class number of a pedestrian in 9-column (MOT16/17/20) ground truth."""

_ROW_FORMAT = "%d,%d,%.2f,%.2f,%.2f,%.2f,%.2f,-1,-1,-1"


def mot_boxes(frame, ids, xyxy, conf=None, *, keep=None, cls=None, visibility=None) -> Boxes:
    """MOTChallenge boxes as a :class:`ptrack.boxes.Boxes`.

    The MOT id (track or ground-truth id, -1 in detection files) is the ``tracklet`` column;
    ``conf`` is column 7 (detection confidence, or in ground truth the "consider" flag);
    ``cls`` the class column of 9-column ground truth (-1 when absent). Two ``data`` columns:
    ``keep`` (bool: the boxes that count when scoring) and ``visibility`` (float32, -1 when
    absent).
    """
    frame = np.asarray(frame, np.int64).reshape(-1)
    n = len(frame)
    conf = np.ones(n, np.float32) if conf is None else conf
    keep = np.ones(n, bool) if keep is None else np.asarray(keep, bool)
    visibility = np.full(n, -1.0, np.float32) if visibility is None else visibility
    return Boxes(frame, np.asarray(xyxy, np.float32).reshape(n, 4), conf,
                 None if cls is None else np.asarray(cls, np.int64), tracklet=ids,
                 data={"keep": keep, "visibility": np.asarray(visibility, np.float32)})


def read_mot(path: str | Path, *, kind: Literal["det", "gt"] = "det") -> Boxes:
    """Read a MOTChallenge detection, ground-truth or result file.

    Args:
        path: The text file to read.
        kind: ``"det"`` for detections or tracker results, ``"gt"`` for ground truth (ids must
            be non-negative and unique within a frame; column 7 and, in 9-column files,
            column 8 decide ``keep``).

    Returns:
        The boxes (:func:`mot_boxes`: ids in ``tracklet``, ``keep`` and ``visibility`` in
        ``data``), in file order, with 0-based frames. An empty file gives no boxes.

    Raises:
        PtrackError: ``"<path>:<line>: <what is wrong>"`` for the first bad line, or when the
            file cannot be read.
    """
    if kind not in ("det", "gt"):
        raise ValueError(f"kind must be 'det' or 'gt', not {kind!r}")
    path = Path(path)
    lines, linenos = _nonblank_lines(path)
    rows = _parse_rows(path, lines, linenos)
    _check_rows(path, rows, linenos, kind)
    return _boxes_from_rows(rows, kind)


def write_mot(
    path: str | Path,
    frame: np.ndarray,
    ids: np.ndarray,
    xyxy: np.ndarray,
    conf: np.ndarray,
) -> None:
    """Write boxes as a MOTChallenge result file.

    Lines are ``frame,id,left,top,width,height,conf,-1,-1,-1`` with 1-based frames, sorted by
    frame then id, numbers with 2 decimals.

    Args:
        path: The file to write (replaced if it exists).
        frame: 0-based frame numbers, shape (N,).
        ids: Track ids, shape (N,).
        xyxy: Boxes ``x1, y1, x2, y2``, shape (N, 4).
        conf: Confidences, shape (N,).

    Raises:
        ValueError: When the arrays do not have matching lengths.
    """
    frame, ids, xyxy, conf = _as_columns(frame, ids, xyxy, conf)
    order = np.lexsort((ids, frame))
    table = np.column_stack(
        [
            frame[order] + 1,
            ids[order],
            xyxy[order, 0],
            xyxy[order, 1],
            xyxy[order, 2] - xyxy[order, 0],
            xyxy[order, 3] - xyxy[order, 1],
            conf[order],
        ]
    )
    with Path(path).open("w", encoding="utf-8", newline="\n") as handle:
        if len(table):
            np.savetxt(handle, table, fmt=_ROW_FORMAT, delimiter=",")


def _as_columns(
    frame: np.ndarray, ids: np.ndarray, xyxy: np.ndarray, conf: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Convert write_mot's inputs to flat float64 arrays and check their lengths agree."""
    frame = np.asarray(frame, dtype=np.int64).reshape(-1)
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    conf = np.asarray(conf, dtype=np.float64).reshape(-1)
    sizes = {len(frame), len(ids), len(xyxy), len(conf)}
    if len(sizes) != 1:
        raise ValueError(
            f"frame, ids, xyxy and conf differ in length: "
            f"{len(frame)}, {len(ids)}, {len(xyxy)}, {len(conf)}"
        )
    return frame, ids, xyxy, conf


def _nonblank_lines(path: Path) -> tuple[list[str], np.ndarray]:
    """Return the file's non-blank lines and their 1-based line numbers."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PtrackError(f"{path}: cannot read MOT file: {exc}") from exc
    all_lines = text.splitlines()
    linenos = [i for i, line in enumerate(all_lines, start=1) if line.strip()]
    lines = [all_lines[i - 1] for i in linenos]
    return lines, np.asarray(linenos, dtype=np.int64)


def _parse_rows(path: Path, lines: list[str], linenos: np.ndarray) -> np.ndarray:
    """Parse the lines into a float64 table, naming the first bad line when that fails."""
    if not lines:
        return np.zeros((0, MIN_COLUMNS))
    try:
        rows = np.loadtxt(lines, delimiter=",", ndmin=2, dtype=np.float64, comments=None)
    except ValueError as exc:
        _raise_first_bad_line(path, lines, linenos)
        raise PtrackError(f"{path}: not a MOT file: {exc}") from exc
    if rows.shape[1] < MIN_COLUMNS:
        raise PtrackError(
            f"{path}:{linenos[0]}: expected at least {MIN_COLUMNS} comma-separated columns, "
            f"found {rows.shape[1]}"
        )
    return rows


def _raise_first_bad_line(path: Path, lines: list[str], linenos: np.ndarray) -> None:
    """Scan the lines one by one and raise PtrackError for the first one that cannot be parsed."""
    expected = len(lines[0].split(","))
    for line, lineno in zip(lines, linenos.tolist()):
        problem = _line_problem(line, expected)
        if problem:
            raise PtrackError(f"{path}:{lineno}: {problem}")


def _line_problem(line: str, expected: int) -> str | None:
    """Describe what is wrong with one line's columns, or return None when it parses."""
    fields = line.split(",")
    if len(fields) < MIN_COLUMNS:
        return f"expected at least {MIN_COLUMNS} comma-separated columns, found {len(fields)}"
    if len(fields) != expected:
        return f"found {len(fields)} columns, but the first line has {expected}"
    for column, field in enumerate(fields, start=1):
        try:
            float(field)
            if "_" in field:
                raise ValueError(field)
        except ValueError:
            return f"column {column} is not a number: {field.strip()!r}"
    return None


def _check_rows(path: Path, rows: np.ndarray, linenos: np.ndarray, kind: str) -> None:
    """Check the parsed values; raise PtrackError naming the first line that breaks a rule."""
    checks = [
        (~np.isfinite(rows).all(axis=1), "values must be finite numbers"),
        (rows[:, 0] != np.round(rows[:, 0]), "frame must be a whole number"),
        (rows[:, 0] < 1, "frame must be 1 or more (MOT frames are 1-based)"),
        (rows[:, 1] != np.round(rows[:, 1]), "id must be a whole number"),
        (rows[:, 4] <= 0, "width must be positive"),
        (rows[:, 5] <= 0, "height must be positive"),
    ]
    if kind == "gt":
        checks.append((rows[:, 1] < 0, "ground-truth id must not be negative"))
        checks.append((_duplicated(rows[:, 0], rows[:, 1]), "id appears twice in this frame"))
    for bad, message in checks:
        if bad.any():
            index = int(np.flatnonzero(bad)[0])
            value = _describe_row(rows[index])
            raise PtrackError(f"{path}:{linenos[index]}: {message} ({value})")


def _duplicated(frame: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Mark every (frame, id) pair after its first occurrence."""
    out = np.zeros(len(frame), dtype=bool)
    if len(frame) < 2:
        return out
    order = np.lexsort((np.arange(len(frame)), ids, frame))
    same = (frame[order][1:] == frame[order][:-1]) & (ids[order][1:] == ids[order][:-1])
    out[order[1:][same]] = True
    return out


def _describe_row(row: np.ndarray) -> str:
    """Short text of a row's first six values, for error messages."""
    names = ("frame", "id", "left", "top", "w", "h")
    return ", ".join(f"{name}={value:g}" for name, value in zip(names, row[:MIN_COLUMNS]))


def _boxes_from_rows(rows: np.ndarray, kind: str) -> Boxes:
    """Build the boxes from a checked table of at least 6 columns."""
    n = rows.shape[0]
    left, top, width, height = rows[:, 2], rows[:, 3], rows[:, 4], rows[:, 5]
    xyxy = np.column_stack([left, top, left + width, top + height]).astype(np.float32)
    conf = rows[:, 6] if rows.shape[1] > 6 else np.ones(n)
    has_class = kind == "gt" and rows.shape[1] == 9
    cls = rows[:, 7].astype(np.int64) if has_class else np.full(n, -1, dtype=np.int64)
    visibility = rows[:, 8] if has_class else np.full(n, -1.0)
    keep = np.ones(n, dtype=bool)
    if kind == "gt":
        keep = conf != 0
        if has_class:
            keep &= cls == PEDESTRIAN_CLASS
    return mot_boxes((rows[:, 0] - 1).astype(np.int64), rows[:, 1].astype(np.int64),
                     xyxy.reshape(n, 4), conf.astype(np.float32), keep=keep, cls=cls,
                     visibility=visibility.astype(np.float32))
