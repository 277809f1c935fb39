"""``ptrack run``: detect -> track -> group -> rank -> table for each video."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Optional

import typer

from ptrack.cli import many
from ptrack.cli.common import handles_errors, keep_settings, open_store, project_overlay, settings
from ptrack.cli.detect_cmd import DetectProgress, time_lines, with_detect_options
from ptrack.cli.output import console, plural, safe
from ptrack.errors import PtrackError


def _one_video(store, path: Path, cfg: dict, force: bool, top: int, progress,
               pose: bool = False) -> dict:
    """Every stage for one video; returns its summary row (errors caught by the caller)."""
    from ptrack.cli.persons_cmd import summary_counts
    from ptrack.detect.loop import detect_video
    from ptrack.persons.stages import run_group, run_rank, run_track
    from ptrack.views.sheet import sheet_rows, write_png

    log = progress.log
    progress.start(path.name)
    try:
        summary = detect_video(store, path, cfg, force=force, progress=progress.tick, log=log)
    finally:
        progress.stop()
    if summary.status == "interrupted":
        raise KeyboardInterrupt
    video = store.video(summary.video)
    if summary.status == "skipped":
        log(f"{video.name}: detect already done ({summary.detections} detections)")
    else:
        log(f"{video.name}: detect done in {summary.seconds:.1f} s ({summary.frames} frames, "
            f"{summary.fps:.1f} frames/s, {summary.detections} detections)")
        for line in time_lines(summary):
            log(f"{video.name}: {line.strip()}")
    for note in summary.notes:
        if summary.status != "skipped":
            log(f"{video.name}: {note}")
    for runner in (run_track, run_group, run_rank):
        s = runner(store, video, cfg, log)
        recorded = len(store.constraints(video.id)) if s.stage == "group" else None
        log(f"{video.name}: {s.stage} done in {s.seconds:.2f} s "
            f"({summary_counts(s.counts, recorded)})")
        for note in s.notes:
            log(f"{video.name}: {note}")
    persons = store.persons(video.id)
    if persons:
        out = store.output_dir(video) / "selection_table.png"
        write_png(sheet_rows(store, video, persons[:top], 8), video, out, 8,
                  total_persons=len(persons))
        log(f"{video.name}: table done")
        if pose:
            from ptrack.cli.pose_cmd import summary_lines
            from ptrack.pose.stage import run_pose

            s = run_pose(store, video, cfg, [persons[0]["id"]], log=log)
            for line in summary_lines(s):
                log(line)
            if s.status == "interrupted":
                raise KeyboardInterrupt
    return _describe(store, video)


def _describe(store, video) -> dict:
    """The summary row of a video whose every stage is done."""
    persons = store.persons(video.id)
    row = {"video": video.name, "persons": len(persons), "top": None, "table": None, "error": ""}
    if persons:
        best = persons[0]
        row["top"] = (f"P{best['id']} ({best['n_frames']} frames, "
                      f"{best['n_frames'] / video.fps:.1f} s)")
        out = store.output_path(video) / "selection_table.png"
        row["table"] = str(out) if out.is_file() else None
    else:
        row["error"] = "nobody was found"
    return row


def summary_text(rows: list[dict]) -> list[str]:
    """The end-of-run summary: a line per video, its files on lines of their own (a path is
    never wrapped or cut inside the text)."""
    stopped = sum(1 for r in rows if r["error"].startswith("interrupted;"))
    failed = sum(1 for r in rows if r["error"] and r["error"] != "nobody was found") - stopped
    lines = [f"ptrack run: {len(rows) - failed - stopped} of {plural(len(rows), 'video')} done"
             + (f", {failed} failed" if failed else "")
             + (f", {stopped} interrupted" if stopped else "")]
    for r in rows:
        if r["error"].startswith("interrupted;"):
            lines.append(f"{r['video']}: {r['error']}")
            continue
        if r["error"] and r["error"] != "nobody was found":
            lines.append(f"{r['video']}: failed: {r['error']}")
            if r.get("retry"):
                lines.append(f"  retry: {r['retry']}")
            continue
        head = f"{r['video']}: " + (plural(r["persons"], "person")
                                    if isinstance(r["persons"], int) else f"{r['persons']} persons")
        if r["top"]:
            head += f"; top {r['top']}"
        if r["error"]:
            head += f"; {r['error']}"
        if r.get("note"):
            head += f" ({r['note']})"
        lines.append(head)
        if r["table"]:
            lines.append(f"  table: {r['table']}")
    return lines


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""

    @app.command()
    @handles_errors
    @with_detect_options
    def run(
        ctx: typer.Context,
        videos: many.VideosArg = None,
        top: Annotated[int, typer.Option("--top", "-n", min=1, help="Persons in each table.")] = 20,
        force: Annotated[bool, typer.Option("--force", help="Redo detection of videos already done.")] = False,
        recursive: many.RecursiveOpt = False,
        from_file: many.FromFileOpt = None,
        workers: many.WorkersOpt = None,
        ray: many.RayOpt = None,
        pose: Annotated[bool, typer.Option("--pose", help="Also compute the top person's keypoints "
                                                          "after rank (`ptrack pose`).")] = False,
        pose_model: Annotated[Optional[str], typer.Option(
            "--pose-model", show_default=False, help="Pose weights for --pose (like `ptrack pose "
                                                     "--model`). [default: yolo11n-pose.pt]")] = None,
        *,
        detect_overrides: dict,
    ) -> None:
        """Everything for each video: detect, track, group, rank and the selection table.

        Takes every `ptrack detect` option. One progress display covers the run (the detect
        bar with frames/s and ETA, then a line per stage). A failing video does not stop the
        others; a summary ends the run (exit code 1 when any video failed).

        VIDEO may be a folder (its videos; sub-folders too with --recursive) or a glob pattern;
        --from-file takes a list. With --workers N (or --ray) the videos run in parallel, each
        in a shard project of its own that is combined into this one as it finishes; running
        the same command again does only what is not done. With --pose, the top person's
        keypoints follow (`ptrack pose`).

        Example: ptrack run match.mp4 training.mp4 --model yolov8n.pt --pose
        """
        from ptrack.detect.video import refuse_non_videos

        before = project_overlay(ctx)
        cfg = settings(ctx, {**detect_overrides, "pose": {"model": pose_model}})
        err = console(stderr=True)
        paths = many.gather(videos, recursive, from_file, lambda m: err.print(safe(m), soft_wrap=True))
        if len(paths) == 1:  # nothing to do: refused before the project is created
            refuse_non_videos(paths)
        workers = many.workers_for(workers, ray, cfg)
        if many.parallel(workers, ray, len(paths)):
            job = functools.partial(_one_video, pose=True) if pose else _one_video
            outcome = many.drive(ctx, paths, cfg, fn=job, describe=_describe,
                                 command="run", force=force, top=top, workers=workers, ray=ray)
            _print_summary(outcome.rows, outcome.interrupted)
            return
        from ptrack.batch.job import models_kept

        rows = []
        with open_store(ctx, create=True) as store, DetectProgress() as progress, \
                models_kept(len(paths) > 1):  # the model is loaded once for all the videos
            for path in paths:
                try:
                    rows.append(_one_video(store, path, cfg, force, top, progress, pose))
                    keep_settings(store, cfg, before, progress.log)
                except PtrackError as exc:
                    rows.append({"video": path.stem, "persons": "-", "top": None, "table": None,
                                 "error": exc.message})
                    progress.log(f"{path.name}: Error: {exc.message}")
        _print_summary(rows)


def _print_summary(rows: list[dict], interrupted: bool = False) -> None:
    out = console()
    for line in summary_text(rows):
        out.print(safe(line), soft_wrap=True)
    if interrupted:
        raise typer.Exit(130)
    if any(r["error"] and r["error"] != "nobody was found" for r in rows):
        raise typer.Exit(1)  # scripts see that something failed; the others are done
