"""Speed levers: each measured on this machine, kept where it pays (see bench/PERFORMANCE.md).

    shape     OpenVINO input shaped to the video (640x384 for 16:9, 640x480 for 4:3) vs the
              640x640 square: bare inference frames/s, same frames.
    batch     ``ptrack detect --batch`` 1 / 8 / 16 end to end.
    decode    the reader's decode rate alone (OpenCV/FFmpeg), 640x480 and 1080p.
    stride    ``--stride`` 1 / 2 / 3 on TUD-Stadtmitte: detect rate, then ``track``, ``group``
              and ``eval gt.txt``: what the skipped frames cost in coverage (persons level;
              ``track`` steps ByteTrack over the detected frames only; group interpolates).
    overlap   the per-row overlap loop in ``appearance.pick_descriptor_samples`` (group's
              descriptor sampling) vs a vectorised version, on the 54k-frame project.
    inserts   SQLite: executemany in one transaction (Store.replace_detections) vs one
              execute per row vs a commit per 8-frame batch (as detect commits).
    imports   ``python -X importtime -c "import ptrack.cli"`` and what the heavy modules
              would cost if the CLI imported them eagerly.

OpenVINO hint, batch size and precision (f32 / bf16 / INT8) of the product's detector are
measured by ``detect_speed.py`` (bare and end to end, interleaved).

Run: ``python bench/levers.py [--only shape,batch,...] [--repeats 3]``
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
from common import Report, finish, median, python_worker, run_child  # noqa: E402

SCRIPT = Path(__file__).resolve()
ALL = ("shape", "batch", "decode", "stride", "overlap", "inserts", "imports")
VIDEO_480 = common.TUD_STADTMITTE / "TUD-Stadtmitte.mp4"


def best_of(fn, repeats: int) -> tuple[float, list[float]]:
    """Median rate of ``repeats`` runs (and the runs)."""
    runs = [fn() for _ in range(repeats)]
    return median(runs), runs


def project_for(label: str) -> Path:
    """detect_speed's project or a fresh one (exports are shared through PTRACK_CACHE_DIR)."""
    root = common.WORK / f"detect-{label}"
    if not (root / "ptrack.db").exists():
        root = common.fresh_project(f"detect-{label}")
    return root


# ----------------------------------------------------------------------------- levers
def lever_shape(report: Report, repeats: int) -> None:
    for label, video in (("480p", VIDEO_480), ("1080p", common.make_1080p())):
        if not video.exists():
            continue
        info = common.video_info(video)
        shaped, sq = [], []
        common.detect_bare(video, 16, precision="f32")  # exports once (cached)
        common.detect_bare(video, 16, precision="f32", _width=640, _height=640)
        for _ in range(repeats):  # interleaved
            shaped.append(common.detect_bare(video, 160, precision="f32")["fps"])
            sq.append(common.detect_bare(video, 160, precision="f32", _width=640, _height=640)["fps"])
        from ptrack.detect.detector import input_shape

        h, w = input_shape(640, info["width"], info["height"])
        report.add(f"shape {info['width']}x{info['height']}: input {w}x{h} vs 640x640",
                   median(shaped) / median(sq), "x",
                   note=f"{median(shaped):.1f} vs {median(sq):.1f} frames/s bare")


def lever_batch(report: Report, repeats: int) -> None:
    video = VIDEO_480
    project = project_for("480p")
    common.detect_e2e(video, project, max_frames=8)
    rates: dict[int, list[float]] = {1: [], 8: [], 16: []}  # end to end, default precision
    for _ in range(repeats):
        for b in rates:
            rates[b].append(common.detect_e2e(video, project, batch=b)["fps"])
    for b, r in rates.items():
        report.add(f"batch {b} (ptrack detect 640x480)", median(r), "frames/s",
                   note=f"{median(r) / median(rates[8]):.2f}x batch 8")


def worker_decode(video: str, frames: int, threads: int) -> None:
    import cv2

    if threads:
        cv2.setNumThreads(threads)
    cap = cv2.VideoCapture(video)
    t0 = time.perf_counter()
    n = 0
    while n < frames:
        ok, _ = cap.read()
        if not ok:
            break
        n += 1
    print(json.dumps({"fps": n / (time.perf_counter() - t0), "frames": n}))


def lever_decode(report: Report, repeats: int) -> None:
    for video in (VIDEO_480, common.make_1080p()):
        if not video.exists():
            continue
        info = common.video_info(video)
        r = [run_child(python_worker(SCRIPT, "decode", str(video), "600", "0")).json()["fps"]
             for _ in range(repeats)]
        report.add(f"decode {info['width']}x{info['height']} (OpenCV, reader thread alone)",
                   median(r), "frames/s")


