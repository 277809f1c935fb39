"""ByteTrack speed: ptrack's numpy ByteTrack against Ultralytics' BYTETracker, same boxes, one run.

Takes the detections of the ``person_stages.py`` project (54,000 frames, 348,776 boxes by
default; built if absent) and tracks them twice in this one process, with ptrack's track
settings: once with ``ptrack.persons.bytetrack.bytetrack`` (what ``ptrack track`` runs), once with
Ultralytics' ``BYTETracker`` driven frame by frame as ptrack did before (the reference of
``tests/test_bytetrack.py``). Prints both times, their ratio, boxes per second and whether the
two trackers' partitions of the boxes into tracks agree (fraction of boxes with the same
track, ids compared after numbering by first appearance). Peak memory of the ``ptrack track``
process is in ``person_stages.py``.

Run: ``python bench/track_speed.py [--frames 54000] [--skip-reference]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import common  # noqa: E402
from common import Report, finish  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=54_000)
    ap.add_argument("--skip-reference", action="store_true", help="time ptrack's tracker only")
    args = ap.parse_args()
    t0 = time.perf_counter()
    report = Report("track_speed")
    report.details["load"] = common.load_note()
    missing = common.have(common.STAGES_SOURCE / "gt.txt", common.STAGES_SOURCE / "TUD-Stadtmitte.mp4")
    if missing:
        report.skipped = missing
        finish(report, t0)
        return
    from ptrack.persons.bytetrack import bytetrack
    from ptrack.settings import load_config
    from ptrack.store import Store
    from ptrack.persons.track import confidence_scale

    root, info = common.build_stages_project(args.frames, with_crops=True)
    with Store.open(root) as store:
        video = store.videos()[0]
        det = store.detections(video.id)
    cfg = load_config()["track"]
    scale = confidence_scale(det.conf, cfg["conf_reference_q"])
    params = dict(track_high_thresh=cfg["track_high_thresh"] * scale,
                  track_low_thresh=cfg["track_low_thresh"] * scale,
                  new_track_thresh=cfg["new_track_thresh"] * scale,
                  track_buffer=max(1, round(cfg["track_buffer_s"] * video.fps)),
                  match_thresh=cfg["match_thresh"], fuse_score=cfg["fuse_score"])
    n = len(det)
    order = np.lexsort((np.arange(n), -det.conf, det.xyxy[:, 3], det.xyxy[:, 2], det.xyxy[:, 1],
                        det.xyxy[:, 0], det.frame))
    f = det.frame[order]
    bounds = np.searchsorted(f, np.arange(f[0], f[-1] + 2))
    xyxy, conf = det.xyxy[order], det.conf[order]
    label = f"{len(bounds) - 1:,} frames, {n:,} boxes"
    print(f"{label}; ptrack's ByteTrack ...", flush=True)
    t1 = time.perf_counter()
    ours = bytetrack(bounds, xyxy, conf, **params)
    ours_s = time.perf_counter() - t1
    report.add(f"ptrack ByteTrack ({label})", ours_s, "s", note=f"{n / ours_s:,.0f} boxes/s")
    if not args.skip_reference:
        from tests.test_bytetrack import _canonical, _reference

        print("Ultralytics BYTETracker ...", flush=True)
        import ultralytics.trackers.byte_tracker  # noqa: F401  (import outside the timing)

        t2 = time.perf_counter()
        ref = _reference(bounds, xyxy, conf, **params)
        ref_s = time.perf_counter() - t2
        agree = float(np.mean(_canonical(ours) == _canonical(ref)))
        report.add(f"Ultralytics BYTETracker ({label})", ref_s, "s", note=f"{n / ref_s:,.0f} boxes/s")
        report.add("speed-up, same run", ref_s / ours_s, "x")
        report.add("boxes with the same track in both", 100 * agree, "%", 99.0, ">=")
    report.details["cpu"] = common.machine_summary().get("cpu")
    finish(report, t0)


if __name__ == "__main__":
    main()
