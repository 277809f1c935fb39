"""``ptrack rm VIDEO``: remove a video and everything stored for it."""

from __future__ import annotations

from typing import Annotated

import typer

from ptrack.cli.common import handles_errors, open_store
from ptrack.cli.output import plural, say


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""

    @app.command()
    @handles_errors
    def rm(
        ctx: typer.Context,
        video: Annotated[str, typer.Argument(help="Video name (file stem), file or id.",
                                             show_default=False)],
        dry_run: Annotated[bool, typer.Option(
            "--dry-run", "-n", help="Say what would be removed; remove nothing.")] = False,
    ) -> None:
        """Remove VIDEO and everything stored for it from the project.

        Its detections, crops, tracklets, persons, runs, constraints and recorded selections
        go; the video file and the files written for it stay.

        Example: ptrack rm match
        """
        from ptrack.detect.loop import video_lock

        with open_store(ctx) as store:
            v = store.video(video)
            if dry_run:
                removed = store.video_contents(v.id)
            else:
                store.require_writable()
                with video_lock(store, v.id):
                    removed = store.remove_video(v.id)
        parts = [plural(removed.get("detections", 0), "detection"),
                 plural(removed.get("crops", 0), "crop"),
                 plural(removed.get("tracklet_boxes", 0), "tracklet box", "tracklet boxes"),
                 plural(removed.get("persons", 0), "person"), plural(removed.get("runs", 0), "run")]
        for key, word in (("constraints", "constraint"), ("selections", "selection record")):
            if removed.get(key):
                parts.append(plural(removed[key], word))
        if dry_run:
            say(f"would remove {v.name} (id {v.id}): {', '.join(parts)}; nothing removed "
                f"(--dry-run)")
        else:
            say(f"removed {v.name} (id {v.id}): {', '.join(parts)}")
