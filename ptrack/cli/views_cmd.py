"""Looking at the store: ``list``, ``show``, ``crops``, ``table`` and ``render``.

Every listing returns a :class:`Listing` and is wrapped in :func:`listing`, which adds the
same output flags to all of them: a rich table on a terminal, plain aligned text when piped,
``--json``, ``--csv`` or ``--tsv`` for scripts.
"""

from __future__ import annotations

import csv
import functools
import inspect
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, Optional, Sequence

import typer

from ptrack.cli.common import handles_errors, open_store, stdout_is_terminal
from ptrack.errors import PtrackError

VideoOpt = Annotated[Optional[str], typer.Option(
    "--video", "-v", help="Video name or id (needed when the project holds several).")]


# ----------------------------------------------------------------------------- listings
@dataclass
class Column:
    """A displayed column: row key, header, how to format a value, alignment."""

    key: str
    header: str
    fmt: Callable[[Any], str] | None = None
    justify: str = "right"
    get: Callable[[dict], Any] | None = None  # value from the whole row instead of row[key]

    def text(self, row: dict) -> str:
        value = self.get(row) if self.get is not None else row.get(self.key)
        if self.fmt is not None:
            return self.fmt(value)
        return "-" if value is None else str(value)


@dataclass
class Listing:
    """What a listing command returns: rows (all keys go to --json/--csv) and the columns a
    person sees."""

    columns: list[Column]
    rows: list[dict]
    title: str | None = None
    empty: str = "nothing to list"
    notes: list[str] = field(default_factory=list)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if isinstance(value, float):
        return round(value, 6)
    return value


def emit(result: Listing, fmt: str) -> None:
    """Print a listing as ``json``, ``csv``, ``tsv``, ``rich`` or ``plain`` text."""
    err = sys.stderr
    rows = [{k: _jsonable(v) for k, v in r.items()} for r in result.rows]
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2))
    elif fmt in ("csv", "tsv"):
        keys = list(rows[0]) if rows else [c.key for c in result.columns]
        w = csv.writer(sys.stdout, delimiter="," if fmt == "csv" else "\t", lineterminator="\n")
        w.writerow(keys)
        for r in rows:
            w.writerow(["" if r.get(k) is None else (json.dumps(r[k]) if isinstance(r[k], (list, dict))
                                                      else r[k]) for k in keys])
    elif not rows:
        typer.echo(result.empty)
    elif fmt == "rich":
        from rich.console import Console
        from rich.table import Table

        table = Table(title=result.title, title_justify="left", header_style="bold")
        for c in result.columns:
            table.add_column(c.header, justify=c.justify, no_wrap=c.justify == "right")  # type: ignore[arg-type]
        for r in result.rows:
            table.add_row(*(c.text(r) for c in result.columns))
        Console(highlight=False).print(table)
    else:  # plain aligned text for pipes and less
        cells = [[c.header for c in result.columns]]
        cells += [[c.text(r) for c in result.columns] for r in result.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(result.columns))]
        for row in cells:
            parts = [v.rjust(w) if c.justify == "right" else v.ljust(w)
                     for v, w, c in zip(row, widths, result.columns)]
            typer.echo("  ".join(parts).rstrip())
    if fmt in ("rich", "plain"):
        for note in result.notes:
            print(note, file=err)


