"""``ptrack track | group | rank | import | eval``: from stored boxes to ranked persons."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ptrack.cli.common import (VideoOpt, handles_errors, keep_settings, open_store,
                               project_overlay, settings)
from ptrack.cli.output import safe
from ptrack.errors import PtrackError


def _log(message: str) -> None:
    typer.echo(safe(message), err=True)


def summary_counts(counts: dict, recorded_constraints: int | None = None) -> str:
    """``tracklets 4, persons 2, appearance on, corrections 3``: words for people, not Python
    reprs; the constraint count is the number of corrections recorded (not link pairs)."""
    parts = []
    for k, v in counts.items():
        if k == "constraints" and recorded_constraints is not None:
            parts.append(f"corrections {recorded_constraints}")
        elif isinstance(v, bool):
            parts.append(f"{k.replace('_', ' ')} {'on' if v else 'off'}")
        elif k == "top_person":
            parts.append(f"top P{v}")
        else:
            parts.append(f"{k.replace('_', ' ')} {v}")
    return ", ".join(parts)


def _print_summary(s, recorded_constraints: int | None = None) -> None:
    typer.echo(safe(f"{s.video}: {s.stage} done in {s.seconds:.2f} s "
                    f"({summary_counts(s.counts, recorded_constraints)})"))
    for note in s.notes:
        typer.echo(safe(f"{s.video}: {note}"), err=True)


def _stage(ctx: typer.Context, video: str | None, stage: str, fps: float | None = None) -> None:
    from ptrack.persons.stages import RUNNERS

    with open_store(ctx) as store:
        before = project_overlay(ctx, store)
        cfg = settings(ctx, store=store)
        v = store.video(video)
        if fps is not None and fps != v.fps:
            store.update_video(v.id, fps=float(fps))
            _log(f"{v.name}: frame rate {v.fps:g} -> {fps:g} frames/s from now on (durations, "
                 f"settings in seconds, times shown); group and rank run again after this track")
            v = store.video(v.id)
        summary = RUNNERS[stage](store, v, cfg, _log)
        recorded = len(store.constraints(v.id)) if stage == "group" else None
        keep_settings(store, cfg, before, _log)  # what the stage ran with is the project's from now on
    _print_summary(summary, recorded)


def _explain(ctx: typer.Context, video: str | None, a: int, b: int, as_json: bool = False) -> None:
    from rich.console import Console
    from rich.table import Table

    from ptrack.persons.stages import explain_link

    cfg = settings(ctx)
    with open_store(ctx) as store:
        rows = explain_link(store, store.video(video), cfg, a, b, log=_log)
    if as_json:
        typer.echo(json.dumps([{k: _json_value(v) for k, v in r.items()} for r in rows], indent=2))
        return
    table = Table(title=f"group --explain {a} {b}", title_justify="left")
    for col in ("criterion", "value", "threshold", "verdict"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["criterion"]), _fmt(r["value"], r["criterion"]),
                      _fmt(r["threshold"]), str(r["verdict"]))
    Console(highlight=False, markup=False).print(table)


def _fmt(value, criterion: str = "") -> str:
    """A number for the table; an infinite link cost means a gate refused the link."""
    if isinstance(value, float):
        if value == float("inf"):
            return "refused by a gate" if criterion == "link" else "unbounded"
        if value != value:
            return "-"
        return f"{value:.3f}"
    return str(value)


def _json_value(value):
    """JSON has no infinity: an infinite cost is null (the verdict says why)."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value


def _read_human_map(path: Path) -> dict:
    """The ``--humans`` file: a JSON object {gt_id: human_id}."""
    try:
        table = json.loads(path.read_text())
    except OSError as exc:
        raise PtrackError(f"cannot read --humans {path}: {exc.strerror or exc}",
                          exit_code=2) from None
    except ValueError as exc:
        raise PtrackError(f"--humans {path} is not JSON: {exc}", exit_code=2) from None
    if not isinstance(table, dict):
        raise PtrackError(f"--humans {path} must hold a JSON object {{gt_id: human_id}}",
                          exit_code=2)
    return table


