"""Whose run is it: the instance's job index says who submitted each job run; a run the platform
copied from a submission hangs under its job's run (`mlflow.parentRunId`, set by the platform, never
copied from a submission) and belongs to the same user. A run that is neither belongs to no one:
admins only.

What is found is remembered (a run never changes owner, nor where its artifacts lie); what is not
is asked again, since a job's run exists a moment before its index row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlparse

from leadersboard import contract as c

from .mlflow_upstream import Upstream

MAX_REMEMBERED = 10_000
RUN_PATH = "/api/2.0/mlflow/runs/get"
MODEL_PATH = "/api/2.0/mlflow/logged-models/{}"


class RunOwners:
    def __init__(self, indexed_owner: Callable[[str], Awaitable[str | None]], upstream: Upstream) -> None:
        self.indexed_owner = indexed_owner
        self.upstream = upstream
        self._owners: dict[str, str] = {}
        self._roots: dict[str, str] = {}

    async def owner(self, run_id: str) -> str | None:
        """The user whose job made run `run_id`, or None."""
        if run_id in self._owners:
            return self._owners[run_id]
        owner = await self.indexed_owner(run_id)
        if owner is None:
            parent = _tag(await self._run(run_id), c.TAG_PARENT_RUN)
            owner = await self.indexed_owner(parent) if parent else None
        if owner is not None:
            _remember(self._owners, run_id, owner)
        return owner

    async def artifact_root(self, run_id: str) -> str | None:
        """Where the run's artifacts lie in the server's proxied store (`1/<run>/artifacts`), or None
        when it has none there."""
        if run_id not in self._roots:
            run = await self._run(run_id)
            uri = str(((run or {}).get("info") or {}).get("artifact_uri") or "")
            if not uri.startswith("mlflow-artifacts:"):
                return None
            _remember(self._roots, run_id, urlparse(uri).path.strip("/"))
        return self._roots[run_id]

    async def model_run(self, model_id: str) -> str | None:
        """The run that logged model `model_id`, or None."""
        answer = await self.upstream.get_json(MODEL_PATH.format(model_id), {})
        info = ((answer or {}).get("model") or {}).get("info") or {}
        run = info.get("source_run_id")
        return run if isinstance(run, str) and run else None

    async def _run(self, run_id: str) -> dict[str, Any] | None:
        answer = await self.upstream.get_json(RUN_PATH, {"run_id": run_id})
        run = (answer or {}).get("run")
        return run if isinstance(run, dict) else None


def _tag(run: dict[str, Any] | None, key: str) -> str | None:
    for tag in ((run or {}).get("data") or {}).get("tags") or []:
        if isinstance(tag, dict) and tag.get("key") == key and isinstance(tag.get("value"), str):
            return str(tag["value"])
    return None


def _remember(memory: dict[str, str], key: str, value: str) -> None:
    if len(memory) >= MAX_REMEMBERED:
        memory.clear()  # simple and bounded: lookups are cheap to redo
    memory[key] = value
