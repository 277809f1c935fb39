"""Which appearance tells people apart? ROC AUC of same- vs different-person tracklet pairs.

For each video and detector: ``ptrack detect`` + ``ptrack track`` (projects under
``PTRACK_BENCH_WORK``, reused when already built with the same settings), then every tracklet
gets an identity:

* MOT15 ``TUD-Stadtmitte`` and ``TUD-Campus`` (ground truth): each box is matched to a
  ground-truth box of its frame (Hungarian, IoU >= 0.5); a tracklet takes the identity most of
  its boxes match, when that is at least half of its boxes (mixed tracklets are left out).
* The CC BY clips: the hand labels in ``tests/data/labels/<clip>.json`` (tracklet id -> person,
  made by looking at the crops, with the detect/track settings that reproduce those ids; the
  bench checks each labelled tracklet's first box before trusting them).

Candidates, each a distance between two tracklets:

* ``hsv6``: ptrack's current descriptor (``ptrack.persons.appearance``), 6 crops picked as ``group``
  picks them, Hellinger distance;
* ``hsv_all``: the same descriptor over all the tracklet's crops;
* ``mnv2_cos``: MobileNetV2 ImageNet embedding (``ptrack.persons.embed``) of every crop, cosine
  distance of the tracklets' mean embeddings;
* ``mnv2_kissme``: the same embeddings under a KISSME metric learned per video from the
  tracklets alone (``ptrack.persons.metric``: PCA 32, positives within a tracklet, negatives between
  tracklets sharing a frame; no labels);
* ``group_embed`` and ``group_combo``: what ``group`` uses (``ptrack.persons.descriptors``): the
  MobileNetV2 embeddings of ``group.embed_samples`` crops per tracklet (picked as ``group``
  picks them, stored in the project), under the KISSME metric learned from those samples, on
  the 0-1 scale (``ptrack.persons.appearance.embedding_distance``); and its mean with ``hsv6``
  (``ptrack.persons.appearance.link_distance``, ``group.appearance: combo``);
* ``yolo_cos`` (``--yolo``): the detector's own features (Ultralytics ``model.embed``, the
  pooled last-backbone feature map) of each crop, cosine of the means; and ``yolo_kissme``.

Pairs: every two labelled tracklets with at least ``--min-boxes`` boxes. ``disjoint`` pairs
(the two never share a frame) are the ones ``group`` must decide from appearance and are the
headline; ``all`` adds the co-occurring pairs (trivially different people, and the very pairs
KISSME learns from, so in-sample for it). No value is tuned on these labels: every AUC is
out-of-sample (KISSME uses no label).

Speed: ``ptrack detect`` on the bundled ``tests/data/walking-pair.mp4`` with the test model,
then the embedding of all its crops in the same run (converted model cached): crops/s and the
embedding's share of detect's time (bar: at most 1/5).

Projects are reused when present: a clip whose detect ran with other settings than its labels'
is reported as unusable (``why`` in the JSON). ``one-by-one-person``'s labels cover its first
1056 frames (``--max-frames 1056``), which this script passes to ``detect`` from the labels file.

Run: ``python bench/appearance_auc.py [--videos A,B] [--models fall,coco] [--sizes 224x224,256x128]
[--yolo] [--no-speed]``
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (CLIPS, MODELS, MOT15, MOT_VIDEOS, REPO, WORK, Report,  # noqa: E402
                          appearance_project, finish, load_note, machine_summary, ptrack_cmd,
                          run_child, shared_models_dir)

LABELS = REPO / "tests" / "data" / "labels"
CLIP_VIDEOS = ("walking-pair", "store-aisle", "one-by-one-person")


# --------------------------------------------------------------------------- projects
def video_path(name: str) -> Path:
    if name in MOT_VIDEOS:
        return MOT_VIDEOS[name] / f"{name}.mp4"
    return CLIPS / f"{name}.mp4"


def ensure_tracked(model: str, name: str) -> Path:
    """Detect and track ``name`` with ``model`` unless the project has it already."""
    from ptrack.store import Store

    root = appearance_project(model)
    done = False
    if (root / "ptrack.db").exists():
        with Store.open(root, create=False) as st:
            try:
                v = st.video(name)
                done = st.stage_state(v.id, "track") == "done"
            except Exception:
                done = False
    if not done:
        extra: list[str] = []
        labels = LABELS / f"{name}.json"
        if labels.exists():  # the labels' own frame limit, so the tracklet ids are theirs
            n = json.loads(labels.read_text()).get("detect_settings", {}).get("detect", {}).get("max_frames", 0)
            extra = ["--max-frames", str(n)] if n else []
        run_child(ptrack_cmd("--project", str(root), "detect", str(video_path(name)), *MODELS[model], *extra),
                  timeout=7200)
        run_child(ptrack_cmd("--project", str(root), "track", "--video", name), timeout=1800)
    return root


# --------------------------------------------------------------------------- labels
def mot_labels(trk: np.ndarray, frame: np.ndarray, xyxy: np.ndarray, seq: Path) -> dict[int, int]:
    """Tracklet -> ground-truth id by IoU majority (None-free: mixed tracklets are left out)."""
    from ptrack.formats.evaluate import iou_matrix, match_boxes
    from ptrack.formats.mot import read_mot

    gt = read_mot(seq / "gt.txt", kind="gt")
    keep = gt.data["keep"]
    gf, gid, gbox = gt.frame[keep], gt.tracklet[keep], gt.xyxy[keep]
    box_id = np.full(len(trk), -1, np.int64)
    for f in np.unique(frame):
        r = np.flatnonzero(frame == f)
        g = np.flatnonzero(gf == f)
        if len(g) == 0:
            continue
        i, j = match_boxes(iou_matrix(xyxy[r], gbox[g]), 0.5)
        box_id[r[i]] = gid[g[j]]
    out = {}
    for t in np.unique(trk):
        ids = box_id[trk == t]
        vals, counts = np.unique(ids[ids >= 0], return_counts=True)
        if len(vals) and counts.max() >= 0.5 * len(ids):
            out[int(t)] = int(vals[np.argmax(counts)])
    return out


def clip_labels(name: str, model: str, root: Path, trk: np.ndarray, frame: np.ndarray,
                xyxy: np.ndarray) -> tuple[dict[int, str], str]:
    """Hand labels for a clip, checked against the tracklets: (labels, '' or why unusable)."""
    from ptrack.formats.evaluate import iou_matrix

    path = LABELS / f"{name}.json"
    if not path.exists():
        return {}, f"no labels file {path.relative_to(REPO)}"
    data = json.loads(path.read_text())
    if data.get("model_key") != model:
        return {}, f"labels made with model {data.get('model_key')}"
    labels = {}
    for tid, info in data["tracklets"].items():
        t = int(tid)
        rows = np.flatnonzero(trk == t)
        if len(rows) == 0:
            return {}, f"tracklet {t} absent: detect/track settings differ from the labels'"
        first = rows[np.argmin(frame[rows])]
        iou = iou_matrix(xyxy[first][None], np.asarray(info["first_box"], float)[None])[0, 0]
        if frame[first] != info["first_frame"] or iou < 0.9:
            return {}, f"tracklet {t} starts elsewhere: detect/track settings differ from the labels'"
        labels[t] = str(info["person"])
    return labels, ""


# --------------------------------------------------------------------------- features
def auc(same: np.ndarray, diff: np.ndarray) -> float | None:
    """ROC AUC = P(d_same < d_diff), ties count half; None without both kinds of pairs."""
    same, diff = np.asarray(same, float), np.asarray(diff, float)
    if len(same) == 0 or len(diff) == 0:
        return None
    allv = np.concatenate([same, diff])
    order = allv.argsort(kind="mergesort")
    ranks = np.empty(len(allv))
    sorted_v = allv[order]
    # average ranks for ties
    _, start, counts = np.unique(sorted_v, return_index=True, return_counts=True)
    avg = start + (counts - 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    r_diff = ranks[len(same):].sum() - len(diff) * (len(diff) - 1) / 2.0
    return float(r_diff / (len(same) * len(diff)))


def hsv_distances(ids, trk, frame, xyxy, conf, crops, k: int | None) -> np.ndarray:
    from ptrack.persons.appearance import appearance_distance, crop_descriptor, pick_descriptor_samples
    from ptrack.persons.sampling import covered_share

    covered = covered_share(frame, xyxy) if k else None
    desc = []
    for t in ids:
        rows = np.flatnonzero(trk == t)
        if k:
            pick = pick_descriptor_samples(frame[rows], xyxy[rows], conf[rows], k,
                                           covered=covered[rows])
            rows = rows[pick]
        desc.append(crop_descriptor([crops[r] for r in rows if crops[r] is not None]))
    n = len(ids)
    D = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            D[i, j] = D[j, i] = appearance_distance(desc[i], desc[j])
    return D


def yolo_features(weights: str, crops: list, batch: int = 32) -> np.ndarray:
    """Ultralytics ``model.embed`` of each crop (the detector's own pooled features)."""
    from ptrack.detect.detector import find_model, quiet_ultralytics

    quiet_ultralytics()
    from ultralytics import YOLO

    model = YOLO(str(find_model(weights)))
    out = []
    for s in range(0, len(crops), batch):
        part = [c for c in crops[s:s + batch]]
        feats = model.embed(part, imgsz=160, verbose=False)
        out.extend(np.asarray(f.cpu().numpy(), np.float32).reshape(-1) for f in feats)
    X = np.stack(out)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def group_candidates(root: Path, name: str, ids: np.ndarray, trk: np.ndarray, dets) -> dict:
    """``group_embed`` and ``group_combo`` distance matrices over ``ids``, as ``group`` has them."""
    from ptrack.persons.appearance import link_distance
    from ptrack.persons.descriptors import tracklet_appearance
    from ptrack.settings import defaults
    from ptrack.store import Store

    g = defaults().group.replace(appearance="combo")
    with Store.open(root, create=False) as st:
        app = tracklet_appearance(st, st.video(name), trk, dets, g, cache_dir=shared_models_dir())
    if app.embed is None:
        return {}
    n = len(ids)
    out = {"group_embed": np.ones((n, n)), "group_combo": np.ones((n, n))}
    for i in range(n):
        for j in range(n):
            a, b = int(ids[i]), int(ids[j])
            h = app.hsv or {}
            d, parts = link_distance(h.get(a), h.get(b), app.embed.get(a), app.embed.get(b))
            out["group_combo"][i, j] = d if np.isfinite(d) else 1.0
            out["group_embed"][i, j] = parts.get("embed", 1.0)
    return out


def score_video(model: str, name: str, *, sizes, yolo: bool, min_boxes: int, details: dict,
                all_crops: bool = True) -> dict:
    from ptrack.persons import embed
    from ptrack.detect.crops import decode
    from ptrack.persons.metric import NotEnoughPairs, learn_kissme, tracklet_distances
    from ptrack.store import Store

    root = ensure_tracked(model, name)
    with Store.open(root, create=False) as st:
        v = st.video(name)
        trk, dets = st.tracklet_boxes(v.id)
        jpegs = st.crops((v.id, int(f), int(d)) for f, d in zip(dets.frame, dets.det))
        run = st.latest_run(v.id, "detect")
        settings = run.settings if run else {}
    frame, xyxy, conf = dets.frame, dets.xyxy.astype(np.float64), dets.conf
    if name in MOT_VIDEOS:
        labels, why = mot_labels(trk, frame, xyxy, MOT_VIDEOS[name]), ""
    else:
        labels, why = clip_labels(name, model, root, trk, frame, xyxy)
    info = {"boxes": int(len(trk)), "tracklets": int(len(np.unique(trk))),
            "labelled": int(len(labels)), "persons": int(len(set(labels.values()))), "why": why,
            "detect_settings": {k: settings.get("detect", {}).get(k) for k in ("model", "classes", "conf", "imgsz")}}
    details[f"{model}/{name}"] = info
    if why or len(labels) < 2:
        return {}
    lengths = {int(t): int(n) for t, n in zip(*np.unique(trk, return_counts=True))}
    ids = np.array(sorted(t for t in labels if lengths.get(t, 0) >= min_boxes))
    frames_of = {int(t): set(frame[trk == t].tolist()) for t in ids}
    iu, ju = np.triu_indices(len(ids), 1)
    same = np.array([labels[ids[i]] == labels[ids[j]] for i, j in zip(iu, ju)])
    disjoint = np.array([not (frames_of[ids[i]] & frames_of[ids[j]]) for i, j in zip(iu, ju)])
    info.update(scored_tracklets=int(len(ids)), same_pairs=int(same.sum()),
                diff_pairs=int((~same).sum()), same_disjoint=int((same & disjoint).sum()),
                diff_disjoint=int((~same & disjoint).sum()))
    crops = [decode(b) if b else None for b in jpegs]
    cand: dict[str, np.ndarray] = {}
    cand["hsv6"] = hsv_distances(ids, trk, frame, xyxy, conf, crops, 6)
    cand["hsv_all"] = hsv_distances(ids, trk, frame, xyxy, conf, crops, None)
    cand.update(group_candidates(root, name, ids, trk, dets))

    def add_learned(prefix: str, X: np.ndarray) -> None:
        tid, D = tracklet_distances(X, trk)
        at = np.searchsorted(tid, ids)
        cand[f"{prefix}_cos"] = D[np.ix_(at, at)]
        try:
            m = learn_kissme(X, trk, frame, xyxy=xyxy, dims=32)
            tid, D = tracklet_distances(X, trk, m)
            cand[f"{prefix}_kissme"] = D[np.ix_(at, at)]
        except NotEnoughPairs as exc:
            info[f"{prefix}_kissme"] = str(exc)

    for size in (sizes if all_crops else []):
        cache = WORK / "appearance-embeddings" / f"{model}-{name}-{len(jpegs)}-{size[0]}x{size[1]}.npy"
        if cache.exists():  # embeddings of these very boxes from an earlier run
            X = np.load(cache)
        else:
            emb = embed.load_embedder(WORK / "embed-models", size=size)
            t0 = time.perf_counter()
            X = emb.embed_jpegs(jpegs)
            secs = time.perf_counter() - t0
            info[f"embed_{size[0]}x{size[1]}_crops_per_s"] = round(len(jpegs) / secs, 1)
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, X)
        add_learned("mnv2" if size == sizes[0] else f"mnv2_{size[0]}x{size[1]}", X)
    # unlabelled per-video combination: each distance over its median across the scored pairs
    if "mnv2_kissme" in cand:
        med = lambda D: np.median(D[iu, ju]) or 1.0  # noqa: E731
        cand["hsv+mnv2_kissme"] = cand["hsv6"] / med(cand["hsv6"]) + cand["mnv2_kissme"] / med(cand["mnv2_kissme"])
    if yolo:
        weights = MODELS[model][1]
        add_learned("yolo", yolo_features(weights, crops))
    res = {}
    for key, D in cand.items():
        d = D[iu, ju]
        res[key] = {"disjoint": auc(d[same & disjoint], d[~same & disjoint]),
                    "all": auc(d[same], d[~same])}
    info["auc"] = res
    return res


