"""The `leadersboard` command group: operators' commands (`admin`, `status`, `worker_tokens`) and the
platform's (`platform`)."""

from __future__ import annotations

import logging
import os

import click

from . import admin, platform, status, worker_tokens

QUIET_MLFLOW = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
                "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}


@click.group()
@click.version_option(package_name="leadersboard")
def main() -> None:
    """LeadersBoard: git push an anomaly-detection model, get it evaluated, see it ranked."""
    for name, value in QUIET_MLFLOW.items():  # for us and every process we start
        os.environ.setdefault(name, value)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request: MLflow is checked every second


for command in (*admin.COMMANDS, *platform.COMMANDS, status.status, worker_tokens.worker_token):
    main.add_command(command)
