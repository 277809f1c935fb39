"""Ray: the same per-video job on the actors of a Ray cluster (``ray.init(address=...)``; no
address: a cluster on this machine). Each actor loads ptrack once and takes video after video,
writing each video's shard project on its own node's local disk (``$PTRACK_SHARD_DIR``, else
the system's temporary folder). A finished shard comes to the driver as a tar file read in
chunks through Ray's object store (skipped when the actor shares the driver's node), and the
driver combines it. A lost actor or node is replaced and its video tried again (resuming from
the shard when the new actor lands on the same node). Ray is imported only here."""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue as _queue
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Callable

from ptrack.batch.job import JobSpec, Task, keep_models, run_in_shard, thread_env
from ptrack.batch.progress import RemoteProgress
from ptrack.errors import PtrackError

CHUNK = 32 << 20  # bytes of a shard's tar per Ray object
INSTALL = "pip install 'ptrack[ray]' (ray==2.60.*)"


def import_ray():
    """Ray, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise PtrackError(f"--ray needs the Ray package, which is not installed: {INSTALL}") from None
    return ray


def shard_root(project_key: str) -> Path:
    """Where a node keeps shards of one project (local disk)."""
    base = os.environ.get("PTRACK_SHARD_DIR") or os.path.join(tempfile.gettempdir(), "ptrack-shards")
    return Path(base) / project_key


def pack(shard: Path) -> Path:
    """The shard as one tar file beside it (crops are JPEGs: no compression)."""
    out = shard.with_name(shard.name + ".tar")
    with tarfile.open(out, "w") as tar:
        for p in sorted(shard.rglob("*")):
            if p.is_file() and not p.is_symlink():
                tar.add(p, arcname=str(p.relative_to(shard)), recursive=False)
    return out


def unpack(tar_path: Path, dest: Path) -> None:
    """Extract a shard's tar: regular files and folders under ``dest`` only."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with tarfile.open(tar_path) as tar:
        for m in tar.getmembers():
            name = Path(m.name)
            if name.is_absolute() or ".." in name.parts or not (m.isfile() or m.isdir()):
                raise PtrackError(f"a shard from a worker holds an unexpected entry: {m.name!r}")
            if m.isdir():
                (dest / name).mkdir(parents=True, exist_ok=True)
                continue
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(m) as src, open(dest / name, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)


class ShardWorker:
    """The actor's body (made remote in :func:`run_ray`)."""

    def __init__(self, spec: JobSpec, project_key: str, events, cpus: int) -> None:
        os.environ.update(thread_env(cpus))
        self.spec, self.root, self.events = spec, shard_root(project_key), events
        keep_models()  # the model is loaded once and taken video after video

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def process(self, task: Task) -> dict:
        shard = self.root / task.fingerprint
        progress = RemoteProgress(self._send, task.index)
        try:
            row = run_in_shard(self.spec, task, shard, progress)
        except PtrackError as exc:
            return {"error": exc.message}
        except Exception as exc:  # noqa: BLE001  one video's failure is reported, not fatal
            return {"error": f"unexpected {type(exc).__name__}: {exc}"}
        return {"row": row, "shard": str(shard), "node": self.node()}

    def _send(self, event) -> None:
        with contextlib.suppress(Exception):
            self.events.put_nowait(event)

    def pack(self, shard: str) -> int:
        return pack(Path(shard)).stat().st_size

    def read(self, shard: str, offset: int, size: int) -> bytes:
        with open(Path(shard).with_name(Path(shard).name + ".tar"), "rb") as f:
            f.seek(offset)
            return f.read(size)

    def drop(self, shard: str) -> None:
        p = Path(shard)
        shutil.rmtree(p, ignore_errors=True)
        with contextlib.suppress(OSError):
            p.with_name(p.name + ".tar").unlink()


