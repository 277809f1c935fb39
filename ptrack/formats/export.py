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

When ``ptrack pose`` has run for the person, ``keypoints`` (N, 17, 3) float32 ``(x, y,
confidence)`` in video pixels, aligned with ``frame_numbers`` (NaN where the crop held no pose
of the person), and ``keypoint_names`` are there too; without a pose there is no
``keypoints`` key. ``segments`` (K, 3) are the runs of frames ``first, last, kind`` (0 observed,
1 interpolated, 2 not seen: no box), the boxes are clipped to the frame, and ``provenance``
says what made them (a JSON text in the npz).

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
EXPORT_FORMATS = ("mot", "csv", "json", "coco")
EXPORT_SUFFIX = {"mot": ".txt", "csv": ".csv", "json": ".json", "coco": "_coco.json"}
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
    keypoints: np.ndarray | None = None  # float32 (N, 17, 3), NaN where none; None: no pose
    kpt_score: np.ndarray | None = None  # float32 (N,) the pose's confidence, NaN where none

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
    kpts = score = None
    if any(t.keypoints is not None for t in tracks):
        kpts = np.concatenate([t.keypoints if t.keypoints is not None else
                               np.full((len(t), 17, 3), np.nan, np.float32) for t in tracks])[keep]
        score = np.concatenate([t.kpt_score if t.kpt_score is not None else
                                np.full(len(t), np.nan, np.float32) for t in tracks])[keep]
    merged = Track(pid, frame[keep], cat("xyxy")[keep], conf[keep], cat("source")[keep],
                   cat("tracklet")[keep], raw[keep], kpts, score)
    return merged, contested


def clip_boxes(xyxy: np.ndarray, width: float, height: float) -> np.ndarray:
    """xyxy boxes clipped to a ``width`` x ``height`` frame (a copy, float64).

    >>> clip_boxes(np.array([[-4., 10., 50., 130.]]), 40, 120).tolist()
    [[0.0, 10.0, 40.0, 120.0]]
    """
    out = np.array(xyxy, dtype=np.float64).reshape(-1, 4)
    if width and height:
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, float(width))
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, float(height))
    return out


SEGMENT_KINDS = ("observed", "interpolated", "unseen")


