"""The ``ptrack`` command line: a thin Typer layer over the store and the algorithms."""

from ptrack.cli.app import app, main

__all__ = ["app", "main"]
