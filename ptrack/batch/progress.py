"""One progress display for many videos: a bar per running video (frames, frames/s, ETA) and
an overall bar (videos done / failed, ETA); messages printed above them. Workers, in other
processes or on other machines, send :class:`Event` tuples that :meth:`ManyProgress.handle`
shows. Plain lines when stderr is not a terminal."""

from __future__ import annotations

import time
from typing import Any, Callable

Event = tuple  # (kind, task index, *payload): ("start", i, name) ("tick", i, done, total)
#                ("log", i, message) ("stop", i)

TICK_EVERY_S = 0.25


class RemoteProgress:
    """What a job sees as its progress display (``log``, ``start``, ``tick``, ``stop``), sending
    each call as an :data:`Event` through ``send`` (ticks at most every 0.25 s)."""

    def __init__(self, send: Callable[[Event], None], index: int) -> None:
        self.send, self.index = send, index
        self._last = 0.0

    def log(self, message: str) -> None:
        self.send(("log", self.index, str(message)))

    def start(self, name: str) -> None:
        self.send(("start", self.index, str(name)))

    def tick(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last >= TICK_EVERY_S or done >= total:
            self._last = now
            self.send(("tick", self.index, int(done), int(total)))

    def stop(self) -> None:
        self.send(("stop", self.index))


class ManyProgress:
    """The driver's display (see the module docstring); ``safe`` makes names printable."""

    def __init__(self, err: Any, total: int, safe: Callable[[str], str] = str) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.err, self.safe = err, safe
        self.bar = Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                            MofNCompleteColumn(), TextColumn("{task.fields[info]}", markup=False),
                            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                            console=err, transient=True, disable=not err.is_terminal)
        self.total, self.done, self.failed = total, 0, 0
        self.overall = self.bar.add_task("videos", total=total, info="")
        self.videos: dict[int, Any] = {}  # task index -> bar
        self.names: dict[int, str] = {}
        self.rate: dict[int, tuple[float, int]] = {}

    def __enter__(self) -> "ManyProgress":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def log(self, message: str) -> None:
        self.err.print(self.safe(message), soft_wrap=True)

    def finished(self, ok: bool) -> None:
        """One video finished (``ok``) or failed."""
        if ok:
            self.done += 1
        else:
            self.failed += 1
        info = f"done {self.done}" + (f", failed {self.failed}" if self.failed else "")
        self.bar.update(self.overall, completed=self.done + self.failed, info=info)

    def handle(self, event: Event) -> None:
        kind, index, *rest = event
        if kind == "log":
            self.log(rest[0])
        elif kind == "start":
            self._drop(index)
            self.names[index] = self.safe(rest[0])
            self.videos[index] = self.bar.add_task(f"{self.names[index]}: loading the model",
                                                   total=None, info="")
        elif kind == "tick" and index in self.videos:
            done, total = rest
            now = time.perf_counter()
            t0, first = self.rate.setdefault(index, (now, done))
            fps = (done - first) / (now - t0) if now > t0 and done > first else 0.0
            self.bar.update(self.videos[index], description=f"{self.names[index]}: detect",
                            completed=done, total=total, info=f"{fps:.1f} frames/s")
        elif kind == "stop":
            self._drop(index)

    def _drop(self, index: int) -> None:
        bar = self.videos.pop(index, None)
        self.rate.pop(index, None)
        if bar is not None:
            self.bar.remove_task(bar)
