"""Many videos: videos per hour with 1 and 2 local workers and on a simulated two-node Ray
cluster, and what the driver pays per video to combine a shard (issue 23).

Makes ``--videos`` distinct copies of TUD-Stadtmitte.mp4 (179 frames, 640x480; each copy gets a
trailing MP4 ``free`` box of its own length, so its content fingerprint differs), then runs
``ptrack run`` on all of them, each configuration in a fresh project and a process of its own
(Python start-up, model load and combining included):

* ``--workers 1``: one process, the videos one after another (the default on 2 cores);
* ``--workers N`` for each N of ``--workers`` (default 2): N worker processes, the cores split;
* ``--ray ADDRESS --workers 2`` on ``ray.cluster_utils.Cluster`` with two nodes of ``--ray-cpus``
  CPUs each on this machine (the head node's actor shares the driver's disk; the other node's
  shard comes back as a tar through Ray's object store, as from another machine).

The OpenVINO export is made once before the timed runs (a warm-up run of one video). Then it
times :func:`ptrack.store.combine.combine` of a one-video shard into a project holding
the other videos (the driver's cost per video) and reports the shard's size (what crosses the
network per video with Ray: the crops' JPEGs and the SQLite rows; the video itself is read by
the worker from its own path).

Projects live under ``PTRACK_BENCH_WORK`` (MOTChallenge-derived data stays outside the
repository). Run: ``python bench/many_videos.py [--videos 4] [--workers 2] [--no-ray]``
"""

from __future__ import annotations

import argparse
import shutil
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import begin, finish, ptrack_cmd, run_child  # noqa: E402

SOURCE = common.TUD_STADTMITTE / "TUD-Stadtmitte.mp4"


def make_videos(n: int) -> list[Path]:
    d = common.WORK / "many-videos" / "videos"
    d.mkdir(parents=True, exist_ok=True)
    data = SOURCE.read_bytes()
    out = []
    for k in range(n):
        p = d / f"v{k:03d}.mp4"
        p.write_bytes(data + struct.pack(">I", 8 + k) + b"free" + b"\0" * k)
        out.append(p)
    return out


def model_args() -> list[str]:
    return ["--model", common.MODEL, "--classes", common.CLASSES]


def timed_run(name: str, videos: list[Path], *extra: str) -> tuple[float, Path, float]:
    """(wall seconds, project, CPU seconds of the command and the workers it waited for)."""
    proj = common.WORK / "many-videos" / name
    shutil.rmtree(proj, ignore_errors=True)
    child = run_child(ptrack_cmd("-p", str(proj), "run", *map(str, videos), *model_args(), *extra),
                      timeout=3600)
    return child.wall, proj, child.user + child.sys


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def combine_cost(videos: list[Path], rounds: int = 3) -> tuple[float, int]:
    """(median seconds to combine a one-video shard into a project of the others, shard bytes)."""
    from ptrack.store import Store
    from ptrack.store.combine import combine

    base = common.WORK / "many-videos"
    _, shard, _ = timed_run("shard", videos[:1])
    _, others, _ = timed_run("others", videos[1:2])
    size = (shard / "ptrack.db").stat().st_size + dir_bytes(shard / "crops.lmdb")
    times = []
    for r in range(rounds):
        target = base / f"combine-{r}"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(others, target)
        with Store.open(target) as store:
            t0 = time.perf_counter()
            combine(store, shard, log=lambda m: None)
            times.append(time.perf_counter() - t0)
    return common.median(times), size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--workers", type=int, nargs="*", default=[2])
    ap.add_argument("--ray-cpus", type=int, default=1, help="CPUs of each simulated Ray node")
    ap.add_argument("--no-ray", action="store_true")
    args = ap.parse_args()
    report, t0 = begin("many_videos")
    missing = common.have(SOURCE)
    if missing:
        report.skipped = missing
        finish(report, t0)
        return
    videos = make_videos(args.videos + 1)
    warm, videos = videos[-1], videos[:-1]
    timed_run("warm-up", [warm])  # the OpenVINO export, once
    report.details["lscpu_model"] = common.machine_summary()["cpu"]
    per_hour = {}
    for n in [1, *args.workers]:
        wall, _, cpu = timed_run(f"workers-{n}", videos, "--workers", str(n))
        per_hour[n] = len(videos) * 3600 / wall
        report.add(f"videos/hour, {n} worker{'s' if n > 1 else ''} ({len(videos)} x 179 frames)",
                   per_hour[n], "videos/h", note=f"{wall:.0f} s; {common.load_note()}")
        report.add(f"CPU seconds per video, {n} worker{'s' if n > 1 else ''}", cpu / len(videos),
                   "s", note="user + sys of the command and its worker processes")
    for n in args.workers:
        report.add(f"{n} workers / 1 worker", per_hour[n] / per_hour[1], "x")
    if not args.no_ray:
        try:
            from ray.cluster_utils import Cluster
        except ImportError:
            report.add("Ray two-node cluster", None, note="ray not installed: pip install 'ptrack[ray]'")
        else:
            cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": args.ray_cpus,
                                                                    "include_dashboard": False})
            cluster.add_node(num_cpus=args.ray_cpus)
            cluster.wait_for_nodes()
            try:
                wall, _, _ = timed_run("ray", videos, "--ray", cluster.address, "--workers", "2")
            finally:
                cluster.shutdown()
            ray_rate = len(videos) * 3600 / wall
            report.add(f"videos/hour, Ray 2 nodes x {args.ray_cpus} CPU, 2 actors", ray_rate,
                       "videos/h", note=f"{wall:.0f} s; {common.load_note()}")
            report.add("Ray 2 nodes / 1 worker", ray_rate / per_hour[1], "x")
    seconds, size = combine_cost(videos)
    report.add("driver: combine one video's shard (179 frames)", seconds, "s")
    report.add("shard size per video (crosses the network with Ray)", size / 1e6, "MB")
    report.details["combine_s_per_frame"] = seconds / 179
    report.details["shard_bytes_per_frame"] = size / 179
    finish(report, t0)


if __name__ == "__main__":
    main()
