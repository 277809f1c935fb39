"""Which precision is fastest on this machine: measured, never assumed.

``--precision auto`` on the OpenVINO backend runs the fastest precision that passes its
accuracy gate (f32 is the reference; bf16 where the CPU has it; INT8 when its gate passes). How
fast each one is depends on the CPU (INT8 was 1.44x f32 on an AVX2 CPU without bf16, but not
faster than bf16 on a Zen 4 with AVX-512 BF16), so each candidate is timed on the video's first
frames, interleaved in rounds so a change of load hits all of them alike, and the figures are
cached per model, input shape and CPU (a JSON file beside the model's export): the timing is
paid once per model, shape and CPU, not per video.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

SPEED_VERSION = 1
"""Bump when the measurement changes what its figures mean (old caches are measured anew)."""
ROUNDS = 3
FRAMES = 8  # one batch, as detect runs on the CPU


def cpu_name() -> str:
    """The CPU's model name (``lscpu``'s), with the number of cores this process may use."""
    name = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    name = name or platform.processor() or platform.machine()
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return f"{name} x{cores}"


def cache_file(f32_dir: Path) -> Path:
    """Where the figures for this export (model and input shape) are kept."""
    return Path(f32_dir) / "speed.json"


def cached_speeds(path: Path, cpu: str, candidates: Sequence[str]) -> dict[str, float] | None:
    """Frames/s per candidate measured earlier on this CPU, or None (none, another CPU, other
    candidates, or a damaged file)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    entry = data.get(cpu) if isinstance(data, dict) else None
    if not isinstance(entry, dict) or entry.get("version") != SPEED_VERSION:
        return None
    fps = entry.get("fps")
    if not isinstance(fps, dict) or set(fps) != set(candidates):
        return None
    if not all(isinstance(v, (int, float)) and v > 0 for v in fps.values()):
        return None
    return {k: float(v) for k, v in fps.items()}


def store_speeds(path: Path, cpu: str, fps: Mapping[str, float]) -> None:
    """Keep the figures for this CPU (written to a temporary file and renamed)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text()) if path.exists() else {}
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    data[cpu] = {"version": SPEED_VERSION, "fps": {k: round(float(v), 3) for k, v in fps.items()},
                 "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError:  # a read-only cache: measure again next time
        tmp.unlink(missing_ok=True)


def time_candidates(runners: Mapping[str, Callable[[], None]], rounds: int = ROUNDS,
                    clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Runs per second of each runner: one warm-up call each, then ``rounds`` rounds in which
    every runner runs once (interleaved, so a change of load hits all alike); the best round of
    each counts (the least disturbed)."""
    for run in runners.values():
        run()
    best = {name: float("inf") for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            t = clock()
            run()
            best[name] = min(best[name], max(clock() - t, 1e-9))
    return {name: 1.0 / seconds for name, seconds in best.items()}


def measured_speeds(path: Path, candidates: Sequence[str],
                    measure: Callable[[], dict[str, float]], cpu: str | None = None
                    ) -> tuple[dict[str, float], bool]:
    """The candidates' speeds on this CPU: from the cache, else ``measure()`` (then cached).
    Returns (frames/s per candidate, whether they came from the cache)."""
    cpu = cpu or cpu_name()
    got = cached_speeds(path, cpu, candidates)
    if got is not None:
        return got, True
    got = measure()
    store_speeds(path, cpu, got)
    return got, False


def fastest(speeds: Mapping[str, float], passing: Sequence[str]) -> str:
    """The fastest of the candidates that passed their gate (f32, the reference, always
    passes); on a tie the earlier in ``passing``."""
    ok = [p for p in passing if p in speeds]
    if not ok:
        raise ValueError("no candidate precision was measured")
    return max(ok, key=lambda p: (speeds[p], -ok.index(p)))


def speeds_text(speeds: Mapping[str, float]) -> str:
    """``f32 5.9, bf16 13.7, int8 11.6 frames/s``."""
    return ", ".join(f"{k} {v:.1f}" for k, v in speeds.items()) + " frames/s"