def run_ray(address: str, tasks: list[Task], spec: JobSpec, *, workers: int | None,
            project: Path, handle, finish, log: Callable[[str], None], retries: int = 2) -> None:
    """Run ``tasks`` on Ray actors; ``finish`` gets each task with its shard on this machine
    (``task.shard``). See the module docstring."""
    ray = import_ray()
    from ray.util.queue import Queue

    started = False
    if not ray.is_initialized():
        where = None if address in ("", "local") else address
        try:
            ray.init(address=where, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        except ConnectionError as exc:
            raise PtrackError(f"--ray {address}: no Ray cluster there ({exc})") from None
        started = True
    events = Queue(actor_options={"num_cpus": 0})
    key = hashlib.blake2b(str(project.resolve()).encode(), digest_size=8).hexdigest()
    me = ray.get_runtime_context().get_node_id()
    nodes = [n for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU", 0) >= 1]
    if not nodes:
        raise PtrackError("the Ray cluster has no node with a CPU to run on")
    total = sum(int(n["Resources"]["CPU"]) for n in nodes)
    n_actors = max(1, min(workers or len(nodes), len(tasks)))
    cpus = max(1, (total // n_actors) if workers else int(min(n["Resources"]["CPU"] for n in nodes)))
    remote = ray.remote(num_cpus=cpus, max_restarts=0, scheduling_strategy="SPREAD")(ShardWorker)
    log(f"{len(tasks)} videos on {n_actors} Ray actors ({cpus} CPUs each, {len(nodes)} nodes)")

    def new_actor():
        return remote.remote(spec, key, events, cpus)

    idle = [new_actor() for _ in range(n_actors)]
    pending = list(tasks)
    running: dict = {}  # object ref -> (actor, task)

    def drain() -> None:
        with contextlib.suppress(_queue.Empty, Exception):
            while events.size():
                handle(events.get_nowait())

    try:
        while pending or running:
            while idle and pending:
                actor, task = idle.pop(), pending.pop(0)
                running[actor.process.remote(task)] = (actor, task)
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.25)
            drain()
            for ref in ready:
                actor, task = running.pop(ref)
                try:
                    res = ray.get(ref)
                except ray.exceptions.RayError as exc:  # actor, worker or node lost
                    with contextlib.suppress(Exception):
                        ray.kill(actor)
                    idle.append(new_actor())
                    handle(("stop", task.index))
                    task.attempts += 1
                    if task.attempts > retries:
                        finish(task, None, f"its Ray worker was lost {task.attempts} times "
                                           f"({type(exc).__name__})")
                    else:
                        log(f"{task.name}: its Ray worker was lost ({type(exc).__name__}); "
                            f"trying again (try {task.attempts + 1} of {retries + 1})")
                        pending.insert(0, task)
                    continue
                drain()
                if "error" in res:
                    idle.append(actor)
                    finish(task, None, res["error"])
                    continue
                if res["node"] == me and Path(res["shard"]).is_dir():
                    task.shard = res["shard"]  # same machine: combined where it is
                    finish(task, res["row"], None)
                else:
                    _fetch(ray, actor, res["shard"], Path(task.shard))
                    finish(task, res["row"], None)
                    actor.drop.remote(res["shard"])
                idle.append(actor)
    except KeyboardInterrupt:
        for ref in running:
            with contextlib.suppress(Exception):
                ray.cancel(ref)
        with contextlib.suppress(Exception):
            ray.wait(list(running), num_returns=len(running), timeout=30)
        raise
    finally:
        for actor in idle + [a for a, _ in running.values()]:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        with contextlib.suppress(Exception):
            ray.kill(events.actor)
        if started:
            ray.shutdown()


def _fetch(ray, actor, remote_shard: str, dest: Path) -> None:
    """Copy a shard from its actor's node to ``dest`` on this machine, a chunk at a time."""
    size = ray.get(actor.pack.remote(remote_shard))
    tar_path = dest.with_name(dest.name + ".tar")
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    with open(tar_path, "wb") as f:
        for offset in range(0, size, CHUNK):
            f.write(ray.get(actor.read.remote(remote_shard, offset, CHUNK)))
    try:
        unpack(tar_path, dest)
    finally:
        tar_path.unlink()
