"""An OpenVINO person detector without Ultralytics' predictor in the loop (a lever to measure).

``ptrack.detector.Detector`` calls ``YOLO.predict`` on each batch: Ultralytics letterboxes
with OpenCV, converts through torch tensors, runs the OpenVINO model one frame at a time in
LATENCY mode (synchronous) and runs NMS in torch. This module does the same maths itself:

* the letterbox (same rounding, padding 114, bilinear) with one ``cv2.resize`` +
  ``cv2.copyMakeBorder`` per frame, optionally done in the reader thread (``prepare``);
* BGR->RGB, HWC->CHW and /255 inside the compiled model (OpenVINO ``PrePostProcessor``), so
  the Python side hands over the uint8 frame and no float copy is made;
* ``PERFORMANCE_HINT`` THROUGHPUT (2 streams of 1 thread on 2 cores) with an
  ``AsyncInferQueue``, or LATENCY (1 stream of 2 threads), selectable;
* NMS as Ultralytics does it (best class, class offset ``max_wh``, torchvision ``nms``) on the
  few candidates above ``conf``, then boxes scaled back and clipped like ``scale_boxes``.

``install(**options)`` swaps ``ptrack.detector.load_detector`` for this one (in the current
process only), so ``ptrack.detect.detect_video`` runs unchanged around it; ``levers.py``
measures it that way, and ``bench/proposals/fast-openvino.patch`` moves it into ptrack.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

MAX_WH = 7680  # Ultralytics' per-class box offset for class-aware NMS


def letterbox_params(shape: tuple[int, int], new_shape: tuple[int, int]) -> tuple:
    """Ultralytics LetterBox(auto=False, center=True): (new_unpad wh, top, bottom, left, right)."""
    r = min(new_shape[0] / shape[0], new_shape[1] / shape[1])
    new_unpad = max(round(shape[1] * r), 1), max(round(shape[0] * r), 1)
    dw, dh = (new_shape[1] - new_unpad[0]) / 2, (new_shape[0] - new_unpad[1]) / 2
    return new_unpad, round(dh - 0.1), round(dh + 0.1), round(dw - 0.1), round(dw + 0.1)


def letterbox(image: np.ndarray, new_shape: tuple[int, int]) -> np.ndarray:
    """The network's uint8 BGR HWC input for ``image``."""
    import cv2

    new_unpad, top, bottom, left, right = letterbox_params(image.shape[:2], new_shape)
    if image.shape[1::-1] != new_unpad:
        image = cv2.resize(image, new_unpad, interpolation=cv2.INTER_LINEAR)
    if top or bottom or left or right:
        image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT,
                                   value=(114, 114, 114))
    return image


def scale_back(boxes: np.ndarray, net_shape: tuple[int, int], frame_shape: tuple[int, int]) -> np.ndarray:
    """Ultralytics ``scale_boxes`` (xyxy, padding) + ``clip_boxes``, in place."""
    gain = min(net_shape[0] / frame_shape[0], net_shape[1] / frame_shape[1])
    new_h, new_w = (max(round(x * gain), 1) for x in frame_shape[:2])
    gain_y, gain_x = new_h / frame_shape[0], new_w / frame_shape[1]
    pad_x = round((net_shape[1] - new_w) / 2 - 0.1)
    pad_y = round((net_shape[0] - new_h) / 2 - 0.1)
    boxes[:, [0, 2]] = (boxes[:, [0, 2]] - pad_x) / gain_x
    boxes[:, [1, 3]] = (boxes[:, [1, 3]] - pad_y) / gain_y
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, frame_shape[1])
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, frame_shape[0])
    return boxes


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    try:
        import torch
        import torchvision

        return torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), iou).numpy()
    except ImportError:  # greedy NMS in numpy (same result, slower on many boxes)
        order = np.argsort(-scores, kind="stable")
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        keep = []
        while len(order):
            i, rest = order[0], order[1:]
            keep.append(i)
            lt = np.maximum(boxes[i, :2], boxes[rest, :2])
            rb = np.minimum(boxes[i, 2:], boxes[rest, 2:])
            inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
            order = rest[inter / (area[i] + area[rest] - inter) <= iou]
        return np.asarray(keep, dtype=np.int64)


