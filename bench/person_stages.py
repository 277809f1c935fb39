"""Person stages at scale: ``track`` + ``group`` + ``rank`` on a 30-minute video's detections.

Builds a project holding 54,000 frames (30 min at 30 fps) of person boxes, about 6.5 a frame,
by repeating the real MOTChallenge ground truth of TUD-Stadtmitte (179 frames, 10 people)
302 times with shifted frames (a new scene every 6 s; the boxes' ids are dropped: the
detections carry no identity, as after ``ptrack detect``). Confidences are drawn from
N(0.7, 0.15) clipped to [0.1, 0.99] with a fixed seed, so ByteTrack's low-score pass has work.
The boxes go in through the store like ``ptrack import`` does (``Store.add_video`` +
``Store.replace_detections`` + a finished detect run). The project is built by
``common.build_stages_project`` (``answers.py``, ``track_speed.py`` and ``levers.py`` reuse it).

By default the project also gets a JPEG crop per box, cut from the sequence's video with
ptrack's own crop settings (each repeat reuses its scene's JPEGs under the shifted keys), so
``group`` reads crops for appearance, and ``show``/``table`` (``answers.py``) have crops to
draw, as in a project made by ``ptrack detect``. ``--no-crops`` makes the import-like project
(appearance off).

Then times the three CLI commands, each in its own process (``ptrack track``, ``ptrack group``,
``ptrack rank``; Python start-up included), twice: first as after ``detect`` (the crops' stored
colour histograms deleted, so ``group`` computes and stores them), then a re-run (it reads
them); and takes each child's peak resident memory from ``wait4``'s rusage (``ru_maxrss``). Bars (issue 13): the three together <= 20 s, peak <= 1 GB
(they were 45 s / 2 GB while ``track`` drove Ultralytics' per-frame ``BYTETracker``).

The project lives under ``PTRACK_BENCH_WORK`` (default /tmp/ptrack-bench), outside the
repository, because it holds MOTChallenge-derived data (non-commercial licence).

Run: ``python bench/person_stages.py [--frames 54000] [--no-crops] [--rebuild]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import Report, finish  # noqa: E402

FRAMES = common.STAGES_FRAMES
SOURCE = common.STAGES_SOURCE
TOTAL_BAR_S = 20.0  # track + group + rank, three CLI processes (issue 13)
PEAK_BAR_GB = 1.0


def forget_histograms(root: Path) -> int:
    """Delete the crops' stored colour histograms (what a first ``group`` after ``detect``
    computes); returns how many there were."""
    from ptrack.persons.appearance import HIST_KEY
    from ptrack.store import Store

    with Store.open(root, create=False) as store:
        v = store.videos()[0]
        n = store.count_embeddings(v.id, HIST_KEY)
        with store.meta.conn:
            store.meta.conn.execute("DELETE FROM embeddings WHERE video_id = ? AND model = ?",
                                    (v.id, HIST_KEY))
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=FRAMES)
    ap.add_argument("--no-crops", action="store_true", help="import-like project, no crops")
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--build-only", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    report = Report("person_stages" if not args.no_crops else "person_stages_nocrops")
    report.details["load"] = common.load_note()
    missing = common.have(SOURCE / "gt.txt", SOURCE / "TUD-Stadtmitte.mp4")
    if missing:
        report.skipped = missing
        finish(report, t0)
        return
    root, info = common.build_stages_project(args.frames, not args.no_crops, args.rebuild)
    print(f"project {root}: {info['detections']:,} detections over {args.frames:,} frames "
          f"({info['per_frame']:.2f} a frame), built in {info['build_s']} s "
          f"(detections inserted in {info['insert_s']} s)", flush=True)
    report.details["project"] = {"path": str(root), **info}
    if args.build_only:
        finish(report, t0)
        return
    # twice: the first after detect (group computes and stores the sampled crops' colour
    # histograms), then a re-run (the same tracklets sample the same crops: read back)
    runs = {}
    for run in ("first", "re-run"):
        if run == "first" and not args.no_crops:
            print(f"  {forget_histograms(root):,} stored colour histograms deleted first", flush=True)
        print(f" {run}:", flush=True)
        runs[run] = common.time_stages(root)
    label = f"{args.frames // 1000}k frames" + (", no crops" if args.no_crops else "")
    for run, stages in runs.items():
        total = sum(s["wall"] for s in stages.values())
        peak = max(s["maxrss_mb"] for s in stages.values())
        for stage, s in stages.items():
            report.add(f"stages ({label}, {run}): {stage}", s["wall"], "s",
                       note=f"{s['inside_s']} s inside; peak {s['maxrss_mb']:,.0f} MB")
        report.add(f"stages ({label}, {run}): track+group+rank", total, "s", TOTAL_BAR_S, "<=",
                   note="3 CLI processes, start-up included")
        report.add(f"stages ({label}, {run}): peak memory", peak / 1024, "GB", PEAK_BAR_GB, "<=",
                   note="max ru_maxrss of the 3")
    report.details["stages"] = runs
    finish(report, t0)


if __name__ == "__main__":
    main()
