"""The MLflow gateway on the MLflow port, in process, in front of the session's real MLflow server:
every route of MLflow's own route table is either a listed read or refused (writes: 403, the run
unchanged); reads pass for every signed-in user; a run's artifacts are its owner's and admins';
GraphQL passes queries only; no, wrong or revoked credentials: 401; admins read all, write nothing."""

from __future__ import annotations

import asyncio
import base64
import os
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2  # what the test client answers with
import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient

from leadersboard import contract as c
from leadersboard.local.redis_server import RedisServer
from leadersboard.users import UserStore
from leadersboard.webhook.mlflow_gateway import MAX_BODY, MlflowGateway
from leadersboard.webhook.mlflow_refusal import ADMINS_ONLY, NOT_YOURS, READ_ONLY
from leadersboard.webhook.mlflow_rules import READS, find_read
from leadersboard.worker_tokens import WorkerTokenStore

from support.api import Api, open_api
from support.mlflow_routes import Route, mlflow_routes
from support.shared import SessionMlflow

WRITE_VERBS = ("create", "delete", "update", "set", "log", "rename", "restore", "upload", "transition", "finalize",
               "link", "add", "remove", "register", "upsert", "cancel", "invoke", "abort", "complete", "start",
               "end", "test", "generate", "attach", "detach", "install", "post", "patch", "put")
BIG_ARTIFACT = 3 * 1024 * 1024 + 17


@dataclass
class World:
    """One instance behind the gateway: alice's job run (job log, notes, a child run copied from her
    submission), bob's job run, and an admin."""

    api: Api
    gateway: TestClient
    tracking: MlflowClient
    tokens: dict[str, str]
    alice: str
    bob: str
    admin: str
    experiment: str
    alice_run: str
    alice_child: str
    bob_run: str

    def auth(self, user: str) -> dict[str, str]:
        pair = f"{user}:{self.tokens[user]}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}

    def request(self, user: str | None, method: str, path: str, **kwargs: Any) -> httpx2.Response:
        headers = {**(self.auth(user) if user else {}), **kwargs.pop("headers", {})}
        return self.gateway.request(method, path, headers=headers, **kwargs)

    def get(self, user: str | None, path: str, **kwargs: Any) -> httpx2.Response:
        return self.request(user, "GET", path, **kwargs)

    def stored(self, run: str, path: str = "") -> str:
        """The run's path in the artifact store behind /mlflow-artifacts/."""
        return f"{self.experiment}/{run}/artifacts" + (f"/{path}" if path else "")

    def snapshot(self, run: str) -> dict[str, Any]:
        """What a write could change: the run's info, data and artifact files."""
        found = self.tracking.get_run(run)
        files = sorted(self._files(run, None))
        return {"info": found.info.to_proto().SerializeToString(), "metrics": found.data.metrics,
                "params": found.data.params, "tags": found.data.tags, "files": files}

    def _files(self, run: str, path: str | None) -> list[str]:
        files = []
        for entry in self.tracking.list_artifacts(run, path):
            files += self._files(run, entry.path) if entry.is_dir else [f"{entry.path}:{entry.file_size}"]
        return files


@pytest.fixture(scope="module")
def routes() -> list[Route]:
    return mlflow_routes()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer,
          mlflow_server: SessionMlflow) -> Iterator[World]:
    api = open_api(tmp_path_factory.mktemp("gateway"), redis_server.url, mlflow_server.url)
    try:
        alice, bob = api.tokens
        admin = "a" + uuid.uuid4().hex[:10]
        tokens = {**api.tokens, admin: UserStore(api.settings.db_path).add(admin, admin=True)}
        tracking = MlflowClient(tracking_uri=mlflow_server.url)
        runs = {user: _job_run(api, tracking, user, tmp_path_factory) for user in (alice, bob)}
        alice_run, child = runs[alice]
        gateway = TestClient(api.client.app, base_url=f"http://testserver:{api.settings.mlflow_port}")
        experiment = tracking.get_run(alice_run).info.experiment_id
        yield World(api, gateway, tracking, tokens, alice, bob, admin, experiment, alice_run, child, runs[bob][0])
    finally:
        api.close()


