"""``ptrack list videos | persons | tracklets | selections``: the project as tables.

Each returns a :class:`~ptrack.cli.output.Listing`; :func:`~ptrack.cli.output.listing` gives
them the shared ``--json/--nl/--csv/--tsv`` flags.
"""

from __future__ import annotations

from typing import Annotated, Optional, Sequence

import typer

from ptrack.cli.common import (App, NobodyFound, hint, VideoOpt, fmt_time, fmtspec as _f,
                               handles_errors, open_store, require_persons, stale_notes)
from ptrack.cli.output import Column, Listing, listing, plural
from ptrack.cli.suggest_cmd import suggested_with

def person_rows(persons: Sequence[dict], fps: float,
                suggested: dict[int, list] | None = None) -> list[dict]:
    """The machine-readable row of each person (``list persons``); ``suggestions``: how many
    open suggested merges name the person (``ptrack suggest``)."""
    suggested = suggested or {}
    rows = []
    for p in persons:
        first, last = int(p["first"]), int(p["last"])
        span = last - first + 1
        rows.append({
            "rank": p["rank"], "person": p["id"], "frames": p["n_frames"],
            "observed": p["n_observed"], "first": first, "last": last,
            "first_time": round(first / fps, 3) if fps else None,
            "last_time": round(last / fps, 3) if fps else None,
            "detected": round(p["n_observed"] / span, 4) if span > 0 else 0.0,
            "tracklets": p["n_tracklets"], "mean_height": round(float(p["mean_height"]), 1),
            "mean_conf": round(float(p["mean_conf"]), 4),
            "score": None if p["score"] is None else round(float(p["score"]), 4),
            "suggestions": len(suggested.get(int(p["id"]), []))})
    return rows


def selection_file_state(row: dict, every: Sequence[dict]) -> str:
    """Whether a selection's file still holds it: ``ok``, ``replaced by #N``, ``missing`` or
    ``stdout``."""
    from pathlib import Path

    path = row["path"]
    if not path or path.startswith("("):
        return "stdout"
    later = [s["id"] for s in every if s["path"] == path and s["id"] > row["id"]]
    if later:
        return f"replaced by #{later[-1]}"
    return "ok" if Path(path).is_file() else "missing"


