"""Opening a project someone sent you: what the store checks before it trusts a file.

A project is a folder people copy, zip and send. Opening one must never run code, write outside
it, hang, exhaust memory or die on a signal. The store's checks, each a small function:

- :func:`refuse_symlink`, :func:`open_nofollow`: a project holds no symbolic links (lock files,
  the crop store and its files, ``outputs/``); a planted one is refused, never followed.
- :func:`output_name`: a video's folder under ``outputs/``, derived from its stored name so that
  no name (``../x``, ``/abs``, ``..``) becomes a path outside ``outputs/``.
- :func:`foreign_schema`: triggers and views run SQL on ptrack's own queries (a recursive CTE
  hangs them); ptrack creates none, so a database holding one is refused.
- :func:`lmdb_truncation`: a ``data.mdb`` shorter than LMDB's own header says would kill the
  process with SIGBUS when mapped; checked before mapping.
- :func:`process_tag`, :func:`process_gone`: which process runs a stage, so a run whose process
  died (kill -9) is closed instead of staying ``running`` for ever.
- :func:`regular_file`: videos and configs are opened only when they are regular files (a FIFO
  blocks, ``/dev/zero`` never ends).
"""

from __future__ import annotations

import errno
import os
import re
import socket
import stat
import struct
from pathlib import Path

from ptrack.errors import PtrackError, StoreError

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f/\\]")
MAX_NAME = 100


def refuse_symlink(path: Path, what: str) -> None:
    """Raise when ``path`` is a symbolic link (a project never holds one)."""
    if os.path.islink(path):
        raise StoreError(f"{what} {path} is a symbolic link; a ptrack project holds none, so it "
                         f"is not followed (a project someone sent you could point it at your "
                         f"files): remove the link")


def open_nofollow(path: Path, flags: int, what: str, mode: int = 0o644) -> int:
    """``os.open`` that refuses a symbolic link at ``path`` (``O_NOFOLLOW``)."""
    try:
        return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP or os.path.islink(path):
            refuse_symlink(path, what)
        raise


def regular_file(path: str | Path, what: str) -> Path:
    """``path`` when it is a regular file (after following a link the user made); else a
    one-line error. FIFOs, devices and sockets are refused: reading one blocks or never ends."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise PtrackError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise PtrackError(f"cannot read {what} {path}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise PtrackError(f"{what} {path} is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise PtrackError(f"{what} {path} is not a regular file (a pipe, device or socket); "
                          f"give a file")
    return path


def output_name(name: str, video_id: int) -> str:
    """The folder name under ``outputs/`` for a video: its name when that is a plain file name,
    else a slug of it plus ``-<id>`` (``../../x`` -> ``x-3``, ``..`` -> ``video-3``)."""
    text = str(name)
    if (text and not _UNSAFE.search(text) and not text.startswith(".")
            and len(text) <= MAX_NAME and text.strip() == text):
        return text
    slug = _UNSAFE.sub("_", text).strip(" ._")[:MAX_NAME] or "video"
    slug = re.sub(r"_+", "_", slug)
    return f"{slug}-{int(video_id)}"


def confined(path: Path, folder: Path, what: str) -> Path:
    """``path`` when it (resolved) lies under ``folder`` (resolved) and no part below
    ``folder`` is a symbolic link (``folder`` itself may be one: the user chose it); else a
    StoreError."""
    rel = path.relative_to(folder) if path.is_relative_to(folder) else None
    if rel is None:
        raise StoreError(f"{what} {path} is outside {folder}")
    cur = folder
    for part in rel.parts:
        cur = cur / part
        refuse_symlink(cur, what)
    if not path.resolve().is_relative_to(folder.resolve()):
        raise StoreError(f"{what} {path} is outside {folder}")
    return path


def foreign_schema(conn) -> list[str]:
    """Triggers and views in the database (ptrack creates none): ``["trigger 'x'", ...]``."""
    rows = conn.execute("SELECT type, name FROM sqlite_master WHERE type IN ('trigger', 'view') "
                        "ORDER BY type, name").fetchall()
    return [f"{kind} '{name}'" for kind, name in rows]


_LMDB_MAGIC = 0xBEEFC0DE


def lmdb_truncation(data: Path) -> str | None:
    """None when ``data.mdb`` is as long as LMDB's own meta pages say, else what is wrong.

    The meta pages (pages 0 and 1) hold the page size and the last page used; the newer of the
    two (by transaction id) is the one LMDB uses. Mapping a shorter file and reading a page past
    its end kills the process with SIGBUS, which no Python code can catch."""
    try:
        size = data.stat().st_size
        with open(data, "rb") as f:
            head = f.read(4096 + 160)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    metas = []
    if len(head) >= 160:
        psize = struct.unpack_from("<I", head, 40)[0]
        for base in (0, psize if 0 < psize <= 4096 else -1):
            if base < 0 or len(head) < base + 152:
                continue
            magic = struct.unpack_from("<I", head, base + 16)[0]
            if magic != _LMDB_MAGIC:
                continue
            page = struct.unpack_from("<I", head, base + 40)[0]
            last, txn = struct.unpack_from("<QQ", head, base + 136)
            metas.append((txn, last, page))
    if not metas:
        return f"is not an LMDB file or is truncated ({size} bytes)"
    _, last, page = max(metas)
    need = (last + 1) * page
    if page <= 0 or size < need:
        return f"is truncated: {size} bytes where LMDB's header says {need}"
    return None


def _start_time(pid: int) -> int:
    """The process's start time in clock ticks since boot (Linux), 0 where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return 0


def process_tag() -> dict:
    """This process: pid, host and start time (so a reused pid is not mistaken for it)."""
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "start": _start_time(pid)}


def process_gone(tag: dict) -> bool:
    """True when the process ``tag`` names certainly no longer runs (on this host)."""
    try:
        pid, host, start = int(tag["pid"]), str(tag["host"]), int(tag.get("start", 0))
    except (KeyError, TypeError, ValueError):
        return False
    if host != socket.gethostname() or pid <= 0:
        return False  # another machine sharing the folder: cannot tell
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        pass
    now = _start_time(pid)
    return bool(start and now and now != start)  # the pid was reused by another process
