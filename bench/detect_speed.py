"""Detection throughput: ``ptrack detect`` end to end against what a user would otherwise run.

Three rates on the same video, each measured in a fresh child process, all steady-state: timed
from the end of the first batch (first frame for model.track), which pays the one-off warm-up
of the first inferences (about 1 s with OpenVINO), to the end of the run:

* **ptrack detect** - ``ptrack.detect.detect_video`` (what the CLI calls), end to end: decode
  in the reader thread, inference, crops JPEG-encoded and committed to the store by the writer
  thread; timed from its first progress callback to its return (the last commit included).
  Its whole-loop rate (``DetectSummary.fps``, warm-up included) and the CLI's wall clock for
  the whole command (Python start, model load, probe, commit) are printed too. The model load
  and the one-time OpenVINO export (done by a warm-up run) are in neither.
* **Ultralytics model.track** - ``YOLO(pt).track(source, stream=True, imgsz=640)``, the same
  ``.pt`` and image size, default settings otherwise: what a user would run instead. Timed from
  its first result to its ``--track-frames``-th (it is slow: a few hundred frames).
* **bare inference** - ptrack's own backend (``ptrack.detector.load_detector``) called on
  batches of ``detect.batch`` frames already decoded in memory (``--bare-frames``, default 240,
  or the whole clip if shorter): the ceiling for the pipeline.

Bars: ptrack / model.track >= 5x, ptrack / bare >= 0.9x. Videos: TUD-Stadtmitte (640x480,
179 frames, MOTChallenge, read from ../shared/data) and a 1920x1080 H.264 video generated once
with ffmpeg from the CC BY clip ``one-by-one-person.mp4`` scaled and looped (2,788 frames,
cached in ``bench/out``).

When ``bench/proposals/fast-openvino.patch`` applies to the current code, ptrack with the patch
applied (a patched copy under PTRACK_BENCH_WORK, first on PYTHONPATH) is measured in the same
run, interleaved, and reported as information rows.

Run: ``python bench/detect_speed.py [--repeats 3] [--track-frames 300] [--only 480p|1080p]``
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
def worker_e2e(video: str, project: str, max_frames: int, batch: int, overrides: str) -> None:
    """detect_video on a fresh run (``force``); one JSON line."""
    import resource

    from ptrack.detect import detect_video
    from ptrack.store import Store

    extra = json.loads(overrides) if overrides else {}
    fast = extra.pop("_fast", None)  # levers.py: bench/fastdet.py in place of the predictor
    if fast is not None:
        import fastdet

        fastdet.install(**fast)
    cfg = common.detect_settings(max_frames=max_frames, batch=batch, **extra)
    first: list[tuple[float, int]] = []

    def progress(done: int, total: int) -> None:  # after each batch: note the first one
        if not first:
            first.append((time.perf_counter(), done))

    with Store.open(project) as store:
        s = detect_video(store, Path(video), cfg, force=True, progress=progress, log=lambda m: None)
    t_end = time.perf_counter()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    steady = (s.frames - first[0][1]) / (t_end - first[0][0]) if first and s.frames > first[0][1] else s.fps
    print(json.dumps({"fps": steady, "fps_loop": s.fps, "frames": s.frames, "seconds": s.seconds,
                      "detections": s.detections, "crop_count": s.crop_count,
                      "crop_bytes": s.crop_bytes, "backend": s.backend,
                      "cpu_s": ru.ru_utime + ru.ru_stime}))


def worker_track(video: str, frames: int, imgsz: int) -> None:
    """Ultralytics' own streaming tracker on the same weights; rate after the first frame."""
    from ptrack.detector import find_model, quiet_ultralytics

    quiet_ultralytics()
    from ultralytics import YOLO

    model = YOLO(str(find_model(MODEL)))
    n, t_first = 0, 0.0
    for _ in model.track(source=video, stream=True, imgsz=imgsz, verbose=False):
        n += 1
        if n == 1:
            t_first = time.perf_counter()
        if n >= frames:
            break
    dt = time.perf_counter() - t_first
    import torch

    print(json.dumps({"fps": (n - 1) / dt if dt > 0 else 0.0, "frames": n, "seconds": dt,
                      "torch_threads": torch.get_num_threads()}))


