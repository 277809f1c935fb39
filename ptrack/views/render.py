"""The annotated video: each person's box in its own colour labelled ``P<id> #<rank>``, and a
frame counter, encoded as H.264 through ``ffmpeg`` (libx264) when it is on PATH, otherwise
with OpenCV's ``mp4v`` writer.

The output is written under a temporary name beside the final path and renamed when the
last frame is done, so an interrupted render never leaves a half file at the final path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ptrack.boxes import Boxes

from ptrack.errors import PtrackError

# Distinct, bright BGR colours; person i (in rank order) gets PALETTE[i % len].
PALETTE = [(48, 48, 255), (255, 160, 0), (0, 200, 0), (0, 215, 255), (255, 0, 200),
           (255, 255, 0), (0, 128, 255), (180, 105, 255), (128, 255, 128), (200, 130, 60),
           (60, 60, 180), (160, 160, 160)]


@dataclass(frozen=True)
class RenderResult:
    """What a render wrote."""

    path: Path
    frames: int
    encoder: str  # "libx264 (ffmpeg)" or "mp4v (OpenCV)"
    fallback_reason: str | None


def ffmpeg_h264() -> str | None:
    """Path of an ``ffmpeg`` that can encode libx264, or None."""
    exe = shutil.which("ffmpeg")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return exe if " libx264 " in out else None


def frame_boxes(persons: Sequence[dict], boxes: Boxes, which: str = "smoothed"
                ) -> dict[int, list[tuple]]:
    """Frame -> [(xyxy, colour, label, interpolated)] for the given persons (in rank order).

    ``which`` is ``"smoothed"`` (the boxes ``select`` and ``export`` write, where the project
    holds them) or ``"raw"`` (the detector's)."""
    colour = {int(p["id"]): PALETTE[i % len(PALETTE)] for i, p in enumerate(persons)}
    label = {int(p["id"]): f"P{p['id']}" + ("" if p.get("rank") is None else f" #{p['rank']}")
             for p in persons}
    xyxy = boxes["smoothed"] if which == "smoothed" and "smoothed" in boxes else boxes["xyxy"]
    out: dict[int, list[tuple]] = {}
    for i in range(len(boxes["frame"])):
        pid = int(boxes["person"][i])
        if pid not in colour:
            continue
        out.setdefault(int(boxes["frame"][i]), []).append(
            (xyxy[i], colour[pid], label[pid], bool(boxes["source"][i])))
    return out


def frame_skeletons(persons: Sequence[dict], poses: dict) -> dict[int, list[tuple]]:
    """Frame -> [(keypoints (17, 3), colour)] for the persons with keypoints (``poses``:
    person id -> :class:`ptrack.pose.stored.PersonPose`); frames without a pose are left out."""
    colour = {int(p["id"]): PALETTE[i % len(PALETTE)] for i, p in enumerate(persons)}
    out: dict[int, list[tuple]] = {}
    for pid, pose in poses.items():
        if pose is None or int(pid) not in colour:
            continue
        for f, k in zip(pose.frame.tolist(), pose.kpts):
            if not np.isnan(k).all():
                out.setdefault(int(f), []).append((k, colour[int(pid)]))
    return out


def draw_skeleton(frame: np.ndarray, kpts: np.ndarray, colour: tuple, kpt_conf: float,
                  thick: int) -> None:
    """The limbs and joints whose keypoints reach ``kpt_conf``, in the person's colour."""
    import cv2

    from ptrack.pose.keypoints import SKELETON

    ok = np.nan_to_num(kpts[:, 2], nan=0.0) >= kpt_conf
    pts = [(int(round(float(x))), int(round(float(y)))) for x, y in np.nan_to_num(kpts[:, :2])]
    for a, b in SKELETON:
        if ok[a] and ok[b]:
            cv2.line(frame, pts[a], pts[b], colour, thick, cv2.LINE_AA)
    for i in np.flatnonzero(ok):
        cv2.circle(frame, pts[i], thick + 1, (255, 255, 255), -1, cv2.LINE_AA)
        cv2.circle(frame, pts[i], thick + 1, colour, 1, cv2.LINE_AA)


def draw_frame(frame: np.ndarray, index: int, total: int, fps: float,
               items: Sequence[tuple], skeletons: Sequence[tuple] = (),
               kpt_conf: float = 0.5) -> np.ndarray:
    """Draw boxes, labels, skeletons and the frame counter on ``frame`` (in place) and
    return it."""
    import cv2

    h, w = frame.shape[:2]
    scale = max(0.5, min(h, w) / 720)
    thick = max(1, round(2 * scale))
    font = cv2.FONT_HERSHEY_SIMPLEX
    for kpts, colour in skeletons:
        draw_skeleton(frame, kpts, colour, kpt_conf, thick)
    for xyxy, colour, label, interpolated in items:
        x1, y1, x2, y2 = (int(round(float(v))) for v in xyxy)
        t = max(1, thick - 1) if interpolated else thick
        if interpolated:  # dashed outline: the box was not seen, only inferred
            _dashed_rect(frame, (x1, y1), (x2, y2), colour, t, max(4, round(10 * scale)))
        else:
            cv2.rectangle(frame, (x1, y1), (x2, y2), colour, t, cv2.LINE_8)
        fs = 0.55 * scale * 1.4
        (tw, th), base = cv2.getTextSize(label, font, fs, thick)
        ty = y1 - 4 if y1 - th - base - 4 >= 0 else y1 + th + base + 4
        cv2.rectangle(frame, (x1, ty - th - base), (x1 + tw + 6, ty + base - 2), colour, -1)
        lum = 0.114 * colour[0] + 0.587 * colour[1] + 0.299 * colour[2]
        cv2.putText(frame, label, (x1 + 3, ty - 2), font, fs, (0, 0, 0) if lum > 140 else
                    (255, 255, 255), thick, cv2.LINE_AA)
    text = f"frame {index}/{max(total - 1, 0)}  {index / fps:.2f} s" if fps else f"frame {index}"
    fs = 0.6 * scale * 1.3
    (tw, th), base = cv2.getTextSize(text, font, fs, thick)
    cv2.rectangle(frame, (0, 0), (tw + 12, th + base + 12), (0, 0, 0), -1)
    cv2.putText(frame, text, (6, th + 6), font, fs, (255, 255, 255), thick, cv2.LINE_AA)
    return frame


def _dashed_rect(img, p1, p2, colour, thick, dash):
    import cv2

    x1, y1 = p1
    x2, y2 = p2
    for a, b in (((x1, y1), (x2, y1)), ((x2, y1), (x2, y2)), ((x2, y2), (x1, y2)),
                 ((x1, y2), (x1, y1))):
        length = int(np.hypot(b[0] - a[0], b[1] - a[1]))
        for s in range(0, max(length, 1), 2 * dash):
            e = min(s + dash, length)
            pa = (int(a[0] + (b[0] - a[0]) * s / max(length, 1)), int(a[1] + (b[1] - a[1]) * s / max(length, 1)))
            pb = (int(a[0] + (b[0] - a[0]) * e / max(length, 1)), int(a[1] + (b[1] - a[1]) * e / max(length, 1)))
            cv2.line(img, pa, pb, colour, thick, cv2.LINE_AA)


class _FfmpegWriter:
    def __init__(self, exe: str, path: Path, width: int, height: int, fps: float) -> None:
        cmd = [exe, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo",
               "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-r", f"{fps:.6g}", "-i", "-",
               "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-preset", "veryfast",
               "-crf", "23", "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-f", "mp4",
               str(path)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)

    def write(self, frame: np.ndarray) -> None:
        try:
            self.proc.stdin.write(np.ascontiguousarray(frame).tobytes())  # type: ignore[union-attr]
        except BrokenPipeError:
            raise PtrackError(f"ffmpeg stopped: {self._err()}") from None

    def _err(self) -> str:
        self.proc.wait()
        msg = self.proc.stderr.read().decode(errors="replace").strip()  # type: ignore[union-attr]
        return msg.splitlines()[-1] if msg else f"exit code {self.proc.returncode}"

    def close(self) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]
        if self.proc.wait() != 0:
            raise PtrackError(f"ffmpeg failed: {self._err()}")

    def abort(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class _CvWriter:
    def __init__(self, path: Path, width: int, height: int, fps: float) -> None:
        import cv2

        self.w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps or 25.0,
                                 (width, height))
        if not self.w.isOpened():
            raise PtrackError(f"OpenCV cannot write a video at {path}")

    def write(self, frame: np.ndarray) -> None:
        self.w.write(frame)

    def close(self) -> None:
        self.w.release()

    def abort(self) -> None:
        self.w.release()


