"""Appearance of tracklets from their best stored crops: colour histograms and learned embeddings.

Both pick a few good crops per tracklet, spread over its time (:func:`sample_rows`), so their
cost is bounded per tracklet, not per box.

* :func:`tracklet_descriptors`: HSV histograms (:mod:`ptrack.appearance`), recomputed at every
  ``group`` (cheap: ``appearance_samples`` crops decoded per tracklet).
* :func:`tracklet_embeddings`: MobileNetV2 embeddings (:mod:`ptrack.embed`) of ``embed_samples``
  crops per tracklet, computed once and stored in the project per detection (float16, keyed by
  video, frame, det and the embedder's identity), in batches that are committed one by one, so
  an interrupted run keeps what it stored and a re-track reuses every vector of a detection it
  samples again. A metric is then learned per video from the tracklet structure
  (:func:`ptrack.metric.learn_kissme`), and each tracklet gets its mean vector in that metric's
  space (:func:`ptrack.metric.tracklet_vectors`).

:func:`tracklet_appearance` gives ``group`` what ``group.appearance`` asks for (``hsv``, the
default, or ``combo``: both kinds, their distances averaged), falling back to the colour
histograms (with a note saying why) where the embedding cannot be had. An ``embed`` choice
(the embedding alone) was measured and dropped: it was worse than either on persons and AUC
(``bench/appearance_group.py``, ``bench/appearance_auc.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ptrack.errors import PtrackError
from ptrack.settings import GroupSettings
from ptrack.store import Store, Video

Progress = Callable[[int, int], None]
"""``progress(done, total)``: crops embedded so far, out of how many are missing."""

EMBED_BATCH = 32
"""Crops per embedding call and per store commit."""


@dataclass
class Appearance:
    """What ``group`` gets: per-tracklet colour descriptors and/or embedding vectors.

    ``used`` says which kinds are in (``hsv``, ``embed``, ``combo``, or ``off``); ``notes``
    explain a fallback (one line each); ``counts`` go into the run's stats.
    """

    hsv: dict[int, np.ndarray] | None = None
    embed: dict[int, np.ndarray] | None = None
    used: str = "off"
    notes: list[str] = field(default_factory=list)
    counts: dict = field(default_factory=dict)


def sample_rows(store: Store, video: Video, tid: np.ndarray, det, k: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, owners)``: up to ``k`` good rows of each tracklet (indices into ``det``) and
    their tracklet ids, grouped by tracklet (ascending), each tracklet's rows in frame order.

    Good = confident, large, not covered by another box of its frame (every detection of the
    video counts, other persons included), spread over the tracklet's time
    (:func:`ptrack.appearance.pick_descriptor_samples`).
    """
    from ptrack import appearance
    from ptrack.sampling import covered_share, rows_of

    everyone = store.detections(video.id)  # sorted by (frame, det)
    cover_all = covered_share(everyone.frame, everyone.xyxy)
    at = rows_of(det.frame, det.det, everyone.frame, everyone.det)
    covered = np.where(at >= 0, cover_all[np.maximum(at, 0)], 0.0)
    order = np.argsort(tid, kind="stable")
    ids, starts = np.unique(tid[order], return_index=True)
    rows, owners = [], []
    for t, r in zip(ids.tolist(), np.split(order, starts[1:])):
        if t < 0:
            continue
        picked = r[appearance.pick_descriptor_samples(
            det.frame[r], det.xyxy[r], det.conf[r], k, covered=covered[r])]
        rows.append(picked)
        owners.append(np.full(len(picked), t, np.int64))
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(rows).astype(np.int64), np.concatenate(owners)


def tracklet_descriptors(store: Store, video: Video, tid: np.ndarray, det,
                         settings: GroupSettings, skipped: list[int] | None = None
                         ) -> dict[int, np.ndarray] | None:
    """Colour descriptor per tracklet from ``settings.appearance_samples`` good crops of it,
    spread over its time (None without crops or tracklets).

    ``tid`` and ``det`` are the tracklet rows (``store.tracklet_boxes``). A missing,
    undecodable or tiny crop is skipped, never fatal; how many were is appended to ``skipped``
    when given.
    """
    if not video.has_crops or not len(tid):
        return None
    from ptrack import appearance, crops

    rows, owners = sample_rows(store, video, tid, det, settings.appearance_samples)
    if not len(rows):
        return None
    blobs = store.crops((video.id, int(det.frame[r]), int(det.det[r])) for r in rows)
    # one tracklet's crops decoded at a time (owners are contiguous): decoding them all first
    # held ~100 KB of pixels per sample, 1.3 GB on a 30-minute video (bench/person_stages.py)
    out: dict[int, np.ndarray] = {}
    bad = 0
    bounds = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1], True])
    for start, end in zip(bounds[:-1], bounds[1:]):
        imgs = [crops.decode(b) for b in blobs[start:end] if b]
        imgs = [i for i in imgs if i is not None]
        bad += int(end - start) - len(imgs)
        if imgs:
            try:
                out[int(owners[start])] = appearance.crop_descriptor(imgs)
            except PtrackError:  # only tiny crops: this tracklet goes without
                pass
    if skipped is not None:
        skipped.append(bad)
    return out or None