def lever_stride(report: Report, repeats: int) -> None:
    gt = common.TUD_STADTMITTE / "gt.txt"
    base_cov = None
    for stride in (1, 2, 3):
        project = common.fresh_project(f"levers-stride{stride}")
        pre = ["--project", str(project)]
        run_child(common.ptrack_cmd(*pre, "detect", str(VIDEO_480), "--model", common.MODEL,
                                    "--classes", common.CLASSES, "--stride", str(stride)))
        fps = [common.detect_e2e(VIDEO_480, project, stride=stride)["fps"]
               for _ in range(repeats)]
        # the e2e runs redo the detections with the same settings: track, group, score them
        run_child(common.ptrack_cmd(*pre, "track"))
        run_child(common.ptrack_cmd(*pre, "group"))
        res = json.loads(run_child(common.ptrack_cmd(*pre, "eval", str(gt), "--json")).stdout)
        p = res.get("persons", {})
        cov = float(p.get("coverage", float("nan")))
        base_cov = cov if stride == 1 else base_cov
        report.add(f"stride {stride}: persons coverage (TUD-Stadtmitte)", cov, "%",
                   note=f"HOTA {float(p.get('HOTA', float('nan'))):.1f}, IDF1 "
                        f"{float(p.get('IDF1', float('nan'))):.1f}, IDSW {p.get('IDSW')}, "
                        f"{cov - base_cov:+.1f} points vs stride 1")
        # detected frames per second of video: stride N processes 1 frame in N
        report.add(f"stride {stride}: video frames/s covered", median(fps) * stride, "frames/s",
                   note=f"{median(fps):.1f} detected frames/s x {stride}")


def _covered_loop(frame, xyxy):
    """Per-row Python loop computing what ``ptrack.persons.sampling.covered_share`` computes: for each
    box, the largest share of its area covered by one other box of its frame."""
    n = len(frame)
    area = np.maximum(np.maximum(xyxy[:, 2] - xyxy[:, 0], 0) * np.maximum(xyxy[:, 3] - xyxy[:, 1], 0), 1e-9)
    covered = np.zeros(n)
    order = np.argsort(frame, kind="stable")
    f = frame[order]
    lo, hi = np.searchsorted(f, frame, "left"), np.searchsorted(f, frame, "right")
    for i in range(n):
        others = order[lo[i]:hi[i]]
        others = others[others != i]
        if len(others) == 0:
            continue
        ob = xyxy[others]
        iw = np.clip(np.minimum(ob[:, 2], xyxy[i, 2]) - np.maximum(ob[:, 0], xyxy[i, 0]), 0, None)
        ih = np.clip(np.minimum(ob[:, 3], xyxy[i, 3]) - np.maximum(ob[:, 1], xyxy[i, 1]), 0, None)
        covered[i] = min(1.0, float((iw * ih).max()) / area[i])
    return covered


def covered_vectorised(frame, xyxy):
    """Same numbers, no Python loop: what ptrack ships (``ptrack.persons.sampling.covered_share``, called
    once over every detection by ``ptrack.persons.descriptors.tracklet_descriptors``)."""
    from ptrack.persons.sampling import covered_share

    return covered_share(frame, xyxy)


def lever_overlap(report: Report, repeats: int) -> None:
    from ptrack.store import Store

    root = common.stages_project_path(common.STAGES_FRAMES, True)
    if not (root / "ptrack.db").exists():
        root, _ = common.build_stages_project(common.STAGES_FRAMES, True)
    with Store.open(root, create=False) as store:
        everyone = store.detections(store.video().id)
    frame, xyxy = everyone.frame, everyone.xyxy.astype(np.float64)
    timings = {}
    results = {}
    for name, fn in (("loop", _covered_loop), ("vectorised", covered_vectorised)):
        t0 = time.perf_counter()
        results[name] = fn(frame, xyxy)
        timings[name] = time.perf_counter() - t0
    same = bool(np.allclose(results["loop"], results["vectorised"]))
    report.add("overlap test (group's descriptor sampling), 54k frames: loop", timings["loop"], "s",
               note=f"{len(frame):,} detections")
    report.add("overlap test, vectorised", timings["vectorised"], "s",
               note=f"{timings['loop'] / timings['vectorised']:.0f}x faster; identical: {same}")