def segments(frame: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Runs of frames (K, 3) ``first, last, kind`` (inclusive; kind 0 observed, 1 interpolated,
    2 unseen: frames between the person's first and last without any box).

    >>> segments(np.array([0, 1, 2, 3, 6, 7]), np.array([0, 0, 1, 0, 0, 0])).tolist()
    [[0, 1, 0], [2, 2, 1], [3, 3, 0], [4, 5, 2], [6, 7, 0]]
    """
    frame = np.asarray(frame, np.int64)
    source = np.asarray(source, np.int64)
    out: list[list[int]] = []
    for f, k in zip(frame.tolist(), source.tolist()):
        k = min(int(k), 1)
        if out and f > out[-1][1] + 1:
            out.append([out[-1][1] + 1, f - 1, 2])
        if out and out[-1][2] == k and f == out[-1][1] + 1:
            out[-1][1] = f
        else:
            out.append([f, f, k])
    return np.asarray(out, np.int64).reshape(-1, 3)


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


def selection_arrays(track: Track, video: Any, person_ids: Sequence[int],
                     provenance: dict | None = None) -> dict[str, Any]:
    """Everything a selection file holds, as plain arrays and numbers (``keypoints`` and
    ``keypoint_names`` only when the track has a pose)."""
    from ptrack.pose.keypoints import KEYPOINT_NAMES

    data = {
        "person_id": int(track.person_id),
        "person_ids": np.asarray([int(i) for i in person_ids], dtype=np.int64),
        "frame_numbers": track.frame.astype(np.int64),
        "bboxes": clip_boxes(track.xyxy, video.width, video.height),
        "bboxes_raw": clip_boxes(track.raw, video.width, video.height),
        "confidences": track.conf.astype(np.float64),
        "sources": track.source.astype(np.int8),
        "tracklets": track.tracklet.astype(np.int64),
        "segments": segments(track.frame, track.source),
        **_video_meta(video),
    }
    if track.keypoints is not None:
        data["keypoints"] = np.asarray(track.keypoints, np.float32).reshape(-1, 17, 3)
        data["keypoint_scores"] = np.asarray(track.kpt_score, np.float32).reshape(-1) \
            if track.kpt_score is not None else np.full(len(track), np.nan, np.float32)
        data["keypoint_names"] = np.asarray(KEYPOINT_NAMES)
    data["provenance"] = dict(provenance or {})
    return data


def _json_value(v: Any) -> Any:
    """Arrays as lists with NaN as null (strict JSON)."""
    if isinstance(v, np.ndarray):
        if v.dtype.kind == "f":
            return np.where(np.isnan(v), None, v.astype(object)).tolist() if np.isnan(v).any() \
                else v.tolist()
        return v.tolist()
    return v


def read_selection(path: Path) -> dict[str, Any]:
    """A selection file (npz or JSON) back as arrays: the inverse of :func:`write_selection`
    (null keypoints are NaN again; ``provenance`` a dict)."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as z:  # the pickled primary_person is skipped
            out = {k: z[k] for k in z.files if k != "primary_person"}
        out["provenance"] = json.loads(str(out.get("provenance", "{}")))
        for k in ("person_id", "fps", "width", "height", "frame_count", "video_path", "video_name"):
            if k in out:
                out[k] = out[k].item()
        return out
    doc = json.loads(path.read_text(encoding="utf-8"))
    arrays = {"frame_numbers": np.int64, "bboxes": np.float64, "bboxes_raw": np.float64,
              "confidences": np.float64, "sources": np.int8, "tracklets": np.int64,
              "segments": np.int64, "person_ids": np.int64, "keypoints": np.float32,
              "keypoint_scores": np.float32}
    for k, dtype in arrays.items():
        if k in doc:
            a = np.asarray(doc[k], dtype=object)
            doc[k] = np.asarray(np.where(a == None, np.nan, a) if a.size else a,  # noqa: E711
                                dtype=dtype)
    if "keypoints" in doc:
        doc["keypoints"] = doc["keypoints"].reshape(-1, 17, 3)
    if "segments" in doc:
        doc["segments"] = doc["segments"].reshape(-1, 3)
    if "keypoint_names" in doc:
        doc["keypoint_names"] = np.asarray(doc["keypoint_names"])
    return doc


def write_selection(path: Path, fmt: str, track: Track, video: Any,
                    person_ids: Sequence[int], provenance: dict | None = None) -> Path:
    """Write the selected person as ``npz``, ``json`` or ``csv``; returns the path."""
    if fmt not in SELECT_FORMATS:
        raise ValueError(f"unknown selection format {fmt!r}")
    data = selection_arrays(track, video, person_ids, provenance)
    path = Path(path)
    with atomic_path(path) as tmp:
        if fmt == "npz":
            primary = {k: data[k] for k in ("person_id", "frame_numbers", "bboxes", "bboxes_raw",
                                             "confidences", "sources", "tracklets", "person_ids",
                                             "segments", "keypoints", "keypoint_names")
                       if k in data}
            primary.update(_video_meta(video))
            top = {k: np.asarray(json.dumps(v, sort_keys=True) if k == "provenance" else v)
                   for k, v in data.items()}
            holder = np.empty((), dtype=object)
            holder[()] = primary
            with open(tmp, "wb") as f:
                np.savez(f, primary_person=holder, **top)
        elif fmt == "json":
            doc = {k: _json_value(v) for k, v in data.items()}
            doc["times"] = (track.frame / float(video.fps)).round(4).tolist() if video.fps else []
            tmp.write_text(json.dumps(doc) + "\n", encoding="utf-8")
        else:
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            kp = data.get("keypoints")
            w.writerow(["person_id", "frame", "time", "x1", "y1", "x2", "y2", "conf", "source",
                        "tracklet", "raw_x1", "raw_y1", "raw_x2", "raw_y2",
                        *(keypoint_columns() if kp is not None else [])])
            fps = float(video.fps) or 1.0
            box, raw = data["bboxes"], data["bboxes_raw"]
            for i in range(len(track)):
                x1, y1, x2, y2 = (round(float(v), 2) for v in box[i])
                w.writerow([track.person_id, int(track.frame[i]), round(track.frame[i] / fps, 4),
                            x1, y1, x2, y2, round(float(track.conf[i]), 4), int(track.source[i]),
                            int(track.tracklet[i]), *(round(float(v), 2) for v in raw[i]),
                            *(keypoint_cells(kp[i]) if kp is not None else [])])
            tmp.write_text(buf.getvalue(), encoding="utf-8")
    return path


def keypoint_columns() -> list[str]:
    """CSV header cells of the keypoints: ``nose_x, nose_y, nose_conf, left_eye_x, ...``."""
    from ptrack.pose.keypoints import KEYPOINT_NAMES

    return [f"{n}_{c}" for n in KEYPOINT_NAMES for c in ("x", "y", "conf")]


def keypoint_cells(kpts: np.ndarray | None) -> list:
    """One frame's keypoints as CSV cells (empty where there are none)."""
    if kpts is None or np.isnan(kpts).all():
        return [""] * 51
    return [round(float(v), 2 if j % 3 < 2 else 4) for j, v in enumerate(np.asarray(kpts).reshape(-1))]


def coco_results(tracks: Sequence[Track], video: Any) -> list[dict]:
    """COCO keypoint results (``image_id`` = frame number, ``category_id`` 1 = person,
    ``bbox`` = x, y, w, h of the box clipped to the frame, ``keypoints`` = 17 x (x, y, conf),
    ``score`` = the pose's confidence), plus ``person_id`` and ``source``; frames without a
    pose are left out."""
    out = []
    for t in tracks:
        if t.keypoints is None:
            continue
        box = clip_boxes(t.xyxy, video.width, video.height)
        for i in range(len(t)):
            k = t.keypoints[i]
            if np.isnan(k).all():
                continue
            x1, y1, x2, y2 = (float(v) for v in box[i])
            score = float(t.kpt_score[i]) if t.kpt_score is not None else float("nan")
            out.append({"image_id": int(t.frame[i]), "category_id": 1,
                        "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                        "keypoints": [round(float(v), 3) for v in k.reshape(-1)],
                        "score": round(score, 5) if score == score else None,
                        "person_id": int(t.person_id), "source": int(t.source[i])})
    return out


def write_export(path: Path, fmt: str, tracks: Sequence[Track], video: Any,
                 ranks: dict[int, int | None] | None = None,
                 person_of: dict[int, int] | None = None) -> tuple[Path, int]:
    """Write all given persons' boxes as ``mot``, ``csv``, ``json`` or ``coco`` (keypoints);
    returns (path, rows).

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
        if fmt == "coco":
            results = coco_results(tracks, video)
            rows = len(results)
            tmp.write_text(json.dumps(results) + "\n", encoding="utf-8")
        elif fmt == "json":
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
                poses = any(t.keypoints is not None for t in tracks)
                w.writerow(["person_id", "rank", "frame", "time", "x1", "y1", "x2", "y2", "conf",
                            "source", "tracklet", *(keypoint_columns() if poses else [])])
                for t in tracks:
                    rank = ranks.get(t.person_id)
                    for i in range(len(t)):
                        x1, y1, x2, y2 = (round(float(v), 2) for v in t.xyxy[i])
                        kp = [] if not poses else keypoint_cells(
                            None if t.keypoints is None else t.keypoints[i])
                        w.writerow([t.person_id, "" if rank is None else rank, int(t.frame[i]),
                                    round(t.frame[i] / fps, 4), x1, y1, x2, y2,
                                    round(float(t.conf[i]), 4), int(t.source[i]), int(t.tracklet[i]),
                                    *kp])
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
