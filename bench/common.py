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
