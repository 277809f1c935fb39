"""The torch backend (a CUDA GPU, or the CPU): a batch of frames goes to the device once, is
letterboxed there, runs in fp16 on CUDA, and one NMS for the whole batch picks the boxes.

Ultralytics' predictor letterboxes each frame with OpenCV on the CPU, one after another, and
makes a ``Results`` object per frame; at 1080p on a GPU that, not the network, is what limits
it. Here the uint8 frames are copied to the device as one array and resized there (bilinear
with half-pixel centres and rounding to whole levels, which is what ``cv2.INTER_LINEAR`` does
to a uint8 frame), padded with grey 114 as Ultralytics' ``LetterBox`` does, and the boxes come
back to the CPU once per batch. NMS works on the whole batch at once (:func:`batch_nms`: one
torchvision kernel, one copy back), with Ultralytics' rules: each anchor's best class, kept
above ``conf`` and among the chosen classes, class-agnostic (one person, one box) keeping the
class of the kept box, at most ``max_det`` a frame. Ultralytics' own NMS loops over the frames
and, unless torchvision happens to be imported, over the boxes in Python: on an H200 that held
the detector to 200 frames/s while the network ran 4,800 (``bench/gpu_detect.py``). Boxes
are scaled back with the letterbox maths both backends share (:mod:`ptrack.detect.letterbox`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ptrack.detect.base import DetectorBase
from ptrack.detect.letterbox import letterbox_params, scale_back

PAD = 114.0


def letterbox_batch(frames, shape: tuple[int, int]):
    """(N, H, W, 3) uint8 BGR tensor -> (N, 3, h, w) float32 RGB in 0..1, letterboxed to
    ``shape`` (h, w) on the tensor's device (Ultralytics ``LetterBox(auto=False, center=True)``)."""
    import torch.nn.functional as F

    new_unpad, top, bottom, left, right = letterbox_params(tuple(frames.shape[1:3]), shape)
    x = frames.permute(0, 3, 1, 2).flip(1).float()  # NHWC BGR -> NCHW RGB
    if tuple(x.shape[2:]) != (new_unpad[1], new_unpad[0]):
        x = F.interpolate(x, size=(new_unpad[1], new_unpad[0]), mode="bilinear",
                          align_corners=False, antialias=False).round_().clamp_(0, 255)
    if top or bottom or left or right:
        x = F.pad(x, (left, right, top, bottom), value=PAD)
    return x.div_(255.0)


def batch_nms(pred, *, conf: float, iou: float, classes: list[int] | None, max_det: int):
    """Raw output (B, 4 + nc, anchors) -> (rows (K, 6): xyxy, conf, cls in network pixels, as a
    float32 numpy array; per-frame counts (B,)), the rows grouped by frame, best first."""
    import torch
    from torchvision.ops import nms

    p = pred.transpose(1, 2).float()  # (B, A, 4 + nc)
    score, cls = p[..., 4:].max(-1)
    keep = score > conf
    if classes is not None:
        keep &= torch.isin(cls, torch.as_tensor(classes, device=cls.device))
    frame, anchor = keep.nonzero(as_tuple=True)
    xywh = p[frame, anchor, :4]
    boxes = torch.cat([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1)
    score, cls = score[frame, anchor], cls[frame, anchor]
    if not len(frame):
        return np.zeros((0, 6), np.float32), np.zeros(pred.shape[0], np.int64)
    # one NMS for the whole batch: each frame's boxes shifted apart so frames never overlap
    offset = frame.to(boxes.dtype)[:, None] * (boxes.max() - boxes.min() + 1)
    kept = nms(boxes + offset, score, iou)  # best score first
    frame_k = frame[kept]
    kept = kept[torch.sort(frame_k, stable=True).indices]  # grouped by frame, best first
    frame_k = frame[kept]
    counts = torch.bincount(frame_k, minlength=pred.shape[0])
    first = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(kept), device=kept.device) - first[frame_k]
    kept = kept[rank < max_det]
    rows = torch.cat([boxes[kept], score[kept, None], cls[kept, None].float()], 1)
    return rows.cpu().numpy(), counts.clamp(max=max_det).cpu().numpy()


def prepare_network(yolo, device: str, half: bool):
    """The fused, eval-mode network of an Ultralytics ``YOLO`` on ``device`` (fp16 if ``half``)."""
    import torch

    net = yolo.model
    net = net.fuse() if hasattr(net, "fuse") else net
    net = net.to(torch.device(device)).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net.half() if half else net.float()


@dataclass
class TorchDetector(DetectorBase):
    """The torch backend's detector (see :class:`ptrack.detect.detector.DetectorBase`); the
    frames of one call are of one size."""

    net: object = None
    device: str = "cpu"
    precision: str = "f32"  # f32 | fp16
    precision_note: str = ""
    gate: dict | None = None
    backend: str = "torch"
    _pinned: object = field(default=None, repr=False)

    def upload(self, frames: Sequence[np.ndarray]):
        """The frames as one (N, H, W, 3) uint8 tensor on the device (through a reused
        page-locked buffer on CUDA, so the copy runs at the bus's speed)."""
        import torch

        if not self.device.startswith("cuda"):
            return torch.from_numpy(np.stack(frames))
        shape = (len(frames), *frames[0].shape)
        if self._pinned is None or tuple(self._pinned.shape) != shape:
            self._pinned = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        np.stack(frames, out=self._pinned.numpy())
        return self._pinned.to(self.device, non_blocking=True)

    def warm_up(self, height: int, width: int, batch: int) -> None:
        """Run one blank batch, so that CUDA's one-time start (loading kernels, cuDNN choosing
        its algorithms: about 2 s on an H200) is not charged to the first frames of the video."""
        if self.device.startswith("cuda"):
            self([np.zeros((height, width, 3), np.uint8)] * max(1, batch))

    def raw(self, frames: Sequence[np.ndarray]):
        """The network's raw output (N, 4 + nc, anchors) for a batch, on the device."""
        import torch

        with torch.inference_mode():
            x = letterbox_batch(self.upload(frames), self.imgsz)
            pred = self.net(x.half() if self.precision == "fp16" else x)
            return pred[0] if isinstance(pred, (list, tuple)) else pred

    def __call__(self, frames: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        import torch

        if not len(frames):
            return []
        with torch.inference_mode():
            rows, counts = batch_nms(self.raw(frames), conf=self.conf, iou=self.iou,
                                     classes=self.classes, max_det=self.max_det)
        out, start = [], 0
        for frame, n in zip(frames, counts):
            d = rows[start:start + n]
            start += n
            boxes = scale_back(d[:, :4].astype(np.float32), self.imgsz, frame.shape[:2])
            out.append((boxes, d[:, 4].astype(np.float32), d[:, 5].astype(np.int64)))
        return out
