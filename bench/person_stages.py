"""Person stages at scale: ``track`` + ``group`` + ``rank`` on a 30-minute video's detections.

Builds a project holding 54,000 frames (30 min at 30 fps) of person boxes, about 6.5 a frame,
by repeating the real MOTChallenge ground truth of TUD-Stadtmitte (179 frames, 10 people)
302 times with shifted frames (a new scene every 6 s; the boxes' ids are dropped: the
detections carry no identity, as after ``ptrack detect``). Confidences are drawn from
N(0.7, 0.15) clipped to [0.1, 0.99] with a fixed seed, so ByteTrack's low-score pass has work.
The boxes go in through the store like ``ptrack import`` does (``Store.add_video`` +
``Store.replace_detections`` + a finished detect run).

By default the project also gets a JPEG crop per box, cut from the sequence's video with
ptrack's own crop settings (each repeat reuses its scene's JPEGs under the shifted keys), so
``group`` reads crops for appearance, and ``show``/``table`` (``answers.py``) have crops to
draw, as in a project made by ``ptrack detect``. ``--no-crops`` makes the import-like project
(appearance off).

Then times the three CLI commands, each in its own process (``ptrack track``, ``ptrack group``,
``ptrack rank``; Python start-up included), twice: first as after ``detect`` (the crops' stored
colour histograms deleted, so ``group`` computes and stores them), then a re-run (it reads
them); and takes each child's peak resident memory from ``wait4``'s rusage (``ru_maxrss``). Bars (issue 13): the three together <= 20 s, peak <= 1 GB
(they were 45 s / 2 GB while ``track`` drove Ultralytics' per-frame ``BYTETracker``).

The project lives under ``PTRACK_BENCH_WORK`` (default /tmp/ptrack-bench), outside the
repository, because it holds MOTChallenge-derived data (non-commercial licence).

Run: ``python bench/person_stages.py [--frames 54000] [--no-crops] [--rebuild]``
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import common  # noqa: E402
from common import Report, finish, ptrack_cmd, run_child  # noqa: E402

FRAMES = 54_000
FPS = 30.0
SOURCE = common.TUD_STADTMITTE
TOTAL_BAR_S = 20.0  # track + group + rank, three CLI processes (issue 13)
PEAK_BAR_GB = 1.0


def project_path(frames: int, with_crops: bool) -> Path:
    return common.WORK / f"stages-{frames}{'' if with_crops else '-nocrops'}"


def scene_boxes() -> tuple[np.ndarray, np.ndarray]:
    """(frame, xyxy) of TUD-Stadtmitte's ground truth boxes to score, frame-sorted."""
    from ptrack.formats.mot import read_mot

    gt = read_mot(SOURCE / "gt.txt", kind="gt")
    keep = gt.data["keep"]
    frame, xyxy = gt.frame[keep].astype(np.int64), gt.xyxy[keep].astype(np.float32)
    order = np.lexsort((xyxy[:, 0], frame))
    return frame[order], xyxy[order]


