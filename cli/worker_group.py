"""`leadersboard worker --gpus 0,1,...`: a worker process per GPU, kept alive, stopped together.

Each runs `leadersboard worker --gpu N` (one job at a time on its own device); the server's URL and
the worker token reach them through the environment, never their command lines."""

from __future__ import annotations

import re
import signal
import threading
from functools import partial

import click

from leadersboard.settings import Settings

from .serve import WorkerProcess
from .supervisor import Supervisor

GPU = r"^[0-9]+$|^GPU-[0-9a-fA-F-]+$"  # an index, or a UUID as nvidia-smi -L prints it


def split_gpus(text: str) -> list[str]:
    devices = [part.strip() for part in text.split(",") if part.strip()]
    bad = [d for d in devices if not re.match(GPU, d)]
    if not devices or bad:
        raise click.ClickException(f"--gpus takes GPU indexes or UUIDs separated by commas (0,1,2,3), not {text!r}")
    if len(set(devices)) < len(devices):
        raise click.ClickException(f"--gpus names a GPU twice: {text!r}")
    return devices


def run_group(settings: Settings, devices: list[str], server: str | None, token: str | None,
              classes: tuple[str, ...] = ()) -> None:
    """Run until SIGTERM or Ctrl-C; then each worker gets its grace period, all at the same time."""
    env: dict[str, str] = {"LEADERSBOARD_SERVER": server, "LEADERSBOARD_WORKER_TOKEN": token} \
        if server and token else {}
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    supervisor = Supervisor()
    try:
        options = [arg for name in classes for arg in ("--resource-class", name)]
        supervisor.keep_together([(f"worker gpu {device}", partial(WorkerProcess.spawn, settings, device, env, options))
                                  for device in devices])
        click.echo(f"{len(devices)} workers, one per GPU ({', '.join(devices)}); Ctrl-C stops them")
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        supervisor.stop()
        signal.signal(signal.SIGTERM, previous)
