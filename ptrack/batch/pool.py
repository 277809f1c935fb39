"""Local worker processes: each takes video after video, on its own share of the cores (or its
own GPU), writing a shard project per video. A worker that dies mid-video (killed, out of
memory) is replaced and the video tried again, resuming from the shard's committed batches."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import signal
import time
from pathlib import Path
from typing import Callable

from ptrack.batch.job import JobSpec, Task, keep_models, run_in_shard, thread_env
from ptrack.batch.progress import RemoteProgress

Finish = Callable[[Task, dict | None, str | None], None]  # (task, row, error); in the driver


def cpu_list() -> list[int]:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def gpu_list() -> list[str]:
    """NVIDIA GPUs visible to this process (``CUDA_VISIBLE_DEVICES`` honoured), without
    importing torch."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g for g in (s.strip() for s in visible.split(",")) if g and g != "-1"]
    root = Path("/proc/driver/nvidia/gpus")
    try:
        return [str(i) for i in range(len(list(root.iterdir())))] if root.is_dir() else []
    except OSError:
        return []


def pins_gpus(device: str) -> bool:
    """Does each worker get a GPU of its own? Yes unless the device names one (or the CPU)."""
    return str(device) in ("auto", "cuda", "cuda:0", "0")


def default_workers(device: str = "auto") -> int:
    """What the machine can feed: one worker per GPU; on the CPU one per 4 cores (OpenVINO
    keeps 4 cores busy with one video), so 1 on 2 cores."""
    if pins_gpus(device):
        gpus = gpu_list()
        if gpus:
            return len(gpus)
    return max(1, len(cpu_list()) // 4)


def core_shares(n: int) -> list[list[int]]:
    """The cores split into ``n`` contiguous shares (shared round-robin when n > cores)."""
    cpus = cpu_list()
    if n >= len(cpus):
        return [[cpus[i % len(cpus)]] for i in range(n)]
    k = len(cpus) // n
    return [cpus[i * k:(i + 1) * k] if i < n - 1 else cpus[i * k:] for i in range(n)]


def _worker_main(wid: int, cores: list[int], gpu: str | None, spec: JobSpec, tasks: mp.Queue,
                 events: mp.Queue) -> None:
    """A worker process: video after video until it gets None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver stops us with SIGTERM

    def terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    os.environ.update(thread_env(len(cores)))
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, cores)
    keep_models()
    try:
        while True:
            task = tasks.get()
            if task is None:
                return
            progress = RemoteProgress(events.put, task.index)
            try:
                row = run_in_shard(spec, task, Path(task.shard), progress)
                events.put(("done", task.index, row))
            except KeyboardInterrupt:
                events.put(("interrupted", task.index))
                return
            except Exception as exc:  # noqa: BLE001  one video's failure is reported, not fatal
                from ptrack.errors import PtrackError

                message = exc.message if isinstance(exc, PtrackError) else \
                    f"unexpected {type(exc).__name__}: {exc}"
                events.put(("failed", task.index, message))
    except KeyboardInterrupt:
        return


class _Slot:
    def __init__(self, ctx, wid: int, cores: list[int], gpu: str | None, spec: JobSpec,
                 events: mp.Queue) -> None:
        self.tasks = ctx.Queue()
        self.busy: Task | None = None
        self.process = ctx.Process(target=_worker_main, name=f"ptrack-worker-{wid}",
                                   args=(wid, cores, gpu, spec, self.tasks, events), daemon=True)
        self.process.start()


def run_local(tasks: list[Task], spec: JobSpec, workers: int, *, handle, finish: Finish,
              log: Callable[[str], None], retries: int = 2, device: str = "auto") -> list[Task]:
    """Run ``tasks`` on ``workers`` processes; ``handle`` gets progress events, ``finish`` each
    finished or failed task (in this thread). Returns the tasks left undone by a Ctrl-C (then
    re-raises KeyboardInterrupt after the workers have stopped and their batches are stored)."""
    ctx = mp.get_context("spawn")  # no fork of a process with threads
    events: mp.Queue = ctx.Queue()
    n = max(1, min(workers, len(tasks)))
    shares = core_shares(n)
    gpus = gpu_list() if pins_gpus(device) else []
    gpu_of = [gpus[i % len(gpus)] if gpus else None for i in range(n)]
    pending = list(tasks)
    by_index = {t.index: t for t in tasks}
    slots = [_Slot(ctx, i, shares[i], gpu_of[i], spec, events) for i in range(n)]
    left = len(tasks)
    try:
        while left:
            for slot in slots:
                if slot.busy is None and pending and slot.process.is_alive():
                    slot.busy = pending.pop(0)
                    slot.tasks.put(slot.busy)
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                event = None
            if event is not None:
                kind, index = event[0], event[1]
                if kind in ("done", "failed", "interrupted"):
                    slot = next((s for s in slots if s.busy and s.busy.index == index), None)
                    if slot is not None:
                        slot.busy = None
                    if kind == "interrupted":
                        raise KeyboardInterrupt
                    left -= 1
                    if kind == "done":
                        finish(by_index[index], event[2], None)
                    else:
                        finish(by_index[index], None, event[2])
                else:
                    handle(event)
                continue
            for i, slot in enumerate(slots):  # a worker lost mid-video: replace it, try again
                if slot.process.is_alive():
                    continue
                code = slot.process.exitcode
                task, slot.busy = slot.busy, None
                slots[i] = _Slot(ctx, i, shares[i], gpu_of[i], spec, events)
                if task is None:
                    continue
                handle(("stop", task.index))
                task.attempts += 1
                if task.attempts > retries:
                    left -= 1
                    finish(task, None, f"its worker died {task.attempts} times (last exit code "
                                       f"{code}); out of memory?")
                else:
                    log(f"{task.name}: its worker died (exit code {code}); trying again "
                        f"(try {task.attempts + 1} of {retries + 1}, resuming from its "
                        f"committed batches)")
                    pending.insert(0, task)
        for slot in slots:
            slot.tasks.put(None)
        for slot in slots:
            slot.process.join(timeout=30)
        return []
    except KeyboardInterrupt:
        undone = [s.busy for s in slots if s.busy is not None] + pending
        _stop(slots)
        # results the workers finished while stopping still count
        with contextlib.suppress(queue.Empty, OSError, ValueError):
            while True:
                event = events.get(timeout=0.1)
                if event[0] == "done" and by_index[event[1]] in undone:
                    undone.remove(by_index[event[1]])
                    finish(by_index[event[1]], event[2], None)
        raise
    finally:
        for slot in slots:
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join(timeout=5)


def _stop(slots: list[_Slot], wait_s: float = 60.0) -> None:
    """SIGTERM every worker (a detect stores its batches and stops), then wait for them."""
    for slot in slots:
        if slot.process.is_alive() and slot.process.pid:
            with contextlib.suppress(OSError):
                os.kill(slot.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    for slot in slots:
        slot.process.join(timeout=max(0.1, deadline - time.monotonic()))
