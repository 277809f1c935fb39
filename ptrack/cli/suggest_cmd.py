"""``ptrack suggest``: the merges ``group`` left undecided, best first, with the evidence in words
and numbers; ``--accept K`` merges (as ``ptrack merge``), ``--reject K`` keeps the two apart.

The suggestions are computed by every ``group`` run (:mod:`ptrack.persons.suggest`) and kept in
the project, so this command, ``list persons``, ``show`` and ``table`` only read them. A
suggestion's number names its pair of persons for good (it survives re-grouping; a re-track
gives new numbers). No model is loaded here.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Optional

import typer

from ptrack.cli.common import VideoOpt, fmt_time, handles_errors, open_store, require_persons, video_flag
from ptrack.cli.output import safe, say
from ptrack.errors import PtrackError


NO_CROPS_NOTE = ("this video has no crops (boxes imported without pictures), so these rest on "
                 "motion alone, which is weak evidence: on MOT15's public boxes about 1 in 5 of "
                 "the first 10 was right (bench/suggest.py --public); check each in the video "
                 "before you accept it")
"""Said under the suggestions of a video without crops (after "note: "; and in ``--json``'s
``notes``)."""


def suggested_with(store, video_id: int) -> dict[int, list[dict]]:
    """Person id -> the open suggestions that name it, best first (``other``, ``k``,
    ``appearance``) for ``list persons``, ``show`` and ``table``."""
    out: dict[int, list[dict]] = {}
    for s in store.suggestions(video_id):
        for me, other in ((s["a"], s["b"]), (s["b"], s["a"])):
            out.setdefault(int(me), []).append(
                {"other": int(other), "k": s["k"], "appearance": s.get("appearance")})
    return out


def may_be_line(me: int, entries: list[dict], most: int = 3) -> str:
    """``may be the same as P33 (appearance 0.14, suggestion #2), P40 (...)``."""
    parts = []
    for e in entries[:most]:
        app = e.get("appearance")
        what = f"appearance {app:.2f}, " if app is not None else ""
        parts.append(f"P{e['other']} ({what}suggestion #{e['k']})")
    more = f" and {len(entries) - most} more" if len(entries) > most else ""
    return f"P{me} may be the same as {', '.join(parts)}{more}"


def _num(x, spec: str = ".2f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _where(w, name: str, frame: int, fps: float) -> str:
    side, x, y = w
    at = f"{fmt_time(frame / fps if fps else None)} (frame {frame})"
    if side == "inside":
        place = (f"inside the frame (x {x:.0%}, y {y:.0%})" if x is not None and y is not None
                 else "inside the frame")
    else:
        place = f"at the {side} edge"
    return f"{name} {at} {place}"


def evidence(s: dict, fps: float) -> list[str]:
    """The evidence of one suggestion in words and numbers, one line each."""
    lines = []
    rng = s.get("ranges") or {}
    same, diff = rng.get("same") or {}, rng.get("different") or {}
    app = s.get("appearance")
    if app is None:
        lines.append("appearance: no crops to compare")
    else:
        where = ("inside this video's same-person range" if app <= same.get("hi", -1)
                 else "inside its different-people range" if app >= diff.get("lo", 2)
                 else "between its same-person and different-people ranges")
        parts = s.get("appearance_parts") or {}
        part = (" (" + ", ".join(f"{'colour' if k == 'hsv' else 'embedding'} {v:.2f}"
                                 for k, v in parts.items()) + ")") if len(parts) > 1 else ""
        lines.append(f"appearance distance {app:.2f}{part}: {where} "
                     f"(same person {_num(same.get('lo'))}-{_num(same.get('hi'))}, "
                     f"different people {_num(diff.get('lo'))}-{_num(diff.get('hi'))})")
    gap = s.get("gap_s") or 0.0
    if s.get("boxed_twice"):
        lines.append(f"P{s['b']} first seen {fmt_time(s['b_start'], fps)} (frame {s['b_start']}), "
                     f"before P{s['a']} is last seen {fmt_time(s['a_end'], fps)} "
                     f"(frame {s['a_end']})")
    elif s["b_start"] <= s["a_end"]:
        lines.append(f"P{s['b']} is seen while P{s['a']} is away (P{s['b']} from frame "
                     f"{s['b_start']}, P{s['a']} until frame {s['a_end']}; in the same frames "
                     f"for at most a hand-over)")
    else:
        lines.append(f"gap {gap:.1f} s: " + _where(s["exit"], f"P{s['a']} last seen", s["a_end"], fps)
                     + "; " + _where(s["entry"], f"P{s['b']} first seen", s["b_start"], fps))
    m, sc = s.get("motion"), s.get("scale")
    if s.get("boxed_twice"):
        lines.append(f"one box lies inside the other in every frame both have: one person "
                     f"boxed twice where P{s['a']} and P{s['b']} meet (motion counts as agreeing)")
    elif m is not None and sc is not None:
        q = max(m, sc)
        verdict = ("agrees" if q <= 1 else "nearly agrees" if q <= 2 else "disagrees")
        lines.append(f"motion across the gap {verdict}: position error {m:.1f}, size error "
                     f"{sc:.1f} (in units of group's gates; 1 = the gate)")
    if s.get("near_miss"):
        lines.append("a near miss: inside group's gates made one step looser")
    return lines


def _lookup(store, v, k: int) -> dict:
    """An open suggestion by number, or a one-line error (exit 2)."""
    found = store.suggestions(v.id, k)
    flag = video_flag(store, v)
    if not found:
        have = [s["k"] for s in store.suggestions(v.id)]
        listed = ", ".join(f"#{x}" for x in have[:20]) or "none"
        raise PtrackError(f"unknown suggestion #{k} for {v.name} (open: {listed}); "
                          f"`ptrack suggest{flag}` lists them", exit_code=2)
    s = found[0]
    if not s["open"]:
        raise PtrackError(f"suggestion #{k} is no longer open (merged, rejected, or the persons "
                          f"changed); `ptrack suggest{flag}` lists the open ones", exit_code=2)
    return s


def _accept(ctx, video: str | None, k: int) -> None:
    from ptrack.cli.choose_cmd import merge_persons, merged_id, say_merged

    with open_store(ctx) as store:
        store.require_writable()
        v = store.video(video)
        require_persons(store, v, ctx)  # up to date first: the numbers name today's persons
        s = _lookup(store, v, k)
        ids = [int(s["a"]), int(s["b"])]
        cid, again, tracklets, apply = merge_persons(ctx, store, v, ids)
        now = merged_id(store, v, tracklets)
    say_merged(ids, cid, again, tracklets, apply, now)
    if now is not None:
        say(f"accepted suggestion #{k}: P{ids[0]} and P{ids[1]} are now P{now}")


def _reject(ctx, video: str | None, k: int) -> None:
    from ptrack.cli.choose_cmd import _apply_hint, _record

    with open_store(ctx) as store:
        store.require_writable()
        v = store.video(video)
        require_persons(store, v, ctx)
        s = _lookup(store, v, k)
        a, b = int(s["a"]), int(s["b"])
        cid, again = _record(store, v, {"kind": "reject", "ids": [a, b], "frame": None})
        apply = _apply_hint(ctx, store, v)
    if again:
        say(f"already recorded as reject #{cid}; nothing new recorded")
        return
    say(f"recorded reject #{cid}: P{a} and P{b} are different people; suggestion #{k} "
        f"is not shown again (`ptrack constraints --delete {cid}` undoes it)")
    say(apply)


def register(app: typer.Typer) -> None:
    """Add ``suggest`` to ``app``."""

    @app.command()
    @handles_errors
    def suggest(
        ctx: typer.Context,
        video: VideoOpt = None,
        top: Annotated[int, typer.Option("--top", "-n", min=1, help="Show the N best.")] = 10,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
        accept: Annotated[Optional[int], typer.Option(
            "--accept", metavar="K", help="Merge the persons of suggestion K now (as `ptrack merge`).",
            show_default=False)] = None,
        reject: Annotated[Optional[int], typer.Option(
            "--reject", metavar="K", help="Record that the persons of suggestion K are different "
                                          "people; it is never shown again.",
            show_default=False)] = None,
    ) -> None:
        """Suggest merges that group did not make: pairs of persons never on screen together
        that may be one human, best first, with the evidence and the command to accept each.

        Example: ptrack suggest --top 5; ptrack suggest --accept 3; ptrack suggest --reject 4
        """
        if accept is not None and reject is not None:
            raise PtrackError("give one of --accept K and --reject K", exit_code=2)
        if (accept is not None or reject is not None) and as_json:
            raise PtrackError("--json lists the suggestions; it does not go with --accept or "
                              "--reject", exit_code=2)
        if accept is not None:
            _accept(ctx, video, accept)
            return
        if reject is not None:
            _reject(ctx, video, reject)
            return
        with open_store(ctx) as store:
            v = store.video(video)
            require_persons(store, v, ctx)
            found = store.suggestions(v.id)
            flag = video_flag(store, v)
        shown = found[:top]
        for s in shown:
            s["accept"] = f"ptrack suggest --accept {s['k']}{flag}"
            s["reject"] = f"ptrack suggest --reject {s['k']}{flag}"
            s["merge"] = f"ptrack merge {s['a']} {s['b']}{flag}"
            s["evidence"] = evidence(s, v.fps)
        if as_json:
            keys = ("k", "rank", "a", "b", "appearance", "appearance_parts", "position", "gap_s",
                    "a_end", "b_start", "exit", "entry", "motion", "scale", "near_miss",
                    "in_group_gates", "boxed_twice", "key", "tracklets", "accept", "reject", "merge", "evidence")
            ranges = found[0]["ranges"] if found else None
            say(json.dumps({"video": v.name, "open": len(found), "ranges": ranges,
                            "notes": [] if v.has_crops else [NO_CROPS_NOTE],
                            "suggestions": [{k: s.get(k) for k in keys} for s in shown]},
                           indent=2))
            return
        if not found:
            alike = "look alike" if v.has_crops else "move like one (no crops to compare)"
            say(safe(f"{v.name}: no suggested merges (no two persons that are never on "
                     f"screen together {alike})"))
            return
        say(safe(f"{v.name}: {len(shown)} of {len(found)} suggested merges, most likely "
                 f"first (persons never on screen together)"))
        if not v.has_crops:
            say(f"note: {NO_CROPS_NOTE}")
        for s in shown:
            say(f"#{s['k']}  P{s['a']} + P{s['b']}")
            for line in s["evidence"]:
                say(f"    {line}")
            say(f"    accept: {s['accept']}  (the same as `{s['merge']}`)")
            say(f"    reject: {s['reject']}")