def stored_embeddings(store: Store, video: Video, frame: np.ndarray, dets: np.ndarray, *,
                      model: str, embedder: Callable[[], object], progress: Progress | None = None,
                      batch: int = EMBED_BATCH) -> tuple[np.ndarray, int]:
    """``(vectors (n, d) float32, how many were computed now)`` of the detections
    ``(frame[i], dets[i])``: stored ones are read, the others embedded from their crops
    (``embedder()`` gives a :class:`ptrack.embed.Embedder`, called only when some are missing)
    and stored batch by batch. A crop that cannot be read gives (and stores) a NaN row.
    A read-only project computes without storing.
    """
    found, X = store.embeddings(video.id, model, frame, dets)
    missing = np.flatnonzero(~found)
    if not len(missing):
        return X, 0
    emb = embedder()
    done = 0
    if progress:
        progress(0, len(missing))
    for s in range(0, len(missing), batch):
        idx = missing[s:s + batch]
        keys = [(video.id, int(frame[i]), int(dets[i])) for i in idx]
        V = emb.embed_jpegs(store.crops(keys))
        if X.shape[1] != V.shape[1]:  # nothing was stored yet: the embedder gives the length
            X = np.full((len(frame), V.shape[1]), np.nan, np.float32)
        X[idx] = V
        if not store.read_only:
            store.put_embeddings(video.id, model, frame[idx], dets[idx], V)
        done += len(idx)
        if progress:
            progress(done, len(missing))
    return X, done


def tracklet_embeddings(store: Store, video: Video, tid: np.ndarray, det, settings: GroupSettings,
                        *, progress: Progress | None = None, cache_dir: Path | None = None,
                        counts: dict | None = None) -> dict[int, np.ndarray]:
    """Per tracklet, its mean embedding in the video's learned metric space (unit: the typical
    distance of two different people; see :func:`ptrack.metric.tracklet_vectors`).

    Raises:
        ptrack.embed.EmbedderUnavailable: The package (or OpenVINO, or torch for the first
            conversion) is absent.
        ptrack.metric.NotEnoughPairs: Too few tracklets share a frame to learn the metric.
    """
    from ptrack import embed
    from ptrack.metric import cooccurring, learn_kissme, tracklet_vectors

    model = embed.model_key()
    rows, owners = sample_rows(store, video, tid, det, settings.embed_samples)

    def embedder():
        from ptrack.openvino_backend import cache_dir as user_cache

        return embed.load_embedder(Path(cache_dir) if cache_dir else user_cache(), batch=EMBED_BATCH)

    X, computed = stored_embeddings(store, video, det.frame[rows], det.det[rows], model=model,
                                    embedder=embedder, progress=progress)
    if counts is not None:
        counts.update(embedded=computed, embeddings_reused=int(len(rows) - computed))
    xyxy = np.asarray(det.xyxy, np.float64)
    co = cooccurring(tid, det.frame, xyxy=xyxy)
    metric = learn_kissme(X, owners, det.frame[rows], xyxy=xyxy[rows], cooccur=co)
    ids, V = tracklet_vectors(X, owners, metric)
    return {int(t): v for t, v in zip(ids.tolist(), V)}


def tracklet_appearance(store: Store, video: Video, tid: np.ndarray, det, settings: GroupSettings,
                        *, skipped: list[int] | None = None, progress: Progress | None = None,
                        cache_dir: Path | None = None) -> Appearance:
    """The appearance ``group`` uses, as ``settings.appearance`` asks (``hsv`` or ``combo``),
    falling back to the colour histograms alone with a note when the embedding cannot be had
    (package absent, too few tracklets on screen together to learn the metric)."""
    out = Appearance()
    if not settings.use_appearance or not video.has_crops or not len(tid):
        return out
    if settings.appearance == "combo":
        from ptrack.embed import EmbedderUnavailable
        from ptrack.metric import NotEnoughPairs

        try:
            out.embed = tracklet_embeddings(store, video, tid, det, settings, progress=progress,
                                            cache_dir=cache_dir, counts=out.counts) or None
        except EmbedderUnavailable as exc:
            out.notes.append(exc.message)
        except NotEnoughPairs:
            out.notes.append("too few tracklets are on screen together to learn an appearance "
                             "metric for this video; using colour histograms instead")
    out.hsv = tracklet_descriptors(store, video, tid, det, settings, skipped)
    out.used = ("combo" if out.hsv and out.embed else "embed" if out.embed
                else "hsv" if out.hsv else "off")
    return out
