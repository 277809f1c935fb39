"""Score ptrack tracklets (track only) and persons (track + group) on MOTChallenge sequences.

Usage: python bench/tune_group.py [--data DIR] [--seq NAME ...] [--subsample K] [--appearance]
                                  [--set section.key=value ...]

Prints, per sequence, HOTA / IDF1 / coverage / purity / precision for the tracklets and the persons,
next to the baseline (Ultralytics ByteTrack defaults on det.txt), and the means. Detections are the
public ``det.txt``; no images, so grouping runs on motion and geometry alone (descriptors=None).
``--appearance`` adds colour descriptors (ptrack.persons.appearance) for sequences that come with a video
(<seq>/<seq>.mp4). ``--subsample K`` keeps every K-th frame (and divides the frame rate by K) to
check low-fps behaviour.
"""

from __future__ import annotations

import argparse
import configparser
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ptrack.formats.evaluate import evaluate  # noqa: E402
from ptrack.persons.group import group_tracklets  # noqa: E402
from ptrack.boxes import Boxes  # noqa: E402
from ptrack.settings import load_defaults  # noqa: E402
from ptrack.formats.mot import mot_boxes, read_mot  # noqa: E402
from ptrack.settings import Settings  # noqa: E402
from ptrack.persons.track import track_detections  # noqa: E402

SEQS = ["TUD-Campus", "TUD-Stadtmitte", "KITTI-17", "ETH-Sunnyday", "ADL-Rundle-6"]
BASELINE = {  # HOTA, IDF1, coverage, purity, precision
    "TUD-Campus": (47.7, 67.2, 52.2, 100.0, 77.2),
    "TUD-Stadtmitte": (51.5, 71.0, 60.7, 95.8, 94.9),
    "KITTI-17": (45.5, 67.4, 58.6, 95.4, 85.3),
    "ETH-Sunnyday": (55.6, 74.1, 83.2, 98.3, 89.9),
    "ADL-Rundle-6": (35.3, 45.0, 43.4, 77.2, 66.2),
}
KEYS = ("HOTA", "IDF1", "coverage", "purity", "precision")


def load_config() -> dict:
    """The shipped settings (``ptrack/default.yaml``) as a nested plain dict, to override."""
    return load_defaults()


def subsample_gt(gt: Boxes, k: int) -> Boxes:
    """Ground truth of every k-th frame, renumbered 0, 1, 2, ..."""
    g = gt[gt.frame % k == 0]
    return mot_boxes(g.frame // k, g.tracklet, g.xyxy, g.conf, keep=g.data["keep"], cls=g.cls,
                     visibility=g.data["visibility"])


def tracklet_descriptors(video: Path, tid, frame, xyxy, conf, k: int = 8) -> dict[int, np.ndarray]:
    """Appearance descriptors per tracklet from the sequence's video (k samples each)."""
    import cv2

    from ptrack.persons.appearance import crop_descriptor, pick_descriptor_samples
    from ptrack.persons.sampling import covered_share

    covered = covered_share(frame, xyxy)
    want: dict[int, list[int]] = {}
    for t in np.unique(tid[tid >= 0]):
        rows = np.flatnonzero(tid == t)
        pick = pick_descriptor_samples(frame[rows], xyxy[rows], conf[rows], k, covered=covered[rows])
        for r in rows[pick]:
            want.setdefault(int(frame[r]), []).append(int(r))
    crops: dict[int, list[np.ndarray]] = {}
    cap = cv2.VideoCapture(str(video))
    f = 0
    while want:
        ok, img = cap.read()
        if not ok:
            break
        for r in want.pop(f, []):
            x0, y0, x1, y1 = np.clip(xyxy[r], 0, [img.shape[1], img.shape[0]] * 2).astype(int)
            if x1 - x0 >= 2 and y1 - y0 >= 4:
                crops.setdefault(int(tid[r]), []).append(img[y0:y1, x0:x1])
        f += 1
    return {t: crop_descriptor(c) for t, c in crops.items()}


