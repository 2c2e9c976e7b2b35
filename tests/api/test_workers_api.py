"""Worker hosts and the API: GET /workers/join answers a worker token (and only one) with what a
worker elsewhere needs; the REST API refuses a worker token with a sentence that says what it is."""

from __future__ import annotations

import uuid

from leadersboard.worker_tokens import WorkerTokenStore

from support.api import Api


def test_join_answers_a_worker_token_with_the_queue_mlflow_limits_classes_and_data_sets(api: Api) -> None:
    name = "w" + uuid.uuid4().hex[:8]
    token = WorkerTokenStore(api.settings.db_path).add(name)
    answer = api.client.get("/workers/join", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    joined = answer.json()
    assert joined["worker"] == name
    # The server's Redis listens on loopback here: a worker elsewhere is told the host it reached the API by.
    assert api.settings.redis_url and "@127.0.0.1:" in api.settings.redis_url
    assert joined["redis_url"] == api.settings.redis_url.replace("@127.0.0.1:", "@testserver:")
    assert joined["queue_name"] == api.settings.queue_name
    assert joined["mlflow_tracking_uri"] == f"http://testserver:{api.settings.mlflow_port}"  # the gateway
    assert joined["limits"]["job_timeout_seconds"] == api.settings.limits.job_timeout_seconds
    assert joined["resource_classes"] == api.settings.resource_classes.to_config()
    assert joined["datasets"] == {"visa": api.settings.datasets["visa"].version}
    assert joined["datasets"]["visa"].startswith("sha256:")


def test_join_refuses_users_and_bad_tokens_and_the_api_refuses_worker_tokens(api: Api) -> None:
    store = WorkerTokenStore(api.settings.db_path)
    token = store.add("w" + uuid.uuid4().hex[:8])
    user = next(iter(api.tokens))
    assert api.client.get("/workers/join").status_code == 401
    refused = api.request("GET", "/workers/join", user)
    assert refused.status_code == 403 and "worker-token add" in refused.json()["detail"]
    assert api.client.get("/workers/join", headers={"Authorization": f"Bearer {token}x"}).status_code == 401
    jobs = api.client.get("/jobs", headers={"Authorization": f"Bearer {token}"})
    assert jobs.status_code == 401 and "worker token" in jobs.json()["detail"]
