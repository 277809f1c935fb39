"""What every command shares: the project/config state, error handling, consoles."""

from __future__ import annotations

import functools
import os
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import typer

from ptrack.errors import PtrackError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class State:
    """Global options, kept on the Typer context."""

    project: Path
    config: Path | None


def state(ctx: typer.Context) -> State:
    """The global options of this invocation."""
    obj = ctx.find_root().obj
    if not isinstance(obj, State):  # a command invoked without the callback (tests)
        from ptrack.store import project_dir

        obj = State(project=project_dir(None), config=None)
    return obj


def settings(ctx: typer.Context, overrides: dict | None = None) -> dict:
    """Defaults + ``--config`` + flags."""
    from ptrack.config import load_config

    return load_config(state(ctx).config, overrides)


def open_store(ctx: typer.Context, *, create: bool = False):
    """Open the project; commands that only read need an existing one."""
    from ptrack.store import Store

    return Store.open(state(ctx).project, create=create)


def fail(message: str, code: int = 1) -> None:
    """Print ``Error: message`` on one stderr line and exit with ``code``."""
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(code)


def handles_errors(fn: F) -> F:
    """Turn ptrack's and the system's errors into one clean line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PtrackError as exc:
            if os.environ.get("PTRACK_DEBUG"):
                raise
            fail(exc.message, exc.exit_code)
        except KeyboardInterrupt:
            typer.echo("Interrupted.", err=True)
            raise typer.Exit(130)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except OSError as exc:
            if os.environ.get("PTRACK_DEBUG"):
                raise
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            fail(f"{exc.strerror or exc}{where}")
        except sqlite3.Error as exc:
            if os.environ.get("PTRACK_DEBUG"):
                raise
            fail(f"project database error: {exc}")
        except Exception as exc:  # last resort: still one line, traceback on request
            if os.environ.get("PTRACK_DEBUG"):
                raise
            fail(f"unexpected {type(exc).__name__}: {exc} (set PTRACK_DEBUG=1 for a traceback)")

    return wrapper  # type: ignore[return-value]


def stdout_is_terminal() -> bool:
    """Rich output for terminals, plain text when piped."""
    return sys.stdout.isatty()