def _job_run(api: Api, tracking: MlflowClient, user: str, tmp: pytest.TempPathFactory) -> tuple[str, str]:
    """A job run as the platform makes one (upload, job, run, index), with what a worker writes into
    it: metrics, params, the job log, a file of the submission's, and a child run copied from it."""
    answer = api.upload(user)
    assert answer.status_code == 201, answer.text
    run_id = next(run for run, owner in _indexed_runs(api) if owner == user)
    folder = tmp.mktemp("artifacts")
    (folder / c.LOG_FILE).write_text(f"{user}'s log\n")
    (folder / "notes.txt").write_text("my notes")
    (folder / "big.bin").write_bytes(os.urandom(BIG_ARTIFACT))
    tracking.log_artifact(run_id, str(folder / c.LOG_FILE), c.LOG_ARTIFACT_DIR)
    tracking.log_artifact(run_id, str(folder / "notes.txt"))
    tracking.log_artifact(run_id, str(folder / "big.bin"))
    tracking.log_param(run_id, "depth", "3")
    for step in range(3):
        tracking.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
    tracking.log_metric(run_id, c.METRIC_AUROC, 0.91)
    experiment = tracking.get_run(run_id).info.experiment_id
    child = tracking.create_run(experiment, tags={c.TAG_PARENT_RUN: run_id, "mlflow.runName": "mine"})
    tracking.log_artifact(child.info.run_id, str(folder / "notes.txt"))
    tracking.set_terminated(child.info.run_id)
    return run_id, child.info.run_id


def _indexed_runs(api: Api) -> list[tuple[str, str]]:
    """(run id, user) of every job in the instance's index."""
    conn = sqlite3.connect(api.settings.db_path)
    try:
        return [(str(r[0]), str(r[1])) for r in conn.execute("SELECT run_id, user FROM jobs")]
    finally:
        conn.close()


def refused(answer: httpx.Response | httpx2.Response, status: int, detail: str) -> bool:
    return answer.status_code == status and answer.json() == {"detail": detail}


# --------------------------------------------------------------------------------------- route table


def test_the_listed_reads_are_mlflow_read_routes(routes: list[Route]) -> None:
    """Each listed read is a route MLflow has, with that method; every route of MLflow's table the
    list lets through is a read (no write verb in its handler's name)."""
    table = {(route.method, route.shape) for route in routes}
    for read in READS:
        for method in read.methods:
            assert (method, Route(method, read.template, "").shape) in table, (method, read.template)
    passed = [route for route in routes if find_read(route.method, route.path({})) is not None]
    assert len(passed) > 50
    for route in passed:
        words = route.endpoint.lower().replace("-", "_").split("_")
        assert not set(words) & set(WRITE_VERBS), route


