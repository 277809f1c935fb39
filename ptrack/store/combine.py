"""``ptrack combine``: copy every video of other projects into this one, ids remapped.

A source project (a shard a worker wrote, a project made on another machine, by a Slurm array
or by hand) gives each of its videos to the target with everything stored for it: the video,
its runs, detections, crops, embeddings, tracklets, persons, corrections and selections (and
its files under ``outputs/``). Ids that are the project's (video, run, correction and selection
ids) get new values; ids that belong to the video (frames, detections, tracklets, persons) stay,
so the persons are the same persons.

Per source: every check first (nothing is written when one fails), then the crops of each video
under its new id (LMDB), then all its rows in one SQLite transaction. A kill between the two
leaves crops under an id no video holds (``integrity`` reports them; the next combine that takes
the id clears them first); the project's rows are never half copied.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ptrack.errors import PtrackError
from ptrack.store import Store
from ptrack.store.crops_db import crop_key

_SPECIAL = ("videos", "runs", "constraints", "selections")
CROP_CHUNK = 2000  # crops copied per LMDB transaction
ROW_CHUNK = 20000  # rows read from the source at a time


@dataclass
class CombinedVideo:
    """One video copied in."""

    name: str  # its name in the target
    source_name: str
    video_id: int
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows copied
    crops: int = 0
    replaced: bool = False


@dataclass
class CombineResult:
    """What one source gave."""

    source: Path
    videos: list[CombinedVideo] = field(default_factory=list)
    seconds: float = 0.0


def _columns(conn, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]


def _video_tables(conn) -> list[str]:
    """Tables that hold rows of a video (a ``video_id`` column), in a stable order."""
    names = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    return [t for t in names if t != "videos" and "video_id" in _columns(conn, t)]


def _check(target: Store, source: Store, replace: bool) -> list[tuple[object, object]]:
    """(source video, target video it replaces or None) for every source video; raises before
    anything is written when one cannot be combined."""
    problems, plan = [], []
    known = {v.fingerprint: v for v in target.videos()}
    for v in source.videos():
        run = source.latest_run(v.id, "detect")
        if run is not None and run.status in ("running", "interrupted", "failed"):
            problems.append(f"{v.name}: its detect has not finished there (run `ptrack -p "
                            f"{source.root} detect {v.path}` to finish it)")
            continue
        old = known.get(v.fingerprint)
        if old is not None and not replace:
            problems.append(f"{v.name} is already in this project (as '{old.name}', id {old.id}); "
                            f"--replace replaces it")
            continue
        plan.append((v, old))
    if problems:
        raise PtrackError(f"nothing combined from {source.root}: " + "; ".join(problems),
                          exit_code=2 if any("already in" in p for p in problems) else 1)
    return plan


def combine(target: Store, source_root: str | Path, *, replace: bool = False,
            log: Callable[[str], None] = print) -> CombineResult:
    """Copy every video of the project at ``source_root`` into ``target`` (see the module
    docstring). A video already in the target (same content) is refused unless ``replace``;
    then the target's copy, with everything stored for it, gives way to the source's."""
    import time

    t0 = time.perf_counter()
    source_root = Path(source_root)
    if not (source_root / "ptrack.db").is_file():
        raise PtrackError(f"no ptrack project at {source_root}", exit_code=2)
    if source_root.resolve() == target.root.resolve():
        raise PtrackError(f"{source_root} is this project; name another one", exit_code=2)
    target.require_writable()
    result = CombineResult(source=source_root)
    with Store.open(source_root, create=False) as source:
        from ptrack.store.meta import SCHEMA_VERSION

        if source.meta.schema_version() != SCHEMA_VERSION:
            raise PtrackError(f"{source_root} has schema {source.meta.schema_version()} and is "
                              f"read-only; copy it somewhere writable so ptrack can upgrade it")
        plan = _check(target, source, replace)
        if not plan:
            log(f"{source_root}: no videos to combine")
            return result
        with target.guard():
            (next_id,) = target.conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM videos").fetchone()
        moves = []
        for k, (v, old) in enumerate(plan):
            new_id = int(next_id) + k
            item = CombinedVideo(name=v.name, source_name=v.name, video_id=new_id,
                                 replaced=old is not None)
            if target.crop_store.exists:  # crops a killed combine left under this id
                target.delete_crops(new_id, 0)
            if v.has_crops:
                item.crops = _copy_crops(source, target, v.id, new_id)
            moves.append((v, old, item))
        with target.guard():
            _copy_rows(target, source, moves)
        for v, old, item in moves:
            if old is not None and old.has_crops and target.crop_store.exists:
                target.delete_crops(old.id, 0)
            _copy_outputs(source.root / "outputs" / v.name, target.root / "outputs" / item.name)
            result.videos.append(item)
    result.seconds = time.perf_counter() - t0
    return result


def _copy_crops(source: Store, target: Store, old_id: int, new_id: int) -> int:
    keys = source.crop_store.keys(old_id)
    n = 0
    for start in range(0, len(keys), CROP_CHUNK):
        part = keys[start:start + CROP_CHUNK]
        values = source.crop_store.get(part)
        items = [(crop_key(new_id, f, d), value)
                 for (_, f, d), value in zip(part, values) if value is not None]
        target.put_crops(items)
        n += len(items)
    return n


def _copy_rows(target: Store, source: Store, moves: list) -> None:
    """Every row of the moved videos, in one transaction of the target."""
    src, dst = source.conn, target.conn
    tables = [t for t in _video_tables(src) if t not in _SPECIAL]
    dst_tables = set(_video_tables(dst))
    with dst:  # one transaction
        row = dst.execute("SELECT value FROM meta WHERE key = 'last_constraint_id'").fetchone()
        (largest,) = dst.execute("SELECT COALESCE(MAX(id), 0) FROM constraints").fetchone()
        next_constraint = max(int(row[0]) if row else 0, int(largest)) + 1
        for v, old, item in moves:
            if old is not None:  # the replaced copy goes first, so its name is free
                for t in dst_tables:
                    dst.execute(f'DELETE FROM "{t}" WHERE video_id = ?', (old.id,))
                dst.execute("DELETE FROM videos WHERE id = ?", (old.id,))
            taken = {r[0] for r in dst.execute("SELECT name FROM videos")}
            name, n = v.name, 2
            while name in taken:
                name, n = f"{v.name}~{n}", n + 1
            item.name = name
            vcols = [c for c in _columns(src, "videos") if c in _columns(dst, "videos")]
            values = dict(zip(vcols, src.execute(
                f"SELECT {', '.join(vcols)} FROM videos WHERE id = ?", (v.id,)).fetchone()))
            values.update(id=item.video_id, name=name)
            dst.execute(f"INSERT INTO videos ({', '.join(values)}) VALUES "
                        f"({', '.join('?' * len(values))})", tuple(values.values()))
            # runs: new ids, input_run follows
            rcols = [c for c in _columns(src, "runs") if c in _columns(dst, "runs") and c != "id"]
            run_map: dict[int, int] = {}
            for rid, *rest in src.execute(f"SELECT id, {', '.join(rcols)} FROM runs "
                                          f"WHERE video_id = ? ORDER BY id", (v.id,)).fetchall():
                rec = dict(zip(rcols, rest))
                rec["video_id"] = item.video_id
                if rec.get("input_run") is not None:
                    rec["input_run"] = run_map.get(rec["input_run"])
                cur = dst.execute(f"INSERT INTO runs ({', '.join(rec)}) VALUES "
                                  f"({', '.join('?' * len(rec))})", tuple(rec.values()))
                run_map[rid] = int(cur.lastrowid)
            item.rows["runs"] = len(run_map)
            # corrections: new ids, never one given before
            ccols = [c for c in _columns(src, "constraints") if c != "id"]
            crows = src.execute(f"SELECT {', '.join(ccols)} FROM constraints WHERE video_id = ? "
                                f"ORDER BY id", (v.id,)).fetchall()
            for r in crows:
                rec = dict(zip(ccols, r)) | {"id": next_constraint, "video_id": item.video_id}
                dst.execute(f"INSERT INTO constraints ({', '.join(rec)}) VALUES "
                            f"({', '.join('?' * len(rec))})", tuple(rec.values()))
                next_constraint += 1
            if crows:
                dst.execute("INSERT OR REPLACE INTO meta VALUES ('last_constraint_id', ?)",
                            (str(next_constraint - 1),))
            item.rows["constraints"] = len(crows)
            # selections: new ids; files written inside the source's outputs now live here
            scols = [c for c in _columns(src, "selections") if c != "id"]
            before = str(source.root / "outputs" / v.name)
            after = str(target.root / "outputs" / name)
            srows = src.execute(f"SELECT {', '.join(scols)} FROM selections WHERE video_id = ? "
                                f"ORDER BY id", (v.id,)).fetchall()
            for r in srows:
                rec = dict(zip(scols, r)) | {"video_id": item.video_id}
                path = str(rec.get("path") or "")
                if path.startswith(before + os.sep):
                    rec["path"] = after + path[len(before):]
                dst.execute(f"INSERT INTO selections ({', '.join(rec)}) VALUES "
                            f"({', '.join('?' * len(rec))})", tuple(rec.values()))
            item.rows["selections"] = len(srows)
            # everything else keyed by the video: rows as they are, the video id changed
            for t in tables:
                if t not in dst_tables:
                    continue
                cols = [c for c in _columns(src, t) if c in _columns(dst, t)]
                sel = ", ".join("?" if c == "video_id" else f'"{c}"' for c in cols)
                cur = src.execute(f'SELECT {sel} FROM "{t}" WHERE video_id = ?',
                                  (item.video_id, v.id))
                insert = (f'INSERT INTO "{t}" ({", ".join(chr(34) + c + chr(34) for c in cols)}) '
                          f'VALUES ({", ".join("?" * len(cols))})')
                n = 0
                while rows := cur.fetchmany(ROW_CHUNK):
                    dst.executemany(insert, rows)
                    n += len(rows)
                item.rows[t] = n


def _copy_outputs(src: Path, dst: Path) -> None:
    """The video's files for the user (tables, selections, renders); regular files only, never
    a link (a received project is data)."""
    if src.is_symlink() or not src.is_dir():
        return
    for root, dirs, files in os.walk(src):
        dirs[:] = [d for d in dirs if not (Path(root) / d).is_symlink()]
        rel = Path(root).relative_to(src)
        for name in files:
            p = Path(root) / name
            if p.is_symlink() or not p.is_file() or name.startswith("."):
                continue
            (dst / rel).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, dst / rel / name)
