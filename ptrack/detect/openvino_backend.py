"""The OpenVINO backend: per-user export cache, letterbox + NMS in numpy, async inference.

The exported IR is compiled directly (no Ultralytics predictor in the loop):

* uint8 BGR frames go in; BGR->RGB, HWC->CHW and /255 are folded into the compiled model
  (OpenVINO ``PrePostProcessor``), so Python makes no float copy of a frame;
* ``PERFORMANCE_HINT`` THROUGHPUT (OpenVINO picks its streams for the CPU) with an
  ``AsyncInferQueue``: the next frame is letterboxed while the previous ones infer;
* the letterbox and the box scaling are Ultralytics' own maths (:mod:`ptrack.detect.letterbox`);
  NMS is class-agnostic across the chosen classes (one person, one box), keeping the class of
  the kept box.

Exports are cached per user (``cache_dir()``), keyed by the weights' hash and the input shape,
built in a ``.export-PID-*`` folder and renamed into place, so a killed export leaves nothing
half-written; its folder is removed by the next run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ptrack.detect.base import DetectorBase
from ptrack.errors import PtrackError
from ptrack.detect.letterbox import letterbox, scale_back

PRECISIONS = ("auto", "f32", "fp16", "bf16", "int8")  # fp16: the torch backend on CUDA
NMS_MATRIX_MAX = 1500  # candidates up to which NMS uses one IoU matrix (memory n^2)
HINTS = ("throughput", "latency")


# ------------------------------------------------------------------------------ cache
def cache_dir() -> Path:
    """Per-user model cache: ``$PTRACK_CACHE_DIR``, else ``$XDG_CACHE_HOME/ptrack/models``,
    else ``~/.cache/ptrack/models`` (``~/Library/Caches`` on macOS)."""
    if os.environ.get("PTRACK_CACHE_DIR"):
        return Path(os.environ["PTRACK_CACHE_DIR"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "ptrack" / "models"
    import sys

    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "ptrack" / "models"
    return Path.home() / ".cache" / "ptrack" / "models"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_exports(root: Path) -> list[Path]:
    """Remove ``.export-PID-*`` folders whose process is gone (a killed export); returns them."""
    removed = []
    if not root.is_dir():
        return removed
    for p in root.glob(".export-*"):
        parts = p.name.split("-")
        pid = int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else -1
        if pid == os.getpid() or (pid > 0 and _pid_alive(pid)):
            continue
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


def staging_dir(root: Path) -> Path:
    """A fresh ``.export-PID-XXXX`` folder under ``root`` to build an export in."""
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=root, prefix=f".export-{os.getpid()}-"))


def publish(staged: Path, target: Path) -> Path:
    """Rename ``staged`` to ``target`` atomically; if another process won, keep theirs."""
    try:
        os.rename(staged, target)
    except OSError:
        if not (target / "model.xml").exists():
            raise
        shutil.rmtree(staged, ignore_errors=True)
    return target


def export_dir(digest: str, shape: tuple[int, int], precision: str = "f32",
               root: Path | None = None) -> Path:
    """Where the IR for these weights, input shape (h, w) and precision lives."""
    suffix = "" if precision == "f32" else f"-{precision}"
    return (root or cache_dir()) / f"{digest[:16]}-{shape[0]}x{shape[1]}{suffix}"


def export_ir(pt_path: Path, digest: str, shape: tuple[int, int], root: Path | None = None,
              log=None) -> Path:
    """Export (once per user) the f32 OpenVINO IR of ``pt_path`` for input ``shape``; its folder."""
    root = root or cache_dir()
    target = export_dir(digest, shape, "f32", root)
    if (target / "model.xml").exists():
        return target
    clean_stale_exports(root)
    if log:
        log(f"exporting the model for OpenVINO (once, {shape[1]}x{shape[0]}) into {target}")
    staged = staging_dir(root)
    try:
        local = staged / "model.pt"
        shutil.copyfile(pt_path, local)
        from ultralytics import YOLO

        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exported = Path(YOLO(str(local)).export(format="openvino", imgsz=list(shape), half=False,
                                                    dynamic=False, batch=1, verbose=False))
        published = publish(exported, target)
        shutil.rmtree(staged, ignore_errors=True)
        return published
    except PtrackError:
        raise
    except Exception as exc:
        shutil.rmtree(staged, ignore_errors=True)
        raise PtrackError(f"OpenVINO export of {pt_path} failed: {exc}") from None


# ------------------------------------------------------------------------ pre and post
def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of xyxy boxes."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy NMS: indices kept, best score first (ties in input order, like torchvision)."""
    order = np.argsort(-scores, kind="stable")
    boxes = boxes[order]
    if len(order) > NMS_MATRIX_MAX:  # very low conf: no n x n matrix, one row per kept box
        alive = np.ones(len(order), bool)
        keep = []
        for i in range(len(order)):
            if alive[i]:
                keep.append(i)
                alive[i + 1:] &= box_iou(boxes[i:i + 1], boxes[i + 1:])[0] <= iou
        return order[np.asarray(keep, dtype=np.int64)]
    overlap = box_iou(boxes, boxes) > iou
    alive = np.ones(len(order), bool)
    keep = []
    for i in range(len(order)):
        if alive[i]:
            keep.append(i)
            alive &= ~overlap[i]
    return order[np.asarray(keep, dtype=np.int64)]


