"""Per-video lock files (``locks/detect-<id>.lock``, ``locks/pose-<id>.lock``): one ``detect``
(or ``rm``), and one ``pose``, of a video at a time. Opened with ``O_NOFOLLOW`` and never truncated: a planted symbolic link is refused, so a
received project cannot make ptrack write through one to a user's file."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path
from typing import Iterator

from ptrack.errors import PtrackError
from ptrack.store.safety import open_nofollow, refuse_symlink


def _lock_file(root: Path, video_id: int, kind: str) -> Path:
    lock_dir = root / "locks"
    refuse_symlink(lock_dir, "the lock folder")
    lock_dir.mkdir(exist_ok=True)
    return lock_dir / f"{kind}-{int(video_id)}.lock"


@contextlib.contextmanager
def video_lock(root: Path, video_id: int, kind: str = "detect") -> Iterator[None]:
    """Hold an exclusive lock on one video's ``kind`` work (``detect``, ``pose``); refuse when
    another process holds it."""
    path = _lock_file(root, video_id, kind)
    fd = open_nofollow(path, os.O_RDWR | os.O_CREAT, "the lock file")
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise PtrackError(f"another `ptrack {kind}` is already working on this video in "
                                  "this project; wait for it to finish") from None
            raise
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def video_unlocked(root: Path, video_id: int) -> bool:
    """True when no process holds the video's lock right now (nobody is detecting it)."""
    try:
        with video_lock(root, video_id):
            return True
    except (PtrackError, OSError):
        return False
