"""User corrections (``merge``, ``unmerge``, ``split``) compiled into grouping constraints.

Pure: the stored constraint records and the tracklet rows in; relabelled tracklet ids and
must-link / cannot-link pairs out, as :func:`ptrack.persons.group.group_tracklets` takes them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Sequence

import numpy as np


def compile_constraints(constraints: Sequence[dict], tid: np.ndarray,
                        frame: np.ndarray) -> tuple[np.ndarray, list, list]:
    """User corrections as (tracklet ids, must-link pairs, cannot-link pairs).

    ``merge`` links all its tracklets; ``unmerge`` keeps them pairwise apart, and so does
    ``reject`` (a rejected suggested merge: the two persons' ids); ``split`` keeps
    the tracklets before its frame apart from those after, cutting a tracklet that spans the
    frame in two (the second part gets a new id above the tracker's). Ids the tracklets no
    longer have (after a re-track) are ignored.
    """
    tid, must, cannot = constraint_pairs(constraints, tid, frame)
    return tid, [(a, b) for a, b, _ in must], [(a, b) for a, b, _ in cannot]


def constraint_pairs(constraints: Sequence[dict], tid: np.ndarray,
                     frame: np.ndarray) -> tuple[np.ndarray, list, list]:
    """As :func:`compile_constraints`, each pair carrying the correction that made it:
    (tracklet ids, ``[(a, b, constraint)]`` must-links, ``[(a, b, constraint)]`` cannot-links)."""
    tid = np.asarray(tid, np.int64).copy()
    frame = np.asarray(frame, np.int64)
    known = set(np.unique(tid[tid >= 0]).tolist())
    next_id = max(known, default=0) + 1
    must: list[tuple[int, int, dict]] = []
    cannot: list[tuple[int, int, dict]] = []
    for c in constraints:
        ids = [int(i) for i in c["ids"] if int(i) in known]
        if c["kind"] == "merge":
            must += [(ids[0], other, c) for other in ids[1:]]
        elif c["kind"] in ("unmerge", "reject"):
            cannot += [(a, b, c) for i, a in enumerate(ids) for b in ids[i + 1:]]
        elif c["kind"] == "split" and c.get("frame") is not None:
            at = int(c["frame"])
            for t in list(ids):
                rows = tid == t
                if frame[rows].min() < at <= frame[rows].max():
                    tid[rows & (frame >= at)] = next_id
                    ids.append(next_id)
                    known.add(next_id)
                    next_id += 1
            before = [t for t in ids if frame[tid == t].min() < at]
            after = [t for t in ids if frame[tid == t].min() >= at]
            cannot += [(a, b, c) for a in before for b in after]
    return tid, must, cannot


def fingerprint(constraints: Sequence[dict]) -> str:
    """A short hash of what the constraints say (kind, ids, frame; not their ids or times).

    ``group`` records it with its run, so adding or removing a correction makes the grouping
    stale.
    """
    said = [[c["kind"], [int(i) for i in c["ids"]], c.get("frame")] for c in constraints]
    return hashlib.blake2b(json.dumps(said).encode(), digest_size=8).hexdigest()
