"""The driver of a many-video command: decides what each video needs, hands the new ones to
local worker processes (:mod:`ptrack.batch.pool`) or Ray (:mod:`ptrack.batch.ray_pool`), each
writing a shard project, combines every finished shard into the user's project as it arrives
(:func:`ptrack.store.combine.combine`), and returns a row per video for the summary.

What runs where:

* a video the project already holds with every result current: nothing (``already done``);
* a video the project holds that needs work (an unfinished detect, other settings, stale
  stages): here, in the driver, on the project itself, so its corrections and selections stay;
* a new video: a worker, in a shard (on this machine ``PROJECT/shards/FINGERPRINT``; with Ray,
  on the worker's local disk). A shard left by an interrupted or failed command is resumed.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ptrack.batch.job import JobSpec, Task
from ptrack.batch.progress import ManyProgress, RemoteProgress
from ptrack.errors import PtrackError

SHARDS = "shards"
INTERRUPTED = "interrupted; run the same command again to resume"
Describe = Callable[[Any, Any], dict]  # (store, video) -> the row of a video already done


@dataclass
class Outcome:
    """Rows in input order, and whether a Ctrl-C cut the command short."""

    rows: list[dict] = field(default_factory=list)
    interrupted: bool = False
    combine_seconds: list[float] = field(default_factory=list)


def job_model(cfg: dict, project: Path) -> dict:
    """The settings a worker gets: a bare model name that only this project's ``models/`` or
    this directory holds becomes its absolute path (a worker looks from its shard, maybe on
    another machine)."""
    from ptrack.detect.detector import find_model

    name = str(cfg["detect"]["model"])
    path = find_model(name, project)
    if name.startswith("pkg:") or len(Path(name).parts) != 1:
        return cfg
    here = [project.resolve(), Path.cwd().resolve()]
    if any(path.is_relative_to(d) for d in here):
        return {**cfg, "detect": {**cfg["detect"], "model": str(path)}}
    return cfg


def _retry(project: Path, command: str, path: str) -> str:
    return f"ptrack -p {shlex.quote(str(project))} {command} {shlex.quote(path)} (with the same options)"


def _failed(name: str, message: str, retry: str) -> dict:
    return {"video": name, "persons": "-", "top": None, "table": None, "error": message,
            "retry": retry, "lines": []}


def _relocate(row: Any, old: str, new: str) -> Any:
    """The row with paths inside the shard's outputs moved to the project's."""
    if isinstance(row, str):
        return new + row[len(old):] if row.startswith(old) else row
    if isinstance(row, list):
        return [_relocate(x, old, new) for x in row]
    if isinstance(row, dict):
        return {k: _relocate(v, old, new) for k, v in row.items()}
    return row


def _state(store, info, cfg: dict, wanted: dict, force: bool, command: str) -> str:
    """``new``, ``done`` or ``here`` for a probed video (see the module docstring)."""
    from ptrack.detect.loop import detect_plan

    known = store.find_video_by_fingerprint(info.fingerprint)
    if known is None:
        return "new"
    if force:
        return "here"
    try:
        if detect_plan(store, known, wanted) != "skip":
            return "here"
    except PtrackError:
        return "here"  # other settings: the driver says so, as `detect` does
    if command == "detect":
        return "done"
    from ptrack.persons.stages import stale_reason

    if any(stale_reason(store, known, s, cfg) for s in ("track", "group", "rank")):
        return "here"
    table = store.output_path(known) / "selection_table.png"
    return "done" if table.is_file() or not store.persons(known.id) else "here"


def _shard_settings_differ(shard: Path, wanted: dict) -> bool:
    """An old shard whose detect used other settings (it is started again)."""
    from ptrack.detect.loop import detect_plan
    from ptrack.store import Store

    try:
        with Store.open(shard, create=False) as s:
            for v in s.videos():
                detect_plan(s, v, wanted)
    except PtrackError:
        return True
    return False


def run_many(project: Path, paths: list[Path], cfg: dict, *, fn, describe: Describe,
             command: str, force: bool, top: int, workers: int, ray: str | None, err: Any,
             safe: Callable[[str], str] = str, retries: int = 2) -> Outcome:
    """Every video of ``paths`` through ``fn`` (the command's job), in parallel; see the
    module docstring. ``err`` is the console for the display and messages."""
    from ptrack.detect.detector import file_hash, find_model
    from ptrack.detect.loop import check_settings, run_settings
    from ptrack.detect.video import probe
    from ptrack.store import Store
    from ptrack.store.combine import combine

    if ray is not None:
        from ptrack.batch.ray_pool import import_ray

        import_ray()  # missing: say how to install it before the project is touched
    check_settings(cfg)
    job_cfg = job_model(cfg, project)
    digest = file_hash(find_model(job_cfg["detect"]["model"], project))
    wanted = run_settings(job_cfg, digest)  # a shard's detect
    wanted_here = run_settings(cfg, digest)  # the project's
    out = Outcome(rows=[{} for _ in paths])
    spec = JobSpec(fn=fn, cfg=job_cfg, top=top)
    with Store.open(project, create=True) as store, \
            ManyProgress(err, total=len(paths), safe=safe) as display:
        store.require_writable()
        tasks: list[Task] = []
        here: list[tuple[int, Path]] = []
        first: dict[str, int] = {}  # fingerprint -> the input that has it
        dupes: list[tuple[int, int]] = []
        for i, path in enumerate(paths):
            retry = _retry(project, command, str(path))
            try:
                info = probe(path)
                state = _state(store, info, cfg, wanted_here, force, command)
            except PtrackError as exc:
                out.rows[i] = _failed(path.stem, exc.message, retry)
                display.log(f"{path.name}: Error: {exc.message}")
                display.finished(False)
                continue
            if info.fingerprint in first:  # the same content twice: done once
                dupes.append((i, first[info.fingerprint]))
                continue
            first[info.fingerprint] = i
            if state == "done":
                known = store.find_video_by_fingerprint(info.fingerprint)
                out.rows[i] = describe(store, known) | {"note": "already done"}
                display.finished(True)
            elif state == "here":
                here.append((i, path))
            else:
                shard = store.path(SHARDS, info.fingerprint)
                if shard.exists() and (force or _shard_settings_differ(shard, wanted)):
                    shutil.rmtree(shard)
                tasks.append(Task(index=i, path=str(Path(path).resolve()), name=info.name,
                                  fingerprint=info.fingerprint, shard=str(shard)))

        def finish(task: Task, row: dict | None, error: str | None) -> None:
            retry = _retry(project, command, task.path)
            if error is not None:
                out.rows[task.index] = _failed(task.name, error, retry)
                display.log(f"{task.name}: Error: {error}")
                display.finished(False)
                return
            shard = Path(task.shard)
            try:
                t0 = time.perf_counter()
                result = combine(store, shard, log=display.log)
                out.combine_seconds.append(time.perf_counter() - t0)
            except PtrackError as exc:
                out.rows[task.index] = _failed(
                    task.name, f"{exc.message} (its results stay in {shard}: `ptrack combine "
                               f"{shard}` takes them)", retry)
                display.finished(False)
                return
            for v in result.videos:
                row = _relocate(row, str(shard / "outputs" / v.source_name),
                                str(store.root / "outputs" / v.name))
                row["video"] = v.name
            out.rows[task.index] = row
            with contextlib.suppress(OSError):
                shutil.rmtree(shard)
            display.finished(True)

        try:
            if tasks and ray is not None:
                from ptrack.batch.ray_pool import run_ray

                run_ray(ray, tasks, spec, workers=workers, project=project, handle=display.handle,
                        finish=finish, log=display.log, retries=retries)
            elif tasks:
                from ptrack.batch.pool import run_local

                display.log(f"{len(tasks)} videos on {min(workers, len(tasks))} worker processes")
                run_local(tasks, spec, workers, handle=display.handle, finish=finish,
                          log=display.log, retries=retries, device=str(cfg["detect"]["device"]))
            for i, path in here:  # videos the project holds already: on the project itself
                progress = RemoteProgress(display.handle, i)
                try:
                    out.rows[i] = fn(store, path, cfg, force, top, progress)
                    display.finished(True)
                except PtrackError as exc:
                    out.rows[i] = _failed(path.stem, exc.message, _retry(project, command, str(path)))
                    display.log(f"{path.name}: Error: {exc.message}")
                    display.finished(False)
        except KeyboardInterrupt:
            out.interrupted = True
            for i, path in enumerate(paths):
                if not out.rows[i]:
                    out.rows[i] = _failed(path.stem, INTERRUPTED, "")
        for i, j in dupes:
            out.rows[i] = dict(out.rows[j])
            display.finished(not out.rows[i].get("error"))
    return out
