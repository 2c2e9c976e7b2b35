"""MLflow for participants, end to end: `leadersboard serve` with no MLflow configured starts its
tracking server privately on 127.0.0.1 and puts the read-only gateway on the MLflow port; a real job
writes its results there; a participant opens the MLflow UI in a real headless Chromium, signs in
when the browser asks, lands on the benchmarks' experiments and reads their own run's artifacts."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest
import yaml

from leadersboard import contract as c
from leadersboard.local.redis_server import RedisServer

from support.browser import Page, browser_page
from support.instances import Instance, create_instance, mlflow_template, unique_user
from support.platform import MLFLOW_MAIN, Platform

# What MLflow's UI asks at start for features this gateway does not serve (the private server has
# them neither): its own sign-in (the basic-auth app) and the assistant (a uvicorn-only router).
UI_PROBES = re.compile(r"/ajax-api/2\.0/mlflow/users/current|/ajax-api/3\.0/mlflow/assistant/")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Platform]:
    base = tmp_path_factory.mktemp("gateway")
    inst: Instance = create_instance(base, users=(unique_user(), unique_user()))
    document = yaml.safe_load(inst.config_path.read_text())
    document["runner"].update({"heartbeat_seconds": 1, "reconcile_seconds": 1})
    inst.config_path.write_text(yaml.safe_dump(document))
    # No tracking URI: serve starts its own server. A copy of an empty database spares its migrations.
    (inst.home / "mlflow").mkdir()
    shutil.copyfile(mlflow_template(), inst.home / "mlflow" / "mlflow.db")
    running = Platform(inst, redis_server.url, "", workers=1).start(timeout=180)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def finished_job(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    alice = next(iter(platform.instance.tokens))
    git = platform.client(tmp_path_factory.mktemp("clone"), alice)
    job_id = platform.submit(git, "notes", MLFLOW_MAIN.format(auroc=0.93, f1=0.8))
    job = platform.wait_status(job_id, alice)
    assert job["status"] == "completed", job
    return job


def tracking_url(platform: Platform) -> str:
    """The private tracking server's URL, as serve reports it."""
    found = re.search(r"in front of the tracking server (http://\S+);", platform.log())
    assert found, platform.log()
    return found.group(1)