def test_every_other_route_of_mlflow_is_refused_and_changes_nothing(world: World, routes: list[Route]) -> None:
    """Every route MLflow serves that is not a listed read (every write among them) answers 403, to a
    participant and to an admin alike, and alice's runs are as they were."""
    before = {run: world.snapshot(run) for run in (world.alice_run, world.alice_child)}
    experiments = world.tracking.search_experiments()
    fill = {"artifact_path": world.stored(world.alice_run, "notes.txt"), "run_id": world.alice_run,
            "request_id": world.alice_run, "experiment_id": world.experiment}
    # A body that would change alice's run, were it forwarded (checked below against MLflow itself).
    body = {"run_id": world.alice_run, "run_uuid": world.alice_run, "experiment_id": world.experiment,
            "key": "gateway", "value": "written", "timestamp": 0, "step": 0, "name": "gateway-" + uuid.uuid4().hex,
            "new_name": "renamed", "status": "KILLED", "end_time": 0,
            "metrics": [{"key": "gateway", "value": 1.0, "timestamp": 0, "step": 0}],
            "params": [{"key": "gateway", "value": "x"}], "tags": [{"key": "gateway", "value": "x"}]}
    writes = [(route.method, path) for route in routes
              if find_read(route.method, path := route.path(fill)) is None]
    assert len(writes) > 350  # MLflow 3.17 has ~400 routes that are not reads

    async def send_all() -> list[str]:
        """Every write as alice and as the admin, on the app's own event loop, many at once (~800
        requests: one by one through the test client they take seconds)."""
        transport = httpx.ASGITransport(app=world.gateway.app)
        async with httpx.AsyncClient(transport=transport, base_url=str(world.gateway.base_url)) as client:
            async def one(user: str, method: str, path: str) -> str | None:
                kwargs: dict[str, Any] = {} if method == "GET" else {"json": body}
                answer = await client.request(method, path, headers=world.auth(user), **kwargs)
                ok = refused(answer, 403, READ_ONLY)
                return None if ok else f"{user} {method} {path} -> {answer.status_code} {answer.text[:100]}"
            answers = await asyncio.gather(*(one(user, method, path) for method, path in writes
                                             for user in (world.alice, world.admin)))
        return [leak for leak in answers if leak]

    assert world.api.client.portal is not None
    leaks = world.api.client.portal.call(send_all)
    assert not leaks, "\n".join(leaks)
    assert {run: world.snapshot(run) for run in before} == before
    assert [e.name for e in world.tracking.search_experiments()] == [e.name for e in experiments]

    # The body is a real write: sent to MLflow itself (as the platform may), it does change a run.
    scratch = world.tracking.create_run(world.experiment).info.run_id
    direct = httpx.post(f"{world.tracking.tracking_uri}/api/2.0/mlflow/runs/set-tag",
                        json={**body, "run_id": scratch, "run_uuid": scratch}, timeout=10)
    assert direct.status_code == 200 and world.tracking.get_run(scratch).data.tags["gateway"] == "written"


# ----------------------------------------------------------------------------------------------- reads


def test_reads_pass_for_every_signed_in_user(world: World) -> None:
    run = world.alice_run
    for user in (world.alice, world.bob, world.admin):
        got = world.get(user, "/api/2.0/mlflow/runs/get", params={"run_id": run})
        assert got.status_code == 200, got.text
        data = got.json()["run"]["data"]
        assert {"key": "depth", "value": "3"} in data["params"]
        assert {t["key"]: t["value"] for t in data["tags"]}[c.TAG_USER] == world.alice
        searched = world.request(user, "POST", "/ajax-api/2.0/mlflow/runs/search", json={
            "experiment_ids": [world.experiment], "filter": f"tags.`{c.TAG_USER}` = '{world.alice}'"})
        assert searched.status_code == 200 and [r["info"]["run_id"] for r in searched.json()["runs"]] == [run]
        history = world.get(user, "/api/2.0/mlflow/metrics/get-history", params={"run_id": run, "metric_key": "loss"})
        assert [m["step"] for m in history.json()["metrics"]] == [0, 1, 2]
        for path, params in (("/api/2.0/mlflow/experiments/search", {"max_results": "5"}),
                             ("/ajax-api/2.0/mlflow/experiments/get", {"experiment_id": world.experiment}),
                             ("/api/2.0/mlflow/experiments/get-by-name", {"experiment_name": "visa/pcb1"}),
                             ("/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval",
                              {"run_ids": run, "metric_key": "loss", "max_results": "10"}),
                             ("/api/2.0/mlflow/registered-models/search", {}),
                             ("/ajax-api/2.0/mlflow/model-versions/search", {}),
                             ("/ajax-api/3.0/mlflow/server-info", {}), ("/health", {}), ("/version", {})):
            answer = world.get(user, path, params=params)
            assert answer.status_code == 200, (path, answer.text)
        graphql = world.request(user, "POST", "/graphql", json={
            "operationName": "GetRun", "variables": {"data": {"runId": run}},
            "query": "query GetRun($data: MlflowGetRunInput!) { mlflowGetRun(input: $data) "
                     "{ run { info { runUuid } data { metrics { key value } } } } }"})
        assert graphql.status_code == 200 and graphql.json()["data"]["mlflowGetRun"]["run"]["info"]["runUuid"] == run
        for path, payload in (("/api/2.0/mlflow/experiments/search", {"max_results": 5}),
                              ("/ajax-api/2.0/mlflow/logged-models/search", {"experiment_ids": [world.experiment]}),
                              ("/ajax-api/2.0/mlflow/experiments/search-datasets",
                               {"experiment_ids": [world.experiment]})):
            assert world.request(user, "POST", path, json=payload).status_code == 200, path


