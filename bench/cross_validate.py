"""Leave-one-sequence-out cross-validation of the person stages (track + group) on MOT15.

Usage: python bench/cross_validate.py [--data DIR] [--quick] [--min-purity 92]

Motion only: the public ``det.txt`` boxes of each sequence (no crops, no appearance), tracked
with ``ptrack.track.track_detections`` and joined with ``ptrack.group.group_tracklets``, scored
with ``ptrack.evaluate.evaluate`` against ``gt.txt`` (subjects: 50+ ground-truth frames).

Every grid point (a few ``track``/``group`` values over the shipped defaults, the defaults
among them) is scored once on every sequence. For each fold, the point with the best mean
persons coverage among those whose mean persons purity on the four training sequences is at
least ``--min-purity`` (the highest-purity point when none is) is chosen, and the held-out
sequence is scored with it. The tables give, per held-out sequence, the tracklets, the persons
and the perfect-merge ceiling of the tracklets (each tracklet relabelled with the ground-truth
identity it matches most, then scored the same way: what ``group`` could reach), the chosen
values per fold, and the cross-validated means; then the same for the shipped defaults.
"""

from __future__ import annotations

import argparse
import configparser
import itertools
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ptrack.config import load_defaults  # noqa: E402
from ptrack.evaluate import evaluate, iou_matrix, match_boxes  # noqa: E402
from ptrack.group import group_tracklets  # noqa: E402
from ptrack.motio import read_mot  # noqa: E402
from ptrack.settings import Settings  # noqa: E402
from ptrack.track import track_detections  # noqa: E402

SEQS = ("TUD-Campus", "TUD-Stadtmitte", "KITTI-17", "ETH-Sunnyday", "ADL-Rundle-6")
MIN_SUBJECT_FRAMES = 50
# 3 track points (the defaults, then one value changed at a time) x 9 group points = 27; the
# shipped defaults (split 0.6, buffer 2.0 / motion gap 1.5, no-link cost 1.5) are one of them
TRACK_POINTS = [{"split_gap_s": 0.6, "track_buffer_s": 2.0}, {"split_gap_s": 1.5, "track_buffer_s": 2.0},
                {"split_gap_s": 0.6, "track_buffer_s": 1.0}]
GROUP_GRID = {"motion_max_gap_s": (1.0, 1.5, 3.0), "no_link_cost": (1.0, 1.5, 3.0)}
QUICK_TRACK = [{"split_gap_s": 0.6, "track_buffer_s": 2.0}]
QUICK_GROUP = {"motion_max_gap_s": (1.5, 3.0), "no_link_cost": (1.5,)}
KEYS = ("coverage", "purity", "IDF1")
LABELS = {"tracklets": "tracklets", "persons": "persons", "ceiling": "perfect merge (rows)",
          "filled": "perfect merge + group fill"}


def _points(grid: dict) -> list[dict]:
    names = list(grid)
    return [dict(zip(names, vals)) for vals in itertools.product(*(grid[n] for n in names))]


def load_sequence(seq_dir: Path) -> dict:
    ini = configparser.ConfigParser()
    ini.read(seq_dir / "seqinfo.ini")
    det = read_mot(seq_dir / "det.txt", kind="det")
    return {"fps": float(ini["Sequence"]["frameRate"]), "det": det,
            "gt": read_mot(seq_dir / "gt.txt", kind="gt")}


def best_identity(gt, frame: np.ndarray, tid: np.ndarray, xyxy: np.ndarray) -> tuple[dict, np.ndarray]:
    """The ground-truth id each tracklet is matched to (IoU >= 0.5, kept ground truth, one-to-one
    per frame) in most frames (tracklets never matched are left out), and each row's match (-1)."""
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


