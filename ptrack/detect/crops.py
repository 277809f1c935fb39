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


MAX_SIDE = 4096
"""Largest crop side ptrack stores (``crops.height``/``width`` are at most this): a crop whose
header claims more is not decoded (a 16000x16000 header costs 0.7 GB to decode)."""

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_size(data: bytes | None) -> tuple[int, int] | None:
    """(height, width) from a JPEG's frame header, without decoding it; None when the bytes are
    not a JPEG with a frame header."""
    if not data or data[:2] != b"\xff\xd8":
        return None
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        size = int.from_bytes(data[i + 2:i + 4], "big")
        if marker in _SOF:
            if i + 9 > n:
                return None
            return int.from_bytes(data[i + 5:i + 7], "big"), int.from_bytes(data[i + 7:i + 9], "big")
        if marker == 0xDA or size < 2:  # image data before a frame header: not a usable JPEG
            return None
        i += 2 + size
    return None


def decodable(data: bytes | None) -> bool:
    """The bytes are a JPEG whose header claims at most ``MAX_SIDE`` pixels a side."""
    size = jpeg_size(data)
    return size is not None and 0 < size[0] <= MAX_SIDE and 0 < size[1] <= MAX_SIDE


def decode(data: bytes | None) -> np.ndarray | None:
    """BGR image from JPEG bytes; None when the bytes are missing, not an image, larger than
    ``MAX_SIDE`` a side by their header (checked before decoding), or smaller than
    ``MIN_HEIGHT`` x ``MIN_WIDTH``. Callers skip None and count it."""
    import cv2

    if not data or not decodable(data):
        return None
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        return None
    if image is None or image.ndim != 3 or image.shape[0] < MIN_HEIGHT or image.shape[1] < MIN_WIDTH:
        return None
    return image
