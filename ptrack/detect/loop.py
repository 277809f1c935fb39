"""One decoding pass over a video: person boxes and crops into the project store.

Three stages overlap: a reader thread decodes frames, the calling thread runs the detector,
a writer thread encodes crops and commits each batch (crops, detections and the progress
marker together). A run interrupted by Ctrl-C or a kill resumes from its last committed batch.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ptrack.detect import crops
from ptrack.errors import PtrackError
from ptrack.store import Run, Store, Video, crop_key
from ptrack.store.locks import video_lock as _video_lock
from ptrack.detect.video import FrameReader, probe
from ptrack.detect.register import register_video

Progress = Callable[[int, int], None]  # (frames done in this run, frames to do)


@dataclass
class DetectSummary:
    """What one ``detect`` of one video did."""

    video: str
    status: str  # done | skipped | interrupted
    frames: int = 0  # frames run through the detector in this invocation
    detections: int = 0  # detections stored for the video
    frames_with_people: int = 0
    crop_count: int = 0
    crop_bytes: int = 0
    seconds: float = 0.0
    backend: str = ""
    resumed_from: int = 0
    detections_before: int = 0  # detections an interrupted run had stored when this one resumed
    stopped_at: int | None = None  # frame where a truncated video stopped decoding
    notes: list[str] = field(default_factory=list)
    exit_code: int = 0  # for an interrupted run: 130 after Ctrl-C, 143 after SIGTERM
    # seconds the main thread spent waiting for decoded frames, in the detector, waiting for
    # the writer (its queue full, and its last batches at the end); the writer's own busy time
    # (encoding crops and committing), and of it the commits to the store
    timing: dict = field(default_factory=lambda: dict.fromkeys(
        ("decode_wait", "detector", "writer_wait", "writer_busy", "writer_store"), 0.0))

    @property
    def limited_by(self) -> str:
        """The stage the main thread waited on most: decoding, the detector or the writer."""
        t = self.timing
        parts = {"decoding": t["decode_wait"], "the detector": t["detector"],
                 "writing crops and boxes": t["writer_wait"]}
        return max(parts, key=parts.get)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def people_per_frame(self) -> float:
        return self.detections / self.total_frames if self.total_frames else 0.0

    total_frames: int = 0  # frames covered by the stored detections (all invocations)


def run_settings(settings: dict, model_digest: str | None) -> dict:
    """The settings that decide a detect run's output (what resuming and skipping compare)."""
    d = _deciding(settings["detect"])
    d["model_sha256"] = model_digest
    crops = {k: v for k, v in settings["crops"].items() if k != "initial_map_mb"}  # storage only
    return {"detect": d, "crops": crops}


@contextlib.contextmanager
def video_lock(store: Store, video_id: int) -> Iterator[None]:
    """Hold an exclusive lock on one video's detection; refuse when another process holds it
    (:func:`ptrack.store.locks.video_lock`: a planted symbolic link is refused)."""
    with _video_lock(store.root, video_id):
        yield


def _diff(old: dict, new: dict) -> str:
    parts = []
    for section in new:
        for key, value in new[section].items():
            before = old.get(section, {}).get(key)
            if before != value:
                parts.append(f"{section}.{key} {before!r} -> {value!r}")
    return ", ".join(parts)


