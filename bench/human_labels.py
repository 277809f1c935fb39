"""Rebuild the box-level human ground truth in ``tests/data/labels/humans/`` from its labels.

Each ``<clip>.json`` there names the clip (under ``../shared/data``), the detector and the
label tracker whose tracklets were labelled by eye (contact sheets of each tracklet's crops),
and which human each tracklet shows. This script detects the clip into a project under
``PTRACK_BENCH_WORK`` (once), tracks it with the label tracker settings, checks every labelled
tracklet still starts where the labels say, and writes ``<clip>.gt.txt``: MOTChallenge ground
truth (1-based frame, human id, left, top, width, height, 1, -1, -1, -1), one box per human
per frame (the more confident where a human's tracklets overlap). The gt files are committed,
so scoring never depends on this script or on a tracker version.

    PYTHONPATH=. python bench/human_labels.py OneLeaveShopReenter1cor [--check]

``--check`` compares with the committed gt instead of writing it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, SHARED, WORK, ptrack_cmd  # noqa: E402
from ptrack.formats.mot import write_mot  # noqa: E402
from ptrack.persons.track import track_detections  # noqa: E402

LABELS = REPO / "tests" / "data" / "labels" / "humans"


def human_boxes(frame, det_conf, tid, labels: dict) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the detections that carry a human, and each one's human id (1-based, in the
    order of ``labels["humans"]``); a human's second box in a frame (overlapping tracklets)
    is dropped for the more confident one.

    Args:
        frame: 0-based frame of each detection, (N,).
        det_conf: Confidence of each detection, (N,).
        tid: Label-tracker tracklet id of each detection, (N,), -1 = none.
        labels: The clip's label JSON (``humans``: name -> description; ``tracklets``: id ->
            ``{"human": name | None, "segments": [[first, last, name | None], ...]}``).
    """
    names = list(labels["humans"])
    human = np.zeros(len(frame), np.int64)
    for t, entry in labels["tracklets"].items():
        rows = np.flatnonzero(tid == int(t))
        segments = entry.get("segments") or [[-1, 10**9, entry.get("human")]]
        for first, last, name in segments:
            if name is None or name == "?":
                continue
            inside = rows[(frame[rows] >= first) & (frame[rows] <= last)]
            human[inside] = names.index(name) + 1
    rows = np.flatnonzero(human > 0)
    order = rows[np.lexsort((-det_conf[rows], human[rows], frame[rows]))]
    key = frame[order] * 1000 + human[order]
    first = np.r_[True, key[1:] != key[:-1]]
    keep = np.sort(order[first])
    return keep, human[keep]


def _project(labels: dict, stem: str) -> tuple[Path, Path]:
    video = SHARED / labels["video"]
    project = WORK / "human-labels" / labels["model_key"]
    args = ["detect", str(video), "--model", labels["detect"]["model"], "--classes",
            labels["detect"]["classes"], "-p", str(project)]
    if labels["detect"].get("max_frames"):
        args += ["--max-frames", str(labels["detect"]["max_frames"])]
    subprocess.run(ptrack_cmd(*args), check=True, cwd=REPO)
    return project, video


def build(stem: str, check: bool = False) -> int:
    from ptrack.store import Store

    labels = json.loads((LABELS / f"{stem}.json").read_text())
    project, video = _project(labels, stem)
    with Store.open(project, create=False) as store:
        v = store.video(Path(video).stem)
        det = store.meta.detections(v.id)
        fps = v.fps
    tid = track_detections(det.frame, det.xyxy, det.conf, fps=fps,
                           settings=SimpleNamespace(**labels["label_track"]))
    for t, entry in labels["tracklets"].items():
        rows = np.flatnonzero(tid == int(t))
        if not len(rows) or int(det.frame[rows].min()) != entry["first_frame"]:
            print(f"tracklet {t} does not start at frame {entry['first_frame']}: the labels no "
                  "longer fit these detections", file=sys.stderr)
            return 1
    keep, human = human_boxes(det.frame, det.conf, tid, labels)
    out = LABELS / f"{stem}.gt.txt"
    target = out.with_suffix(".new") if check else out
    write_mot(target, det.frame[keep], human, det.xyxy[keep], np.ones(len(keep)))
    if check:
        same = target.read_text() == out.read_text()
        target.unlink()
        print(f"{stem}: {'same as' if same else 'DIFFERS from'} {out.relative_to(REPO)}")
        return 0 if same else 1
    print(f"{stem}: {len(keep)} boxes of {len(labels['humans'])} humans -> {out.relative_to(REPO)}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="*", help="clip stems (default: every label file)")
    ap.add_argument("--check", action="store_true", help="compare with the committed gt")
    a = ap.parse_args()
    stems = a.clips or sorted(p.stem for p in LABELS.glob("*.json") if ".map" not in p.name)
    return max((build(s, a.check) for s in stems), default=0)


if __name__ == "__main__":
    raise SystemExit(main())
