"""The one settings object: defaults, the config file, the environment, and errors that name the key."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml

from leadersboard.datasets import Dataset
from leadersboard.settings import (
    CONFIG_FILE,
    Limits,
    RunnerSettings,
    Settings,
    SettingsError,
    config_document,
    size_bytes,
)


def write(home: Path, document: object) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / CONFIG_FILE
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def test_defaults_without_a_config_file(tmp_path: Path) -> None:
    settings = Settings.load(tmp_path, environ={})
    assert settings.home == tmp_path.resolve()
    assert settings.limits == Limits() and settings.runner == RunnerSettings()
    assert (settings.limits.submissions_per_hour, settings.limits.max_active_jobs) == (10, 3)
    assert (settings.api_port, settings.web_port, settings.mlflow_port) == (8010, 8501, 5010)
    assert settings.redis_url is None and settings.mlflow_tracking_uri is None
    assert settings.base_url == "http://127.0.0.1:8010"
    assert settings.repo_path == settings.home / "submissions.git"


def test_home_from_the_environment(tmp_path: Path) -> None:
    assert Settings.load(environ={"LEADERSBOARD_HOME": str(tmp_path)}).home == tmp_path.resolve()


def test_the_config_file_and_environment_overrides(tmp_path: Path) -> None:
    write(tmp_path, {"limits": {"max_active_jobs": 5, "job_memory": "8g"}, "runner": {"executor": "docker"},
                     "datasets": {"visa": "/data/visa"},
                     "server": {"api_port": 9000, "public_url": "https://lb.example.org",
                                "redis_url": "redis://file", "mlflow_tracking_uri": "http://file"}})
    settings = Settings.load(tmp_path, environ={"LEADERSBOARD_REDIS_URL": "redis://env",
                                                "LEADERSBOARD_EXECUTOR": "process"})
    assert settings.limits.max_active_jobs == 5 and settings.limits.submissions_per_hour == 10
    assert settings.runner.executor == "process" and settings.limits.job_memory == "8g"
    assert settings.datasets == {"visa": Dataset("visa", Path("/data/visa"))}
    assert settings.api_port == 9000 and settings.base_url == "https://lb.example.org"
    assert settings.redis_url == "redis://env" and settings.mlflow_tracking_uri == "http://file"


@pytest.mark.parametrize(("document", "message"), [
    ({"limit": {}}, "unknown sections limit; known: limits, runner, datasets, server, access"),
    ({"limits": {"per_hour": 3}}, "Config section 'limits' has unknown keys: per_hour"),
    ({"limits": {"max_active_jobs": "3"}}, "Config 'limits.max_active_jobs' must be a whole number ≥ 0, not '3'"),
    ({"limits": {"max_active_jobs": True}}, "must be a whole number"),
    ({"limits": {"max_active_jobs": -1}}, "must be a whole number"),
    ({"runner": {"python": 3}}, "Config 'runner.python' must be text, not 3"),
    ({"runner": {"executor": "kubernetes"}}, "Config 'runner.executor' must be one of: process, docker"),
    ({"limits": {"job_memory": "lots"}}, "Config 'limits.job_memory' must be a size such as 512m or 16g"),
    ({"limits": {"job_scratch_size": "0"}}, "Config 'limits.job_scratch_size' must be a size such as 512m"),
    ({"limits": {"job_cpus": 0}}, "Config 'limits.job_cpus' must be at least 1"),
    ({"runner": {"docker_cpus": 0}}, "Config 'limits.job_cpus' must be at least 1"),  # its old name
    ({"runner": {"sandbox_uid": 0}}, "Config 'runner.sandbox_uid' must be at least 1"),
    ({"runner": {"docker_pids": 64}, "limits": {"job_pids": 128}},
     "'runner.docker_pids' is the old name of 'limits.job_pids', and they differ"),
    ({"limits": [1]}, "Config section 'limits' must be a mapping"),
    ({"datasets": ["visa"]}, "Config 'datasets' must map names to data set entries"),
    ({"datasets": {"visa": {"path": "/d", "scoring": "trust-me"}}},
     "Config 'datasets.visa.scoring' must be one of: self_reported, verified"),
    ({"datasets": {"visa": {"folder": "/d"}}}, "Config 'datasets.visa' must be a folder or a mapping with 'path'"),
    ({"access": {"code_visibility": "open"}}, "Config 'access.code_visibility' must be one of: private, public"),
    ([1, 2], "must be a mapping of sections"),
])
def test_errors_name_the_key(tmp_path: Path, document: object, message: str) -> None:
    write(tmp_path, document)
    with pytest.raises(SettingsError, match=None) as caught:
        Settings.load(tmp_path, environ={})
    assert message in str(caught.value)


def test_invalid_yaml(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILE).write_text("limits: [\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="not valid YAML"):
        Settings.load(tmp_path, environ={})


def test_what_init_writes_loads_back_the_same(tmp_path: Path) -> None:
    settings = Settings.load(tmp_path, environ={})
    write(tmp_path, config_document(settings))
    assert Settings.load(tmp_path, environ={}) == settings


def test_data_sets_are_read_again_when_the_file_changes(tmp_path: Path) -> None:
    path = write(tmp_path, {"datasets": {"visa": "/data/visa"}})
    settings = Settings.load(tmp_path, environ={})
    assert settings.current_datasets() == {"visa": Dataset("visa", Path("/data/visa"))}
    write(tmp_path, {"datasets": {"visa": "/data/visa", "miic": {"path": "/data/miic", "scoring": "verified"}}})
    later = time.time() + 5  # another mtime, whatever the file system's resolution
    os.utime(path, (later, later))
    assert settings.current_datasets() == {"visa": Dataset("visa", Path("/data/visa")),
                                           "miic": Dataset("miic", Path("/data/miic"), scoring="verified")}
    assert settings.datasets == {"visa": Dataset("visa", Path("/data/visa"))}  # the object itself stays as loaded


def test_older_config_files_still_load(tmp_path: Path) -> None:
    """The job limits were the docker executor's (`runner.docker_*`); both executors share them now."""
    write(tmp_path, {"runner": {"docker_memory": "8g", "docker_cpus": 2, "docker_pids": 512, "docker_shm_size": "1g",
                                "docker_image": "mine"},
                     "limits": {"job_pids": 512}})
    settings = Settings.load(tmp_path, environ={})
    limits = settings.limits
    assert (limits.job_memory, limits.job_cpus, limits.job_pids, limits.job_shm_size) == ("8g", 2, 512, "1g")
    assert settings.runner.docker_image == "mine" and limits.job_scratch_size == Limits().job_scratch_size
    assert "docker_memory" not in config_document(settings)["runner"]  # written back under the new names


@pytest.mark.parametrize(("text", "size"), [("512m", 512 * 1024**2), ("16g", 16 * 1024**3), ("2G", 2 * 1024**3),
                                            ("100k", 102400), ("4096", 4096), ("10b", 10)])
def test_sizes_read_as_docker_writes_them(text: str, size: int) -> None:
    assert size_bytes(text) == size


def test_overrides_skip_what_is_not_given(tmp_path: Path) -> None:
    settings = Settings.load(tmp_path, environ={}).with_overrides(api_port=None, web_port=9001)
    assert (settings.api_port, settings.web_port) == (8010, 9001)
