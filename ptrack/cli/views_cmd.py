"""Looking at persons: ``show`` (terminal preview), ``crops``, ``table`` and ``render``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ptrack.cli.common import (IdsArg, PersonArg, VideoOpt, handles_errors,
                               open_store, require_persons, resolve_ids)
from ptrack.cli.common import settings, stale_notes, video_flag
from ptrack.cli.output import Destination, is_stdout, out_format, plural, say, write_new_file
from ptrack.cli.suggest_cmd import may_be_line, suggested_with
from ptrack.errors import PtrackError


def _say_suggested(ids: list[int], suggested: dict[int, list[dict]], flag: str) -> None:
    """Under ``show``: the open suggested merges among the persons shown (with the command to
    accept each), then, for one person, the others it may be."""
    shown = set(ids)
    among = []
    for a in ids:
        for e in suggested.get(a, []):
            if e["other"] in shown and a < e["other"]:
                among.append((a, e))
    for a, e in among:
        app = e.get("appearance")
        dist = f", appearance distance {app:.2f}" if app is not None else ""
        say(f"P{a} may be the same as P{e['other']} (suggestion #{e['k']}{dist}): "
            f"`ptrack suggest --accept {e['k']}{flag}` merges them, "
            f"`ptrack suggest --reject {e['k']}{flag}` keeps them apart")
    if len(ids) == 1 and suggested.get(ids[0]):
        say(may_be_line(ids[0], suggested[ids[0]]) + f"; compare with `ptrack show "
            f"{ids[0]} {suggested[ids[0]][0]['other']}{flag}`")


def register(app: typer.Typer) -> None:
    """Add ``show``, ``crops``, ``table`` and ``render`` to ``app``."""

    @app.command()
    @handles_errors
    def show(
        ctx: typer.Context,
        ids: IdsArg,
        video: VideoOpt = None,
        k: Annotated[int, typer.Option("--crops", "-k", min=1, help="Crops per person, one per time bin.")] = 8,
        height: Annotated[int, typer.Option("--height", min=3, help="Height of a crop in terminal rows.")] = 12,
        graphics: Annotated[str, typer.Option(
            help="auto (the best the terminal supports) | blocks (Unicode half blocks) | sixel | "
                 "kitty | none (stats only).")] = "auto",
    ) -> None:
        """Preview persons in the terminal: crops across their presence and their numbers.

        Several ids are shown side by side, to judge whether they are the same person.

        Example: ptrack show 14 29 --crops 6
        """
        from rich.console import Console

        from ptrack.views.samples import load_crops, sample_persons_from_store
        from ptrack.views.terminal import (COMPARE_MIN_WIDTH, GRAPHICS, compare_view, per_row,
                                           person_view)

        if graphics not in GRAPHICS:
            raise PtrackError(f"--graphics must be one of {', '.join(GRAPHICS)}", exit_code=2)
        console = Console(highlight=False)
        if graphics == "auto" and not console.is_terminal:
            graphics = "none"
            say("note: output is not a terminal, so crops are not drawn "
                "(--graphics blocks draws them anyway)", err=True)
        with open_store(ctx) as store:
            v = store.video(video)
            chosen = resolve_ids(require_persons(store, v, ctx), ids)
            picks = sample_persons_from_store(store, v.id, [p["id"] for p in chosen], k, per_bin=3)
            crops = [load_crops(store, v.id, picks[int(p["id"])]) for p in chosen]
            suggested = suggested_with(store, v.id)
            flag = video_flag(store, v)
        if len(chosen) == 1:
            beside = console.width >= 2 * (height + 1) + 46
            console.print(person_view(chosen[0], crops[0], v.fps, width=console.width,
                                      height=height, graphics=graphics, beside=beside))
        else:
            # as many side by side as fit without cutting a value; the others in rows below
            columns = per_row(len(chosen), console.width, max(COMPARE_MIN_WIDTH, height + 1))
            each = max(height + 1, (console.width - 3 * (columns - 1)) // columns)
            views = [person_view(p, c, v.fps, width=each, height=height, graphics=graphics,
                                 beside=False) for p, c in zip(chosen, crops)]
            console.print(compare_view(views, columns=columns))
        _say_suggested([int(p["id"]) for p in chosen], suggested, flag)

    @app.command()
    @handles_errors
    def crops(
        ctx: typer.Context,
        person: PersonArg,
        out: Annotated[Optional[Path], typer.Option(
            "--out", "-o", help="Directory for the images. [default: <project>/outputs/<video>/crops_p<ID>]")] = None,
        k: Annotated[Optional[int], typer.Option("--count", "-k", min=1, help="Only this many crops, sampled across time (default: all).")] = None,
        video: VideoOpt = None,
    ) -> None:
        """Write a person's crops as JPEG files named p<ID>_f<frame>.jpg.

        Example: ptrack crops 14 --out crops14 --count 20
        """
        from ptrack.views.samples import load_crops, sample_person

        with open_store(ctx) as store:
            v = store.video(video)
            [p] = resolve_ids(require_persons(store, v, ctx), [person])
            boxes = store.person_boxes(v.id, p["id"])
            dets = store.detections(v.id, frames=boxes["frame"]) if k else None
            picks = sample_person(boxes, dets, k or 0, per_bin=3 if k else 1)
            got = load_crops(store, v.id, picks, decode=False)
            target = out if out is not None else store.output_dir(v, f"crops_p{p['id']}")
        target.mkdir(parents=True, exist_ok=True)
        for sample, jpeg in got:
            write_new_file(target / f"p{p['id']}_f{sample.frame:06d}.jpg", jpeg)
        missing = (len(picks)) - len(got)
        say(f"wrote {plural(len(got), 'crop')} of P{p['id']} to {target}")
        if missing > 0:
            say(f"note: {missing} crops were not stored", err=True)

    @app.command()
    @handles_errors
    def table(
        ctx: typer.Context,
        video: VideoOpt = None,
        top: Annotated[int, typer.Option("--top", "-n", min=1, help="Persons to show, best ranked first.")] = 20,
        k: Annotated[int, typer.Option("--crops", "-k", min=1, help="Crops per person across time.")] = 8,
        out: Annotated[Optional[Path], typer.Option(
            "--out", "-o", show_default=False, metavar="FILE",
            help="Output file; its extension picks the format; - writes to standard output. "
                 "[default: <project>/outputs/<video>/selection_table.<png|html>]")] = None,
        fmt: Annotated[Optional[str], typer.Option(
            "--format", "-f", show_default=False,
            help="png | html (a self-contained page). [default: from the --out extension, else png]")] = None,
        html: Annotated[bool, typer.Option("--html", help="The same as --format html.")] = False,
    ) -> None:
        """Draw the selection table: one row per person with crops across their presence.

        Example: ptrack table --top 10 --out table.html
        """
        from ptrack.views.sheet import sheet_rows, write_html, write_png

        if html:
            if fmt is not None and fmt.lower() != "html":
                raise PtrackError(f"--html contradicts --format {fmt}", exit_code=2)
            fmt = "html"
        fmt = out_format(out, fmt, ("png", "html"), {"png": (".png",), "html": (".html", ".htm")}, "png")
        with open_store(ctx) as store:
            v = store.video(video)
            notes = stale_notes(store, v)
            persons = require_persons(store, v, ctx)
            rows = sheet_rows(store, v, persons[:top], k)
            folder = store.output_dir(v) if out is None else store.output_path(v)
            dest = Destination(out, folder / f"selection_table.{fmt}")
        for note in notes:
            say(note, err=True)
        writer = write_html if fmt == "html" else write_png
        writer(rows, v, dest.path, k, total_persons=len(persons))
        dest.done()
        dest.say(f"wrote {dest.shown} ({len(rows)} of {plural(len(persons), 'person')})")

    @app.command()
    @handles_errors
    def render(
        ctx: typer.Context,
        video: VideoOpt = None,
        top: Annotated[int, typer.Option("--top", "-n", min=1, help="Draw the N best ranked persons.")] = 10,
        old_ids: Annotated[Optional[list[int]], typer.Option("--id", hidden=True)] = None,
        ids: Annotated[Optional[list[int]], typer.Argument(
            help="Draw these persons instead of the top N.", show_default=False, metavar="ID")] = None,
        out: Annotated[Optional[Path], typer.Option(
            "--out", "-o", help="Output video. [default: <project>/outputs/<video>/annotated.mp4]")] = None,
        encoder: Annotated[str, typer.Option(help="auto (H.264 through ffmpeg when available, else OpenCV mp4v) | h264 | mp4v.")] = "auto",
        boxes_kind: Annotated[str, typer.Option(
            "--boxes", help="Boxes to draw: smoothed (what select and export write) | raw "
            "(the detector's).")] = "smoothed",
    ) -> None:
        """Write the video with each person's box, id and rank drawn on it, and the skeleton
        of persons with current keypoints (`ptrack pose`).

        Example: ptrack render --top 5; ptrack render 14 29
        """
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeRemainingColumn)

        from ptrack.views.render import render_video

        ids = list(ids or []) + list(old_ids or [])
        if is_stdout(out):
            raise PtrackError("render writes a video file; give --out FILE.mp4, not -", exit_code=2)
        if encoder not in ("auto", "h264", "mp4v"):
            raise PtrackError("--encoder must be auto, h264 or mp4v", exit_code=2)
        if boxes_kind not in ("smoothed", "raw"):
            raise PtrackError(f"--boxes must be smoothed or raw, not '{boxes_kind}'", exit_code=2)
        err = Console(stderr=True)
        with open_store(ctx) as store:
            v = store.video(video)
            persons = require_persons(store, v, ctx)
            chosen = resolve_ids(persons, ids) if ids else persons[:top]
            boxes = store.person_boxes(v.id)
            path = out if out is not None else store.output_dir(v) / "annotated.mp4"
            from ptrack.pose.handoff import person_poses

            poses, _ = person_poses(store, v, [int(p["id"]) for p in chosen])
            kpt_conf = float(settings(ctx)["pose"]["kpt_conf"])
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
            result = render_video(v, chosen, boxes, path, encoder=encoder, which=boxes_kind,
                                  poses=poses, kpt_conf=kpt_conf,
                                  progress=lambda d, t: bar.update(task, completed=d, total=t))
        skel = f", skeletons of {len(poses)}" if poses else ""
        say(f"wrote {result.path} ({plural(result.frames, 'frame')}, "
            f"{plural(len(chosen), 'person')}{skel}, "
            f"{result.encoder})")