EMPTY = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


def postprocess(pred: np.ndarray, frame_shape: tuple[int, int], net_shape: tuple[int, int], *,
                conf: float, iou: float, classes: list[int] | None, max_det: int,
                max_nms: int = 30000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One frame's raw output (4 + nc, anchors) -> (xyxy, conf, cls) in frame pixels.

    Like Ultralytics' NMS with ``agnostic=True``: each anchor's best class, kept when above
    ``conf`` and among ``classes``; one greedy NMS over all of them (a box of one class
    suppresses an overlapping box of another).
    """
    scores_all = pred[4:]
    best = scores_all.max(0)
    cand = np.flatnonzero(best > conf)
    if not len(cand):
        return EMPTY
    cls = scores_all[:, cand].argmax(0)
    score = best[cand]
    xywh = pred[:4, cand].T
    if classes is not None:
        keep = np.isin(cls, classes)
        cls, score, xywh = cls[keep], score[keep], xywh[keep]
        if not len(cls):
            return EMPTY
    if len(score) > max_nms:
        top = np.argsort(-score, kind="stable")[:max_nms]
        cls, score, xywh = cls[top], score[top], xywh[top]
    xyxy = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], axis=1)
    keep = nms(xyxy, score, iou)[:max_det]
    boxes = scale_back(xyxy[keep].astype(np.float32), net_shape, frame_shape)
    return boxes, score[keep].astype(np.float32), cls[keep].astype(np.int64)


# ------------------------------------------------------------------------------- runtime
def cpu_capabilities() -> list[str]:
    """OpenVINO's ``OPTIMIZATION_CAPABILITIES`` of the CPU (e.g. FP32, BF16, INT8)."""
    import openvino as ov

    return [str(c) for c in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")]


def compile_ir(xml: Path, *, hint: str = "throughput", precision: str = "f32",
               streams: int = 0, threads: int = 0):
    """Compile the IR for the CPU with the uint8 BGR NHWC input folded in; (compiled, requests).

    ``precision`` is the inference precision of the float parts (f32 or bf16); an INT8 IR
    runs its quantized layers in INT8 whatever it is.
    """
    import openvino as ov
    from openvino.preprocess import ColorFormat, PrePostProcessor

    core = ov.Core()
    model = core.read_model(str(xml))
    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")) \
        .set_color_format(ColorFormat.BGR)
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    ppp.input().preprocess().convert_element_type(ov.Type.f32).convert_color(ColorFormat.RGB) \
        .scale(255.0)
    model = ppp.build()
    config: dict = {"PERFORMANCE_HINT": hint.upper(),
                    "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32"}
    if streams:
        config["NUM_STREAMS"] = streams
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = core.compile_model(model, "CPU", config)
    requests = 1 if hint == "latency" else int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    return compiled, max(1, requests)


def async_queue(compiled, requests: int):
    """An OpenVINO async queue whose callback copies each request's first output into the slot
    it was started with (shared by the detector and the pose model)."""
    import openvino as ov

    queue = ov.AsyncInferQueue(compiled, requests)

    def done(request, slot):
        box, i = slot
        box[i] = request.get_output_tensor(0).data[0].copy()

    queue.set_callback(done)
    return queue


def infer_letterboxed(queue, images: Sequence[np.ndarray], imgsz: tuple[int, int]) -> list[np.ndarray]:
    """Each image letterboxed to ``imgsz`` and run through ``queue`` (requests kept in flight:
    ``start_async`` waits only when every request is busy); the raw outputs in order."""
    outputs: list = [None] * len(images)
    for i, image in enumerate(images):
        queue.start_async({0: letterbox(image, imgsz)}, (outputs, i))
    queue.wait_all()
    return outputs


@dataclass
class OpenVINODetector(DetectorBase):
    """The OpenVINO backend's detector (see :class:`DetectorBase`)."""

    compiled: object = None
    requests: int = 1
    precision: str = "f32"
    precision_note: str = ""
    gate: dict | None = None
    backend: str = "openvino"
    device: str = "cpu"
    _queue: object = None
    _outputs: list = field(default_factory=list)

    def raw(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The network's raw output (4 + nc, anchors) for each frame, requests kept in flight."""
        if self._queue is None:
            self._queue = async_queue(self.compiled, self.requests)
        return infer_letterboxed(self._queue, frames, self.imgsz)

    def __call__(self, frames: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        return [postprocess(out, image.shape[:2], self.imgsz, conf=self.conf, iou=self.iou,
                            classes=self.classes, max_det=self.max_det)
                for out, image in zip(self.raw(frames), frames)]
