"""The person stages wired to the store: track, group, rank, and keeping them current.

Each stage reads the store, runs a pure algorithm module (``track``, ``group``, ``rank``) and
replaces its results in one transaction, so an interrupted run leaves the previous results
intact. A stage's results are current when its newest run is done, used today's settings of
that stage, was made from the newest run of the stage before it, and (``group``) from the
user's corrections as they stand. :func:`ensure_current` re-runs whatever is not, in stage
order, saying so through ``log``. Helpers live elsewhere: :mod:`ptrack.persons.constraints` (user
corrections), :mod:`ptrack.persons.descriptors` (appearance), :mod:`ptrack.formats.mot_import` (``import``).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from ptrack.persons.constraints import compile_constraints, fingerprint
from ptrack.errors import PtrackError
from ptrack.settings import Settings
from ptrack.store import Store, Video

Log = Callable[[str], None]

PERSON_STAGES = ("track", "group", "rank")
UPSTREAM = {"track": "detect", "group": "track", "rank": "group"}


@dataclass
class StageSummary:
    """What one stage run did, for the CLI to print."""

    stage: str
    video: str
    seconds: float = 0.0
    counts: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _stage_run(store: Store, video: Video, stage: str, settings: dict, after: str) -> Iterator:
    """A run record for ``stage``: ``interrupted``/``failed`` if the body does not finish.

    Results are replaced in one transaction at the end of the body, so an interrupted run
    leaves the previous results in place.
    """
    upstream = store.latest_run(video.id, after)
    run = store.start_run(video.id, stage, settings, input_run=upstream.id if upstream else None)
    try:
        yield run
    except KeyboardInterrupt:
        store.finish_run(run.id, "interrupted")
        raise
    except BaseException:
        with contextlib.suppress(Exception):
            store.finish_run(run.id, "failed")
        raise


def _video_flag(store: Store, video: Video) -> str:
    """`` --video NAME`` for hints when the project holds several videos."""
    return f" --video {video.name}" if len(store.videos()) > 1 else ""


def detect_unfinished(store: Store, video: Video) -> str | None:
    """What to tell a user while the video's latest ``detect`` has not finished (None when it
    has): that it is running (its process is alive: runs of dead processes are closed when the
    project opens), or that it stopped and how to resume. Every command says the same."""
    run = store.latest_run(video.id, "detect")
    if run is None or run.status in ("done", "stale"):
        return None
    done = f"{run.frames_done} of {video.frame_count} frames done"
    if run.status == "running":
        return (f"`ptrack detect` of {video.name} is running ({done}); wait for it to finish, "
                f"then try again")
    return (f"`ptrack detect` of {video.name} stopped before the end ({done}); run `ptrack "
            f"detect {video.path}` again to finish it")


def _need_detections(store: Store, video: Video) -> None:
    state = store.stage_state(video.id, "detect")
    if state not in ("done", "stale"):
        unfinished = detect_unfinished(store, video)
        if unfinished is not None:
            raise PtrackError(unfinished)
        raise PtrackError(f"{video.name} has no finished detections; run `ptrack detect "
                          f"{video.path}` or `ptrack import` first")


def stale_reason(store: Store, video: Video, stage: str, cfg: dict) -> str | None:
    """Why ``stage``'s results for the video are not current (None when they are)."""
    run = store.latest_run(video.id, stage)
    if run is None:
        return "missing"
    if run.status != "done":
        return {"stale": "stale", "failed": "from a failed run"}.get(run.status, "unfinished")
    if run.settings != cfg[stage]:
        return "from other settings"
    upstream = store.latest_run(video.id, UPSTREAM[stage])
    if upstream is None or run.input_run != upstream.id:
        return f"older than the {UPSTREAM[stage]} results"
    if stage == "group":
        made_with = run.stats.get(CONSTRAINTS_KEY, fingerprint([]))
        if made_with != fingerprint(store.constraints(video.id)):
            return "older than your corrections (merge/split/unmerge)"
    return None


