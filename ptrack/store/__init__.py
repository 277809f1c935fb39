"""The project store: the single owner of a project's files, and the only code that opens
SQLite or LMDB.

A project is a directory holding ``ptrack.db`` (the metadata store, :mod:`ptrack.store.meta`:
videos, runs, detections, tracklets, persons, constraints, selections) and ``crops.lmdb`` (the
crop store, :mod:`ptrack.store.crops_db`: one JPEG per detection). :class:`Store` is the facade
over both; its errors are :class:`ptrack.errors.StoreError` (never ``sqlite3`` or ``lmdb``
errors), each one line saying what is wrong and how to recover.

Detections and their crops are written together by :meth:`Store.commit_detections`: crops go
to LMDB first, then the detections and the run's progress marker in one SQLite transaction.
Crops beyond the marker (left by a kill between the two) are removed when a run resumes, so
the store never shows a detection without its crop or a crop without its detection.

A damaged project is reported, never reset: an empty ``ptrack.db`` next to a crop store, a
missing ``crops.lmdb`` while detections with crops exist, or an unreadable one raise
:class:`StoreError`. A project on a read-only directory opens read-only (reads work, writes
say the project is read-only).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from ptrack.boxes import Boxes
from ptrack.errors import PtrackError, StoreError
from ptrack.store.crops_db import DEFAULT_MAP_SIZE, CropStore, crop_key, disk_full, parse_crop_key
from ptrack.store.meta import POSE_STAGE, SCHEMA_VERSION, STAGES, MetaStore, Run, Video, now
from ptrack.store import safety

__all__ = ["Store", "StoreError", "Video", "Run", "IntegrityReport", "crop_key", "parse_crop_key",
           "project_dir", "now", "SCHEMA_VERSION", "STAGES", "POSE_STAGE", "DB_NAME", "CROPS_NAME",
           "DEFAULT_PROJECT"]

DB_NAME = "ptrack.db"
CROPS_NAME = "crops.lmdb"
DEFAULT_PROJECT = "ptrack-project"
EXPORT_LEFTOVER_AGE_S = 3600  # an OpenVINO export takes well under a minute; older temp dirs are dead
_PART = re.compile(r"^\..+\.part(\d+)(\.[^.]*)?$")  # ptrack.formats.export.atomic_path's temp names


def _sql_error(root: Path, exc: sqlite3.Error) -> StoreError:
    """SQLite's error as one line that says what to do."""
    text = str(exc)
    low = text.lower()
    db = root / DB_NAME
    if "readonly" in low or "read-only" in low:
        return StoreError(f"project {root} is read-only; copy it to a writable place to change it")
    if "locked" in low or "busy" in low:
        return StoreError(f"project database {db} is busy (another ptrack is writing it); "
                          f"try again when it has finished")
    if "full" in low or disk_full(db, exc):
        return StoreError(f"writing the database {db} failed (no space left on device); "
                          f"everything committed before is intact: free space and run the same "
                          f"command again to resume")
    if "malformed" in low or "not a database" in low or "corrupt" in low:
        return StoreError(f"project database {db} is damaged ({text}); restore it from a backup, "
                          f"or move the project away and run `ptrack detect --force VIDEO` again")
    return StoreError(f"project database {db} cannot be used ({text})")


def _guarded(name: str) -> Callable:
    """A facade method that calls ``MetaStore.<name>`` with SQLite's errors made StoreErrors."""
    target = getattr(MetaStore, name)

    @functools.wraps(target)
    def method(self: "Store", *args: Any, **kwargs: Any) -> Any:
        with self.guard():
            return getattr(self.meta, name)(*args, **kwargs)

    return method


@dataclass
class IntegrityReport:
    """What ``ptrack integrity`` found. ``ok`` when nothing is damaged."""

    database: list[str] = field(default_factory=list)  # SQLite problems (empty = ok)
    crops: str | None = None  # crop store problem, None = ok
    detections_without_crops: dict[str, int] = field(default_factory=dict)  # video -> count
    crops_without_detections: dict[str, int] = field(default_factory=dict)  # video or id -> count
    running: list[str] = field(default_factory=list)  # "video: stage (run N)"
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.database or self.crops or self.detections_without_crops
                    or self.crops_without_detections)


