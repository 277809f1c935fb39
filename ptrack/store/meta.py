"""The metadata store: videos, runs, detections, tracklets, persons, constraints, selections.

One SQLite file (``ptrack.db``, WAL mode) behind :class:`MetaStore`. Every method that writes
runs in one transaction; the methods that finish a stage (``replace_tracklets``,
``replace_persons``, ``set_ranking`` with a ``run_id``) also record the run ``done`` and mark the
later stages stale in that same transaction, so a kill never leaves a stage's results and its
run status out of step. Only :mod:`ptrack.store` uses this module.
"""

from __future__ import annotations

import datetime as _dt
import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from ptrack.boxes import Boxes
from ptrack.errors import PtrackError

SCHEMA_VERSION = 4
STAGES = ("detect", "track", "group", "rank")
POSE_STAGE = "pose"
"""Keypoints of chosen persons (``ptrack pose``): made from a ``group`` run's persons, so a new
detect, track or group run makes them stale (rank changes no person)."""

SHORTLIST_LOOK = 16
"""Frames looked at per time slice when shortlisting preview boxes: a 30-minute person's slice
spans ~600 frames, and the best of 16 evenly spaced ones is as good a preview as the best of all."""

_EMBEDDINGS_TABLE = """
CREATE TABLE IF NOT EXISTS embeddings (
    video_id INTEGER NOT NULL, model TEXT NOT NULL, frame INTEGER NOT NULL, det INTEGER NOT NULL,
    vec BLOB NOT NULL, PRIMARY KEY (video_id, model, frame, det)) WITHOUT ROWID;
"""
"""Appearance embeddings of detections (``ptrack.persons.descriptors``): one float16 vector per
(video, embedder, frame, det); ``model`` names the embedder (weights digest and input size)."""

_SUGGESTIONS_TABLE = """
CREATE TABLE IF NOT EXISTS suggestions (
    video_id INTEGER NOT NULL, k INTEGER NOT NULL, a INTEGER NOT NULL, b INTEGER NOT NULL,
    track_run INTEGER, position INTEGER, data TEXT, PRIMARY KEY (video_id, k)) WITHOUT ROWID;
"""
"""Suggested merges (``ptrack suggest``): number ``k`` (per video, never reused) names the pair
of persons whose ids were tracklets ``a`` and ``b`` when first suggested (from the tracking of
``track_run``); ``position`` (1 = best) and ``data`` (the evidence, JSON) are set while the
pair is open in the latest grouping, NULL once merged, rejected or no longer suggested."""

_KEYPOINTS_TABLE = """
CREATE TABLE IF NOT EXISTS keypoints (
    video_id INTEGER NOT NULL, person INTEGER NOT NULL, frame INTEGER NOT NULL,
    run INTEGER NOT NULL, source INTEGER NOT NULL, score REAL, kpts BLOB,
    PRIMARY KEY (video_id, person, frame)) WITHOUT ROWID;
"""
"""Pose keypoints of a person per frame (``ptrack.pose``): ``kpts`` = float32 (17, 3) bytes (x, y
in video pixels, confidence), NULL with ``score`` where the crop held no pose of the person;
``run`` = the ``pose`` run that wrote the row; ``source`` = the person box's (0 observed,
1 interpolated). Schema 4."""

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
    sx1 REAL, sy1 REAL, sx2 REAL, sy2 REAL,
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
""" + _EMBEDDINGS_TABLE + _SUGGESTIONS_TABLE + _KEYPOINTS_TABLE

# Each entry upgrades a project from version (index + 1) to (index + 2).
_UPGRADES: list[str] = [
    # 1 -> 2: smoothed person boxes beside the raw ones. Old persons get their raw box as the
    # smoothed one for now, and group (and rank) are marked stale, so the next command that
    # reads persons re-runs group, which writes the real smoothed boxes.
    """
    ALTER TABLE person_boxes ADD COLUMN sx1 REAL;
    ALTER TABLE person_boxes ADD COLUMN sy1 REAL;
    ALTER TABLE person_boxes ADD COLUMN sx2 REAL;
    ALTER TABLE person_boxes ADD COLUMN sy2 REAL;
    UPDATE person_boxes SET sx1 = x1, sy1 = y1, sx2 = x2, sy2 = y2;
    UPDATE runs SET status = 'stale' WHERE stage IN ('group', 'rank') AND status = 'done';
    """,
    # 2 -> 3: stored appearance embeddings (computed by group on first use; nothing to fill).
    _EMBEDDINGS_TABLE,
    # 3 -> 4: suggested merges (filled by the next group run) and pose keypoints of chosen
    # persons (written by `ptrack pose`; nothing to fill).
    _SUGGESTIONS_TABLE + _KEYPOINTS_TABLE,
]
_TABLES_OF_VIDEO = ("suggestions", "keypoints", "embeddings", "detections", "tracklet_boxes", "persons", "person_boxes",
                    "person_tracklets",
                    "constraints", "selections", "runs")


_PROCESS_KEY = "run_process:"
"""``meta`` key prefix: the process (pid, host, start time) of a run while it is ``running``."""


def _json(text: Any, run_id: int, what: str) -> Any:
    """A run's recorded JSON object, or a one-line error naming the damage."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else \
            (str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__)
        raise PtrackError(f"run {run_id}'s recorded {what} are unreadable ({reason}); the project "
                          f"database is damaged") from None
    if not isinstance(value, dict):
        raise PtrackError(f"run {run_id}'s recorded {what} are unreadable (not a JSON object); "
                          f"the project database is damaged")
    return value


