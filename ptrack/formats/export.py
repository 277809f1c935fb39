"""Files for other programs: the selected person (npz / JSON / CSV) and all persons' boxes
(MOT / CSV / JSON).

``primary_person.npz`` keeps the layout code written for the older pipeline reads::

    data = np.load(path, allow_pickle=True)
    person = data["primary_person"].item()   # dict: person_id, frame_numbers, bboxes, confidences
    data["frame_numbers"], data["bboxes"]     # the same arrays at top level, no pickle needed

``bboxes`` are the person's smoothed boxes (what a pose stage should crop: the detector's boxes
through an offline Kalman smoother over the whole track, gaps filled by it) and ``bboxes_raw``
the detector's own boxes (in a gap, where no detection exists, the box interpolated between
the detections around it). ``export`` writes one of the two (``boxes="smoothed"`` or ``"raw"``).

Frames are 0-based and boxes xyxy in original video pixels, except in MOT files, whose frames
are 1-based and boxes ``left, top, width, height``. Every writer goes through a temporary file
renamed at the end, so an interrupted write never leaves a half file at the final path.
"""

from __future__ import annotations

import csv
import io
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ptrack.boxes import Boxes

SELECT_FORMATS = ("npz", "json", "csv")
EXPORT_FORMATS = ("mot", "csv", "json")
EXPORT_SUFFIX = {"mot": ".txt", "csv": ".csv", "json": ".json"}
# the extensions of ``--out`` that name a format
SELECT_SUFFIXES = {"npz": (".npz",), "json": (".json",), "csv": (".csv",)}
EXPORT_SUFFIXES = {"mot": (".txt", ".mot"), "csv": (".csv",), "json": (".json",)}
BOX_KINDS = ("smoothed", "raw")  # --boxes: the smoother's boxes, or the detector's
LATEST_SELECTION = "primary_person"  # primary_person.<fmt>: the latest selection


def kept_selection_path(folder: Path, person_ids: Sequence[int], fmt: str) -> Path:
    """A new file for a selection that no later selection overwrites:
    ``primary_person_P7.npz``, ``primary_person_P14+29.npz`` (persons joined), then
    ``primary_person_P7-2.npz`` and so on when the name is taken.

    >>> import tempfile; d = Path(tempfile.mkdtemp())
    >>> kept_selection_path(d, [7], "npz").name
    'primary_person_P7.npz'
    >>> _ = (d / "primary_person_P7.npz").write_bytes(b""); kept_selection_path(d, [7], "npz").name
    'primary_person_P7-2.npz'
    """
    stem = f"{LATEST_SELECTION}_P{'+'.join(str(int(i)) for i in person_ids)}"
    path = Path(folder) / f"{stem}.{fmt}"
    n = 2
    while path.exists():
        path = Path(folder) / f"{stem}-{n}.{fmt}"
        n += 1
    return path


@dataclass(frozen=True)
class Track:
    """One person's boxes, one row per frame, sorted by frame.

    ``xyxy`` are the boxes written (smoothed by default); ``xyxy_raw`` the detector's boxes
    (interpolated in gaps), None when they are the same array.
    """

    person_id: int
    frame: np.ndarray  # int64 (N,)
    xyxy: np.ndarray  # float64 (N, 4)
    conf: np.ndarray  # float64 (N,)
    source: np.ndarray  # int8 (N,) 0 observed, 1 interpolated
    tracklet: np.ndarray  # int64 (N,)
    xyxy_raw: np.ndarray | None = None  # float64 (N, 4)

    @property
    def raw(self) -> np.ndarray:
        """The detector's boxes (``xyxy`` when no separate raw boxes are held)."""
        return self.xyxy if self.xyxy_raw is None else self.xyxy_raw

    def __len__(self) -> int:
        return int(self.frame.shape[0])


def track_from_boxes(person_id: int, boxes: Boxes, which: str = "smoothed") -> Track:
    """A :class:`Track` from ``store.person_boxes(video_id, person)``: its ``xyxy`` are the
    smoothed boxes (``which="smoothed"``) or the raw ones (``"raw"``); ``xyxy_raw`` the raw."""
    if which not in BOX_KINDS:
        raise ValueError(f"boxes must be one of {', '.join(BOX_KINDS)}, got {which!r}")
    order = np.argsort(boxes["frame"], kind="stable")
    raw = boxes["xyxy"][order].astype(np.float64)
    main = boxes["smoothed"][order].astype(np.float64) \
        if which == "smoothed" and "smoothed" in boxes else raw
    return Track(int(person_id), boxes["frame"][order].astype(np.int64), main,
                 boxes["conf"][order].astype(np.float64), boxes["source"][order].astype(np.int8),
                 boxes["tracklet"][order].astype(np.int64), raw)


