"""Ultralytics' letterbox and its inverse: a frame fitted into the network's input (aspect kept,
grey 114 padding, the same rounding), and the network's boxes scaled back to frame pixels.
Used by both detector backends (:mod:`ptrack.detect.openvino_backend` on the CPU,
:mod:`ptrack.detect.torch_backend`, which letterboxes on the GPU with the same parameters)."""

from __future__ import annotations

import numpy as np


def letterbox_params(shape: tuple[int, int], new_shape: tuple[int, int]) -> tuple:
    """Ultralytics ``LetterBox(auto=False, center=True)``: (new_unpad wh, top, bottom, left, right)."""
    r = min(new_shape[0] / shape[0], new_shape[1] / shape[1])
    new_unpad = max(round(shape[1] * r), 1), max(round(shape[0] * r), 1)
    dw, dh = (new_shape[1] - new_unpad[0]) / 2, (new_shape[0] - new_unpad[1]) / 2
    return new_unpad, round(dh - 0.1), round(dh + 0.1), round(dw - 0.1), round(dw + 0.1)


def letterbox(image: np.ndarray, new_shape: tuple[int, int]) -> np.ndarray:
    """The network's uint8 BGR (1, h, w, 3) input for ``image`` (resize, grey padding 114)."""
    import cv2

    new_unpad, top, bottom, left, right = letterbox_params(image.shape[:2], new_shape)
    if image.shape[1::-1] != new_unpad:
        image = cv2.resize(image, new_unpad, interpolation=cv2.INTER_LINEAR)
    if top or bottom or left or right:
        image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT,
                                   value=(114, 114, 114))
    return np.ascontiguousarray(image[None])


def scale_back(boxes: np.ndarray, net_shape: tuple[int, int], frame_shape: tuple[int, int]) -> np.ndarray:
    """Network-input xyxy -> frame pixels, clipped (Ultralytics ``scale_boxes``), in place."""
    gain = min(net_shape[0] / frame_shape[0], net_shape[1] / frame_shape[1])
    new_h, new_w = (max(round(x * gain), 1) for x in frame_shape[:2])
    gain_y, gain_x = new_h / frame_shape[0], new_w / frame_shape[1]
    pad_x = round((net_shape[1] - new_w) / 2 - 0.1)
    pad_y = round((net_shape[0] - new_h) / 2 - 0.1)
    boxes[:, [0, 2]] = ((boxes[:, [0, 2]] - pad_x) / gain_x).clip(0, frame_shape[1])
    boxes[:, [1, 3]] = ((boxes[:, [1, 3]] - pad_y) / gain_y).clip(0, frame_shape[0])
    return boxes
