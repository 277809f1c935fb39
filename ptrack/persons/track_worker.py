"""A worker process for one pure function call that dies with its parent.

:func:`start` runs ``fn(*args, **kwargs)`` in a fresh Python (``python -m
ptrack.persons.track_worker``), sending the call pickled over the child's stdin and reading the
result from its stdout. The child:

- asks the kernel to SIGKILL it when its parent dies (``prctl(PR_SET_PDEATHSIG)`` on Linux),
  then checks that its parent did not die before that;
- on other systems, watches its parent's pid from a thread and exits when it changes;
- blocks on nothing its parent could leave open: no pool, no queue, no resource tracker (a
  ``ProcessPoolExecutor`` worker blocked for ever writing its result when ``ptrack track`` was
  killed, issue 25); a write to a pipe whose reader is gone kills it (SIGPIPE / EPIPE).

Only functions importable by module and name are sent (pickle's rule).
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
from typing import Any, Callable

PR_SET_PDEATHSIG = 1


class Worker:
    """A started call; :meth:`result` waits for it."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc

    def result(self) -> Any:
        """The call's return value, or None when the worker failed (the caller then runs the
        call itself)."""
        try:
            data = self.proc.stdout.read()  # type: ignore[union-attr]
            code = self.proc.wait()
        except BaseException:
            self.kill()
            raise
        if code != 0 or not data:
            return None
        try:
            ok, value = pickle.loads(data)
        except Exception:
            return None
        return value if ok else None

    def kill(self) -> None:
        """Stop the worker now."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def start(fn: Callable[..., Any], args: tuple, kwargs: dict) -> Worker:
    """Run ``fn(*args, **kwargs)`` in a worker process that dies with this one."""
    from pathlib import Path

    here = str(Path(__file__).resolve().parents[2])  # the folder holding this ptrack
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.Popen([sys.executable, "-m", "ptrack.persons.track_worker", str(os.getpid())],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                            close_fds=True)
    try:
        pickle.dump((fn, args, kwargs), proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)  # type: ignore[arg-type]
        proc.stdin.close()  # type: ignore[union-attr]
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return Worker(proc)


def _die_with_parent(parent: int) -> None:
    """Be killed when ``parent`` dies: the kernel's death signal where there is one, and a
    watching thread everywhere."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the signal was asked for
        os._exit(1)

    def watch() -> None:
        import time

        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def main() -> None:
    _die_with_parent(int(sys.argv[1]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent, which kills us
    fn, args, kwargs = pickle.load(sys.stdin.buffer)
    try:
        out = (True, fn(*args, **kwargs))
    except Exception as exc:  # the parent runs the call itself
        out = (False, repr(exc))
    sys.stdout.buffer.write(pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
