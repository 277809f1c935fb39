"""Which appearance tells humans apart? ROC AUC on human-labelled tracklet pairs, leave one video out.

Usage: PYTHONPATH=. python bench/appearance_humans.py [--models coco,fall] [--clips A,B]
       [--min-boxes 3] [--no-embed] [--json PATH]

For each human-labelled clip (``tests/data/labels/humans/``, the clips of ``bench/humans.py``)
and detector, the detections already in ``PTRACK_BENCH_WORK/human-labels/MODEL`` (made by
``bench/humans.py``; this script never detects) are tracked in-process as ``ptrack track``
tracks them (shipped settings). Each box is matched to the human-level ground truth of its
frame (Hungarian, IoU >= 0.5); a tracklet takes the human most of its boxes match when that is
at least half of its boxes, and is left out otherwise. Pairs: every two such tracklets with at
least ``--min-boxes`` boxes that never share a frame (the pairs ``group`` must decide from
appearance); same human = positive.

Candidates, each a distance between two tracklets (all on crops stored by ``ptrack detect``):

* colour histograms (``ptrack.persons.appearance``), three layouts of the body:
  ``hsv`` = the shipped one, upper and lower half of the central region (the box less 20% of
  its width each side and 10% of its height top and bottom); ``hsv3`` = that central region cut
  in three bands, 0-20% / 20-55% / 55-100% of its height (head and shoulders / torso / legs);
  ``hsv3b`` = three bands of the whole box height, 3-20% / 20-55% / 55-90% (the head band
  starts above the central region's top);
* each over the 6 crops ``group`` picks (``6``: ``ptrack.persons.descriptors.sample_rows``,
  which avoids crops covered by another box) or every crop of the tracklet (``all``), the
  crops' histograms averaged uniformly or (``_q``) weighted by ``1 - covered`` (covered: the
  largest share of the box another box of its frame covers, ``covered_share``); Hellinger
  distance per part, averaged;
* ``group_embed``: MobileNetV2 embeddings of the 8 crops per tracklet ``group`` picks under the
  KISSME metric learned per video from the tracklets alone (``ptrack.persons.metric``), on the
  0-1 scale (``embedding_distance``), computed here without storing them;
* ``hsvk6`` / ``hsvk_all``: a colour metric learned per video as the embedding's is (KISSME,
  PCA 16, over the square roots of the ``hsv`` histograms of the 6 picked crops or of every
  crop; positives within a tracklet, negatives between tracklets sharing a frame; no label),
  same 0-1 scale; ``hsv6+hsvkX``: its mean with ``hsv6``;
* ``X+emb``: the mean of colour candidate X and ``group_embed`` (``group_combo`` = ``hsv6+emb``,
  ``group.appearance: combo``).

Beside the AUC (pooled over every pair, and the mean of the clips'), ``strict``: the share of
same-human pairs closer than every different-human pair of their clip.

Then a leave-one-video-out choice, per model and over both, among the colour layouts and
weightings (what a new ``hsv`` descriptor could be), among every colour candidate (with the
learned colour metric), and among all candidates: per held-out clip the
candidate with the best pooled AUC over the other clips' pairs, scored on the held-out clip;
beside it the in-sample choice (best pooled AUC over every clip). Seconds per video: each
candidate's crops decoded and described (measured crop by crop), plus the embedding and metric.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (HUMAN_CLIPS, RESULTS, WORK, load_note, machine_summary,  # noqa: E402
                          shared_models_dir)

LAYOUTS = {
    "hsv": {"margin_x": 0.2, "bands": (0.1, 0.5, 0.9)},
    "hsv3": {"margin_x": 0.2, "bands": (0.1, 0.26, 0.54, 0.9)},
    "hsv3b": {"margin_x": 0.2, "bands": (0.03, 0.2, 0.55, 0.9)},
}
"""Histogram layouts: band edges as shares of the box height (``hsv3``: 0/20/55/100% of the
central region 10-90%), the width less ``margin_x`` each side."""
PROJECTS = WORK / "human-labels"


def band_hist(crop: np.ndarray, *, margin_x: float, bands: tuple[float, ...]) -> np.ndarray | None:
    """One L1-normalised HSV histogram per band (concatenated), or None for a tiny crop."""
    from ptrack.persons.appearance import PART_DIM, _bins

    c = np.asarray(crop)
    if c is None or c.ndim != 3 or c.shape[2] < 3 or c.shape[0] < 4 or c.shape[1] < 2:
        return None
    hgt, wid = c.shape[:2]
    x0, x1 = int(wid * margin_x), max(int(wid * margin_x) + 1, int(round(wid * (1 - margin_x))))
    edges = [int(round(hgt * b)) for b in bands]
    y0, y1 = edges[0], max(edges[0] + len(bands) - 1, edges[-1])
    idx = _bins(c[y0:y1, x0:x1, :3])
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        part = idx[max(a - y0, 0):max(b - y0, a - y0 + 1)]
        h = np.bincount(part.ravel(), minlength=PART_DIM).astype(np.float64)
        out.append(h / h.sum() if h.sum() > 0 else np.full(PART_DIM, 1.0 / PART_DIM))
    return np.concatenate(out)


def hellinger(a: np.ndarray, b: np.ndarray, parts: int) -> float:
    d = 0.0
    for pa, pb in zip(np.split(a, parts), np.split(b, parts)):
        pa, pb = pa / pa.sum(), pb / pb.sum()
        d += np.sqrt(max(0.0, 1.0 - min(1.0, float(np.sqrt(pa * pb).sum()))))
    return d / parts


def auc(same: np.ndarray, diff: np.ndarray) -> float | None:
    """ROC AUC = P(d_same < d_diff), ties half; None without both kinds of pairs."""
    same, diff = np.asarray(same, float), np.asarray(diff, float)
    if not len(same) or not len(diff):
        return None
    lt = (same[:, None] < diff[None, :]).sum() + 0.5 * (same[:, None] == diff[None, :]).sum()
    return float(lt / (len(same) * len(diff)))


# ------------------------------------------------------------------------------------- one set
def tracklet_humans(det, tid: np.ndarray, spec: dict) -> dict[int, int]:
    """Tracklet -> human (most of its boxes, at least half of them, IoU >= 0.5 one-to-one)."""
    from ptrack.boxes import Boxes
    from ptrack.formats.evaluate import humans_from_map, iou_matrix, match_boxes
    from ptrack.formats.mot import read_mot

    gt = read_mot(spec["gt"], kind="gt")
    if spec.get("extra"):
        gt = Boxes.concat([gt, read_mot(spec["extra"], kind="gt")])
    if spec.get("map"):
        gt = humans_from_map(gt, json.loads(Path(spec["map"]).read_text()))
    keep = gt.data["keep"]
    gf, gid, gbox = gt.frame[keep], gt.tracklet[keep], gt.xyxy[keep]
    box_h = np.full(len(tid), -1, np.int64)
    for f in np.unique(det.frame):
        r = np.flatnonzero(det.frame == f)
        g = np.flatnonzero(gf == f)
        if len(g):
            i, j = match_boxes(iou_matrix(det.xyxy[r], gbox[g]), 0.5)
            box_h[r[i]] = gid[g[j]]
    out = {}
    for t in np.unique(tid[tid >= 0]):
        h = box_h[tid == t]
        vals, counts = np.unique(h[h >= 0], return_counts=True)
        if len(vals) and counts.max() >= 0.5 * len(h):
            out[int(t)] = int(vals[np.argmax(counts)])
    return out


def score_set(model: str, clip: str, min_boxes: int, embedder) -> dict:
    from ptrack.detect import crops as crops_mod
    from ptrack.persons.appearance import crop_hist, embedding_distance
    from ptrack.persons.descriptors import sample_rows
    from ptrack.persons.metric import NotEnoughPairs, cooccurring, learn_kissme, tracklet_vectors
    from ptrack.persons.sampling import covered_share, rows_of
    from ptrack.persons.track import track_detections
    from ptrack.settings import defaults
    from ptrack.store import Store

    spec = HUMAN_CLIPS[clip]
    settings = defaults()
    with Store.open(PROJECTS / model, create=False) as st:
        v = st.video(Path(spec["video"]).stem)
        det = st.detections(v.id)
        if spec.get("max_frames"):
            det = det[det.frame < spec["max_frames"]]
        tid = track_detections(det.frame, det.xyxy, det.conf, det.cls, fps=float(v.fps),
                               settings=settings.track)
        everyone = st.detections(v.id)
        cover_all = covered_share(everyone.frame, everyone.xyxy)
        at = rows_of(det.frame, det.det, everyone.frame, everyone.det)
        covered = np.where(at >= 0, cover_all[np.maximum(at, 0)], 0.0)
        pick6, own6 = sample_rows(st, v, tid, det, settings.group.appearance_samples)
        pick8, own8 = sample_rows(st, v, tid, det, settings.group.embed_samples)
        rows = np.flatnonzero(tid >= 0)
        jpegs = dict(zip(rows.tolist(), st.crops((v.id, int(det.frame[r]), int(det.det[r])) for r in rows)))
    labels = tracklet_humans(det, tid, spec)
    # per crop: decode once (timed), each layout's histograms (timed)
    hist = {k: {} for k in LAYOUTS}
    secs_decode, secs_hist = {}, {k: {} for k in LAYOUTS}
    for r, blob in jpegs.items():
        t0 = time.perf_counter()
        img = crops_mod.decode(blob) if blob else None
        secs_decode[r] = time.perf_counter() - t0
        for k, lay in LAYOUTS.items():
            t0 = time.perf_counter()
            hist[k][r] = (None if img is None else crop_hist(img) if k == "hsv"  # the shipped one
                          else band_hist(img, **lay))
            secs_hist[k][r] = time.perf_counter() - t0
    lengths = {int(t): int((tid == t).sum()) for t in labels}
    ids = sorted(t for t in labels if lengths[t] >= min_boxes)
    frames_of = {t: set(det.frame[tid == t].tolist()) for t in ids}
    pairs = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1:] if not frames_of[a] & frames_of[b]]
    same = np.array([labels[a] == labels[b] for a, b in pairs], bool)
    picked = {t: pick6[own6 == t] for t in ids}
    every = {t: np.flatnonzero(tid == t) for t in ids}
    cand: dict[str, np.ndarray] = {}
    cost: dict[str, float] = {}
    for k, lay in LAYOUTS.items():
        parts = len(lay["bands"]) - 1
        for agg, src in (("6" if k == "hsv" else "_6", picked), ("_all", every)):
            for q in ("", "_q"):
                desc = {}
                for t in ids:
                    rs = [r for r in src[t].tolist() if hist[k][r] is not None]
                    if not rs:
                        continue
                    H = np.stack([hist[k][r] for r in rs])
                    w = (1.0 - covered[rs]) if q else np.ones(len(rs))
                    w = w if w.sum() > 0 else np.ones(len(rs))
                    desc[t] = (H * w[:, None]).sum(0) / w.sum()
                cand[f"{k}{agg}{q}"] = np.array([hellinger(desc[a], desc[b], parts)
                                                    if a in desc and b in desc else 1.0
                                                    for a, b in pairs])
                used = [r for t in ids for r in src[t].tolist()]
                cost[f"{k}{agg}{q}"] = sum(secs_decode[r] + secs_hist[k][r] for r in used)
    # a colour metric learned per video (KISSME over the square roots of the crops' histograms,
    # from the tracklets alone, as the embedding's): on every crop, or on the 6 picked ones
    xyxy = np.asarray(det.xyxy, np.float64)
    co = cooccurring(tid, det.frame, xyxy=xyxy)
    info_k = None
    for agg, rs in (("6", pick6), ("_all", rows)):
        t0 = time.perf_counter()
        rs = np.array([r for r in rs.tolist() if hist["hsv"][r] is not None], np.int64)
        X = np.sqrt(np.stack([hist["hsv"][r] for r in rs]))
        try:
            metric = learn_kissme(X, tid[rs], det.frame[rs], xyxy=xyxy[rs], cooccur=co, dims=16)
            vid, V = tracklet_vectors(X, tid[rs], metric)
            vec = dict(zip(vid.tolist(), V))
            cand[f"hsvk{agg}"] = np.array([embedding_distance(vec[a], vec[b])
                                           if a in vec and b in vec else 1.0 for a, b in pairs])
            used = rs.tolist()
            cost[f"hsvk{agg}"] = (time.perf_counter() - t0
                                  + sum(secs_decode[r] + secs_hist["hsv"][r] for r in used))
        except NotEnoughPairs as exc:
            info_k = f"no colour metric: {exc}"
    for agg in ("6", "_all"):
        if f"hsvk{agg}" in cand:
            cand[f"hsv6+hsvk{agg}"] = (cand["hsv6"] + cand[f"hsvk{agg}"]) / 2
            cost[f"hsv6+hsvk{agg}"] = cost["hsv6"] + cost[f"hsvk{agg}"]
    info = {"boxes": int(len(det)), "tracklets": int(len(np.unique(tid[tid >= 0]))),
            "labelled": len(labels), "scored": len(ids), "humans": len(set(labels[t] for t in ids)),
            "same_pairs": int(same.sum()), "diff_pairs": int((~same).sum())}
    if info_k:
        info["hsvk"] = info_k
    if embedder is not None:
        t0 = time.perf_counter()
        X = embedder.embed_jpegs(list(jpegs_of(jpegs, pick8)))
        t_emb = time.perf_counter() - t0
        try:
            t0 = time.perf_counter()
            metric = learn_kissme(X, own8, det.frame[pick8], xyxy=xyxy[pick8], cooccur=co)
            vid, V = tracklet_vectors(X, own8, metric)
            vec = dict(zip(vid.tolist(), V))
            t_metric = time.perf_counter() - t0
            cand["group_embed"] = np.array([embedding_distance(vec[a], vec[b])
                                            if a in vec and b in vec else 1.0 for a, b in pairs])
            cost["group_embed"] = t_emb + t_metric
            for k in [c for c in list(cand) if c.endswith("6") or c.endswith("6_q")
                      or c.startswith("hsvk") and "+" not in c]:
                cand[f"{k}+emb"] = (cand[k] + cand["group_embed"]) / 2
                cost[f"{k}+emb"] = cost[k] + cost["group_embed"]
        except NotEnoughPairs as exc:
            info["group_embed"] = f"no metric: {exc}"
    info["auc"] = {k: auc(d[same], d[~same]) for k, d in cand.items()}
    info["seconds"] = cost
    return {"info": info, "same": same, "dist": cand}


def jpegs_of(jpegs: dict, rows: np.ndarray):
    for r in rows.tolist():
        yield jpegs.get(r)


# ------------------------------------------------------------------------------------- choice
def pooled(sets: list[dict], name: str) -> float | None:
    same = np.concatenate([s["same"] for s in sets if name in s["dist"]] or [np.zeros(0, bool)])
    d = np.concatenate([s["dist"][name] for s in sets if name in s["dist"]] or [np.zeros(0)])
    return auc(d[same], d[~same])


def best(sets: list[dict], among: list[str]) -> str:
    scores = {n: pooled(sets, n) for n in among}
    return max(among, key=lambda n: (scores[n] if scores[n] is not None else -1, n == among[0]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="coco", help="comma-separated: coco, fall")
    ap.add_argument("--clips", default=",".join(HUMAN_CLIPS))
    ap.add_argument("--min-boxes", type=int, default=3)
    ap.add_argument("--no-embed", action="store_true", help="colour candidates only")
    ap.add_argument("--json", type=Path, default=RESULTS / "appearance_humans.json",
                    help="every set's pair counts, AUCs and seconds")
    args = ap.parse_args(argv)
    print(f"CPU: {machine_summary()['cpu']}; {load_note()}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    embedder = None
    if not args.no_embed:
        from ptrack.persons import embed

        embedder = embed.load_embedder(shared_models_dir(), batch=32)
    out = {}
    for model in args.models.split(","):
        if not (PROJECTS / model / "ptrack.db").exists():
            print(f"SKIP {model}: no project {PROJECTS / model} (run bench/humans.py --models {model} first)")
            continue
        sets = {}
        for clip in args.clips.split(","):
            sets[clip] = score_set(model, clip, args.min_boxes, embedder)
        out[model] = sets
        report(model, sets)
    if len(out) > 1:  # every model's pairs together; a fold holds out one clip for all models
        report(" + ".join(out), {f"{m}/{c}": s for m, sets in out.items() for c, s in sets.items()},
               fold=lambda key: key.split("/", 1)[1])
    print(f"CPU: {machine_summary()['cpu']}; {load_note()}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({m: {c: s["info"] for c, s in sets.items()}
                                         for m, sets in out.items()}, indent=1, default=float))
    return 0


ABBREVIATIONS = {"coco/": "c/", "fall/": "f/", "OneLeaveShopReenter1": "OLSR1",
                 "EnterExitCrossingPaths": "EECP", "TwoLeaveShop2cor": "TLS2cor",
                 "one-by-one-person": "one-by-one", "TUD-Stadtmitte": "TUD-Stadt"}


def abbreviated(name: str) -> str:
    for long, short in ABBREVIATIONS.items():
        name = name.replace(long, short)
    return name


def fmt(x: float | None) -> str:
    return f"{x:6.3f}" if x is not None else f"{'-':>6s}"


def strict(sets: list[dict], name: str) -> float | None:
    """Share of same-human pairs closer than every different-human pair of their set (sets with
    both kinds): the joins a threshold could make without one wrong join, per video."""
    ok = total = 0
    for s in sets:
        if name in s["dist"] and s["same"].any() and (~s["same"]).any():
            d = s["dist"][name]
            ok += int((d[s["same"]] < d[~s["same"]].min()).sum())
            total += int(s["same"].sum())
    return ok / total if total else None


def versus(sets: dict[str, dict], a: str, b: str) -> str:
    """How many sets ``a`` scores above / equal to / below ``b`` (sets where both score)."""
    both = [(s["info"]["auc"].get(a), s["info"]["auc"].get(b)) for s in sets.values()]
    both = [(x, y) for x, y in both if x is not None and y is not None]
    return (f"{sum(x > y + 1e-9 for x, y in both)}/{sum(abs(x - y) <= 1e-9 for x, y in both)}/"
            f"{sum(x < y - 1e-9 for x, y in both)}")


def bootstrap(sets: list[dict], a: str, b: str, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% interval of pooled AUC(a) - AUC(b) over pairs resampled within each set (pairs share
    tracklets, so this is narrower than the truth: a floor on the uncertainty)."""
    rng = np.random.default_rng(seed)
    have = [s for s in sets if a in s["dist"] and b in s["dist"] and len(s["same"])]
    out = []
    for _ in range(n):
        pick = [rng.integers(0, len(s["same"]), len(s["same"])) for s in have]
        same = np.concatenate([s["same"][p] for s, p in zip(have, pick)])
        da = np.concatenate([s["dist"][a][p] for s, p in zip(have, pick)])
        db = np.concatenate([s["dist"][b][p] for s, p in zip(have, pick)])
        x, y = auc(da[same], da[~same]), auc(db[same], db[~same])
        if x is not None and y is not None:
            out.append(x - y)
    return (float(np.percentile(out, 2.5)), float(np.percentile(out, 97.5))) if out else (np.nan, np.nan)


