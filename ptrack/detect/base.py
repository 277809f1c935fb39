"""The detector interface both backends implement (kept apart from :mod:`ptrack.detect.detector`,
which imports the backends, so a backend never imports its importer)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DetectorBase:
    """What both backends' detectors hold (:class:`ptrack.detect.openvino_backend.OpenVINODetector`,
    :class:`ptrack.detect.torch_backend.TorchDetector`). Called with a list of BGR frames, a detector
    gives per frame (xyxy float32 (N, 4) in frame pixels, conf float32 (N,), cls int64 (N,))."""

    imgsz: tuple[int, int]
    conf: float
    iou: float
    classes: list[int] | None
    max_det: int
    names: dict[int, str]
