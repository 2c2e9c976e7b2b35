"""Operators' commands: the instance, its users and data sets, and checking a folder locally."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from leadersboard.dataset_layouts import LAYOUTS
from leadersboard.datasets import SCORINGS
from leadersboard.folders import LocalFolder
from leadersboard.model_cache import ModelCacheError
from leadersboard.model_cache import inspect as inspect_cache
from leadersboard.names import InvalidName
from leadersboard.rules import check_folder
from leadersboard.users import UserError, UserStore

from . import instance
from .common import home_option, load_instance, load_settings


@click.command()
@home_option
def init(home: Path | None) -> None:
    """Create an instance (config file, database, bare repository with hooks); safe to run again."""
    settings = load_settings(home)
    try:
        created = instance.init(settings)
    except instance.InstanceError as exc:
        raise click.ClickException(str(exc)) from exc
    for path in created:
        click.echo(f"created {path}")
    click.echo(f"LeadersBoard instance ready at {settings.home}" + ("" if created else " (nothing to change)"))


@click.group()
def user() -> None:
    """Manage participants and their API tokens."""


@user.command("add")
@click.argument("name")
@click.option("--admin", is_flag=True,
              help="An organiser: reads every job, branch and artifact (and, like everyone, writes no result).")
@home_option
def user_add(name: str, admin: bool, home: Path | None) -> None:
    """Create user NAME; prints the new token (shown once) as the last line."""
    store = UserStore(load_instance(home).db_path)
    try:
        token = store.add(name, admin=admin)
    except (UserError, InvalidName) as exc:
        raise click.ClickException(str(exc)) from exc
    role = "admin" if admin else "user"
    click.echo(f"created {role} {name}; keep this token, it is not shown again:", err=True)
    click.echo(token)


@user.command("token")
@click.argument("name")
@home_option
def user_token(name: str, home: Path | None) -> None:
    """Issue another token for NAME (printed as the last line)."""
    try:
        token = UserStore(load_instance(home).db_path).new_token(name)
    except UserError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(token)


@user.command("list")
@home_option
def user_list(home: Path | None) -> None:
    """List users with their role, state and number of active tokens."""
    for entry in UserStore(load_instance(home).db_path).list():
        since = datetime.fromtimestamp(entry.created_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        state = "revoked" if entry.revoked_at else "active"
        click.echo(f"{entry.name}\t{entry.role}\t{state}\ttokens={entry.active_tokens}\tcreated {since}")


@user.command("revoke")
@click.argument("name")
@home_option
def user_revoke(name: str, home: Path | None) -> None:
    """Revoke NAME and all their tokens, effective immediately."""
    try:
        UserStore(load_instance(home).db_path).revoke(name)
    except UserError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"revoked {name}")


@click.group()
def dataset() -> None:
    """Register data set folders, list them, show one, remove one."""


@dataset.command("add")
@click.argument("name")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--layout", type=click.Choice(["auto", *LAYOUTS]), default="auto", show_default=True,
              help="How the folder is laid out (auto: the first layout that finds a category).")
@click.option("--scoring", type=click.Choice(SCORINGS), default="self_reported", show_default=True,
              help="self_reported: the metrics the code logs; verified: the platform scores predictions on "
                   "labels the job never sees.")
@home_option
def dataset_add(name: str, path: Path, layout: str, scoring: str, home: Path | None) -> None:
    """Register data set NAME at PATH (a folder holding its categories, e.g. pcb1/...), or again after a change."""
    try:
        updated = instance.add_dataset(load_instance(home), name, path, layout, scoring)
    except (instance.InstanceError, InvalidName) as exc:
        raise click.ClickException(str(exc)) from exc
    entry = updated.datasets[name]
    click.echo(f"data set {name} -> {entry.path}: {entry.layout} layout, {len(entry.categories)} categories "
               f"({', '.join(entry.categories)}), {entry.scoring}, version {entry.version[:19]}")


@dataset.command("list")
@home_option
def dataset_list(home: Path | None) -> None:
    """One line per data set: name, scoring, layout, categories, path."""
    for name, entry in sorted(load_instance(home).current_datasets().items()):
        categories = ",".join(entry.categories) or "?"
        click.echo(f"{name}\t{entry.scoring}\t{entry.layout or '?'}\t{categories}\t{entry.path}")


@dataset.command("show")
@click.argument("name")
@home_option
def dataset_show(name: str, home: Path | None) -> None:
    """Everything recorded about data set NAME."""
    entry = load_instance(home).current_datasets().get(name)
    if entry is None:
        raise click.ClickException(f"No data set {name!r}; see 'leadersboard dataset list'.")
    for key, value in entry.to_config().items():
        click.echo(f"{key}: {', '.join(value) if isinstance(value, list) else value}")


@dataset.command("remove")
@click.argument("name")
@home_option
def dataset_remove(name: str, home: Path | None) -> None:
    """Forget data set NAME (its folder is left as it is); pushes naming it are refused from then on."""
    try:
        instance.remove_dataset(load_instance(home), name)
    except instance.InstanceError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"removed data set {name}")


@click.group()
def weights() -> None:
    """The model cache: pretrained weights every job reads offline (pre_trained: true)."""


@weights.command("add")
@click.argument("path", type=click.Path(path_type=Path))
@home_option
def weights_add(path: Path, home: Path | None) -> None:
    """Give every job the model cache PATH, read-only (torch/hub/checkpoints, huggingface/hub inside)."""
    try:
        updated = instance.set_model_cache(load_instance(home), path)
    except instance.InstanceError as exc:
        raise click.ClickException(str(exc)) from exc
    contents = inspect_cache(Path(updated.runner.model_cache))
    click.echo(f"model cache {updated.runner.model_cache}: {contents.summary()}")


@weights.command("show")
@home_option
def weights_show(home: Path | None) -> None:
    """The model cache jobs get, and what it holds."""
    folder = load_instance(home).current_model_cache()
    if folder is None:
        click.echo("no model cache: jobs cannot load pretrained weights (see 'leadersboard weights add')")
        return
    try:
        click.echo(f"{folder}: {inspect_cache(folder).summary()}")
    except ModelCacheError as exc:
        raise click.ClickException(str(exc)) from exc


@weights.command("remove")
@home_option
def weights_remove(home: Path | None) -> None:
    """Stop giving jobs the model cache (its files are left as they are)."""
    instance.set_model_cache(load_instance(home), None)
    click.echo("jobs get no model cache from now on")


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@home_option
def validate(path: Path, home: Path | None) -> None:
    """Check the submission folder PATH against the push rules (exit 1 when it breaks one)."""
    settings = load_settings(home)
    report = check_folder(LocalFolder(path), settings.datasets, settings.limits)
    if report.problems:
        for problem in report.problems:
            click.echo(str(problem), err=True)
        sys.exit(1)
    assert report.spec is not None
    click.echo(f"OK: {report.spec.folder} would be evaluated on {report.spec.benchmark} "
               f"(entrypoint {report.spec.entrypoint}, config {report.spec.config_file})")


@click.command("backup")
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@home_option
def backup_command(dest: Path, home: Path | None) -> None:
    """Copy the instance into the new folder DEST, consistently, while it may be running.

    DEST gets the config file, the instance's database and MLflow's (SQLite's online backup), MLflow's
    artifacts, the bare repository as a git bundle, the published site, and a manifest of every file's
    digest. Redis is not copied: after a restore the jobs are queued again from MLflow. Data set folders
    and the model cache live outside the instance: back them up where they are.
    """
    from .backup import BackupError, backup

    try:
        report = backup(load_instance(home), dest)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    for part, what in report.parts.items():
        click.echo(f"{part}: {what}")
    click.echo(f"backed up into {report.folder}: {report.files} files, {report.size_bytes / 1e6:.1f} MB "
               f"in {report.seconds:.1f} s")


@click.command("restore")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@home_option
def restore_command(src: Path, home: Path | None) -> None:
    """Make the instance --home (absent or an empty folder) from the backup folder SRC.

    Every file is checked against the backup's manifest first; a damaged backup restores nothing. The
    repository gets this version's settings and hooks, as `init` makes them.
    """
    from .backup import BackupError, restore

    target = load_settings(home).home
    try:
        report = restore(src, target)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    for part, what in report.parts.items():
        click.echo(f"{part}: {what}")
    click.echo(f"restored {report.folder} from {src}: {report.files} files checked in {report.seconds:.1f} s; "
               "start it with 'leadersboard serve'")


COMMANDS = (init, user, dataset, weights, validate, backup_command, restore_command)
