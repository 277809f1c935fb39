"""Persons with each appearance choice of ``group`` (hsv, embed, combo), and the embedding's cost.

Accuracy: for TUD-Stadtmitte and TUD-Campus (MOT15 ground truth) x {test model ``fall``
(``--classes all``), COCO YOLOv8n ``coco``}: ``ptrack detect`` + ``ptrack track`` (projects
under ``PTRACK_BENCH_WORK``, shared with ``appearance_auc.py``), then for each choice
``ptrack group`` with ``group.appearance`` set by a ``--config`` file, and ``ptrack eval gt.txt
--json``: persons coverage, purity, IDF1 (smoothed boxes, what ``export`` writes) beside the
tracklets'. No value is tuned on these sequences here: in-sample only in the sense that the
group defaults were tuned on MOT15 before (``bench/cross_validate.py``).

Calibration (no labels): per project, the median colour-histogram distance and the median
learned-embedding distance (``ptrack.persons.metric.tracklet_vectors``) over the tracklet pairs that
share a frame (different people, known without labels); their ratio is what
``ptrack.persons.appearance.EMBED_UNIT`` should be for both to put different people at the same place
on the 0-1 scale.

Speed (``--speed``): on a fresh project per clip, ``ptrack detect`` (test model), ``ptrack
track``, then in this process the embedding of the crops ``group`` samples
(``group.embed_samples`` per tracklet, as :func:`ptrack.persons.descriptors.sample_rows` picks them)
plus the metric learning: crops/s and the embedding's share of detect's time (bar <= 1/5),
measured one right after the other.

Run: ``python bench/appearance_group.py [--models fall,coco] [--videos TUD-Stadtmitte,TUD-Campus]
[--choices hsv,embed,combo] [--calibrate] [--speed TUD-Stadtmitte,one-by-one-person]
[--speed-frames N]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (CLIPS, MODELS, MOT15, MOT_VIDEOS, WORK, Report,  # noqa: E402
                          appearance_project, finish, load_note, machine_summary, ptrack_cmd,
                          run_child, shared_models_dir)

KEYS = ("coverage", "purity", "IDF1")


def ensure_tracked(root: Path, model: str, name: str, clip: Path, extra: list[str] = ()) -> None:
    """Detect (f32) and track ``name`` unless the project has it already."""
    from ptrack.store import Store

    if (root / "ptrack.db").exists():
        with Store.open(root, create=False) as st:
            try:
                if st.stage_state(st.video(name).id, "track") in ("done", "stale"):
                    return
            except Exception:
                pass
    run_child(ptrack_cmd("--project", str(root), "detect", str(clip), *MODELS[model],
                         "--precision", "f32", *extra), timeout=7200)
    run_child(ptrack_cmd("--project", str(root), "track", "--video", name), timeout=1800)


EXTRA_GROUP: dict[str, str] = {}
"""More ``group:`` settings for every run (``--set key=value``)."""


def config_for(choice: str) -> Path:
    path = WORK / f"appearance-{choice}.yaml"
    lines = [f"  appearance: {choice}"] + [f"  {k}: {v}" for k, v in EXTRA_GROUP.items()]
    path.write_text("group:\n" + "\n".join(lines) + "\n")
    return path


def group_and_eval(root: Path, name: str, choice: str) -> dict:
    cfg = str(config_for(choice))
    g = run_child(ptrack_cmd("--project", str(root), "--config", cfg, "group", "--video", name),
                  timeout=3600)
    ev = run_child(ptrack_cmd("--project", str(root), "--config", cfg, "eval",
                              str(MOT_VIDEOS[name] / "gt.txt"), "--video", name, "--json"))
    res = json.loads(ev.stdout)
    line = next((ln for ln in g.stdout.splitlines() if "group done" in ln), "")
    return {"persons": {k: res["persons"][k] for k in KEYS},
            "tracklets": {k: res["tracklets"][k] for k in KEYS},
            "group_line": line.strip(), "notes": g.stderr.strip()[-500:],
            "group_s": round(g.wall, 1)}


def calibration(root: Path, name: str) -> dict:
    """Median colour and embedding distances of tracklet pairs that share a frame."""
    from ptrack.persons.appearance import appearance_distance, embedding_distance
    from ptrack.persons.descriptors import tracklet_descriptors, tracklet_embeddings
    from ptrack.persons.metric import cooccurring
    from ptrack.settings import defaults
    from ptrack.store import Store

    g = defaults().group
    with Store.open(root, create=False) as st:
        v = st.video(name)
        tid, det = st.tracklet_boxes(v.id)
        hsv = tracklet_descriptors(st, v, tid, det, g) or {}
        emb = tracklet_embeddings(st, v, tid, det, g, cache_dir=shared_models_dir())
    pairs = [(a, b) for a, b in sorted(cooccurring(tid, det.frame, xyxy=det.xyxy))
             if a in hsv and b in hsv and a in emb and b in emb]
    h = np.array([appearance_distance(hsv[a], hsv[b]) for a, b in pairs])
    e = np.array([np.linalg.norm(emb[a] - emb[b]) for a, b in pairs])
    e01 = np.array([embedding_distance(emb[a], emb[b]) for a, b in pairs])
    return {"pairs": len(pairs), "hsv_median": float(np.median(h)), "embed_raw_median": float(np.median(e)),
            "embed01_median": float(np.median(e01)),
            "unit_for_equal_medians": float(np.median(h) / max(np.median(e), 1e-9))}


def speed(report: Report, name: str, clip: Path, max_frames: int, reuse: bool = False) -> None:
    from ptrack.persons import embed
    from ptrack.persons.descriptors import sample_rows
    from ptrack.persons.metric import NotEnoughPairs, cooccurring, learn_kissme, tracklet_vectors
    from ptrack.settings import defaults
    from ptrack.store import Store

    emb = embed.load_embedder(shared_models_dir(), batch=32)  # converted once, before timing
    emb.embed_jpegs([None])
    if reuse:  # the detect run of appearance-fall (auc and accuracy runs), timed when it ran
        root = appearance_project("fall")
    else:
        root = WORK / f"appearance-speed-{name}"
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        extra = ["--max-frames", str(max_frames)] if max_frames else []
        run_child(ptrack_cmd("--project", str(root), "detect", str(clip), *MODELS["fall"],
                             "--precision", "f32", *extra), timeout=7200)
        run_child(ptrack_cmd("--project", str(root), "track"), timeout=1800)
    with Store.open(root, create=False) as st:
        v = st.video(name)
        run = st.latest_run(v.id, "detect")
        det_s, frames = float(run.stats["seconds"]), int(run.stats["frames"])
    g = defaults().group
    with Store.open(root, create=False) as st:
        v = st.video(name)
        tid, det = st.tracklet_boxes(v.id)
        n_boxes = st.count_detections(v.id)
        t0 = time.perf_counter()
        rows, owners = sample_rows(st, v, tid, det,
                                   int(EXTRA_GROUP.get("embed_samples", g.embed_samples)))
        jpegs = st.crops((v.id, int(det.frame[r]), int(det.det[r])) for r in rows)
        X = emb.embed_jpegs(jpegs)
        t_embed = time.perf_counter() - t0
        try:
            m = learn_kissme(X, owners, det.frame[rows], xyxy=det.xyxy[rows],
                             cooccur=cooccurring(tid, det.frame, xyxy=det.xyxy))
            tracklet_vectors(X, owners, m)
        except NotEnoughPairs as exc:  # group falls back to colours here; the crops were embedded
            print(f"{name}: {exc}", flush=True)
        total = time.perf_counter() - t0
    n_trk = len(np.unique(tid))
    note = (f"{frames} frames, {n_boxes} boxes ({n_boxes / max(frames, 1):.1f}/frame), "
            f"{n_trk} tracklets, {len(rows)} crops embedded ({len(rows) / max(n_boxes, 1):.0%} "
            f"of the boxes); detect {det_s:.1f} s, embed {t_embed:.1f} s, +metric {total - t_embed:.2f} s; "
            f"{load_note()}")
    print(f"{name}: {note}", flush=True)
    report.add(f"{name}: embedding crops/s (MobileNetV2 224x224, OpenVINO)", len(rows) / t_embed,
               "crops/s", note=note)
    report.add(f"{name}: embedding + metric time / detect time", total / det_s, "", bar=0.2, op="<=",
               note=load_note())
    report.details[f"speed/{name}"] = {"frames": frames, "boxes": n_boxes, "tracklets": n_trk,
                                       "crops": len(rows), "detect_s": det_s, "embed_s": t_embed,
                                       "total_s": total}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="fall,coco")
    ap.add_argument("--videos", default="TUD-Stadtmitte,TUD-Campus")
    ap.add_argument("--choices", default="hsv,embed,combo")
    ap.add_argument("--speed", default="", help="clips to time the embedding on, e.g. TUD-Stadtmitte,one-by-one-person")
    ap.add_argument("--speed-frames", type=int, default=0, help="detect only this many frames of the speed clips")
    ap.add_argument("--speed-reuse", action="store_true",
                    help="time the embedding against the detect run already in appearance-fall "
                         "(its recorded seconds) instead of detecting again")
    ap.add_argument("--calibrate", action="store_true",
                    help="also print the colour / embedding distance medians of co-occurring tracklets")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a group setting for every run, e.g. embed_samples=16")
    args = ap.parse_args()
    EXTRA_GROUP.update(kv.split("=", 1) for kv in args.set)
    t0 = time.perf_counter()
    report = Report("appearance_group")
    if not MOT15.exists():
        report.skipped = "shared data absent"
        finish(report, t0)
        return 0
    print(f"CPU: {machine_summary()['cpu']}; {load_note()}", flush=True)
    table = {}
    choices = [c for c in args.choices.split(",") if c]
    for model in [m for m in args.models.split(",") if m]:
        for name in [v for v in args.videos.split(",") if v]:
            root = appearance_project(model)
            ensure_tracked(root, model, name, MOT_VIDEOS[name] / f"{name}.mp4")
            for choice in choices:
                r = group_and_eval(root, name, choice)
                table[(model, name, choice)] = r
                p, t = r["persons"], r["tracklets"]
                print(f"{model:5s} {name:15s} {choice:6s} persons cov/pur/IDF1 "
                      f"{p['coverage']:5.1f} {p['purity']:5.1f} {p['IDF1']:5.1f}   tracklets "
                      f"{t['coverage']:5.1f} {t['purity']:5.1f} {t['IDF1']:5.1f}   {r['group_line']}",
                      flush=True)
                for k in KEYS:
                    report.add(f"{model}/{name}/{choice}: persons {k}", p[k])
            if args.calibrate:
                try:
                    cal = calibration(root, name)
                    report.details[f"calibration/{model}/{name}"] = cal
                    print(f"{model:5s} {name:15s} calibration {cal}", flush=True)
                except Exception as exc:  # too few pairs, say
                    print(f"{model:5s} {name:15s} calibration: {exc}", flush=True)
    if table:
        print("\nmean over the runs, persons coverage / purity / IDF1 (tracklets beside):")
        for choice in choices:
            rows = [r for (m, n, c), r in table.items() if c == choice]
            mean = {k: float(np.mean([r["persons"][k] for r in rows])) for k in KEYS}
            print(f"  {choice:6s} " + " / ".join(f"{mean[k]:.1f}" for k in KEYS))
            for k in KEYS:
                report.add(f"mean {choice}: persons {k}", mean[k], note=f"{len(rows)} runs")
        report.details["table"] = {"/".join(k): v for k, v in table.items()}
    for name in [s for s in args.speed.split(",") if s]:
        clip = MOT_VIDEOS[name] / f"{name}.mp4" if name in MOT_VIDEOS else CLIPS / f"{name}.mp4"
        speed(report, name, clip, args.speed_frames if name not in MOT_VIDEOS else 0,
              reuse=args.speed_reuse)
    finish(report, t0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
