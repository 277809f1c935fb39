"""Choosing: ``select`` writes the chosen person for downstream code, ``export`` writes all
persons for other tools, and ``merge`` / ``split`` / ``unmerge`` record corrections that
``ptrack group`` keeps on every later run (``constraints`` lists and removes them).

Corrections are stored as tracklet ids, resolved from the person ids when the command runs:
person ids change whenever ``group`` runs again, tracklet ids only when ``track`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ptrack.cli.common import (IdsArg, OptionalIdsArg, PersonArg, VideoOpt, handles_errors,
                               ids_text as _ids_text, open_store, require_persons, resolve_ids)
from ptrack.cli.common import hint, stale_notes, video_flag, view_settings
from ptrack.cli.output import Column, Destination, Listing, listing, out_format, plural, say
from ptrack.errors import PtrackError


VerboseOpt = Annotated[bool, typer.Option(
    "--verbose", help="List every conflict with the recorded corrections (default: the count "
                      "and the first).")]


def _handover_frames(ctx: typer.Context, store, fps: float) -> int:
    """Frames two persons may share and still be one (a hand-over, as ``group`` allows)."""
    try:
        group = view_settings(ctx, store)["group"]
        seconds = float(group["handover_s"] if isinstance(group, dict) else group.handover_s)
    except (KeyError, AttributeError, TypeError, ValueError):
        seconds = 0.0
    return int(round(seconds * (fps or 0.0)))


def _refuse_shared_frames(ctx: typer.Context, store, video, chosen: list[dict],
                          verb: str = "merges") -> None:
    """A merge (or a joined selection) of persons on screen at the same time (beyond a
    hand-over) is an error."""
    from ptrack.cli.corrections import shared_frames

    frames = {}
    for p in chosen:
        b = store.person_boxes(video.id, p["id"])
        frames[p["id"]] = b["frame"][b["source"] == 0]
    allowed = _handover_frames(ctx, store, video.fps)
    pids = [p["id"] for p in chosen]
    clashes = []
    for i, a in enumerate(pids):
        for b in pids[i + 1:]:
            both = shared_frames(frames[a], frames[b])
            if len(both) > allowed:
                first = ", ".join(str(int(f)) for f in both[:5])
                more = ", ..." if len(both) > 5 else ""
                clashes.append(f"P{a} and P{b} are both on screen in {len(both)} frames "
                               f"({first}{more})")
    if clashes:
        flag = video_flag(store, video)
        raise PtrackError("; ".join(clashes) + f", so they are different people. Compare them "
                          f"with `ptrack show {' '.join(map(str, pids))}{flag}`; --force {verb} "
                          f"anyway, keeping the better box in each shared frame")


def _record(store, video, new: dict, verbose: bool = False) -> tuple[int, bool]:
    """Record a correction unless the same is recorded (then its id and True); refuse one
    that contradicts the recorded corrections: one line with the count and the first
    conflict, every conflict with ``verbose``."""
    from ptrack.cli.corrections import conflicts, same_as

    recorded = store.constraints(video.id)
    same = same_as(new, recorded)
    if same is not None:
        return int(same["id"]), True
    new = {**new, "id": None}
    tid, det = store.tracklet_boxes(video.id)
    found = conflicts([*recorded, new], tid, det.frame)
    if any(f.kept_apart_by is new or any(c is new for c in f.joined_by) for f in found):
        word = "conflict" if len(found) == 1 else "conflicts"
        if verbose:
            lines = "\n".join(f"  {f.text()}" for f in found)
            detail = f":\n{lines}\n"
        else:
            more = f" (and {len(found) - 1} more: --verbose lists them)" if len(found) > 1 else ""
            detail = f"; first: {found[0].text()}{more}; "
        raise PtrackError(f"this {new['kind']} contradicts the recorded corrections "
                          f"({len(found)} {word}); nothing recorded{detail}"
                          f"see `ptrack constraints`; remove one with "
                          f"`ptrack constraints --delete ID`", exit_code=2)
    cid = store.add_constraint(video.id, new["kind"], new["ids"], frame=new.get("frame"))
    return int(cid), False


def _apply_hint(ctx: typer.Context, store, video) -> str:
    """Apply a recorded correction at once (grouping takes well under a second from stored
    tracklets) and say what it did; a read-only project only records nothing (refused earlier)."""
    from ptrack.persons.stages import ensure_current

    if store.stage_state(video.id, "group") == "missing":
        return f"`{hint(store, video, 'group', 'rank')}` applies it"
    # the stages it re-runs are said once, by the line returned (not a "running group first")
    done = ensure_current(store, video, view_settings(ctx, store), "rank",
                          log=lambda m: None if "; running " in m else say(m, err=True))
    persons = len(store.persons(video.id))
    if not done:
        return f"applied: {video.name} has {plural(persons, 'person')}"
    return f"applied: regrouped {video.name}, {plural(persons, 'person')} now"


def merge_persons(ctx: typer.Context, store, v, ids, *, force: bool = False,
                  verbose: bool = False) -> tuple[int, bool, list[int], str]:
    """``merge``'s work, shared with ``suggest --accept``: the persons' tracklets recorded as one
    person (refused for persons on screen together unless ``force``, and for a merge that
    contradicts the recorded corrections) and applied at once. Returns (constraint id, whether
    it was recorded already, the tracklets, what applying it did)."""
    if len(set(ids)) < 2:
        raise PtrackError("merge needs at least two different person ids", exit_code=2)
    persons = require_persons(store, v, ctx)
    owned = store.person_tracklets(v.id)
    # an id printed before an earlier merge (a tracklet id of a person now) still names
    # its person: repeating a merge finds it already recorded
    current = {int(p["id"]) for p in persons}
    alias = {t: pid for pid, ts in owned.items() for t in ts}
    chosen = resolve_ids(persons, list(dict.fromkeys(
        i if i in current else alias.get(i, i) for i in ids)))
    if not force and len(chosen) > 1:
        _refuse_shared_frames(ctx, store, v, chosen)
    tracklets = sorted({t for p in chosen for t in owned.get(p["id"], [])})
    cid, again = _record(store, v, {"kind": "merge", "ids": tracklets, "frame": None}, verbose)
    apply = _apply_hint(ctx, store, v)
    return cid, again, tracklets, apply


def merged_id(store, v, tracklets: list[int]) -> int | None:
    """The person the merged tracklets make now (None before group has run)."""
    owner = {t: pid for pid, ts in store.person_tracklets(v.id).items() for t in ts}
    return owner.get(int(tracklets[0])) if tracklets else None


def say_merged(ids, cid: int, again: bool, tracklets: list[int], apply: str,
               now: int | None = None) -> None:
    """What ``merge`` prints (``now``: the merged person's id)."""
    who = _ids_text(ids)
    if again:
        say(f"already recorded as merge #{cid}: persons {who} (tracklets "
            f"{_ids_text(tracklets)}) are one person; nothing new recorded")
        return
    say(f"recorded merge #{cid}: persons {who} (tracklets {_ids_text(tracklets)}) "
        f"are one person" + (f": P{now}" if now is not None else ""))
    say(apply)


def _export_tracklets(ctx: typer.Context, fmt: str, ids, out, video) -> None:
    """``export --level tracklets``: the tracker's own ids, observed boxes only."""
    import numpy as np

    from ptrack.formats.export import EXPORT_SUFFIX, Track, write_export

    with open_store(ctx) as store:
        v = store.video(video)
        tid, det = store.tracklet_boxes(v.id)
        if not len(tid):
            raise PtrackError(f"{v.name} has no tracklets yet; run `{hint(store, v, 'track')}` first")
        wanted = sorted(set(tid.tolist()) & set(ids)) if ids else sorted(set(tid.tolist()))
        if ids and not wanted:
            raise PtrackError(f"none of the tracklet ids {list(ids)} exist", exit_code=2)
        tracks = []
        for t in wanted:
            sel = tid == t
            tracks.append(Track(int(t), det.frame[sel], det.xyxy[sel].astype(np.float64),
                                det.conf[sel].astype(np.float64),
                                np.zeros(int(sel.sum()), np.int8), tid[sel]))
        person_of = {int(t): int(p) for p, ts in store.person_tracklets(v.id).items() for t in ts}
        folder = store.output_dir(v) if out is None else store.output_path(v)
        dest = Destination(out, folder / f"tracklets{EXPORT_SUFFIX[fmt]}")
    _, rows = write_export(dest.path, fmt, tracks, v, {}, person_of=person_of)
    dest.done()
    dest.say(f"wrote {dest.shown} ({plural(len(tracks), 'tracklet')}, "
             f"{plural(rows, 'box', 'boxes')}, {fmt})")


def register(app: typer.Typer) -> None:
    """Add ``select``, ``export``, ``merge``, ``split``, ``unmerge`` and ``constraints``."""

    @app.command()
    @handles_errors
    def select(
        ctx: typer.Context,
        ids: IdsArg,
        video: VideoOpt = None,
        out: Annotated[Optional[Path], typer.Option(
            "--out", "-o", show_default=False, metavar="FILE",
            help="Output file; its extension picks the format; - writes to standard output. "
                 "[default: <project>/outputs/<video>/primary_person.<format>, the latest "
                 "selection, plus primary_person_P<ID>.<format>, never overwritten]")] = None,
        fmt: Annotated[Optional[str], typer.Option(
            "--format", "-f", show_default=False,
            help="npz | json | csv. [default: from the --out extension, else npz]")] = None,
        force: Annotated[bool, typer.Option(
            "--force", help="Join persons that are on screen at the same time anyway (as "
                            "`merge --force`); the better box is kept in each shared frame.")] = False,
    ) -> None:
        """Write the chosen person (several ids are joined into one) for downstream code.

        The npz reads like the older pipeline's: np.load(p, allow_pickle=True)
        ['primary_person'].item() is a dict with person_id, frame_numbers (0-based), bboxes
        (N x 4 xyxy, original pixels: the smoothed boxes, what a pose stage should crop),
        bboxes_raw (the detector's boxes; interpolated in gaps) and confidences; the same
        arrays, the video's path, fps and size, and per-frame sources (0 observed,
        1 interpolated) and tracklets are also at top level. Several ids are joined as
        `merge` joins them: persons on screen at the same time are two people, refused unless
        --force (then a frame claimed by two ids keeps the more confident box).

        Without --out, primary_person.<format> always holds the latest selection and each
        selection is also kept as primary_person_P<ID>.<format>, which no later selection
        overwrites (`ptrack list selections` says which file holds what).

        Example: ptrack select 14 29 --format npz
        """
        from ptrack.formats.export import (LATEST_SELECTION, SELECT_FORMATS, SELECT_SUFFIXES,
                                   kept_selection_path, merge_tracks, track_from_boxes,
                                   write_selection)

        fmt = out_format(out, fmt, SELECT_FORMATS, SELECT_SUFFIXES, "npz")
        with open_store(ctx) as store:
            v = store.video(video)
            notes = stale_notes(store, v)
            chosen = resolve_ids(require_persons(store, v, ctx), ids)
            if not force and len(chosen) > 1:
                _refuse_shared_frames(ctx, store, v, chosen, "selects them as one")
            pids = [p["id"] for p in chosen]
            from ptrack.pose.handoff import person_poses, provenance, with_pose

            poses, pose_notes = person_poses(store, v, pids)
            notes += pose_notes
            tracks = [with_pose(track_from_boxes(p["id"], store.person_boxes(v.id, p["id"])),
                                poses.get(int(p["id"]))) for p in chosen]
            track, contested = merge_tracks(tracks)
            origin = provenance(store, v, poses)
            folder = store.output_dir(v) if out is None else store.output_path(v)
            dest = Destination(out, folder / f"{LATEST_SELECTION}.{fmt}")
            latest = None
            if out is None:
                latest, dest.path = dest.path, kept_selection_path(folder, pids, fmt)
            write_selection(dest.path, fmt, track, v, pids, origin)
            if latest is not None:
                write_selection(latest, fmt, track, v, pids, origin)
            recorded = "(standard output)" if dest.to_stdout else str(dest.path.resolve())
            store.add_selection(v.id, pids, track.person_id, len(track), recorded, fmt)
        for note in notes:
            say(note, err=True)
        import numpy as np

        n_obs = int((track.source == 0).sum())
        what = f"P{track.person_id}" if len(chosen) == 1 else \
            f"P{track.person_id} (persons {_ids_text(pids)} joined)"
        with_kpts = "" if track.keypoints is None else \
            f", keypoints on {int((~np.isnan(track.keypoints[:, 0, 2])).sum())}"
        dest.say(f"selected {what}: {len(track)} frames ({n_obs} observed{with_kpts}), "
                 f"frames {int(track.frame[0]) if len(track) else '-'}-"
                 f"{int(track.frame[-1]) if len(track) else '-'}")
        if len(chosen) > 1:
            dest.say(f"{contested} frames were claimed by more than one person; "
                     f"the more confident box was kept")
        dest.done()
        if latest is not None:
            dest.say(f"wrote {latest} (the latest selection)")
            dest.say(f"wrote {dest.path} (kept)")
        elif not dest.to_stdout:
            dest.say(f"wrote {dest.path}")

    @app.command()
    @handles_errors
    def export(
        ctx: typer.Context,
        ids: OptionalIdsArg = None,
        fmt: Annotated[Optional[str], typer.Option(
            "--format", "-f", show_default=False,
            help="mot | csv | json | coco (the persons' keypoints as COCO results). "
                 "[default: from the --out extension, else mot]")] = None,
        out: Annotated[Optional[Path], typer.Option(
            "--out", "-o", show_default=False, metavar="FILE",
            help="Output file; its extension picks the format (.txt is MOT); - writes to "
                 "standard output. [default: <project>/outputs/<video>/persons.<txt|csv|json>]")] = None,
        observed_only: Annotated[bool, typer.Option("--observed-only", help="Leave out interpolated boxes.")] = False,
        level: Annotated[str, typer.Option("--level", help="persons | tracklets (the tracker's raw ids).")] = "persons",
        boxes: Annotated[str, typer.Option(
            "--boxes", help="smoothed (the smoother's boxes, gaps filled by it) | raw (the "
                            "detector's boxes, interpolated in gaps). Tracklets are always "
                            "the detector's.")] = "smoothed",
        video: VideoOpt = None,
        old_ids: Annotated[Optional[list[int]], typer.Option("--ids", "--id", hidden=True)] = None,
    ) -> None:
        """Write all persons' (or the given ids') boxes for other tools. MOT rows are
        frame (1-based), id, left, top, width, height, conf, -1, -1, -1.

        The boxes are the smoothed ones unless --boxes raw (the detector's own).

        Example: ptrack export 14 29 --out persons.csv --boxes raw
        """
        from ptrack.formats.export import EXPORT_FORMATS, EXPORT_SUFFIX, EXPORT_SUFFIXES, track_from_boxes, write_export

        ids = list(ids or []) + list(old_ids or [])
        # COCO results are JSON files: with --format coco, a .json name means COCO
        suffixes = {("coco" if k == "json" and (fmt or "").lower() == "coco" else k): v
                    for k, v in EXPORT_SUFFIXES.items()}
        fmt = out_format(out, fmt, EXPORT_FORMATS, suffixes, "mot")
        if fmt == "coco" and level == "tracklets":
            raise PtrackError("--format coco writes persons' keypoints; not with --level "
                              "tracklets", exit_code=2)
        if level not in ("persons", "tracklets"):
            raise PtrackError("--level must be persons or tracklets", exit_code=2)
        if boxes not in ("smoothed", "raw"):
            raise PtrackError(f"--boxes must be smoothed or raw, not '{boxes}'", exit_code=2)
        if level == "tracklets":
            _export_tracklets(ctx, fmt, ids, out, video)
            return
        with open_store(ctx) as store:
            v = store.video(video)
            notes = stale_notes(store, v)
            persons = require_persons(store, v, ctx)
            chosen = resolve_ids(persons, ids) if ids else persons
            allboxes = store.person_boxes(v.id)
            poses: dict = {}
            if fmt in ("csv", "coco"):
                from ptrack.pose.handoff import person_poses, with_pose

                poses, pose_notes = person_poses(store, v, [int(p["id"]) for p in chosen])
                notes += pose_notes
                if fmt == "coco" and not poses:
                    raise PtrackError(f"no current keypoints of {'these persons' if ids else v.name}"
                                      f"; run `ptrack pose{' ' + _ids_text(ids) if ids else ''}` "
                                      f"first")
            tracks = []
            for p in chosen:
                sel = allboxes["person"] == p["id"]
                if observed_only:
                    sel &= allboxes["source"] == 0
                track = track_from_boxes(p["id"], allboxes[sel], boxes)
                tracks.append(with_pose(track, poses.get(int(p["id"]))) if poses else track)
            folder = store.output_dir(v) if out is None else store.output_path(v)
            dest = Destination(out, folder / f"persons{EXPORT_SUFFIX[fmt]}")
        for note in notes:
            say(note, err=True)
        ranks = {int(p["id"]): p["rank"] for p in chosen}
        _, rows = write_export(dest.path, fmt, tracks, v, ranks)
        dest.done()
        dest.say(f"wrote {dest.shown} ({plural(len(tracks), 'person')}, "
                 f"{plural(rows, 'pose') if fmt == 'coco' else plural(rows, 'box', 'boxes')}, "
                 f"{fmt})")

    @app.command()
    @handles_errors
    def merge(
        ctx: typer.Context,
        ids: IdsArg,
        video: VideoOpt = None,
        force: Annotated[bool, typer.Option(
            "--force", help="Merge persons that are on screen at the same time anyway; "
                            "the better box is kept in each shared frame.")] = False,
        verbose: VerboseOpt = False,
    ) -> None:
        """Record that these persons are one: all their tracklets must be joined.

        Persons seen in the same frames are two people: such a merge is refused (with the
        shared frames) unless --force. A merge that contradicts a recorded split or unmerge
        is refused, naming every conflict; repeating a merge records nothing new.

        Example: ptrack merge 14 29
        """
        with open_store(ctx) as store:
            store.require_writable()
            v = store.video(video)
            cid, again, tracklets, apply = merge_persons(ctx, store, v, ids, force=force,
                                                         verbose=verbose)
            now = merged_id(store, v, tracklets)
        say_merged(ids, cid, again, tracklets, apply, now)

    @app.command()
    @handles_errors
    def split(
        ctx: typer.Context,
        person: PersonArg,
        at: Annotated[int, typer.Option("--at", help="First frame of the second person (0-based).",
                                        show_default=False)],
        video: VideoOpt = None,
        verbose: VerboseOpt = False,
    ) -> None:
        """Record that a person is two people from frame AT on.

        Example: ptrack split 14 --at 1200
        """
        with open_store(ctx) as store:
            store.require_writable()
            v = store.video(video)
            [p] = resolve_ids(require_persons(store, v, ctx), [person])
            mine = set(store.person_tracklets(v.id).get(p["id"], []))
            for c in store.constraints(v.id):  # the same split again (it was applied at once)
                if c["kind"] == "split" and c["frame"] == at and mine & set(c["ids"]):
                    say(f"already recorded as split #{c['id']}; nothing new recorded")
                    return
            if not int(p["first"]) < at <= int(p["last"]):
                raise PtrackError(f"--at {at} is outside P{p['id']}'s frames after its first "
                                  f"({int(p['first']) + 1}-{p['last']})", exit_code=2)
            tracklets = store.person_tracklets(v.id).get(p["id"], [])
            boxes = store.person_boxes(v.id, p["id"])
            before = sorted({int(t) for t, f in zip(boxes["tracklet"], boxes["frame"]) if f < at and t >= 0})
            after = sorted({int(t) for t, f in zip(boxes["tracklet"], boxes["frame"]) if f >= at and t >= 0})
            cid, again = _record(store, v, {"kind": "split", "ids": list(tracklets), "frame": at},
                                 verbose)
            apply = _apply_hint(ctx, store, v)
        if again:
            say(f"already recorded as split #{cid}; nothing new recorded")
            return
        fps = v.fps or 1.0
        say(f"recorded split #{cid}: P{p['id']} (tracklets {_ids_text(tracklets)}) is two "
            f"people from frame {at} ({at / fps:.2f} s) on")
        both = sorted(set(before) & set(after))
        say(f"  before: tracklets {_ids_text(before) or '-'}; from {at}: tracklets "
            f"{_ids_text(after) or '-'}" + (f"; {_ids_text(both)} cut at {at}" if both else ""))
        say(apply)

    @app.command()
    @handles_errors
    def unmerge(
        ctx: typer.Context,
        person: PersonArg,
        video: VideoOpt = None,
        verbose: VerboseOpt = False,
    ) -> None:
        """Undo a wrong join: a person joined by your `merge` is taken apart by removing that
        merge; one that `group` joined by itself gets its tracklets kept apart.

        (`ptrack constraints` lists the corrections; `--delete ID` removes any of them.)

        Example: ptrack unmerge 14
        """
        with open_store(ctx) as store:
            store.require_writable()
            v = store.video(video)
            [p] = resolve_ids(require_persons(store, v, ctx), [person])
            tracklets = store.person_tracklets(v.id).get(p["id"], [])
            if len(tracklets) < 2:
                raise PtrackError(f"P{p['id']} is a single tracklet; nothing to unmerge "
                                  f"(`ptrack split {p['id']} --at FRAME` cuts it)")
            mine = [c for c in store.constraints(v.id)
                    if c["kind"] == "merge" and len(set(c["ids"]) & set(tracklets)) >= 2]
            if mine:  # the user's own merge made this person: undo it
                store.delete_constraints([c["id"] for c in mine])
                apply = _apply_hint(ctx, store, v)
                names = ", ".join("merge #%d" % c["id"] for c in mine)
                joined = "; ".join(_ids_text(c["ids"]) for c in mine)
                say(f"removed {names} (tracklets {joined}): P{p['id']} is no longer "
                    f"joined by your merge")
                say(apply)
                return
            cid, again = _record(store, v, {"kind": "unmerge", "ids": list(tracklets), "frame": None},
                                 verbose)
            apply = _apply_hint(ctx, store, v)
        if again:
            say(f"already recorded as unmerge #{cid}; nothing new recorded")
            return
        say(f"recorded unmerge #{cid}: tracklets {_ids_text(tracklets)} of P{p['id']} "
            f"are kept apart")
        say(apply)

    @app.command()
    @handles_errors
    @listing
    def constraints(
        ctx: typer.Context,
        video: VideoOpt = None,
        delete: Annotated[Optional[list[int]], typer.Option("--delete", metavar="ID", help="Remove the constraint with this id (repeatable).")] = None,
    ) -> Listing | None:
        """List (or --delete) the merges, splits, unmerges and rejected suggestions recorded for a video.

        Example: ptrack constraints --delete 3
        """
        with open_store(ctx) as store:
            v = store.video(video)
            have = {c["id"] for c in store.constraints(v.id)}
            if delete:
                unknown = [i for i in delete if i not in have]
                if unknown:
                    raise PtrackError(f"unknown constraint {_ids_text(unknown)}; {v.name} has "
                                      f"{_ids_text(sorted(have)) or 'none'}", exit_code=2)
                store.delete_constraints(delete)
                say(f"removed constraint {_ids_text(delete)}; "
                    f"{_apply_hint(ctx, store, v)}")
                return None
            rows = [{"id": c["id"], "kind": c["kind"], "tracklets": c["ids"], "frame": c["frame"],
                     "created": c["created"]} for c in store.constraints(v.id)]
        cols = [Column("id", "id"), Column("kind", "kind", justify="left"),
                Column("tracklets", "tracklets", lambda ids: " ".join(map(str, ids)), "left"),
                Column("frame", "frame", lambda f: "-" if f is None else str(f)),
                Column("created", "created", justify="left")]
        return Listing(cols, rows, title=f"{v.name}: constraints",
                       empty=f"no constraints recorded for {v.name}")
