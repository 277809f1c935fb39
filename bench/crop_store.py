"""Crop store: bytes per crop and random-read latency, on projects made by ``ptrack detect``.

For each project ``detect_speed.py`` left (TUD-Stadtmitte 640x480 and the 1080p video; made
here with ``ptrack detect`` when absent, the 1080p one limited to ``--frames`` frames):

* mean JPEG bytes per crop at the default settings (fit inside 256x128, quality 90)
  - bar <= 8 KB (8,192 bytes);
* one crop read at random through ``Store.crop`` (its own LMDB read transaction), for
  ``--reads`` random keys after one warm-up pass over them - median, bar < 1 ms; and the
  same read with the JPEG decoded to pixels (``ptrack.crops.decode``), for information;
* mean bytes when re-encoded at other JPEG qualities (80, 85, 95): the size lever.

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

    from ptrack import crops
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
    finish(report, t0)


if __name__ == "__main__":
    main()