def listening_addresses(port: int) -> set[str]:
    """The local IPv4/IPv6 addresses a socket listens on at `port` (from /proc/net/tcp*)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


@pytest.mark.timeout(600)  # 2-3 minutes here with the suite beside it, more on a busy CI host
def test_the_tracking_server_is_private_and_the_gateway_is_on_the_mlflow_port(
        platform: Platform, finished_job: dict[str, Any]) -> None:
    private = httpx.URL(tracking_url(platform))
    assert private.host == "127.0.0.1" and private.port != platform.mlflow_port
    assert listening_addresses(private.port or 0) == {"0100007F"}  # 127.0.0.1, and nothing else
    # The platform wrote the job's results there; participants meet the gateway, which wants a sign-in.
    assert httpx.get(f"{private}/health", timeout=10).status_code == 200
    anonymous = httpx.get(f"{platform.mlflow_gateway_url}/api/2.0/mlflow/experiments/search", timeout=10)
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Basic ")


def test_artifacts_are_the_owners_over_real_http(platform: Platform, finished_job: dict[str, Any]) -> None:
    alice, bob = platform.instance.tokens
    run = _job_run(platform, finished_job["job_id"], alice)
    params = {"run_uuid": run["info"]["run_id"], "path": c.LOG_ARTIFACT}
    mine = _gateway(platform, alice, "/get-artifact", params=params)
    assert mine.status_code == 200 and "done: auroc=0.93" in mine.text
    theirs = _gateway(platform, bob, "/get-artifact", params=params)
    assert theirs.status_code == 403 and "not yours" in theirs.json()["detail"]
    write = httpx.post(f"{platform.mlflow_gateway_url}/api/2.0/mlflow/runs/delete", timeout=10,
                       json={"run_id": run["info"]["run_id"]}, auth=(alice, platform.instance.tokens[alice]))
    assert write.status_code == 403
    assert _job_run(platform, finished_job["job_id"], bob)["info"]["lifecycle_stage"] == "active"


def test_a_participant_reads_their_run_in_the_mlflow_ui(platform: Platform, finished_job: dict[str, Any]) -> None:
    alice, bob = platform.instance.tokens
    run = _job_run(platform, finished_job["job_id"], alice)
    with browser_page() as page:
        page.answer_sign_in(alice, platform.instance.tokens[alice])
        page.goto(platform.mlflow_gateway_url + "/")
        # The landing page goes on to the experiments: the benchmark's is listed.
        page.wait_for("[...document.querySelectorAll('a')].find(a => a.textContent === 'visa/pcb1')", timeout=60)
        assert page.evaluate("location.search + location.hash") == "?ui#/experiments"
        assert [(ch["scheme"], ch["realm"]) for ch in page.challenges] == [("basic", "LeadersBoard")]
        page.click(f"a[href='#/experiments/{run['info']['experiment_id']}']")
        # "Model training" is the view: the runs table, where her run is.
        shown = f"document.body.innerText.includes({run['info']['run_name']!r})"
        page.wait_for(shown, timeout=60)
        assert "workflowType=machine_learning" in page.evaluate("location.hash")
        # The search the participants' guide gives finds one's own runs, and only those.
        for user, found in ((bob, False), (alice, True)):
            page.type("input[data-testid='search-box']", f'tags.leadersboard.user = "{user}"')
            page.press_enter()
            page.wait_for(f"location.hash.includes({quote_plus(user)!r}) && {'' if found else '!'}{shown}")

        page.goto(f"{platform.mlflow_gateway_url}/?ui#/experiments/{run['info']['experiment_id']}/runs/"
                  f"{run['info']['run_id']}/artifacts")
        _open_artifact(page, "notes.txt")
        page.wait_for("document.body.innerText.includes('my artifact')", timeout=30)
        _open_artifact(page, c.LOG_ARTIFACT_DIR)
        _open_artifact(page, c.LOG_FILE)
        page.wait_for("document.body.innerText.includes('done: auroc=0.93')", timeout=30)
        refused = [(method, url, status) for method, url, status in page.responses
                   if status >= 400 and not UI_PROBES.search(url)]
        assert refused == [], refused
        assert page.exceptions == []


def test_without_credentials_the_browser_is_asked_and_gets_nothing(platform: Platform) -> None:
    with browser_page() as page:
        page.answer_sign_in(None)  # the participant cancels the prompt
        page.goto(platform.mlflow_gateway_url + "/")
        page.wait_for("document.body.innerText.includes('Sign in with your user name and API token')")
        assert [ch["realm"] for ch in page.challenges] == ["LeadersBoard"]
        landing = [status for _, url, status in page.responses if url == platform.mlflow_gateway_url + "/"]
        assert landing and set(landing) == {401}, page.responses


def _open_artifact(page: Page, name: str) -> None:
    """Click the entry `name` in the run's artifact tree."""
    # The innermost element that holds just the name (the tree's markup is MLflow's to change).
    found = f"[...document.querySelectorAll('body *')].filter(e => e.textContent === {name!r}).pop()"
    page.wait_for(found, timeout=30)
    page.evaluate(f"{found}.click()")


def _gateway(platform: Platform, user: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(platform.mlflow_gateway_url + path, auth=(user, platform.instance.tokens[user]), timeout=30,
                     **kwargs)


def _job_run(platform: Platform, job_id: str, user: str) -> dict[str, Any]:
    """The job's run, searched for through the gateway as any participant may (`tags.leadersboard.user`
    finds one's own runs; the job id, this one)."""
    experiments = _gateway(platform, user, "/api/2.0/mlflow/experiments/search", params={"max_results": "100"})
    ids = [e["experiment_id"] for e in experiments.json()["experiments"]]
    found = httpx.post(f"{platform.mlflow_gateway_url}/api/2.0/mlflow/runs/search", timeout=30,
                       auth=(user, platform.instance.tokens[user]),
                       json={"experiment_ids": ids, "filter": f"tags.`{c.TAG_JOB_ID}` = '{job_id}'"})
    assert found.status_code == 200, found.text
    [run] = found.json()["runs"]
    return dict(run)