def build(frames: int, with_crops: bool, rebuild: bool = False) -> tuple[Path, dict]:
    """The benchmark project (reused when it exists with the same recipe)."""
    from ptrack.detect import crops as cropmod
    from ptrack.settings import load_config
    from ptrack.store import Store, crop_key

    root = project_path(frames, with_crops)
    recipe = {"frames": frames, "fps": FPS, "source": "TUD-Stadtmitte/gt.txt", "crops": with_crops,
              "version": 2}
    stamp = root / "bench-recipe.json"
    if not rebuild and stamp.exists() and json.loads(stamp.read_text()).get("recipe") == recipe:
        return root, json.loads(stamp.read_text())
    t0 = time.perf_counter()
    root = common.fresh_project(root.name)
    f0, b0 = scene_boxes()
    scene_len = int(f0.max()) + 1
    copies = -(-frames // scene_len)
    frame = (f0[None, :] + scene_len * np.arange(copies)[:, None]).reshape(-1)
    xyxy = np.tile(b0, (copies, 1))
    keep = frame < frames
    frame, xyxy = frame[keep], xyxy[keep]
    det = np.arange(len(frame)) - np.searchsorted(frame, frame)
    rng = np.random.default_rng(0)
    conf = np.clip(rng.normal(0.7, 0.15, len(frame)), 0.1, 0.99).astype(np.float32)
    rows = list(zip(frame.tolist(), det.tolist(), *(xyxy[:, i].astype(float).tolist() for i in range(4)),
                    conf.astype(float).tolist(), [0] * len(frame)))
    with Store.open(root) as store:
        video = store.add_video(name="mot-30min", path=str(SOURCE / "TUD-Stadtmitte.mp4"),
                                size=0, fingerprint=f"bench:{json.dumps(recipe, sort_keys=True)}",
                                fps=FPS, width=640, height=480, frame_count=frames,
                                has_crops=with_crops)
        run = store.start_run(video.id, "detect", {"import": "bench/person_stages.py", **recipe})
        # crops first: once detections of a video with crops are stored, the store takes a missing
        # crops.lmdb for damage and refuses to create it
        crop_bytes = 0
        if with_crops:
            cfg = load_config()["crops"]
            images = common.read_frames(SOURCE / "TUD-Stadtmitte.mp4", scene_len)
            d0 = np.arange(len(f0)) - np.searchsorted(f0, f0)
            jpegs = [cropmod.encode(images[f], b, max_h=cfg["height"], max_w=cfg["width"],
                                    quality=cfg["quality"]) for f, b in zip(f0.tolist(), b0)]
            chunk = []
            for c in range(copies):
                for f, d, jpeg in zip(f0.tolist(), d0.tolist(), jpegs):
                    fr = f + c * scene_len
                    if fr < frames:
                        chunk.append((crop_key(video.id, fr, d), jpeg))
                        crop_bytes += len(jpeg)
                if len(chunk) > 20_000:
                    store.put_crops(chunk)
                    chunk = []
            store.put_crops(chunk)
        t1 = time.perf_counter()
        n = store.replace_detections(video.id, rows)
        insert_s = time.perf_counter() - t1
        store.finish_run(run.id, "done", {"detections": n, "frames_covered": frames})
    info = {"recipe": recipe, "detections": n, "per_frame": n / frames, "copies": copies,
            "build_s": round(time.perf_counter() - t0, 1), "insert_s": round(insert_s, 2),
            "crop_bytes": crop_bytes}
    stamp.write_text(json.dumps(info, indent=2))
    return root, info


def forget_histograms(root: Path) -> int:
    """Delete the crops' stored colour histograms (what a first ``group`` after ``detect``
    computes); returns how many there were."""
    from ptrack.persons.appearance import HIST_KEY
    from ptrack.store import Store

    with Store.open(root, create=False) as store:
        v = store.videos()[0]
        n = store.count_embeddings(v.id, HIST_KEY)
        with store.meta.conn:
            store.meta.conn.execute("DELETE FROM embeddings WHERE video_id = ? AND model = ?",
                                    (v.id, HIST_KEY))
    return n


def time_stages(root: Path) -> dict:
    """Each stage's CLI in its own process: wall, internal seconds, peak RSS."""
    out = {}
    for stage in ("track", "group", "rank"):
        child = run_child(ptrack_cmd("--project", str(root), stage), timeout=3600)
        m = re.search(r"done in ([0-9.]+) s \((.*)\)", child.stdout)
        out[stage] = {"wall": child.wall, "maxrss_mb": child.maxrss_mb,
                      "inside_s": float(m.group(1)) if m else None,
                      "counts": m.group(2) if m else child.stdout.strip()[-200:]}
        print(f"  ptrack {stage:5s} {child.wall:6.1f} s wall ({out[stage]['inside_s']} s inside), "
              f"peak {child.maxrss_mb:,.0f} MB: {out[stage]['counts']}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=FRAMES)
    ap.add_argument("--no-crops", action="store_true", help="import-like project, no crops")
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--build-only", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    report = Report("person_stages" if not args.no_crops else "person_stages_nocrops")
    report.details["load"] = common.load_note()
    missing = common.have(SOURCE / "gt.txt", SOURCE / "TUD-Stadtmitte.mp4")
    if missing:
        report.skipped = missing
        finish(report, t0)
        return
    root, info = build(args.frames, not args.no_crops, args.rebuild)
    print(f"project {root}: {info['detections']:,} detections over {args.frames:,} frames "
          f"({info['per_frame']:.2f} a frame), built in {info['build_s']} s "
          f"(detections inserted in {info['insert_s']} s)", flush=True)
    report.details["project"] = {"path": str(root), **info}
    if args.build_only:
        finish(report, t0)
        return
    # twice: the first after detect (group computes and stores the sampled crops' colour
    # histograms), then a re-run (the same tracklets sample the same crops: read back)
    runs = {}
    for run in ("first", "re-run"):
        if run == "first" and not args.no_crops:
            print(f"  {forget_histograms(root):,} stored colour histograms deleted first", flush=True)
        print(f" {run}:", flush=True)
        runs[run] = time_stages(root)
    label = f"{args.frames // 1000}k frames" + (", no crops" if args.no_crops else "")
    for run, stages in runs.items():
        total = sum(s["wall"] for s in stages.values())
        peak = max(s["maxrss_mb"] for s in stages.values())
        for stage, s in stages.items():
            report.add(f"stages ({label}, {run}): {stage}", s["wall"], "s",
                       note=f"{s['inside_s']} s inside; peak {s['maxrss_mb']:,.0f} MB")
        report.add(f"stages ({label}, {run}): track+group+rank", total, "s", TOTAL_BAR_S, "<=",
                   note="3 CLI processes, start-up included")
        report.add(f"stages ({label}, {run}): peak memory", peak / 1024, "GB", PEAK_BAR_GB, "<=",
                   note="max ru_maxrss of the 3")
    report.details["stages"] = runs
    finish(report, t0)


if __name__ == "__main__":
    main()