def ensure_current(store: Store, video: Video, cfg: dict, upto_stage: str,
                   log: Log = print) -> list[StageSummary]:
    """Re-run every stage up to and including ``upto_stage`` whose results are missing or stale.

    Stages are checked in order (track, group, rank), each against its own settings, the run
    of the stage before it and, for group, the user's corrections; a re-run stage makes the
    later ones stale, so they re-run too. Each re-run is announced through ``log``. Nothing
    heavy is imported when every stage is current.

    Raises:
        PtrackError: The video has no finished detections.
    """
    if upto_stage not in PERSON_STAGES:
        raise PtrackError(f"unknown stage '{upto_stage}' (one of {', '.join(PERSON_STAGES)})")
    _need_detections(store, video)
    done = []
    for stage in PERSON_STAGES[:PERSON_STAGES.index(upto_stage) + 1]:
        why = stale_reason(store, video, stage, cfg)
        if why is None:
            continue
        log(f"{video.name}: {stage} results are {why}; running {stage} first")
        done.append(_RUN[stage](store, video, cfg, log))
    return done


def _detect_stride(store: Store, video: Video) -> int:
    """The ``--stride`` of the video's detections (1 for imported boxes)."""
    run = store.latest_run(video.id, "detect")
    try:
        return max(1, int(run.settings["detect"]["stride"])) if run else 1
    except (KeyError, TypeError, ValueError):
        return 1


def run_track(store: Store, video: Video, cfg: dict, log: Log = print) -> StageSummary:
    """ByteTrack over the stored detections -> tracklets."""
    _need_detections(store, video)
    return _run_track(store, video, cfg, log)


def _run_track(store: Store, video: Video, cfg: dict, log: Log) -> StageSummary:
    from ptrack.persons.track import track_detections

    settings = Settings.from_dict(cfg)
    t0 = time.perf_counter()
    det = store.detections(video.id)
    stride = _detect_stride(store, video)
    with _stage_run(store, video, "track", cfg["track"], "detect") as run:
        # ByteTrack steps over the detected frames only: fed the skipped frames of a
        # `detect --stride N` run as empty ones, it drops every new track before the second
        # match that confirms it (coverage on TUD-Stadtmitte fell from 78% to 29% at stride 2;
        # with this, 80%; bench/levers.py --only stride)
        tid = track_detections(det.frame // stride, det.xyxy, det.conf, det.cls,
                               fps=video.fps / stride, settings=settings.track)
        n_tracklets = int(len(np.unique(tid[tid >= 0])))
        counts = {"detections": len(det), "tracked": int((tid >= 0).sum()),
                  "tracklets": n_tracklets}
        # results, run 'done' and later stages stale: one transaction
        store.replace_tracklets(video.id, det.frame, det.det, tid, run_id=run.id, stats=counts)
    return StageSummary("track", video.name, time.perf_counter() - t0, counts)


def group_inputs(store: Store, video: Video, settings: Settings, *, appearance: bool = True,
                 skipped: list[int] | None = None, log: Log | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 per_crop: dict | None = None):
    """Tracklet rows, appearance (:class:`ptrack.persons.descriptors.Appearance`) and constraints as
    ``group`` takes them. A fallback of the appearance is said through ``log``, once per
    process and reason. ``per_crop`` gets the sampled crops' features (for the suggestions)."""
    from ptrack.persons.descriptors import Appearance, tracklet_appearance

    tid, det = store.tracklet_boxes(video.id)
    tid, must, cannot = compile_constraints(store.constraints(video.id), tid, det.frame)
    app = Appearance()
    if appearance:
        with _embed_progress(video.name, progress) as tick:
            app = tracklet_appearance(store, video, tid, det, settings.group, skipped=skipped,
                                      progress=tick, per_crop=per_crop)
    for note in app.notes:
        if log is not None and note not in _SAID:
            _SAID.add(note)
            log(f"{video.name}: {note}")
    return tid, det, app, must, cannot


_SAID: set[str] = set()
"""Fallback notes already said in this process (each is said once)."""
EMBED_BAR_MIN = 64
"""Fewest crops to embed for which a progress bar is shown."""


@contextlib.contextmanager
def _embed_progress(name: str, progress: Callable[[int, int], None] | None) -> Iterator:
    """The ``progress(done, total)`` callback for embedding crops: the caller's, else a rich bar
    on stderr when there is real work (``EMBED_BAR_MIN`` crops or more) and stderr is a
    terminal; nothing when another live display (``ptrack run``'s) holds the terminal."""
    if progress is not None:
        yield progress
        return
    state: dict = {}

    def tick(done: int, total: int) -> None:
        if "bar" not in state:
            state["bar"] = None
            if total < EMBED_BAR_MIN:
                return
            from rich.console import Console
            from rich.errors import LiveError
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, \
                TimeRemainingColumn

            console = Console(stderr=True)
            if not console.is_terminal:
                return
            bar = Progress(TextColumn(f"{name}: embedding crops", markup=False), BarColumn(),
                           MofNCompleteColumn(), TimeRemainingColumn(), console=console,
                           transient=True)
            try:
                bar.start()
            except LiveError:
                return
            state["bar"] = (bar, bar.add_task("embed", total=total))
        if state["bar"]:
            bar, task = state["bar"]
            bar.update(task, completed=done, total=total)

    try:
        yield tick
    finally:
        if state.get("bar"):
            state["bar"][0].stop()


