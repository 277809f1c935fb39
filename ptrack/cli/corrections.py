"""Checks for ``merge``, ``split`` and ``unmerge`` before they are recorded: persons on screen
together, corrections that contradict each other, and repeats.

Pure: constraint records (``{"id", "kind", "ids", "frame"}``, as the store returns them) and
tracklet rows (id and frame per box) in, findings out. The compilation mirrors the one
``group`` uses (a split cuts a tracklet that spans its frame; the later part gets a new id)
but remembers which correction asked for each link, so every conflict can be named.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


def shared_frames(frames_a: np.ndarray, frames_b: np.ndarray) -> np.ndarray:
    """Frames in which both persons have an observed box, sorted.

    >>> shared_frames(np.array([1, 2, 3, 7]), np.array([3, 4, 7])).tolist()
    [3, 7]
    """
    return np.intersect1d(np.asarray(frames_a), np.asarray(frames_b))


def describe(c: dict) -> str:
    """``merge #3 (tracklets 1, 4)``, ``split #2 of tracklets 1, 4 at frame 20``; a
    constraint not yet recorded (``id`` None) is ``this merge``."""
    ids = ", ".join(str(i) for i in c["ids"])
    name = f"{c['kind']} #{c['id']}" if c.get("id") is not None else f"this {c['kind']}"
    if c["kind"] == "split":
        return f"{name} (tracklets {ids} at frame {c['frame']})"
    return f"{name} (tracklets {ids})"


def same_as(new: dict, recorded: Sequence[dict]) -> dict | None:
    """A recorded constraint that already says what ``new`` says (a merge of the same or more
    tracklets, the same unmerge, the same split), else None."""
    ids = set(int(i) for i in new["ids"])
    for c in recorded:
        have = set(int(i) for i in c["ids"])
        if c["kind"] != new["kind"]:
            continue
        if new["kind"] == "merge" and ids <= have:
            return c
        if new["kind"] in ("unmerge", "reject") and ids == have:
            return c
        if new["kind"] == "split" and ids == have and c.get("frame") == new.get("frame"):
            return c
    return None


@dataclass(frozen=True)
class Conflict:
    """Two tracklets that some corrections join and another keeps apart."""

    a: int
    b: int
    joined_by: tuple[dict, ...]
    kept_apart_by: dict

    def text(self) -> str:
        joins = " and ".join(describe(c) for c in self.joined_by)
        return (f"tracklets {self.a} and {self.b} are joined by {joins} but kept apart by "
                f"{describe(self.kept_apart_by)}")


def conflicts(constraints: Sequence[dict], tid: np.ndarray, frame: np.ndarray) -> list[Conflict]:
    """Every pair of tracklets that the merges join (directly or through other tracklets)
    while an unmerge or a split keeps them apart, with the corrections responsible."""
    from ptrack.persons.constraints import constraint_pairs

    _, must, cannot = constraint_pairs(constraints, tid, frame)
    # union-find over the merges, remembering which merges built each group
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, _ in must:
        parent[find(a)] = find(b)
    builders: dict[int, list[dict]] = {}
    for a, b, c in must:
        r = find(a)
        if all(c is not x for x in builders.setdefault(r, [])):
            builders[r].append(c)
    found = []
    for a, b, c in cannot:
        if a in parent and b in parent and find(a) == find(b):
            found.append(Conflict(a, b, tuple(builders[find(a)]), c))
    return found
