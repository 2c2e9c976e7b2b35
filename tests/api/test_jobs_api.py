"""The REST API in process: uploads become commits and pending jobs, the caller's jobs and only
theirs, cancel, the two-step POST /jobs, and refusals that leave nothing behind."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import redis

from leadersboard.contract import active_key, hourly_key

from support.api import Api, web_client

STATUS_KEYS = {"job_id", "submission_id", "status", "benchmark", "created_at", "started_at", "finished_at",
               "metrics", "error"}


def test_health_and_openapi(api: Api) -> None:
    health = api.request("GET", "/healthz")
    assert health.status_code == 200
    assert health.json() == {"redis": "ok", "mlflow": "ok", "workers": "none seen", "sandbox": "none seen",
                             "sandboxes": {}, "status": "ok"}
    paths = api.request("GET", "/openapi.json").json()["paths"]
    assert {"/submissions", "/jobs", "/jobs/{job_id}/status", "/jobs/{job_id}/logs", "/jobs/{job_id}/cancel"} <= set(
        paths)
    assert not any(path.startswith("/internal") for path in paths)
    schema = paths["/submissions"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert {"files", "entrypoint", "config_file", "metadata"} <= set(schema["properties"])


def test_a_token_is_needed(api: Api) -> None:
    user = next(iter(api.tokens))
    missing = api.request("GET", "/jobs")
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.json() == {"detail": "Missing token: send 'Authorization: Bearer <token>'"}
    bad = api.request("GET", "/jobs", headers={"Authorization": "Bearer lbt_nope"})
    assert bad.status_code == 401 and bad.json()["detail"] == "Invalid or revoked token"
    assert api.request("GET", "/jobs", user).status_code == 200


def test_an_upload_becomes_a_commit_and_a_pending_job(api: Api) -> None:
    alice, bob = api.tokens
    answer = api.upload(alice, metadata='{"method": "PaDiM"}')
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["status"] == "pending" and body["folder"] == "padim" and body["benchmark"] == "visa/pcb1"
    assert api.refs()[f"refs/heads/users/{alice}"] == body["commit"]

    status = api.request("GET", f"/jobs/{body['job_id']}/status", alice).json()
    assert set(status) >= STATUS_KEYS
    assert (status["status"], status["submission_id"], status["metrics"], status["error"]) == (
        "pending", body["submission_id"], {}, None)
    assert [job["job_id"] for job in api.request("GET", "/jobs", alice).json()] == [body["job_id"]]
    assert api.request("GET", f"/jobs/{body['job_id']}/logs", alice).text == ""

    assert api.request("GET", "/jobs", bob).json() == []
    for method, path in (("GET", "status"), ("GET", "logs"), ("POST", "cancel")):
        other = api.request(method, f"/jobs/{body['job_id']}/{path}", bob)
        assert other.status_code == 403 and other.json() == {"detail": "This job is not yours"}
    for unknown in ("0" * 32, "not-a-job"):
        assert api.request("GET", f"/jobs/{unknown}/status", alice).status_code == 404


def test_a_rule_breaking_upload_changes_nothing(api: Api, redis_client: redis.Redis) -> None:
    user = next(iter(api.tokens))
    before = api.refs()
    answer = api.upload(user, {"main.py": "def helper():\n    pass\n", "config.yaml": "- x\n"})
    assert answer.status_code == 400
    assert sorted(p["rule"] for p in answer.json()["problems"]) == ["config", "entrypoint"]
    assert answer.json()["detail"].startswith("Submission rejected, nothing was changed.")
    assert api.refs() == before
    assert not redis_client.exists(hourly_key(user), active_key(user))


def test_over_the_hourly_limit_is_429_and_spends_nothing(make_api: Callable[..., Api],
                                                        redis_client: redis.Redis) -> None:
    api = make_api(users=1, submissions_per_hour=1)
    user = next(iter(api.tokens))
    assert api.upload(user, folder="one").status_code == 201
    refs = api.refs()
    refused = api.upload(user, folder="two")
    assert refused.status_code == 429
    assert refused.json()["detail"].startswith("[rate-limit] 1 per hour: 0 of 1 submissions left")
    assert int(refused.headers["retry-after"]) > 3000
    assert refused.headers["x-ratelimit-remaining-submissions"] == "0"
    assert api.refs() == refs and redis_client.zcard(hourly_key(user)) == 1


def test_too_large_is_413(make_api: Callable[..., Api]) -> None:
    api = make_api(users=1, max_file_bytes=1024, max_submission_bytes=4096)
    user = next(iter(api.tokens))
    answer = api.upload(user, {"main.py": "x" * 2048, "config.yaml": "model: {}\n"})
    assert answer.status_code == 413 and "limit" in answer.json()["detail"]
    assert api.refs() == {}


def test_run_false_then_post_jobs_and_its_limit(make_api: Callable[..., Api], redis_client: redis.Redis) -> None:
    api = make_api(users=1, max_active_jobs=1)
    user = next(iter(api.tokens))
    first = api.upload(user, folder="first")
    recorded = api.upload(user, folder="later", run="false").json()
    assert recorded["job_id"] is None and recorded["status"] is None

    refused = api.request("POST", "/jobs", user, json={"submission_id": recorded["submission_id"]})
    assert refused.status_code == 429 and refused.json()["detail"].startswith("[concurrency] 1 at once")
    assert redis_client.zrange(active_key(user), 0, -1) == [first.json()["job_id"].encode()]
    assert len(api.request("GET", "/jobs", user).json()) == 1  # the refused call made no job

    cancelled = api.request("POST", f"/jobs/{first.json()['job_id']}/cancel", user)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["error"] == "cancelled on request" and redis_client.zcard(active_key(user)) == 0
    assert api.request("POST", f"/jobs/{first.json()['job_id']}/cancel", user).status_code == 409

    queued = api.request("POST", "/jobs", user, json={"submission_id": recorded["submission_id"],
                                                      "config": {"resource_class": "medium"}})
    assert queued.status_code == 202 and queued.json()["status"] == "pending"
    assert redis_client.zrange(active_key(user), 0, -1) == [queued.json()["job_id"].encode()]


def test_malformed_job_requests(api: Api) -> None:
    alice, bob = api.tokens
    submission = api.upload(alice, run="false").json()["submission_id"]
    cases = [({"submission_id": "x"}, 400), ({"submission_id": submission, "extra": 1}, 400),
             ({"submission_id": submission, "config": {"resource_class": "Big!"}}, 400),
             ({"submission_id": "f" * 32}, 404)]
    for body, code in cases:
        answer = api.request("POST", "/jobs", alice, json=body)
        assert answer.status_code == code and "detail" in answer.json(), (body, answer.text)
    assert api.request("POST", "/jobs", bob, json={"submission_id": submission}).status_code == 403
    broken = api.request("POST", "/jobs", alice, content=b"{", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.json()["detail"].startswith("Malformed request")


def test_the_web_form_is_served_on_its_own_port(api: Api) -> None:
    web = web_client(api)
    page = web.get("/", headers={"Accept-Language": "ja,en;q=0.5"})
    assert page.status_code == 200 and '<html lang="ja">' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert web.get("/?lang=en").text.count('<html lang="en">') == 1
    assert web.get("/static/web.js").headers["content-type"].startswith("text/javascript")
    assert web.get("/static/../leadersboard.yaml").status_code == 404
    user = next(iter(api.tokens))
    assert web.get("/api/jobs", headers=api.auth(user)).json() == []
    assert web.get("/api/jobs").status_code == 401


def test_malformed_bodies_are_400_and_change_nothing(api: Api, redis_client: redis.Redis) -> None:
    user = next(iter(api.tokens))
    part = b'--XYZ\r\nContent-Disposition: form-data; name="files"; filename="main.py"\r\n\r\nx\r\n--XYZ--\r\n'
    for body, ctype in ((part, "multipart/form-data; boundary=ABC"), (bytes(range(256)) * 10,
                                                                       "multipart/form-data; boundary=ABC"),
                        (b"abc", "multipart/form-data"), (b"{}", "application/json")):
        answer = api.request("POST", "/submissions", user, content=body, headers={"Content-Type": ctype})
        assert answer.status_code == 400 and answer.json()["detail"], (ctype, answer.text)
    assert api.refs() == {} and not redis_client.exists(hourly_key(user))


def test_a_rerun_counts_against_the_hourly_limit(make_api: Callable[..., Api], redis_client: redis.Redis) -> None:
    api = make_api(users=1, submissions_per_hour=2)
    user = next(iter(api.tokens))
    first = api.upload(user).json()
    assert api.request("POST", f"/jobs/{first['job_id']}/cancel", user).status_code == 200
    rerun = api.request("POST", "/jobs", user, json={"submission_id": first["submission_id"]})
    assert rerun.status_code == 202 and redis_client.zcard(hourly_key(user)) == 2
    assert api.request("POST", f"/jobs/{rerun.json()['job_id']}/cancel", user).status_code == 200
    refused = api.request("POST", "/jobs", user, json={"submission_id": first["submission_id"]})
    assert refused.status_code == 429 and refused.json()["detail"].startswith("[rate-limit] 2 per hour")


def test_the_guides_two_calls_make_one_job_and_spend_one_slot(api: Api, redis_client: redis.Redis) -> None:
    user = next(iter(api.tokens))
    submitted = api.upload(user).json()
    # The guide's second call, its body as the guide writes it: the job the upload made, nothing more.
    guide_body = '{"submission_id":"SUB","config":{"resource_class":"medium"}}'
    answer = api.request("POST", "/jobs", user, content=guide_body.replace("SUB", submitted["submission_id"]),
                         headers={"Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"job_id": submitted["job_id"], "status": "pending", "resource_class": "medium"}
    assert [job["job_id"] for job in api.request("GET", "/jobs", user).json()] == [submitted["job_id"]]
    assert redis_client.zrange(active_key(user), 0, -1) == [submitted["job_id"].encode()]
    assert redis_client.zcard(hourly_key(user)) == 1


def test_concurrent_reruns_make_one_job(api: Api, redis_client: redis.Redis) -> None:
    user = next(iter(api.tokens))
    first = api.upload(user).json()
    assert api.request("POST", f"/jobs/{first['job_id']}/cancel", user).status_code == 200
    body = {"submission_id": first["submission_id"]}
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: api.request("POST", "/jobs", user, json=body), range(4)))
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 202]
    assert len({a.json()["job_id"] for a in answers}) == 1
    rerun = answers[0].json()["job_id"]
    assert rerun != first["job_id"]
    assert sorted(job["job_id"] for job in api.request("GET", "/jobs", user).json()) == sorted([rerun, first["job_id"]])
    assert redis_client.zrange(active_key(user), 0, -1) == [rerun.encode()]
    assert redis_client.zcard(hourly_key(user)) == 2  # the upload's and the re-run's


def test_an_unknown_resource_class_is_refused_and_changes_nothing(api: Api, redis_client: redis.Redis) -> None:
    user = next(iter(api.tokens))
    listed = "this instance offers small, medium, large (default medium)"
    upload = api.upload(user, resource_class="xlarge")
    assert upload.status_code == 400 and listed in upload.json()["detail"]
    assert api.refs() == {} and not redis_client.exists(hourly_key(user), active_key(user))

    recorded = api.upload(user, run="false").json()
    refused = api.request("POST", "/jobs", user, json={"submission_id": recorded["submission_id"],
                                                       "config": {"resource_class": "gpu-huge"}})
    assert refused.status_code == 400 and listed in refused.json()["detail"]
    assert api.request("GET", "/jobs", user).json() == [] and not redis_client.exists(active_key(user))

    small = api.request("POST", "/jobs", user, json={"submission_id": recorded["submission_id"],
                                                     "config": {"resource_class": "small"}})
    assert small.status_code == 202 and small.json()["resource_class"] == "small"
    status = api.request("GET", f"/jobs/{small.json()['job_id']}/status", user).json()
    assert status["status"] == "pending"