def report(model: str, sets: dict[str, dict], fold=lambda key: key) -> None:
    """Per set and pooled AUC of every candidate, the bootstrap against hsv6, the choices."""
    clips = list(sets)
    names = list(next(iter(sets.values()))["dist"])
    for s in sets.values():
        names += [n for n in s["dist"] if n not in names]
    layouts = [n for n in names if n.startswith("hsv") and "+" not in n and "hsvk" not in n]
    colour = [n for n in names if n.startswith("hsv") and "+emb" not in n]
    print(f"\n== {model}: ROC AUC, same vs different human, tracklet pairs never on screen together")
    wide = len(clips) > 8  # several models: pooled figures only (per set: the tables above)
    for c in ([] if wide else clips):
        i = sets[c]["info"]
        print(f"  {c:28s} {i['boxes']:5d} boxes {i['tracklets']:3d} tracklets, {i['labelled']:3d} "
              f"with a human, {i['scored']:3d} scored ({i['humans']} humans): "
              f"{i['same_pairs']:4d} same / {i['diff_pairs']:4d} different pairs"
              + (f"; {i['group_embed']}" if "group_embed" in i else ""))
    none = [c for c in clips if not sets[c]["info"]["same_pairs"] or not sets[c]["info"]["diff_pairs"]]
    if none:
        print(f"  no AUC (no same-human or no different-human pair): {', '.join(none)}")
    short = {c: abbreviated(c) for c in clips}
    w = max(11, max(len(v) for v in short.values()) + 1)
    shown = [] if wide else clips
    print(f"{'candidate':16s}" + "".join(f"{short[c]:>{w}s}" for c in shown) + f"{'pooled':>8s}{'mean':>7s}"
          f"{'strict':>7s}{'s/video':>9s}  vs hsv6 per set: better/same/worse")
    for n in names:
        vals = [sets[c]["info"]["auc"].get(n) for c in clips]
        ok = [v for v in vals if v is not None]
        vals = vals if not wide else []
        secs = [sets[c]["info"]["seconds"].get(n) for c in clips if n in sets[c]["info"]["seconds"]]
        print(f"{n:16s}" + "".join(f"{fmt(v):>{w}s}" for v in vals)
              + f"{fmt(pooled(list(sets.values()), n)):>8s}{fmt(float(np.mean(ok)) if ok else None):>7s}"
              + f"{fmt(strict(list(sets.values()), n)):>7s}"
              + (f"{np.mean(secs):9.2f}" if secs else f"{'':9s}") + "  " + versus(sets, n, "hsv6"))
    every = list(sets.values())
    print("pooled AUC minus hsv6's, 95% interval over resampled pairs (a floor on the uncertainty):")
    for n in names[1:]:
        lo, hi = bootstrap(every, n, "hsv6")
        print(f"  {n:16s} {pooled(every, n) - pooled(every, 'hsv6'):+.3f}  [{lo:+.3f}, {hi:+.3f}]")
    for label, among in (("colour layouts and weightings (hsv, hsv3, hsv3b; 6 / all; _q)", layouts),
                         ("colour only, with the per-video colour metric", colour),
                         ("all candidates", names)):
        chosen_all = best(list(sets.values()), among)
        print(f"\nleave one video out, {label}: in-sample choice {chosen_all} "
              f"(pooled {fmt(pooled(list(sets.values()), chosen_all))})")
        print(f"{'held-out set':32s} {'chosen on the others':22s} {'held out':>9s} {'in-sample':>10s} "
              f"{'hsv6':>7s}")
        held_sets = []
        for c in clips:
            others = [sets[o] for o in clips if fold(o) != fold(c)]
            ch = best(others, among)
            h = sets[c]["info"]["auc"].get(ch)
            held_sets.append({"same": sets[c]["same"], "dist": {"x": sets[c]["dist"].get(ch, np.zeros(0))}}
                             if ch in sets[c]["dist"] else {"same": np.zeros(0, bool), "dist": {}})
            print(f"{c:32s} {ch:22s} {fmt(h):>9s} {fmt(sets[c]['info']['auc'].get(chosen_all)):>10s} "
                  f"{fmt(sets[c]['info']['auc'].get('hsv6')):>7s}")
        print(f"{'pooled':32s} {'':22s} {fmt(pooled(held_sets, 'x')):>9s} "
              f"{fmt(pooled(every, chosen_all)):>10s} {fmt(pooled(every, 'hsv6')):>7s}")


if __name__ == "__main__":
    raise SystemExit(main())
