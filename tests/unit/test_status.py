"""`leadersboard status` against a real Redis: live workers, the queue per class, running and pending
jobs with their owners, admission's refusals, the rules' rejections; a clear refusal without a configured Redis."""

from __future__ import annotations

import json
import time
from pathlib import Path

import redis
from click.testing import CliRunner

from leadersboard import db
from leadersboard.cli import instance
from leadersboard.cli.main import main
from leadersboard.contract import (
    REFUSALS_KEY,
    REJECTIONS_KEY,
    SANDBOX_REPORTED_AT,
    active_key,
    heartbeat_key,
    sandbox_key,
)
from leadersboard.job_index import JobIndex
from leadersboard.local.redis_server import RedisServer
from leadersboard.settings import Settings


def _job(settings: Settings, job_id: str, user: str, resource_class: str | None) -> None:
    """A job in the instance's index (and the submission it belongs to), as the service records them."""
    with db.connect(settings.db_path) as conn:
        conn.execute("INSERT INTO submissions (id, user, commit_id, folder, ref, tree_id, entrypoint, config_file, "
                     "benchmark, metadata, resource_class, run, created_at, job_id) VALUES "
                     "(?, ?, 'c', 'f', 'r', 't', 'main.py', 'config.yaml', 'visa/pcb1', '{}', ?, 1, 0, ?)",
                     ("s" + job_id, user, resource_class, job_id))
    JobIndex(settings.db_path).add(job_id, "run" + job_id, "s" + job_id, user, "visa/pcb1", resource_class, 0.0)


def test_status_prints_workers_queue_jobs_and_refusals(tmp_path: Path, redis_server: RedisServer,
                                                       redis_client: redis.Redis) -> None:
    settings = Settings.load(tmp_path / "home", environ={})
    instance.init(settings)
    _job(settings, "j1", "alice", "small")
    _job(settings, "j2", "bob", None)
    redis_client.set(sandbox_key("host:7"), json.dumps({"executor": "docker", "level": "confined", "gpus": 1,
                                                         SANDBOX_REPORTED_AT: time.time() - 4}))
    redis_client.zadd(settings.queue_name, {"j2": 1})
    redis_client.zadd(active_key("alice"), {"j1": 1})
    redis_client.zadd(active_key("bob"), {"j2": 1})
    redis_client.set(heartbeat_key("j1"), "host:7")
    redis_client.hset(REFUSALS_KEY, "rate-limit", "3")
    redis_client.hset(REJECTIONS_KEY, mapping={"entrypoint": "2", "config": "5"})

    ran = CliRunner().invoke(main, ["status", "--home", str(settings.home)],
                             env={"LEADERSBOARD_REDIS_URL": redis_server.url})
    assert ran.exit_code == 0, ran.output
    lines = ran.output.splitlines()
    assert lines[0] == "workers: 1 live (none polls the queue)"
    assert lines[1].startswith("  host:7: docker executor, confined, 1 GPU(s), reported 4 s ago")
    assert "queue: 1 queued (small 0, medium 1, large 0)" in lines
    assert lines[lines.index("running: 1") + 1] == "  j1  alice  small  visa/pcb1"
    assert lines[lines.index("pending: 1") + 1] == "  j2  bob  medium  visa/pcb1"
    assert lines[-2:] == ["refusals: rate-limit 3", "rejected by the rules: config 5, entrypoint 2"]


def test_status_without_a_configured_redis(tmp_path: Path) -> None:
    settings = Settings.load(tmp_path / "home", environ={})
    instance.init(settings)
    ran = CliRunner().invoke(main, ["status", "--home", str(settings.home)], env={"LEADERSBOARD_REDIS_URL": ""})
    assert ran.exit_code == 1 and "no Redis is configured" in ran.output
