"""Commands that run the platform or build its parts: serve, worker, site, image, demo.

Components are imported inside each command: `leadersboard user add` should not pay for MLflow.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import click

from leadersboard.settings import EXECUTORS, Settings

from .common import home_option, load_instance, load_settings


@click.command()
@home_option
@click.option("--api-port", type=int, help="Port of the API and git server (default 8010).")
@click.option("--web-port", type=int, help="Port of the web form (default 8501).")
@click.option("--mlflow-port", type=int,
              help="Port of the read-only MLflow gateway participants use (default 5010); the tracking server "
                   "itself listens on 127.0.0.1 only.")
@click.option("--host", help="Address the three ports listen on (default 127.0.0.1; 0.0.0.0: every interface).")
@click.option("--workers", type=click.IntRange(min=0), default=1, show_default=True,
              help="Worker processes to run here (one per GPU).")
@click.option("--executor", type=click.Choice(EXECUTORS),
              help="How workers run submissions (default: runner.executor).")
def serve(home: Path | None, api_port: int | None, web_port: int | None, mlflow_port: int | None, host: str | None,
          workers: int, executor: str | None) -> None:
    """Run the platform: Redis and MLflow (unless configured), workers, API and git, web form, MLflow gateway."""
    from .serve import ServeError
    from .serve import serve as run

    settings = load_instance(home).with_overrides(api_port=api_port, web_port=web_port, api_host=host,
                                                  mlflow_port=mlflow_port)
    ports = {"API": settings.api_port, "web form": settings.web_port, "MLflow gateway": settings.mlflow_port}
    if len(set(ports.values())) < len(ports):
        raise click.ClickException("The API, the web form and the MLflow gateway need a port each, not "
                                   + ", ".join(f"{name} {port}" for name, port in ports.items()) + ".")
    if executor:
        os.environ["LEADERSBOARD_EXECUTOR"] = executor  # for the workers it starts
        settings = replace(settings, runner=replace(settings.runner, executor=executor))
    if workers:
        click.echo(_sandbox_line(settings))
    try:
        run(settings, workers=workers)
    except ServeError as exc:
        raise click.ClickException(str(exc)) from exc


def _sandbox_line(settings: Settings) -> str:
    """Say once, before anything starts, how the workers here confine jobs, or why they cannot run."""
    from leadersboard.runner.sandbox import CONFINED
    from leadersboard.runner.worker import make_executor

    try:
        executor = make_executor(settings)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    confinement = executor.confinement
    warning = "" if confinement.level == CONFINED else "WARNING: "
    return f"{warning}{executor.name} executor: jobs run {confinement}"


@click.command()
@home_option
@click.option("--server", envvar="LEADERSBOARD_SERVER",
              help="The server's URL (http[s]://HOST:8010): join it with a worker token, sharing no files with it.")
@click.option("--token", envvar="LEADERSBOARD_WORKER_TOKEN",
              help="The worker token ('leadersboard worker-token add NAME' on the server); better given in "
                   "LEADERSBOARD_WORKER_TOKEN than here, where every user of the host can read it.")
@click.option("--gpus", help="GPUs to run jobs on, one job on each at a time: 0,1,2,3 (a worker process per GPU).")
@click.option("--gpu", help="The one GPU this worker owns (CUDA_VISIBLE_DEVICES for its jobs).")
@click.option("--resource-class", "classes", multiple=True,
              help="Take only jobs of this resource class (repeat for several; default: every class).")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@click.option("--executor", type=click.Choice(EXECUTORS), help="How it runs submissions (default: runner.executor).")
def worker(home: Path | None, server: str | None, token: str | None, gpus: str | None, gpu: str | None,
           classes: tuple[str, ...], burst: bool, executor: str | None) -> None:
    """Run a worker: on the server's host, or on another one that joins by --server and a worker token."""
    from leadersboard.runner.remote import JoinError, join
    from leadersboard.runner.worker import build_worker

    from .worker_group import run_group, split_gpus

    settings = load_instance(home)
    if executor:
        os.environ["LEADERSBOARD_EXECUTOR"] = executor  # for the workers of a group
        settings = replace(settings, runner=replace(settings.runner, executor=executor))
    if bool(server) != bool(token):
        raise click.ClickException("--server and a worker token go together (--token or LEADERSBOARD_WORKER_TOKEN)")
    devices = split_gpus(gpus) if gpus else ([gpu] if gpu else [])
    if len(devices) > 1:
        run_group(settings, devices, server, token, classes)
        return
    try:
        joined = join(server, token) if server and token else None
        built = build_worker(settings, gpu=devices[0] if devices else None, burst=burst, joined=joined,
                             classes=frozenset(classes) or None)
    except (JoinError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    built.run()


@click.group()
def site() -> None:
    """The static leaderboard."""


@site.command("build")
@home_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Where to publish (default: HOME/site).")
def site_build(home: Path | None, out: Path | None) -> None:
    """Build the leaderboard from the finished jobs in MLflow (needs MLFLOW_TRACKING_URI or the config's)."""
    from leadersboard.site_generator import build_site

    settings = load_instance(home)
    if not settings.mlflow_tracking_uri:
        raise click.ClickException("No MLflow to read: set MLFLOW_TRACKING_URI (or server.mlflow_tracking_uri).")
    target = out or settings.site_dir
    report = build_site(settings.mlflow_tracking_uri, settings.db_path, target,
                        None if out else settings.site_cache_path)
    click.echo(f"built {target}: {report.ranked} ranked rows on {report.benchmarks} benchmark(s) from "
               f"{report.entries} completed jobs in {report.seconds:.2f} s")


@click.group()
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

    settings = load_settings(home)
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


@click.command()
def demo() -> None:
    """Run the whole flow once on a throw-away instance with generated data and the example model."""
    from .demo import DemoError, run_demo

    try:
        home = run_demo(click.echo)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"demo instance kept at {home}")


COMMANDS = (serve, worker, site, image, demo)