def worker_bare(video: str, project: str, frames: int, batch: int, width: int, height: int,
                overrides: str) -> None:
    """load_detector on pre-decoded frames, batches of ``batch``; rate after the first batch."""
    import ptrack.detector as D

    extra = json.loads(overrides) if overrides else {}
    fast = extra.pop("_fast", None)
    if fast is not None:
        import fastdet

        fastdet.install(**fast)
    images = common.read_frames(Path(video), frames)
    info = common.video_info(Path(video))
    cfg = common.detect_settings(batch=batch, **extra)["detect"]
    det = D.load_detector(cfg, width=width or info["width"], height=height or info["height"],
                        project=Path(project))
    t0 = time.perf_counter()
    boxes = sum(len(r[0]) for r in det(images[:batch]))  # the first batch pays the warm-up
    t1 = time.perf_counter()
    for i in range(batch, len(images), batch):
        boxes += sum(len(r[0]) for r in det(images[i:i + batch]))
    t2 = time.perf_counter()
    print(json.dumps({"fps": (len(images) - batch) / (t2 - t1), "fps_loop": len(images) / (t2 - t0),
                      "frames": len(images), "seconds": t2 - t0,
                      "boxes": boxes, "backend": det.backend, "imgsz": list(det.imgsz)}))


# ---------------------------------------------------------------------------- measuring
def tree_env(tree: Path | None) -> dict | None:
    """Child environment running ptrack from ``tree`` (a patched copy) instead of the repo."""
    return {"PYTHONPATH": str(tree)} if tree else None


def e2e(video: Path, project: Path, *, max_frames: int = 0, batch: int = 8,
        overrides: dict | None = None, tree: Path | None = None) -> dict:
    child = run_child(python_worker(SCRIPT, "e2e", str(video), str(project), str(max_frames),
                                    str(batch), json.dumps(overrides or {})), env=tree_env(tree))
    out = child.json()
    out["wall"] = child.wall
    out["maxrss_mb"] = child.maxrss_mb
    return out


def bare(video: Path, project: Path, frames: int, *, batch: int = 8, width: int = 0,
         height: int = 0, overrides: dict | None = None, tree: Path | None = None) -> dict:
    child = run_child(python_worker(SCRIPT, "bare", str(video), str(project), str(frames),
                                    str(batch), str(width), str(height),
                                    json.dumps(overrides or {})), env=tree_env(tree))
    return child.json()


def track(video: Path, frames: int, imgsz: int = 640) -> dict:
    return run_child(python_worker(SCRIPT, "track", str(video), str(frames), str(imgsz)),
                     timeout=3600).json()


def cli_wall(video: Path, project: Path) -> float:
    """The whole ``ptrack detect`` command, as a user runs it (startup and model load in)."""
    child = run_child(common.ptrack_cmd("--project", str(project), "detect", str(video),
                                        "--model", MODEL, "--classes", common.CLASSES, "--force"))
    return child.wall