CONSTRAINTS_KEY = "constraints_fingerprint"
"""Key of the run stats that records which user corrections a group run kept."""


def run_group(store: Store, video: Video, cfg: dict, log: Log = print,
              progress: Callable[[int, int], None] | None = None) -> StageSummary:
    """Tracklets (+ crops, + user constraints) -> persons with boxes and provenance.

    ``progress(done, total)`` follows the embedding of crops (when the appearance needs new
    ones); without it, a progress bar on stderr does."""
    ensure_current(store, video, cfg, "track", log)
    return _run_group(store, video, cfg, log, progress)


def _run_group(store: Store, video: Video, cfg: dict, log: Log,
               progress: Callable[[int, int], None] | None = None) -> StageSummary:
    from ptrack.persons.group import group_tracklets

    settings = Settings.from_dict(cfg)
    t0 = time.perf_counter()
    recorded = store.constraints(video.id)
    skipped: list[int] = []
    per_crop: dict = {}
    tid, det, app, must, cannot = group_inputs(store, video, settings, skipped=skipped, log=log,
                                               progress=progress, per_crop=per_crop)
    with _stage_run(store, video, "group", cfg["group"], "track") as run:
        result = group_tracklets(tid, det.frame, det.xyxy, det.conf, fps=video.fps,
                                 descriptors=app.hsv, embeddings=app.embed, must_link=must,
                                 cannot_link=cannot, settings=settings.group)
        suggested = _suggestions(result, tid, det, video, app, per_crop, cannot, settings)
        smoothed = smoothed_person_boxes(result.person, result.frame, result.xyxy, result.conf,
                                         result.source, fps=video.fps, width=video.width,
                                         height=video.height)
        persons, boxes, links = _person_rows(result, det, smoothed)
        counts = {"tracklets": int(len(result.tracklet_ids)), "persons": len(persons),
                  "interpolated": int((result.source == 1).sum()),
                  "appearance": app.used != "off", **_appearance_counts(app),
                  "constraints": len(recorded)}
        if sum(skipped):
            counts["bad_crops_skipped"] = int(sum(skipped))
        # results, run 'done' and later stages stale: one transaction
        track_run = store.latest_run(video.id, "track")
        store.replace_persons(video.id, persons, boxes, links, run_id=run.id,
                              stats={**counts, CONSTRAINTS_KEY: fingerprint(recorded)},
                              suggestions=suggested,
                              track_run=track_run.id if track_run else None)
    summary = StageSummary("group", video.name, time.perf_counter() - t0, counts)
    if not persons:
        summary.notes.append("nobody was found in this video (no tracked person boxes)")
    return summary


def _suggestions(result, tid, det, video: Video, app, per_crop: dict, cannot,
                 settings: Settings) -> list[dict]:
    """The suggested merges of a grouping (:mod:`ptrack.persons.suggest`) as the store keeps
    them: evidence dicts, best first, with the video's ranges in each."""
    from ptrack.persons.suggest import MAX_KEY, CropFeatures, kept, suggest_merges

    crops = CropFeatures(**per_crop) if per_crop else None
    found = suggest_merges(result.tracklet_ids, result.person_of_tracklet, tid, det.frame,
                           det.xyxy, det.conf, fps=video.fps, width=video.width,
                           height=video.height, descriptors=app.hsv, embeddings=app.embed,
                           crops=crops, cannot_link=cannot, settings=settings.group,
                           max_key=MAX_KEY)
    ranges = {"same": found.same.as_dict(), "different": found.different.as_dict()}
    return [{**s.as_dict(), "ranges": ranges} for s in kept(found.items)]


def _appearance_counts(app) -> dict:
    """What the run's stats (and summary line) say about the appearance used."""
    if app.used == "off":
        return {}
    words = {"hsv": "colour", "embed": "embedding", "combo": "colour+embedding"}
    return {"appearance_from": words[app.used], **app.counts}