# --------------------------------------------------------------------------- speed
SPEED_CLIPS = (("walking-pair", REPO / "tests" / "data" / "walking-pair.mp4", 0),
               ("TUD-Stadtmitte", MOT15 / "TUD-Stadtmitte" / "TUD-Stadtmitte.mp4", 60))


def speed(report: Report, sizes) -> None:
    """``ptrack detect`` (test model) on a clip, then the embedding of its crops, in one run.

    walking-pair (2 people a frame) is the brief's clip; the first 60 frames of TUD-Stadtmitte
    (10 boxes a frame) are the hard case for the budget, since embedding cost grows with boxes.
    """
    import shutil

    from ptrack.persons import embed
    from ptrack.store import Store

    for name, clip, max_frames in SPEED_CLIPS:
        if not clip.exists():
            continue
        root = WORK / f"appearance-speed-{name}"
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        (root / "models").symlink_to(shared_models_dir())
        extra = ["--max-frames", str(max_frames)] if max_frames else []
        child = run_child(ptrack_cmd("--project", str(root), "detect", str(clip), *MODELS["fall"], *extra),
                          timeout=3600)
        m = re.search(r"frames\s+(\d+) in ([\d.]+) s", child.stdout + child.stderr)
        if not m:
            report.add(f"{name}: detect frames/s", None, error="could not read detect's timing line")
            continue
        frames, det_s = int(m.group(1)), float(m.group(2))
        with Store.open(root, create=False) as st:
            v = st.video(name)
            d = st.detections(v.id)
            jpegs = st.crops((v.id, int(f), int(k)) for f, k in zip(d.frame, d.det))
        report.add(f"{name}: detect frames/s (test model)", frames / det_s, "fps",
                   note=f"{frames} frames, {len(jpegs) / max(frames, 1):.1f} boxes/frame, {det_s:.1f} s; {load_note()}")
        for size in sizes:
            emb = embed.load_embedder(WORK / "embed-models", size=size)
            emb.embed_jpegs(jpegs[:8])  # first-call warm-up (detect's own warm-up is in its time)
            t0 = time.perf_counter()
            emb.embed_jpegs(jpegs)
            emb_s = time.perf_counter() - t0
            tag = f"{name}: MobileNetV2 {size[0]}x{size[1]}"
            report.add(f"{tag} crops/s (OpenVINO)", len(jpegs) / emb_s, "crops/s",
                       note=f"{len(jpegs)} crops in {emb_s:.2f} s")
            report.add(f"{tag} time / detect time", emb_s / det_s, "", bar=0.2, op="<=", note=load_note())


