"""Pure keypoint maths: crop regions around person boxes, the pose that is the person's, and
keypoints mapped back to video pixels. Arrays in, arrays out.

Keypoints are COCO-17 ``(x, y, confidence)`` rows in the order of :data:`KEYPOINT_NAMES`.
"""

from __future__ import annotations

import numpy as np

KEYPOINT_NAMES = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
                  "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
                  "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")
"""COCO's 17 person keypoints, in the order every keypoint array of ptrack uses."""

SKELETON = ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
            (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6))
"""Limbs as pairs of keypoint indices (COCO's skeleton, 0-based)."""

N_KEYPOINTS = len(KEYPOINT_NAMES)


def pad_regions(xyxy: np.ndarray, pad: float, width: int, height: int) -> np.ndarray:
    """Integer crop regions (N, 4) ``x1, y1, x2, y2`` (x2, y2 exclusive): each box grown by
    ``pad`` of its width and height on every side, clipped to the frame, at least 1 px.

    >>> pad_regions(np.array([[10., 20., 30., 60.]]), 0.25, 100, 100).tolist()
    [[5, 10, 35, 70]]
    >>> pad_regions(np.array([[-5., 90., 20., 130.]]), 0.5, 100, 100).tolist()
    [[0, 70, 33, 100]]
    """
    b = np.asarray(xyxy, np.float64).reshape(-1, 4)
    w = np.maximum(b[:, 2] - b[:, 0], 1.0)
    h = np.maximum(b[:, 3] - b[:, 1], 1.0)
    out = np.stack([np.floor(b[:, 0] - pad * w), np.floor(b[:, 1] - pad * h),
                    np.ceil(b[:, 2] + pad * w), np.ceil(b[:, 3] + pad * h)], axis=1)
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
    out[:, 0] = np.minimum(out[:, 0], width - 1)
    out[:, 1] = np.minimum(out[:, 1], height - 1)
    out[:, 2] = np.maximum(out[:, 2], out[:, 0] + 1)
    out[:, 3] = np.maximum(out[:, 3], out[:, 1] + 1)
    return out.astype(np.int64)


def _iou(boxes: np.ndarray, box: np.ndarray) -> np.ndarray:
    lt = np.maximum(boxes[:, :2], box[:2])
    rb = np.minimum(boxes[:, 2:], box[2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)
    own = float(np.prod(np.clip(box[2:] - box[:2], 0, None)))
    return inter / np.maximum(area + own - inter, 1e-9)


def choose_pose(pose_boxes: np.ndarray, scores: np.ndarray, person_box: np.ndarray,
                min_iou: float) -> int:
    """Index of the pose that belongs to the person, or -1.

    ``pose_boxes`` (n, 4) are the boxes of the poses found in a crop and ``person_box`` the
    person's box, in the same coordinates. The pose whose box overlaps the person's box most
    (IoU) is the person's, when that IoU reaches ``min_iou``; a tie goes to the more
    confident pose. A bigger or more confident pose of someone else in the crop never wins
    over a better-matching one.

    >>> person = np.array([10., 10., 30., 60.])
    >>> poses = np.array([[0., 0., 80., 80.], [11., 9., 31., 58.]])   # a big bystander, the person
    >>> choose_pose(poses, np.array([0.95, 0.6]), person, 0.3)
    1
    >>> choose_pose(poses[:1], np.array([0.95]), person, 0.3)
    -1
    """
    boxes = np.asarray(pose_boxes, np.float64).reshape(-1, 4)
    if not len(boxes):
        return -1
    iou = _iou(boxes, np.asarray(person_box, np.float64).reshape(4))
    order = np.lexsort((-np.asarray(scores, np.float64).reshape(-1), -iou))
    best = int(order[0])
    return best if iou[best] >= min_iou else -1


def to_video(kpts: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Keypoints (17, 3) in crop pixels -> video pixels: shifted by the region's corner and
    clipped to the region (the model saw nothing outside it); confidences kept."""
    out = np.asarray(kpts, np.float32).reshape(-1, 3).copy()
    x1, y1, x2, y2 = (float(v) for v in np.asarray(region).reshape(4))
    out[:, 0] = np.clip(out[:, 0] + x1, x1, x2)
    out[:, 1] = np.clip(out[:, 1] + y1, y1, y2)
    return out


def confident(kpts: np.ndarray, kpt_conf: float) -> np.ndarray:
    """How many keypoints of each pose reach ``kpt_conf``: (..., 17, 3) -> (...) int
    (0 for a frame without keypoints, whose values are NaN)."""
    k = np.asarray(kpts, np.float32)
    return np.sum(np.nan_to_num(k[..., 2], nan=0.0) >= kpt_conf, axis=-1)


def coverage(kpts: np.ndarray, observed: np.ndarray, kpt_conf: float, least: int = 8) -> float:
    """Share of the observed frames (``observed`` (N,) bool) whose keypoints have at least
    ``least`` confident points; NaN without observed frames."""
    obs = np.asarray(observed, bool)
    if not obs.any():
        return float("nan")
    return float(np.mean(confident(np.asarray(kpts)[obs], kpt_conf) >= least))