def test_the_ui_opens_on_the_experiments(world: World) -> None:
    landing = world.get(world.alice, "/")
    assert landing.status_code == 200 and "location.replace('/?ui'" in landing.text
    assert "#/experiments" in landing.text and "machine_learning" in landing.text
    assert landing.headers["content-security-policy"].startswith("default-src 'none'; script-src 'sha256-")
    page = world.get(world.alice, "/?ui")
    assert page.status_code == 200 and "<title>MLflow</title>" in page.text
    script = page.text.split('src="', 2)[1].split('"')[0]  # the UI's bundle, under /static-files/
    assert script.startswith("static-files/") and world.get(world.alice, "/" + script).status_code == 200
    assert world.request(world.alice, "HEAD", "/").status_code == 200


# ------------------------------------------------------------------------------------------- artifacts


def artifact_reads(world: World, run: str, file: str, folder: str) -> list[tuple[str, dict[str, Any]]]:
    """Every way to reach a run's artifacts (`file`, and `folder` that holds it): (path, params)."""
    return [
        ("/get-artifact", {"run_uuid": run, "path": file}),
        ("/get-artifact", {"run_id": run, "path": file}),
        ("/api/2.0/mlflow/artifacts/list", {"run_id": run}),
        ("/ajax-api/2.0/mlflow/artifacts/list", {"run_uuid": run, "path": folder}),
        (f"/api/2.0/mlflow-artifacts/artifacts/{world.stored(run, file)}", {}),
        (f"/ajax-api/2.0/mlflow-artifacts/artifacts/{world.stored(run, file)}", {}),
        ("/api/2.0/mlflow-artifacts/artifacts", {"path": world.stored(run)}),
        ("/ajax-api/2.0/mlflow-artifacts/artifacts", {"path": world.stored(run, folder)}),
    ]


def list_artifacts_query(run: str, as_variable: bool) -> dict[str, Any]:
    if as_variable:
        return {"query": "query L($i: MlflowListArtifactsInput) { mlflowListArtifacts(input: $i) "
                         "{ files { path } } }", "variables": {"i": {"runId": run}}}
    return {"query": f'{{ listing: mlflowListArtifacts(input: {{runUuid: "{run}"}}) {{ files {{ path }} }} }}'}


def test_artifacts_are_their_owners_and_admins(world: World) -> None:
    for run, file, folder in ((world.alice_run, c.LOG_ARTIFACT, c.LOG_ARTIFACT_DIR),
                              (world.alice_child, "notes.txt", "")):
        for path, params in artifact_reads(world, run, file, folder):
            for user in (world.alice, world.admin):
                answer = world.get(user, path, params=params)
                assert answer.status_code == 200, (user, path, params, answer.text)
            assert refused(world.get(world.bob, path, params=params), 403, NOT_YOURS), (path, params)
        for as_variable in (False, True):
            document = list_artifacts_query(run, as_variable)
            for user in (world.alice, world.admin):
                listed = world.request(user, "POST", "/graphql", json=document).json()
                assert listed.get("errors") is None and listed["data"], listed
            assert refused(world.request(world.bob, "POST", "/graphql", json=document), 403, NOT_YOURS)
    log = world.get(world.alice, "/get-artifact", params={"run_uuid": world.alice_run, "path": c.LOG_ARTIFACT})
    assert log.text == f"{world.alice}'s log\n"
    # Bob reads his own, and alice's metrics, params and tags; not her files.
    own = world.get(world.bob, "/get-artifact", params={"run_id": world.bob_run, "path": "notes.txt"})
    assert own.text == "my notes"


