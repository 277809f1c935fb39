"""`ptrack detect` on a CUDA GPU against Ultralytics `model.track` on the same GPU, and what
limits it.

For each video (a 640x480 one and a 1080p one), on the first ``--frames`` frames:

* decoding alone (``ptrack.detect.video.FrameReader``, the reader thread detect uses), frames/s;
* the network alone (a letterboxed batch already on the GPU), and the detector
  (``ptrack.detect.torch_backend.TorchDetector``: upload, letterbox, network, NMS, boxes back) on
  frames held in memory, fp16 and f32, per batch size;
* ``ptrack detect`` end to end (the CLI, fresh project, crops and store included) per precision
  and batch: frames/s of its loop and of the whole command, and where its main thread waited
  (the run's ``timing``: detector, waiting for frames, waiting for the writer);
* Ultralytics ``model.track`` (same .pt, imgsz 640, ByteTrack) in f32 (its default) and fp16;
* fp16 vs f32 boxes (conf >= 0.25): agreement at IoU 0.5 and 0.9, median IoU, confidence shift.

Ratios are measured in one run on one machine; the GPU and CPU models are printed with them.
Needs torch with CUDA (``--device cpu`` runs the same steps on the CPU, slowly, as a check).

    python bench/gpu_detect.py --videos V480.mp4,V1080.mp4 --model yolov8s.pt [--frames 1000]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import begin, finish, fresh_project, ptrack_cmd, read_frames, run_child, video_info  # noqa: E402


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def rate(fn, frames: int, device: str, min_seconds: float) -> float:
    """frames/s of ``fn()`` (which handles ``frames`` frames), repeated for ``min_seconds``."""
    fn()  # warm-up (cuDNN picks its kernels)
    sync(device)
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += frames
        if time.perf_counter() - t0 >= min_seconds:
            break
    sync(device)
    return n / (time.perf_counter() - t0)


def detector(model: str, device: str, precision: str, shape_of: tuple[int, int], conf: float = 0.1):
    from ptrack.settings import load_defaults
    from ptrack.detect.detector import load_detector

    cfg = dict(load_defaults()["detect"])
    cfg.update(model=model, classes="all", backend="torch", device=device, precision=precision,
               conf=conf)
    return load_detector(cfg, width=shape_of[1], height=shape_of[0], project=Path("."))


def decode_rate(path: Path, frames: int) -> float:
    from ptrack.detect.video import FrameReader

    t0 = time.perf_counter()
    n = 0
    with FrameReader(path, start=0, end=frames) as reader:
        for _ in reader:
            n += 1
    return n / (time.perf_counter() - t0)


def bare(frames: list, model: str, device: str, batches: list[int], seconds: float) -> dict:
    """Network alone and the whole detector call, per precision and batch, frames/s."""
    import torch

    from ptrack.detect.torch_backend import letterbox_batch

    out: dict = {}
    shape_of = frames[0].shape[:2]
    precisions = ["fp16", "f32"] if device.startswith("cuda") else ["f32"]
    for precision in precisions:
        det = detector(model, device, precision, shape_of)
        for b in batches:
            chunk = (frames * (-(-b // len(frames))))[:b]
            with torch.inference_mode():
                x = letterbox_batch(torch.from_numpy(np.stack(chunk)).to(device),
                                    det.imgsz)
                x = x.half() if precision == "fp16" else x

                def net():
                    det.net(x)

                net_fps = rate(net, b, device, seconds)
            groups = [frames[i:i + b] for i in range(0, len(frames) - b + 1, b)] or [chunk]

            def call():
                for g in groups:
                    det(g)

            det_fps = rate(call, sum(len(g) for g in groups), device, seconds)
            ms = steps(det, frames, b, device)
            out[f"{precision} b{b}"] = {"network": round(net_fps, 1), "detector": round(det_fps, 1),
                                        "ms_per_frame": ms}
            print(f"  bare {precision} batch {b}: network {net_fps:.0f}, detector {det_fps:.0f} "
                  f"frames/s; ms per frame {ms}", flush=True)
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return out


def steps(det, frames: list, b: int, device: str, rounds: int = 10) -> dict:
    """Milliseconds per frame of each step of one detector call (synchronised between steps)."""
    import torch

    from ptrack.detect.torch_backend import batch_nms, letterbox_batch

    chunk = (frames * (-(-b // len(frames))))[:b]
    total = dict.fromkeys(("upload", "letterbox", "network", "nms + copy back"), 0.0)
    with torch.inference_mode():
        for r in range(rounds + 1):
            t = [time.perf_counter()]
            x = det.upload(chunk)
            sync(device)
            t.append(time.perf_counter())
            x = letterbox_batch(x, det.imgsz)
            x = x.half() if det.precision == "fp16" else x
            sync(device)
            t.append(time.perf_counter())
            pred = det.net(x)
            pred = pred[0] if isinstance(pred, (list, tuple)) else pred
            sync(device)
            t.append(time.perf_counter())
            batch_nms(pred, conf=det.conf, iou=det.iou, classes=det.classes, max_det=det.max_det)
            t.append(time.perf_counter())
            if r:  # the first round warms up
                for k, a, z in zip(total, t, t[1:]):
                    total[k] += z - a
    return {k: round(1000 * v / (rounds * b), 3) for k, v in total.items()}


def agreement(frames: list, model: str, device: str) -> dict:
    from ptrack.detect import quantize as q
    if not device.startswith("cuda"):
        return {}
    shape_of = frames[0].shape[:2]
    runs = {}
    for precision in ("f32", "fp16"):
        det = detector(model, device, precision, shape_of, conf=0.25)
        runs[precision] = [r for i in range(0, len(frames), 16) for r in det(frames[i:i + 16])]
    figures = q.compare(runs["f32"], runs["fp16"], thr=0.5)
    return {k: round(float(v), 4) for k, v in figures.items()}


def detect_cli(video: Path, model: str, device: str, precision: str, batch: int, frames: int,
               name: str, env: dict | None = None) -> dict:
    project = fresh_project(name)
    child = run_child(env=env, cmd=ptrack_cmd("--project", str(project), "detect", str(video), "--model", model,
                                 "--classes", "all", "--device", device, "--precision", precision,
                                 "--batch", str(batch), "--max-frames", str(frames)))
    with sqlite3.connect(project / "ptrack.db") as db:
        stats = json.loads(db.execute("SELECT stats FROM runs WHERE stage = 'detect' "
                                      "ORDER BY id DESC LIMIT 1").fetchone()[0])
    loop = stats["frames"] / stats["seconds"]
    timing = {k: round(100 * v / stats["seconds"], 1) for k, v in stats["timing"].items()}
    print(f"  ptrack detect {precision} batch {batch}: {loop:.0f} frames/s in its loop, "
          f"{stats['frames'] / child.wall:.0f} for the whole command ({child.wall:.1f} s); "
          f"% of loop: {timing}; {stats['detections']} boxes", flush=True)
    return {"loop_fps": round(loop, 1), "command_fps": round(stats["frames"] / child.wall, 1),
            "command_s": round(child.wall, 2), "timing_pct": timing,
            "detections": stats["detections"], "precision": stats["precision"]["why"]}


def track_rate(video: Path, model: str, device: str, frames: int, half: bool) -> dict:
    """Ultralytics ``model.track`` over the first ``frames`` frames, frames/s (load excluded)."""
    from ptrack.detect.detector import quiet_ultralytics

    quiet_ultralytics()
    from ultralytics import YOLO

    yolo = YOLO(model)
    from ultralytics.cfg import get_cfg

    precision = {"quantize": 16} if "quantize" in vars(get_cfg()) else {"half": True}
    extra = precision if half else {}
    n, t0 = 0, time.perf_counter()
    for _ in yolo.track(source=str(video), stream=True, imgsz=640, device=device, conf=0.1,
                        verbose=False, persist=True, **extra):
        n += 1
        if n == 8:  # the first frames load the model onto the GPU: start the clock after them
            sync(device)
            t0, n0 = time.perf_counter(), n
        if n >= frames:
            break
    sync(device)
    fps = (n - n0) / (time.perf_counter() - t0)
    print(f"  model.track {'fp16' if half else 'f32'}: {fps:.0f} frames/s", flush=True)
    return {"fps": round(fps, 1)}


def gpu_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name(device) if device.startswith("cuda") else "none (CPU)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", required=True, help="comma-separated video paths")
    ap.add_argument("--model", required=True)
    ap.add_argument("--device", default="cuda:0")
    ap.add_argument("--frames", type=int, default=1000, help="frames of each video to time")
    ap.add_argument("--bare-frames", type=int, default=128)
    ap.add_argument("--batches", default="8,32")
    ap.add_argument("--seconds", type=float, default=2.0, help="least time per bare figure")
    ap.add_argument("--skip-bare", action="store_true", help="no network / detector-alone figures")
    ap.add_argument("--track-precisions", default="f32,fp16", help="model.track runs (f32 is "
                    "its default; fp16 measured slower on an H200)")
    args = ap.parse_args()
    report, t0 = begin("gpu_detect")
    import torch

    report.details["gpu"] = gpu_name(args.device)
    report.details["torch"] = torch.__version__
    print(f"GPU: {report.details['gpu']}; torch {torch.__version__}", flush=True)
    batches = [int(b) for b in args.batches.split(",")]
    cuda = args.device.startswith("cuda")
    for video in map(Path, args.videos.split(",")):
        info = video_info(video)
        tag = f"{info['height']}p"
        frames = min(args.frames, info["frames"])
        print(f"{video.name}: {info['width']}x{info['height']}, timing {frames} frames", flush=True)
        res: dict = {"video": video.name, "size": f"{info['width']}x{info['height']}",
                     "frames": frames}
        res["decode_fps"] = round(decode_rate(video, frames), 1)
        print(f"  decoding alone: {res['decode_fps']:.0f} frames/s", flush=True)
        held = read_frames(video, args.bare_frames)
        res["bare"] = {} if args.skip_bare else bare(held, args.model, args.device, batches,
                                                     args.seconds)
        res["fp16_vs_f32"] = agreement(held, args.model, args.device)
        if res["fp16_vs_f32"]:
            print(f"  fp16 vs f32 boxes: {res['fp16_vs_f32']}", flush=True)
        del held
        runs = [("fp16" if cuda else "f32", b) for b in batches] + ([("f32", batches[-1])] if cuda else [])
        res["detect"] = {f"{p} b{b}": detect_cli(video, args.model, args.device, p, b, frames,
                                                 f"gpu-{tag}-{p}-{b}") for p, b in runs}
        if cuda:  # the same with one crop-encoding thread (what the writer had before)
            p, b = runs[1] if len(runs) > 1 else runs[0]
            res["detect"][f"{p} b{b} 1 crop thread"] = detect_cli(
                video, args.model, args.device, p, b, frames, f"gpu-{tag}-{p}-{b}-1",
                env={"PTRACK_CROP_THREADS": "1"})
        res["track"] = {p: track_rate(video, args.model, args.device, frames, p == "fp16")
                        for p in args.track_precisions.split(",") if cuda or p == "f32"}
        best = max(res["detect"].values(), key=lambda r: r["loop_fps"])
        best_track = max(r["fps"] for r in res["track"].values())
        report.add(f"{tag} detect (best) / model.track (best)", best["loop_fps"] / best_track, "x",
                   note=f"{best['loop_fps']:.0f} vs {best_track:.0f} frames/s")
        if res["bare"]:
            report.add(f"{tag} detect / its own detector alone", best["loop_fps"] /
                       max(v["detector"] for v in res["bare"].values()), "x")
        report.add(f"{tag} decoding alone", res["decode_fps"], "frames/s")
        report.details[tag] = res
    finish(report, t0)
    print(json.dumps(report.details, default=str))


if __name__ == "__main__":
    main()
