"""What every command shares: the project/config state, error handling, the Typer classes,
the ``--video`` option and person-id arguments, and the lookups of videos and persons."""

from __future__ import annotations

import functools
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Iterable, Optional, Sequence, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup

from ptrack.errors import PtrackError

if TYPE_CHECKING:  # annotations only: Typer runs on its own copy of click (10 ms less per command)
    import click

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class State:
    """Global options, kept on the Typer context."""

    project: Path
    config: Path | None
    said_config_note: bool = False  # the note that views ignore --config, said once


def state(ctx: typer.Context) -> State:
    """The global options of this invocation."""
    obj = ctx.find_root().obj
    if not isinstance(obj, State):  # a command invoked without the callback (tests)
        from ptrack.store import project_dir

        obj = State(project=project_dir(None), config=None)
    return obj


def settings(ctx: typer.Context, overrides: dict | None = None, store: Any = None) -> dict:
    """What a stage runs with: defaults + the project's settings + ``--config`` + flags. A bad
    flag value is a usage error (exit 2) that names the flag as typed (``--conf must be in
    [0, 1], got 2.0``)."""
    from ptrack.settings import project_config

    path = state(ctx).config
    project = project_overlay(ctx, store)
    if not overrides:
        return project_config(project, path)
    project_config(project, path)  # errors in the file name its keys
    try:
        return project_config(project, path, overrides)
    except PtrackError as exc:
        for section, values in overrides.items():
            for key, value in values.items():
                named = f"config key '{section}.{key}'"
                if value is not None and named in exc.message:
                    raise PtrackError(exc.message.replace(named, f"--{key.replace('_', '-')}"),
                                      exit_code=2) from None
        raise


def view_settings(ctx: typer.Context | None, store: Any) -> dict:
    """What views, corrections and exports bring stale results up to date with: the defaults
    and the project's settings, never a ``--config`` (a view does not change the project's
    results to other settings; a note says so when one is given)."""
    from ptrack.settings import project_config

    if ctx is not None and state(ctx).config is not None and not state(ctx).said_config_note:
        state(ctx).said_config_note = True
        typer.echo("note: --config is for the stage commands (detect, track, group, rank, run, "
                   "config show); this command uses the project's settings (`ptrack config "
                   "show`; change them with `ptrack config set KEY VALUE`)", err=True)
    return project_config(project_overlay(ctx, store))


def project_overlay(ctx: typer.Context | None, store: Any = None) -> dict:
    """The project's settings overlay (keys that differ from the defaults); ``{}`` for a new
    project. A project made before projects kept their settings has those its latest runs
    used."""
    if store is None:
        from ptrack.store import DB_NAME, Store

        root = state(ctx).project if ctx is not None else None
        if root is None or not (Path(root) / DB_NAME).is_file():
            return {}
        with Store.open(root, create=False) as opened:
            return project_overlay(None, opened)
    stored = store.project_settings()
    return stored if stored is not None else inherited_overlay(store)


def inherited_overlay(store: Any) -> dict:
    """The settings of the project's newest runs, as an overlay (for projects that predate
    stored project settings): each stage's section from its newest finished run."""
    from ptrack.settings import differences, load_defaults, project_config

    cfg = load_defaults()
    newest: dict[str, Any] = {}
    for v in store.videos():
        for stage in ("detect", "track", "group", "rank"):
            r = store.latest_run(v.id, stage)
            if r is not None and r.status in ("done", "stale") and isinstance(r.settings, dict) \
                    and (stage not in newest or r.id > newest[stage].id):
                newest[stage] = r
    for stage, r in newest.items():
        sections = r.settings if stage == "detect" else {stage: r.settings}
        for section, values in sections.items():
            if section in cfg and isinstance(values, dict):
                cfg[section].update({k: v for k, v in values.items() if k in cfg[section]})
    try:
        return differences(project_config(differences(cfg)))
    except PtrackError:
        return {}