class Store:
    """A ptrack project on disk. Use :meth:`open`; close it (or use ``with``)."""

    def __init__(self, root: Path, conn: sqlite3.Connection, *, map_size: int = DEFAULT_MAP_SIZE,
                 read_only: bool = False) -> None:
        self.root = root
        self.read_only = read_only
        self._conn = conn
        self.meta = MetaStore(conn)
        self.crop_store = CropStore(root / CROPS_NAME, map_size=map_size, read_only=read_only)
        self._crops_checked = False
        self._may_create_crops = False
        self._private_copy: Path | None = None  # a read-only project's db + WAL, copied

    @functools.cached_property
    def db(self):
        """The project database as a ``sqlite_utils.Database`` on the same connection (tables,
        schema, ad-hoc queries), made on first use: importing sqlite-utils costs ~65 ms, which the
        answer commands (``list``, ``show``, ``select``) do not pay. No sqlite-utils plugins: they
        could change the project's connection, and finding them scans every installed package's
        entry points (~0.1 s)."""
        import sqlite_utils

        return sqlite_utils.Database(self._conn, execute_plugins=False)

    # ----------------------------------------------------------------- opening
    @classmethod
    def open(cls, root: str | Path, *, create: bool = True, map_size: int = DEFAULT_MAP_SIZE) -> "Store":
        """Open (and with ``create``, make) the project at ``root``.

        A project on a directory that cannot be written opens read-only.
        """
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise StoreError(f"project path {root} exists and is not a directory")
        db_path, crops_data = root / DB_NAME, root / CROPS_NAME / "data.mdb"
        has_crops = crops_data.exists()
        wal = root / (DB_NAME + "-wal")
        empty_db = (db_path.exists() and db_path.stat().st_size == 0
                    and not (wal.is_file() and wal.stat().st_size > 0))  # all of it in the log
        if has_crops and (empty_db or not db_path.exists()):
            what = "is empty (0 bytes)" if empty_db else "is missing"
            raise StoreError(
                f"project {root} is damaged: its database {DB_NAME} {what} while its crop store "
                f"{CROPS_NAME} holds crops; restore {DB_NAME} from a backup, or move the project "
                f"away and run `ptrack detect --force VIDEO` into a new one")
        if not db_path.exists():
            if not create:
                raise StoreError(f"no ptrack project at {root} (run `ptrack detect VIDEO` first)")
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create project directory {root}: {exc.strerror}") from None
        writable = os.access(root, os.W_OK)
        if not writable and (create or empty_db) and (not db_path.exists() or empty_db):
            raise StoreError(f"project directory {root} is not writable")
        private = None
        try:
            for name in (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm"):
                safety.refuse_symlink(root / name, "the project database file")
            if writable:
                conn = sqlite3.connect(str(db_path), timeout=30, check_same_thread=False)
                _untrusted(conn, db_path)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            else:  # an archive or a read-only mount: no -wal/-shm files can be made
                conn, private = _open_read_only(root, db_path)
            store = cls(root, conn, map_size=map_size, read_only=not writable)
            store._private_copy = private
            if store.read_only:
                if store.meta.schema_version() == 0:
                    raise StoreError(f"project database {db_path} holds no ptrack project "
                                     f"(and the directory is read-only)")
                if store.meta.schema_version() >= SCHEMA_VERSION:  # refuses a newer schema
                    store.meta.migrate(str(root))
                # an older one is read as it is (it cannot be upgraded in place)
            else:
                store.meta.migrate(str(root))
        except sqlite3.Error as exc:
            if private is not None:
                shutil.rmtree(private, ignore_errors=True)
            raise _sql_error(root, exc) from None
        except BaseException:
            if private is not None:
                shutil.rmtree(private, ignore_errors=True)
            raise
        if writable:
            store.clean_leftovers()
            store.close_dead_runs()
            store.finish_replacements()
        return store

    def close(self) -> None:
        """Close both files."""
        self.crop_store.close()
        self.meta.conn.close()
        if self._private_copy is not None:
            shutil.rmtree(self._private_copy, ignore_errors=True)
            self._private_copy = None

    def close_dead_runs(self) -> list[int]:
        """Runs left ``running`` by a process that is gone (killed before it could say so)
        become ``interrupted`` (a ``detect`` keeps its progress marker and resumes). Returns
        their ids."""
        closed = []
        with self.guard():
            for rid in self.meta.run_ids_in_state("running"):
                tag = self.meta.run_process(rid)
                if tag is not None and safety.process_gone(tag):
                    self.meta.set_run_status(rid, "interrupted")
                    closed.append(rid)
        return closed

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def conn(self) -> sqlite3.Connection:
        return self.meta.conn

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Turn SQLite's errors into :class:`StoreError`."""
        try:
            yield
        except sqlite3.Error as exc:
            raise _sql_error(self.root, exc) from None

    def require_writable(self) -> None:
        """Raise the read-only error before a command starts changing the project."""
        if self.read_only:
            raise StoreError(f"project {self.root} is read-only; copy it to a writable place to "
                             f"change it")

    def path(self, *parts: str) -> Path:
        """A path inside the project."""
        return self.root.joinpath(*parts)

    def output_path(self, video: Video) -> Path:
        """Where files for a user of ``video`` go, without creating it (for names only): a
        folder under ``outputs/`` named safely after the video (:func:`safety.output_name`)."""
        return self.root / "outputs" / safety.output_name(video.name, video.id)

    def output_dir(self, video: Video, *sub: str) -> Path:
        """Where files for a user (tables, selections, renders) of ``video`` go (created),
        or the folder ``sub`` inside it. Confined to ``outputs/``: no part may be a symbolic
        link (a received project could point one at a user's folder)."""
        if self.read_only:
            raise StoreError(f"project {self.root} is read-only; write elsewhere with --out PATH")
        out = self.output_path(video).joinpath(*sub)
        safety.confined(out, self.root, "the output folder")
        out.mkdir(parents=True, exist_ok=True)
        return safety.confined(out, self.root, "the output folder")

    def clean_leftovers(self) -> list[Path]:
        """Remove what killed commands left behind: ``.part`` files of dead processes under
        ``outputs/`` and stale ``models/.export-*`` folders. Returns what was removed."""
        removed: list[Path] = []
        outputs = self.root / "outputs"
        if outputs.is_dir() and not outputs.is_symlink():
            for path in outputs.rglob(".*.part*"):
                m = _PART.match(path.name)
                if m and path.is_file() and not _alive(int(m.group(1))):
                    with contextlib.suppress(OSError):
                        path.unlink()
                        removed.append(path)
        models = self.root / "models"
        if models.is_dir() and not models.is_symlink():
            cutoff = time.time() - EXPORT_LEFTOVER_AGE_S
            for path in models.glob(".export-*"):
                with contextlib.suppress(OSError):
                    if path.is_dir() and path.stat().st_mtime < cutoff:
                        shutil.rmtree(path)
                        removed.append(path)
        return removed

    # ------------------------------------------------------------------ videos
    videos = _guarded("videos")
    update_video = _guarded("update_video")

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
        if matches:
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
        with self.guard():
            vid = self.meta.add_video(name=name, path=path, size=size, fingerprint=fingerprint,
                                      fps=fps, width=width, height=height,
                                      frame_count=frame_count, has_crops=has_crops)
        return self.video(vid)

    def video_contents(self, video_id: int) -> dict[str, int]:
        """What :meth:`remove_video` would remove, per kind (``crops`` and each table)."""
        with self.guard():
            counts = self.meta.count_video_rows(video_id)
        crops = len(self._crops().keys(video_id)) if self.path(CROPS_NAME).exists() else 0
        return {"crops": crops, **counts}

    def remove_video(self, video_id: int) -> dict[str, int]:
        """Delete a video with everything stored for it: crops first, then its rows in one
        transaction. Returns what was removed per kind (``crops`` and each table)."""
        self.require_writable()
        crops = self._crops().delete(video_id, 0)
        with self.guard():
            counts = self.meta.remove_video(video_id)
        return {"crops": crops, **counts}

    # -------------------------------------------------------------------- runs
    def start_run(self, video_id: int, stage: str, settings: dict, input_run: int | None = None) -> Run:
        """Record the start of a stage run."""
        with self.guard():
            return self.meta.run(self.meta.start_run(video_id, stage, settings, input_run,
                                                     process=safety.process_tag()))

    def claim_run(self, run_id: int) -> None:
        """A resumed run: ``running`` again, by this process."""
        with self.guard(), self.conn:
            self.conn.execute("UPDATE runs SET status = 'running' WHERE id = ?", (run_id,))
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                              (f"run_process:{run_id}", json.dumps(safety.process_tag())))

    run = _guarded("run")
    latest_run = _guarded("latest_run")
    run_times = _guarded("run_times")
    drop_run = _guarded("drop_run")
    set_run_status = _guarded("set_run_status")
    finish_run = _guarded("finish_run")
    mark_stale = _guarded("mark_stale")

    def stage_state(self, video_id: int, stage: str) -> str:
        """``missing``, ``running``, ``stale``, ``failed``, ``interrupted`` or ``done``."""
        run = self.latest_run(video_id, stage)
        return "missing" if run is None else run.status

    def replacing(self, video_id: int) -> bool:
        """True while a ``detect`` of the video is unfinished (running, interrupted or failed):
        its stored detections are partial or about to be replaced, and readers should say so."""
        run = self.latest_run(video_id, "detect")
        return run is not None and run.status in ("running", "interrupted", "failed")

    # -------------------------------------------------------------- detections
    def set_crop_map_size(self, size: int) -> None:
        """The initial LMDB map size (bytes) for a crop store this process creates or opens."""
        self.crop_store.map_size = max(int(size), 1 << 16) if self.crop_store._env is None \
            else self.crop_store.map_size

    def _crops(self) -> CropStore:
        """The crop store; refuses to stand in an empty one for a missing one."""
        if not self._crops_checked:
            if not self.crop_store.exists and not self._may_create_crops:
                with self.guard():
                    expected = self.meta.count_detections_with_crops()
                if expected:
                    raise StoreError(
                        f"project {self.root} is damaged: its crop store {CROPS_NAME} is missing "
                        f"but {expected} detections have crops there; run `ptrack detect --force "
                        f"VIDEO` to detect again and rebuild them")
            self._crops_checked = True
        return self.crop_store

    def rebuild_crops_if_broken(self) -> str | None:
        """Before a ``detect --force``: move a damaged crop store aside (or accept a missing
        one) so the new run can write; returns a note for the user, or None if it is fine."""
        self.require_writable()
        problem = self.crop_store.check()
        if problem is None:
            return None
        self._may_create_crops = True
        self._crops_checked = False
        if problem == "missing":
            return f"the crop store {CROPS_NAME} was missing; a new one is made"
        moved = self.crop_store.move_aside()
        return f"the crop store was damaged and is moved to {moved}; a new one is made"

    def put_crops(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Write (key, jpeg) pairs in one LMDB transaction, growing the map when it is full."""
        self._crops().put(items)

    def delete_crops(self, video_id: int, from_frame: int = 0) -> int:
        """Delete the video's crops at frames >= ``from_frame``; returns how many."""
        return self._crops().delete(video_id, from_frame)

    def commit_detections(self, video_id: int, run_id: int, frames_done: int,
                          rows: Sequence[tuple], crops: Sequence[tuple[bytes, bytes]],
                          replace_from: int | None = None) -> None:
        """Store one batch: crops first, then detections and the progress marker together.

        ``rows`` are ``(frame, det, x1, y1, x2, y2, conf, cls)``; ``frames_done`` is the first
        frame index not yet processed once this batch is stored. With ``replace_from`` (the
        first batch of a ``detect --force``), the video's older crops and detections from that
        frame on are removed by the same two transactions, so the old results stay whole until
        the new run has its first batch to commit.
        """
        if replace_from is None:
            self.put_crops(crops)
            with self.guard():
                self.meta.commit_detections(video_id, run_id, frames_done, rows, None)
            return
        # the first batch of a replacement: the old results stay whole until SQLite commits the
        # new ones, and the new crops are whole from then on, whatever step a crash stops at.
        # 1. note the replacement; 2. stage the new crops under other keys; 3. the new
        # detections, the marker and the note "committed" in one SQLite transaction; 4. old
        # crops out, staged crops in (one LMDB transaction), note gone. A crash before 3 leaves
        # the old results (the staged crops are dropped at the next open); after 3, the next
        # open finishes step 4 (:meth:`finish_replacements`).
        key = f"{_REPLACE_KEY}{int(video_id)}"
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                         (key, json.dumps({"from": int(replace_from), "committed": False})))
        self._crops().put_staged(video_id, crops)
        with self.guard(), self.conn:
            self.meta.commit_detections(video_id, run_id, frames_done, rows, replace_from)
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                              (key, json.dumps({"from": int(replace_from), "committed": True})))
        self._finish_replace(video_id)

    def _finish_replace(self, video_id: int) -> None:
        """Step 4 of a replacement's first batch (or its undoing when SQLite never committed)."""
        key = f"{_REPLACE_KEY}{int(video_id)}"
        with self.guard():
            row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            return
        try:
            note = json.loads(row[0])
            committed, start = bool(note["committed"]), int(note["from"])
        except (ValueError, KeyError, TypeError, RecursionError):
            committed, start = False, 0
        if committed:
            self._crops().promote_staged(video_id, start)
        else:
            self._crops().drop_staged(video_id)
        with self.transaction() as conn:
            conn.execute("DELETE FROM meta WHERE key = ?", (key,))

    def finish_replacements(self) -> list[int]:
        """Finish (or undo) the first batch of a ``detect --force`` that a crash interrupted
        between its SQLite and LMDB steps, for each video nobody is detecting now."""
        from ptrack.store.locks import video_unlocked

        with self.guard():
            rows = self.conn.execute("SELECT key FROM meta WHERE key LIKE ?",
                                     (f"{_REPLACE_KEY}%",)).fetchall()
        done = []
        for (key,) in rows:
            try:
                vid = int(key[len(_REPLACE_KEY):])
            except ValueError:
                continue
            if video_unlocked(self.root, vid):
                self._finish_replace(vid)
                done.append(vid)
        return done

    def discard_detections(self, video_id: int, from_frame: int = 0) -> None:
        """Remove detections (and crops) at frames >= ``from_frame``: a clean restart point."""
        with self.guard():
            self.meta.delete_detections(video_id, from_frame)
        self._crops().delete(video_id, from_frame)

    def detections(self, video_id: int, frames: Iterable[int] | None = None) -> Boxes:
        """Detections of a video as :class:`Boxes` (with ``det``): all, or only those in ``frames``."""
        with self.guard():
            return self.meta.detections(video_id, frames)

    count_detections = _guarded("count_detections")
    replace_detections = _guarded("replace_detections")

    # ------------------------------------------------------------------- crops
    def crop(self, video_id: int, frame: int, det: int) -> bytes | None:
        """JPEG bytes of one crop, or None."""
        return self._crops().get([(video_id, frame, det)])[0]

    def crops(self, keys: Iterable[tuple[int, int, int]]) -> list[bytes | None]:
        """JPEG bytes for many (video, frame, det) keys, in one read transaction.

        None for a missing crop; decode with :func:`ptrack.detect.crops.decode`, which returns None for
        bytes that are not a usable image (callers skip those and count them)."""
        return self._crops().get(keys)

    def crop_keys(self, video_id: int) -> list[tuple[int, int]]:
        """(frame, det) of every crop of a video, in key order."""
        return [(f, d) for _, f, d in self._crops().keys(video_id)]

    def crop_stats(self, video_id: int) -> tuple[int, int]:
        """(number of crops, total JPEG bytes) of a video."""
        return self._crops().stats(video_id)

    # -------------------------------------------------------------- embeddings
    embeddings = _guarded("embeddings")
    count_embeddings = _guarded("count_embeddings")

    def put_embeddings(self, video_id: int, model: str, frame: Sequence[int], det: Sequence[int],
                       vectors, dtype="float16") -> int:
        """Store appearance vectors of detections (float16 unless ``dtype``), one transaction
        per call."""
        self.require_writable()
        with self.guard():
            return self.meta.put_embeddings(video_id, model, frame, det, vectors, dtype)

    # --------------------------------------------------------------- tracklets
    replace_tracklets = _guarded("replace_tracklets")
    tracklet_boxes = _guarded("tracklet_boxes")

    # ----------------------------------------------------------------- persons
    replace_persons = _guarded("replace_persons")
    set_ranking = _guarded("set_ranking")
    persons = _guarded("persons")
    person_boxes = _guarded("person_boxes")
    person_box_shortlist = _guarded("person_box_shortlist")
    person_tracklets = _guarded("person_tracklets")
    suggestions = _guarded("suggestions")

    # --------------------------------------------------------------- keypoints
    keypoints = _guarded("keypoints")
    keypoint_runs = _guarded("keypoint_runs")

    def commit_keypoints(self, video_id: int, run_id: int, frames_done: int,
                         rows: Sequence[tuple], replace: Sequence[int] | None = None) -> None:
        """One batch of pose keypoints and the run's progress marker, together (see
        :meth:`ptrack.store.meta.MetaStore.commit_keypoints`)."""
        self.require_writable()
        with self.guard():
            self.meta.commit_keypoints(video_id, run_id, frames_done, rows, replace)

    # ------------------------------------------------- constraints, selections
    project_settings = _guarded("project_settings")
    set_project_settings = _guarded("set_project_settings")
    add_constraint = _guarded("add_constraint")
    constraints = _guarded("constraints")
    delete_constraints = _guarded("delete_constraints")
    def add_selection(self, video_id: int, person_ids: Sequence[int], person_id: int,
                      n_frames: int, path: str, fmt: str) -> int | None:
        """Record what the user selected and where it was written (its id). A read-only project
        keeps no record (None): the selection written elsewhere is what the user asked for."""
        if self.read_only:
            return None
        with self.guard():
            return self.meta.add_selection(video_id, person_ids, person_id, n_frames, path, fmt)

    selections = _guarded("selections")

    # ---------------------------------------------------------------- helpers
    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A SQLite transaction for callers that write several tables together."""
        with self.guard(), self.conn:
            yield self.conn

    def integrity_ok(self) -> bool:
        """SQLite's integrity check finds nothing (its WITHOUT ROWID false positive aside)."""
        with self.guard():
            return not self.meta.integrity_problems()

    def integrity(self) -> IntegrityReport:
        """Check both files and that every detection with crops has its crop and vice versa."""
        report = IntegrityReport()
        try:
            report.database = self.meta.integrity_problems()
            report.database += self.meta.unreadable_runs()
        except sqlite3.Error as exc:
            report.database = [str(exc)]
            return report
        videos = self.videos()
        report.counts = {"videos": len(videos), "detections": self.meta.count_detections()}
        if not self.crop_store.exists:
            expected = self.meta.count_detections_with_crops()
            report.crops = (f"missing while {expected} detections have crops" if expected
                            else None)
        else:
            report.crops = self.crop_store.check()
        if report.crops is None and self.crop_store.exists:
            names = {v.id: v.name for v in videos}
            all_keys = self.crop_store.keys()
            report.counts["crops"] = len(all_keys)
            foreign = self.crop_store.foreign_keys()
            if foreign:
                report.crops = (f"{foreign} keys that are not crop keys (another program's "
                                f"data, or damage)")
            by_video: dict[int, set] = {}
            for v, f, d in all_keys:
                by_video.setdefault(v, set()).add((f, d))
            for v in videos:
                crops = by_video.pop(v.id, set())
                dets = set(self.meta.detection_keys(v.id))
                if v.has_crops and dets - crops:
                    report.detections_without_crops[v.name] = len(dets - crops)
                orphans = crops - dets
                if self._replacing_quietly(v.id):  # crops past an unfinished run's marker go on resume
                    marker = self._frames_done(v.id)
                    orphans = {k for k in orphans if k[0] < marker}
                if orphans:
                    report.crops_without_detections[v.name] = len(orphans)
            for vid, crops in by_video.items():  # crops of a video the database does not know
                report.crops_without_detections[names.get(vid, f"video id {vid}")] = len(crops)
        for rid, vid, stage in self.conn.execute(
                "SELECT id, video_id, stage FROM runs WHERE status = 'running' ORDER BY id"):
            name = next((v.name for v in videos if v.id == vid), f"video id {vid}")
            report.running.append(f"{name}: {stage} (run {rid})")
        return report

    def _frames_done(self, video_id: int) -> int:
        row = self.conn.execute("SELECT frames_done FROM runs WHERE video_id = ? AND stage = "
                                "'detect' ORDER BY id DESC LIMIT 1", (video_id,)).fetchone()
        return int(row[0]) if row else 0

    def _replacing_quietly(self, video_id: int) -> bool:
        """:meth:`replacing` without reading the run's JSON (integrity reads damaged projects)."""
        row = self.conn.execute("SELECT status FROM runs WHERE video_id = ? AND stage = 'detect' "
                                "ORDER BY id DESC LIMIT 1", (video_id,)).fetchone()
        return row is not None and row[0] in ("running", "interrupted", "failed")


