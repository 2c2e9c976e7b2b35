"""Git smart-HTTP through `git http-backend`, as a raw ASGI app.

Raw ASGI (not a Starlette response) because the request body must be streamed into the CGI
process while its answer streams out; Starlette's StreamingResponse consumes `receive()` itself
and hangs large pushes. Only the three smart-protocol endpoints of the one repository are served.

Code stays private (`access.code_visibility: private`): for a participant, upload-pack hides every
other user's branches (`uploadpack.hideRefs`, the caller's own namespace unhidden) and speaks
protocol v0, which hands out only what it advertised (v2 would give a hidden commit to whoever
asks for it by id). Admins, and everyone once the code is public, fetch everything. A worker host
(its worker token) fetches any commit by id and pushes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.types import Receive, Scope, Send

from leadersboard.names import user_branch
from leadersboard.settings import REPO_DIR
from leadersboard.users import Caller

from .auth import BASIC_CHALLENGE, basic_credentials

log = logging.getLogger(__name__)


SMART_PATHS = {
    f"/{REPO_DIR}/info/refs": "GET",
    f"/{REPO_DIR}/git-upload-pack": "POST",
    f"/{REPO_DIR}/git-receive-pack": "POST",
}
CHUNK = 64 * 1024
CGI_HEADERS = (
    (b"content-type", "CONTENT_TYPE"),
    (b"content-length", "CONTENT_LENGTH"),  # absent for chunked bodies: then stdin's end ends the body
    (b"content-encoding", "HTTP_CONTENT_ENCODING"),  # git gzips large bodies; http-backend inflates
    (b"git-protocol", "GIT_PROTOCOL"),
)


class PushRegistry:
    """Pushes in flight: a random push id (given to the hooks) -> the authenticated pusher."""

    def __init__(self) -> None:
        self._users: dict[str, str] = {}

    def open(self, user: str) -> str:
        push_id = secrets.token_urlsafe(24)
        self._users[push_id] = user
        return push_id

    def user(self, push_id: str) -> str | None:
        return self._users.get(push_id)

    def close(self, push_id: str) -> None:
        self._users.pop(push_id, None)


class GitHttpApp:
    def __init__(
        self,
        project_root: Path,
        authenticate: Callable[[str, str], Awaitable[Caller | None]],
        pushes: PushRegistry,
        on_push_end: Callable[[str], Awaitable[None]],
        code_public: Callable[[], bool],
        prefix: str = "/git",
    ) -> None:
        self.project_root = project_root
        self.authenticate = authenticate
        self.code_public = code_public
        self.pushes = pushes
        self.on_push_end = on_push_end
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"].removeprefix(self.prefix)
        if SMART_PATHS.get(path) != scope["method"]:
            await _plain(send, 404, b"Not found: clone http://HOST:PORT/git/submissions.git\n")
            return
        credentials = basic_credentials(_header(scope, b"authorization"))
        caller = await self.authenticate(*credentials) if credentials else None
        if caller is None:
            await _plain(send, 401, b"Authentication required: user name and API token\n",
                         [(b"www-authenticate", BASIC_CHALLENGE)])
            return
        pushing = path.endswith("git-receive-pack") or "service=git-receive-pack" in str(scope.get("query_string"))
        if pushing and caller.worker:
            await _plain(send, 403, b"A worker token reads submissions; it pushes nothing\n")
            return
        push_id = self.pushes.open(caller.name) if path.endswith("git-receive-pack") else None
        try:
            await self._run_backend(scope, receive, send, path, caller, push_id)
        finally:
            if push_id is not None:
                try:
                    await self.on_push_end(push_id)
                finally:
                    self.pushes.close(push_id)

    async def _run_backend(
        self, scope: Scope, receive: Receive, send: Send, path: str, caller: Caller, push_id: str | None
    ) -> None:
        env = self._cgi_env(scope, path, caller, push_id)
        proc = await asyncio.create_subprocess_exec(
            "git", "http-backend", env=env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert proc.stdin and proc.stdout and proc.stderr
        feeder = asyncio.create_task(_feed(receive, proc.stdin))
        errors = asyncio.create_task(proc.stderr.read())
        try:
            status, headers = await _read_cgi_headers(proc.stdout)
            await send({"type": "http.response.start", "status": status, "headers": headers})
            while chunk := await proc.stdout.read(CHUNK):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            feeder.cancel()
            if proc.returncode is None:
                try:
                    await asyncio.wait_for(proc.wait(), 60)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
            stderr = await errors
            if proc.returncode:
                log.warning("git http-backend exited %s: %s", proc.returncode, stderr.decode(errors="replace")[-500:])

    def _cgi_env(self, scope: Scope, path: str, caller: Caller, push_id: str | None) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.project_root),
            "GIT_PROJECT_ROOT": str(self.project_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path,
            "REQUEST_METHOD": scope["method"],
            "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
            "REMOTE_USER": caller.name,
            "REMOTE_ADDR": (scope.get("client") or ("", 0))[0],
            "GIT_CONFIG_NOSYSTEM": "1",
        }
        for header, var in CGI_HEADERS:
            value = _header(scope, header)
            if value is not None:
                env[var] = value
        if caller.worker:  # fetches a job's commit by its id, wherever it is (a later push may have moved the branch)
            env.update(_config_env([("uploadpack.allowAnySHA1InWant", "true")]))
        elif not caller.admin and not self.code_public():
            env.pop("GIT_PROTOCOL", None)  # v0: only advertised tips can be fetched
            env.update(private_code_config(caller.name))
        if push_id is not None:
            host, port = scope.get("server") or ("127.0.0.1", 0)
            env["LEADERSBOARD_PUSH_ID"] = push_id
            env["LEADERSBOARD_HOOK_HOST"] = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
            env["LEADERSBOARD_HOOK_PORT"] = str(port)
        return env


def private_code_config(user: str) -> dict[str, str]:
    """git config for one request (GIT_CONFIG_COUNT/KEY/VALUE): upload-pack advertises, and so hands
    out, only `main` and the user's own branches (`users/NAME`, `users/NAME/*`)."""
    pairs = [("uploadpack.hideRefs", "refs/heads/users/"), ("uploadpack.hideRefs", "!" + user_branch(user)),
             ("uploadpack.allowTipSHA1InWant", "false"), ("uploadpack.allowReachableSHA1InWant", "false"),
             ("uploadpack.allowAnySHA1InWant", "false")]
    return _config_env(pairs)


def _config_env(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """git config for one process through its environment (GIT_CONFIG_COUNT/KEY/VALUE)."""
    env = {"GIT_CONFIG_COUNT": str(len(pairs))}
    for index, (key, value) in enumerate(pairs):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


async def _feed(receive: Receive, stdin: asyncio.StreamWriter) -> None:
    """Copy the request body into the CGI process, then close its stdin (chunked bodies end so)."""
    try:
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            body = message.get("body", b"")
            if body:
                stdin.write(body)
                await stdin.drain()
            if not message.get("more_body", False):
                break
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        stdin.close()


async def _read_cgi_headers(stdout: asyncio.StreamReader) -> tuple[int, list[tuple[bytes, bytes]]]:
    status, headers = 200, list[tuple[bytes, bytes]]()
    while True:
        line = (await stdout.readline()).rstrip(b"\r\n")
        if not line:
            return status, headers
        name, _, value = line.partition(b":")
        value = value.strip()
        if name.lower() == b"status":
            status = int(value.split()[0])
        else:
            headers.append((name.lower(), value))


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _plain(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})
