"""Appearance of tracklets from their best stored crops: colour histograms and learned embeddings.

Both pick a few good crops per tracklet, spread over its time (:func:`sample_rows`), so their
cost is bounded per tracklet, not per box.

* :func:`tracklet_descriptors`: HSV histograms (:mod:`ptrack.persons.appearance`) of
  ``appearance_samples`` crops per tracklet, each crop's computed once and stored like the
  embeddings below (model key :data:`ptrack.persons.appearance.HIST_KEY`).
* :func:`tracklet_embeddings`: MobileNetV2 embeddings (:mod:`ptrack.persons.embed`) of ``embed_samples``
  crops per tracklet, computed once and stored in the project per detection (float16, keyed by
  video, frame, det and the embedder's identity), in batches that are committed one by one, so
  an interrupted run keeps what it stored and a re-track reuses every vector of a detection it
  samples again. A metric is then learned per video from the tracklet structure
  (:func:`ptrack.persons.metric.learn_kissme`), and each tracklet gets its mean vector in that metric's
  space (:func:`ptrack.persons.metric.tracklet_vectors`).

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
    (:func:`ptrack.persons.appearance.pick_descriptor_samples`).
    """
    from ptrack.persons import appearance
    from ptrack.persons.sampling import covered_share, rows_of

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


HIST_BATCH = 1024
"""Crops described per batch and per store commit for the colour histograms (cheap: ~0.3 ms a crop)."""


class CropHists:
    """The colour histograms' "embedder" for :func:`stored_embeddings`: one
    :func:`ptrack.persons.appearance.crop_hist` row per JPEG crop (NaN where the crop is missing,
    undecodable or too small), as float32, which the store keeps exactly (float16 moved
    histogram distances by ~1e-4, enough to flip a link on TUD-Campus), so a first ``group``
    and a re-run that reads them back see the same numbers."""

    def embed_jpegs(self, blobs) -> np.ndarray:
        from ptrack.detect import crops
        from ptrack.persons import appearance

        out = np.full((len(blobs), appearance.DIM), np.nan, np.float32)
        for i, b in enumerate(blobs):
            img = crops.decode(b)
            h = appearance.crop_hist(img) if img is not None else None
            if h is not None:
                out[i] = h
        return out


def tracklet_descriptors(store: Store, video: Video, tid: np.ndarray, det,
                         settings: GroupSettings, skipped: list[int] | None = None,
                         per_crop: dict | None = None) -> dict[int, np.ndarray] | None:
    """Colour descriptor per tracklet from ``settings.appearance_samples`` good crops of it,
    spread over its time (None without crops or tracklets).

    ``tid`` and ``det`` are the tracklet rows (``store.tracklet_boxes``). Each sampled crop's
    histograms are computed once and stored in the project (beside the embeddings, keyed by
    :data:`ptrack.persons.appearance.HIST_KEY`): a re-run, or a re-track that samples the same
    detections, reads them instead of decoding the crops again. A missing, undecodable or tiny
    crop is skipped, never fatal; how many were is appended to ``skipped`` when given.
    ``per_crop`` (a dict), when given, gets each sampled crop's tracklet (``owner``), ``frame``
    and histograms (``hsv``, NaN rows for unusable crops): ``ptrack suggest``'s same-person range.
    """
    if not video.has_crops or not len(tid):
        return None
    from ptrack.persons import appearance
    rows, owners = sample_rows(store, video, tid, det, settings.appearance_samples)
    if not len(rows):
        return None
    H, _ = stored_embeddings(store, video, det.frame[rows], det.det[rows], model=appearance.HIST_KEY,
                             embedder=CropHists, batch=HIST_BATCH, dtype="float32")
    usable = ~np.isnan(H).any(axis=1) if H.shape[1] else np.zeros(len(rows), bool)
    if per_crop is not None and H.shape[1]:
        per_crop.update(owner=owners, frame=det.frame[rows], hsv=H)
    out: dict[int, np.ndarray] = {}
    bounds = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1], True])  # owners are contiguous
    for start, end in zip(bounds[:-1], bounds[1:]):
        if usable[start:end].any():
            out[int(owners[start])] = appearance.descriptor_from_hists(H[start:end])
    if skipped is not None:
        skipped.append(int((~usable).sum()))
    return out or None