def encode_workers(cpus: int | None = None) -> int:
    """Threads that JPEG-encode crops: one on a small machine (the detector needs the cores),
    half the cores up to 8 on a big one, where a GPU detector would otherwise wait on one."""
    if cpus is None and os.environ.get("PTRACK_CROP_THREADS", "").isdigit():  # benchmarks
        return max(1, int(os.environ["PTRACK_CROP_THREADS"]))
    cpus = cpus if cpus is not None else (os.cpu_count() or 1)
    return max(1, min(8, cpus // 2))


class _Writer:
    """Background thread: crops encoded (by a pool of threads on a big machine; OpenCV lets go
    of the GIL) and batches committed in order."""

    def __init__(self, store: Store, video: Video, run_id: int, crop_cfg: dict,
                 replace_from: int | None = None) -> None:
        self.store, self.video, self.run_id, self.cfg = store, video, run_id, crop_cfg
        self.replace_from = replace_from  # the first commit replaces older results from here
        self.queue: queue.Queue = queue.Queue(maxsize=4)
        self.error: BaseException | None = None
        self.committed_to = -1
        self.detections = 0
        self.frames_with_people = 0
        self.crop_bytes = 0
        self.busy = 0.0  # seconds spent encoding and committing
        self.storing = 0.0  # of which committing to the store (SQLite and LMDB)
        workers = encode_workers()
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="ptrack-crops") \
            if workers > 1 else None
        self.thread = threading.Thread(target=self._run, name="ptrack-writer", daemon=True)
        self.thread.start()

    def put(self, item: tuple | None) -> None:
        """Queue a batch; waits while the writer is 4 batches behind."""
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Commit everything queued, then stop."""
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()
        if self.pool is not None:
            self.pool.shutdown()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            while True:
                item = self.queue.get()
                if item is None:
                    return
                self._commit(*item)
        except BaseException as exc:  # surfaced on the main thread
            self.error = exc
            with contextlib.suppress(queue.Empty):
                while True:
                    self.queue.get_nowait()

    def _encode(self, image: np.ndarray, xyxy: np.ndarray) -> list[bytes]:
        return [crops.encode(image, box, max_h=self.cfg["height"], max_w=self.cfg["width"],
                             quality=self.cfg["quality"]) for box in xyxy]

    def _commit(self, indices: list[int], images: list[np.ndarray], results: list, next_frame: int) -> None:
        t0 = time.perf_counter()
        boxes = [r[0] for r in results]
        jpegs = list(self.pool.map(self._encode, images, boxes) if self.pool is not None
                     else map(self._encode, images, boxes))
        rows, items = [], []
        for index, (xyxy, conf, cls), frame_jpegs in zip(indices, results, jpegs):
            if len(xyxy):
                self.frames_with_people += 1
            for det, (box, c, k, jpeg) in enumerate(zip(xyxy.tolist(), conf.tolist(),
                                                        cls.tolist(), frame_jpegs)):
                rows.append((index, det, *box, c, int(k)))
                items.append((crop_key(self.video.id, index, det), jpeg))
                self.crop_bytes += len(jpeg)
        t1 = time.perf_counter()
        self.store.commit_detections(self.video.id, self.run_id, next_frame, rows, items,
                                     replace_from=self.replace_from)
        self.replace_from = None
        self.detections += len(rows)
        self.committed_to = next_frame
        t2 = time.perf_counter()
        self.busy += t2 - t0
        self.storing += t2 - t1


def _fault_after() -> int:
    """Test hook: ``PTRACK_FAULT_AFTER_BATCHES=N`` raises KeyboardInterrupt after N batches."""
    try:
        return int(os.environ.get("PTRACK_FAULT_AFTER_BATCHES", "0"))
    except ValueError:
        return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: the batches done are committed and the run can resume."""


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While detecting, SIGTERM raises :class:`Terminated` in the main thread (as SIGINT does)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


_BACKENDS = ("auto", "torch", "openvino")


def check_settings(settings: dict) -> None:
    """Reject impossible ``detect`` choices with a one-line error naming the option, before
    anything touches the project (numbers and their ranges are checked when the settings load:
    :class:`ptrack.settings.Settings`)."""
    from ptrack.settings import Settings

    Settings.from_dict(settings)
    d = settings["detect"]

    def bad(name: str, value: object, want: str) -> PtrackError:
        return PtrackError(f"--{name.replace('_', '-')} {value!r}: must be {want}", exit_code=2)

    if str(d["backend"]) not in _BACKENDS:
        raise bad("backend", d["backend"], "auto, torch or openvino")
    device = str(d["device"])
    if not (device in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+|\d+(,\d+)*", device)):
        raise bad("device", device, "auto, cpu, cuda or cuda:N")


def _deciding(detect: dict) -> dict:
    """The ``detect`` settings that can change a box: not the batch or OpenVINO's performance
    hint, and the INT8 keys only where INT8 may run (``precision`` auto or int8)."""
    floating = detect.get("precision", "auto") not in ("auto", "int8")
    return {k: v for k, v in detect.items() if k not in ("batch", "ov_hint")
            and not (floating and k.startswith("int8_"))}


def _comparable(stored: dict) -> dict:
    """A stored run's settings as :func:`run_settings` makes them now (runs stored by older
    versions kept every ``detect`` key)."""
    return {**stored, "detect": _deciding(stored.get("detect", {}))}


def _plan(store: Store, video: Video, wanted: dict, force: bool) -> tuple[str, Run | None]:
    """``skip``, ``resume`` (from the last run) or ``new``; raises when settings differ."""
    last = store.latest_run(video.id, "detect")
    if last is None or force:
        return "new", last
    before = _comparable(last.settings)
    same = before == wanted
    if same and last.status in ("done", "stale"):
        return "skip", last
    if same and last.status in ("running", "interrupted", "failed"):
        return ("resume" if last.frames_done > 0 else "new"), last
    if store.count_detections(video.id):
        raise PtrackError(
            f"{video.name} was detected with other settings ({_diff(before, wanted)}); "
            f"use --force to replace its detections")
    return "new", last


def detect_plan(store: Store, video: Video, wanted: dict, force: bool = False) -> str:
    """``skip`` (done with these settings), ``resume`` or ``new`` for a registered video;
    raises when it was detected with other settings (``wanted`` is :func:`run_settings`)."""
    return _plan(store, video, wanted, force)[0]


def _skipped(store: Store, video: Video, last: Run) -> DetectSummary:
    summary = DetectSummary(video=video.name, status="skipped")
    if video.has_crops:
        store.crop_stats(video.id)  # a missing or damaged crop store is an error, not "done"
    summary.detections = store.count_detections(video.id)
    summary.total_frames = last.stats.get("frames_covered", video.frame_count)
    summary.notes.append("already detected with these settings; nothing to do (--force redoes it)")
    return summary


def detect_video(store: Store, path: Path, settings: dict, *, force: bool = False,
                 progress: Progress | None = None, log: Callable[[str], None] = print) -> DetectSummary:
    """Detect people in one video and store boxes and crops. See the module docstring.

    Every option, the model, the device and the classes are checked before the video is
    registered or anything is deleted; ``force`` replaces the old results only as the new run
    commits its first batch, and a run that fails before that leaves the project as it was.
    """
    from ptrack.detect.detector import file_hash, find_model, load_detector

    info = probe(path)
    check_settings(settings)
    model_path = find_model(settings["detect"]["model"], store.root)
    wanted = run_settings(settings, file_hash(model_path))
    known = store.find_video_by_fingerprint(info.fingerprint)
    if known is not None:
        plan, last = _plan(store, known, wanted, force)
        if plan == "skip":
            return _skipped(store, known, last)
    store.require_writable()
    store.set_crop_map_size(int(settings["crops"]["initial_map_mb"]) << 20)
    detector = load_detector(settings["detect"], width=info.width, height=info.height,
                             project=store.root, video=path, frame_count=info.frame_count, log=log)
    if force:
        note = store.rebuild_crops_if_broken()
        if note:
            log(note)
    video = register_video(store, info, log)
    summary = DetectSummary(video=video.name, status="done", backend=detector.backend)
    summary.notes.append(detector.precision_note)
    with video_lock(store, video.id), _sigterm_as_interrupt():
        plan, last = _plan(store, video, wanted, force)
        if plan == "skip":
            return _skipped(store, video, last)
        if plan == "resume":
            run, start, replace_from = last, last.frames_done, None
            store.claim_run(run.id)  # running again, by this process
            store.discard_detections(video.id, start)  # crops a kill left beyond the marker
            summary.resumed_from = start
            summary.detections_before = store.count_detections(video.id)
            log(f"resuming {video.name} from frame {start}")
        else:
            run, start, replace_from = store.start_run(video.id, "detect", wanted), 0, 0
        try:
            return _detect_loop(store, video, run.id, settings, start, summary, progress,
                                detector, replace_from)
        except BaseException as exc:
            if not isinstance(exc, KeyboardInterrupt) and store.run(run.id).frames_done == 0 \
                    and plan == "new":
                _undo_start(store, video, run.id, new_video=known is None)
            raise


def _undo_start(store: Store, video: Video, run_id: int, *, new_video: bool) -> None:
    """A run that failed before its first batch leaves no trace: no run, no new video."""
    with contextlib.suppress(PtrackError):
        if store.count_detections(video.id) == 0 and new_video:
            store.remove_video(video.id)
        elif store.latest_run(video.id, "detect").id == run_id:
            store.drop_run(run_id)


def _detect_loop(store: Store, video: Video, run_id: int, settings: dict, start: int,
                 summary: DetectSummary, progress: Progress | None, detector,
                 replace_from: int | None) -> DetectSummary:
    from ptrack.detect.detector import batch_size as pick_batch, precision_info

    cfg = settings["detect"]
    stride = max(1, int(cfg["stride"]))
    batch_size = pick_batch(cfg, detector.device, video.width, video.height)
    end = video.frame_count if not cfg["max_frames"] else min(video.frame_count, int(cfg["max_frames"]))
    end_limit = int(cfg["max_frames"]) or 1 << 62  # decode past a too-small frame count
    to_do = len(range(start + (-start) % stride, end, stride))
    writer = _Writer(store, video, run_id, settings["crops"], replace_from)
    fault = _fault_after()
    batches = 0
    t0 = time.perf_counter()
    interrupted = False
    reader = FrameReader(Path(video.path), start=start, end=end_limit, stride=stride,
                         expected=video.frame_count)
    timing = summary.timing
    clock = time.perf_counter

    def run_batch(indices: list[int], images: list[np.ndarray]) -> None:
        t = clock()
        results = detector(images)
        t1 = clock()
        writer.put((indices, images, results, indices[-1] + 1))
        timing["detector"] += t1 - t
        timing["writer_wait"] += clock() - t1
        summary.frames += len(indices)
        if progress:
            progress(summary.frames, max(to_do, summary.frames))

    try:
        with reader:
            indices: list[int] = []
            images: list[np.ndarray] = []
            frames = iter(reader)
            while True:
                t = clock()
                item = next(frames, None)
                timing["decode_wait"] += clock() - t
                if item is None:
                    break
                indices.append(item[0])
                images.append(item[1])
                if len(indices) == batch_size:
                    run_batch(indices, images)
                    indices, images = [], []
                    batches += 1
                    if fault and batches >= fault:
                        raise KeyboardInterrupt
            if indices:
                run_batch(indices, images)
    except KeyboardInterrupt as exc:
        interrupted = True
        summary.exit_code = 143 if isinstance(exc, Terminated) else 130
    except BaseException:
        with contextlib.suppress(BaseException):
            writer.close()
        with contextlib.suppress(BaseException):  # the disk may be full
            store.finish_run(run_id, "failed", {"frames": summary.frames})
        raise
    finally:
        t = clock()
        writer.close()
        timing["writer_wait"] += clock() - t
        timing["writer_busy"] = writer.busy
        timing["writer_store"] = writer.storing
    summary.seconds = time.perf_counter() - t0
    frames_read = reader.result.frames_read
    if interrupted:
        store.set_run_status(run_id, "interrupted")
        summary.status = "interrupted"
        summary.notes.append(f"interrupted; frames up to {max(writer.committed_to, start)} are "
                             f"stored; run the same command again to resume")
        summary.detections = store.count_detections(video.id)
        return summary
    if frames_read and not cfg["max_frames"] and frames_read != video.frame_count:
        if reader.result.stopped_early:
            summary.stopped_at = frames_read
            summary.notes.append(f"warning: decoding stopped at frame {frames_read} of the "
                                 f"{video.frame_count} the file announces (truncated or damaged "
                                 f"video); the frames before it are stored")
        store.update_video(video.id, frame_count=frames_read)
    if writer.replace_from is not None:  # no batch at all: the old results still go
        store.discard_detections(video.id, writer.replace_from)
        store.mark_stale(video.id, "detect")
    summary.detections = store.count_detections(video.id)
    summary.total_frames = len(range(0, min(frames_read, end_limit) if frames_read else end, stride))
    summary.crop_count, summary.crop_bytes = store.crop_stats(video.id)
    summary.frames_with_people = writer.frames_with_people
    stats = {"frames_covered": summary.total_frames, "detections": summary.detections,
             "crop_count": summary.crop_count, "crop_bytes": summary.crop_bytes,
             "seconds": round(summary.seconds, 3), "frames": summary.frames,
             "backend": summary.backend, "stopped_at": summary.stopped_at,
             "timing": {k: round(v, 3) for k, v in summary.timing.items()},
             "precision": precision_info(detector)}
    store.finish_run(run_id, "done", stats)
    return summary
