"""The project store: the only module that opens SQLite or LMDB.

A project is a directory holding ``ptrack.db`` (SQLite through sqlite-utils, WAL mode) for
videos, runs, detections, tracklets, persons, constraints and selections, and ``crops.lmdb``
holding one JPEG per detection under the key ``VVVVVVVV/FFFFFFFF/DDDD`` (video id, frame,
detection index, zero-padded so keys sort by frame).

Detections and their crops are written together by :meth:`Store.commit_detections`: crops go
to LMDB first, then the detections and the run's progress marker in one SQLite transaction.
Crops beyond the marker (left by a kill between the two) are removed when a run resumes, so
the store never shows a detection without its crop or a crop without its detection.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import lmdb
import numpy as np
import sqlite_utils

from ptrack.errors import PtrackError

SCHEMA_VERSION = 1
DB_NAME = "ptrack.db"
CROPS_NAME = "crops.lmdb"
DEFAULT_PROJECT = "ptrack-project"
STAGES = ("detect", "track", "group", "rank")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS videos (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, path TEXT NOT NULL, size INTEGER,
    fingerprint TEXT, fps REAL NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,
    frame_count INTEGER NOT NULL, has_crops INTEGER NOT NULL DEFAULT 1, added TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, video_id INTEGER NOT NULL REFERENCES videos(id), stage TEXT NOT NULL,
    settings TEXT NOT NULL, status TEXT NOT NULL, frames_done INTEGER NOT NULL DEFAULT 0,
    input_run INTEGER, stats TEXT, started TEXT NOT NULL, finished TEXT);
CREATE INDEX IF NOT EXISTS runs_video_stage ON runs(video_id, stage, id);
CREATE TABLE IF NOT EXISTS detections (
    video_id INTEGER NOT NULL, frame INTEGER NOT NULL, det INTEGER NOT NULL,
    x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
    conf REAL NOT NULL, cls INTEGER NOT NULL, PRIMARY KEY (video_id, frame, det)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tracklet_boxes (
    video_id INTEGER NOT NULL, tracklet INTEGER NOT NULL, frame INTEGER NOT NULL,
    det INTEGER NOT NULL, PRIMARY KEY (video_id, tracklet, frame)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS persons (
    video_id INTEGER NOT NULL, id INTEGER NOT NULL, rank INTEGER, score REAL,
    components TEXT, n_frames INTEGER NOT NULL, n_observed INTEGER NOT NULL,
    first INTEGER NOT NULL, last INTEGER NOT NULL, n_tracklets INTEGER NOT NULL,
    mean_height REAL NOT NULL, mean_conf REAL NOT NULL, PRIMARY KEY (video_id, id));
CREATE TABLE IF NOT EXISTS person_boxes (
    video_id INTEGER NOT NULL, person INTEGER NOT NULL, frame INTEGER NOT NULL,
    x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL, conf REAL NOT NULL,
    source INTEGER NOT NULL, tracklet INTEGER NOT NULL, det INTEGER NOT NULL,
    PRIMARY KEY (video_id, person, frame)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS person_tracklets (
    video_id INTEGER NOT NULL, person INTEGER NOT NULL, tracklet INTEGER NOT NULL,
    PRIMARY KEY (video_id, tracklet)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS constraints (
    id INTEGER PRIMARY KEY, video_id INTEGER NOT NULL, kind TEXT NOT NULL, ids TEXT NOT NULL,
    frame INTEGER, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS selections (
    id INTEGER PRIMARY KEY, video_id INTEGER NOT NULL, person_ids TEXT NOT NULL,
    person_id INTEGER NOT NULL, n_frames INTEGER NOT NULL, path TEXT NOT NULL,
    format TEXT NOT NULL, created TEXT NOT NULL);
"""

# Each entry upgrades a project from version (index + 1) to (index + 2).
_UPGRADES: list[str] = []


