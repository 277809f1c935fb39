"""How commands print: the shared listing flags, names shown as data, and output files.

Every listing command returns a :class:`Listing` and is wrapped in :func:`listing`, which adds
the same output flags to all of them: a rich table on a terminal, plain aligned text when
piped, ``--json``, ``--nl`` (JSON lines), ``--csv`` or ``--tsv`` for scripts.

Names that come from files (videos, paths) are data, never rich markup: :func:`safe` escapes
control characters and tables are built from :class:`rich.text.Text`, so ``x [bold red] y``
is shown as is.
"""

from __future__ import annotations

import csv
import functools
import inspect
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, Sequence

import typer

from ptrack.errors import PtrackError

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def safe(value: Any) -> str:
    """``value`` as one line of text: control characters (newlines, escapes) shown as
    ``\\n``, ``\\x1b`` and so on, so a file name cannot move the cursor or fake a line."""
    text = str(value)

    def esc(m: re.Match) -> str:
        c = m.group()
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c, f"\\x{ord(c):02x}")

    return _CONTROL.sub(esc, text)


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 person``, ``3 persons``, ``0 boxes`` (``many`` for irregular plurals).

    >>> plural(1, "person"), plural(2, "run"), plural(0, "box", "boxes")
    ('1 person', '2 runs', '0 boxes')
    """
    return f"{n} {word if n == 1 else (many or word + 's')}"
def say(message: Any, err: bool = False) -> None:
    """Print a message for the user, every line through :func:`safe`: the one way commands
    print text that holds names (videos, paths, settings read from a project), so a name from
    a project someone sent cannot retitle or clear the terminal."""
    typer.echo("\n".join(safe(line) for line in str(message).split("\n")), err=err)


def console(stderr: bool = False, width: int | None = None):
    """A rich console that never reads markup or highlights numbers in what it prints."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, markup=False, emoji=False, width=width)


# ----------------------------------------------------------------------------- listings
@dataclass
class Column:
    """A displayed column: row key, header, how to format a value, alignment.

    ``keep`` columns (ids, names, paths) are never dropped or truncated; when the terminal is
    too narrow, the other columns are dropped from the right, lowest ``priority`` first.
    """

    key: str
    header: str
    fmt: Callable[[Any], str] | None = None
    justify: str = "right"
    get: Callable[[dict], Any] | None = None  # value from the whole row instead of row[key]
    keep: bool = False
    priority: int = 0

    def text(self, row: dict) -> str:
        value = self.get(row) if self.get is not None else row.get(self.key)
        if self.fmt is not None:
            return safe(self.fmt(value))
        return "-" if value is None else safe(value)


@dataclass
class Listing:
    """What a listing command returns: rows (all keys go to --json/--csv) and the columns a
    person sees."""

    columns: list[Column]
    rows: list[dict]
    title: str | None = None
    empty: str = "nothing to list"
    notes: list[str] = field(default_factory=list)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if isinstance(value, float):
        return round(value, 6)
    return value


def fit_columns(columns: Sequence[Column], cells: list[list[str]], width: int,
                gap: int = 2) -> list[int]:
    """Indexes of the columns that fit in ``width`` terminal cells without cutting a value.

    ``keep`` columns always stay; the others are dropped lowest ``priority`` first (the
    rightmost first among equals) until the rest fits.
    """
    need = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    chosen = list(range(len(columns)))
    droppable = sorted((i for i, c in enumerate(columns) if not c.keep),
                       key=lambda i: (columns[i].priority, -i))
    while droppable and sum(need[i] for i in chosen) + gap * (len(chosen) - 1) > width:
        chosen.remove(droppable.pop(0))
    return chosen


def terminal_width() -> int:
    """Columns of the terminal (``COLUMNS`` wins, as for every Unix tool)."""
    import shutil

    return shutil.get_terminal_size((100, 24)).columns


