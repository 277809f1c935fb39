"""Baseline: Ultralytics ByteTrack (default settings) over MOT15 public detections.

For each sequence under ``../shared/data/mot15`` (relative to the repository, or the folder
given as the first argument), feed ``det.txt`` frame by frame to ``BYTETracker`` with the
arguments of ``ultralytics/cfg/trackers/bytetrack.yaml``, then score the tracks against
``gt.txt`` with ``ptrack.formats.evaluate.evaluate``. Prints one table row per sequence; sequences
whose files are absent are skipped.

Run: ``python bench/mot_baseline.py [MOT15_DIR]``
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ptrack.formats.evaluate import evaluate
from ptrack.boxes import Boxes
from ptrack.formats.mot import read_mot

SEQUENCES = ("TUD-Campus", "TUD-Stadtmitte", "KITTI-17", "ETH-Sunnyday", "ADL-Rundle-6")
COLUMNS = ("HOTA", "MOTA", "IDF1", "IDSW", "coverage", "purity", "precision", "ids_per_subject")


@dataclass
class _Detections:
    """The minimal Results-like object BYTETracker.update reads: xyxy/xywh, conf, cls."""

    xyxy: np.ndarray
    conf: np.ndarray
    cls: np.ndarray

    @property
    def xywh(self) -> np.ndarray:
        """Boxes as centre x, centre y, width, height."""
        wh = self.xyxy[:, 2:] - self.xyxy[:, :2]
        return np.concatenate([self.xyxy[:, :2] + wh / 2, wh], axis=1)

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, index: Any) -> _Detections:
        return _Detections(self.xyxy[index], self.conf[index], self.cls[index])


def _make_tracker() -> Any:
    """A BYTETracker with Ultralytics' default bytetrack.yaml arguments."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    import ultralytics
    import yaml
    from ultralytics.trackers.byte_tracker import BYTETracker
    from ultralytics.utils import IterableSimpleNamespace

    cfg = Path(ultralytics.__file__).parent / "cfg/trackers/bytetrack.yaml"
    args = IterableSimpleNamespace(**yaml.safe_load(cfg.read_text()))
    return BYTETracker(args)


def track(det: Boxes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run ByteTrack over detections; return frames, ids and xyxy boxes of the tracks."""
    tracker = _make_tracker()
    frames, ids, boxes = [], [], []
    num_frames = int(det.frame.max(initial=-1)) + 1
    for t in range(num_frames):
        sel = det.frame == t
        dets = _Detections(
            det.xyxy[sel].astype(np.float64),
            det.conf[sel].astype(np.float64),
            np.zeros(int(sel.sum())),
        )
        out = tracker.update(dets)
        if len(out):
            frames.append(np.full(len(out), t))
            ids.append(out[:, 4].astype(np.int64))
            boxes.append(out[:, :4])
    if not frames:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4))
    return np.concatenate(frames), np.concatenate(ids), np.concatenate(boxes)


def main(root: Path) -> None:
    """Print the baseline table for the sequences found under ``root``."""
    print(f"{'sequence':16}" + "".join(f"{c:>10}" for c in COLUMNS[:-1]) + f"{'ids/subj':>10}")
    for name in SEQUENCES:
        seq = root / name
        if not (seq / "det.txt").is_file() or not (seq / "gt.txt").is_file():
            print(f"{name:16}  skipped: no det.txt/gt.txt under {seq}")
            continue
        gt = read_mot(seq / "gt.txt", kind="gt")
        scores = evaluate(gt, *track(read_mot(seq / "det.txt")))
        print(f"{name:16}" + "".join(_cell(scores[c]) for c in COLUMNS))


def _cell(value: float) -> str:
    """Format one table cell."""
    return f"{value:>10d}" if isinstance(value, int) else f"{value:>10.1f}"


if __name__ == "__main__":
    default = Path(__file__).resolve().parents[2] / "shared/data/mot15"
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
