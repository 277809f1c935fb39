"""Leave-one-video-out cross-validation of the person stages (track + group).

Usage: python bench/cross_validate.py [--data DIR] [--quick] [--no-e2e] [--motion-only]
       [--raw-boxes] [--tune-tracker] [--joint] [--min-purity 92]

Sets: the public ``det.txt`` boxes of the five MOT15 sequences (box-only: motion alone), and
the detections that ``bench/end_to_end.py`` stored for ``TUD-Stadtmitte.mp4`` and
``TUD-Campus.mp4`` with the test model and COCO YOLOv8n (``VIDEO/fall``, ``VIDEO/coco``; run
that script first, else only the public sets are used). Those projects hold crops, so there
``group`` also gets the crops' colour descriptors, exactly as ``ptrack group`` computes them
(``ptrack.persons.descriptors.tracklet_descriptors``; ``--motion-only`` leaves them out). Tracked with
``ptrack.persons.track.track_detections``, joined with ``ptrack.persons.group.group_tracklets``, the persons'
boxes smoothed as ``ptrack group`` stores them and ``export`` / ``eval`` use them
(``--raw-boxes``: the raw ones), scored with ``ptrack.formats.evaluate.evaluate`` against ``gt.txt``
(subjects: 50+ ground-truth frames).

Every grid point (named tracker settings, among them the shipped ones, Ultralytics'
``bytetrack.yaml`` values and the bidirectional tracker, each with the shipped ``group`` values;
and a grid of ``group`` values with the shipped tracker) is scored once on every set. One fold per video: the point with the best mean persons coverage among those
whose mean persons purity on the sets of the other videos is at least ``--min-purity`` (the
highest-purity point when none is) is chosen, and every set of the held-out video is scored
with it. The tracker point is fixed at the shipped one in that choice (``--tune-tracker``
lets it vary: its best point moved from fold to fold and held out worse; the "Held-out means"
table gives every way of choosing). The tables give, per held-out sequence, the tracklets, the
persons and the perfect-merge ceiling of the tracklets (each tracklet relabelled with the
ground-truth identity it matches most, then scored the same way: what ``group`` could reach),
the chosen values per fold, and the cross-validated means; then the same for the shipped
defaults.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (MOT_VIDEOS, e2e_project, load_sequence, perfect_group,  # noqa: E402
                          perfect_merge, smoothed)
from ptrack.settings import load_defaults  # noqa: E402
from ptrack.formats.evaluate import evaluate  # noqa: E402
from ptrack.persons.group import group_tracklets  # noqa: E402
from ptrack.formats.mot import read_mot  # noqa: E402
from ptrack.settings import Settings  # noqa: E402
from ptrack.persons.track import track_detections  # noqa: E402

SEQS = ("TUD-Campus", "TUD-Stadtmitte", "KITTI-17", "ETH-Sunnyday", "ADL-Rundle-6")
E2E_MODELS = ("fall", "coco")
"""Detections of the two TUD videos by these models (``bench/end_to_end.py``'s projects)."""
MIN_SUBJECT_FRAMES = 50
ULTRALYTICS = {"track_high_thresh": 0.25, "track_low_thresh": 0.1, "new_track_thresh": 0.25,
               "track_buffer_s": 1.0, "match_thresh": 0.8, "fuse_score": True}
"""Ultralytics' ``bytetrack.yaml`` (its 30-frame buffer at the 30 fps it assumes = 1 s)."""
# named tracker points (over the shipped ``track:`` values) x group points; the shipped
# values are one of them
TRACK_POINTS = {
    "shipped": {},
    "forward only": {"bidirectional": False},
    "ultralytics abs": {**ULTRALYTICS, "conf_reference_q": 0.0, "bidirectional": False},
    "ultralytics rel": {**ULTRALYTICS, "conf_reference_q": 0.9, "bidirectional": False},
    "match 0.7": {"match_thresh": 0.7, "bidirectional": False},
    "bidir + ultra abs": {**ULTRALYTICS, "conf_reference_q": 0.0, "bidirectional": True},
}
GROUP_GRID = {"pos_tol": (0.1, 0.13), "scale_tol": (0.2, 0.3, 0.5)}
"""The motion gates: every fold chose 0.13 / 0.5 (the shipped values). ``pos_tol`` stops one
step above 0.1: a grid up to 0.25 let the folds take its loosest point, and purity fell on the
held-out video (bench/README.md)."""
JOINT_GRID = {"motion_max_gap_s": (1.0, 1.5, 3.0), "no_link_cost": (1.0, 1.5), "app_max": (0.3, 0.4, 0.5)}
"""``--joint`` adds these to the grid. Tuned per fold (with or without the gates) their best
values moved from fold to fold and held out no better (with the gates: worse, purity 89.7), so
they are fixed at the shipped values. ``app_max`` only moves the sets with crops."""
QUICK_TRACK = {"shipped": {}, "forward only": {"bidirectional": False}}
QUICK_GROUP = {"motion_max_gap_s": (1.5,), "no_link_cost": (1.5,)}
KEYS = ("coverage", "purity", "IDF1")
LABELS = {"tracklets": "tracklets", "persons": "persons", "ceiling": "perfect merge (rows)",
          "filled": "perfect merge + group fill"}


def _points(grid: dict) -> list[dict]:
    names = list(grid)
    return [dict(zip(names, vals)) for vals in itertools.product(*(grid[n] for n in names))]


def score_tracks(seq: dict, track_point: dict, base: dict, smooth: bool = True) -> dict:
    cfg = {**base, "track": {**base["track"], **track_point}}
    s = Settings.from_dict(cfg)
    det = seq["det"]
    tid = track_detections(det.frame, det.xyxy, det.conf, None, fps=seq["fps"], settings=s.track)
    m = tid >= 0
    trk = evaluate(seq["gt"], det.frame[m], tid[m], det.xyxy[m], min_subject_frames=MIN_SUBJECT_FRAMES)
    ceil_ids = perfect_merge(seq["gt"], det.frame[m], tid[m], det.xyxy[m])
    ceil = evaluate(seq["gt"], det.frame[m], ceil_ids, det.xyxy[m], min_subject_frames=MIN_SUBJECT_FRAMES)
    g = perfect_group(seq["gt"], det, tid, seq["fps"], s.group, smooth)
    fill = evaluate(seq["gt"], g.frame, g.person, g.xyxy, min_subject_frames=MIN_SUBJECT_FRAMES)
    n = int(len(np.unique(tid[m])))
    return {"tid": tid, "desc": descriptors(seq, tid, s.group), "tracklets": trk | {"n": n},
            "ceiling": ceil | {"n": len(np.unique(ceil_ids))}, "filled": fill | {"n": len(np.unique(g.person))}}


def descriptors(seq: dict, tid: np.ndarray, group_settings) -> dict | None:
    """The colour descriptors ``ptrack group`` gives these tracklets (same crops sampled, same
    histograms, read from or stored in the set's project), for a set whose project holds crops
    (None for box-only sets, or with ``--motion-only``)."""
    if seq.get("project") is None or not group_settings.use_appearance:
        return None
    from ptrack.persons.descriptors import tracklet_descriptors
    from ptrack.store import Store

    with Store.open(seq["project"], create=False) as st:
        video = st.video(seq["video"])
        return tracklet_descriptors(st, video, tid, seq["det"], group_settings)


def score_persons(seq: dict, tid: np.ndarray, group_point: dict, base: dict,
                  desc: dict | None = None, smooth: bool = True) -> dict:
    cfg = {**base, "group": {**base["group"], **group_point}}
    s = Settings.from_dict(cfg)
    det = seq["det"]
    g = group_tracklets(tid, det.frame, det.xyxy, det.conf, fps=seq["fps"], descriptors=desc,
                        settings=s.group)
    if smooth:
        g = smoothed(g, seq["fps"])
    r = evaluate(seq["gt"], g.frame, g.person, g.xyxy, min_subject_frames=MIN_SUBJECT_FRAMES)
    r["n"] = int(len(np.unique(g.person)))
    return r


def _cells(r: dict) -> str:
    return " ".join(f"{r[k]:6.1f}" for k in KEYS) + f" {int(r['n']):5d}"


def print_table(title: str, names: list[str], rows: dict[str, dict]) -> None:
    """rows[name] = {"tracklets":, "persons":, "ceiling":} of the held-out sequence."""
    print(f"\n{title}")
    hdr = " ".join(f"{k[:6]:>6s}" for k in KEYS) + f" {'ids':>5s}"
    blocks = ("tracklets", "persons", "ceiling", "filled")
    width = len(hdr)
    print(f"{'':20s} | " + " | ".join(f"{LABELS[w]:^{width}s}" for w in blocks))
    print(f"{'held out':20s} | " + " | ".join(hdr for _ in blocks))
    for name in names:
        print(f"{name:20s} | " + " | ".join(_cells(rows[name][w]) for w in blocks))
    mean = {w: {k: float(np.mean([rows[n][w][k] for n in names])) for k in (*KEYS, "n")}
            for w in blocks}
    print(f"{'MEAN':20s} | " + " | ".join(
        " ".join(f"{mean[w][k]:6.1f}" for k in KEYS) + f" {mean[w]['n']:5.1f}" for w in blocks))


def load_sets(data: Path, e2e: bool) -> dict[str, dict]:
    """The scored detection sets: MOT15 public ``det.txt`` per sequence, and (``e2e``) the
    detections ``bench/end_to_end.py`` stored for the two TUD videos per model, named
    ``VIDEO/MODEL``. Each set: fps, det (Boxes), gt, and its video (the fold it belongs to)."""
    sets = {}
    for n in SEQS:
        if (data / n / "det.txt").is_file() and (data / n / "gt.txt").is_file():
            sets[n] = load_sequence(data / n) | {"video": n}
    if not e2e:
        return sets
    from ptrack.store import Store

    for name in MOT_VIDEOS:
        for model in E2E_MODELS:
            root = e2e_project(model, name)
            if not (root / "ptrack.db").exists() or not (data / name / "gt.txt").is_file():
                continue
            with Store.open(root, create=False) as st:
                try:
                    v = st.video(name)
                except Exception:
                    continue
                if st.stage_state(v.id, "detect") not in ("done", "stale"):
                    continue
                det = st.detections(v.id)
            sets[f"{name}/{model}"] = {"fps": float(v.fps), "det": det, "video": name,
                                       "gt": read_mot(data / name / "gt.txt", kind="gt"),
                                       "project": root if v.has_crops else None}
    return sets


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(os.environ.get("PTRACK_SHARED_DATA",
                                  Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--data", type=Path, default=default / "mot15", help="folder of the MOT15 sequences")
    ap.add_argument("--quick", action="store_true", help="a 2-point grid (checks the script runs)")
    ap.add_argument("--no-e2e", action="store_true",
                    help="only the MOT15 public detections (not bench/end_to_end.py's detections)")
    ap.add_argument("--motion-only", action="store_true",
                    help="no appearance on any set (by default the e2e sets use their crops' colour "
                         "descriptors, as ptrack group does)")
    ap.add_argument("--joint", action="store_true",
                    help="also tune motion_max_gap_s, no_link_cost and app_max per fold (108 group points)")
    ap.add_argument("--tune-tracker", action="store_true",
                    help="choose the tracker point per fold too in the first tables (by default it "
                         "is fixed at the shipped one; every way is in the 'Held-out means' table)")
    ap.add_argument("--raw-boxes", action="store_true",
                    help="score the persons' raw boxes (by default their smoothed boxes, what "
                         "export and eval use)")
    ap.add_argument("--min-purity", type=float, default=92.0,
                    help="least mean persons purity on the training folds")
    args = ap.parse_args(argv)
    seqs = load_sets(args.data, not args.no_e2e)
    if args.motion_only:
        for seq in seqs.values():
            seq["project"] = None
    names = list(seqs)
    videos = list(dict.fromkeys(seqs[n]["video"] for n in names))
    if len(videos) < 2:
        print(f"SKIP: fewer than two MOT15 sequences with det.txt and gt.txt under {args.data}")
        return 0
    cpu = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True).stdout
    print(f"CPU: {cpu.split(':', 1)[-1].strip() or platform.processor()}, {os.cpu_count()} cores; "
          f"load average at start {os.getloadavg()[0]:.1f}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"sets: {', '.join(names)}; folds: one per video ({len(videos)}), every set of the "
          "held-out video left out of the tuning")
    base = load_defaults()
    tnamed, ggrid = (QUICK_TRACK, QUICK_GROUP) if args.quick else (TRACK_POINTS, GROUP_GRID)
    if args.joint and not args.quick:
        ggrid = {**JOINT_GRID, **ggrid}
    tnames, tpoints = list(tnamed), [dict(p) for p in tnamed.values()]
    gpoints = _points(ggrid)
    default_g = {k: base["group"][k] for k in ggrid}
    if default_g not in gpoints:
        gpoints.append(default_g)
    t0 = time.perf_counter()
    smooth = not args.raw_boxes
    tracks = {(ti, n): score_tracks(seqs[n], tp, base, smooth) for ti, tp in enumerate(tpoints) for n in names}
    # the tracker points with the shipped group values, and the group grid with the shipped
    # tracker (not their full product: with --joint, 648 points)
    shipped_t = tnames.index("shipped") if "shipped" in tnames else None
    grid = [(ti, gi) for ti in range(len(tpoints)) for gi in range(len(gpoints))
            if shipped_t is None or ti == shipped_t or gpoints[gi] == default_g]
    persons = {(ti, gi, n): score_persons(seqs[n], tracks[ti, n]["tid"], gpoints[gi], base,
                                          tracks[ti, n]["desc"], smooth)
               for ti, gi in grid for n in names}
    print(f"{len(grid)} grid points x {len(names)} sets scored in {time.perf_counter() - t0:.0f} s")

    def held_out(point, n):
        ti, gi = point
        t = tracks[ti, n]
        return {"tracklets": t["tracklets"], "persons": persons[ti, gi, n], "ceiling": t["ceiling"],
                "filled": t["filled"]}

    def mean_of(point, seqnames, key):
        return float(np.mean([persons[(*point, n)][key] for n in seqnames]))

    def pick(train, among=None):
        among = among or grid
        ok = [p for p in among if mean_of(p, train, "purity") >= args.min_purity]
        best = max(ok, key=lambda p: (mean_of(p, train, "coverage"), -p[0], -p[1])) if ok \
            else max(among, key=lambda p: mean_of(p, train, "purity"))
        return best, bool(ok)

    def cross_validated(among):
        rows = {}
        for video in videos:
            p, _ = pick([m for m in names if seqs[m]["video"] != video], among)
            rows.update({n: held_out(p, n) for n in names if seqs[n]["video"] == video})
        return rows

    # the tracker is fixed (the shipped point) unless --tune-tracker: tuned per fold, its best
    # point moved from fold to fold and held out worse ("tune tracker + group" below)
    with_shipped_tracker = grid if shipped_t is None else [p for p in grid if p[0] == shipped_t]
    tuned = grid if args.tune_tracker else with_shipped_tracker
    chosen, cv_rows = {}, {}
    for video in videos:
        train = [m for m in names if seqs[m]["video"] != video]
        p, ok = pick(train, tuned)
        chosen[video] = (p, ok, mean_of(p, train, "coverage"), mean_of(p, train, "purity"))
        for n in names:
            if seqs[n]["video"] == video:
                cv_rows[n] = held_out(p, n)
    public = [n for n in names if "/" not in n]
    e2e = [n for n in names if "/" in n]
    print_table("Cross-validated (tuned on the other videos' sets, scored on the held-out video's; "
                + ("tracker and group tuned)" if tuned is grid else "group tuned, tracker shipped)"),
                names, cv_rows)
    if e2e and public:
        print_table("  the same, MOT15 public detections only", public, cv_rows)
        print_table("  the same, the e2e detections (test model, COCO YOLOv8n) only", e2e, cv_rows)

    print("\nChosen per fold (training mean persons coverage / purity)")
    pnames = list(ggrid)
    print(f"{'held out':15s} {'tracker':>18s} " + " ".join(f"{p:>16s}" for p in pnames)
          + "   train cov / pur")
    for video in videos:
        (ti, gi), ok, cov, pur = chosen[video]
        note = "" if ok else f"  (no point reaches purity {args.min_purity:g}: highest purity taken)"
        print(f"{video:15s} {tnames[ti]:>18s} " + " ".join(f"{gpoints[gi][p]:16g}" for p in pnames)
              + f"   {cov:5.1f} / {pur:5.1f}{note}")
    print(f"{'shipped':15s} {'shipped':>18s} " + " ".join(f"{default_g[p]:16g}" for p in pnames))

    print("\nEvery grid point, mean over all sets (in-sample; persons coverage / purity; "
          "tracklets coverage / purity; * = shipped)")
    for p in sorted(grid, key=lambda p: -mean_of(p, names, "purity")):
        mark = "*" if (tnames[p[0]] == "shipped" and gpoints[p[1]] == default_g) else " "
        tc = float(np.mean([tracks[p[0], n]["tracklets"]["coverage"] for n in names]))
        tp = float(np.mean([tracks[p[0], n]["tracklets"]["purity"] for n in names]))
        print(f"  {mark} {tnames[p[0]]:18s} " + ", ".join(f"{k} {v:g}" for k, v in gpoints[p[1]].items())
              + f": {mean_of(p, names, 'coverage'):5.1f} / {mean_of(p, names, 'purity'):5.1f}"
              + f"   ({tc:5.1f} / {tp:5.1f})")

    # what tuning each part buys, held out: tune everything, only the tracker (group shipped),
    # only group (tracker shipped), or nothing (each tracker point with the shipped group values)
    dg = gpoints.index(default_g)
    variants = {"tune tracker + group": grid,
                "tune tracker, group shipped": [p for p in grid if p[1] == dg]}
    if shipped_t is not None:
        variants["tune group, tracker shipped"] = with_shipped_tracker
    for ti, tn in enumerate(tnames):
        variants[f"fixed: {tn}, group shipped"] = [(ti, dg)]
    print("\nHeld-out means per way of choosing (persons coverage / purity / IDF1; tracklets "
          "coverage / purity)")
    subsets = [("all sets", names)] + ([("public", public), ("e2e", e2e)] if public and e2e else [])
    print(f"{'':34s} " + " | ".join(f"{lbl:^34s}" for lbl, _ in subsets))
    for label, among in variants.items():
        rows = cross_validated(among)
        cells = []
        for _, subset in subsets:
            pm = [float(np.mean([rows[n]["persons"][k] for n in subset])) for k in KEYS]
            tm = [float(np.mean([rows[n]["tracklets"][k] for n in subset])) for k in KEYS[:2]]
            cells.append(" ".join(f"{v:5.1f}" for v in pm) + " (" + " ".join(f"{v:5.1f}" for v in tm) + ")")
        print(f"{label:34s} " + " | ".join(cells))

    if shipped_t is not None:
        dpoint = (shipped_t, gpoints.index(default_g))
        print_table("Shipped defaults (no tuning)", names, {n: held_out(dpoint, n) for n in names})
    best_in = max(grid, key=lambda p: mean_of(p, names, "coverage")
                  if mean_of(p, names, "purity") >= args.min_purity else -1.0)
    print(f"\nIn-sample best over all {len(names)} sets (for comparison only): {tnames[best_in[0]]}, "
          f"{gpoints[best_in[1]]} -> persons coverage "
          f"{mean_of(best_in, names, 'coverage'):.1f}, purity {mean_of(best_in, names, 'purity'):.1f}")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
