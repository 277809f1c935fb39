"""Detection throughput: ``ptrack detect`` per precision against what a user would otherwise run.

Every rate comes from a fresh child process that imports the product and measures it (no
second detector here); all are steady state, timed from the end of the first batch (first
frame for the Ultralytics paths), which pays the warm-up of the first inferences:

* **ptrack detect** (per precision) - ``ptrack.detect.loop.detect_video`` as the CLI calls it
  (``common.detect_e2e``): decode in the reader thread, inference, crops encoded and committed by the writer thread.
* **bare inference** (per precision, and for the default one per OpenVINO hint and batch) -
  ``ptrack.detect.detector.load_detector(...)`` called on frames already decoded in memory
  (``common.detect_bare``): the ceiling of the pipeline.
* **Ultralytics model.track** - ``YOLO(pt).track(source, stream=True, imgsz=640)``, same ``.pt``.
* **Ultralytics exported OpenVINO** - what an informed Ultralytics user does on a CPU:
  ``YOLO(pt).export(format="openvino", imgsz=640)`` then ``YOLO(exported).track(...)``. Its
  export time is printed beside it.

Runs are interleaved (A B C A B C ...) and each figure is the median, so background load hits
all alike; the machine, its load average and OpenVINO's CPU capabilities are printed and saved.
The INT8 model is built (once, cached under PTRACK_CACHE_DIR, by default the bench work dir)
before the timed runs; its accuracy gate's figures are reported.

Targets (issue 13): ptrack detect >= 6x model.track (without AMX; 8x with), >= 2x the exported
OpenVINO track path, >= 0.95x bare inference of the precision it runs.

Run: ``python bench/detect_speed.py [--repeats 3] [--track-frames 100] [--only 480p|1080p]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import MODEL, Report, finish, median, python_worker, run_child  # noqa: E402

SCRIPT = Path(__file__).resolve()


# ------------------------------------------------------------------------------- workers
def worker_track(video: str, frames: int, weights: str) -> None:
    """Ultralytics' own streaming tracker on ``weights`` (a .pt or an exported folder)."""
    from ptrack.detect.detector import find_model, quiet_ultralytics

    quiet_ultralytics()
    import torch
    from ultralytics import YOLO

    export_s = 0.0
    if weights == "pt":
        model = YOLO(str(find_model(MODEL)))
    else:  # export the .pt to OpenVINO the way the Ultralytics docs say, then track with it
        import shutil
        import tempfile

        tmp = Path(tempfile.mkdtemp(dir=common.WORK, prefix="ultra-export-"))
        local = tmp / "model.pt"
        shutil.copyfile(find_model(MODEL), local)
        t0 = time.perf_counter()
        exported = YOLO(str(local)).export(format="openvino", imgsz=640)
        export_s = time.perf_counter() - t0
        model = YOLO(exported, task="detect")
    n, t_first = 0, 0.0
    for _ in model.track(source=video, stream=True, imgsz=640, verbose=False):
        n += 1
        if n == 1:
            t_first = time.perf_counter()
        if n >= frames:
            break
    dt = time.perf_counter() - t_first
    print(json.dumps({"fps": (n - 1) / dt if dt > 0 else 0.0, "frames": n, "export_s": export_s,
                      "torch_threads": torch.get_num_threads()}))


# ---------------------------------------------------------------------------- measuring
def track(video: Path, frames: int, weights: str = "pt") -> dict:
    return run_child(python_worker(SCRIPT, "track", str(video), str(frames), weights),
                     timeout=3600).json()


def precisions() -> list[str]:
    from ptrack.detect.openvino_backend import cpu_capabilities

    caps = cpu_capabilities()
    return ["f32"] + (["bf16"] if "BF16" in caps else []) + ["int8"]