def now() -> str:
    """Current UTC time as ISO text, seconds precision."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


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
    status: str  # running | done | stale | failed | interrupted
    frames_done: int
    input_run: int | None
    stats: dict


def as_boxes(rows: Sequence[tuple] | np.ndarray) -> Boxes:
    """``(frame, det, x1, y1, x2, y2, conf, cls)`` rows as :class:`Boxes` with a ``det`` column."""
    arr = np.asarray(rows, dtype=np.float64).reshape(-1, 8)
    return Boxes(arr[:, 0].astype(np.int64), arr[:, 2:6], arr[:, 6], arr[:, 7].astype(np.int64),
                 det=arr[:, 1].astype(np.int64))


class MetaStore:
    """SQL over one open connection. Writes commit per call (or per ``with self.conn``)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    # ------------------------------------------------------------------- schema
    def schema_version(self) -> int:
        """0 for a database without ptrack's tables."""
        has_meta = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        if not has_meta:
            return 0
        row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0]) if row else 0

    def migrate(self, where: str) -> None:
        """Create or upgrade the schema; refuse a newer one."""
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise PtrackError(
                f"project {where} was written by a newer ptrack (schema {version}, this one "
                f"knows {SCHEMA_VERSION}); upgrade ptrack")
        if version == SCHEMA_VERSION:
            return
        with self.conn:
            if version == 0:
                self.conn.executescript(_SCHEMA)
            else:
                for step in _UPGRADES[version - 1:]:
                    self.conn.executescript(step)
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                              (str(SCHEMA_VERSION),))

    # ------------------------------------------------------------------- videos
    def videos(self) -> list[Video]:
        """All videos, by id."""
        rows = self.conn.execute(
            "SELECT id, name, path, size, fingerprint, fps, width, height, frame_count, has_crops "
            "FROM videos ORDER BY id").fetchall()
        return [Video(*r[:9], bool(r[9])) for r in rows]

    def add_video(self, *, name: str, path: str, size: int, fingerprint: str, fps: float,
                  width: int, height: int, frame_count: int, has_crops: bool = True) -> int:
        """Register a video (a taken name gets a ``~N`` suffix); returns its id."""
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
        return int(cur.lastrowid)

    def update_video(self, video_id: int, **fields: Any) -> None:
        """Change stored facts of a video (path after a move, frame count after decoding)."""
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.conn:
            self.conn.execute(f"UPDATE videos SET {sets} WHERE id = ?", (*fields.values(), video_id))

    def count_video_rows(self, video_id: int) -> dict[str, int]:
        """Rows per table that :meth:`remove_video` would delete (``rm --dry-run``)."""
        return {table: int(self.conn.execute(f"SELECT COUNT(*) FROM {table} WHERE video_id = ?",
                                             (video_id,)).fetchone()[0])
                for table in _TABLES_OF_VIDEO}

    def remove_video(self, video_id: int) -> dict[str, int]:
        """Delete every row of the video; returns rows deleted per table."""
        counts = {}
        with self.conn:
            for table in _TABLES_OF_VIDEO:
                counts[table] = self.conn.execute(f"DELETE FROM {table} WHERE video_id = ?",
                                                  (video_id,)).rowcount
            self.conn.execute("DELETE FROM videos WHERE id = ?", (video_id,))
        return counts

    # --------------------------------------------------------------------- runs
    def start_run(self, video_id: int, stage: str, settings: dict, input_run: int | None = None,
                  process: dict | None = None) -> int:
        """Record the start of a stage run; returns its id. ``process`` (pid, host, start time)
        is kept beside it while it runs, so a run whose process died can be closed."""
        with self.conn:
            cur = self.conn.execute(
                "INSERT INTO runs (video_id, stage, settings, status, input_run, started) "
                "VALUES (?,?,?,?,?,?)",
                (video_id, stage, json.dumps(settings, sort_keys=True), "running", input_run, now()))
            if process is not None:
                self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                  (f"{_PROCESS_KEY}{cur.lastrowid}", json.dumps(process)))
        return int(cur.lastrowid)

    def run_process(self, run_id: int) -> dict | None:
        """The process recorded as running ``run_id`` (None when unknown)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?",
                                (f"{_PROCESS_KEY}{run_id}",)).fetchone()
        try:
            tag = json.loads(row[0]) if row else None
        except (ValueError, RecursionError):
            return None
        return tag if isinstance(tag, dict) else None

    def run(self, run_id: int) -> Run:
        """One run by id (a one-line error when its recorded JSON is unreadable)."""
        row = self.conn.execute(
            "SELECT id, video_id, stage, settings, status, frames_done, input_run, stats "
            "FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise PtrackError(f"no run {run_id} (run ids: `ptrack list runs`)", exit_code=2)
        return Run(row[0], row[1], row[2], _json(row[3], run_id, "settings"), row[4], row[5],
                   row[6], _json(row[7], run_id, "stats") if row[7] else {})

    def unreadable_runs(self) -> list[str]:
        """Runs whose recorded settings or stats are not readable JSON objects (damage)."""
        out = []
        for rid, settings, stats in self.conn.execute("SELECT id, settings, stats FROM runs ORDER BY id"):
            for what, text in (("settings", settings), ("stats", stats)):
                if what == "stats" and not text:
                    continue
                try:
                    _json(text, rid, what)
                except PtrackError as exc:
                    out.append(exc.message)
        return out

    def run_times(self, run_id: int) -> tuple[str | None, str | None]:
        """When a run started and finished (UTC ISO text; finished None while it runs)."""
        row = self.conn.execute("SELECT started, finished FROM runs WHERE id = ?",
                                (run_id,)).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def latest_run(self, video_id: int, stage: str) -> Run | None:
        """The newest run of ``stage`` on the video, whatever its status."""
        row = self.conn.execute(
            "SELECT id FROM runs WHERE video_id = ? AND stage = ? ORDER BY id DESC LIMIT 1",
            (video_id, stage)).fetchone()
        return self.run(row[0]) if row else None

    def drop_run(self, run_id: int) -> None:
        """Forget a run that never stored anything."""
        with self.conn:
            self.conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
            self.conn.execute("DELETE FROM meta WHERE key = ?", (f"{_PROCESS_KEY}{run_id}",))

    def set_run_status(self, run_id: int, status: str) -> None:
        """Change a run's status only (e.g. ``interrupted``), keeping its progress marker."""
        with self.conn:
            self.conn.execute("UPDATE runs SET status = ? WHERE id = ?", (status, run_id))
            if status != "running":
                self.conn.execute("DELETE FROM meta WHERE key = ?", (f"{_PROCESS_KEY}{run_id}",))

    def _finish(self, run_id: int, status: str, stats: dict | None) -> None:
        """Within the caller's transaction: finish the run; ``done`` makes later stages stale."""
        self.conn.execute("UPDATE runs SET status = ?, stats = ?, finished = ? WHERE id = ?",
                          (status, json.dumps(stats or {}), now(), run_id))
        self.conn.execute("DELETE FROM meta WHERE key = ?", (f"{_PROCESS_KEY}{run_id}",))
        if status == "done":
            row = self.conn.execute("SELECT video_id, stage FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is not None and row[1] in STAGES:
                self._mark_stale(row[0], row[1])

    def finish_run(self, run_id: int, status: str = "done", stats: dict | None = None) -> None:
        """Mark a run finished with its summary numbers; ``done`` marks the later stages stale."""
        with self.conn:
            self._finish(run_id, status, stats)

    def _mark_stale(self, video_id: int, after_stage: str) -> None:
        later = STAGES[STAGES.index(after_stage) + 1:]
        if after_stage != "rank":  # new persons (or new boxes under them): their poses are old
            later = (*later, POSE_STAGE)
        if later:
            marks = ",".join("?" * len(later))
            self.conn.execute(
                f"UPDATE runs SET status = 'stale' WHERE video_id = ? AND status = 'done' "
                f"AND stage IN ({marks})", (video_id, *later))

    def mark_stale(self, video_id: int, after_stage: str) -> None:
        """Mark every finished run of the stages after ``after_stage`` as stale."""
        with self.conn:
            self._mark_stale(video_id, after_stage)

    def runs_in_state(self, status: str) -> list[Run]:
        """Every run with this status, oldest first."""
        return [self.run(i) for i in self.run_ids_in_state(status)]

    def run_ids_in_state(self, status: str) -> list[int]:
        """Ids of every run with this status, oldest first (no JSON read)."""
        return [r[0] for r in self.conn.execute("SELECT id FROM runs WHERE status = ? ORDER BY id",
                                                (status,))]

    # --------------------------------------------------------------- detections
    def commit_detections(self, video_id: int, run_id: int, frames_done: int, rows: Sequence[tuple],
                          replace_from: int | None = None) -> None:
        """Detections and the progress marker in one transaction; with ``replace_from``, the
        video's older detections from that frame on go in the same transaction and the later
        stages become stale."""
        with self.conn:
            if replace_from is not None:
                self.conn.execute("DELETE FROM detections WHERE video_id = ? AND frame >= ?",
                                  (video_id, replace_from))
                self._delete_embeddings(video_id, replace_from)
                self._mark_stale(video_id, "detect")
            self.conn.executemany("INSERT OR REPLACE INTO detections VALUES (?,?,?,?,?,?,?,?,?)",
                                  [(video_id, *r) for r in rows])
            self.conn.execute("UPDATE runs SET frames_done = ? WHERE id = ?", (frames_done, run_id))

    def delete_detections(self, video_id: int, from_frame: int = 0) -> int:
        """Delete the video's detections at frames >= ``from_frame``; returns how many."""
        with self.conn:
            self._delete_embeddings(video_id, from_frame)
            return self.conn.execute("DELETE FROM detections WHERE video_id = ? AND frame >= ?",
                                     (video_id, from_frame)).rowcount

    def detections(self, video_id: int, frames: Iterable[int] | None = None) -> Boxes:
        """Detections sorted by frame, then detection index: all, or only those in ``frames``."""
        sql = "SELECT frame, det, x1, y1, x2, y2, conf, cls FROM detections WHERE video_id = ?"
        if frames is None:
            rows = self.conn.execute(sql + " ORDER BY frame, det", (video_id,)).fetchall()
        else:
            wanted = json.dumps(sorted({int(f) for f in frames}))
            rows = self.conn.execute(
                sql + " AND frame IN (SELECT value FROM json_each(?)) ORDER BY frame, det",
                (video_id, wanted)).fetchall()
        return as_boxes(rows)

    def count_detections(self, video_id: int | None = None) -> int:
        """How many detections a video (or the project) has."""
        if video_id is None:
            return self.conn.execute("SELECT COUNT(*) FROM detections").fetchone()[0]
        return self.conn.execute("SELECT COUNT(*) FROM detections WHERE video_id = ?",
                                 (video_id,)).fetchone()[0]

    def count_detections_with_crops(self) -> int:
        """Detections of videos whose crops are stored (not imported boxes)."""
        return self.conn.execute(
            "SELECT COUNT(*) FROM detections d JOIN videos v ON v.id = d.video_id "
            "WHERE v.has_crops = 1").fetchone()[0]

    def detection_keys(self, video_id: int) -> list[tuple[int, int]]:
        """(frame, det) of every detection of a video, in crop-key order."""
        return [tuple(r) for r in self.conn.execute(
            "SELECT frame, det FROM detections WHERE video_id = ? ORDER BY frame, det", (video_id,))]

    def replace_detections(self, video_id: int, rows: Iterable[tuple], run_id: int | None = None,
                           stats: dict | None = None) -> int:
        """Replace all detections of a video (``import``); with ``run_id`` the run
        finishes in the same transaction."""
        rows = [(video_id, *r) for r in rows]
        with self.conn:
            self.conn.execute("DELETE FROM detections WHERE video_id = ?", (video_id,))
            self._delete_embeddings(video_id, 0)
            self.conn.executemany("INSERT INTO detections VALUES (?,?,?,?,?,?,?,?,?)", rows)
            if run_id is not None:
                self._finish(run_id, "done", stats)
        return len(rows)

    # --------------------------------------------------------------- embeddings
    def _delete_embeddings(self, video_id: int, from_frame: int) -> None:
        """Within the caller's transaction: embeddings of detections being replaced go too."""
        self.conn.execute("DELETE FROM embeddings WHERE video_id = ? AND frame >= ?",
                          (video_id, from_frame))

    def put_embeddings(self, video_id: int, model: str, frame: Sequence[int], det: Sequence[int],
                       vectors: np.ndarray, dtype=np.float16) -> int:
        """Store one vector per (frame, det) as ``dtype`` (float16, or float32 where the
        numbers must come back as they were used), in one transaction; returns how many.

        Rows with a non-finite value (a crop that could not be read) are stored too, as NaN,
        so they are not tried again. A model's vectors are always read with the dtype they
        were stored with."""
        vec = np.asarray(vectors, dtype=dtype).reshape(len(frame), -1)
        rows = [(video_id, model, int(f), int(d), vec[i].tobytes())
                for i, (f, d) in enumerate(zip(frame, det))]
        with self.conn:
            self.conn.executemany("INSERT OR REPLACE INTO embeddings VALUES (?,?,?,?,?)", rows)
        return len(rows)

    def embeddings(self, video_id: int, model: str, frame: Sequence[int], det: Sequence[int],
                   dtype=np.float16) -> tuple[np.ndarray, np.ndarray]:
        """``(found (n,) bool, vectors (n, d) float32)`` for the (frame, det) keys, in order;
        ``dtype`` is the one they were stored with (:meth:`put_embeddings`).

        Rows not stored are NaN (``d`` is 0 when nothing is stored)."""
        frame = np.asarray(frame, np.int64).reshape(-1)
        det = np.asarray(det, np.int64).reshape(-1)
        found = np.zeros(len(frame), bool)
        if not len(frame) or self.schema_version() < 3:  # (an older project opened read-only)
            return found, np.zeros((len(frame), 0), np.float32)
        wanted = json.dumps(sorted(set(frame.tolist())))
        rows = self.conn.execute(
            "SELECT frame, det, vec FROM embeddings WHERE video_id = ? AND model = ? "
            "AND frame IN (SELECT value FROM json_each(?))", (video_id, model, wanted)).fetchall()
        if not rows:
            return found, np.zeros((len(frame), 0), np.float32)
        at = {(f, d): i for i, (f, d, _) in enumerate(rows)}
        dtype = np.dtype(dtype)
        dim = len(rows[0][2]) // dtype.itemsize
        out = np.full((len(frame), dim), np.nan, np.float32)
        for k, (f, d) in enumerate(zip(frame.tolist(), det.tolist())):
            i = at.get((f, d))
            if i is not None:
                out[k] = np.frombuffer(rows[i][2], dtype)
                found[k] = True
        return found, out

    def count_embeddings(self, video_id: int, model: str | None = None) -> int:
        """How many vectors are stored for a video (of one embedder, or any)."""
        if model is None:
            return self.conn.execute("SELECT COUNT(*) FROM embeddings WHERE video_id = ?",
                                     (video_id,)).fetchone()[0]
        return self.conn.execute("SELECT COUNT(*) FROM embeddings WHERE video_id = ? AND model = ?",
                                 (video_id, model)).fetchone()[0]

    # ---------------------------------------------------------------- tracklets
    def replace_tracklets(self, video_id: int, frame: np.ndarray, det: np.ndarray,
                          tracklet: np.ndarray, run_id: int | None = None,
                          stats: dict | None = None) -> None:
        """Store the tracker's output (rows with ``tracklet >= 0``); with ``run_id`` the
        run finishes ``done`` and later stages go stale in the same transaction."""
        keep = np.asarray(tracklet) >= 0
        rows = list(zip(np.asarray(tracklet)[keep].tolist(), np.asarray(frame)[keep].tolist(),
                        np.asarray(det)[keep].tolist()))
        with self.conn:
            self.conn.execute("DELETE FROM tracklet_boxes WHERE video_id = ?", (video_id,))
            self.conn.executemany("INSERT INTO tracklet_boxes VALUES (?,?,?,?)",
                                  [(video_id, *r) for r in rows])
            if run_id is not None:
                self._finish(run_id, "done", stats)

    def tracklet_boxes(self, video_id: int) -> tuple[np.ndarray, Boxes]:
        """(tracklet id per row, detections joined, with a ``tracklet`` column) by tracklet,
        then frame."""
        rows = self.conn.execute(
            "SELECT t.tracklet, d.frame, d.det, d.x1, d.y1, d.x2, d.y2, d.conf, d.cls "
            "FROM tracklet_boxes t JOIN detections d ON d.video_id = t.video_id "
            "AND d.frame = t.frame AND d.det = t.det WHERE t.video_id = ? "
            "ORDER BY t.tracklet, t.frame", (video_id,)).fetchall()
        arr = np.asarray(rows, dtype=np.float64).reshape(-1, 9)
        tid = arr[:, 0].astype(np.int64)
        return tid, as_boxes(arr[:, 1:]).with_columns(tracklet=tid)

    # ------------------------------------------------------------------ persons
    def replace_persons(self, video_id: int, persons: Sequence[dict], boxes: Sequence[tuple],
                        links: Sequence[tuple[int, int]], run_id: int | None = None,
                        stats: dict | None = None, suggestions: Sequence[dict] | None = None,
                        track_run: int | None = None) -> None:
        """Replace the persons of a video.

        ``persons``: dicts with the ``persons`` table's columns (less video_id); ``boxes``:
        ``(person, frame, x1, y1, x2, y2, conf, source, tracklet, det, sx1, sy1, sx2, sy2)``:
        the raw box (the detector's, or the interpolated one), then the smoothed box (the last
        four may be left out: the smoothed box is then the raw one); ``links``:
        ``(person, tracklet)``. With ``run_id`` the run finishes ``done`` and later stages go
        stale in the same transaction. ``suggestions`` (dicts with persons ``a``, ``b``, best
        first) replace the open suggested merges (see :meth:`_put_suggestions`).
        """
        with self.conn:
            for table in ("persons", "person_boxes", "person_tracklets"):
                self.conn.execute(f"DELETE FROM {table} WHERE video_id = ?", (video_id,))
            cols = ("id", "rank", "score", "components", "n_frames", "n_observed", "first", "last",
                    "n_tracklets", "mean_height", "mean_conf")
            self.conn.executemany(
                f"INSERT INTO persons (video_id, {', '.join(cols)}) VALUES ({','.join('?' * 12)})",
                [(video_id, *(p.get(c) for c in cols)) for p in persons])
            self.conn.executemany(
                "INSERT INTO person_boxes VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                ((video_id, *b, *(b[2:6] if len(b) == 10 else ())) for b in boxes))
            self.conn.executemany("INSERT INTO person_tracklets VALUES (?,?,?)",
                                  ((video_id, *l) for l in links))
            if suggestions is not None:
                self._put_suggestions(video_id, suggestions, links, track_run)
            if run_id is not None:
                self._finish(run_id, "done", stats)

    def _put_suggestions(self, video_id: int, suggestions: Sequence[dict],
                         links: Sequence[tuple[int, int]], track_run: int | None) -> None:
        """Open ``suggestions`` (best first), keeping each pair's number: a stored suggestion of
        the same tracking whose tracklets ``a`` and ``b`` now lie in the suggested pair of
        persons keeps its ``k``; a new pair gets the next number; every other is closed."""
        person_of = {int(t): int(p) for p, t in links}
        old = self.conn.execute(
            "SELECT k, a, b, track_run FROM suggestions WHERE video_id = ?", (video_id,)).fetchall()
        by_pair: dict[tuple[int, int], int] = {}
        for k, a, b, run in old:
            if run == track_run and a in person_of and b in person_of:
                pair = tuple(sorted((person_of[a], person_of[b])))
                by_pair.setdefault(pair, k)  # type: ignore[arg-type]
        next_k = max((r[0] for r in old), default=0) + 1
        self.conn.execute("UPDATE suggestions SET position = NULL, data = NULL WHERE video_id = ?",
                          (video_id,))
        for pos, s in enumerate(suggestions, 1):
            pair = tuple(sorted((int(s["a"]), int(s["b"]))))
            k = by_pair.get(pair)  # type: ignore[arg-type]
            if k is None:
                k, next_k = next_k, next_k + 1
                self.conn.execute(
                    "INSERT INTO suggestions (video_id, k, a, b, track_run) VALUES (?,?,?,?,?)",
                    (video_id, k, int(s["a"]), int(s["b"]), track_run))
            self.conn.execute(
                "UPDATE suggestions SET position = ?, data = ? WHERE video_id = ? AND k = ?",
                (pos, json.dumps(s), video_id, k))

    def suggestions(self, video_id: int, k: int | None = None) -> list[dict]:
        """Open suggested merges, best first (their evidence dicts with ``k``, ``rank`` 1 = best,
        ``tracklets`` a and b); with ``k``, that one whether open or not (``open`` False and no
        evidence once closed; [] if unknown)."""
        if k is not None:
            rows = self.conn.execute(
                "SELECT k, a, b, position, data FROM suggestions WHERE video_id = ? AND k = ?",
                (video_id, int(k))).fetchall()
        else:
            rows = self.conn.execute(
                "SELECT k, a, b, position, data FROM suggestions WHERE video_id = ? AND "
                "position IS NOT NULL ORDER BY position", (video_id,)).fetchall()
        out = []
        for k_, a, b, pos, data in rows:
            d = json.loads(data) if data else {}
            out.append({**d, "k": int(k_), "tracklets": [int(a), int(b)], "rank": pos,
                        "open": pos is not None})
        return out

    def set_ranking(self, video_id: int, ranking: Sequence[tuple[int, int, float, dict]],
                    run_id: int | None = None, stats: dict | None = None) -> None:
        """Store ``(person, rank, score, components)`` for each person (and finish ``run_id``)."""
        with self.conn:
            self.conn.execute("UPDATE persons SET rank = NULL, score = NULL WHERE video_id = ?",
                              (video_id,))
            self.conn.executemany(
                "UPDATE persons SET rank = ?, score = ?, components = ? WHERE video_id = ? AND id = ?",
                [(int(r), float(s), json.dumps(c), video_id, int(p)) for p, r, s, c in ranking])
            if run_id is not None:
                self._finish(run_id, "done", stats)

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

    def person_boxes(self, video_id: int, person: int | Iterable[int] | None = None) -> Boxes:
        """Column arrays of person boxes (one person, several, or all), ordered by person then
        frame.

        ``xyxy`` is the raw box (the detector's; the interpolated one in a gap), ``smoothed``
        the smoothed one (the raw one in a project of schema 1 opened read-only).
        """
        smooth = "sx1, sy1, sx2, sy2" if self.schema_version() >= 2 else "x1, y1, x2, y2"
        sql = ("SELECT person, frame, x1, y1, x2, y2, conf, source, tracklet, det, "
               f"{smooth} FROM person_boxes WHERE video_id = ?")
        args: tuple = (video_id,)
        if isinstance(person, (int, np.integer)):
            sql += " AND person = ?"
            args += (int(person),)
        elif person is not None:
            sql += " AND person IN (SELECT value FROM json_each(?))"
            args += (json.dumps(sorted({int(p) for p in person})),)
        rows = self.conn.execute(sql + " ORDER BY person, frame", args).fetchall()
        arr = np.asarray(rows, dtype=np.float64).reshape(-1, 14)
        return Boxes(arr[:, 1], arr[:, 2:6], arr[:, 6], person=arr[:, 0], source=arr[:, 7],
                     tracklet=arr[:, 8], det=arr[:, 9],
                     data={"smoothed": arr[:, 10:14].astype(np.float32)})

    def person_box_shortlist(self, video_id: int, persons: Iterable[int], bins: int,
                             per_bin: int) -> Boxes:
        """Preview candidates, chosen inside SQLite: each person's span cut into
        ``bins * per_bin`` equal time slices and, from each, the observed box with the highest
        confidence x height; plus the person's first and last box (marked interpolated: they
        give the span, they are not candidates). Columns as :meth:`person_boxes`, ordered by
        person, then frame.

        A person seen for 30 minutes has ~50,000 boxes; reading them all into Python takes a
        second, this reads ``bins * per_bin + 2`` per person in one aggregate pass (SQLite
        returns the other columns of the row that holds the MAX), looking at no more than
        ``SHORTLIST_LOOK`` evenly spaced frames of each slice.
        """
        smooth = "sx1, sy1, sx2, sy2" if self.schema_version() >= 2 else "x1, y1, x2, y2"
        cols = ("b.person, b.frame, b.x1, b.y1, b.x2, b.y2, b.conf, b.source, b.tracklet, "
                "b.det, " + ", ".join(f"b.{c}" for c in smooth.split(", ")))
        slices = max(int(bins), 1) * max(int(per_bin), 1)
        sql = f"""
            WITH span AS (
                SELECT person, MIN(frame) AS f0, MAX(frame) AS f1 FROM person_boxes
                WHERE video_id = :v AND person IN (SELECT value FROM json_each(:ids))
                GROUP BY person)
            SELECT {cols}, 0, MAX(b.conf * (b.y2 - b.y1))
                FROM person_boxes b JOIN span s ON s.person = b.person
                WHERE b.video_id = :v AND b.source = 0 AND b.det >= 0
                  AND (b.frame - s.f0) % MAX(1, (s.f1 - s.f0 + 1) / (:slices * :look)) = 0
                GROUP BY b.person, ((b.frame - s.f0) * :slices) / (s.f1 - s.f0 + 1)
            UNION ALL
            SELECT {cols}, 1, 0 FROM person_boxes b JOIN span s ON s.person = b.person
                WHERE b.video_id = :v AND (b.frame = s.f0 OR b.frame = s.f1)
            ORDER BY 1, 2, 15"""
        ids = json.dumps(sorted({int(p) for p in persons}))
        rows = self.conn.execute(sql, {"v": video_id, "ids": ids, "slices": slices,
                                       "look": SHORTLIST_LOOK}).fetchall()
        arr = np.asarray(rows, dtype=np.float64).reshape(-1, 16)
        source = np.where(arr[:, 14] > 0, 1, arr[:, 7])
        return Boxes(arr[:, 1], arr[:, 2:6], arr[:, 6], person=arr[:, 0], source=source,
                     tracklet=arr[:, 8], det=arr[:, 9],
                     data={"smoothed": arr[:, 10:14].astype(np.float32)})

    def person_tracklets(self, video_id: int) -> dict[int, list[int]]:
        """Tracklet ids of each person."""
        out: dict[int, list[int]] = {}
        for p, t in self.conn.execute(
                "SELECT person, tracklet FROM person_tracklets WHERE video_id = ? "
                "ORDER BY person, tracklet", (video_id,)):
            out.setdefault(p, []).append(t)
        return out

    # ------------------------------------------------------- project settings
    def project_settings(self) -> dict | None:
        """The project's own settings (a nested overlay of the defaults, only the keys it
        sets), or None when the project never stored any (made before projects kept them)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'settings'").fetchone()
        if row is None:
            return None
        try:
            data = json.loads(row[0])
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def set_project_settings(self, overlay: dict) -> None:
        """Store the project's settings overlay (replacing the previous one)."""
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('settings', ?)",
                              (json.dumps(overlay, sort_keys=True),))

    # ---------------------------------------------------------------- keypoints
    def commit_keypoints(self, video_id: int, run_id: int, frames_done: int,
                         rows: Sequence[tuple], replace: Sequence[int] | None = None) -> None:
        """One batch of a ``pose`` run: rows ``(person, frame, source, score, kpts bytes)``
        (``score`` and ``kpts`` None where no pose was found) and the run's progress marker in
        one transaction. With ``replace`` (the run's first batch), the keypoints of those
        persons, and every row of an older pose run no longer made from the video's latest
        ``group`` run, go in the same transaction."""
        with self.conn:
            if replace is not None:
                self.conn.execute(
                    "DELETE FROM keypoints WHERE video_id = ? AND person IN "
                    "(SELECT value FROM json_each(?))",
                    (video_id, json.dumps(sorted({int(p) for p in replace}))))
                self.conn.execute(
                    "DELETE FROM keypoints WHERE video_id = ? AND run IN (SELECT r.id FROM runs r "
                    "WHERE r.video_id = ? AND r.stage = ? AND (r.input_run IS NULL OR r.input_run "
                    "<> (SELECT MAX(id) FROM runs WHERE video_id = ? AND stage = 'group')))",
                    (video_id, video_id, POSE_STAGE, video_id))
            self.conn.executemany("INSERT OR REPLACE INTO keypoints VALUES (?,?,?,?,?,?,?)",
                                  [(video_id, int(p), int(f), run_id, int(src), s, k)
                                   for p, f, src, s, k in rows])
            self.conn.execute("UPDATE runs SET frames_done = ? WHERE id = ?", (frames_done, run_id))

    def keypoints(self, video_id: int, person: int) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                              np.ndarray]:
        """One person's stored keypoint rows, by frame: ``(frame int64 (n,), run int64 (n,),
        score float32 (n,) NaN where none, kpts float32 (n, 17, 3) NaN where none)``."""
        if self.schema_version() < 4:  # an older project opened read-only
            return (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32),
                    np.zeros((0, 17, 3), np.float32))
        rows = self.conn.execute(
            "SELECT frame, run, score, kpts FROM keypoints WHERE video_id = ? AND person = ? "
            "ORDER BY frame", (video_id, int(person))).fetchall()
        frame = np.asarray([r[0] for r in rows], np.int64)
        run = np.asarray([r[1] for r in rows], np.int64)
        score = np.asarray([np.nan if r[2] is None else r[2] for r in rows], np.float32)
        kpts = np.full((len(rows), 17, 3), np.nan, np.float32)
        for i, r in enumerate(rows):
            if r[3] is not None:
                kpts[i] = np.frombuffer(r[3], np.float32).reshape(17, 3)
        return frame, run, score, kpts

    def keypoint_runs(self, video_id: int) -> dict[int, int]:
        """Person -> the pose run whose keypoints are stored for it (the newest when several)."""
        if self.schema_version() < 4:
            return {}
        return {int(p): int(r) for p, r in self.conn.execute(
            "SELECT person, MAX(run) FROM keypoints WHERE video_id = ? GROUP BY person",
            (video_id,))}

    # --------------------------------------------------- constraints, selections
    def add_constraint(self, video_id: int, kind: str, ids: Sequence[int], frame: int | None = None) -> int:
        """Record a user's merge / split / unmerge; ``group`` keeps it on every later run.

        Ids are never reused: after ``constraints --delete 3`` the next one is not #3 again (a
        note or script that names #3 must not silently mean another correction). The highest id
        ever given is kept in ``meta``, since SQLite reuses the largest rowid once it is deleted.
        """
        with self.conn:
            row = self.conn.execute(
                "SELECT value FROM meta WHERE key = 'last_constraint_id'").fetchone()
            (largest,) = self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM constraints").fetchone()
            new_id = max(int(row[0]) if row else 0, int(largest)) + 1
            self.conn.execute(
                "INSERT INTO constraints (id, video_id, kind, ids, frame, created) "
                "VALUES (?,?,?,?,?,?)",
                (new_id, video_id, kind, json.dumps([int(i) for i in ids]), frame, now()))
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('last_constraint_id', ?)",
                              (str(new_id),))
        return new_id

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
        return int(cur.lastrowid)

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

    # ---------------------------------------------------------------- integrity
    def integrity_problems(self) -> list[str]:
        """``PRAGMA integrity_check`` less SQLite's false positive on WITHOUT ROWID tables.

        SQLite 3.40 reports "NULL value in person_tracklets.person" (and the like) for healthy
        WITHOUT ROWID tables; such a line is kept only if the column really holds a NULL.
        """
        problems = []
        for (line,) in self.conn.execute("PRAGMA integrity_check").fetchall():
            if line == "ok":
                continue
            if line.startswith("NULL value in "):
                table, _, column = line[len("NULL value in "):].strip().partition(".")
                known = {r[0] for r in self.conn.execute(
                    "SELECT name FROM sqlite_master WHERE type='table'")}
                if table in known and column.isidentifier() and self.conn.execute(
                        f'SELECT 1 FROM "{table}" WHERE "{column}" IS NULL LIMIT 1').fetchone() is None:
                    continue
            problems.append(line)
        return problems
