"""Crop store: bytes per crop and random-read latency, on projects made by ``ptrack detect``.

For each project ``detect_speed.py`` left (TUD-Stadtmitte 640x480 and the 1080p video; made
here with ``ptrack detect`` when absent, the 1080p one limited to ``--frames`` frames):

* mean JPEG bytes per crop at the default settings (fit inside 256x128, quality 90)
  - bar <= 8 KB (8,192 bytes);
* one crop read at random through ``Store.crop`` (its own LMDB read transaction), for
  ``--reads`` random keys after one warm-up pass over them - median, bar < 1 ms; and the
  same read with the JPEG decoded to pixels (``ptrack.detect.crops.decode``), for information;
* mean bytes when re-encoded at other JPEG qualities (80, 85, 95): the size lever;
* the detect writer alone (``ptrack.detect.loop._Writer``: crops JPEG-encoded, boxes and crops
  committed batch by batch) fed the project's own boxes and frames, in a fresh project:
  frames/s it can take, with one encoding thread and with two, and the share of its time in
  the store's commits (SQLite and LMDB) rather than encoding: what a detector faster than
  that (a GPU) would wait on.

Run: ``python bench/crop_store.py [--reads 2000] [--frames 600]``
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import common  # noqa: E402
from common import Report, finish, median  # noqa: E402


def ensure_project(label: str, video: Path, max_frames: int) -> Path | None:
    """detect_speed's project for ``label`` when it has crops, else a fresh ``ptrack detect``."""
    from ptrack.store import Store

    root = common.WORK / f"detect-{label}"
    if (root / "ptrack.db").exists():
        with Store.open(root, create=False) as store:
            vids = store.videos()
            if vids and store.crop_stats(vids[0].id)[0] > 0:
                return root
    if not video.exists():
        return None
    root = common.fresh_project(f"detect-{label}")
    args = ["--project", str(root), "detect", str(video), "--model", common.MODEL,
            "--classes", common.CLASSES]
    if max_frames:
        args += ["--max-frames", str(max_frames)]
    print(f"making {root} with ptrack detect {video.name} ...", flush=True)
    common.run_child(common.ptrack_cmd(*args), timeout=3600)
    return root


def measure(report: Report, label: str, root: Path, reads: int) -> None:
    import cv2

    from ptrack.detect import crops
    from ptrack.store import Store

    with Store.open(root, create=False) as store:
        v = store.videos()[0]
        count, total = store.crop_stats(v.id)
        keys = store.crop_keys(v.id)
        rng = random.Random(0)
        picks = [rng.choice(keys) for _ in range(reads)]
        for f, d in picks:  # warm-up: the OS page cache, as on any second look
            store.crop(v.id, f, d)
        times, sizes = [], []
        for f, d in picks:
            t = time.perf_counter_ns()
            blob = store.crop(v.id, f, d)
            times.append((time.perf_counter_ns() - t) / 1e6)
            sizes.append(len(blob))
        dec = []
        for f, d in picks[:500]:
            t = time.perf_counter_ns()
            crops.decode(store.crop(v.id, f, d))
            dec.append((time.perf_counter_ns() - t) / 1e6)
        # re-encode a sample at other qualities (same pixels: the stored JPEG decoded once)
        sample = [crops.decode(store.crop(v.id, f, d)) for f, d in picks[:300]]
        shapes = np.array([im.shape[:2] for im in sample])
    requality = {}
    for q in (80, 85, 95):
        requality[q] = float(np.mean([len(cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, q])[1])
                                      for im in sample]))
    stored_q90 = float(np.mean([len(cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, 90])[1])
                                for im in sample]))
    size = f"{v.width}x{v.height}"
    mean_bytes = total / count if count else 0.0
    report.add(f"crops {size}: mean bytes per crop", mean_bytes / 1024, "KB", 8.0, "<=",
               note=f"{count:,} crops, {total / 1e6:.1f} MB; median crop {int(np.median(shapes[:, 0]))}x"
                    f"{int(np.median(shapes[:, 1]))} px")
    report.add(f"crops {size}: random read (Store.crop)", median(times), "ms", 1.0, "<",
               note=f"median of {len(times)}; p99 {np.percentile(times, 99):.3f} ms")
    report.add(f"crops {size}: random read + JPEG decode", median(dec), "ms",
               note=f"median of {len(dec)}")
    report.details[label] = {"project": str(root), "crops": count, "bytes": total,
                             "read_ms_median": median(times),
                             "read_ms_p99": float(np.percentile(times, 99)),
                             "read_decode_ms_median": median(dec),
                             "requality_mean_bytes": {"90 (re-encoded)": stored_q90, **requality}}
    print(f"[{label}] re-encoded mean bytes by JPEG quality: "
          + ", ".join(f"q{q} {b / 1024:.1f} KB" for q, b in
                      [(90, stored_q90), *sorted(requality.items())]), flush=True)