def test_a_request_that_names_two_runs_or_none_is_refused(world: World) -> None:
    bob, mine, hers = world.bob, world.bob_run, world.alice_run
    tricks = [
        ("/get-artifact", [("run_id", mine), ("run_uuid", hers), ("path", "notes.txt")]),
        ("/get-artifact", [("run_id", mine), ("run_id", hers), ("path", "notes.txt")]),
        ("/api/2.0/mlflow/artifacts/list", []),  # MLflow would read a body instead: none is forwarded
        ("/api/2.0/mlflow-artifacts/artifacts", [("path", world.stored(mine, f"../../{hers}/artifacts"))]),
        ("/api/2.0/mlflow-artifacts/artifacts", [("path", f"{world.experiment}/{hers}")]),
        ("/api/2.0/mlflow-artifacts/artifacts", [("path", world.experiment)]),
        ("/api/2.0/mlflow-artifacts/artifacts", []),
        ("/get-artifact", [("run_id", "0" * 32), ("path", "x")]),  # an unknown run: no one's
    ]
    for path, params in tricks:
        answer = world.request(bob, "GET", path, params=params, content=b'{"run_id": "%s"}' % hers.encode())
        assert refused(answer, 403, NOT_YOURS), (path, params, answer.text)
    # %2E%2E: the client would remove a literal '..' itself; the server decodes this one into '..'.
    dotted = world.get(bob, f"/api/2.0/mlflow-artifacts/artifacts/{world.stored(mine, '%2E%2E')}/%2E%2E/{hers}/x")
    assert dotted.status_code == 400 and "Malformed path" in dotted.json()["detail"]
    two = {"query": f'{{ a: mlflowListArtifacts(input: {{runId: "{mine}"}}) {{ rootUri }} '
                    f'b: mlflowListArtifacts(input: {{runId: "{hers}"}}) {{ rootUri }} }}'}
    assert refused(world.request(bob, "POST", "/graphql", json=two), 403, NOT_YOURS)
    hidden = {"query": f'query {{ ...F }} fragment F on Query {{ mlflowListArtifacts(input: {{runId: "{hers}"}}) '
                       "{ rootUri } }"}
    assert refused(world.request(bob, "POST", "/graphql", json=hidden), 403, NOT_YOURS)


def test_a_large_artifact_streams_through_whole(world: World) -> None:
    with world.gateway.stream("GET", f"/api/2.0/mlflow-artifacts/artifacts/{world.stored(world.alice_run, 'big.bin')}",
                              headers=world.auth(world.alice)) as answer:
        assert answer.status_code == 200
        size = sum(len(chunk) for chunk in answer.iter_raw())
    assert size == BIG_ARTIFACT
    with tempfile.TemporaryDirectory() as folder:
        direct = world.tracking.download_artifacts(world.alice_run, "big.bin", folder)
        through = world.get(world.alice, "/get-artifact", params={"run_id": world.alice_run, "path": "big.bin"})
        assert through.content == Path(direct).read_bytes()


# -------------------------------------------------------------------------------------------- graphql


