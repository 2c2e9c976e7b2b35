"""Who may read what through the MLflow gateway, decided per read route (mlflow_rules.Access).

Every user reads experiments and runs' metrics, params and tags; a run's artifacts (the job log
among them) are its owner's and admins'. Admins read everything the gateway serves. Nobody writes.
What is forwarded is what was checked: the query string is written again from the pairs read here,
and a GraphQL body from the document checked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from leadersboard.users import Caller

from .mlflow_graphql import check_graphql
from .mlflow_owners import RunOwners
from .mlflow_refusal import ADMINS_ONLY, NOT_YOURS, Refusal
from .mlflow_rules import Access, Match

JSON = b"application/json"


@dataclass(frozen=True)
class Checked:
    """The request as it goes on to MLflow."""

    query: str
    body: bytes
    content_type: bytes | None = None  # replaces the caller's, when the body was written here


class AccessCheck:
    def __init__(self, owners: RunOwners) -> None:
        self.owners = owners

    async def check(self, caller: Caller, match: Match, query: str, body: bytes) -> Checked:
        """The request to forward, or Refusal."""
        pairs = parse_qsl(query, keep_blank_values=True)
        checked = Checked(urlencode(pairs), body)
        access = match.read.access
        if access is Access.PUBLIC:
            return checked
        if access is Access.ADMIN:
            if not caller.admin:
                raise Refusal(403, ADMINS_ONLY)
            return checked
        if access is Access.GRAPHQL:
            try:
                request = check_graphql(json.loads(body or b"null"))
            except (ValueError, UnicodeDecodeError) as exc:
                raise Refusal(400, "A GraphQL request is a JSON object with a 'query' string") from exc
            for run in request.artifact_runs:
                await self._owned(caller, run)
            return Checked(checked.query, json.dumps(request.body).encode(), JSON)
        if access is Access.RUN_ARTIFACTS:
            await self._owned(caller, _one(pairs, "run_id", "run_uuid"))
        elif access is Access.STORED_ARTIFACTS:
            await self._stored(caller, match.params.get("artifact_path") or _one(pairs, "path"))
        elif access is Access.MODEL_ARTIFACTS:
            run = None if caller.admin else await self.owners.model_run(match.params["model_id"])
            await self._owned(caller, run)
        return checked

    async def _owned(self, caller: Caller, run: str | None) -> None:
        if caller.admin:
            return
        if run is None or await self.owners.owner(run) != caller.name:
            raise Refusal(403, NOT_YOURS)

    async def _stored(self, caller: Caller, path: str | None) -> None:
        """A path in the proxied artifact store (`<experiment>/<run>/artifacts/...`): the run's owner's."""
        if caller.admin:
            return
        parts = (path or "").strip("/").split("/")
        if path is None or not is_plain_path(path) or len(parts) < 2:
            raise Refusal(403, NOT_YOURS)
        root = await self.owners.artifact_root(parts[1])
        inside = root is not None and (path.strip("/") == root or path.strip("/").startswith(root + "/"))
        await self._owned(caller, parts[1] if inside else None)


def is_plain_path(path: str) -> bool:
    """No `.` or `..` segment, no empty one, no backslash or NUL: a path that means what it says."""
    if "\\" in path or "\x00" in path:
        return False
    return all(part not in ("", ".", "..") for part in path.strip("/").split("/"))


def _one(pairs: list[tuple[str, str]], *names: str) -> str | None:
    """The one value given under `names` (MLflow reads the first; several different ones name no one)."""
    values = {value for key, value in pairs if key in names and value}
    return values.pop() if len(values) == 1 else None
