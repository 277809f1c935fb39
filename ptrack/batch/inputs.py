"""Which videos a command was given: files, folders (videos inside, recursively with
``recursive``), glob patterns and list files (one path per line, ``#`` comments)."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

from ptrack.errors import PtrackError

VIDEO_SUFFIXES = frozenset({
    ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
    ".wmv", ".flv", ".3gp", ".ogv", ".mxf", ".dv", ".vob"})
"""Suffixes that make a file inside a folder count as a video (a file named on the command line
is taken whatever its suffix: decoding it tells)."""

_GLOB_CHARS = frozenset("*?[")


@dataclass
class Inputs:
    """The videos found, in order, each once; and what was passed over."""

    paths: list[Path] = field(default_factory=list)
    skipped: int = 0  # files in folders that are not videos (by suffix), never registered
    folders: int = 0

    def note(self) -> str | None:
        """One line for the user about the non-video files passed over, or None."""
        if not self.skipped:
            return None
        what = "file that is not a video" if self.skipped == 1 else "files that are not videos"
        return f"skipped {self.skipped} {what} (by file name) in the folders given"


def _is_video_name(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES and not path.name.startswith(".")


def _folder(folder: Path, recursive: bool, found: Inputs) -> list[Path]:
    found.folders += 1
    out: list[Path] = []
    if recursive:
        for root, dirs, files in os.walk(folder):  # symlinked folders are not followed
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                p = Path(root) / name
                if _is_video_name(p) and p.is_file():
                    out.append(p)
                elif not name.startswith("."):
                    found.skipped += 1
    else:
        for p in sorted(folder.iterdir()):
            if p.is_dir() or p.name.startswith("."):
                continue
            if _is_video_name(p) and p.is_file():
                out.append(p)
            else:
                found.skipped += 1
    return out


def read_list(path: Path) -> list[str]:
    """The entries of a list file: one path per line; blank lines and ``#`` comments skipped;
    relative paths are relative to the list file's folder."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise PtrackError(f"--from-file {path}: no such file", exit_code=2) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PtrackError(f"--from-file {path}: cannot be read ({exc})", exit_code=2) from None
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        p = Path(os.path.expanduser(line))
        out.append(str(p if p.is_absolute() else path.parent / p))
    return out


def find_videos(args: list[str | Path], *, recursive: bool = False,
                from_file: Path | None = None) -> Inputs:
    """Expand the command's arguments (and a list file's entries) into video paths.

    A file is taken as it is (a missing or undecodable one fails later, alone, with its own
    error); a folder gives the videos inside it; a pattern with ``*``, ``?`` or ``[`` that is
    not an existing file is a glob (``**`` with ``recursive``). A path found twice is kept once.
    """
    found = Inputs()
    entries = [str(a) for a in args]
    if from_file is not None:
        entries += read_list(Path(from_file))
    if not entries:
        raise PtrackError("no videos given: name files, folders or patterns, or --from-file LIST",
                          exit_code=2)
    seen: set[str] = set()

    def add(p: Path) -> None:
        key = os.path.abspath(p)
        if key not in seen:
            seen.add(key)
            found.paths.append(p)

    for entry in entries:
        p = Path(entry)
        if p.is_dir():
            for v in _folder(p, recursive, found):
                add(v)
        elif not p.exists() and _GLOB_CHARS & set(entry):
            matches = sorted(glob.glob(entry, recursive=recursive))
            if not matches:
                raise PtrackError(f"no file matches {entry}", exit_code=2)
            for m in matches:
                mp = Path(m)
                if mp.is_dir():
                    for v in _folder(mp, recursive, found):
                        add(v)
                elif _is_video_name(mp):
                    add(mp)
                else:
                    found.skipped += 1
        else:
            add(p)
    if not found.paths:
        raise PtrackError("no videos found in " + ", ".join(entries[:3])
                          + (" ..." if len(entries) > 3 else ""), exit_code=2)
    return found