def merge_tracks(tracks: Sequence[Track], person_id: int | None = None) -> tuple[Track, int]:
    """Join several persons into one; a frame claimed by more than one keeps the most
    confident box (the earlier-listed person on a tie). Returns the track and how many frames
    were contested.

    >>> a = Track(1, np.array([0, 1]), np.zeros((2, 4)), np.array([.9, .2]), np.zeros(2, np.int8), np.array([1, 1]))
    >>> b = Track(2, np.array([1, 2]), np.ones((2, 4)), np.array([.5, .5]), np.zeros(2, np.int8), np.array([2, 2]))
    >>> t, contested = merge_tracks([a, b])
    >>> t.frame.tolist(), t.tracklet.tolist(), contested
    ([0, 1, 2], [1, 2, 2], 1)
    """
    if not tracks:
        raise ValueError("merge_tracks needs at least one track")
    pid = tracks[0].person_id if person_id is None else int(person_id)
    frame = np.concatenate([t.frame for t in tracks])
    conf = np.concatenate([t.conf for t in tracks])
    order_in = np.concatenate([np.full(len(t), i) for i, t in enumerate(tracks)])
    # best first within a frame: higher confidence, then earlier-listed person
    order = np.lexsort((order_in, -conf, frame))
    frame_sorted = frame[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = frame_sorted[1:] != frame_sorted[:-1]
    keep = order[first]
    contested = int(len(np.unique(frame_sorted[~first])))
    cat = lambda name: np.concatenate([getattr(t, name) for t in tracks])  # noqa: E731
    raw = np.concatenate([t.raw for t in tracks])
    merged = Track(pid, frame[keep], cat("xyxy")[keep], conf[keep], cat("source")[keep],
                   cat("tracklet")[keep], raw[keep])
    return merged, contested


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary sibling of ``path`` (same suffix) that replaces ``path`` when the block
    ends without an exception and is removed otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.part{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _video_meta(video: Any) -> dict[str, Any]:
    return {"video_path": str(video.path), "video_name": str(video.name), "fps": float(video.fps),
            "width": int(video.width), "height": int(video.height),
            "frame_count": int(video.frame_count)}


def selection_arrays(track: Track, video: Any, person_ids: Sequence[int]) -> dict[str, Any]:
    """Everything a selection file holds, as plain arrays and numbers."""
    return {
        "person_id": int(track.person_id),
        "person_ids": np.asarray([int(i) for i in person_ids], dtype=np.int64),
        "frame_numbers": track.frame.astype(np.int64),
        "bboxes": track.xyxy.astype(np.float64).reshape(-1, 4),
        "bboxes_raw": track.raw.astype(np.float64).reshape(-1, 4),
        "confidences": track.conf.astype(np.float64),
        "sources": track.source.astype(np.int8),
        "tracklets": track.tracklet.astype(np.int64),
        **_video_meta(video),
    }


def write_selection(path: Path, fmt: str, track: Track, video: Any,
                    person_ids: Sequence[int]) -> Path:
    """Write the selected person as ``npz``, ``json`` or ``csv``; returns the path."""
    if fmt not in SELECT_FORMATS:
        raise ValueError(f"unknown selection format {fmt!r}")
    data = selection_arrays(track, video, person_ids)
    path = Path(path)
    with atomic_path(path) as tmp:
        if fmt == "npz":
            primary = {k: data[k] for k in ("person_id", "frame_numbers", "bboxes", "bboxes_raw",
                                             "confidences", "sources", "tracklets", "person_ids")}
            primary.update(_video_meta(video))
            top = {k: np.asarray(v) for k, v in data.items()}
            holder = np.empty((), dtype=object)
            holder[()] = primary
            with open(tmp, "wb") as f:
                np.savez(f, primary_person=holder, **top)
        elif fmt == "json":
            doc = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in data.items()}
            doc["times"] = (track.frame / float(video.fps)).round(4).tolist() if video.fps else []
            tmp.write_text(json.dumps(doc) + "\n", encoding="utf-8")
        else:
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(["person_id", "frame", "time", "x1", "y1", "x2", "y2", "conf", "source",
                        "tracklet", "raw_x1", "raw_y1", "raw_x2", "raw_y2"])
            fps = float(video.fps) or 1.0
            raw = track.raw
            for i in range(len(track)):
                x1, y1, x2, y2 = (round(float(v), 2) for v in track.xyxy[i])
                w.writerow([track.person_id, int(track.frame[i]), round(track.frame[i] / fps, 4),
                            x1, y1, x2, y2, round(float(track.conf[i]), 4), int(track.source[i]),
                            int(track.tracklet[i]), *(round(float(v), 2) for v in raw[i])])
            tmp.write_text(buf.getvalue(), encoding="utf-8")
    return path


def write_export(path: Path, fmt: str, tracks: Sequence[Track], video: Any,
                 ranks: dict[int, int | None] | None = None,
                 person_of: dict[int, int] | None = None) -> tuple[Path, int]:
    """Write all given persons' boxes as ``mot``, ``csv`` or ``json``; returns (path, rows).

    With ``person_of`` (tracklet id -> the person it joined), the tracks are tracklets
    (``export --level tracklets``): CSV and JSON name their id ``tracklet_id`` and add the
    ``person_id`` each joined (empty / null when none); MOT files carry the tracklet ids."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")
    ranks = ranks or {}
    fps = float(video.fps) or 1.0
    path = Path(path)
    rows = sum(len(t) for t in tracks)
    if person_of is not None and fmt != "mot":
        with atomic_path(path) as tmp:
            tmp.write_text(_tracklets_text(fmt, tracks, video, person_of, fps), encoding="utf-8")
        return path, rows
    with atomic_path(path) as tmp:
        if fmt == "json":
            doc = {**_video_meta(video), "persons": [
                {"person_id": t.person_id, "rank": ranks.get(t.person_id),
                 "frame_numbers": t.frame.tolist(),
                 "bboxes": np.round(t.xyxy, 2).tolist(), "confidences": np.round(t.conf, 4).tolist(),
                 "sources": t.source.tolist(), "tracklets": t.tracklet.tolist()} for t in tracks]}
            tmp.write_text(json.dumps(doc) + "\n", encoding="utf-8")
        else:
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            if fmt == "csv":
                w.writerow(["person_id", "rank", "frame", "time", "x1", "y1", "x2", "y2", "conf",
                            "source", "tracklet"])
                for t in tracks:
                    rank = ranks.get(t.person_id)
                    for i in range(len(t)):
                        x1, y1, x2, y2 = (round(float(v), 2) for v in t.xyxy[i])
                        w.writerow([t.person_id, "" if rank is None else rank, int(t.frame[i]),
                                    round(t.frame[i] / fps, 4), x1, y1, x2, y2,
                                    round(float(t.conf[i]), 4), int(t.source[i]), int(t.tracklet[i])])
            else:  # MOT: frame (1-based), id, left, top, width, height, conf, -1, -1, -1; by frame
                frame = np.concatenate([t.frame for t in tracks]) if tracks else np.zeros(0, int)
                pid = np.concatenate([np.full(len(t), t.person_id) for t in tracks]) if tracks else frame
                xyxy = np.concatenate([t.xyxy for t in tracks]) if tracks else np.zeros((0, 4))
                conf = np.concatenate([t.conf for t in tracks]) if tracks else np.zeros(0)
                for i in np.lexsort((pid, frame)):
                    x1, y1, x2, y2 = (float(v) for v in xyxy[i])
                    w.writerow([int(frame[i]) + 1, int(pid[i]), round(x1, 2), round(y1, 2),
                                round(x2 - x1, 2), round(y2 - y1, 2), round(float(conf[i]), 4),
                                -1, -1, -1])
            tmp.write_text(buf.getvalue(), encoding="utf-8")
    return path, rows


def _tracklets_text(fmt: str, tracks: Sequence[Track], video: Any, person_of: dict[int, int],
                    fps: float) -> str:
    """CSV or JSON of tracklets: their own id and the person each joined."""
    if fmt == "json":
        return json.dumps({**_video_meta(video), "tracklets": [
            {"tracklet_id": t.person_id, "person_id": person_of.get(t.person_id),
             "frame_numbers": t.frame.tolist(), "bboxes": np.round(t.xyxy, 2).tolist(),
             "confidences": np.round(t.conf, 4).tolist()} for t in tracks]}) + "\n"
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["tracklet_id", "person_id", "frame", "time", "x1", "y1", "x2", "y2", "conf"])
    for t in tracks:
        person = person_of.get(t.person_id)
        for i in range(len(t)):
            x1, y1, x2, y2 = (round(float(v), 2) for v in t.xyxy[i])
            w.writerow([t.person_id, "" if person is None else person, int(t.frame[i]),
                        round(t.frame[i] / fps, 4), x1, y1, x2, y2, round(float(t.conf[i]), 4)])
    return buf.getvalue()
