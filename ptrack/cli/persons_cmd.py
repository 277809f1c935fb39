"""``ptrack track | group | rank | import | eval``: from stored boxes to ranked persons."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from ptrack.cli.common import VideoOpt, handles_errors, open_store, settings
from ptrack.errors import PtrackError


def _log(message: str) -> None:
    typer.echo(message, err=True)


def _print_summary(s) -> None:
    counts = ", ".join(f"{k} {v}" for k, v in s.counts.items())
    typer.echo(f"{s.video}: {s.stage} done in {s.seconds:.2f} s ({counts})")
    for note in s.notes:
        typer.echo(f"{s.video}: {note}", err=True)


def _stage(ctx: typer.Context, video: str | None, stage: str) -> None:
    from ptrack.stages import RUNNERS

    cfg = settings(ctx)
    with open_store(ctx) as store:
        summary = RUNNERS[stage](store, store.video(video), cfg, _log)
    _print_summary(summary)


def _explain(ctx: typer.Context, video: str | None, a: int, b: int) -> None:
    from rich.console import Console
    from rich.table import Table

    from ptrack.group import explain
    from ptrack.stages import _group_params, group_inputs

    cfg = settings(ctx)
    with open_store(ctx) as store:
        v = store.video(video)
        if store.stage_state(v.id, "track") == "missing":
            raise PtrackError("no tracklets yet; run `ptrack track` first")
        tid, det, desc, _, _ = group_inputs(store, v, cfg)
        links = store.person_tracklets(v.id)
        # a person id stands for its tracklets: relabel them all with the person's id
        label = tid.copy()
        for ref in (a, b):
            label[np.isin(tid, links.get(ref, [ref]))] = ref
        rows = explain(a, b, label, det.frame, det.xyxy, det.conf, fps=v.fps,
                       descriptors=_merge_desc(desc, links, a, b), **_group_params(cfg))
    table = Table(title=f"group --explain {a} {b}", title_justify="left")
    for col in ("criterion", "value", "threshold", "verdict"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["criterion"]), _fmt(r["value"]), _fmt(r["threshold"]), str(r["verdict"]))
    Console().print(table)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _merge_desc(desc, links, a, b):
    """Descriptors for persons a and b: the mean of their tracklets' descriptors."""
    if desc is None:
        return None
    out = dict(desc)
    for ref in (a, b):
        members = [t for t in links.get(ref, [ref]) if t in desc]
        if members:
            out[ref] = np.mean([desc[t] for t in members], axis=0)
    return out


def register(app: typer.Typer) -> None:
    """Add the commands to ``app``."""

    @app.command()
    @handles_errors
    def track(ctx: typer.Context, video: VideoOpt = None) -> None:
        """Follow the stored detections with ByteTrack into tracklets.

        Example: ptrack track --video match
        """
        _stage(ctx, video, "track")

    @app.command()
    @handles_errors
    def group(
        ctx: typer.Context,
        video: VideoOpt = None,
        explain: Annotated[Optional[tuple[int, int]], typer.Option(
            "--explain", help="Show each criterion for linking tracklets or persons A and B.",
            metavar="A B")] = None,
    ) -> None:
        """Join tracklets into whole persons (motion, scale, appearance; global assignment).

        Example: ptrack group; ptrack group --explain 3 17
        """
        if explain:
            _explain(ctx, video, *explain)
        else:
            _stage(ctx, video, "group")

    @app.command()
    @handles_errors
    def rank(ctx: typer.Context, video: VideoOpt = None) -> None:
        """Score and rank the persons (duration, coverage, size, centrality, confidence).

        Example: ptrack rank
        """
        _stage(ctx, video, "rank")

    @app.command("import")
    @handles_errors
    def import_(
        ctx: typer.Context,
        det_file: Annotated[Path, typer.Argument(help="MOTChallenge detections (det.txt).")],
        video: Annotated[str, typer.Option("--video", "-v", help=(
            "The video file the boxes belong to, or a name for boxes without a video "
            "(then give --fps, --width, --height)."))],
        fps: Annotated[Optional[float], typer.Option(help="Frame rate, when there is no video file.")] = None,
        width: Annotated[Optional[int], typer.Option(help="Frame width in pixels.")] = None,
        height: Annotated[Optional[int], typer.Option(help="Frame height in pixels.")] = None,
        force: Annotated[bool, typer.Option("--force", help="Replace existing detections.")] = False,
    ) -> None:
        """Load another detector's boxes (MOTChallenge format) so track/group/rank run on them.

        Example: ptrack import det.txt --video TUD-Stadtmitte.mp4
        """
        from ptrack.stages import import_mot

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
    ) -> None:
        """Score tracklets and persons against ground truth: HOTA, MOTA, IDF1, IDSW, subjects.

        Example: ptrack eval gt.txt --json
        """
        from ptrack.evaluate import evaluate
        from ptrack.motio import read_mot

        gt = read_mot(gt_file, kind="gt")
        results = {}
        with open_store(ctx) as store:
            v = store.video(video)
            tid, det = store.tracklet_boxes(v.id)
            if len(tid) or store.stage_state(v.id, "track") != "missing":
                results["tracklets"] = evaluate(gt, det.frame, tid, det.xyxy)
            pb = store.person_boxes(v.id)
            if store.stage_state(v.id, "group") != "missing":
                results["persons"] = evaluate(gt, pb["frame"], pb["person"], pb["xyxy"])
        if not results:
            raise PtrackError("nothing to score yet; run `ptrack track` and `ptrack group` first")
        keys = ["HOTA", "MOTA", "IDF1", "IDSW", "coverage", "purity", "precision",
                "ids_per_subject", "subjects_covered_90", "subjects"]
        if as_json:
            typer.echo(json.dumps({lvl: {k: r[k] for k in keys} for lvl, r in results.items()},
                                  indent=2, default=float))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"eval {v.name} vs {gt_file.name}", title_justify="left")
        table.add_column("metric")
        for lvl in results:
            table.add_column(lvl, justify="right")
        for k in keys:
            table.add_row(k.replace("_", " "), *(
                f"{float(r[k]):.1f}" if isinstance(r[k], float) else str(r[k])
                for r in results.values()))
        Console().print(table)
