"""A worker on another host: it joins the server by its URL and a worker token, and needs nothing else.

`join` asks the server (GET /workers/join) for the queue, the MLflow gateway it records results
through, the instance's limits and resource classes, and the versions of the data sets; the host's
own instance folder (`--home`) keeps what belongs to this machine: its data set copies, its model
cache, its runner settings. A job's code comes from the server's git over smart HTTP into a bare
cache repository here (`CodeCache`), fetched by commit id, the token sent as a header in the git
process's environment (never on a command line)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pygit2

from leadersboard.resource_classes import ResourceClasses
from leadersboard.settings import REPO_DIR, Limits, Settings

JOIN_SECONDS = 30
FETCH_SECONDS = 600  # a large submission over a slow link
CACHE_DIR = "code-cache.git"


class JoinError(Exception):
    """The server could not be joined; the message says why and what to check."""


class FetchError(Exception):
    """A commit could not be fetched from the server."""


@dataclass(frozen=True)
class Joined:
    """What the server told this worker host."""

    server_url: str  # as the worker reached it
    token: str
    name: str  # the worker token's name
    redis_url: str
    mlflow_tracking_uri: str
    queue_name: str
    limits: dict[str, Any]
    resource_classes: dict[str, Any]
    datasets: dict[str, str]  # name -> version on the server

    def __repr__(self) -> str:  # never the token or the Redis password in a log line
        return f"Joined(server_url={self.server_url!r}, name={self.name!r})"

    def settings(self, local: Settings) -> Settings:
        """This host's settings with the server's queue, MLflow, limits and classes."""
        return replace(local, redis_url=self.redis_url, mlflow_tracking_uri=self.mlflow_tracking_uri,
                       queue_name=self.queue_name, limits=Limits(**self.limits),
                       resource_classes=ResourceClasses.from_config(self.resource_classes))

    def mlflow_env(self) -> dict[str, str]:
        """The MLflow client's credentials for the gateway (HTTP Basic with the worker's name and token)."""
        return {"MLFLOW_TRACKING_USERNAME": self.name, "MLFLOW_TRACKING_PASSWORD": self.token}


def join(server_url: str, token: str) -> Joined:
    base = server_url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise JoinError(f"the server's URL must start with http:// or https://, not {base[:40]!r}")
    request = urllib.request.Request(f"{base}/workers/join",  # noqa: S310 (http or https, checked above)
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=JOIN_SECONDS) as answer:  # noqa: S310 (the operator's URL)
            document = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        raise JoinError(f"the server at {base} refused to let this worker join ({exc.code}): "
                        f"{_detail(exc)}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise JoinError(f"cannot reach the server at {base}: {getattr(exc, 'reason', exc)}") from exc
    try:
        return Joined(base, token, str(document["worker"]), str(document["redis_url"]),
                      str(document["mlflow_tracking_uri"]), str(document["queue_name"]), dict(document["limits"]),
                      dict(document["resource_classes"]), {str(k): str(v) for k, v in document["datasets"].items()})
    except (KeyError, TypeError, AttributeError) as exc:
        raise JoinError(f"the server at {base} answered what a worker cannot use ({exc!r}); "
                        "are both on the same LeadersBoard version?") from exc


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read())["detail"])
    except (ValueError, KeyError, TypeError, OSError):
        return exc.reason or "no reason given"


class CodeCache:
    """A bare repository on this host holding the commits its jobs ran, fetched from the server."""

    def __init__(self, home: Path, joined: Joined) -> None:
        self.path = home / CACHE_DIR
        self.url = f"{joined.server_url}/git/{REPO_DIR}"
        credentials = base64.b64encode(f"{joined.name}:{joined.token}".encode()).decode()
        self._env = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
                     "GIT_CONFIG_VALUE_0": f"Authorization: Basic {credentials}",
                     "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"}

    def repository_with(self, commit: str) -> Path:
        """The cache, holding `commit` (fetched when it is not there yet)."""
        if not self.path.exists():
            pygit2.init_repository(str(self.path), bare=True)
        if self._has(commit):
            return self.path
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("GIT_")}, **self._env}
        try:
            result = subprocess.run(
                ["git", "--git-dir", str(self.path), "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
                 self.url, commit], env=env, capture_output=True, text=True, timeout=FETCH_SECONDS, check=False)
        except subprocess.TimeoutExpired as exc:
            raise FetchError(f"fetching {commit[:12]} from {self.url} took over {FETCH_SECONDS} s") from exc
        if result.returncode or not self._has(commit):
            raise FetchError(f"fetching {commit[:12]} from {self.url} failed: "
                             f"{(result.stderr or result.stdout).strip()[-300:] or 'the commit did not arrive'}")
        return self.path

    def _has(self, commit: str) -> bool:
        try:
            return pygit2.Repository(str(self.path)).get(commit) is not None
        except (ValueError, pygit2.GitError):
            return False
