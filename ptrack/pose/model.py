"""An Ultralytics pose model run on batches of person crops.

On a CPU the model is exported once per user and input shape into detect's OpenVINO cache
(:func:`ptrack.detect.openvino_backend.export_ir`) and compiled by ptrack with the uint8 BGR
input folded in; several inference requests stay in flight (OpenVINO's THROUGHPUT hint and
async queue) while the next crops are letterboxed, and the output is decoded in numpy
(Ultralytics' letterbox and box maths, greedy NMS). The precision is chosen as ``detect``
chooses it (:func:`ptrack.detect.detector._resolve_precision`), without an INT8 model: bf16
where the CPU has it, else f32. On CUDA the torch model runs through Ultralytics (fp16 by
default), a batch of crops per call.

A model call takes a list of BGR crops and gives per crop ``(boxes (n, 4), scores (n,),
keypoints (n, 17, 3))`` in that crop's pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ptrack.errors import PtrackError
from ptrack.pose.keypoints import N_KEYPOINTS

Poses = tuple[np.ndarray, np.ndarray, np.ndarray]
EMPTY: Poses = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                np.zeros((0, N_KEYPOINTS, 3), np.float32))
MAX_POSES = 10  # poses kept per crop: the person and a few bystanders are plenty


def crop_shape(imgsz: int, stride: int = 32) -> tuple[int, int]:
    """Network input (h, w) for person crops: ``imgsz`` high, half as wide (x32): people are
    about twice as tall as wide, so less of the input is padding than in a square.

    >>> crop_shape(320), crop_shape(256), crop_shape(100)
    ((320, 160), (256, 128), (128, 64))
    """
    h = max(stride, int(math.ceil(imgsz / stride) * stride))
    return h, max(stride, int(math.ceil(h / 2 / stride) * stride))


def decode(pred: np.ndarray, crop_hw: tuple[int, int], net_shape: tuple[int, int], *,
           conf: float, iou: float, max_det: int = MAX_POSES) -> Poses:
    """One crop's raw output (4 + 1 + 51, anchors) -> poses in crop pixels (boxes clipped)."""
    from ptrack.detect.letterbox import scale_back
    from ptrack.detect.openvino_backend import nms

    score = pred[4]
    cand = np.flatnonzero(score > conf)
    if not len(cand):
        return EMPTY
    xywh = pred[:4, cand].T
    xyxy = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], axis=1)
    sel = nms(xyxy, score[cand], iou)[:max_det]
    keep = cand[sel]
    boxes = scale_back(xyxy[sel].astype(np.float32), net_shape, crop_hw)
    kpts = pred[5:, keep].T.reshape(-1, N_KEYPOINTS, 3).astype(np.float32)
    gain = min(net_shape[0] / crop_hw[0], net_shape[1] / crop_hw[1])
    new_h, new_w = (max(round(x * gain), 1) for x in crop_hw)
    pad_x = round((net_shape[1] - new_w) / 2 - 0.1)
    pad_y = round((net_shape[0] - new_h) / 2 - 0.1)
    kpts[..., 0] = ((kpts[..., 0] - pad_x) / (new_w / crop_hw[1])).clip(0, crop_hw[1])
    kpts[..., 1] = ((kpts[..., 1] - pad_y) / (new_h / crop_hw[0])).clip(0, crop_hw[0])
    return boxes, score[keep].astype(np.float32), kpts


@dataclass
class PoseModel:
    """A loaded pose model; call it with a list of BGR crops."""

    name: str
    sha256: str
    imgsz: tuple[int, int]
    conf: float
    iou: float
    backend: str
    device: str
    precision: str
    precision_note: str
    compiled: object = None  # OpenVINO
    requests: int = 1
    yolo: object = None  # torch (Ultralytics)
    half: bool = False
    _queue: object = None

    def __call__(self, crops: Sequence[np.ndarray]) -> list[Poses]:
        if not crops:
            return []
        if self.backend == "openvino":
            return [decode(out, crop.shape[:2], self.imgsz, conf=self.conf, iou=self.iou)
                    for out, crop in zip(self._raw(crops), crops)]
        return self._torch(crops)

    def _raw(self, crops: Sequence[np.ndarray]) -> list[np.ndarray]:
        from ptrack.detect.openvino_backend import async_queue, infer_letterboxed

        if self._queue is None:
            self._queue = async_queue(self.compiled, self.requests)
        return infer_letterboxed(self._queue, crops, self.imgsz)

    def _torch(self, crops: Sequence[np.ndarray]) -> list[Poses]:
        out = []
        extra = {"half": True} if self.half else {}
        results = self.yolo.predict(list(crops), imgsz=list(self.imgsz), conf=self.conf,
                                    iou=self.iou, device=self.device, max_det=MAX_POSES, rect=False,
                                    verbose=False, **extra)
        for r in results:
            if r.keypoints is None or not len(r.boxes):
                out.append(EMPTY)
                continue
            out.append((r.boxes.xyxy.cpu().numpy().astype(np.float32),
                        r.boxes.conf.cpu().numpy().astype(np.float32),
                        r.keypoints.data.cpu().numpy().astype(np.float32).reshape(-1, N_KEYPOINTS, 3)))
        return out