def postprocess(pred: np.ndarray, frame_shape: tuple[int, int], net_shape: tuple[int, int], *,
                conf: float, iou: float, classes: list[int] | None, max_det: int,
                max_nms: int = 30000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One frame's raw output (4 + nc, anchors) -> (xyxy, conf, cls) like Ultralytics' NMS."""
    scores_all = pred[4:]
    best = scores_all.max(0)
    cand = np.flatnonzero(best > conf)
    if not len(cand):
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    cls = scores_all[:, cand].argmax(0)
    score = best[cand]
    xywh = pred[:4, cand].T
    if classes is not None:
        keep = np.isin(cls, classes)
        cls, score, xywh = cls[keep], score[keep], xywh[keep]
        if not len(cls):
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    if len(score) > max_nms:
        top = np.argsort(-score, kind="stable")[:max_nms]
        cls, score, xywh = cls[top], score[top], xywh[top]
    xyxy = np.empty_like(xywh)
    xyxy[:, :2] = xywh[:, :2] - xywh[:, 2:] / 2
    xyxy[:, 2:] = xywh[:, :2] + xywh[:, 2:] / 2
    keep = _nms(xyxy + (cls[:, None] * MAX_WH).astype(xyxy.dtype), score.astype(np.float32), iou)[:max_det]
    boxes = scale_back(xyxy[keep].astype(np.float32), net_shape, frame_shape)
    return boxes, score[keep].astype(np.float32), cls[keep].astype(np.int64)


@dataclass
class FastDetector:
    """Same call and fields as ``ptrack.detector.Detector``; OpenVINO compiled directly."""

    compiled: object
    backend: str
    device: str
    imgsz: tuple[int, int]
    conf: float
    iou: float
    classes: list[int] | None
    max_det: int
    names: dict[int, str]
    requests: int = 1
    mode: str = "THROUGHPUT"
    _queue: object = None
    _prepared: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """Letterbox ``image`` now (e.g. in the reader thread) and remember it for ``__call__``."""
        net = np.ascontiguousarray(letterbox(image, self.imgsz)[None])
        with self._lock:
            self._prepared[id(image)] = net
        return net

    def _input(self, image: np.ndarray) -> np.ndarray:
        with self._lock:
            net = self._prepared.pop(id(image), None)
        return net if net is not None else np.ascontiguousarray(letterbox(image, self.imgsz)[None])

    def __call__(self, frames: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        import openvino as ov

        outputs: list = [None] * len(frames)
        if self._queue is None and self.requests > 1:
            self._queue = ov.AsyncInferQueue(self.compiled, self.requests)

            def done(request, slot):
                outputs_ref, i = slot
                outputs_ref[i] = request.get_output_tensor(0).data[0].copy()

            self._queue.set_callback(done)
        if self._queue is None:
            for i, image in enumerate(frames):
                outputs[i] = self.compiled(self._input(image))[0][0]
        else:
            for i, image in enumerate(frames):
                self._queue.start_async({0: self._input(image)}, (outputs, i))
            self._queue.wait_all()
        return [postprocess(out, image.shape[:2], self.imgsz, conf=self.conf, iou=self.iou,
                            classes=self.classes, max_det=self.max_det)
                for out, image in zip(outputs, frames)]


def compile_model(xml: Path, *, mode: str = "THROUGHPUT", threads: int = 0,
                  precision: str | None = None, streams: int = 0):
    """The exported IR with uint8 BGR NHWC input folded in; returns (compiled, requests)."""
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
    config: dict = {"PERFORMANCE_HINT": mode}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    if streams:
        config["NUM_STREAMS"] = streams
    if precision:
        config["INFERENCE_PRECISION_HINT"] = precision
    compiled = core.compile_model(model, "CPU", config)
    requests = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")) if mode != "LATENCY" else 1
    return compiled, requests


def load_fast_detector(settings: dict, *, width: int, height: int, project: Path,
                       mode: str = "THROUGHPUT", threads: int = 0, precision: str | None = None,
                       streams: int = 0) -> FastDetector:
    """``ptrack.detector.load_detector`` for the OpenVINO backend, without the predictor."""
    import ptrack.detector as D

    original = getattr(D, "_bench_original_load_detector", D.load_detector)
    base = original(settings, width=width, height=height, project=project)  # export + checks
    if base.backend != "openvino":
        return base  # torch/CUDA: unchanged
    digest = D.file_hash(D.find_model(settings["model"], project))
    xml = project / "models" / f"{digest[:16]}-{base.imgsz[0]}x{base.imgsz[1]}_openvino_model" / "model.xml"
    compiled, requests = compile_model(xml, mode=mode, threads=threads, precision=precision,
                                       streams=streams)
    return FastDetector(compiled=compiled, backend=f"openvino-direct-{mode.lower()}", device="cpu",
                        imgsz=base.imgsz, conf=base.conf, iou=base.iou, classes=base.classes,
                        max_det=base.max_det, names=base.names, requests=requests, mode=mode)


def install(*, prepare_in_reader: bool = False, **options) -> None:
    """Make ``ptrack.detect`` use :func:`load_fast_detector` (and letterbox in the reader)."""
    import ptrack.detect as detect_mod
    import ptrack.detector as D
    import ptrack.video as video_mod

    state: dict = {}

    def loader(settings, *, width, height, project):
        det = load_fast_detector(settings, width=width, height=height, project=project, **options)
        state["det"] = det
        return det

    if not hasattr(D, "_bench_original_load_detector"):
        D._bench_original_load_detector = D.load_detector
    D.load_detector = loader
    if prepare_in_reader:
        base = video_mod.FrameReader

        class PreparingReader(base):  # letterbox in the reader thread, next to the decode
            def _put(self, item):
                if item is not None and "det" in state and hasattr(state["det"], "prepare"):
                    state["det"].prepare(item[1])
                return super()._put(item)

        detect_mod.FrameReader = PreparingReader
    os.environ.setdefault("PTRACK_BENCH_FASTDET", "1")