def stored_embeddings(store: Store, video: Video, frame: np.ndarray, dets: np.ndarray, *,
                      model: str, embedder: Callable[[], object], progress: Progress | None = None,
                      batch: int = EMBED_BATCH, dtype: str = "float16") -> tuple[np.ndarray, int]:
    """``(vectors (n, d) float32, how many were computed now)`` of the detections
    ``(frame[i], dets[i])``: stored ones are read, the others embedded from their crops
    (``embedder()`` gives a :class:`ptrack.persons.embed.Embedder`, called only when some are missing)
    and stored batch by batch. A crop that cannot be read gives (and stores) a NaN row.
    A read-only project computes without storing.
    """
    found, X = store.embeddings(video.id, model, frame, dets, dtype)
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
            store.put_embeddings(video.id, model, frame[idx], dets[idx], V, dtype)
        done += len(idx)
        if progress:
            progress(done, len(missing))
    return X, done


def tracklet_embeddings(store: Store, video: Video, tid: np.ndarray, det, settings: GroupSettings,
                        *, progress: Progress | None = None, cache_dir: Path | None = None,
                        counts: dict | None = None, per_crop: dict | None = None
                        ) -> dict[int, np.ndarray]:
    """Per tracklet, its mean embedding in the video's learned metric space (unit: the typical
    distance of two different people; see :func:`ptrack.persons.metric.tracklet_vectors`).

    Raises:
        ptrack.persons.embed.EmbedderUnavailable: The package (or OpenVINO, or torch for the first
            conversion) is absent.
        ptrack.persons.metric.NotEnoughPairs: Too few tracklets share a frame to learn the metric.
    """
    from ptrack.persons import embed
    from ptrack.persons.metric import cooccurring, learn_kissme, tracklet_vectors

    model = embed.model_key()
    rows, owners = sample_rows(store, video, tid, det, settings.embed_samples)

    def embedder():
        from ptrack.detect.openvino_backend import cache_dir as user_cache

        return embed.load_embedder(Path(cache_dir) if cache_dir else user_cache(), batch=EMBED_BATCH)

    X, computed = stored_embeddings(store, video, det.frame[rows], det.det[rows], model=model,
                                    embedder=embedder, progress=progress)
    if counts is not None:
        counts.update(embedded=computed, embeddings_reused=int(len(rows) - computed))
    xyxy = np.asarray(det.xyxy, np.float64)
    co = cooccurring(tid, det.frame, xyxy=xyxy)
    metric = learn_kissme(X, owners, det.frame[rows], xyxy=xyxy[rows], cooccur=co)
    ids, V = tracklet_vectors(X, owners, metric)
    if per_crop is not None:  # each crop in the same space (the tracklet vector is their mean)
        per_crop.update(embed_owner=owners, embed_frame=det.frame[rows],
                        embed=metric.transform(np.nan_to_num(X)) / metric.scale
                        + np.where(np.isnan(X).any(1, keepdims=True), np.nan, 0.0))
    return {int(t): v for t, v in zip(ids.tolist(), V)}


def tracklet_appearance(store: Store, video: Video, tid: np.ndarray, det, settings: GroupSettings,
                        *, skipped: list[int] | None = None, progress: Progress | None = None,
                        cache_dir: Path | None = None, per_crop: dict | None = None) -> Appearance:
    """The appearance ``group`` uses, as ``settings.appearance`` asks (``hsv`` or ``combo``),
    falling back to the colour histograms alone with a note when the embedding cannot be had
    (package absent, too few tracklets on screen together to learn the metric). ``per_crop``
    gets the sampled crops' features (see :func:`tracklet_descriptors`, ``embed*`` keys for the
    embedding)."""
    out = Appearance()
    if not settings.use_appearance or not video.has_crops or not len(tid):
        return out
    if settings.appearance == "combo":
        from ptrack.persons.embed import EmbedderUnavailable
        from ptrack.persons.metric import NotEnoughPairs

        try:
            out.embed = tracklet_embeddings(store, video, tid, det, settings, progress=progress,
                                            cache_dir=cache_dir, counts=out.counts,
                                            per_crop=per_crop) or None
        except EmbedderUnavailable as exc:
            out.notes.append(exc.message)
        except NotEnoughPairs:
            out.notes.append("too few tracklets are on screen together to learn an appearance "
                             "metric for this video; using colour histograms instead")
    out.hsv = tracklet_descriptors(store, video, tid, det, settings, skipped, per_crop=per_crop)
    out.used = ("combo" if out.hsv and out.embed else "embed" if out.embed
                else "hsv" if out.hsv else "off")
    return out
