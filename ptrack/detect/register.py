"""One way to register a video file in a project (``detect`` and ``import`` share it)."""

from __future__ import annotations

import dataclasses
from typing import Callable

from ptrack.store import Store, Video
from ptrack.detect.video import VideoInfo


def register_video(store: Store, info: VideoInfo, log: Callable[[str], None], *,
                   has_crops: bool = True) -> Video:
    """The project's record of this file: same content = same video; changed content = new one.

    A known file that moved gets its new path. A new file whose name the project already
    holds for other content is stored as a new video (its name gets a ``~N`` suffix), saying so.
    ``info`` may carry fps/size overrides (``dataclasses.replace``) for boxes imported from
    another tool.
    """
    known = store.find_video_by_fingerprint(info.fingerprint)
    if known is not None:
        if known.path != str(info.path):
            store.update_video(known.id, path=str(info.path))
        return store.video(known.id)
    if any(v.name == info.name for v in store.videos()):
        log(f"note: {info.path.name} differs from the video named '{info.name}' already in the "
            f"project (content changed); it is stored as a new video")
    return store.add_video(name=info.name, path=str(info.path), size=info.size,
                           fingerprint=info.fingerprint, fps=info.fps, width=info.width,
                           height=info.height, frame_count=info.frame_count, has_crops=has_crops)


def with_overrides(info: VideoInfo, *, fps: float | None = None, width: int | None = None,
                   height: int | None = None) -> VideoInfo:
    """``info`` with the facts given on the command line in place of the probed ones."""
    return dataclasses.replace(info, fps=fps or info.fps, width=width or info.width,
                               height=height or info.height)