def keep_settings(store: Any, cfg: dict, before: dict, log: Callable[[str], None]) -> None:
    """Make the settings a stage ran with (``cfg``) the project's settings, saying what changed
    from ``before`` (the project's overlay when the command started)."""
    from ptrack.settings import default_value, differences, flat

    if store.read_only:
        return
    new = differences(cfg)
    if store.project_settings() == new:
        return
    store.set_project_settings(new)
    old, after = flat(before), flat(new)

    def was(key: str) -> Any:
        return old[key] if key in old else default_value(*key.split(".", 1))

    changed = [f"{k} = {after[k]!r} (was {was(k)!r})" for k in sorted(after)
               if was(k) != after[k]]
    changed += [f"{k} = {default_value(*k.split('.', 1))!r} (the default again)"
                for k in sorted(old) if k not in after]
    if changed:
        log(f"project settings: {'; '.join(changed)}; later commands use them "
            f"(`ptrack config show`)")


def open_store(ctx: typer.Context, *, create: bool = False):
    """Open the project; commands that only read need an existing one."""
    from ptrack.store import Store

    return Store.open(state(ctx).project, create=create)


def fail(message: str, code: int = 1) -> None:
    """Print ``Error: message`` on one stderr line and exit with ``code``."""
    from ptrack.cli.output import say

    say(f"Error: {message}", err=True)  # names are data: escaped
    raise typer.Exit(code)


def handles_errors(fn: F) -> F:
    """Turn ptrack's and the system's errors into one clean line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            result = fn(*args, **kwargs)
            sys.stdout.flush()  # a closed pipe (`| head -1`) shows up here, not at exit
            return result
        except PtrackError as exc:
            if os.environ.get("PTRACK_DEBUG"):
                raise
            fail(exc.message, exc.exit_code)
        except BrokenPipeError:
            _quiet_broken_pipe()
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
        except Exception as exc:  # last resort: still one line, traceback on request
            if os.environ.get("PTRACK_DEBUG"):
                raise
            fail(f"unexpected {type(exc).__name__}: {exc} (set PTRACK_DEBUG=1 for a traceback)")

    return wrapper  # type: ignore[return-value]


def _quiet_broken_pipe() -> None:
    """The reader went away (``ptrack list persons | head -1``): stop quietly with exit 0, as
    ``cat`` and ``git log`` do, and keep Python from complaining when it flushes at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (tests)
        pass
    raise typer.Exit(0)


# --------------------------------------------------------------------------- Typer classes
GLOBAL_OPTIONS = {"--project": True, "-p": True, "--config": True, "-c": True}  # name -> takes a value


class Command(TyperCommand):
    """A command whose usage line reads ``VIDEO...`` (not ``{videos}...``) and whose
    argument help shows no Python type."""

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                pieces.append(_argument_name(param, brackets=True))
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        args, opts = [], []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                if not param.hidden:  # type: ignore[attr-defined]
                    extra = "  [required]" if param.required else ""
                    args.append((_argument_name(param), f"{param.help or ''}{extra}"))  # type: ignore[attr-defined]
            else:
                rv = param.get_help_record(ctx)
                if rv is not None:
                    opts.append(rv)
        if args:
            with formatter.section("Arguments"):
                formatter.write_dl(args)
        if opts:
            with formatter.section("Options"):
                formatter.write_dl(opts)


def _argument_name(param: Any, brackets: bool = False) -> str:
    name = param.metavar or (param.name or "").upper()
    if param.nargs != 1:
        name += "..."
    return f"[{name}]" if brackets and not param.required else name


