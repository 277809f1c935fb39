"""The one error type ptrack raises for problems a user can fix.

The CLI catches it once and prints ``Error: <message>`` on one line, exiting with ``exit_code``
(1 by default, 2 for usage-like errors such as an unknown id). Set ``PTRACK_DEBUG=1`` to see a
traceback instead.
"""

from __future__ import annotations


class PtrackError(Exception):
    """A problem with the user's input, files or project, explained in one line."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class StoreError(PtrackError):
    """The project store cannot do what was asked: damaged, read-only or out of space.

    Raised by :mod:`ptrack.store` in place of SQLite's and LMDB's own errors, so callers catch
    one type; the message says what is wrong and how to recover.
    """