_REPLACE_KEY = "replace_pending:"
"""``meta`` key prefix: a video whose ``detect --force`` first batch is between its steps."""


def _untrusted(conn: sqlite3.Connection, db_path: Path) -> None:
    """Treat the schema as untrusted and refuse what ptrack never creates (triggers, views):
    a received database could run SQL of its own (a recursive CTE that never ends) on
    ptrack's queries."""
    conn.execute("PRAGMA trusted_schema=OFF")
    foreign = safety.foreign_schema(conn)
    if foreign:
        raise StoreError(f"project database {db_path} holds {', '.join(foreign[:3])}"
                         f"{' and more' if len(foreign) > 3 else ''}, which ptrack never creates; "
                         f"it is not opened (a database someone sent could run its own SQL that "
                         f"way). Remove them with the sqlite3 tool if you trust the project")


def _open_read_only(root: Path, db_path: Path) -> tuple[sqlite3.Connection, Path | None]:
    """A read-only project's database. Without a write-ahead log it is opened immutable; with
    a non-empty ``ptrack.db-wal`` (rows committed but not yet copied into ``ptrack.db``), the
    database and its log are copied to a private temporary folder and read there, so nothing
    committed is hidden. Returns the connection and that folder (None when not copied)."""
    import tempfile

    wal = db_path.with_name(db_path.name + "-wal")
    if wal.is_symlink() or not wal.exists() or wal.stat().st_size == 0:
        uri = f"file:{db_path.resolve()}?mode=ro&immutable=1"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        _untrusted(conn, db_path)
        return conn, None
    private = Path(tempfile.mkdtemp(prefix="ptrack-ro-"))
    try:
        shutil.copyfile(db_path, private / db_path.name)
        shutil.copyfile(wal, private / wal.name)
    except OSError as exc:
        shutil.rmtree(private, ignore_errors=True)
        raise StoreError(f"project {root} is read-only and its database has committed changes "
                         f"in {wal.name} that could not be copied to read them ({exc.strerror}); "
                         f"copy the project to a writable place") from None
    conn = sqlite3.connect(str(private / db_path.name), check_same_thread=False)
    try:
        _untrusted(conn, db_path)
        conn.execute("PRAGMA query_only=ON")
    except BaseException:
        conn.close()
        shutil.rmtree(private, ignore_errors=True)
        raise
    return conn, private


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def project_dir(value: str | os.PathLike | None) -> Path:
    """The project directory from an option value, ``PTRACK_PROJECT`` or the default."""
    return Path(value or os.environ.get("PTRACK_PROJECT") or DEFAULT_PROJECT)
