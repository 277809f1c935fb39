"""Appearance descriptors of tracklets from their best stored crops."""

from __future__ import annotations

import numpy as np

from ptrack.errors import PtrackError
from ptrack.settings import GroupSettings
from ptrack.store import Store, Video


def tracklet_descriptors(store: Store, video: Video, tid: np.ndarray, det,
                         settings: GroupSettings, skipped: list[int] | None = None
                         ) -> dict[int, np.ndarray] | None:
    """Appearance descriptor per tracklet from ``settings.appearance_samples`` good crops of it,
    spread over its time (None without crops or tracklets).

    ``tid`` and ``det`` are the tracklet rows (``store.tracklet_boxes``). The overlap test sees
    every detection of the video (other persons included). A missing, undecodable or tiny crop
    is skipped, never fatal; how many were is appended to ``skipped`` when given.
    """
    if not video.has_crops or not len(tid):
        return None
    from ptrack import appearance, crops
    from ptrack.sampling import covered_share, rows_of

    k = settings.appearance_samples
    everyone = store.detections(video.id)  # sorted by (frame, det)
    cover_all = covered_share(everyone.frame, everyone.xyxy)
    at = rows_of(det.frame, det.det, everyone.frame, everyone.det)
    covered = np.where(at >= 0, cover_all[np.maximum(at, 0)], 0.0)
    order = np.argsort(tid, kind="stable")
    ids, starts = np.unique(tid[order], return_index=True)
    keys, owners = [], []
    for t, rows in zip(ids.tolist(), np.split(order, starts[1:])):
        if t < 0:
            continue
        picked = appearance.pick_descriptor_samples(
            det.frame[rows], det.xyxy[rows], det.conf[rows], k, covered=covered[rows])
        for r in rows[picked]:
            keys.append((video.id, int(det.frame[r]), int(det.det[r])))
            owners.append(t)
    if not keys:
        return None
    blobs = store.crops(keys)
    # one tracklet's crops decoded at a time (owners are contiguous): decoding them all first
    # held ~100 KB of pixels per sample, 1.3 GB on a 30-minute video (bench/person_stages.py)
    out: dict[int, np.ndarray] = {}
    start, bad = 0, 0
    for end in range(1, len(owners) + 1):
        if end == len(owners) or owners[end] != owners[start]:
            imgs = [crops.decode(b) for b in blobs[start:end] if b]
            imgs = [i for i in imgs if i is not None]
            bad += (end - start) - len(imgs)
            if imgs:
                try:
                    out[owners[start]] = appearance.crop_descriptor(imgs)
                except PtrackError:  # only tiny crops: this tracklet goes without
                    pass
            start = end
    if skipped is not None:
        skipped.append(bad)
    return out or None