def test_graphql_passes_queries_only(world: World) -> None:
    alice = world.alice
    cases = {
        "mutation { mlflowSearchRuns(input: {experimentIds: [\"0\"]}) { runs { info { runUuid } } } }":
            (403, "MLflow is read-only here: GraphQL mutations are refused"),
        "subscription { test { output } }": (403, "MLflow is read-only here: GraphQL mutations are refused"),
        "{ mlflowSearchDatasets(input: {}) { datasetSummaries { name } } }":
            (403, "The GraphQL field 'mlflowSearchDatasets' is not served by this gateway"),
        "{ mlflowGetRun(": (400, None),
        "query { ...Missing }": (400, "GraphQL fragment 'Missing' is not defined"),
    }
    for query, (status, detail) in cases.items():
        answer = world.request(alice, "POST", "/graphql", json={"query": query})
        assert answer.status_code == status, (query, answer.text)
        if detail:
            assert answer.json() == {"detail": detail}
    cycle = ("query { ...A } fragment A on Query { ...B test(inputString: \"x\") { output } } "
             "fragment B on Query { ...A }")
    assert world.request(alice, "POST", "/graphql", json={"query": cycle}).status_code == 200
    for bad in (b"not json", b'["query"]', b'{"query": 3}', b'{"query": "{ test { output } }", "variables": 3}'):
        assert world.request(alice, "POST", "/graphql", content=bad,
                             headers={"Content-Type": "application/json"}).status_code == 400
    assert refused(world.request(alice, "GET", "/graphql", params={"query": "{ test { output } }"}), 403, READ_ONLY)


# -------------------------------------------------------------------------------------- who is calling


def test_no_wrong_or_revoked_credentials_are_401(world: World) -> None:
    for headers in ({}, {"Authorization": "Basic !!!"}, {"Authorization": "Token x"},
                    world.auth(world.alice) | {"Authorization": "Basic " + base64.b64encode(
                        f"{world.bob}:{world.tokens[world.alice]}".encode()).decode()},
                    {"Authorization": "Bearer lbt_nope"}):
        for path in ("/", "/api/2.0/mlflow/experiments/search", "/api/2.0/mlflow/runs/set-tag"):
            answer = world.gateway.get(path, headers=headers)
            assert answer.status_code == 401, (headers, path)
            assert answer.headers["www-authenticate"] == 'Basic realm="LeadersBoard", charset="UTF-8"'
            assert "detail" in answer.json()
    # A Bearer token (MLFLOW_TRACKING_TOKEN) works as well as Basic (MLFLOW_TRACKING_USERNAME/PASSWORD).
    bearer = {"Authorization": f"Bearer {world.tokens[world.alice]}"}
    answer = world.gateway.get("/api/2.0/mlflow/experiments/search", params={"max_results": "1"}, headers=bearer)
    assert answer.status_code == 200, answer.text

    store = UserStore(world.api.settings.db_path)
    name = "r" + uuid.uuid4().hex[:10]
    world.tokens[name] = store.add(name)
    assert world.get(name, "/health").status_code == 200
    store.revoke(name)
    revoked = world.get(name, "/health")
    assert revoked.status_code == 401 and revoked.json() == {"detail": "Invalid or revoked token"}


def test_admins_read_everything_and_write_nothing(world: World) -> None:
    admin, bob = world.admin, world.bob
    for path, params in (("/api/2.0/mlflow/traces", {"experiment_ids": world.experiment}),
                         ("/ajax-api/3.0/mlflow/datasets/search", {})):
        assert world.get(admin, path, params=params).status_code == 200, path
        assert refused(world.get(bob, path, params=params), 403, ADMINS_ONLY)
    searched = world.request(admin, "POST", "/api/3.0/mlflow/traces/search",
                             json={"locations": [{"type": "MLFLOW_EXPERIMENT",
                                                  "mlflow_experiment": {"experiment_id": world.experiment}}]})
    assert searched.status_code == 200, searched.text
    before = world.snapshot(world.alice_run)
    for method, path, payload in (
            ("POST", "/api/2.0/mlflow/runs/set-tag", {"run_id": world.alice_run, "key": "k", "value": "v"}),
            ("POST", "/ajax-api/2.0/mlflow/runs/delete", {"run_id": world.alice_run}),
            ("PUT", f"/api/2.0/mlflow-artifacts/artifacts/{world.stored(world.alice_run, 'x.txt')}", None),
            ("DELETE", f"/api/2.0/mlflow-artifacts/artifacts/{world.stored(world.alice_run, 'notes.txt')}", None)):
        assert refused(world.request(admin, method, path, json=payload), 403, READ_ONLY), path
    mutation = {"query": "mutation { mlflowSearchRuns(input: {}) { runs { info { runUuid } } } }"}
    assert world.request(admin, "POST", "/graphql", json=mutation).status_code == 403
    assert world.snapshot(world.alice_run) == before
    # An unknown run is no one's: admins pass to MLflow (which knows none), participants are refused.
    unknown = {"run_id": "0" * 32, "path": "x"}
    assert world.get(admin, "/get-artifact", params=unknown).status_code in (400, 404)
    assert refused(world.get(world.alice, "/get-artifact", params=unknown), 403, NOT_YOURS)


