"""`accelerator: gpu` through the API: refused with the fix while no live worker reports a GPU (nothing
committed or spent), accepted once one does."""

from __future__ import annotations

import json
import time

import redis

from leadersboard.contract import SANDBOX_GPUS, active_key, hourly_key, sandbox_key

from support.api import Api
from support.instances import GOOD_CONFIG, GOOD_MAIN

GPU_CONFIG = GOOD_CONFIG + "  accelerator: gpu\n"


def test_a_gpu_config_waits_for_a_gpu_worker(api: Api, redis_client: redis.Redis) -> None:
    user = next(iter(api.tokens))
    before = api.refs()
    refused = api.upload(user, {"main.py": GOOD_MAIN, "config.yaml": GPU_CONFIG})
    assert refused.status_code == 400, refused.text
    assert [p["rule"] for p in refused.json()["problems"]] == ["accelerator"]
    assert "accelerator: auto" in refused.json()["detail"]
    assert api.refs() == before and not redis_client.exists(hourly_key(user), active_key(user))

    redis_client.set(sandbox_key("gpu-host:1"), json.dumps({"executor": "process", SANDBOX_GPUS: 1}), ex=60)
    deadline = time.monotonic() + 10  # the service reads the workers' reports every second
    while "gpu-host:1" not in api.request("GET", "/healthz").json().get("sandboxes", {}):
        assert time.monotonic() < deadline, "the service did not see the worker's report"
        time.sleep(0.2)
    accepted = api.upload(user, {"main.py": GOOD_MAIN, "config.yaml": GPU_CONFIG})
    assert accepted.status_code == 201, accepted.text