def _human_keys(m: dict) -> dict:
    """human_metrics' figures under the names eval prints."""
    return {"human_coverage": m["coverage"], "human_purity": m["purity"],
            "humans_whole": m["whole"], "humans": m["humans"],
            "persons_per_human": m["persons_per_human"],
            "ceiling_coverage": m["ceiling_coverage"], "ceiling_purity": m["ceiling_purity"]}


def register(app: typer.Typer) -> None:
    """Add the commands to ``app``."""

    @app.command()
    @handles_errors
    def track(
        ctx: typer.Context,
        video: VideoOpt = None,
        fps: Annotated[Optional[float], typer.Option(
            "--fps", min=0.5, max=1000.0, show_default=False,
            help="The video's real frame rate, where its file states another (pictures saved "
                 "as a video at the wrong rate): kept with the video, every duration uses it.")] = None,
    ) -> None:
        """Follow the stored detections with ByteTrack into tracklets.

        Example: ptrack track --video match; ptrack track --fps 7 (the file says 25)
        """
        _stage(ctx, video, "track", fps)

    @app.command()
    @handles_errors
    def group(
        ctx: typer.Context,
        video: VideoOpt = None,
        explain: Annotated[Optional[tuple[int, int]], typer.Option(
            "--explain", help="Show each criterion for linking tracklets or persons A and B.",
            metavar="A B", show_default=False)] = None,
        as_json: Annotated[bool, typer.Option("--json", help="With --explain: print JSON.")] = False,
    ) -> None:
        """Join tracklets into whole persons (motion, scale, appearance; global assignment).

        Example: ptrack group; ptrack group --explain 3 17
        """
        if explain:
            _explain(ctx, video, *explain, as_json=as_json)
        else:
            if as_json:
                raise PtrackError("--json goes with --explain A B", exit_code=2)
            _stage(ctx, video, "group")

    @app.command()
    @handles_errors
    def rank(ctx: typer.Context, video: VideoOpt = None) -> None:
        """Score and rank the persons: the frames a person was detected in dominate.

        score = observed x (1 - s + s x quality). observed = frames the person was detected in
        / frames of the video. quality = the weighted mean (weights rank.w_*) of duration
        (span / video), coverage (detected frames / span), size (median box height /
        (rank.size_full x image height), capped at 1), centrality (1 - mean distance from the
        image centre) and confidence (mean detection confidence), each in [0, 1].
        s = rank.quality_share (default 0.5: quality moves a score by at most a factor of 2,
        so a person detected in twice the frames of another never ranks lower).

        Example: ptrack rank
        """
        _stage(ctx, video, "rank")

    @app.command("import")
    @handles_errors
    def import_(
        ctx: typer.Context,
        det_file: Annotated[Path, typer.Argument(help="MOTChallenge detections (det.txt).")],
        video_file: Annotated[Optional[str], typer.Option(
            "--video-file", show_default=False, metavar="FILE", help=(
                "The video file the boxes belong to, or a name for boxes without a video "
                "(then give --fps, --width, --height). Required."))] = None,
        old_video: Annotated[Optional[str], typer.Option("--video", "-v", hidden=True)] = None,
        fps: Annotated[Optional[float], typer.Option(help="Frame rate, when there is no video file.")] = None,
        width: Annotated[Optional[int], typer.Option(help="Frame width in pixels.")] = None,
        height: Annotated[Optional[int], typer.Option(help="Frame height in pixels.")] = None,
        force: Annotated[bool, typer.Option("--force", help="Replace existing detections.")] = False,
    ) -> None:
        """Load another detector's boxes (MOTChallenge format) so track/group/rank run on them.

        Example: ptrack import det.txt --video-file TUD-Stadtmitte.mp4
        """
        from ptrack.formats.mot_import import import_mot

        if video_file is not None and old_video is not None and video_file != old_video:
            raise PtrackError("give the video once, as --video-file FILE", exit_code=2)
        video = video_file or old_video
        if video is None:
            raise PtrackError("import needs --video-file FILE (the video the boxes belong to, "
                              "or a name with --fps, --width and --height)", exit_code=2)

        with open_store(ctx, create=True) as store:
            summary = import_mot(store, det_file, video_ref=video, fps=fps, width=width,
                                 height=height, force=force, log=_log)
        _print_summary(summary)

    @app.command("eval")
    @handles_errors
    def eval_(
        ctx: typer.Context,
        gt_file: Annotated[Path, typer.Argument(help="MOTChallenge ground truth (gt.txt).")],
        video: VideoOpt = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
        boxes: Annotated[str, typer.Option(
            "--boxes", help="Persons' boxes to score: smoothed (what export writes) | raw "
                            "(the detector's).")] = "smoothed",
        humans: Annotated[Optional[Path], typer.Option(
            "--humans", metavar="MAP.json", show_default=False, help=(
                "JSON {gt_id: human_id} joining ground-truth ids into humans (a human who "
                "leaves and comes back under a new id); without it each gt id is a human."))
        ] = None,
    ) -> None:
        """Score tracklets and persons against ground truth: HOTA, MOTA, IDF1, IDSW, subjects,
        and humans (coverage and purity of each human's best person, whole humans, persons
        per human).

        Persons are scored with the boxes `ptrack export` writes (smoothed unless --boxes raw).

        Example: ptrack eval gt.txt --humans map.json --json
        """
        from ptrack.formats.evaluate import evaluate, human_metrics, humans_from_map
        from ptrack.formats.mot import read_mot

        if boxes not in ("smoothed", "raw"):
            raise PtrackError(f"--boxes must be smoothed or raw, not '{boxes}'", exit_code=2)
        gt = read_mot(gt_file, kind="gt")
        gt = humans_from_map(gt, _read_human_map(humans) if humans is not None else None)
        results = {}
        with open_store(ctx) as store:
            v = store.video(video)
            tid, det = store.tracklet_boxes(v.id)
            if len(tid) or store.stage_state(v.id, "track") != "missing":
                results["tracklets"] = evaluate(gt, det.frame, tid, det.xyxy)
                results["tracklets"].update(_human_keys(human_metrics(
                    gt, det.with_columns(tracklet=tid), ids="tracklet")))
            pb = store.person_boxes(v.id)
            if store.stage_state(v.id, "group") != "missing":
                col = "smoothed" if boxes == "smoothed" else "xyxy"
                results["persons"] = evaluate(gt, pb["frame"], pb["person"], pb[col])
                results["persons"].update(_human_keys(human_metrics(
                    gt, pb, ids="person", boxes=col)))
        if not results:
            raise PtrackError("nothing to score yet; run `ptrack track` and `ptrack group` first")
        keys = ["HOTA", "MOTA", "IDF1", "IDSW", "coverage", "purity", "precision",
                "ids_per_subject", "subjects_covered_90", "subjects", "human_coverage",
                "human_purity", "humans_whole", "humans", "persons_per_human",
                "ceiling_coverage", "ceiling_purity"]
        if as_json:
            typer.echo(json.dumps({lvl: {k: r[k] for k in keys} for lvl, r in results.items()},
                                  indent=2, default=float))
            return
        from rich.console import Console
        from rich.table import Table

        from rich.text import Text

        table = Table(title=Text(safe(f"eval {v.name} vs {gt_file.name}")), title_justify="left")
        table.add_column("metric")
        for lvl in results:
            table.add_column(lvl, justify="right")
        labels = {"coverage": "subject coverage", "purity": "subject purity",
                  "precision": "subject precision"}  # a ground-truth subject's, not `detected`
        for k in keys:
            table.add_row(labels.get(k, k.replace("_", " ")), *(
                f"{float(r[k]):.1f}" if isinstance(r[k], float) else str(r[k])
                for r in results.values()))
        Console(highlight=False, markup=False).print(table)