def listing(fn: Callable[..., Listing | None]) -> Callable[..., None]:
    """Give a command that returns a :class:`Listing` the shared ``--json/--csv/--tsv``
    flags and print its result the same way as every other listing."""
    extra = [
        inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY, default=False,
                          annotation=Annotated[bool, typer.Option("--json", help="Output JSON (a list of objects).")]),
        inspect.Parameter("as_csv", inspect.Parameter.KEYWORD_ONLY, default=False,
                          annotation=Annotated[bool, typer.Option("--csv", help="Output CSV with a header row.")]),
        inspect.Parameter("as_tsv", inspect.Parameter.KEYWORD_ONLY, default=False,
                          annotation=Annotated[bool, typer.Option("--tsv", help="Output tab-separated values with a header row.")]),
    ]

    @functools.wraps(fn)
    def wrapper(*args: Any, as_json: bool = False, as_csv: bool = False, as_tsv: bool = False,
                **kwargs: Any) -> None:
        if as_json + as_csv + as_tsv > 1:
            raise PtrackError("choose one of --json, --csv and --tsv", exit_code=2)
        result = fn(*args, **kwargs)
        if result is None:
            return
        fmt = ("json" if as_json else "csv" if as_csv else "tsv" if as_tsv
               else "rich" if stdout_is_terminal() else "plain")
        emit(result, fmt)

    sig = inspect.signature(fn, eval_str=True)
    wrapper.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[*sig.parameters.values(), *extra], return_annotation=None)
    wrapper.__annotations__ = {}
    return wrapper


# ----------------------------------------------------------------------- shared helpers
class NobodyFound(PtrackError):
    """The video was searched and holds no people (not an error for a listing)."""


def require_persons(store: Any, video: Any) -> list[dict]:
    """The video's persons in rank order, or a one-line error saying what to run first."""
    persons = store.persons(video.id)
    if persons:
        return persons
    n = store.count_detections(video.id)
    if n == 0 and store.stage_state(video.id, "detect") == "done":
        raise NobodyFound(f"nobody was found in {video.name} (no detections in "
                          f"{video.frame_count} frames)", exit_code=0)
    if n == 0:
        raise PtrackError(f"{video.name} has no detections yet; run `ptrack detect {video.path}`")
    raise PtrackError(f"{video.name} has {n} detections but no persons yet; run "
                      f"`ptrack track; ptrack group; ptrack rank`")


def stale_notes(store: Any, video: Any) -> list[str]:
    """Warnings when the persons are older than the tracklets or not ranked."""
    notes = []
    group = store.stage_state(video.id, "group")
    rank = store.stage_state(video.id, "rank")
    if group == "stale":
        notes.append(f"note: persons of {video.name} predate the latest tracking; "
                     f"run `ptrack group; ptrack rank`")
    elif rank in ("missing", "stale", "failed") and group == "done":
        notes.append(f"note: persons of {video.name} are not ranked by the latest grouping; "
                     f"run `ptrack rank`")
    return notes


def resolve_ids(persons: Sequence[dict], ids: Sequence[int]) -> list[dict]:
    """The person rows for ``ids`` in the order given; exit 2 naming the available ids."""
    by_id = {int(p["id"]): p for p in persons}
    unknown = [i for i in ids if int(i) not in by_id]
    if unknown:
        listing_text = ", ".join(f"{p['id']} ({p['n_frames']} frames)" for p in persons[:40])
        more = f", ... {len(persons) - 40} more (ptrack list persons)" if len(persons) > 40 else ""
        word = "person" if len(unknown) == 1 else "persons"
        raise PtrackError(f"unknown {word} {', '.join(map(str, unknown))}; available: "
                          f"{listing_text}{more}", exit_code=2)
    seen: list[dict] = []
    for i in ids:
        if by_id[int(i)] not in seen:
            seen.append(by_id[int(i)])
    return seen


def fmt_time(frame: int, fps: float) -> str:
    from ptrack.views.terminal import fmt_time as _fmt

    return _fmt(frame / fps) if fps else "-"


def _f(spec: str) -> Callable[[Any], str]:
    return lambda v: "-" if v is None else format(v, spec)


