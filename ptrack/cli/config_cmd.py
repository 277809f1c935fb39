"""``ptrack config show``: the settings in effect, or those a past run used, as YAML."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ptrack.cli.common import App, handles_errors, open_store, settings, state
from ptrack.cli.output import say
from ptrack.errors import PtrackError


def _yaml(data: dict) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


def register(app: typer.Typer) -> None:
    """Add the ``config`` group to ``app``."""
    config_app = App(help="The settings ptrack uses.", no_args_is_help=True)
    app.add_typer(config_app, name="config")

    @config_app.command("show")
    @handles_errors
    def show(
        ctx: typer.Context,
        run: Annotated[Optional[int], typer.Option(
            "--run", min=1, show_default=False,
            help="Show the settings that run ID used (run ids: `ptrack list runs`).")] = None,
    ) -> None:
        """Print the effective settings (defaults + --config) as YAML, or a past run's.

        The output is a valid --config file.

        Example: ptrack config show > my.yaml; ptrack --config my.yaml config show
        """
        if run is None:
            cfg = settings(ctx)
            source = state(ctx).config
            say(f"# effective settings: defaults"
                       f"{' + ' + str(source) if source else ''}")
            say(_yaml(dict(cfg)).rstrip())
            return
        with open_store(ctx) as store:
            r = store.run(run)
            name = next((v.name for v in store.videos() if v.id == r.video_id), r.video_id)
        if not isinstance(r.settings, dict):
            raise PtrackError(f"run {run} has no recorded settings")
        say(f"# run {r.id}: {r.stage} of {name} ({r.status})")
        say(_yaml({r.stage: r.settings}).rstrip())