def _write_error(what: str, path: Path, exc: Exception) -> PtrackError:
    """A one-line error for a failed write; the store keeps its last committed state."""
    import shutil

    text = str(exc)
    try:
        nearly_full = shutil.disk_usage(path.parent).free < (4 << 20)
    except OSError:
        nearly_full = False
    if nearly_full or "space" in text.lower() or "full" in text.lower():
        text = "no space left on device"
    return PtrackError(f"writing the {what} {path} failed ({text}); everything committed before "
                       f"is intact: free space and run the same command again to resume")


def now() -> str:
    """Current UTC time as ISO text, seconds precision."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def crop_key(video_id: int, frame: int, det: int) -> bytes:
    """LMDB key of one crop; keys of a video sort by frame, then detection index."""
    return b"%08d/%08d/%04d" % (video_id, frame, det)


def parse_crop_key(key: bytes) -> tuple[int, int, int]:
    """Inverse of :func:`crop_key`."""
    v, f, d = key.split(b"/")
    return int(v), int(f), int(d)


@dataclass(frozen=True)
class Video:
    """One video of the project."""

    id: int
    name: str
    path: str
    size: int
    fingerprint: str
    fps: float
    width: int
    height: int
    frame_count: int
    has_crops: bool

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frame_count / self.fps if self.fps else 0.0


@dataclass(frozen=True)
class Run:
    """One run of a stage on a video."""

    id: int
    video_id: int
    stage: str
    settings: dict
    status: str  # running | done | stale | failed
    frames_done: int
    input_run: int | None
    stats: dict


@dataclass(frozen=True)
class Detections:
    """Column arrays of stored detections, sorted by frame then detection index."""

    frame: np.ndarray  # int64 (N,)
    det: np.ndarray  # int64 (N,)
    xyxy: np.ndarray  # float32 (N, 4)
    conf: np.ndarray  # float32 (N,)
    cls: np.ndarray  # int64 (N,)

    def __len__(self) -> int:
        return int(self.frame.shape[0])

    def __getitem__(self, index: Any) -> "Detections":
        return Detections(self.frame[index], self.det[index], self.xyxy[index], self.conf[index],
                          self.cls[index])


def _as_detections(rows: Sequence[tuple]) -> Detections:
    arr = np.asarray(rows, dtype=np.float64).reshape(-1, 8)
    return Detections(arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64),
                      arr[:, 2:6].astype(np.float32), arr[:, 6].astype(np.float32),
                      arr[:, 7].astype(np.int64))


class Store:
    """A ptrack project on disk. Use :meth:`open`; close it (or use ``with``)."""

    def __init__(self, root: Path, db: sqlite_utils.Database, map_size: int) -> None:
        self.root = root
        self.db = db
        self._env: lmdb.Environment | None = None
        self._map_size = map_size

    # ----------------------------------------------------------------- opening
    @classmethod
    def open(cls, root: str | Path, *, create: bool = True, map_size: int = 64 << 20) -> "Store":
        """Open (and with ``create``, make) the project at ``root``."""
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise PtrackError(f"project path {root} exists and is not a directory")
        db_path = root / DB_NAME
        if not db_path.exists():
            if not create:
                raise PtrackError(f"no ptrack project at {root} (run `ptrack detect VIDEO` first)")
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise PtrackError(f"cannot create project directory {root}: {exc.strerror}") from None
        if not os.access(root, os.W_OK) and create:
            raise PtrackError(f"project directory {root} is not writable")
        try:
            conn = sqlite3.connect(str(db_path), timeout=30, check_same_thread=False)
            db = sqlite_utils.Database(conn)
            if os.access(root, os.W_OK):
                db.enable_wal()
            conn.execute("PRAGMA synchronous=NORMAL")
            store = cls(root, db, map_size)
            store._migrate()
        except sqlite3.DatabaseError as exc:
            raise PtrackError(f"project database {db_path} cannot be used: {exc}") from None
        return store

    def _migrate(self) -> None:
        conn = self.db.conn
        has_meta = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        version = 0
        if has_meta:
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise PtrackError(
                f"project {self.root} was written by a newer ptrack (schema {version}, this one "
                f"knows {SCHEMA_VERSION}); upgrade ptrack")
        if version == SCHEMA_VERSION:
            return
        with conn:
            if version == 0:
                conn.executescript(_SCHEMA)
            else:
                for step in _UPGRADES[version - 1:]:
                    conn.executescript(step)
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                         (str(SCHEMA_VERSION),))

    def close(self) -> None:
        """Close both files."""
        if self._env is not None:
            self._env.close()
            self._env = None
        self.db.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def conn(self) -> sqlite3.Connection:
        return self.db.conn

    def path(self, *parts: str) -> Path:
        """A path inside the project."""
        return self.root.joinpath(*parts)

    def output_dir(self, video: Video) -> Path:
        """Where files for a user (tables, selections, renders) of ``video`` go."""
        out = self.root / "outputs" / video.name
        out.mkdir(parents=True, exist_ok=True)
        return out

    # ------------------------------------------------------------------ videos
    def videos(self) -> list[Video]:
        """All videos, by id."""
        rows = self.conn.execute(
            "SELECT id, name, path, size, fingerprint, fps, width, height, frame_count, has_crops "
            "FROM videos ORDER BY id").fetchall()
        return [Video(*r[:9], bool(r[9])) for r in rows]

    def video(self, ref: str | int | None = None) -> Video:
        """Resolve a video by name, id, or (when ``ref`` is None) the only one."""
        videos = self.videos()
        if not videos:
            raise PtrackError(f"project {self.root} holds no videos yet (run `ptrack detect VIDEO`)")
        if ref is None or ref == "":
            if len(videos) == 1:
                return videos[0]
            names = ", ".join(v.name for v in videos)
            raise PtrackError(f"project holds {len(videos)} videos; choose one with --video ({names})",
                              exit_code=2)
        text = str(ref)
        for v in videos:
            if v.name == text or str(v.id) == text:
                return v
        stem = Path(text).stem
        matches = [v for v in videos if v.name == stem or v.name.startswith(stem + "~")]
        if len(matches) >= 1:
            return matches[-1]
        names = ", ".join(f"{v.name} (id {v.id})" for v in videos)
        raise PtrackError(f"unknown video '{text}'; the project holds: {names}", exit_code=2)

    def find_video_by_fingerprint(self, fingerprint: str) -> Video | None:
        """The video with this content, if the project has it."""
        for v in self.videos():
            if v.fingerprint == fingerprint:
                return v
        return None

    def add_video(self, *, name: str, path: str, size: int, fingerprint: str, fps: float,
                  width: int, height: int, frame_count: int, has_crops: bool = True) -> Video:
        """Register a video. A name already taken by other content gets a ``~N`` suffix."""
        taken = {v.name for v in self.videos()}
        final, n = name, 2
        while final in taken:
            final, n = f"{name}~{n}", n + 1
        with self.conn:
            cur = self.conn.execute(
                "INSERT INTO videos (name, path, size, fingerprint, fps, width, height, frame_count,"
                " has_crops, added) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (final, path, size, fingerprint, float(fps), int(width), int(height),
                 int(frame_count), int(has_crops), now()))
        return self.video(cur.lastrowid)

    def update_video(self, video_id: int, **fields: Any) -> None:
        """Change stored facts of a video (path after a move, frame count after decoding)."""
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.conn:
            self.conn.execute(f"UPDATE videos SET {sets} WHERE id = ?", (*fields.values(), video_id))

    # -------------------------------------------------------------------- runs
    def start_run(self, video_id: int, stage: str, settings: dict, input_run: int | None = None) -> Run:
        """Record the start of a stage run."""
        with self.conn:
            cur = self.conn.execute(
                "INSERT INTO runs (video_id, stage, settings, status, input_run, started) "
                "VALUES (?,?,?,?,?,?)",
                (video_id, stage, json.dumps(settings, sort_keys=True), "running", input_run, now()))
        return self.run(cur.lastrowid)

    def run(self, run_id: int) -> Run:
        """One run by id."""
        row = self.conn.execute(
            "SELECT id, video_id, stage, settings, status, frames_done, input_run, stats "
            "FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise PtrackError(f"no run {run_id}")
        return Run(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], row[6],
                   json.loads(row[7]) if row[7] else {})

    def latest_run(self, video_id: int, stage: str) -> Run | None:
        """The newest run of ``stage`` on the video, whatever its status."""
        row = self.conn.execute(
            "SELECT id FROM runs WHERE video_id = ? AND stage = ? ORDER BY id DESC LIMIT 1",
            (video_id, stage)).fetchone()
        return self.run(row[0]) if row else None

    def finish_run(self, run_id: int, status: str = "done", stats: dict | None = None) -> None:
        """Mark a run finished (``done`` or ``failed``) with its summary numbers."""
        with self.conn:
            self.conn.execute("UPDATE runs SET status = ?, stats = ?, finished = ? WHERE id = ?",
                              (status, json.dumps(stats or {}), now(), run_id))

    def mark_stale(self, video_id: int, after_stage: str) -> None:
        """Mark every finished run of the stages after ``after_stage`` as stale."""
        later = STAGES[STAGES.index(after_stage) + 1:]
        if not later:
            return
        marks = ",".join("?" * len(later))
        with self.conn:
            self.conn.execute(
                f"UPDATE runs SET status = 'stale' WHERE video_id = ? AND status = 'done' "
                f"AND stage IN ({marks})", (video_id, *later))

    def stage_state(self, video_id: int, stage: str) -> str:
        """``missing``, ``running``, ``stale``, ``failed`` or ``done`` for the newest run."""
        run = self.latest_run(video_id, stage)
        return "missing" if run is None else run.status

    # -------------------------------------------------------------- detections
    def _lmdb(self) -> lmdb.Environment:
        if self._env is None:
            path = self.root / CROPS_NAME
            try:
                self._env = lmdb.open(str(path), map_size=self._map_size, subdir=True,
                                      max_readers=256, readahead=False, meminit=False)
            except lmdb.Error as exc:
                raise PtrackError(f"crop store {path} cannot be opened: {exc}") from None
            info = self._env.info()
            if info["map_size"] > self._map_size:
                self._map_size = info["map_size"]
        return self._env

    def _grow_map(self) -> None:
        env = self._lmdb()
        self._map_size = max(env.info()["map_size"], self._map_size) * 2
        env.set_mapsize(self._map_size)

    def put_crops(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Write (key, jpeg) pairs in one LMDB transaction, growing the map when it is full."""
        if not items:
            return
        while True:
            env = self._lmdb()
            try:
                with env.begin(write=True) as txn:
                    for key, value in items:
                        txn.put(key, value)
                return
            except lmdb.MapFullError:
                try:
                    self._grow_map()
                except lmdb.Error as exc:
                    raise _write_error("crop store", self.root / CROPS_NAME, exc) from None
            except lmdb.Error as exc:
                raise _write_error("crop store", self.root / CROPS_NAME, exc) from None

    def delete_crops(self, video_id: int, from_frame: int = 0) -> int:
        """Delete the video's crops at frames >= ``from_frame``; returns how many."""
        start = crop_key(video_id, from_frame, 0)
        prefix = b"%08d/" % video_id
        n = 0
        env = self._lmdb()
        with env.begin(write=True) as txn:
            cur = txn.cursor()
            if cur.set_range(start):
                while cur.key().startswith(prefix):
                    cur.delete()  # moves to the next record
                    n += 1
                    if not cur.key():
                        break
        return n

    def commit_detections(self, video_id: int, run_id: int, frames_done: int,
                          rows: Sequence[tuple], crops: Sequence[tuple[bytes, bytes]]) -> None:
        """Store one batch: crops first, then detections and the progress marker together.

        ``rows`` are ``(frame, det, x1, y1, x2, y2, conf, cls)``; ``frames_done`` is the first
        frame index not yet processed once this batch is stored.
        """
        self.put_crops(crops)
        try:
            with self.conn:
                self.conn.executemany(
                    "INSERT OR REPLACE INTO detections VALUES (?,?,?,?,?,?,?,?,?)",
                    [(video_id, *r) for r in rows])
                self.conn.execute("UPDATE runs SET frames_done = ? WHERE id = ?",
                                  (frames_done, run_id))
        except sqlite3.OperationalError as exc:
            raise _write_error("database", self.root / DB_NAME, exc) from None

    def discard_detections(self, video_id: int, from_frame: int = 0) -> None:
        """Remove detections (and crops) at frames >= ``from_frame``: a clean restart point."""
        with self.conn:
            self.conn.execute("DELETE FROM detections WHERE video_id = ? AND frame >= ?",
                              (video_id, from_frame))
        if (self.root / CROPS_NAME).exists():
            self.delete_crops(video_id, from_frame)

    def detections(self, video_id: int, frames: Iterable[int] | None = None) -> Detections:
        """Detections of a video as column arrays: all, or only those in ``frames``."""
        if frames is None:
            rows = self.conn.execute(
                "SELECT frame, det, x1, y1, x2, y2, conf, cls FROM detections WHERE video_id = ? "
                "ORDER BY frame, det", (video_id,)).fetchall()
        else:
            wanted = json.dumps(sorted({int(f) for f in frames}))
            rows = self.conn.execute(
                "SELECT frame, det, x1, y1, x2, y2, conf, cls FROM detections WHERE video_id = ? "
                "AND frame IN (SELECT value FROM json_each(?)) ORDER BY frame, det",
                (video_id, wanted)).fetchall()
        return _as_detections(rows)

    def count_detections(self, video_id: int) -> int:
        """How many detections a video has."""
        return self.conn.execute("SELECT COUNT(*) FROM detections WHERE video_id = ?",
                                 (video_id,)).fetchone()[0]

    def replace_detections(self, video_id: int, rows: Iterable[tuple]) -> int:
        """Replace all detections of a video (used by ``import``); returns how many."""
        rows = [(video_id, *r) for r in rows]
        with self.conn:
            self.conn.execute("DELETE FROM detections WHERE video_id = ?", (video_id,))
            self.conn.executemany("INSERT INTO detections VALUES (?,?,?,?,?,?,?,?,?)", rows)
        return len(rows)

    # ------------------------------------------------------------------- crops
    def crop(self, video_id: int, frame: int, det: int) -> bytes | None:
        """JPEG bytes of one crop, or None."""
        if not (self.root / CROPS_NAME).exists():
            return None
        with self._lmdb().begin(buffers=False) as txn:
            return txn.get(crop_key(video_id, frame, det))

    def crops(self, keys: Iterable[tuple[int, int, int]]) -> list[bytes | None]:
        """JPEG bytes for many (video, frame, det) keys, in one read transaction."""
        keys = list(keys)
        if not (self.root / CROPS_NAME).exists():
            return [None] * len(keys)
        with self._lmdb().begin() as txn:
            return [txn.get(crop_key(*k)) for k in keys]

    def crop_keys(self, video_id: int) -> list[tuple[int, int]]:
        """(frame, det) of every crop of a video, in key order."""
        if not (self.root / CROPS_NAME).exists():
            return []
        prefix = b"%08d/" % video_id
        out = []
        with self._lmdb().begin() as txn:
            cur = txn.cursor()
            if cur.set_range(prefix):
                for key in cur.iternext(keys=True, values=False):
                    if not key.startswith(prefix):
                        break
                    _, f, d = parse_crop_key(key)
                    out.append((f, d))
        return out

    def crop_stats(self, video_id: int) -> tuple[int, int]:
        """(number of crops, total JPEG bytes) of a video."""
        if not (self.root / CROPS_NAME).exists():
            return 0, 0
        prefix = b"%08d/" % video_id
        n = total = 0
        with self._lmdb().begin() as txn:
            cur = txn.cursor()
            if cur.set_range(prefix):
                for key, value in cur:
                    if not key.startswith(prefix):
                        break
                    n += 1
                    total += len(value)
        return n, total

    # --------------------------------------------------------------- tracklets
    def replace_tracklets(self, video_id: int, frame: np.ndarray, det: np.ndarray,
                          tracklet: np.ndarray) -> None:
        """Store the tracker's output: for each detection with ``tracklet >= 0`` its tracklet."""
        keep = np.asarray(tracklet) >= 0
        rows = list(zip(np.asarray(tracklet)[keep].tolist(), np.asarray(frame)[keep].tolist(),
                        np.asarray(det)[keep].tolist()))
        with self.conn:
            self.conn.execute("DELETE FROM tracklet_boxes WHERE video_id = ?", (video_id,))
            self.conn.executemany("INSERT INTO tracklet_boxes VALUES (?,?,?,?)",
                                  [(video_id, *r) for r in rows])

    def tracklet_boxes(self, video_id: int) -> tuple[np.ndarray, Detections]:
        """(tracklet id per row, detections joined) ordered by tracklet then frame."""
        rows = self.conn.execute(
            "SELECT t.tracklet, d.frame, d.det, d.x1, d.y1, d.x2, d.y2, d.conf, d.cls "
            "FROM tracklet_boxes t JOIN detections d ON d.video_id = t.video_id "
            "AND d.frame = t.frame AND d.det = t.det WHERE t.video_id = ? "
            "ORDER BY t.tracklet, t.frame", (video_id,)).fetchall()
        arr = np.asarray(rows, dtype=np.float64).reshape(-1, 9)
        return arr[:, 0].astype(np.int64), _as_detections(arr[:, 1:])

    # ----------------------------------------------------------------- persons
    def replace_persons(self, video_id: int, persons: Sequence[dict], boxes: Sequence[tuple],
                        links: Sequence[tuple[int, int]]) -> None:
        """Replace the persons of a video.

        ``persons``: dicts with the ``persons`` table's columns (less video_id); ``boxes``:
        ``(person, frame, x1, y1, x2, y2, conf, source, tracklet, det)``; ``links``:
        ``(person, tracklet)``.
        """
        with self.conn:
            for table in ("persons", "person_boxes", "person_tracklets"):
                self.conn.execute(f"DELETE FROM {table} WHERE video_id = ?", (video_id,))
            self.db["persons"].insert_all(({"video_id": video_id, **p} for p in persons),
                                          batch_size=500)
            self.conn.executemany("INSERT INTO person_boxes VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                                  ((video_id, *b) for b in boxes))
            self.conn.executemany("INSERT INTO person_tracklets VALUES (?,?,?)",
                                  ((video_id, *l) for l in links))

    def set_ranking(self, video_id: int, ranking: Sequence[tuple[int, int, float, dict]]) -> None:
        """Store ``(person, rank, score, components)`` for each person."""
        with self.conn:
            self.conn.execute("UPDATE persons SET rank = NULL, score = NULL WHERE video_id = ?",
                              (video_id,))
            self.conn.executemany(
                "UPDATE persons SET rank = ?, score = ?, components = ? WHERE video_id = ? AND id = ?",
                [(int(r), float(s), json.dumps(c), video_id, int(p)) for p, r, s, c in ranking])

    def persons(self, video_id: int) -> list[dict]:
        """Person rows in rank order (unranked last, by id)."""
        cur = self.conn.execute(
            "SELECT * FROM persons WHERE video_id = ? ORDER BY rank IS NULL, rank, id", (video_id,))
        names = [c[0] for c in cur.description]
        out = []
        for row in cur.fetchall():
            d = dict(zip(names, row))
            d["components"] = json.loads(d["components"]) if d["components"] else {}
            out.append(d)
        return out

    def person_boxes(self, video_id: int, person: int | None = None) -> dict[str, np.ndarray]:
        """Column arrays of person boxes (one person, or all), ordered by person then frame."""
        sql = ("SELECT person, frame, x1, y1, x2, y2, conf, source, tracklet, det FROM person_boxes "
               "WHERE video_id = ?")
        args: tuple = (video_id,)
        if person is not None:
            sql += " AND person = ?"
            args += (int(person),)
        rows = self.conn.execute(sql + " ORDER BY person, frame", args).fetchall()
        arr = np.asarray(rows, dtype=np.float64).reshape(-1, 10)
        return {"person": arr[:, 0].astype(np.int64), "frame": arr[:, 1].astype(np.int64),
                "xyxy": arr[:, 2:6].astype(np.float32), "conf": arr[:, 6].astype(np.float32),
                "source": arr[:, 7].astype(np.int8), "tracklet": arr[:, 8].astype(np.int64),
                "det": arr[:, 9].astype(np.int64)}

    def person_tracklets(self, video_id: int) -> dict[int, list[int]]:
        """Tracklet ids of each person."""
        out: dict[int, list[int]] = {}
        for p, t in self.conn.execute(
                "SELECT person, tracklet FROM person_tracklets WHERE video_id = ? "
                "ORDER BY person, tracklet", (video_id,)):
            out.setdefault(p, []).append(t)
        return out

    # ------------------------------------------------- constraints, selections
    def add_constraint(self, video_id: int, kind: str, ids: Sequence[int], frame: int | None = None) -> int:
        """Record a user's merge / split / unmerge; ``group`` keeps it on every later run."""
        with self.conn:
            cur = self.conn.execute(
                "INSERT INTO constraints (video_id, kind, ids, frame, created) VALUES (?,?,?,?,?)",
                (video_id, kind, json.dumps([int(i) for i in ids]), frame, now()))
        return cur.lastrowid

    def constraints(self, video_id: int) -> list[dict]:
        """The user's constraints, oldest first."""
        rows = self.conn.execute(
            "SELECT id, kind, ids, frame, created FROM constraints WHERE video_id = ? ORDER BY id",
            (video_id,)).fetchall()
        return [{"id": r[0], "kind": r[1], "ids": json.loads(r[2]), "frame": r[3], "created": r[4]}
                for r in rows]

    def delete_constraints(self, ids: Iterable[int]) -> None:
        """Remove constraints by id."""
        with self.conn:
            self.conn.executemany("DELETE FROM constraints WHERE id = ?", [(int(i),) for i in ids])

    def add_selection(self, video_id: int, person_ids: Sequence[int], person_id: int,
                      n_frames: int, path: str, fmt: str) -> int:
        """Record what the user selected and where it was written."""
        with self.conn:
            cur = self.conn.execute(
                "INSERT INTO selections (video_id, person_ids, person_id, n_frames, path, format, "
                "created) VALUES (?,?,?,?,?,?,?)",
                (video_id, json.dumps([int(i) for i in person_ids]), int(person_id), int(n_frames),
                 path, fmt, now()))
        return cur.lastrowid

    def selections(self, video_id: int | None = None) -> list[dict]:
        """Recorded selections, newest last."""
        sql = "SELECT id, video_id, person_ids, person_id, n_frames, path, format, created FROM selections"
        args: tuple = ()
        if video_id is not None:
            sql += " WHERE video_id = ?"
            args = (video_id,)
        cur = self.conn.execute(sql + " ORDER BY id", args)
        names = [c[0] for c in cur.description]
        return [dict(zip(names, r)) | {"person_ids": json.loads(r[2])} for r in cur.fetchall()]

    # ---------------------------------------------------------------- helpers
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A SQLite transaction for callers that write several tables together."""
        with self.conn:
            yield self.conn

    def integrity_ok(self) -> bool:
        """``PRAGMA integrity_check`` is ok."""
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def project_dir(value: str | os.PathLike | None) -> Path:
    """The project directory from an option value, ``PTRACK_PROJECT`` or the default."""
    return Path(value or os.environ.get("PTRACK_PROJECT") or DEFAULT_PROJECT)