def lever_inserts(report: Report, repeats: int) -> None:
    import tempfile

    from ptrack.store import Store

    rng = np.random.default_rng(0)
    n = 348_776
    frame = np.sort(rng.integers(0, 54_000, n))
    det = np.arange(n) - np.searchsorted(frame, frame)
    box = rng.random((n, 4)) * 600
    rows = list(zip(frame.tolist(), det.tolist(), *(box[:, i].tolist() for i in range(4)),
                    rng.random(n).tolist(), [0] * n))
    out = {}
    with tempfile.TemporaryDirectory(dir=common.WORK) as tmp:
        with Store.open(Path(tmp) / "p") as store:
            v = store.add_video(name="x", path="", size=0, fingerprint="x", fps=30, width=640,
                                height=480, frame_count=54_000, has_crops=False)
            t0 = time.perf_counter()
            store.replace_detections(v.id, rows)
            out["executemany, one transaction (Store.replace_detections)"] = time.perf_counter() - t0
            conn = store.conn
            t0 = time.perf_counter()
            with conn:
                conn.execute("DELETE FROM detections WHERE video_id = ?", (v.id,))
                for r in rows:
                    conn.execute("INSERT INTO detections VALUES (?,?,?,?,?,?,?,?,?)", (v.id, *r))
            out["execute per row, one transaction"] = time.perf_counter() - t0
            with conn:
                conn.execute("DELETE FROM detections WHERE video_id = ?", (v.id,))
            t0 = time.perf_counter()
            bounds = np.searchsorted(frame, np.arange(0, 54_000 + 8, 8))
            for a, b in zip(bounds[:-1], bounds[1:]):
                with conn:
                    conn.executemany("INSERT INTO detections VALUES (?,?,?,?,?,?,?,?,?)",
                                     [(v.id, *r) for r in rows[a:b]])
            out["executemany, a commit per 8-frame batch (as detect)"] = time.perf_counter() - t0
    base = out["executemany, one transaction (Store.replace_detections)"]
    for name, secs in out.items():
        report.add(f"inserts {n:,} detections: {name}", secs, "s",
                   note=f"{secs / base:.1f}x the bulk insert; {n / secs:,.0f} rows/s")


def lever_imports(report: Report, repeats: int) -> None:
    child = run_child([sys.executable, "-X", "importtime", "-c", "import ptrack.cli"])
    rows = []
    for line in child.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            rows.append((int(m.group(2)), len(m.group(3)), m.group(4)))
    total = next((c for c, _, name in rows if name == "ptrack.cli"), None)
    loaded = {name for _, _, name in rows}
    heavy = [m for m in ("torch", "ultralytics", "cv2", "openvino", "scipy", "lmdb", "sqlite_utils",
                         "numpy", "PIL") if m in loaded]
    top = sorted((r for r in rows if "." not in r[2] and not r[2].startswith(("ptrack", "_"))
                  and r[2] not in ("site", "encodings")), reverse=True)[:4]
    report.add("imports: `import ptrack.cli`", total / 1000 if total else None, "ms",
               note="heavy modules loaded: " + (", ".join(heavy) or "none") + "; biggest: "
                    + ", ".join(f"{name} {c / 1000:.0f} ms" for c, _, name in top))
    for mod in ("numpy", "cv2", "torch", "ultralytics", "openvino", "scipy.optimize"):
        walls = [run_child([sys.executable, "-c", f"import {mod}"]).wall for _ in range(repeats)]
        base = [run_child([sys.executable, "-c", "pass"]).wall for _ in range(repeats)]
        lazy = mod.split(".")[0] not in loaded
        report.add(f"imports: eager `import {mod}` would add", (median(walls) - median(base)) * 1000,
                   "ms", note="kept lazy: imported inside the commands that need it" if lazy
                   else "already imported by `import ptrack.cli`")


LEVERS = {"shape": lever_shape, "batch": lever_batch, "decode": lever_decode, "stride": lever_stride,
          "overlap": lever_overlap, "inserts": lever_inserts, "imports": lever_imports}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default=",".join(ALL))
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    t0 = time.perf_counter()
    chosen = [x.strip() for x in args.only.split(",") if x.strip()]
    name = "levers" if set(chosen) == set(ALL) else "levers-" + "-".join(chosen)
    report = Report(name)
    report.details["load"] = common.load_note()
    if not VIDEO_480.exists():
        report.skipped = f"no {VIDEO_480}"
        finish(report, t0)
        return
    for lever in chosen:
        t = time.perf_counter()
        print(f"\n-- lever {lever}", flush=True)
        try:
            LEVERS[lever](report, args.repeats)
        except Exception as exc:  # one broken lever must not hide the others
            report.add(f"{lever}", None, error=f"{type(exc).__name__}: {str(exc)[:200]}")
        print(f"   ({time.perf_counter() - t:.0f} s)", flush=True)
    finish(report, t0)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        kind, rest = sys.argv[2], sys.argv[3:]
        if kind == "decode":
            worker_decode(rest[0], int(rest[1]), int(rest[2]))
        sys.exit(0)
    main()