def writer_rate(report: Report, label: str, root: Path, video: Path, batch: int = 8) -> None:
    """The writer alone on the project's boxes and frames (see the module docstring)."""
    import os
    import tempfile

    from ptrack.settings import load_config
    from ptrack.detect.loop import _Writer
    from ptrack.store import Store

    with Store.open(root, create=False) as store:
        v = store.videos()[0]
        det = store.detections(v.id)
    frames = common.read_frames(video, min(300, int(det.frame.max()) + 1))  # 1.8 GB at 1080p
    per_frame = [(det.xyxy[det.frame == i], det.conf[det.frame == i], det.cls[det.frame == i])
                 for i in range(len(frames))]
    cfg = load_config(None)["crops"]
    out = {}
    for threads in (1, 2):
        os.environ["PTRACK_CROP_THREADS"] = str(threads)
        with tempfile.TemporaryDirectory(dir=common.WORK) as tmp, \
                Store.open(Path(tmp) / "p", create=True) as fresh:
            from ptrack.detect.video import probe
            from ptrack.detect.register import register_video

            vid = register_video(fresh, probe(video), lambda *_: None)
            run = fresh.start_run(vid.id, "detect", {})
            writer = _Writer(fresh, vid, run.id, cfg, 0)
            t0 = time.perf_counter()
            for s in range(0, len(frames), batch):
                idx = list(range(s, min(s + batch, len(frames))))
                writer.put((idx, frames[s:s + batch], per_frame[s:s + batch], idx[-1] + 1))
            writer.close()
            wall = time.perf_counter() - t0
        out[threads] = {"fps": len(frames) / wall, "store_share": writer.storing / writer.busy}
        os.environ.pop("PTRACK_CROP_THREADS")
    size = f"{v.width}x{v.height}"
    boxes = len(det) / max(1, len(frames))
    report.add(f"writer alone {size}, 1 crop thread", out[1]["fps"], "frames/s",
               note=f"{boxes:.1f} boxes a frame; store commits {100 * out[1]['store_share']:.0f}% "
                    f"of its time")
    report.add(f"writer alone {size}, 2 crop threads", out[2]["fps"], "frames/s",
               note=f"store commits {100 * out[2]['store_share']:.0f}% of its time")
    report.details[f"{label} writer"] = out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reads", type=int, default=2000)
    ap.add_argument("--frames", type=int, default=600, help="1080p frames to detect when "
                    "detect_speed.py left no project (0 = all)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    report = Report("crop_store")
    report.details["load"] = common.load_note()
    videos = {"480p": (common.TUD_STADTMITTE / "TUD-Stadtmitte.mp4", 0)}
    if common.CLIP_1080_SOURCE.exists():
        videos["1080p"] = (common.make_1080p(), args.frames)
    for label, (video, frames) in videos.items():
        root = ensure_project(label, video, frames)
        if root is None:
            report.skipped += f"no {video}; "
            continue
        measure(report, label, root, args.reads)
        writer_rate(report, label, root, video)
    finish(report, t0)


if __name__ == "__main__":
    main()