def render_video(video: Any, persons: Sequence[dict], boxes: Boxes, out: Path, *,
                 encoder: str = "auto", progress: Callable[[int, int], None] | None = None,
                 which: str = "smoothed", poses: dict | None = None,
                 kpt_conf: float = 0.5) -> RenderResult:
    """Decode ``video.path``, draw the persons' boxes (``which``: smoothed or raw) and, for
    those in ``poses`` (person id -> stored keypoints), their skeletons; write ``out``.

    ``encoder``: ``auto`` (libx264 through ffmpeg when possible, else OpenCV mp4v), ``h264``
    (fail without ffmpeg/libx264) or ``mp4v``.
    """
    import cv2

    from ptrack.store.safety import regular_file

    src = Path(video.path)
    if not src.exists():
        raise PtrackError(f"video file {src} not found (moved? the project remembers this path)")
    regular_file(src, "video file")  # a FIFO or device named by a received project blocks
    cap = cv2.VideoCapture(str(src))
    if not cap.isOpened():
        raise PtrackError(f"{src} cannot be decoded")
    fps = float(video.fps) or float(cap.get(cv2.CAP_PROP_FPS)) or 25.0
    total = int(video.frame_count) or int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, frame = cap.read()
    if not ok:
        cap.release()
        raise PtrackError(f"{src}: no frame could be decoded")
    height, width = frame.shape[:2]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.part{os.getpid()}{out.suffix or '.mp4'}")
    reason = None
    exe = ffmpeg_h264() if encoder in ("auto", "h264") else None
    if encoder == "h264" and exe is None:
        cap.release()
        raise PtrackError("H.264 needs ffmpeg with libx264 on PATH; use --encoder mp4v")
    if exe is None and encoder == "auto":
        reason = ("ffmpeg not on PATH" if not shutil.which("ffmpeg")
                  else "ffmpeg on PATH has no libx264 encoder")
    writer: Any = _FfmpegWriter(exe, tmp, width, height, fps) if exe else _CvWriter(tmp, width, height, fps)
    name = "libx264 (ffmpeg)" if exe else "mp4v (OpenCV)"
    by_frame = frame_boxes(persons, boxes, which)
    skeletons = frame_skeletons(persons, poses or {})
    index = 0
    try:
        while ok:
            writer.write(draw_frame(frame, index, total, fps, by_frame.get(index, ()),
                                    skeletons.get(index, ()), kpt_conf))
            index += 1
            if progress is not None:
                progress(index, total)
            ok, frame = cap.read()
        writer.close()
        os.replace(tmp, out)
    except BaseException:
        writer.abort()
        raise
    finally:
        cap.release()
        if tmp.exists():
            tmp.unlink()
    return RenderResult(out, index, name, reason)