# --------------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", default=",".join([*MOT_VIDEOS, *CLIP_VIDEOS]))
    ap.add_argument("--models", default="fall,coco")
    ap.add_argument("--sizes", default="224x224,256x128,128x64", help="embedding input sizes HxW, comma separated (first = headline)")
    ap.add_argument("--min-boxes", type=int, default=3)
    ap.add_argument("--yolo", action="store_true", help="also the detector's own features (slow)")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--no-auc", action="store_true")
    ap.add_argument("--no-all-crops", action="store_true",
                    help="skip the candidates that embed every crop (mnv2_*): only group's own")
    args = ap.parse_args()
    t0 = time.perf_counter()
    report = Report("appearance_auc")
    sizes = [tuple(int(x) for x in s.split("x")) for s in args.sizes.split(",")]
    if not MOT15.exists() and not CLIPS.exists():
        report.skipped = "shared data absent"
        finish(report, t0)
        return 0
    print(f"CPU: {machine_summary()['cpu']}; {load_note()}")
    table: dict[str, dict] = {}
    for model in ([] if args.no_auc else args.models.split(",")):
        for name in args.videos.split(","):
            if name in MOT_VIDEOS and not (MOT_VIDEOS[name] / "gt.txt").exists():
                continue
            if name not in MOT_VIDEOS and model != "fall":
                continue  # clip labels were made on the test model's tracklets
            res = score_video(model, name, sizes=sizes, yolo=args.yolo, min_boxes=args.min_boxes,
                              details=report.details, all_crops=not args.no_all_crops)
            if res:
                table[f"{model}/{name}"] = res
    keys = sorted({k for r in table.values() for k in r}, key=lambda k: (k.split("_")[0] != "hsv6", k))
    for kind in ("disjoint", "all"):
        print(f"\nROC AUC, same vs different person, {kind} tracklet pairs (out-of-sample: no label used)")
        print(f"{'video':34s}" + "".join(f"{k:>18s}" for k in keys))
        for vid, r in table.items():
            print(f"{vid:34s}" + "".join(f"{r[k][kind]:18.3f}" if k in r and r[k][kind] is not None else f"{'-':>18s}" for k in keys))
        means = {}
        for k in keys:
            vals = [r[k][kind] for r in table.values() if k in r and r[k][kind] is not None]
            means[k] = float(np.mean(vals)) if vals else None
        for vid in table:
            i = report.details[vid]
            print(f"  {vid}: {i['scored_tracklets']} tracklets, same/diff pairs "
                  + (f"{i['same_disjoint']}/{i['diff_disjoint']}" if kind == "disjoint" else f"{i['same_pairs']}/{i['diff_pairs']}"))
        print(f"{'mean':34s}" + "".join(f"{means[k]:18.3f}" if means[k] is not None else f"{'-':>18s}" for k in keys))
        common = [r for r in table.values() if all(k in r and r[k][kind] is not None for k in keys)]
        if common:
            cm = {k: float(np.mean([r[k][kind] for r in common])) for k in keys}
            print(f"{f'mean of the {len(common)} runs all have':34s}" + "".join(f"{cm[k]:18.3f}" for k in keys))
            for k in keys:
                report.add(f"AUC {kind} common-mean {k}", cm[k], note=f"mean of the {len(common)} runs every candidate scores")
        for k in keys:
            if means[k] is not None:
                n = sum(1 for r in table.values() if k in r and r[k][kind] is not None)
                report.add(f"AUC {kind} mean {k}", means[k], note=f"mean of {n} video/model runs")
    report.details["auc_table"] = table
    if not args.no_speed:
        speed(report, sizes)
    finish(report, t0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