def explain_link(store: Store, video: Video, cfg: dict, a: int, b: int,
                 log: Log | None = None) -> list[dict]:
    """``group --explain A B``: :func:`ptrack.persons.group.explain` on the stored tracklets.

    A person id stands for all its tracklets (they are relabelled with the person's id and
    their descriptors averaged), so ``A`` and ``B`` may be tracklets or persons. The appearance
    is the one ``group`` uses (stored embeddings, the video's learned metric).
    """
    from ptrack.persons.group import explain

    if store.stage_state(video.id, "track") == "missing":
        raise PtrackError(f"no tracklets yet; run `ptrack track{_video_flag(store, video)}` first")
    settings = Settings.from_dict(cfg)
    tid, det, app, must, cannot = group_inputs(store, video, settings, log=log)
    links = store.person_tracklets(video.id)
    label = tid.copy()
    for ref in (a, b):
        label[np.isin(tid, links.get(ref, [ref]))] = ref
    kinds = []
    for desc, normalise in ((app.hsv, True), (app.embed, False)):
        if desc is not None:
            desc = dict(desc)
            for ref in (a, b):
                members = [t for t in links.get(ref, [ref]) if t in desc]
                if members:
                    merged = np.mean([desc[t] for t in members], axis=0)
                    desc[ref] = merged / max(merged.sum(), 1e-12) if normalise else merged
        kinds.append(desc)
    rows = explain(a, b, label, det.frame, det.xyxy, det.conf, fps=video.fps,
                   descriptors=kinds[0], embeddings=kinds[1], settings=settings.group)
    # the clustering's rows before the last row ("link", the direct link's verdict)
    return rows[:-1] + _cluster_rows(a, b, links, tid, det, app, must, cannot, settings,
                                     video.fps) + rows[-1:]


def _cluster_rows(a: int, b: int, links: dict, tid, det, app, must, cannot, settings,
                  fps: float) -> list[dict]:
    """The clustering's part of ``group --explain``: ``group`` run as it runs, then the join
    that made A and B one human (with its evidence), or why their persons stay apart."""
    from ptrack.persons.cluster import explain_rows
    from ptrack.persons.group import group_tracklets

    g = group_tracklets(tid, det.frame, det.xyxy, det.conf, fps=fps, descriptors=app.hsv,
                        embeddings=app.embed, must_link=must, cannot_link=cannot,
                        settings=settings.group)
    persons: dict[int, list[int]] = {}
    for t, p in zip(g.tracklet_ids.tolist(), g.person_of_tracklet.tolist()):
        persons.setdefault(p, []).append(t)
    m = tid >= 0
    order = np.lexsort((det.frame[m], tid[m]))
    t_sorted, f_sorted = tid[m][order], det.frame[m][order]
    starts = np.flatnonzero(np.r_[True, t_sorted[1:] != t_sorted[:-1]])
    frames_of = {int(t): np.unique(f) for t, f in
                 zip(t_sorted[starts], np.split(f_sorted, starts[1:]))}
    p = settings.group
    return explain_rows(links.get(a, [a]), links.get(b, [b]), list(g.joins),
                        list(persons.values()), frames_of, app.hsv, app.embed,
                        over=int(round(p.handover_s * fps)), max_distance=p.cluster_max,
                        margin=p.cluster_margin)


def smoothed_person_boxes(person: np.ndarray, frame: np.ndarray, xyxy: np.ndarray,
                          conf: np.ndarray, source: np.ndarray, *, fps: float,
                          width: float = 0, height: float = 0) -> np.ndarray:
    """The smoothed box of every person box (float32, N x 4, in the rows' order).

    Each person's observed boxes (``source == 0``, weighted by confidence) go through
    :func:`ptrack.persons.smooth.smooth_boxes` over the person's whole span, so interpolated rows get
    the smoother's box for their frame. A person with no observed box keeps its boxes. With the
    frame's ``width`` and ``height``, the boxes are clipped to it (a smoother's velocity carries
    a box past the edge; the raw boxes are left as the detector gave them).
    """
    person = np.asarray(person)
    frame = np.asarray(frame, dtype=np.int64)
    xyxy = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
    out = xyxy.copy()
    if not len(person) or not fps or fps <= 0:
        return out
    obs = np.flatnonzero(np.asarray(source) == 0)
    if not len(obs):
        return out
    out = _smoothed(out, person, frame, xyxy, conf, source, obs, fps)
    if width and height and width > 0 and height > 0:
        np.clip(out[:, 0::2], 0, float(width), out=out[:, 0::2])
        np.clip(out[:, 1::2], 0, float(height), out=out[:, 1::2])
    return out


