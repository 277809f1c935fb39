"""``ptrack import``: MOTChallenge detections loaded as a video's detections (no crops)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from ptrack.errors import PtrackError
from ptrack.persons.stages import StageSummary
from ptrack.store import Store

Log = Callable[[str], None]


def import_mot(store: Store, path: Path, *, video_ref: str, fps: float | None, width: int | None,
               height: int | None, force: bool, log: Log = print) -> StageSummary:
    """Load MOTChallenge detections as a video's detections (no crops).

    ``video_ref`` is the video file the boxes belong to (registered as ``detect`` does), a
    video of the project (name or id), or a new name for boxes without a video (then ``fps``,
    ``width`` and ``height`` are needed).
    """
    from ptrack.formats.mot import read_mot
    from ptrack.detect.video import fingerprint, probe
    from ptrack.detect.register import register_video, with_overrides

    t0 = time.perf_counter()
    boxes = read_mot(path, kind="det")
    file = Path(video_ref)
    if file.is_file():
        info = with_overrides(probe(file), fps=fps, width=width, height=height)
        video = register_video(store, info, log, has_crops=False)
    else:
        known = {v.name: v for v in store.videos()} | {str(v.id): v for v in store.videos()}
        video = known.get(video_ref)
        if video is None:
            if not (fps and width and height):
                raise PtrackError(f"'{video_ref}' is neither a video file nor a video of the "
                                  f"project; give --fps, --width and --height to import boxes "
                                  f"without a video", exit_code=2)
            frames = int(boxes.frame.max()) + 1 if len(boxes) else 0
            video = store.add_video(name=Path(video_ref).stem, path="", size=0,
                                    fingerprint=f"import:{fingerprint(Path(path))}", fps=fps,
                                    width=width, height=height, frame_count=max(frames, 1),
                                    has_crops=False)
    if store.count_detections(video.id) and not force:
        raise PtrackError(f"{video.name} already has detections; use --force to replace them")
    frames = int(boxes.frame.max()) + 1 if len(boxes) else 0
    if frames > video.frame_count:
        store.update_video(video.id, frame_count=frames)
    order = np.lexsort((np.arange(len(boxes)), boxes.frame))
    frame_sorted = boxes.frame[order]
    det_index = np.arange(len(order)) - np.searchsorted(frame_sorted, frame_sorted)
    rows = [(int(f), int(d), float(b[0]), float(b[1]), float(b[2]), float(b[3]), float(c), 0)
            for f, d, b, c in zip(frame_sorted, det_index, boxes.xyxy[order], boxes.conf[order])]
    run = store.start_run(video.id, "detect", {"import": str(Path(path).resolve()),
                                               "fingerprint": fingerprint(Path(path))})
    store.discard_detections(video.id, 0)
    n = store.replace_detections(video.id, rows)
    store.update_video(video.id, has_crops=0)
    store.finish_run(run.id, "done", {"detections": n, "frames_covered": frames})
    store.mark_stale(video.id, "detect")
    return StageSummary("import", video.name, time.perf_counter() - t0,
                        {"detections": n, "frames": frames})
