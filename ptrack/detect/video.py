"""Video files: checking, probing, fingerprinting and a frame reader thread."""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ptrack.errors import PtrackError
from ptrack.store.safety import regular_file

_FINGERPRINT_CHUNKS = 16
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class VideoInfo:
    """What ptrack records about a video file."""

    path: Path
    name: str
    size: int
    fingerprint: str
    fps: float
    width: int
    height: int
    frame_count: int


def fingerprint(path: Path) -> str:
    """A content fingerprint: BLAKE2 of the size and 16 evenly spaced 64 KiB chunks.

    Cheap on hour-long videos and different for any re-encoded, trimmed or replaced file.
    """
    size = path.stat().st_size
    h = hashlib.blake2b(digest_size=16)
    h.update(str(size).encode())
    with path.open("rb") as f:
        if size <= _FINGERPRINT_CHUNKS * _CHUNK:
            h.update(f.read())
        else:
            step = (size - _CHUNK) // (_FINGERPRINT_CHUNKS - 1)
            for i in range(_FINGERPRINT_CHUNKS):
                f.seek(i * step)
                h.update(f.read(_CHUNK))
    return h.hexdigest()


def check_path(path: Path) -> None:
    """Raise a one-line error when ``path`` cannot be a video."""
    if not path.exists():
        raise PtrackError(f"video not found: {path}", exit_code=2)
    if path.is_dir():
        raise PtrackError(f"{path} is a directory, not a video file", exit_code=2)
    regular_file(path, "video")  # a FIFO blocks, a device never ends
    if path.stat().st_size == 0:
        raise PtrackError(f"{path} is empty (0 bytes)", exit_code=2)
    if not os.access(path, os.R_OK):
        raise PtrackError(f"{path} is not readable", exit_code=2)


# leading bytes of still-image files (FFmpeg opens them as one-frame "videos")
_IMAGE_MAGIC = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
                (b"GIF8", "a GIF image"), (b"BM", "a BMP image"), (b"II*\x00", "a TIFF image"),
                (b"MM\x00*", "a TIFF image"), (b"\x00\x00\x01\x00", "an icon"))
# OpenCV's FourCC for FFmpeg's text "decoders": a text file read as a terminal recording
_TEXT_CODECS = {"ansi", "tty"}
SNIFF_BYTES = 4096


def not_a_video(path: Path) -> str | None:
    """What ``path`` is when its first bytes show it is not a video (text, an image), else None.

    FFmpeg opens a long text file (a MOT ``gt.txt``) as a "tty" video and a still image as a
    one-frame one; neither is a video to detect people in.
    """
    with path.open("rb") as f:
        head = f.read(SNIFF_BYTES)
    if head[8:12] == b"WEBP" and head[:4] == b"RIFF":
        return "a WebP image"
    for magic, what in _IMAGE_MAGIC:
        if head.startswith(magic) and not (magic == b"BM" and _looks_like_text(head)):
            return what
    if _looks_like_text(head):
        return "a text file"
    return None


def refuse_non_videos(paths) -> None:
    """A one-line error (exit 2) for the first path that is missing, a directory, empty,
    unreadable, text, an image or has no decodable video stream (:func:`probe`: a stat, the
    first bytes and the first frame), so a command checks every input before it creates or
    touches a project."""
    for path in paths:
        probe(path)


def _looks_like_text(head: bytes) -> bool:
    """No NUL byte and (almost) only printable characters: text, not a container's header."""
    if not head or b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a multi-byte character cut at the end is still text
        if exc.start < len(head) - 4:
            return False
        text = head[:exc.start].decode("utf-8")
    printable = sum(ch.isprintable() or ch in "\t\r\n\f" for ch in text)
    return printable >= 0.98 * len(text)


def _open(path: Path):
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise PtrackError(f"{path} is not a video that can be decoded", exit_code=2)
    return cap


def first_frames(path: str | Path, n: int | None = None) -> list[np.ndarray]:
    """The first ``n`` (all when None) decoded BGR frames of a video, in memory (for tests and
    benchmarks; ``detect`` streams through :class:`FrameReader`). Fewer when the video is shorter
    or cannot be decoded."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    out: list[np.ndarray] = []
    try:
        while n is None or len(out) < n:
            ok, image = cap.read()
            if not ok:
                break
            out.append(image)
    finally:
        cap.release()
    return out


def probe(path: str | Path) -> VideoInfo:
    """Open a video, read its metadata and check that its first frame decodes."""
    import cv2

    path = Path(path)
    check_path(path)
    what = not_a_video(path)
    if what is not None:
        raise PtrackError(f"{path} is {what}, not a video", exit_code=2)
    cap = _open(path)
    try:
        codec = (int(cap.get(cv2.CAP_PROP_FOURCC) or 0) & 0xFFFFFFFF).to_bytes(4, "little")
        if codec.decode("latin-1").strip("\x00 ").lower() in _TEXT_CODECS:
            raise PtrackError(f"{path} is a text file, not a video (no video stream)", exit_code=2)
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, frame = cap.read()
    finally:
        cap.release()
    if not ok or frame is None or width <= 0 or height <= 0:
        raise PtrackError(f"{path} is not a video that can be decoded (no frame could be read)",
                          exit_code=2)
    if not (0.5 <= fps <= 1000):
        fps = 30.0  # unknown or absurd rate: durations will be off, but boxes are still right
    return VideoInfo(path=path.resolve(), name=path.stem, size=path.stat().st_size,
                     fingerprint=fingerprint(path), fps=fps, width=width, height=height,
                     frame_count=max(count, 1))


@dataclass
class ReadResult:
    """Filled in by :class:`FrameReader` when it stops."""

    frames_read: int = 0  # index one past the last frame decoded
    stopped_early: bool = False  # decoding failed before the expected end
    error: BaseException | None = None


class FrameReader:
    """Decode frames in a background thread: yields ``(frame_index, bgr_image)``.

    Only frames at or after ``start`` whose index is a multiple of ``stride`` and below ``end``
    are decoded fully; the others are grabbed and skipped, so frame indices stay exact.
    """

    def __init__(self, path: Path, *, start: int, end: int, stride: int = 1,
                 expected: int | None = None, queue_size: int = 32) -> None:
        self.path, self.start, self.end, self.stride = path, start, end, max(1, stride)
        self.expected = expected
        self.result = ReadResult()
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ptrack-reader", daemon=True)

    def __enter__(self) -> "FrameReader":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop decoding and wait for the thread."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=0.05)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            cap = _open(self.path)
        except BaseException as exc:  # reported to the consumer
            self.result.error = exc
            self._put(None)
            return
        index = 0
        try:
            while index < self.end and not self._stop.is_set():
                wanted = index >= self.start and index % self.stride == 0
                if wanted:
                    ok, image = cap.read()
                else:
                    ok, image = cap.grab(), None
                if not ok:
                    break
                if wanted and not self._put((index, image)):
                    break
                index += 1
        except BaseException as exc:
            self.result.error = exc
        finally:
            cap.release()
            self.result.frames_read = index
            if self.expected and index < min(self.end, self.expected) - 1 and not self._stop.is_set():
                self.result.stopped_early = True
            self._put(None)

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        while True:
            item = self._queue.get()
            if item is None:
                if self.result.error is not None and not isinstance(self.result.error, PtrackError):
                    raise PtrackError(f"decoding {self.path} failed: {self.result.error}")
                if self.result.error is not None:
                    raise self.result.error
                return
            yield item