def run_sequence(seq_dir: Path, cfg: dict | Settings, subsample: int = 1, appearance: bool = False) -> dict:
    settings = cfg if isinstance(cfg, Settings) else Settings.from_dict(cfg)
    ini = configparser.ConfigParser()
    ini.read(seq_dir / "seqinfo.ini")
    fps = float(ini["Sequence"]["frameRate"]) / subsample
    det = read_mot(seq_dir / "det.txt", kind="det")
    gt = read_mot(seq_dir / "gt.txt", kind="gt")
    frame, xyxy, conf = det.frame, det.xyxy.astype(np.float32), det.conf.astype(np.float32)
    if subsample > 1:
        m = frame % subsample == 0
        frame, xyxy, conf = frame[m] // subsample, xyxy[m], conf[m]
        gt = subsample_gt(gt, subsample)
    t0 = time.perf_counter()
    tid = track_detections(frame, xyxy, conf, None, fps=fps, settings=settings.track)
    t1 = time.perf_counter()
    desc = None
    video = seq_dir / f"{seq_dir.name}.mp4"
    if appearance and video.exists() and subsample == 1:
        desc = tracklet_descriptors(video, tid, frame, xyxy, conf, settings.group.appearance_samples)
    g = group_tracklets(tid, frame, xyxy, conf, fps=fps, descriptors=desc, settings=settings.group)
    t2 = time.perf_counter()
    m = tid >= 0
    msf = max(5, 50 // subsample)  # a subject needs 50 frames at the original rate
    trk = evaluate(gt, frame[m], tid[m], xyxy[m], min_subject_frames=msf)
    per = evaluate(gt, g.frame, g.person, g.xyxy, min_subject_frames=msf)
    return {"tracklets": trk, "persons": per, "n_tracklets": int(tid.max(initial=0)),
            "n_persons": len(np.unique(g.person)), "t_track": t1 - t0, "t_group": t2 - t1}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = Path(os.environ.get("PTRACK_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--data", default=str(shared / "mot15"), help="folder of the MOT15 sequences")
    ap.add_argument("--seq", nargs="*", default=SEQS)
    ap.add_argument("--subsample", type=int, default=1)
    ap.add_argument("--appearance", action="store_true", help="use colour descriptors where the sequence has a video")
    ap.add_argument("--set", nargs="*", default=[], help="section.key=value overrides, e.g. group.max_gap_s=4")
    args = ap.parse_args(argv)
    cfg = load_config()
    for s in args.set:
        key, value = s.split("=", 1)
        section, name = key.split(".", 1)
        try:
            v = float(value) if "." in value or "e" in value.lower() else int(value)
        except ValueError:
            v = {"true": True, "false": False}.get(value.lower(), value)
        cfg[section][name] = v
    head = f"{'sequence':15s} {'what':9s} " + " ".join(f"{k[:5]:>6s}" for k in KEYS) + "   n   time"
    print(head)
    means = {"baseline": [], "tracklets": [], "persons": []}
    for name in args.seq:
        r = run_sequence(Path(args.data) / name, cfg, args.subsample, args.appearance)
        rows = [("baseline", BASELINE.get(name, (np.nan,) * 5), "", "")]
        rows.append(("tracklets", [r["tracklets"][k] for k in KEYS], r["n_tracklets"], r["t_track"]))
        rows.append(("persons", [r["persons"][k] for k in KEYS], r["n_persons"], r["t_group"]))
        for what, vals, n, t in rows:
            means[what].append(vals)
            ts = f"{t:6.2f}s" if t != "" else ""
            print(f"{name:15s} {what:9s} " + " ".join(f"{v:6.2f}" for v in vals) + f" {n!s:>4s} {ts}")
    for what, vals in means.items():
        print(f"{'MEAN':15s} {what:9s} " + " ".join(f"{v:6.2f}" for v in np.nanmean(np.array(vals, float), axis=0)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