def check_settings(pose: dict) -> None:
    """One-line usage errors (exit 2) for impossible ``pose`` choices, before any work."""
    import re

    def bad(name: str, value: object, want: str) -> PtrackError:
        return PtrackError(f"--{name} {value!r}: must be {want}", exit_code=2)

    if str(pose["backend"]) not in ("auto", "torch", "openvino"):
        raise bad("backend", pose["backend"], "auto, torch or openvino")
    device = str(pose["device"])
    if not (device in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+|\d+(,\d+)*", device)):
        raise bad("device", device, "auto, cpu, cuda or cuda:N")
    if str(pose["precision"]) not in ("auto", "f32", "fp16", "bf16"):
        raise bad("precision", pose["precision"], "auto, f32, fp16 or bf16 (no INT8 pose model)")


def model_identity(pose: dict, project: Path | None) -> tuple[Path, str]:
    """(weights path, SHA-256) of ``pose.model`` (looked up, and fetched, as detect's model)."""
    from ptrack.detect.detector import file_hash, find_model

    path = find_model(pose["model"], project)
    return path, file_hash(path)


def load_pose_model(pose: dict, *, project: Path | None = None,
                    log: Callable[[str], None] | None = None) -> PoseModel:
    """Build the pose model from the ``pose`` settings (see the module docstring)."""
    from ptrack.detect import detector as det

    check_settings(pose)
    det.quiet_ultralytics()
    path, digest = model_identity(pose, project)
    import torch  # noqa: F401  (after the environment is set)

    yolo = det._load_yolo(path)
    if getattr(yolo, "task", None) != "pose":
        raise PtrackError(f"model {path.name} is a '{yolo.task}' model; `ptrack pose` needs an "
                          f"Ultralytics pose model (e.g. yolo11n-pose.pt)")
    shape_k = tuple(getattr(yolo.model, "kpt_shape", (N_KEYPOINTS, 3)) or ())
    if shape_k != (N_KEYPOINTS, 3):
        raise PtrackError(f"model {path.name} has keypoints {shape_k}; ptrack needs COCO's 17 "
                          f"(x, y, visibility) keypoints")
    device = det._torch_device(str(pose["device"]))
    backend = str(pose["backend"])
    if backend == "auto":
        backend = "openvino" if device == "cpu" and det._openvino_available() else "torch"
    if backend == "openvino" and not det._openvino_available():
        raise PtrackError("backend openvino asked for, but the openvino package is not installed")
    shape = crop_shape(int(pose["imgsz"]))
    common = dict(name=path.name, sha256=digest, imgsz=shape, conf=float(pose["conf"]),
                  iou=float(pose["iou"]), device=device)
    asked = str(pose["precision"])
    if backend == "torch":
        precision, why = det.torch_precision(asked, device)
        return PoseModel(**common, backend="torch", precision=precision, precision_note=why,
                         yolo=yolo, half=precision == "fp16")
    from ptrack.detect import openvino_backend as ob

    caps = ob.cpu_capabilities()
    if asked == "fp16":
        raise PtrackError("--precision fp16 is for the torch backend on a CUDA GPU; OpenVINO on "
                          f"this CPU offers {', '.join(caps)} (use f32, bf16 or auto)", exit_code=2)
    precision, why = det._resolve_precision({"precision": asked}, caps, None,
                                            {"error": "no INT8 pose model"})
    folder = ob.export_ir(path, digest, shape, log=log)
    compiled, requests = ob.compile_ir(folder / "model.xml", precision=precision)
    return PoseModel(**common, backend="openvino", precision=precision, precision_note=why,
                     compiled=compiled, requests=requests)
