"""The `leadersboard` command line."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import click

from . import instance
from .folders import LocalFolder
from .names import InvalidName
from .rules import check_folder
from .settings import EXECUTORS, Settings, SettingsError
from .users import UserError, UserStore

QUIET_MLFLOW = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
                "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}

home_option = click.option("--home", type=click.Path(file_okay=False, path_type=Path), envvar="LEADERSBOARD_HOME",
                           help="Instance folder (default: $LEADERSBOARD_HOME, else ~/.leadersboard).")


def _settings(home: Path | None) -> Settings:
    try:
        return Settings.load(home)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


def _instance(home: Path | None) -> Settings:
    settings = _settings(home)
    try:
        instance.require(settings)
    except instance.InstanceError as exc:
        raise click.ClickException(str(exc)) from exc
    return settings


@click.group()
@click.version_option(package_name="leadersboard")
def main() -> None:
    """LeadersBoard: git push an anomaly-detection model, get it evaluated, see it ranked."""
    for name, value in QUIET_MLFLOW.items():  # for us and every process we start
        os.environ.setdefault(name, value)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@main.command()
@home_option
def init(home: Path | None) -> None:
    """Create an instance (config file, database, bare repository with hooks); safe to run again."""
    settings = _settings(home)
    try:
        created = instance.init(settings)
    except instance.InstanceError as exc:
        raise click.ClickException(str(exc)) from exc
    for path in created:
        click.echo(f"created {path}")
    click.echo(f"LeadersBoard instance ready at {settings.home}" + ("" if created else " (nothing to change)"))


@main.group()
def user() -> None:
    """Manage participants and their API tokens."""


@user.command("add")
@click.argument("name")
@home_option
def user_add(name: str, home: Path | None) -> None:
    """Create user NAME; prints the new token (shown once) as the last line."""
    store = UserStore(_instance(home).db_path)
    try:
        token = store.add(name)
    except (UserError, InvalidName) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"created user {name}; keep this token, it is not shown again:", err=True)
    click.echo(token)


@user.command("token")
@click.argument("name")
@home_option
def user_token(name: str, home: Path | None) -> None:
    """Issue another token for NAME (printed as the last line)."""
    try:
        token = UserStore(_instance(home).db_path).new_token(name)
    except UserError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(token)


@user.command("list")
@home_option
def user_list(home: Path | None) -> None:
    """List users with their state and number of active tokens."""
    for entry in UserStore(_instance(home).db_path).list():
        since = datetime.fromtimestamp(entry.created_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        state = "revoked" if entry.revoked_at else "active"
        click.echo(f"{entry.name}\t{state}\ttokens={entry.active_tokens}\tcreated {since}")


@user.command("revoke")
@click.argument("name")
@home_option
def user_revoke(name: str, home: Path | None) -> None:
    """Revoke NAME and all their tokens, effective immediately."""
    try:
        UserStore(_instance(home).db_path).revoke(name)
    except UserError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"revoked {name}")


@main.group()
def dataset() -> None:
    """Register data set folders."""


@dataset.command("add")
@click.argument("name")
@click.argument("path", type=click.Path(path_type=Path))
@home_option
def dataset_add(name: str, path: Path, home: Path | None) -> None:
    """Register data set NAME at PATH (a folder holding its categories, e.g. pcb1/...)."""
    try:
        updated = instance.add_dataset(_instance(home), name, path)
    except (instance.InstanceError, InvalidName) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"data set {name} -> {updated.datasets[name]}")


@main.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@home_option
def validate(path: Path, home: Path | None) -> None:
    """Check the submission folder PATH against the push rules (exit 1 when it breaks one)."""
    settings = _settings(home)
    report = check_folder(LocalFolder(path), settings.datasets, settings.limits)
    if report.problems:
        for problem in report.problems:
            click.echo(str(problem), err=True)
        sys.exit(1)
    assert report.spec is not None
    click.echo(f"OK: {report.spec.folder} would be evaluated on {report.spec.benchmark} "
               f"(entrypoint {report.spec.entrypoint}, config {report.spec.config_file})")


@main.command()
@home_option
@click.option("--api-port", type=int, help="Port of the API and git server (default 8010).")
@click.option("--web-port", type=int, help="Port of the web form (default 8501).")
@click.option("--mlflow-port", type=int, help="Port of the MLflow server it starts (default 5010).")
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--workers", type=click.IntRange(min=0), default=1, show_default=True,
              help="Worker processes to run here (one per GPU).")
@click.option("--executor", type=click.Choice(EXECUTORS),
              help="How workers run submissions (default: runner.executor).")
def serve(home: Path | None, api_port: int | None, web_port: int | None, mlflow_port: int | None, host: str | None,
          workers: int, executor: str | None) -> None:
    """Run the platform: Redis and MLflow (unless configured), workers, API and git over HTTP, web form."""
    from leadersboard.webhook.serve import ServeError
    from leadersboard.webhook.serve import serve as run

    settings = _instance(home).with_overrides(api_port=api_port, web_port=web_port, api_host=host,
                                              mlflow_port=mlflow_port)
    if settings.web_port == settings.api_port:
        raise click.ClickException(f"The web form needs a port of its own, not the API's ({settings.api_port}).")
    if executor:
        os.environ["LEADERSBOARD_EXECUTOR"] = executor  # for the workers it starts
        settings = replace(settings, runner=replace(settings.runner, executor=executor))
    if workers and settings.runner.executor == "docker":
        _check_docker(settings)
    try:
        run(settings, workers=workers)
    except ServeError as exc:
        raise click.ClickException(str(exc)) from exc


def _check_docker(settings: Settings) -> None:
    """Say it once, before anything starts, when the docker executor cannot work here."""
    from leadersboard.runner.docker_executor import DockerExecutor, DockerUnavailable

    try:
        DockerExecutor.from_settings(settings)
    except DockerUnavailable as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@home_option
@click.option("--gpu", help="The GPU this worker owns (CUDA_VISIBLE_DEVICES for its jobs).")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@click.option("--executor", type=click.Choice(EXECUTORS), help="How it runs submissions (default: runner.executor).")
def worker(home: Path | None, gpu: str | None, burst: bool, executor: str | None) -> None:
    """Run one worker (one per GPU; any number of hosts sharing Redis and MLflow)."""
    from leadersboard.runner.worker import build_worker

    settings = _instance(home)
    if executor:
        settings = replace(settings, runner=replace(settings.runner, executor=executor))
    try:
        built = build_worker(settings, gpu=gpu, burst=burst)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    built.run()


@main.group()
def site() -> None:
    """The static leaderboard."""


@site.command("build")
@home_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Where to publish (default: HOME/site).")
def site_build(home: Path | None, out: Path | None) -> None:
    """Build the leaderboard from the finished jobs in MLflow (needs MLFLOW_TRACKING_URI or the config's)."""
    from leadersboard.site_generator import build_site

    settings = _settings(home)
    if not settings.mlflow_tracking_uri:
        raise click.ClickException("No MLflow to read: set MLFLOW_TRACKING_URI (or server.mlflow_tracking_uri).")
    target = out or settings.site_dir
    report = build_site(settings.mlflow_tracking_uri, target, None if out else settings.site_cache_path)
    click.echo(f"built {target}: {report.ranked} ranked rows on {report.benchmarks} benchmark(s) from "
               f"{report.entries} completed jobs in {report.seconds:.2f} s")


@main.group()
def image() -> None:
    """The sandbox image the docker executor runs jobs in."""


@image.command("build")
@home_option
@click.option("--name", help="Image name (default: runner.docker_image).")
@click.option("--with-anomalib", is_flag=True,
              help="Add torch, torchvision and anomalib (the versions of the platform's anomalib extra).")
@click.option("--rebuild", is_flag=True, help="Build even if an image of the same recipe exists.")
def image_build(home: Path | None, name: str | None, with_anomalib: bool, rebuild: bool) -> None:
    """Build the image from this machine's apt mirror and the platform's own pip (as root; no registry)."""
    from leadersboard.runner.image import ImageError, build_image, recipe

    settings = _settings(home)
    try:
        spec = recipe(name or settings.runner.docker_image, settings.runner.sandbox_uid, with_anomalib)
        report = build_image(spec, rebuild=rebuild, say=click.echo)
    except ImageError as exc:
        raise click.ClickException(str(exc)) from exc
    size = f"{report.size_bytes / 1e9:.2f} GB"
    if report.built:
        click.echo(f"built {report.name} ({size}) in {report.seconds:.0f} s")
    else:
        click.echo(f"{report.name} is up to date ({size}); --rebuild builds it again")


@main.command()
def demo() -> None:
    """Run the whole flow once on a throw-away instance with generated data and the example model."""
    from .demo import DemoError, run_demo

    try:
        home = run_demo(click.echo)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"demo instance kept at {home}")


if __name__ == "__main__":
    main()