class Group(TyperGroup):
    """The ``ptrack`` group: global options (``--project``, ``--config``) are also accepted
    after the command (``ptrack list persons --project p``), as git and docker do."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, ray_address(renamed_options(
            hoist_global_options(args, set(self.commands)))))


RENAMED = {"show": {"--k": "--crops"}, "table": {"--k": "--crops"}, "crops": {"--k": "--count"}}
"""Old spellings still accepted (not shown in help): ``--k`` is ``--crops`` (``--count`` for
``crops``)."""


def renamed_options(args: list[str]) -> list[str]:
    """Old option spellings in ``args`` replaced by their new names (see :data:`RENAMED`).

    >>> renamed_options(["show", "1", "--k", "4"]), renamed_options(["crops", "1", "--k=3"])
    (['show', '1', '--crops', '4'], ['crops', '1', '--count=3'])
    """
    command = next((a for a in args if a in RENAMED and isinstance(RENAMED[a], dict)), None)
    names = RENAMED.get(command, {}) if command else {}
    out = []
    for a in args:
        if a == "--":
            out += args[len(out):]
            break
        name, eq, value = a.partition("=")
        if name in names:
            a = names[name] + eq + value
        out.append(a)
    return out


_RAY_ADDRESS = re.compile(r"^(auto|local|ray://\S+|[A-Za-z0-9_.-]+:\d+)$")


def ray_address(args: list[str]) -> list[str]:
    """``--ray`` takes an optional address: given alone (last, or before an option, a video
    or anything that is not ``auto``, ``local``, ``ray://...`` or ``HOST:PORT``) it means
    ``local``, a Ray cluster on this machine."""
    out = list(args)
    i = 0
    while i < len(out):
        if out[i] == "--":
            break
        if out[i] == "--ray" and (i + 1 == len(out) or not _RAY_ADDRESS.match(out[i + 1])):
            out.insert(i + 1, "local")
        i += 1
    return out


def hoist_global_options(args: list[str], commands: set[str]) -> list[str]:
    """Move global options that follow the command name in front of it."""
    head: list[str] = []
    i = 0
    while i < len(args) and args[i] not in commands:  # options before the command stay
        head.append(args[i])
        i += 1
    if i == len(args):
        return list(args)
    rest, moved = [], []
    tail = args[i:]
    j = 0
    while j < len(tail):
        a = tail[j]
        if a == "--":
            rest += tail[j:]
            break
        name = a.split("=", 1)[0]
        if name in GLOBAL_OPTIONS and j > 0:
            if "=" in a or not GLOBAL_OPTIONS[name]:
                moved.append(a)
                j += 1
            else:
                moved += tail[j:j + 2]
                j += 2
            continue
        rest.append(a)
        j += 1
    return head + moved + rest


class App(typer.Typer):
    """A Typer app whose commands use :class:`Command` (plain, readable help)."""

    def command(self, *args: Any, **kwargs: Any):  # type: ignore[override]
        kwargs.setdefault("cls", Command)
        return super().command(*args, **kwargs)


# ----------------------------------------------------------------- shared options, lookups
VideoOpt = Annotated[Optional[str], typer.Option(
    "--video", help="Video name or id (needed when the project holds several).",
    show_default=False, metavar="NAME")]
IdsArg = Annotated[list[int], typer.Argument(help="Person ids (see `ptrack list persons`).",
                                              show_default=False, metavar="ID")]
OptionalIdsArg = Annotated[Optional[list[int]], typer.Argument(
    help="Only these person ids (default: all).", show_default=False, metavar="ID")]
PersonArg = Annotated[int, typer.Argument(help="Person id.", show_default=False, metavar="ID")]


class NobodyFound(PtrackError):
    """The video was searched and holds no people: an error (exit 1) for a command that needs
    a person, an empty table for a listing."""


def video_flag(store: Any, video: Any) -> str:
    """`` --video NAME`` for hints when the project holds several videos, else ``""``."""
    if len(store.videos()) > 1:
        name = str(video.name)
        return f" --video {name if name.replace('-', '').replace('_', '').isalnum() else repr(name)}"
    return ""


def hint(store: Any, video: Any, *commands: str) -> str:
    """``ptrack group --video v; ptrack rank --video v`` (the flag only when it is needed)."""
    flag = video_flag(store, video)
    return "; ".join(f"ptrack {c}{flag}" for c in commands)


def bring_up_to_date(ctx: typer.Context | None, store: Any, video: Any) -> None:
    """Re-run the stages whose results are stale (after a correction, a new tracking or other
    settings) before a view reads the persons, saying so on stderr.

    Nothing runs while a ``detect --force`` is replacing the video's boxes (the previous persons
    are shown, with a note), on a read-only project (a note says the persons are stale), or when
    the video was never grouped (the caller says what to run).
    """
    from ptrack.cli.output import safe
    from ptrack.persons.stages import ensure_current, stale_reason

    def log(message: str) -> None:
        typer.echo(safe(message), err=True)

    if store.replacing(video.id):
        if store.persons(video.id):  # else require_persons says that detect is running
            log(f"note: the latest `ptrack detect` of {video.name} has not finished (it is "
                f"running, or was interrupted): its boxes are being replaced; showing the "
                f"persons found before")
        return
    if store.stage_state(video.id, "group") == "missing":
        return
    cfg = view_settings(ctx, store)
    if store.read_only:
        for stage in ("track", "group", "rank"):
            why = stale_reason(store, video, stage, cfg)
            if why is not None:
                log(f"note: {stage} results of {video.name} are {why}; the project is read-only, "
                    f"so they are shown as they are")
                return
        return
    ensure_current(store, video, cfg, "rank", log=log)


class Persons(list):
    """A video's person rows, which also know the persons' tracklets: an id printed before a
    merge (a tracklet id of a person now) still names its person."""

    owner_of: Callable[[], dict[int, int]] = staticmethod(lambda: {})


def require_persons(store: Any, video: Any, ctx: typer.Context | None = None) -> list[dict]:
    """The video's persons in rank order (brought up to date first), or a one-line error
    saying what to run first."""
    bring_up_to_date(ctx, store, video)
    persons = Persons(store.persons(video.id))
    if persons:
        persons.owner_of = lambda: {int(t): int(pid) for pid, ts in
                                    store.person_tracklets(video.id).items() for t in ts}
        return persons
    from ptrack.persons.stages import detect_unfinished

    unfinished = detect_unfinished(store, video)
    if unfinished is not None:
        raise PtrackError(unfinished)
    n = store.count_detections(video.id)
    if n == 0 and store.stage_state(video.id, "detect") == "done":
        raise NobodyFound(f"nobody was found in {video.name} (no detections in "
                          f"{video.frame_count} frames)", exit_code=1)
    if n == 0:
        raise PtrackError(f"{video.name} has no detections yet; run `ptrack detect {video.path}`")
    raise PtrackError(f"{video.name} has {n} detections but no persons yet; run "
                      f"`{hint(store, video, 'track', 'group', 'rank')}`")


def stale_notes(store: Any, video: Any) -> list[str]:
    """Warnings when the persons are older than the tracklets or not ranked."""
    notes = []
    group = store.stage_state(video.id, "group")
    rank = store.stage_state(video.id, "rank")
    if group == "stale":
        notes.append(f"note: persons of {video.name} predate the latest tracking; "
                     f"run `{hint(store, video, 'group', 'rank')}`")
    elif rank in ("missing", "stale", "failed") and group == "done":
        notes.append(f"note: persons of {video.name} are not ranked by the latest grouping; "
                     f"run `{hint(store, video, 'rank')}`")
    return notes


def resolve_ids(persons: Sequence[dict], ids: Sequence[int]) -> list[dict]:
    """The person rows for ``ids`` in the order given; exit 2 naming the available ids."""
    by_id = {int(p["id"]): p for p in persons}
    unknown = [i for i in ids if int(i) not in by_id]
    if unknown and isinstance(persons, Persons):  # ids of persons merged into others
        owner = persons.owner_of()
        moved = {int(i): owner[int(i)] for i in unknown if owner.get(int(i)) in by_id}
        from ptrack.cli.output import say

        for old, new in moved.items():
            say(f"note: P{old} was merged into P{new} (person ids are their smallest "
                f"tracklet id); using P{new}", err=True)
        ids = [moved.get(int(i), i) for i in ids]
        unknown = [i for i in ids if int(i) not in by_id]
    if unknown:
        listing_text = ", ".join(f"{p['id']} ({p['n_frames']} frames)" for p in persons[:40])
        more = f", ... {len(persons) - 40} more (ptrack list persons)" if len(persons) > 40 else ""
        word = "person" if len(unknown) == 1 else "persons"
        raise PtrackError(f"unknown {word} {', '.join(map(str, unknown))}; available: "
                          f"{listing_text}{more}", exit_code=2)
    seen: list[dict] = []
    for i in ids:
        if by_id[int(i)] not in seen:
            seen.append(by_id[int(i)])
    return seen


def ids_text(ids: Iterable[Any]) -> str:
    """``1, 3, 4``."""
    return ", ".join(str(i) for i in ids)


def fmt_time(seconds: float | None, fps: float = 1.0) -> str:
    """``m:ss.s`` for a time (``frame / fps``), ``-`` when unknown."""
    from ptrack.views.terminal import fmt_time as _fmt

    return _fmt(seconds / fps) if seconds is not None and fps else "-"


def fmtspec(spec: str) -> Callable[[Any], str]:
    """A formatter for :class:`~ptrack.cli.output.Column` that shows ``-`` for missing."""
    return lambda v: "-" if v is None else format(v, spec)
