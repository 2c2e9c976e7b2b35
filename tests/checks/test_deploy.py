"""The deployment files (deploy/, docs/deploy.md) are artefacts that must work as shipped.

- Debian's docker-compose 1.29, the one these machines have, accepts both compose files (`config`);
- every service runs the image the operator builds here (no registry is reachable), with the ports of
  DESIGN.md, and Redis keeps an append-only file;
- the worker file gives each worker its own GPU, the one its `--gpus` names;
- systemd accepts the units (`systemd-analyze verify`, with the paths of this checkout).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose"
SYSTEMD = ROOT / "deploy" / "systemd"
INSTALLED = "/opt/leadersboard/.venv/bin/leadersboard"  # where docs/deploy.md installs it
IMAGE = "leadersboard:latest"
VARIABLES = {"LEADERSBOARD_REDIS_PASSWORD": "0123abcd", "LEADERSBOARD_SERVER": "https://lb.example.org",
             "LEADERSBOARD_WORKER_TOKEN": "worker-token-for-the-check"}


def _config(name: str, variables: dict[str, str] = VARIABLES) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is missing: apt-get install docker-compose (scripts/install.sh --test does)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEADERSBOARD_", "COMPOSE_", "DOCKER_"))}
    return subprocess.run([binary, "-f", str(COMPOSE / name), "--project-directory", str(COMPOSE), "config"],
                          capture_output=True, text=True, env={**env, **variables}, timeout=60, check=False)


def _services(name: str) -> dict[str, Any]:
    result = _config(name)
    assert result.returncode == 0, f"docker-compose rejects {name}:\n{result.stderr}"
    services: dict[str, Any] = yaml.safe_load(result.stdout)["services"]
    return services


def test_docker_compose_is_debians_1_29() -> None:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is missing: apt-get install docker-compose"
    answer = subprocess.run([binary, "version", "--short"], capture_output=True, text=True, timeout=60, check=False)
    assert answer.stdout.startswith("1.29"), answer.stdout + answer.stderr


@pytest.mark.parametrize("name", ["server.yml", "worker.yml"])
def test_compose_file_is_valid_and_runs_the_local_image(name: str) -> None:
    services = _services(name)
    assert services
    for service, spec in services.items():
        assert spec["image"] == IMAGE, f"{service} runs {spec['image']}: only the locally built image exists"
        assert spec["restart"] == "unless-stopped" and spec["init"] is True, service


@pytest.mark.parametrize(("name", "missing"), [("server.yml", "LEADERSBOARD_REDIS_PASSWORD"),
                                                ("worker.yml", "LEADERSBOARD_WORKER_TOKEN")])
def test_compose_file_refuses_to_run_without_its_secret(name: str, missing: str) -> None:
    result = _config(name, {k: v for k, v in VARIABLES.items() if k != missing})
    assert result.returncode != 0 and missing in result.stderr


def test_server_publishes_the_contract_ports_and_keeps_redis_appending() -> None:
    services = _services("server.yml")
    assert set(services) == {"redis", "mlflow", "server"}
    # 1.29 writes the short syntax back: ADDRESS:PUBLISHED:TARGET/PROTOCOL
    assert set(services["server"]["ports"]) == {"127.0.0.1:8010:8010/tcp", "127.0.0.1:8501:8501/tcp",
                                                "127.0.0.1:5010:5010/tcp"}
    assert "ports" not in services["mlflow"], "the tracking server is private: participants use the gateway"
    # gunicorn's MLflow refuses --allowed-hosts and checks Host against this list: serve calls it by name.
    assert "mlflow:5000" in services["mlflow"]["environment"]["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert "--allowed-hosts" not in " ".join(services["mlflow"]["command"])
    redis = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis and "requirepass" in redis
    assert VARIABLES["LEADERSBOARD_REDIS_PASSWORD"] not in redis, "the password must not be on a command line"
    environment = services["server"]["environment"]
    assert environment["LEADERSBOARD_REDIS_URL"].endswith("@redis:6379/0")
    assert environment["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    serve = " ".join(services["server"]["command"])
    assert "leadersboard serve --host 0.0.0.0" in serve


def test_each_worker_owns_the_gpu_its_command_names() -> None:
    services = _services("worker.yml")
    assert services
    for service, spec in services.items():
        command = " ".join(spec["command"])
        assert "exec leadersboard worker --gpus" in command and "--token" not in command, service
        assert VARIABLES["LEADERSBOARD_WORKER_TOKEN"] not in command, "the token must come from the environment"
        assert set(spec["environment"]) >= {"LEADERSBOARD_SERVER", "LEADERSBOARD_WORKER_TOKEN"}, service
        gpu = re.search(r"--gpus (\d+)\b", command)
        assert gpu, f"{service}: no --gpus N"
        (device,) = spec["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
        assert device["device_ids"] == [gpu.group(1)], f"{service} reserves {device['device_ids']}"
        assert spec["environment"]["LEADERSBOARD_EXECUTOR"] == "docker"


def test_systemd_units_verify(tmp_path: Path) -> None:
    binary = shutil.which("systemd-analyze")
    assert binary, "systemd-analyze is missing: apt-get install systemd (scripts/install.sh --test does)"
    here = shutil.which("leadersboard") or str(Path(sys.executable).parent / "leadersboard")
    names = []
    for unit in sorted(SYSTEMD.glob("*.service")):
        text = unit.read_text(encoding="utf-8")
        assert INSTALLED in text, unit.name
        # The units run as a `leadersboard` account and from /opt, which this machine need not have.
        text = text.replace(INSTALLED, here).replace("=leadersboard\n", "=root\n")
        name = unit.name.replace("@.", "@0.")  # a template is verified through one of its instances
        (tmp_path / name).write_text(text, encoding="utf-8")
        names.append(name)
    assert names == ["leadersboard-worker@0.service", "leadersboard.service"]
    result = subprocess.run([binary, "verify", *names], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_units_read_secrets_from_environment_files_only() -> None:
    for unit in SYSTEMD.glob("*.service"):
        text = unit.read_text(encoding="utf-8")
        assert "EnvironmentFile=/etc/leadersboard/" in text, unit.name
        assert "TOKEN=" not in text and "PASSWORD" not in text and "KillMode=mixed" in text, unit.name