def perfect_merge(gt, frame: np.ndarray, tid: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
    """Ids of a perfect merge of the tracklets' rows: each tracklet takes the ground-truth id it
    matches most (:func:`best_identity`); an unmatched tracklet keeps an id of its own. Where two
    tracklets would then share an id in one frame, the box matched to that identity in that frame
    keeps it (else the first) and the other falls back to its own id."""
    best, matched_gt = best_identity(gt, frame, tid, xyxy)
    own = int(np.max(gt.tracklet, initial=0)) + 1 + tid  # ids no ground-truth identity uses
    label = np.array([best.get(int(t), -1) for t in tid], np.int64)
    out = np.where(label >= 0, label, own)
    order = np.lexsort((np.arange(len(tid)), matched_gt != out, out, frame))
    dup = np.r_[False, (frame[order][1:] == frame[order][:-1]) & (out[order][1:] == out[order][:-1])]
    out[order[dup]] = own[order[dup]]
    return out


def perfect_group(gt, det, tid: np.ndarray, fps: float, group_settings):
    """``group_tracklets`` told the perfect merge as user merges (must-link) and making no link
    of its own (no_link_cost 0): the same merge with group's per-frame choice and gap filling."""
    m = tid >= 0
    best, _ = best_identity(gt, det.frame[m], tid[m], det.xyxy[m])
    by_id: dict[int, list[int]] = {}
    for t, gid in sorted(best.items()):
        by_id.setdefault(gid, []).append(t)
    must = [(ts[0], t) for ts in by_id.values() for t in ts[1:]]
    return group_tracklets(tid, det.frame, det.xyxy, det.conf, fps=fps, must_link=must,
                           settings=group_settings.replace(no_link_cost=0.0))


def score_tracks(seq: dict, track_point: dict, base: dict) -> dict:
    cfg = {**base, "track": {**base["track"], **track_point}}
    s = Settings.from_dict(cfg)
    det = seq["det"]
    tid = track_detections(det.frame, det.xyxy, det.conf, None, fps=seq["fps"], settings=s.track)
    m = tid >= 0
    trk = evaluate(seq["gt"], det.frame[m], tid[m], det.xyxy[m], min_subject_frames=MIN_SUBJECT_FRAMES)
    ceil_ids = perfect_merge(seq["gt"], det.frame[m], tid[m], det.xyxy[m])
    ceil = evaluate(seq["gt"], det.frame[m], ceil_ids, det.xyxy[m], min_subject_frames=MIN_SUBJECT_FRAMES)
    g = perfect_group(seq["gt"], det, tid, seq["fps"], s.group)
    fill = evaluate(seq["gt"], g.frame, g.person, g.xyxy, min_subject_frames=MIN_SUBJECT_FRAMES)
    n = int(len(np.unique(tid[m])))
    return {"tid": tid, "tracklets": trk | {"n": n}, "ceiling": ceil | {"n": len(np.unique(ceil_ids))},
            "filled": fill | {"n": len(np.unique(g.person))}}


def score_persons(seq: dict, tid: np.ndarray, group_point: dict, base: dict) -> dict:
    cfg = {**base, "group": {**base["group"], **group_point}}
    s = Settings.from_dict(cfg)
    det = seq["det"]
    g = group_tracklets(tid, det.frame, det.xyxy, det.conf, fps=seq["fps"], settings=s.group)
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
    print(f"{'':15s} | " + " | ".join(f"{LABELS[w]:^{width}s}" for w in blocks))
    print(f"{'held out':15s} | " + " | ".join(hdr for _ in blocks))
    for name in names:
        print(f"{name:15s} | " + " | ".join(_cells(rows[name][w]) for w in blocks))
    mean = {w: {k: float(np.mean([rows[n][w][k] for n in names])) for k in (*KEYS, "n")}
            for w in blocks}
    print(f"{'MEAN':15s} | " + " | ".join(
        " ".join(f"{mean[w][k]:6.1f}" for k in KEYS) + f" {mean[w]['n']:5.1f}" for w in blocks))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(os.environ.get("PTRACK_SHARED_DATA",
                                  Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--data", type=Path, default=default / "mot15", help="folder of the MOT15 sequences")
    ap.add_argument("--quick", action="store_true", help="a 2-point grid (checks the script runs)")
    ap.add_argument("--min-purity", type=float, default=92.0,
                    help="least mean persons purity on the training folds")
    args = ap.parse_args(argv)
    names = [n for n in SEQS
             if (args.data / n / "det.txt").is_file() and (args.data / n / "gt.txt").is_file()]
    if len(names) < 2:
        print(f"SKIP: fewer than two MOT15 sequences with det.txt and gt.txt under {args.data}")
        return 0
    cpu = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True).stdout
    print(f"CPU: {cpu.split(':', 1)[-1].strip() or platform.processor()}, {os.cpu_count()} cores; "
          f"load average at start {os.getloadavg()[0]:.1f}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    base = load_defaults()
    seqs = {n: load_sequence(args.data / n) for n in names}
    tpoints, ggrid = (QUICK_TRACK, QUICK_GROUP) if args.quick else (TRACK_POINTS, GROUP_GRID)
    tpoints, gpoints = [dict(p) for p in tpoints], _points(ggrid)
    tgrid = list(tpoints[0])
    default_t = {k: base["track"][k] for k in tgrid}
    default_g = {k: base["group"][k] for k in ggrid}
    if default_t not in tpoints:
        tpoints.append(default_t)
    if default_g not in gpoints:
        gpoints.append(default_g)
    t0 = time.perf_counter()
    tracks = {(ti, n): score_tracks(seqs[n], tp, base) for ti, tp in enumerate(tpoints) for n in names}
    persons = {(ti, gi, n): score_persons(seqs[n], tracks[ti, n]["tid"], gp, base)
               for ti in range(len(tpoints)) for gi, gp in enumerate(gpoints) for n in names}
    grid = [(ti, gi) for ti in range(len(tpoints)) for gi in range(len(gpoints))]
    print(f"{len(grid)} grid points x {len(names)} sequences scored in {time.perf_counter() - t0:.0f} s")

    def held_out(point, n):
        ti, gi = point
        t = tracks[ti, n]
        return {"tracklets": t["tracklets"], "persons": persons[ti, gi, n], "ceiling": t["ceiling"],
                "filled": t["filled"]}

    def mean_of(point, seqnames, key):
        return float(np.mean([persons[(*point, n)][key] for n in seqnames]))

    chosen, cv_rows = {}, {}
    for n in names:
        train = [m for m in names if m != n]
        ok = [p for p in grid if mean_of(p, train, "purity") >= args.min_purity]
        pick = max(ok, key=lambda p: (mean_of(p, train, "coverage"), -p[0], -p[1])) if ok \
            else max(grid, key=lambda p: mean_of(p, train, "purity"))
        chosen[n] = (pick, bool(ok), mean_of(pick, train, "coverage"), mean_of(pick, train, "purity"))
        cv_rows[n] = held_out(pick, n)
    print_table("Cross-validated (tuned on the other sequences, scored on the held-out one)", names, cv_rows)

    print("\nChosen per fold (training mean persons coverage / purity)")
    pnames = list(tgrid) + list(ggrid)
    print(f"{'held out':15s} " + " ".join(f"{p:>16s}" for p in pnames) + "   train cov / pur")
    for n in names:
        (ti, gi), ok, cov, pur = chosen[n]
        vals = {**tpoints[ti], **gpoints[gi]}
        note = "" if ok else f"  (no point reaches purity {args.min_purity:g}: highest purity taken)"
        print(f"{n:15s} " + " ".join(f"{vals[p]:16g}" for p in pnames) + f"   {cov:5.1f} / {pur:5.1f}{note}")
    print(f"{'shipped':15s} " + " ".join(f"{({**default_t, **default_g})[p]:16g}" for p in pnames))

    print("\nEvery grid point, mean over all sequences (in-sample; persons coverage / purity; * = shipped)")
    for p in sorted(grid, key=lambda p: -mean_of(p, names, "purity")):
        vals = {**tpoints[p[0]], **gpoints[p[1]]}
        mark = "*" if vals == {**default_t, **default_g} else " "
        print(f"  {mark} " + ", ".join(f"{k} {v:g}" for k, v in vals.items())
              + f": {mean_of(p, names, 'coverage'):5.1f} / {mean_of(p, names, 'purity'):5.1f}")

    dpoint = (tpoints.index(default_t), gpoints.index(default_g))
    print_table("Shipped defaults (no tuning)", names, {n: held_out(dpoint, n) for n in names})
    best_in = max(grid, key=lambda p: mean_of(p, names, "coverage")
                  if mean_of(p, names, "purity") >= args.min_purity else -1.0)
    print(f"\nIn-sample best over all {len(names)} sequences (for comparison only): "
          f"{ {**tpoints[best_in[0]], **gpoints[best_in[1]]} } -> persons coverage "
          f"{mean_of(best_in, names, 'coverage'):.1f}, purity {mean_of(best_in, names, 'purity'):.1f}")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
