"""What every command shares: the `--home` option and loading the instance's settings."""

from __future__ import annotations

from pathlib import Path

import click

from leadersboard.settings import Settings, SettingsError

from . import instance

home_option = click.option("--home", type=click.Path(file_okay=False, path_type=Path), envvar="LEADERSBOARD_HOME",
                           help="Instance folder (default: $LEADERSBOARD_HOME, else ~/.leadersboard).")


def load_settings(home: Path | None) -> Settings:
    try:
        return Settings.load(home)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


def load_instance(home: Path | None) -> Settings:
    """The settings of an existing instance (a sentence saying how to make one, when there is none)."""
    settings = load_settings(home)
    try:
        instance.require(settings)
    except instance.InstanceError as exc:
        raise click.ClickException(str(exc)) from exc
    return settings
