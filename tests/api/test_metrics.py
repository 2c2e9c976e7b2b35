"""GET /metrics for operators: an admin's scrape in Prometheus' text format, whose counts follow the
jobs made and refused through the API; participants and anonymous callers get nothing; with Redis
down, the Redis series are left out at once. Each test has a Redis of its own, so its counts are
exact while other test processes run."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis

from leadersboard import job_durations
from leadersboard.contract import SANDBOX_REPORTED_AT, sandbox_key
from leadersboard.local.redis_server import RedisServer, start_redis
from leadersboard.users import UserStore

from support.api import Api, open_api
from support.instances import GOOD_MAIN
from support.shared import SessionMlflow

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*\})? '
                    r"(-?[0-9.e+-]+|[+-]Inf|NaN)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
SUFFIXES = ("_bucket", "_sum", "_count")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = start_redis(tmp_path / "redis", appendonly=False)
    yield server
    server.stop()


@pytest.fixture
def api(tmp_path: Path, own_redis: RedisServer, mlflow_server: SessionMlflow) -> Iterator[Api]:
    made = open_api(tmp_path / "api", own_redis.url, mlflow_server.url, users=1, submissions_per_hour=2)
    admin = "a" + uuid.uuid4().hex[:10]
    made.tokens[admin] = UserStore(made.settings.db_path).add(admin, admin=True)
    yield made
    made.close()


def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The samples of a strict reading of the format: every family's HELP and TYPE once, before its
    samples; every other line `name{labels} value`; a sample's name is its family's (or a histogram's
    suffix of it)."""
    assert text.endswith("\n")
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    helped: set[str] = set()
    typed: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert name not in helped and name not in typed, line
            helped.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name in helped and name not in typed and kind in ("counter", "gauge", "histogram"), line
            typed[name] = kind
        else:
            match = SAMPLE.match(line)
            assert match, line
            name = match.group(1)
            family = next((name.removesuffix(s) for s in SUFFIXES if typed.get(name.removesuffix(s)) == "histogram"),
                          name)
            assert family == list(typed)[-1], f"{line}: not under its own family's TYPE"
            labels = frozenset(LABEL.findall(match.group(2) or ""))
            assert (name, labels) not in samples, line
            samples[(name, labels)] = float(match.group(3))
    return samples


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def scrape(api: Api) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    answer = api.request("GET", "/metrics", list(api.tokens)[-1])
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(answer.text)


def test_an_admin_reads_counts_that_follow_the_api(api: Api) -> None:
    participant = next(iter(api.tokens))
    before = scrape(api)
    assert value(before, "leadersboard_redis_up") == 1 and value(before, "leadersboard_queue_depth") == 0
    assert value(before, "leadersboard_admission_refusals_total", reason="rate-limit") == 0
    assert value(before, "leadersboard_jobs", status="pending", resource_class="small") == 0

    assert api.upload(participant, folder="one", resource_class="small").status_code == 201
    assert api.upload(participant, folder="two").status_code == 201  # the default class, medium
    assert api.upload(participant, folder="three").status_code == 429  # over the hourly limit of 2

    deadline = time.monotonic() + 10
    while True:  # a job is queued by its hand-over, just after the upload's answer
        after = scrape(api)
        if value(after, "leadersboard_queue_depth") == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for cls in ("small", "medium"):
        assert value(after, "leadersboard_jobs_created_total", resource_class=cls) == 1
        assert value(after, "leadersboard_jobs", status="pending", resource_class=cls) == 1
        assert value(after, "leadersboard_jobs", status="running", resource_class=cls) == 0
        assert value(after, "leadersboard_queue_jobs", resource_class=cls) == 1
    assert value(after, "leadersboard_jobs_created_total", resource_class="large") == 0
    assert value(after, "leadersboard_queue_depth") == 2
    assert value(after, "leadersboard_admission_refusals_total", reason="rate-limit") == 1
    assert value(after, "leadersboard_admission_refusals_total", reason="concurrency") == 0
    assert value(after, "leadersboard_workers") == 0 and value(after, "leadersboard_workers_polling") == 0
    assert value(after, "leadersboard_jobs_ended_total", status="cancelled", resource_class="small") == 0

    small = next(job for job in api.request("GET", "/jobs", participant).json() if job["resource_class"] == "small")
    assert api.request("POST", f"/jobs/{small['job_id']}/cancel", participant).status_code == 200
    ended = scrape(api)
    assert value(ended, "leadersboard_jobs_ended_total", status="cancelled", resource_class="small") == 1
    assert value(ended, "leadersboard_jobs_ended_total", status="cancelled", resource_class="medium") == 0
    assert value(ended, "leadersboard_jobs_ended_total", status="completed", resource_class="small") == 0
    assert value(ended, "leadersboard_jobs", status="pending", resource_class="small") == 0