def measure_video(report: Report, label: str, video: Path, *, repeats: int, track_frames: int,
                  bare_frames: int, e2e_repeats: int, proposal: Path | None = None,
                  proposal_name: str = "", max_frames: int = 0) -> None:
    info = common.video_info(video)
    project = common.fresh_project(f"detect-{label}")
    print(f"\n[{label}] {video.name}: {info['width']}x{info['height']}, {info['frames']} frames; "
          f"project {project}", flush=True)
    e2e(video, project, max_frames=8)  # warm-up: exports the OpenVINO model once (cached)
    rates, bares, runs = [], [], []
    p_rates, p_bares, p_runs = [], [], []
    for r in range(max(repeats, e2e_repeats)):  # interleaved, so background load hits all alike
        for tree, rs, bs, rn, tag in ((None, rates, bares, runs, ""),
                                      (proposal, p_rates, p_bares, p_runs, " +patch")):
            if tree is None and tag:
                continue
            if r < e2e_repeats:
                run = e2e(video, project, tree=tree, max_frames=max_frames)
                rn.append(run)
                rs.append(run["fps"])
                print(f"  ptrack detect{tag:7s} {run['fps']:6.1f} frames/s  ({run['frames']} frames; "
                      f"whole loop {run['fps_loop']:.1f} frames/s in {run['seconds']:.1f} s; "
                      f"{run['detections']} boxes, {run['backend']})", flush=True)
            if r < repeats:
                b = bare(video, project, bare_frames, tree=tree)
                bs.append(b["fps"])
                print(f"  bare inference{tag:6s} {b['fps']:6.1f} frames/s  ({b['frames']} frames, "
                      f"whole loop {b['fps_loop']:.1f}; input {b['imgsz'][1]}x{b['imgsz'][0]})",
                      flush=True)
    t = track(video, min(track_frames, info["frames"]))
    print(f"  model.track     {t['fps']:6.1f} frames/s  ({t['frames']} frames, torch threads "
          f"{t['torch_threads']})", flush=True)
    wall = cli_wall(video, project) if not max_frames else float("nan")
    print(f"  CLI wall        {wall:6.1f} s for the whole `ptrack detect --force` "
          f"({info['frames'] / wall:.1f} frames/s including startup and model load)", flush=True)
    ours, ceiling = median(rates), median(bares)
    size = f"{info['width']}x{info['height']}"
    report.add(f"detect {size}: ptrack detect", ours, "frames/s",
               note=f"median of {len(rates)}: " + ", ".join(f"{x:.1f}" for x in rates))
    report.add(f"detect {size}: bare inference", ceiling, "frames/s",
               note=f"median of {len(bares)}: " + ", ".join(f"{x:.1f}" for x in bares))
    report.add(f"detect {size}: Ultralytics model.track", t["fps"], "frames/s",
               note=f"{t['frames']} frames")
    report.add(f"detect {size}: ptrack / model.track", ours / t["fps"], "x", 5.0, ">=")
    report.add(f"detect {size}: ptrack / bare inference", ours / ceiling, "x", 0.9, ">=")
    if p_rates:
        pr, pb = median(p_rates), median(p_bares)
        tag = f"with proposals/{proposal_name}.patch"
        report.add(f"detect {size}: ptrack detect {tag}", pr, "frames/s",
                   note=f"{pr / ours:.2f}x as shipped; runs " + ", ".join(f"{x:.1f}" for x in p_rates))
        report.add(f"detect {size}: bare inference {tag}", pb, "frames/s",
                   note="runs " + ", ".join(f"{x:.1f}" for x in p_bares))
        report.add(f"detect {size}: ptrack / model.track {tag}", pr / t["fps"], "x",
                   note="bar 5x applies once merged")
        report.add(f"detect {size}: ptrack / bare inference {tag}", pr / pb, "x",
                   note="bar 0.9x applies once merged")
        report.details[label + "+patch"] = {"ptrack_runs": p_runs, "bare_fps": p_bares}
    report.details[label] = {"video": str(video), **info, "ptrack_runs": runs, "bare_fps": bares,
                             "track": t, "cli_wall_s": wall, "project": str(project)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="bare-inference runs (median)")
    ap.add_argument("--e2e-repeats", type=int, default=0,
                    help="ptrack detect runs (median); default 3 on 640x480, 1 on 1080p")
    ap.add_argument("--track-frames", type=int, default=300)
    ap.add_argument("--bare-frames", type=int, default=240, help="frames held in memory")
    ap.add_argument("--only", choices=["480p", "1080p"])
    ap.add_argument("--max-frames", type=int, default=0, help="ptrack detect only the first N "
                    "frames (a quick check; 0 = the whole video)")
    ap.add_argument("--proposal", default="fast-openvino",
                    help="also measure ptrack with bench/proposals/NAME.patch applied ('' = no)")
    args = ap.parse_args()
    tree = common.patched_tree(args.proposal) if args.proposal else None
    extra = {"proposal": tree, "proposal_name": args.proposal, "max_frames": args.max_frames}
    t0 = time.perf_counter()
    report = Report("detect_speed")
    report.details["load"] = common.load_note()
    if args.only != "1080p":
        video = common.TUD_STADTMITTE / "TUD-Stadtmitte.mp4"
        if video.exists():
            measure_video(report, "480p", video, repeats=args.repeats, track_frames=args.track_frames,
                          bare_frames=args.bare_frames, e2e_repeats=args.e2e_repeats or 3, **extra)
        else:
            report.skipped += f"no {video}; "
    if args.only != "480p":
        if common.CLIP_1080_SOURCE.exists():
            video = common.make_1080p()
            measure_video(report, "1080p", video, repeats=args.repeats,
                          track_frames=args.track_frames, bare_frames=args.bare_frames,
                          e2e_repeats=args.e2e_repeats or 1, **extra)
        else:
            report.skipped += f"no {common.CLIP_1080_SOURCE}; "
    finish(report, t0)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        kind, rest = sys.argv[2], sys.argv[3:]
        if kind == "e2e":
            worker_e2e(rest[0], rest[1], int(rest[2]), int(rest[3]), rest[4])
        elif kind == "track":
            worker_track(rest[0], int(rest[1]), int(rest[2]))
        elif kind == "bare":
            worker_bare(rest[0], rest[1], int(rest[2]), int(rest[3]), int(rest[4]), int(rest[5]),
                        rest[6])
        sys.exit(0)
    main()
