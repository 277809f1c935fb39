"""``ptrack config``: the project's settings (show, set, unset, reset), or those a past run used.

A project keeps its own settings: the settings a stage command (``detect``, ``track``,
``group``, ``rank``, ``run``) ran with, flags and ``--config`` included, become the project's,
and every later command uses them without ``--config``. ``config set`` changes them directly.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ptrack.cli.common import App, handles_errors, open_store, project_overlay, settings, state
from ptrack.cli.output import say
from ptrack.errors import PtrackError


def _yaml(data: dict) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


def _marked(text: str, keys: set[str], note: str) -> str:
    """YAML text with ``# note`` after the lines of ``keys`` (``section.key``)."""
    out, section = [], ""
    for line in text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            section = line[:-1]
        elif line.startswith("  ") and ":" in line:
            key = line.strip().split(":", 1)[0]
            if f"{section}.{key}" in keys:
                line += f"  # {note}"
        out.append(line)
    return "\n".join(out)


def _writable_store(ctx: typer.Context, create: bool = False):
    store = open_store(ctx, create=create)
    try:
        store.require_writable()
    except BaseException:
        store.close()
        raise
    return store


def register(app: typer.Typer) -> None:
    """Add the ``config`` group to ``app``."""
    config_app = App(help="The project's settings: show, set, unset, reset.", no_args_is_help=True)
    app.add_typer(config_app, name="config")

    @config_app.command("show")
    @handles_errors
    def show(
        ctx: typer.Context,
        run: Annotated[Optional[int], typer.Option(
            "--run", min=1, show_default=False,
            help="Show the settings that run ID used (run ids: `ptrack list runs`).")] = None,
    ) -> None:
        """Print the project's settings (defaults + the project's own + --config) as YAML, or
        a past run's.

        Keys the project sets are marked `# project`. The output is a valid --config file.

        Example: ptrack config show > my.yaml; ptrack --config my.yaml config show
        """
        from ptrack.settings import flat, load_defaults

        if run is None:
            cfg = settings(ctx)
            own = set(flat(project_overlay(ctx)))
            source = state(ctx).config
            say(f"# effective settings: defaults"
                f"{' + the project (' + str(len(own)) + ' keys, marked)' if own else ''}"
                f"{' + ' + str(source) if source else ''}")
            say(_marked(_yaml(dict(cfg)).rstrip(), own, "project"))
            return
        with open_store(ctx) as store:
            r = store.run(run)
            name = next((v.name for v in store.videos() if v.id == r.video_id), r.video_id)
        if not isinstance(r.settings, dict):
            raise PtrackError(f"run {run} has no recorded settings")
        known = load_defaults()
        # a detect run stores its sections (detect, crops) with facts that are not settings
        # (the model's digest); a stage run its own section
        sections = r.settings if r.stage == "detect" else {r.stage: r.settings}
        doc, facts = {}, {}
        for section, values in sections.items():
            if section not in known or not isinstance(values, dict):
                facts[section] = values
                continue
            for k, v in values.items():
                if k in known[section]:
                    doc.setdefault(section, {})[k] = v
                else:
                    facts[f"{section}.{k}"] = v
        say(f"# run {r.id}: {r.stage} of {name} ({r.status})")
        for key, value in facts.items():
            say(f"# {key}: {value} (recorded with the run, not a setting)")
        say(_yaml(doc).rstrip())

    @config_app.command("set")
    @handles_errors
    def set_(
        ctx: typer.Context,
        key: Annotated[str, typer.Argument(help="SECTION.KEY, e.g. group.pos_tol (see `ptrack config show`).",
                                           show_default=False)],
        value: Annotated[str, typer.Argument(help="The new value.", show_default=False)],
    ) -> None:
        """Change one of the project's settings; later commands use it (views re-run the
        stages it affects, saying so).

        Example: ptrack config set group.pos_tol 0.2
        """
        from ptrack.settings import (NOT_KEPT, differences, overlay, parse_value, project_config,
                                     split_key)

        section, name = split_key(key)
        if (section, name) in NOT_KEPT:
            raise PtrackError(f"{key} is not kept as a project setting (it decides no result); "
                              f"give it to the command (--{name.replace('_', '-')})", exit_code=2)
        parsed = parse_value(key, value)
        with _writable_store(ctx, create=True) as store:  # settings may come before the videos
            current = project_overlay(None, store)
            try:
                cfg = overlay(project_config(current), {section: {name: parsed}})
                new = differences(project_config(differences(cfg)))
            except PtrackError as exc:
                raise PtrackError(exc.message.replace(f"config key '{key}'", key), exit_code=2) \
                    from None
            store.set_project_settings(new)
        say(f"project setting {key} = {parsed!r}"
            + (" (the default)" if section not in new or name not in new[section] else ""))

    @config_app.command("unset")
    @handles_errors
    def unset(
        ctx: typer.Context,
        keys: Annotated[list[str], typer.Argument(help="SECTION.KEY ...", show_default=False,
                                                  metavar="KEY")],
    ) -> None:
        """Return project settings to their defaults.

        Example: ptrack config unset group.pos_tol
        """
        from ptrack.settings import default_value, split_key

        parts = [split_key(k) for k in keys]
        with _writable_store(ctx) as store:
            current = project_overlay(None, store)
            for section, name in parts:
                current.get(section, {}).pop(name, None)
            store.set_project_settings({s: v for s, v in current.items() if v})
        for (section, name), key in zip(parts, keys):
            say(f"project setting {key} = {default_value(section, name)!r} (the default)")

    @config_app.command("reset")
    @handles_errors
    def reset(ctx: typer.Context) -> None:
        """Return every project setting to the defaults.

        Example: ptrack config reset
        """
        from ptrack.settings import flat

        with _writable_store(ctx) as store:
            had = flat(project_overlay(None, store))
            store.set_project_settings({})
        say(f"project settings reset to the defaults ({len(had)} keys were set"
            + (f": {', '.join(sorted(had))})" if had else ")"))
