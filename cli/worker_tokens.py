"""`leadersboard worker-token`: tokens that let a worker host on another machine join this server."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from leadersboard.names import InvalidName
from leadersboard.worker_tokens import WorkerTokenError, WorkerTokenStore

from .common import home_option, load_instance


@click.group("worker-token")
def worker_token() -> None:
    """Tokens for worker hosts (`leadersboard worker --server URL --token T` on a GPU machine)."""


@worker_token.command("add")
@click.argument("name")
@home_option
def worker_token_add(name: str, home: Path | None) -> None:
    """A token for worker host NAME, printed (once) as the last line."""
    try:
        token = WorkerTokenStore(load_instance(home).db_path).add(name)
    except (WorkerTokenError, InvalidName) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"created worker token {name}: it reads every submission's code and writes job results; "
               "keep it on that host, it is not shown again:", err=True)
    click.echo(token)


@worker_token.command("list")
@home_option
def worker_token_list(home: Path | None) -> None:
    """Worker names, active or revoked, and when made."""
    for entry in WorkerTokenStore(load_instance(home).db_path).list():
        since = datetime.fromtimestamp(entry.created_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        click.echo(f"{entry.name}\t{'revoked' if entry.revoked_at else 'active'}\tcreated {since}")


@worker_token.command("revoke")
@click.argument("name")
@home_option
def worker_token_revoke(name: str, home: Path | None) -> None:
    """Revoke NAME's token: that host can no longer join, fetch code or record results."""
    try:
        WorkerTokenStore(load_instance(home).db_path).revoke(name)
    except WorkerTokenError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"revoked worker token {name}")
