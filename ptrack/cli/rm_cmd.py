"""``ptrack rm VIDEO``: remove a video and everything stored for it."""

from __future__ import annotations

from typing import Annotated

import typer

from ptrack.cli.common import handles_errors, open_store
from ptrack.cli.output import say


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""

    @app.command()
    @handles_errors
    def rm(
        ctx: typer.Context,
        video: Annotated[str, typer.Argument(help="Video name (file stem), file or id.",
                                             show_default=False)],
    ) -> None:
        """Remove VIDEO and everything stored for it from the project.

        Its detections, crops, tracklets, persons, runs, constraints and recorded selections
        go; the video file and the files written for it stay.

        Example: ptrack rm match
        """
        from ptrack.detect.loop import video_lock

        with open_store(ctx) as store:
            store.require_writable()
            v = store.video(video)
            with video_lock(store, v.id):
                removed = store.remove_video(v.id)
        parts = [f"{removed.get('detections', 0)} detections", f"{removed.get('crops', 0)} crops",
                 f"{removed.get('tracklet_boxes', 0)} tracklet boxes",
                 f"{removed.get('persons', 0)} persons", f"{removed.get('runs', 0)} runs"]
        for key, word in (("constraints", "constraints"), ("selections", "selection records")):
            if removed.get(key):
                parts.append(f"{removed[key]} {word}")
        say(f"removed {v.name} (id {v.id}): {', '.join(parts)}")