def emit(result: Listing, fmt: str) -> None:
    """Print a listing as ``json``, ``nl``, ``csv``, ``tsv``, ``rich`` or ``plain`` text."""
    rows = [{k: _jsonable(v) for k, v in r.items()} for r in result.rows]
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2))
    elif fmt == "nl":
        for r in rows:
            typer.echo(json.dumps(r))
    elif fmt in ("csv", "tsv"):
        keys = list(rows[0]) if rows else [c.key for c in result.columns]
        w = csv.writer(sys.stdout, delimiter="," if fmt == "csv" else "\t", lineterminator="\n")
        w.writerow(keys)
        for r in rows:
            w.writerow(["" if r.get(k) is None else (json.dumps(r[k]) if isinstance(r[k], (list, dict))
                                                      else r[k]) for k in keys])
    elif not rows:
        typer.echo(safe(result.empty))
    else:
        cells = [[c.header for c in result.columns]]
        cells += [[c.text(r) for c in result.columns] for r in result.rows]
        if fmt == "rich":
            _emit_rich(result, cells)
        else:  # plain aligned text for pipes and less: every column, never cut
            _emit_plain(result.columns, cells)
    if fmt in ("rich", "plain"):
        for note in result.notes:
            print(safe(note), file=sys.stderr)


def _emit_plain(columns: Sequence[Column], cells: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for row in cells:
        parts = [v.rjust(w) if c.justify == "right" else v.ljust(w)
                 for v, w, c in zip(row, widths, columns)]
        typer.echo("  ".join(parts).rstrip())


def _emit_rich(result: Listing, cells: list[list[str]]) -> None:
    from rich.table import Table
    from rich.text import Text

    width = terminal_width()
    # rich's box-less table: one space of padding each side of a column
    keep = fit_columns(result.columns, cells, width - 2, gap=2)
    table = Table(title=Text(safe(result.title)) if result.title else None, title_justify="left",
                  header_style="bold", box=None, pad_edge=False)
    need = {i: max(len(row[i]) for row in cells) for i in keep}
    for i in keep:
        c = result.columns[i]
        table.add_column(Text(c.header), justify=c.justify, no_wrap=True,  # type: ignore[arg-type]
                         min_width=need[i])
    for row in cells[1:]:
        table.add_row(*(Text(row[i]) for i in keep))
    # never narrower than the kept columns: a too-long path makes the line long, never cut
    out = console(width=max(width, sum(need.values()) + 2 * len(keep)))
    with out.capture() as captured:
        out.print(table)
    for line in captured.get().splitlines():
        typer.echo(line.rstrip())
    dropped = [result.columns[i].header for i in range(len(result.columns)) if i not in keep]
    if dropped:
        print(f"({len(dropped)} columns left out to fit {width} columns: {', '.join(dropped)}; "
              f"a wider terminal or --json shows them)", file=sys.stderr)


FORMAT_FLAGS = ("json", "nl", "csv", "tsv")


def listing(fn: Callable[..., Listing | None]) -> Callable[..., None]:
    """Give a command that returns a :class:`Listing` the shared ``--json/--nl/--csv/--tsv``
    flags and print its result the same way as every other listing."""
    helps = {"json": "Output JSON (a list of objects).",
             "nl": "Output JSON lines (one object per line).",
             "csv": "Output CSV with a header row.",
             "tsv": "Output tab-separated values with a header row."}
    extra = [inspect.Parameter(f"as_{f}", inspect.Parameter.KEYWORD_ONLY, default=False,
                               annotation=Annotated[bool, typer.Option(f"--{f}", help=helps[f])])
             for f in FORMAT_FLAGS]

    @functools.wraps(fn)
    def wrapper(*args: Any, as_json: bool = False, as_nl: bool = False, as_csv: bool = False,
                as_tsv: bool = False, **kwargs: Any) -> None:
        picked = [f for f, on in zip(FORMAT_FLAGS, (as_json, as_nl, as_csv, as_tsv)) if on]
        if len(picked) > 1:
            raise PtrackError("choose one of --json, --nl, --csv and --tsv", exit_code=2)
        result = fn(*args, **kwargs)
        if result is None:
            return
        fmt = picked[0] if picked else ("rich" if stdout_is_terminal() else "plain")
        emit(result, fmt)

    sig = inspect.signature(fn, eval_str=True)
    wrapper.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[*sig.parameters.values(), *extra], return_annotation=None)
    wrapper.__annotations__ = {}
    return wrapper