def test_the_rules_rejections_are_counted_per_rule(api: Api) -> None:
    participant = next(iter(api.tokens))
    assert not any(name == "leadersboard_submissions_rejected_total" for name, _ in scrape(api))
    no_config = api.upload(participant, {"main.py": GOOD_MAIN}, folder="one")
    broken = api.upload(participant, {"main.py": "def main(:\n", "config.yaml": "data: [unclosed\n"}, folder="two")
    assert no_config.status_code == broken.status_code == 400, (no_config.text, broken.text)
    after = scrape(api)
    assert value(after, "leadersboard_submissions_rejected_total", rule="config") == 2  # once per upload
    assert value(after, "leadersboard_submissions_rejected_total", rule="entrypoint") == 1
    assert value(after, "leadersboard_admission_refusals_total", reason="rate-limit") == 0  # the rules spent nothing
    assert api.upload(participant).status_code == 201


def test_only_admins(api: Api) -> None:
    participant = next(iter(api.tokens))
    assert api.request("GET", "/metrics").status_code == 401
    refused = api.request("GET", "/metrics", participant)
    assert refused.status_code == 403 and refused.json() == {"detail": "Only admins read /metrics"}


def test_redis_down_leaves_its_series_out_at_once(api: Api, own_redis: RedisServer) -> None:
    own_redis.stop()
    deadline = time.monotonic() + 10
    while api.request("GET", "/healthz").json()["redis"] != "down":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    started = time.monotonic()
    samples = scrape(api)
    assert time.monotonic() - started < 1.0
    assert value(samples, "leadersboard_redis_up") == 0 and value(samples, "leadersboard_mlflow_up") == 1
    assert value(samples, "leadersboard_jobs_created_total", resource_class="medium") == 0
    assert not any(name in ("leadersboard_queue_depth", "leadersboard_jobs") for name, _ in samples)


def test_workers_and_run_times_as_workers_report_them(api: Api, own_redis: RedisServer) -> None:
    sync = redis.Redis.from_url(own_redis.url)
    sync.set(sandbox_key("host:1"), json.dumps({"executor": "process", SANDBOX_REPORTED_AT: time.time() - 5}), ex=30)
    sync.close()

    async def two_jobs_ended() -> None:  # what a worker adds when a job ends
        client = Redis.from_url(own_redis.url)
        await job_durations.observe(client, "small", 90.5)
        await job_durations.observe(client, None, 30)  # no class named: the default, medium
        await client.aclose()

    asyncio.run(two_jobs_ended())
    samples = scrape(api)
    assert value(samples, "leadersboard_workers") == 1
    assert 5 <= value(samples, "leadersboard_worker_heartbeat_age_seconds", worker="host:1") < 8
    bucket = "leadersboard_job_duration_seconds_bucket"
    assert [value(samples, bucket, resource_class="small", le=le) for le in ("60", "300", "+Inf")] == [0, 1, 1]
    assert value(samples, "leadersboard_job_duration_seconds_sum", resource_class="small") == 90.5
    assert value(samples, bucket, resource_class="medium", le="60") == 1
    assert value(samples, "leadersboard_job_duration_seconds_count", resource_class="large") == 0