# ----------------------------------------------------------------------------- commands
def person_rows(persons: Sequence[dict], fps: float) -> list[dict]:
    """The machine-readable row of each person (``list persons``)."""
    rows = []
    for p in persons:
        first, last = int(p["first"]), int(p["last"])
        span = last - first + 1
        rows.append({
            "rank": p["rank"], "person": p["id"], "frames": p["n_frames"],
            "observed": p["n_observed"], "first": first, "last": last,
            "first_time": round(first / fps, 3) if fps else None,
            "last_time": round(last / fps, 3) if fps else None,
            "coverage": round(p["n_observed"] / span, 4) if span > 0 else 0.0,
            "tracklets": p["n_tracklets"], "mean_height": round(float(p["mean_height"]), 1),
            "mean_conf": round(float(p["mean_conf"]), 4),
            "score": None if p["score"] is None else round(float(p["score"]), 4)})
    return rows


def register(app: typer.Typer) -> None:
    """Add ``list``, ``show``, ``crops``, ``table`` and ``render`` to ``app``."""
    list_app = typer.Typer(help="List videos, persons, tracklets or selections of the project.",
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
        cols = [Column("id", "id"), Column("name", "name", justify="left"),
                Column("frames", "frames"), Column("fps", "fps", _f("g")),
                Column("width", "size", get=lambda r: f"{r['width']}x{r['height']}"),
                Column("duration", "duration", lambda d: fmt_time(d, 1.0)),
                Column("detections", "detections"),
                Column("detect", "detect", justify="left"), Column("track", "track", justify="left"),
                Column("group", "group", justify="left"), Column("rank", "rank", justify="left"),
                Column("persons", "persons"), Column("path", "path", justify="left")]
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
        """Persons in rank order: frames present, span, coverage, tracklets, size, score.

        Example: ptrack list persons --top 10
        """
        with open_store(ctx) as store:
            v = store.video(video)
            try:
                persons = require_persons(store, v)
            except NobodyFound as exc:
                persons, nobody = [], exc.message
            else:
                nobody = None
            notes = stale_notes(store, v)
        total = len(persons)
        persons = [p for p in persons if p["n_frames"] >= min_frames]
        if top:
            persons = persons[:top]
        rows = person_rows(persons, v.fps)
        cols = [Column("rank", "rank", _f("d")), Column("person", "person"),
                Column("frames", "frames"), Column("first", "first"), Column("last", "last"),
                Column("first_time", "from", lambda t: fmt_time(t, 1.0) if t is not None else "-"),
                Column("last_time", "to", lambda t: fmt_time(t, 1.0) if t is not None else "-"),
                Column("coverage", "coverage", _f(".0%")), Column("tracklets", "tracklets"),
                Column("mean_height", "height px", _f(".0f")),
                Column("mean_conf", "conf", _f(".2f")), Column("score", "score", _f(".3f"))]
        title = f"{v.name}: {len(rows)} of {total} persons"
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
        cols = [Column("tracklet", "tracklet"), Column("boxes", "boxes"), Column("first", "first"),
                Column("last", "last"),
                Column("first_time", "from", lambda t: fmt_time(t, 1.0) if t is not None else "-"),
                Column("last_time", "to", lambda t: fmt_time(t, 1.0) if t is not None else "-"),
                Column("mean_height", "height px", _f(".0f")), Column("mean_conf", "conf", _f(".2f")),
                Column("person", "person", _f("d"))]
        empty = (f"{v.name} has no tracklets yet; run `ptrack track`" if state == "missing"
                 else f"no tracklet of {v.name} matches")
        return Listing(cols, rows, title=f"{v.name}: {len(rows)} tracklets", empty=empty)

    @list_app.command("selections")
    @handles_errors
    @listing
    def list_selections(ctx: typer.Context, video: VideoOpt = None) -> Listing:
        """What was selected with ``ptrack select``, when, and where it was written.

        Example: ptrack list selections
        """
        with open_store(ctx) as store:
            names = {v.id: v.name for v in store.videos()}
            vid = store.video(video).id if video else None
            rows = [{"id": s["id"], "video": names.get(s["video_id"], s["video_id"]),
                     "person_id": s["person_id"], "person_ids": s["person_ids"],
                     "frames": s["n_frames"], "format": s["format"], "path": s["path"],
                     "created": s["created"]} for s in store.selections(vid)]
        cols = [Column("id", "id"), Column("video", "video", justify="left"),
                Column("person_id", "person"),
                Column("person_ids", "from persons", lambda ids: " ".join(map(str, ids)), "left"),
                Column("frames", "frames"), Column("format", "format", justify="left"),
                Column("created", "created", justify="left"), Column("path", "path", justify="left")]
        return Listing(cols, rows, title="selections",
                       empty="nothing selected yet (ptrack select ID)")

    @app.command()
    @handles_errors
    def show(
        ctx: typer.Context,
        ids: Annotated[list[int], typer.Argument(help="Person ids (see `ptrack list persons`).",
                                                 show_default=False)],
        video: VideoOpt = None,
        k: Annotated[int, typer.Option("--k", "-k", min=1, help="Crops per person, one per time bin.")] = 8,
        height: Annotated[int, typer.Option("--height", min=3, help="Height of a crop in terminal rows.")] = 12,
        graphics: Annotated[str, typer.Option(
            help="auto (the best the terminal supports) | blocks (Unicode half blocks) | sixel | "
                 "kitty | none (stats only).")] = "auto",
    ) -> None:
        """Preview persons in the terminal: crops across their presence and their numbers.

        Several ids are shown side by side, to judge whether they are the same person.

        Example: ptrack show 14 29 --k 6
        """
        from rich.console import Console

        from ptrack.views.samples import load_crops, sample_person_from_store
        from ptrack.views.terminal import GRAPHICS, compare_view, person_view

        if graphics not in GRAPHICS:
            raise PtrackError(f"--graphics must be one of {', '.join(GRAPHICS)}", exit_code=2)
        console = Console(highlight=False)
        if graphics == "auto" and not console.is_terminal:
            graphics = "none"
            typer.echo("note: output is not a terminal, so crops are not drawn "
                       "(--graphics blocks draws them anyway)", err=True)
        with open_store(ctx) as store:
            v = store.video(video)
            chosen = resolve_ids(require_persons(store, v), ids)
            crops = []
            for p in chosen:
                boxes = store.person_boxes(v.id, p["id"])
                picks = sample_person_from_store(store, v.id, boxes, k, per_bin=3)
                crops.append(load_crops(store, v.id, picks))
        if len(chosen) == 1:
            beside = console.width >= 2 * (height + 1) + 46
            console.print(person_view(chosen[0], crops[0], v.fps, width=console.width,
                                      height=height, graphics=graphics, beside=beside))
        else:
            each = max(height + 1, (console.width - 3 * (len(chosen) - 1)) // len(chosen))
            views = [person_view(p, c, v.fps, width=each, height=height, graphics=graphics,
                                 beside=False) for p, c in zip(chosen, crops)]
            console.print(compare_view(views))

    @app.command()
    @handles_errors
    def crops(
        ctx: typer.Context,
        person: Annotated[int, typer.Argument(help="Person id.", show_default=False)],
        out: Annotated[Optional[Path], typer.Option(
            "--out", "-o", help="Directory for the images. [default: <project>/outputs/<video>/crops_p<ID>]")] = None,
        k: Annotated[Optional[int], typer.Option("--k", "-k", min=1, help="Only K crops sampled across time (default: all).")] = None,
        video: VideoOpt = None,
    ) -> None:
        """Write a person's crops as JPEG files named p<ID>_f<frame>.jpg.

        Example: ptrack crops 14 --out crops14 --k 20
        """
        from ptrack.views.samples import load_crops, sample_person

        with open_store(ctx) as store:
            v = store.video(video)
            [p] = resolve_ids(require_persons(store, v), [person])
            boxes = store.person_boxes(v.id, p["id"])
            dets = store.detections(v.id, frames=boxes["frame"]) if k else None
            picks = sample_person(boxes, dets, k or 0, per_bin=3 if k else 1)
            got = load_crops(store, v.id, picks, decode=False)
            target = out if out is not None else store.output_dir(v) / f"crops_p{p['id']}"
        target.mkdir(parents=True, exist_ok=True)
        for sample, jpeg in got:
            (target / f"p{p['id']}_f{sample.frame:06d}.jpg").write_bytes(jpeg)
        missing = (len(picks)) - len(got)
        typer.echo(f"wrote {len(got)} crops of P{p['id']} to {target}")
        if missing > 0:
            typer.echo(f"note: {missing} crops were not stored", err=True)

    @app.command()
    @handles_errors
    def table(
        ctx: typer.Context,
        video: VideoOpt = None,
        top: Annotated[int, typer.Option("--top", "-n", min=1, help="Persons to show, best ranked first.")] = 20,
        k: Annotated[int, typer.Option("--k", "-k", min=1, help="Crops per person across time.")] = 8,
        out: Annotated[Optional[Path], typer.Option(
            "--out", "-o", help="Output file. [default: <project>/outputs/<video>/selection_table.png (.html)]")] = None,
        html: Annotated[bool, typer.Option("--html", help="Write a self-contained HTML page instead of a PNG.")] = False,
    ) -> None:
        """Draw the selection table: one row per person with crops across their presence.

        Example: ptrack table --top 10 --html
        """
        from ptrack.views.sheet import sheet_rows, write_html, write_png

        with open_store(ctx) as store:
            v = store.video(video)
            persons = require_persons(store, v)
            rows = sheet_rows(store, v, persons[:top], k)
            default = store.output_dir(v) / ("selection_table.html" if html else "selection_table.png")
        path = out if out is not None else default
        writer = write_html if html or (out is not None and out.suffix.lower() in (".html", ".htm")) else write_png
        writer(rows, v, path, k, total_persons=len(persons))
        typer.echo(f"wrote {path} ({len(rows)} of {len(persons)} persons)")

    @app.command()
    @handles_errors
    def render(
        ctx: typer.Context,
        video: VideoOpt = None,
        top: Annotated[int, typer.Option("--top", "-n", min=1, help="Draw the N best ranked persons.")] = 10,
        ids: Annotated[Optional[list[int]], typer.Option("--id", help="Draw these persons instead (repeatable).")] = None,
        out: Annotated[Optional[Path], typer.Option(
            "--out", "-o", help="Output video. [default: <project>/outputs/<video>/annotated.mp4]")] = None,
        encoder: Annotated[str, typer.Option(help="auto (H.264 through ffmpeg when available, else OpenCV mp4v) | h264 | mp4v.")] = "auto",
    ) -> None:
        """Write the video with each person's box, id and rank drawn on it.

        Example: ptrack render --top 5
        """
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeRemainingColumn)

        from ptrack.views.render import render_video

        if encoder not in ("auto", "h264", "mp4v"):
            raise PtrackError("--encoder must be auto, h264 or mp4v", exit_code=2)
        err = Console(stderr=True)
        with open_store(ctx) as store:
            v = store.video(video)
            persons = require_persons(store, v)
            chosen = resolve_ids(persons, ids) if ids else persons[:top]
            boxes = store.person_boxes(v.id)
            path = out if out is not None else store.output_dir(v) / "annotated.mp4"
        if encoder == "auto":
            from ptrack.views.render import ffmpeg_h264

            if ffmpeg_h264() is None:
                err.print("warning: ffmpeg with libx264 not found; falling back to OpenCV mp4v "
                          "(MPEG-4 part 2, not H.264: some players and browsers will not play it)",
                          highlight=False)
        with Progress(TextColumn("rendering"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), console=err, transient=True,
                      disable=not err.is_terminal) as bar:
            task = bar.add_task("render", total=v.frame_count or None)
            result = render_video(v, chosen, boxes, path, encoder=encoder,
                                  progress=lambda d, t: bar.update(task, completed=d, total=t))
        typer.echo(f"wrote {result.path} ({result.frames} frames, {len(chosen)} persons, "
                   f"{result.encoder})")