def stdout_is_terminal() -> bool:
    """Rich output for terminals, plain text when piped."""
    return sys.stdout.isatty()


# ------------------------------------------------------------------------- output files
BINARY_FORMATS = ("npz", "png")
"""Formats whose bytes would garble a terminal: ``--out -`` writes them only into a pipe or file."""


def out_format(out: Path | None, fmt: str | None, formats: Sequence[str],
               suffixes: dict[str, Sequence[str]], default: str) -> str:
    """The format of an output file: ``--format`` if given, else the extension of ``--out``
    (``p.json`` writes JSON), else ``default``. The file holds what its name says: an
    extension that names another format than ``--format``, or one that no format here writes
    (``p.txt`` for a selection), is an error listing the extensions there are (exit 2); a file
    name without an extension takes the format. ``--out -`` (standard output) has no
    extension, and a binary format (npz, png) is refused there when it is a terminal."""
    if fmt is not None:
        fmt = fmt.lower()
        if fmt not in formats:
            raise PtrackError(f"--format must be one of {', '.join(formats)}", exit_code=2)
    by_suffix = {s: f for f, ss in suffixes.items() for s in ss}
    implied = None
    if out is not None and str(out) != "-":
        suffix = Path(out).suffix.lower()
        implied = by_suffix.get(suffix)
        if suffix and implied is None:
            known = ", ".join(f"{s} ({f})" for s, f in by_suffix.items())
            raise PtrackError(f"--out {safe(out)}: cannot write a {suffix} file here; the "
                              f"extension picks the format: {known}", exit_code=2)
    if fmt is not None and implied is not None and implied != fmt:
        raise PtrackError(f"--out {safe(out)} ends in {Path(out).suffix}, which is {implied}, but "
                          f"--format is {fmt}; change one of them", exit_code=2)
    chosen = fmt or implied or default
    if is_stdout(out) and chosen in BINARY_FORMATS and stdout_is_terminal():
        text = [f for f in formats if f not in BINARY_FORMATS]
        raise PtrackError(f"--out - would print {chosen} bytes on the terminal; pipe or "
                          f"redirect it (`> file.{chosen}`)"
                          + (f", or pick --format {' or '.join(text)}" if text else ""),
                          exit_code=2)
    return chosen


def is_stdout(out: Path | None) -> bool:
    """``--out -``: write to standard output."""
    return out is not None and str(out) == "-"


def write_stdout_file(path: Path) -> None:
    """Copy a written temporary file to standard output (bytes, as written)."""
    sys.stdout.flush()
    data = Path(path).read_bytes()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


class Destination:
    """Where a command writes its file: ``--out PATH``, ``--out -`` (standard output: the file
    is written to a temporary path first, then copied, and messages go to stderr) or the
    default path in the project."""

    def __init__(self, out: Path | None, default: Path) -> None:
        self.to_stdout = is_stdout(out)
        self.path = Path(default if out is None else out)
        self._tmp = None
        if self.to_stdout:
            import tempfile

            self._tmp = tempfile.TemporaryDirectory(prefix="ptrack-out-")
            self.path = Path(self._tmp.name) / Path(default).name

    def done(self) -> None:
        """Copy the file to standard output when that is where it goes."""
        if self._tmp is not None:
            try:
                write_stdout_file(self.path)
            finally:
                self._tmp.cleanup()
                self._tmp = None

    def say(self, message: str) -> None:
        """A message for the user: stdout normally, stderr when stdout carries the file."""
        say(message, err=self.to_stdout)

    @property
    def shown(self) -> str:
        return "to standard output" if self.to_stdout else str(self.path)


def write_new_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` without following a symbolic link there (a received project
    could plant one pointing at a user's file)."""
    import os

    from ptrack.store.safety import open_nofollow

    fd = open_nofollow(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, "the output file")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