def _smoothed(out: np.ndarray, person: np.ndarray, frame: np.ndarray, xyxy: np.ndarray,
              conf: np.ndarray, source: np.ndarray, obs: np.ndarray, fps: float) -> np.ndarray:
    from ptrack.persons.smooth import smooth_tracks

    track, span, boxes = smooth_tracks(person[obs], frame[obs], xyxy[obs], np.asarray(conf)[obs],
                                       fps=fps)
    # each row's place in the smoothed (person, frame) rows, where its person has one
    key = np.lexsort((span, track))  # already ordered; lexsort keeps this robust
    track, span, boxes = track[key], span[key], boxes[key]
    pos = np.searchsorted(track * (1 << 32) + span, person.astype(np.int64) * (1 << 32) + frame)
    pos = np.minimum(pos, len(span) - 1)
    hit = (track[pos] == person) & (span[pos] == frame)
    out[hit] = boxes[pos[hit]]
    return out


def _person_rows(result, det, smoothed: np.ndarray | None = None
                 ) -> tuple[list[dict], list[tuple], list[tuple]]:
    """Store rows from a :class:`ptrack.persons.group.GroupResult` (and its smoothed boxes)."""
    det_index = np.where(result.row >= 0, det.det[np.maximum(result.row, 0)], -1)
    smoothed = result.xyxy if smoothed is None else smoothed
    boxes = list(zip(result.person.tolist(), result.frame.tolist(),
                     *(result.xyxy[:, i].astype(float).tolist() for i in range(4)),
                     result.conf.astype(float).tolist(), result.source.astype(int).tolist(),
                     result.tracklet.tolist(), det_index.tolist(),
                     *(smoothed[:, i].astype(float).tolist() for i in range(4))))
    links = list(zip(result.person_of_tracklet.tolist(), result.tracklet_ids.tolist()))
    persons = []
    if len(result.person):
        order = np.argsort(result.person, kind="stable")
        ids, starts = np.unique(result.person[order], return_index=True)
        ends = np.append(starts[1:], len(order))
        heights = result.xyxy[:, 3] - result.xyxy[:, 1]
        n_tracklets = dict(zip(*np.unique(result.person_of_tracklet, return_counts=True)))
        for pid, s, e in zip(ids.tolist(), starts, ends):
            rows = order[s:e]
            observed = rows[result.source[rows] == 0]
            persons.append({
                "id": pid, "n_frames": int(len(rows)), "n_observed": int(len(observed)),
                "first": int(result.frame[rows].min()), "last": int(result.frame[rows].max()),
                "n_tracklets": int(n_tracklets.get(pid, 0)),
                "mean_height": float(heights[rows].mean()),
                "mean_conf": float(result.conf[observed].mean()) if len(observed) else 0.0})
    return persons, boxes, links


def run_rank(store: Store, video: Video, cfg: dict, log: Log = print) -> StageSummary:
    """Score and rank the persons."""
    ensure_current(store, video, cfg, "group", log)
    return _run_rank(store, video, cfg, log)


def _run_rank(store: Store, video: Video, cfg: dict, log: Log) -> StageSummary:
    from ptrack.persons.rank import rank_persons

    settings = Settings.from_dict(cfg)
    t0 = time.perf_counter()
    with _stage_run(store, video, "rank", cfg["rank"], "group") as run:
        pb = store.person_boxes(video.id)
        result = rank_persons(pb["person"], pb["frame"], pb["xyxy"], pb["conf"], pb["source"],
                              n_frames=video.frame_count, width=video.width,
                              height=video.height, settings=settings.rank)
        ranking = [(int(p), int(r), float(s), {k: float(v[i]) for k, v in result.components.items()})
                   for i, (p, r, s) in enumerate(zip(result.person, result.rank, result.score))]
        counts = {"persons": len(ranking)}
        if ranking:
            counts["top_person"] = min(ranking, key=lambda x: x[1])[0]
        store.set_ranking(video.id, ranking, run_id=run.id, stats=counts)
    summary = StageSummary("rank", video.name, time.perf_counter() - t0, counts)
    if not ranking:
        summary.notes.append("nobody was found in this video: no persons to rank")
    return summary


RUNNERS: dict[str, Callable[..., StageSummary]] = {
    "track": run_track, "group": run_group, "rank": run_rank}
_RUN: dict[str, Callable[..., StageSummary]] = {
    "track": _run_track, "group": _run_group, "rank": _run_rank}