# ------------------------------------------------------------------------------------- odd requests


def test_odd_requests_are_answered_as_json(world: World) -> None:
    alice = world.alice
    big = world.request(alice, "POST", "/api/2.0/mlflow/runs/search", content=b"{" + b" " * MAX_BODY + b"}",
                        headers={"Content-Type": "application/json"})
    assert big.status_code == 413 and "detail" in big.json()
    for path in ("/static-files//x", "/static-files/%2E/x", "/static-files/%2E%2E/%2E%2E/etc/passwd"):
        answer = world.get(alice, path)
        assert answer.status_code == 400 and "Malformed path" in answer.json()["detail"], path
    assert refused(world.get(alice, "/no/such/route"), 403, READ_ONLY)
    assert refused(world.request(alice, "OPTIONS", "/api/2.0/mlflow/runs/get"), 403, READ_ONLY)


def test_without_a_tracking_server_there_is_nothing_to_front(world: World) -> None:
    store = UserStore(world.api.settings.db_path)

    async def authenticate(name: str | None, token: str) -> Any:
        return store.authenticate(token, name)

    async def no_owner(run: str) -> str | None:
        return None

    client = TestClient(MlflowGateway("sqlite:///nowhere.db", authenticate, no_owner))  # nothing to start
    assert client.get("/").status_code == 401
    answer = client.get("/", headers=world.auth(world.alice))
    assert answer.status_code == 503 and "local store" in answer.json()["detail"]


# ---------------------------------------------------------------------------------------- worker hosts


def test_a_worker_token_writes_through_and_a_revoked_one_is_401(world: World) -> None:
    """A worker on another host records its jobs through the gateway: its writes and its artifact
    uploads (streamed, larger than any read's body) pass; a revoked worker token is refused."""
    store = WorkerTokenStore(world.api.settings.db_path)
    name = "w" + uuid.uuid4().hex[:8]
    token = store.add(name)
    auth = {"Authorization": "Basic " + base64.b64encode(f"{name}:{token}".encode()).decode()}
    run = world.bob_run
    logged = world.gateway.post("/api/2.0/mlflow/runs/log-metric", headers=auth,
                                json={"run_id": run, "key": "worker_metric", "value": 0.5, "timestamp": 0, "step": 0})
    assert logged.status_code == 200, logged.text
    assert world.tracking.get_run(run).data.metrics["worker_metric"] == 0.5
    blob = os.urandom(MAX_BODY + 4096)
    uploaded = world.gateway.put(f"/api/2.0/mlflow-artifacts/artifacts/{world.stored(run, 'from-worker.bin')}",
                                 headers=auth, content=blob)
    assert uploaded.status_code == 200, uploaded.text
    assert f"from-worker.bin:{len(blob)}" in world.snapshot(run)["files"]
    store.revoke(name)
    again = world.gateway.post("/api/2.0/mlflow/runs/log-metric", headers=auth,
                               json={"run_id": run, "key": "worker_metric", "value": 0.9, "timestamp": 0, "step": 1})
    assert again.status_code == 401
    assert world.tracking.get_run(run).data.metrics["worker_metric"] == 0.5
