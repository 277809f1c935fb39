"""The crop store: one JPEG per detection in LMDB (``crops.lmdb``).

Keys are ``VVVVVVVV/FFFFFFFF/DDDD`` (video id, frame, detection index, zero-padded so a video's
keys sort by frame). Every write (put, delete) runs through :meth:`CropStore._write`, which
grows the memory map and retries when it is full (``MDB_MAP_FULL``) and adopts the size another
process grew it to (``MDB_MAP_RESIZED``). Only a real ``ENOSPC`` is reported as a full disk.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Callable, Iterable, Sequence, TypeVar

import lmdb

from ptrack.errors import StoreError
from ptrack.store.safety import lmdb_truncation, refuse_symlink

T = TypeVar("T")
DEFAULT_MAP_SIZE = 64 << 20
MAX_STEP = 1 << 30  # the map doubles up to this, then grows by this much at a time


def crop_key(video_id: int, frame: int, det: int) -> bytes:
    """LMDB key of one crop; keys of a video sort by frame, then detection index."""
    return b"%08d/%08d/%04d" % (video_id, frame, det)


def parse_crop_key(key: bytes) -> tuple[int, int, int]:
    """Inverse of :func:`crop_key` (ValueError for a key it did not make)."""
    v, f, d = key.split(b"/")
    return int(v), int(f), int(d)


def _parsed(key: bytes) -> tuple[int, int, int] | None:
    """:func:`parse_crop_key`, or None for a foreign key (another program's, or damage)."""
    if len(key) != 22:
        return None
    try:
        return parse_crop_key(key)
    except ValueError:
        return None


STAGED = b"~staged/"
"""Prefix of crops written ahead of the SQLite commit that makes them current (the first batch
of a ``detect --force``): ``~staged/`` + the crop key. They sort after every crop key."""


def _prefix(video_id: int) -> bytes:
    return b"%08d/" % video_id


def disk_full(path: Path, exc: BaseException) -> bool:
    """True only when the failure really is a full disk (ENOSPC)."""
    if getattr(exc, "errno", None) == errno.ENOSPC or "No space left" in str(exc):
        return True
    try:
        return shutil.disk_usage(path if path.exists() else path.parent).free < (1 << 20)
    except OSError:
        return False


READ_CHUNK = 1024
"""Crops read per mapping of the store in :meth:`CropStore.get` (see there)."""


class CropStore:
    """LMDB crops of a project. Opened lazily; ``read_only`` opens without locks or writes."""

    def __init__(self, path: Path, *, map_size: int = DEFAULT_MAP_SIZE, read_only: bool = False,
                 recover_hint: str = "run `ptrack detect --force VIDEO` to rebuild its crops") -> None:
        self.path = Path(path)
        self.map_size = int(map_size)
        self.read_only = read_only
        self.recover_hint = recover_hint
        self._env: lmdb.Environment | None = None

    # ------------------------------------------------------------------ opening
    @property
    def exists(self) -> bool:
        """The store's data file is on disk."""
        return (self.path / "data.mdb").exists()

    def env(self) -> lmdb.Environment:
        """The LMDB environment, opened (and created when writable) on first use.

        The folder and its files are checked first: no symbolic links (LMDB would write its lock
        data through one), and a ``data.mdb`` as long as LMDB's own header says (a shorter one
        kills the process with SIGBUS when a page past its end is read)."""
        if self._env is None:
            refuse_symlink(self.path, "the crop store")
            for name in ("data.mdb", "lock.mdb"):
                refuse_symlink(self.path / name, "the crop store's file")
                if (self.path / name).exists() and not (self.path / name).is_file():
                    raise self.damaged(ValueError(f"{name} is not a regular file"))
            if self.exists:
                problem = lmdb_truncation(self.path / "data.mdb")
                if problem:
                    raise self.damaged(ValueError(f"data.mdb {problem}"))
            try:
                if self.read_only:
                    self._env = lmdb.open(str(self.path), subdir=True, readonly=True, lock=False,
                                          max_readers=256, readahead=False)
                else:
                    self._env = lmdb.open(str(self.path), map_size=self.map_size, subdir=True,
                                          max_readers=256, readahead=False, meminit=False)
            except lmdb.Error as exc:
                raise self.damaged(exc) from None
            self.map_size = max(self.map_size, self._env.info()["map_size"])
        return self._env

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None

    def damaged(self, exc: BaseException) -> StoreError:
        """The one-line error for a crop store LMDB cannot read."""
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return StoreError(f"the crop store {self.path} is damaged ({text}); move it away and "
                          f"{self.recover_hint}")

    def write_error(self, exc: BaseException) -> StoreError:
        if disk_full(self.path, exc):
            return StoreError(f"writing the crop store {self.path} failed (no space left on device); "
                              f"everything committed before is intact: free space and run the same "
                              f"command again to resume")
        if isinstance(exc, (lmdb.CorruptedError, lmdb.InvalidError, lmdb.PageNotFoundError,
                            lmdb.BadChecksumError, lmdb.PanicError)):
            return self.damaged(exc)
        if isinstance(exc, lmdb.ReadonlyError) or getattr(exc, "errno", None) in (errno.EROFS, errno.EACCES):
            return StoreError(f"the crop store {self.path} is read-only; copy the project to a "
                              f"writable place to change it")
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return StoreError(f"writing the crop store {self.path} failed ({text}); everything "
                          f"committed before is intact: run the same command again to resume")

    # ------------------------------------------------------------------ writing
    def grow(self) -> None:
        """Make the map bigger (no transaction of this process may be open)."""
        env = self.env()
        current = max(env.info()["map_size"], self.map_size)
        self.map_size = current + min(current, MAX_STEP)
        env.set_mapsize(self.map_size)

    def _adopt(self) -> None:
        """Take over the map size another process grew the file to."""
        env = self.env()
        env.set_mapsize(0)
        self.map_size = env.info()["map_size"]

    def _write(self, body: Callable[[lmdb.Transaction], T]) -> T:
        """Run ``body`` in one write transaction, growing the map as often as it needs."""
        if self.read_only:
            raise StoreError(f"the crop store {self.path} is read-only; copy the project to a "
                             f"writable place to change it")
        while True:
            env = self.env()
            try:
                with env.begin(write=True) as txn:
                    return body(txn)
            except lmdb.MapFullError:
                try:
                    self.grow()
                except lmdb.Error as exc:
                    raise self.write_error(exc) from None
            except lmdb.MapResizedError:
                try:
                    self._adopt()
                except lmdb.Error as exc:
                    raise self.write_error(exc) from None
            except lmdb.Error as exc:
                raise self.write_error(exc) from None

    def _read(self, body: Callable[[lmdb.Transaction], T]) -> T:
        """Run ``body`` in one read transaction (adopting a map another process grew)."""
        for _ in range(3):
            env = self.env()
            try:
                with env.begin() as txn:
                    return body(txn)
            except lmdb.MapResizedError:
                self._adopt()
            except lmdb.Error as exc:
                raise self.damaged(exc) from None
        raise StoreError(f"the crop store {self.path} keeps being resized by another process; "
                         f"try again when it is done")

    def put(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Write (key, jpeg) pairs in one transaction."""
        if not items:
            return

        def body(txn: lmdb.Transaction) -> None:
            for key, value in items:
                txn.put(key, value)

        self._write(body)

    def delete(self, video_id: int, from_frame: int = 0) -> int:
        """Delete the video's crops at frames >= ``from_frame``; returns how many."""
        if not self.exists:
            return 0
        start = crop_key(video_id, from_frame, 0)
        prefix = _prefix(video_id)

        def body(txn: lmdb.Transaction) -> int:
            n = 0
            cur = txn.cursor()
            if cur.set_range(start):
                while cur.key().startswith(prefix):
                    cur.delete()  # moves to the next record
                    n += 1
                    if not cur.key():
                        break
            return n

        return self._write(body)

    # ------------------------------------------------------------------ reading
    def get(self, keys: Iterable[tuple[int, int, int]]) -> list[bytes | None]:
        """JPEG bytes for many (video, frame, det) keys, a read transaction per
        ``READ_CHUNK`` keys.

        Between chunks the map is closed: each page fault maps the 64 KB around it that the
        page cache holds (the kernel's fault-around), so 17,000 crops sampled across a
        1.7 GB store had put 0.8 GB into the process's resident memory
        (``bench/person_stages.py``); the next read reopens it (milliseconds)."""
        keys = list(keys)
        if not self.exists:
            return [None] * len(keys)
        out: list[bytes | None] = []
        for start in range(0, len(keys), READ_CHUNK):
            part = keys[start:start + READ_CHUNK]
            out += self._read(lambda txn: [txn.get(crop_key(*k)) for k in part])
            if start + READ_CHUNK < len(keys):
                self.close()
        return out

    def keys(self, video_id: int | None = None) -> list[tuple[int, int, int]]:
        """(video, frame, det) of every crop (of one video), in key order."""
        if not self.exists:
            return []
        prefix = b"" if video_id is None else _prefix(video_id)

        def body(txn: lmdb.Transaction) -> list[tuple[int, int, int]]:
            out = []
            cur = txn.cursor()
            if cur.set_range(prefix):
                for key in cur.iternext(keys=True, values=False):
                    if not key.startswith(prefix):
                        break
                    parsed = _parsed(key)
                    if parsed is not None:
                        out.append(parsed)
            return out

        return self._read(body)

    def foreign_keys(self) -> int:
        """How many keys are neither crop keys nor staged crops (damage, or another program's)."""
        if not self.exists:
            return 0

        def body(txn: lmdb.Transaction) -> int:
            return sum(1 for key in txn.cursor().iternext(keys=True, values=False)
                       if _parsed(key) is None and not key.startswith(STAGED))

        return self._read(body)

    # ------------------------------------------------------------- staged crops
    def put_staged(self, video_id: int, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Write the video's (key, jpeg) pairs under :data:`STAGED` (no crop key is touched),
        with a sentinel that says a swap is pending, in one transaction."""
        sentinel = STAGED + _prefix(video_id) + b"~"

        def body(txn: lmdb.Transaction) -> None:
            for key, value in items:
                txn.put(STAGED + key, value)
            txn.put(sentinel, b"")

        self._write(body)

    def promote_staged(self, video_id: int, from_frame: int) -> int:
        """In one transaction: delete the video's crops at frames >= ``from_frame``, then move
        its staged crops to their real keys. Returns how many moved. Only a pending swap (its
        sentinel present) is done, so a second call (after a crash between this and forgetting
        the swap) changes nothing."""
        start = crop_key(video_id, from_frame, 0)
        prefix, staged = _prefix(video_id), STAGED + _prefix(video_id)
        sentinel = staged + b"~"

        def body(txn: lmdb.Transaction) -> int:
            if txn.get(sentinel) is None:
                return 0
            moved = []
            cur = txn.cursor()
            if cur.set_range(staged):
                while cur.key().startswith(staged):
                    if cur.key() != sentinel:
                        moved.append((cur.key()[len(STAGED):], cur.value()))
                    cur.delete()
                    if not cur.key():
                        break
            cur = txn.cursor()
            if cur.set_range(start):
                while cur.key().startswith(prefix):
                    cur.delete()
                    if not cur.key():
                        break
            for key, value in moved:
                txn.put(key, value)
            return len(moved)

        return self._write(body)

    def drop_staged(self, video_id: int) -> int:
        """Delete the video's staged crops (a first batch whose SQLite commit never came)."""
        if not self.exists:
            return 0
        staged = STAGED + _prefix(video_id)

        def body(txn: lmdb.Transaction) -> int:
            n, cur = 0, txn.cursor()
            if cur.set_range(staged):
                while cur.key().startswith(staged):
                    cur.delete()
                    n += 1
                    if not cur.key():
                        break
            return n

        return self._write(body)

    def stats(self, video_id: int) -> tuple[int, int]:
        """(number of crops, total JPEG bytes) of a video."""
        if not self.exists:
            return 0, 0
        prefix = _prefix(video_id)

        def body(txn: lmdb.Transaction) -> tuple[int, int]:
            n = total = 0
            cur = txn.cursor()
            if cur.set_range(prefix):
                for key, value in cur:
                    if not key.startswith(prefix):
                        break
                    n += 1
                    total += len(value)
            return n, total

        return self._read(body)

    def check(self) -> str | None:
        """None when LMDB can open and walk the store, else what is wrong."""
        if not self.exists:
            return "missing"
        try:
            def walk(txn: lmdb.Transaction) -> int:
                return sum(1 for _ in txn.cursor().iternext(keys=True, values=True))

            self._read(walk)
        except StoreError as exc:
            return str(exc)
        return None

    def move_aside(self) -> Path | None:
        """Rename a damaged store out of the way (``crops.lmdb.damaged-N``); returns the new path."""
        self.close()
        if not self.path.exists():
            return None
        n = 1
        while (target := self.path.with_name(f"{self.path.name}.damaged-{n}")).exists():
            n += 1
        os.replace(self.path, target)
        return target
