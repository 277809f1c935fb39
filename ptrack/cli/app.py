"""The Typer application and its global options."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ptrack import __version__
from ptrack.cli import (choose_cmd, combine_cmd, config_cmd, detect_cmd, integrity_cmd, list_cmd,
                        persons_cmd, pose_cmd, rm_cmd, run_cmd, suggest_cmd, views_cmd)
from ptrack.cli.common import App, Group, State

app = App(
    name="ptrack",
    cls=Group,
    help="Find the people in a video, follow them, join their broken tracks into whole persons, "
         "and pick one for downstream work.",
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ptrack {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    ctx: typer.Context,
    project: Annotated[Optional[Path], typer.Option(
        "--project", "-p", envvar="PTRACK_PROJECT", show_default=False,
        help="Project directory (created on first use); also accepted after the command. "
             "[default: ./ptrack-project]")] = None,
    config: Annotated[Optional[Path], typer.Option(
        "--config", "-c", show_default=False,
        help="YAML file overlaying the default settings (see `ptrack config show`); also "
             "accepted after the command. [default: none, the built-in settings]")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """Global options."""
    from ptrack.store import project_dir

    ctx.obj = State(project=project_dir(project), config=config)


@app.command("help")
def help_(
    ctx: typer.Context,
    command: Annotated[Optional[list[str]], typer.Argument(
        help="A command, e.g. `list persons`.", show_default=False, metavar="COMMAND")] = None,
) -> None:
    """Show the help of a command (the same as `ptrack COMMAND --help`).

    Example: ptrack help list persons
    """
    from ptrack.cli.common import fail

    root = ctx.find_root()
    cmd, here = root.command, root
    for name in command or []:
        sub = cmd.get_command(here, name) if hasattr(cmd, "get_command") else None
        if sub is None:
            fail(f"unknown command '{' '.join(command or [])}'; `ptrack --help` lists them", 2)
        here = type(ctx)(sub, info_name=name, parent=here)
        cmd = sub
    typer.echo(cmd.get_help(here))


run_cmd.register(app)
detect_cmd.register(app)
persons_cmd.register(app)
list_cmd.register(app)
views_cmd.register(app)
choose_cmd.register(app)
suggest_cmd.register(app)
pose_cmd.register(app)
integrity_cmd.register(app)
rm_cmd.register(app)
config_cmd.register(app)
combine_cmd.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