def register(app: typer.Typer) -> None:
    """Add the ``list`` group to ``app``."""
    list_app = App(help="List videos, persons, tracklets, selections or runs of the project.",
                           no_args_is_help=True)
    app.add_typer(list_app, name="list")

    @list_app.command("videos")
    @handles_errors
    @listing
    def list_videos(ctx: typer.Context) -> Listing:
        """The project's videos with their stages.

        Example: ptrack list videos --json
        """
        with open_store(ctx) as store:
            rows = []
            for v in store.videos():
                rows.append({
                    "id": v.id, "name": v.name, "frames": v.frame_count, "fps": round(v.fps, 3),
                    "width": v.width, "height": v.height, "duration": round(v.duration, 2),
                    "detections": store.count_detections(v.id),
                    **{stage: store.stage_state(v.id, stage)
                       for stage in ("detect", "track", "group", "rank")},
                    "persons": len(store.persons(v.id)), "path": v.path})
        cols = [Column("id", "id", keep=True), Column("name", "name", justify="left", keep=True),
                Column("frames", "frames", priority=3), Column("fps", "fps", _f("g"), priority=1),
                Column("width", "size", get=lambda r: f"{r['width']}x{r['height']}", priority=1),
                Column("duration", "duration", lambda d: fmt_time(d, 1.0), priority=2),
                Column("detections", "detections", priority=2),
                Column("detect", "detect", justify="left", priority=4),
                Column("track", "track", justify="left", priority=4),
                Column("group", "group", justify="left", priority=4),
                Column("rank", "rank", justify="left", priority=4),
                Column("persons", "persons", priority=5),
                Column("path", "path", justify="left", keep=True)]
        return Listing(cols, rows, title="videos", empty="the project holds no videos yet "
                       "(run `ptrack detect VIDEO`)")

    @list_app.command("persons")
    @handles_errors
    @listing
    def list_persons(
        ctx: typer.Context,
        video: VideoOpt = None,
        top: Annotated[Optional[int], typer.Option("--top", "-n", min=1, help="Only the N best ranked.")] = None,
        min_frames: Annotated[int, typer.Option("--min-frames", min=0, help="Only persons present in at least N frames.")] = 0,
    ) -> Listing:
        """Persons in rank order: frames present, span, detected (the share of the span with a
        detection, as `show` and `table` say), tracklets, size, score.

        Example: ptrack list persons --top 10
        """
        with open_store(ctx) as store:
            v = store.video(video)
            try:
                persons = require_persons(store, v, ctx)
            except NobodyFound as exc:
                persons, nobody = [], exc.message
            else:
                nobody = None
            notes = stale_notes(store, v)
            suggested = suggested_with(store, v.id)
            suggest_hint = hint(store, v, "suggest")
        total = len(persons)
        persons = [p for p in persons if p["n_frames"] >= min_frames]
        if top:
            persons = persons[:top]
        rows = person_rows(persons, v.fps, suggested)
        open_total = sum(len(x) for x in suggested.values()) // 2
        if open_total:
            said = "1 suggested merge is" if open_total == 1 else f"{open_total} suggested merges are"
            notes.append(f"note: {said} open (the suggested column); `{suggest_hint}` shows them")
        cols = [Column("rank", "rank", _f("d"), keep=True), Column("person", "person", keep=True),
                Column("frames", "frames", priority=5),
                Column("first", "first", priority=1), Column("last", "last", priority=1),
                Column("first_time", "from", lambda t: fmt_time(t, 1.0), priority=3),
                Column("last_time", "to", lambda t: fmt_time(t, 1.0), priority=3),
                Column("detected", "detected", _f(".0%"), priority=4),
                Column("tracklets", "tracklets", priority=2),
                Column("mean_height", "height px", _f(".0f"), priority=2),
                Column("mean_conf", "conf", _f(".2f"), priority=1),
                Column("score", "score", _f(".3f"), priority=4),
                Column("suggestions", "suggested", lambda n: str(n) if n else "-", priority=3)]
        title = f"{v.name}: {len(rows)} of {plural(total, 'person')}"
        return Listing(cols, rows, title=title, notes=notes,
                       empty=nobody or f"no person of {v.name} matches (of {total}; lower --min-frames)")

    @list_app.command("tracklets")
    @handles_errors
    @listing
    def list_tracklets(
        ctx: typer.Context,
        video: VideoOpt = None,
        min_frames: Annotated[int, typer.Option("--min-frames", min=0, help="Only tracklets with at least N boxes.")] = 0,
    ) -> Listing:
        """The tracker's tracklets with their span and the person each joined.

        Example: ptrack list tracklets --min-frames 10 --csv
        """
        import numpy as np

        with open_store(ctx) as store:
            v = store.video(video)
            tid, dets = store.tracklet_boxes(v.id)
            owner = {t: p for p, ts in store.person_tracklets(v.id).items() for t in ts}
            state = store.stage_state(v.id, "track")
            track_hint = hint(store, v, "track")
        rows = []
        if len(tid):
            starts = np.flatnonzero(np.r_[True, tid[1:] != tid[:-1]])
            ends = np.r_[starts[1:], len(tid)]
            for s, e in zip(starts, ends):
                n = int(e - s)
                if n < min_frames:
                    continue
                t = int(tid[s])
                first, last = int(dets.frame[s]), int(dets.frame[e - 1])
                h = dets.xyxy[s:e, 3] - dets.xyxy[s:e, 1]
                rows.append({"tracklet": t, "boxes": n, "first": first, "last": last,
                             "first_time": round(first / v.fps, 3) if v.fps else None,
                             "last_time": round(last / v.fps, 3) if v.fps else None,
                             "mean_height": round(float(h.mean()), 1),
                             "mean_conf": round(float(dets.conf[s:e].mean()), 4),
                             "person": owner.get(t)})
        cols = [Column("tracklet", "tracklet", keep=True), Column("boxes", "boxes", priority=3),
                Column("first", "first", priority=2), Column("last", "last", priority=2),
                Column("first_time", "from", lambda t: fmt_time(t, 1.0), priority=1),
                Column("last_time", "to", lambda t: fmt_time(t, 1.0), priority=1),
                Column("mean_height", "height px", _f(".0f"), priority=1),
                Column("mean_conf", "conf", _f(".2f"), priority=1),
                Column("person", "person", _f("d"), keep=True)]
        empty = (f"{v.name} has no tracklets yet; run `{track_hint}`" if state == "missing"
                 else f"no tracklet of {v.name} matches")
        return Listing(cols, rows, title=f"{v.name}: {plural(len(rows), 'tracklet')}", empty=empty)

    @list_app.command("selections")
    @handles_errors
    @listing
    def list_selections(ctx: typer.Context, video: VideoOpt = None) -> Listing:
        """What was selected with `ptrack select`, when, and the file that holds it.

        The file column says whether the file still holds that selection: ok, replaced by
        #N (a later selection was written to the same path), missing, or stdout.

        Example: ptrack list selections
        """
        with open_store(ctx) as store:
            names = {v.id: v.name for v in store.videos()}
            vid = store.video(video).id if video else None
            rows = [{"id": s["id"], "video": names.get(s["video_id"], s["video_id"]),
                     "person_id": s["person_id"], "person_ids": s["person_ids"],
                     "frames": s["n_frames"], "format": s["format"], "path": s["path"],
                     "created": s["created"]} for s in store.selections(vid)]
            every = store.selections(None)
        for r in rows:
            r["file"] = selection_file_state(r, every)
        cols = [Column("id", "id", keep=True), Column("video", "video", justify="left", keep=True),
                Column("person_id", "person", keep=True),
                Column("person_ids", "from persons", lambda ids: " ".join(map(str, ids)), "left",
                       priority=2),
                Column("frames", "frames", priority=2),
                Column("format", "format", justify="left", priority=1),
                Column("created", "created", justify="left", priority=1),
                Column("file", "file", justify="left", priority=3),
                Column("path", "path", justify="left", keep=True)]
        return Listing(cols, rows, title="selections",
                       empty="nothing selected yet (ptrack select ID)")


    @list_app.command("runs")
    @handles_errors
    @listing
    def list_runs(ctx: typer.Context, video: VideoOpt = None) -> Listing:
        """The latest run of each stage for each video: status, when, how long, the backend
        and precision with the reason (detect), with its id for `ptrack config show --run ID`.

        --json gives all a run recorded: times, stats, timings, the INT8 gate's figures and
        its settings.

        Example: ptrack list runs --json
        """
        with open_store(ctx) as store:
            videos = [store.video(video)] if video else store.videos()
            rows = []
            for v in videos:
                for stage in ("detect", "track", "group", "rank", "pose"):
                    r = store.latest_run(v.id, stage)
                    if r is not None:
                        rows.append(run_row(r, v.name, *store.run_times(r.id)))
        cols = [Column("run", "run", keep=True), Column("video", "video", justify="left", keep=True),
                Column("stage", "stage", justify="left", keep=True),
                Column("status", "status", justify="left", keep=True),
                Column("started", "started", lambda t: (t or "-").replace("T", " ")[:19],
                       justify="left", priority=2),
                Column("seconds", "seconds", _f(".1f"), priority=3),
                Column("backend", "backend", justify="left", priority=1),
                Column("precision", "precision", justify="left", priority=1),
                Column("precision_why", "why", justify="left", priority=0)]
        return Listing(cols, rows, title="runs", empty="no runs yet (run `ptrack detect VIDEO`)")


def run_row(r, video: str, started: str | None, finished: str | None) -> dict:
    """Everything a run recorded, flat where a table shows it."""
    import datetime as dt

    stats = r.stats if isinstance(r.stats, dict) else {}
    seconds = stats.get("seconds")
    if seconds is None and started and finished:
        try:
            seconds = (dt.datetime.fromisoformat(finished)
                       - dt.datetime.fromisoformat(started)).total_seconds()
        except ValueError:
            seconds = None
    precision = stats.get("precision") if isinstance(stats.get("precision"), dict) else {}
    return {"run": r.id, "video": video, "stage": r.stage, "status": r.status,
            "started": started, "finished": finished, "seconds": seconds,
            "backend": stats.get("backend"), "precision": precision.get("precision"),
            "precision_why": precision.get("why"), "input_run": r.input_run,
            "frames_done": r.frames_done, "stats": stats, "settings": r.settings}