def measure_video(report: Report, label: str, video: Path, *, repeats: int, track_frames: int,
                  bare_frames: int, max_frames: int) -> None:
    from ptrack.detect.openvino_backend import cpu_capabilities

    info = common.video_info(video)
    project = common.fresh_project(f"detect-{label}")
    size = f"{info['width']}x{info['height']}"
    print(f"\n[{label}] {video.name}: {size}, {info['frames']} frames; OpenVINO CPU capabilities "
          f"{', '.join(cpu_capabilities())}", flush=True)
    t0 = time.perf_counter()
    first = common.detect_bare(video, 16, precision="int8")  # builds the export and the INT8 model (cached)
    print(f"  INT8 model ready ({time.perf_counter() - t0:.0f} s incl. any export/quantization); "
          f"gate {json.dumps(first['gate'])}", flush=True)
    auto = common.detect_bare(video, 16)
    print(f"  auto runs {auto['precision']}: {auto['why']}", flush=True)
    precs = precisions()
    variants = {f"bare {p}": ("bare", {"precision": p}) for p in precs}
    variants.update({f"detect {p}": ("e2e", {"precision": p}) for p in precs})
    d = auto["precision"]
    variants.update({f"bare {d} latency hint": ("bare", {"precision": d, "ov_hint": "latency"}),
                     f"bare {d} batch 1": ("bare", {"precision": d, "batch": 1}),
                     "model.track": ("track", "pt"), "exported openvino track": ("track", "exported")})
    rates: dict[str, list[float]] = {k: [] for k in variants}
    extra: dict[str, dict] = {}
    for r in range(repeats):
        for name, (kind, arg) in variants.items():
            if kind == "bare":
                out = common.detect_bare(video, bare_frames, **arg)
            elif kind == "e2e":
                out = common.detect_e2e(video, project, max_frames=max_frames, **arg)
            else:
                out = track(video, min(track_frames, info["frames"]), arg)
            rates[name].append(out["fps"])
            extra[name] = out
            print(f"  [{r + 1}/{repeats}] {name:28s} {out['fps']:6.2f} frames/s", flush=True)
    med = {k: median(v) for k, v in rates.items()}
    for name, v in rates.items():
        report.add(f"{size}: {name}", med[name], "frames/s",
                   note="median of " + ", ".join(f"{x:.2f}" for x in v)
                        + (f"; export {extra[name]['export_s']:.0f} s" if "export_s" in extra[name]
                           and extra[name]["export_s"] else ""))
    for p in precs:
        report.add(f"{size}: detect {p} / bare {p}", med[f"detect {p}"] / med[f"bare {p}"], "x",
                   0.95, ">=")
    for p in precs[1:]:
        report.add(f"{size}: bare {p} / bare f32", med[f"bare {p}"] / med["bare f32"], "x")
        report.add(f"{size}: detect {p} / detect f32", med[f"detect {p}"] / med["detect f32"], "x")
    best = f"detect {d}"
    report.add(f"{size}: detect ({d}, auto) / model.track", med[best] / med["model.track"], "x",
               6.0, ">=")
    report.add(f"{size}: detect ({d}, auto) / exported openvino track",
               med[best] / med["exported openvino track"], "x", 2.0, ">=")
    report.add(f"{size}: detect f32 / model.track", med["detect f32"] / med["model.track"], "x")
    report.details[label] = {"video": str(video), **info, "rates": rates, "last": extra,
                             "gate": first["gate"], "auto": auto["why"],
                             "capabilities": cpu_capabilities()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--track-frames", type=int, default=100)
    ap.add_argument("--bare-frames", type=int, default=120, help="frames held in memory")
    ap.add_argument("--only", choices=["480p", "1080p"], default="480p")
    ap.add_argument("--max-frames", type=int, default=0, help="ptrack detect only the first N "
                    "frames (0 = the whole video)")
    args = ap.parse_args()
    report, t0 = common.begin("detect_speed")
    kw = {"repeats": args.repeats, "track_frames": args.track_frames,
          "bare_frames": args.bare_frames, "max_frames": args.max_frames}
    if args.only == "480p":
        video = common.TUD_STADTMITTE / "TUD-Stadtmitte.mp4"
        if video.exists():
            measure_video(report, "480p", video, **kw)
        else:
            report.skipped += f"no {video}; "
    else:
        if common.CLIP_1080_SOURCE.exists():
            measure_video(report, "1080p", common.make_1080p(), **{**kw, "max_frames": kw["max_frames"] or 600})
        else:
            report.skipped += f"no {common.CLIP_1080_SOURCE}; "
    report.details["load_end"] = common.load_note()
    finish(report, t0)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        kind, rest = sys.argv[2], sys.argv[3:]
        if kind == "track":
            worker_track(rest[0], int(rest[1]), rest[2])
        sys.exit(0)
    main()
