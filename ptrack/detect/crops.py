"""Person crops: cut from a frame, fitted inside a box, JPEG-encoded (and decoded back)."""

from __future__ import annotations

import math

import numpy as np


def cut(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The pixels of ``box`` (xyxy) in ``image``, clipped to the frame, at least 1x1.

    Plain Python arithmetic (no NumPy scalar calls): the detect writer runs this for every box
    while holding the GIL that the detector's thread needs."""
    h, w = image.shape[:2]
    b0, b1, b2, b3 = (float(v) for v in box[:4])
    x1 = min(max(math.floor(b0), 0), w - 1)
    y1 = min(max(math.floor(b1), 0), h - 1)
    x2 = min(max(math.ceil(b2), x1 + 1), w)
    y2 = min(max(math.ceil(b3), y1 + 1), h)
    return image[y1:y2, x1:x2]


def fit(crop: np.ndarray, max_h: int, max_w: int) -> np.ndarray:
    """Shrink ``crop`` to fit inside ``max_h`` x ``max_w`` keeping its aspect; never enlarge."""
    import cv2

    h, w = crop.shape[:2]
    scale = min(max_h / h, max_w / w, 1.0)
    if scale >= 1.0:
        return crop
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(crop, size, interpolation=cv2.INTER_AREA)


def encode(image: np.ndarray, box: np.ndarray, *, max_h: int, max_w: int, quality: int) -> bytes:
    """JPEG bytes of one person crop."""
    import cv2

    ok, buf = cv2.imencode(".jpg", fit(cut(image, box), max_h, max_w),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - OpenCV encodes any non-empty BGR array
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


MIN_HEIGHT, MIN_WIDTH = 4, 2
"""Smallest crop worth describing: below it a crop holds no usable colour (a 2x2-pixel video)."""


def decode(data: bytes | None) -> np.ndarray | None:
    """BGR image from JPEG bytes; None when the bytes are missing, not an image, or the image is
    smaller than ``MIN_HEIGHT`` x ``MIN_WIDTH``. Callers skip None and count it."""
    import cv2

    if not data:
        return None
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        return None
    if image is None or image.ndim != 3 or image.shape[0] < MIN_HEIGHT or image.shape[1] < MIN_WIDTH:
        return None
    return image
