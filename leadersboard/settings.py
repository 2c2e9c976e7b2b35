"""The one settings object: the instance's config file, overridden by the environment.

Every component reads its configuration from `Settings`; nothing else reads `os.environ` for
configuration. The config file is `leadersboard.yaml` in the instance folder (`LEADERSBOARD_HOME`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from . import safe_yaml
from .datasets import Dataset, DatasetError
from .resource_classes import JobSize, ResourceClassError, ResourceClasses

CONFIG_FILE = "leadersboard.yaml"
REPO_DIR = "submissions.git"
DB_FILE = "leadersboard.db"
DEFAULT_HOME = Path.home() / ".leadersboard"


class SettingsError(Exception):
    """The config file is missing, unreadable or holds a value of the wrong kind."""


@dataclass(frozen=True)
class Limits:
    submissions_per_hour: int = 10
    max_active_jobs: int = 3
    max_file_bytes: int = 50 * 1024 * 1024
    max_submission_bytes: int = 200 * 1024 * 1024
    # The ceiling of every job, under either executor (docs/operating.md, "Job limits"): a job gets its
    # resource class's time, memory and CPUs, none above these (the default classes' `large`). Sizes as
    # docker writes them (512m, 16g):
    job_timeout_seconds: int = 4 * 3600
    job_memory: str = "32g"  # memory, no swap; the files in the job's scratch folder count too
    job_cpus: int = 8  # CPUs (capped at the host's count)
    job_pids: int = 4096  # processes and threads
    job_shm_size: str = "2g"  # /dev/shm (PyTorch data loaders pass batches through it)
    job_scratch_size: str = "4g"  # the job's scratch folder: its working directory, home, MLflow store


@dataclass(frozen=True)
class RunnerSettings:
    """How workers run jobs (section `runner` of the config file)."""

    executor: str = "process"  # process | docker
    python: str = ""  # interpreter for submissions (process executor); empty: the platform's own
    heartbeat_seconds: int = 10  # a running job's worker proves it is alive this often
    reconcile_seconds: int = 30  # how often `serve` looks for lost jobs
    stop_grace_seconds: int = 30  # on SIGTERM, how long a worker lets its running job finish before handing it back
    poll_delay_ms: int = 100  # how often an idle worker looks at the queue
    log_max_bytes: int = 1024 * 1024  # the live log kept in Redis (the tail); the artifact keeps 5x this
    max_artifact_bytes: int = 512 * 1024 * 1024  # what a job may copy into MLflow
    # Copying a job's own MLflow store into its run is bounded: past a limit the job fails, with it.
    max_copied_runs: int = 100  # runs a job may start
    max_metric_points: int = 200_000  # metric values (every step of every metric), all runs together
    max_params: int = 2_000  # params, all runs together
    copy_timeout_seconds: int = 300  # the copy's wall clock
    docker_image: str = "leadersboard-sandbox"  # the docker executor's image (`leadersboard image build`)
    sandbox_uid: int = 10001  # the unprivileged user and group jobs run as, under either executor (chosen by init)
    # A folder of pretrained weights (torch hub / Hugging Face cache files) every job sees read-only, so that
    # `pre_trained: true` works without a network; empty: none (`leadersboard weights add`).
    model_cache: str = ""


@dataclass(frozen=True)
class AccessSettings:
    """Who sees what (section `access` of the config file); read again when the file changes."""

    code_visibility: str = "private"  # private: a participant fetches only their own branches and main


@dataclass(frozen=True)
class ServerSection:
    """The `server` section of the config file, as written (empty text: not set)."""

    api_host: str = "127.0.0.1"
    api_port: int = 8010
    web_port: int = 8501
    mlflow_port: int = 5010  # the MLflow gateway (participants' read-only MLflow), not the tracking server
    redis_url: str = ""
    mlflow_tracking_uri: str = ""
    public_url: str = ""
    # What worker hosts are told to use (GET /workers/join); empty: this server's, by the host they reached
    worker_redis_url: str = ""
    worker_mlflow_url: str = ""
    health_check_ms: int = 1000  # how often the service asks Redis, MLflow and the workers (down after 2 misses)


SECTIONS = ("limits", "runner", "datasets", "server", "access", "resource_classes")
# Keys of older config files, still read: (section, old key) -> (section, key).
RENAMED = {
    ("runner", "docker_memory"): ("limits", "job_memory"),
    ("runner", "docker_cpus"): ("limits", "job_cpus"),
    ("runner", "docker_pids"): ("limits", "job_pids"),
    ("runner", "docker_shm_size"): ("limits", "job_shm_size"),
}
_LIVE: dict[Path, tuple[int, dict[str, Any]]] = {}  # config file -> (mtime, its document)
EXECUTORS = ("process", "docker")
CODE_VISIBILITIES = ("private", "public")
SIZE = re.compile(r"([1-9][0-9]*)([bkmg]?)", re.I)  # docker's way: 512m, 16g
SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


@dataclass(frozen=True)
class Settings:
    home: Path
    limits: Limits = field(default_factory=Limits)
    runner: RunnerSettings = field(default_factory=RunnerSettings)
    access: AccessSettings = field(default_factory=AccessSettings)
    datasets: dict[str, Dataset] = field(default_factory=dict)
    resource_classes: ResourceClasses = field(default_factory=ResourceClasses)
    redis_url: str | None = None
    mlflow_tracking_uri: str | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 8010
    web_port: int = 8501
    mlflow_port: int = 5010
    public_url: str | None = None
    queue_name: str = "leadersboard:queue"
    worker_redis_url: str | None = None
    worker_mlflow_url: str | None = None
    health_check_ms: int = 1000

    @property
    def config_path(self) -> Path:
        return self.home / CONFIG_FILE

    @property
    def repo_path(self) -> Path:
        return self.home / REPO_DIR

    @property
    def db_path(self) -> Path:
        return self.home / DB_FILE

    @property
    def site_dir(self) -> Path:
        """Where the static leaderboard is published."""
        return self.home / "site"

    @property
    def site_cache_path(self) -> Path:
        """The site generator's cache of finished jobs (they never change)."""
        return self.home / "site-cache.json"

    @property
    def sealed_dir(self) -> Path:
        """Sealed views of verified data sets (built once per data set version; see runner/sealed.py)."""
        return self.home / "sealed"

    @property
    def scratch_dir(self) -> Path:
        """Jobs' working folders (each removed when its job ends)."""
        return self.home / "scratch"

    @property
    def mlflow_dir(self) -> Path:
        """The MLflow server's database and artifacts, when `serve` starts one."""
        return self.home / "mlflow"

    @property
    def run_dir(self) -> Path:
        """Pid files, sockets and logs of the services `serve` starts."""
        return self.home / "run"

    @property
    def base_url(self) -> str:
        """Where participants reach the API and git (shown in push messages)."""
        return self.public_url or f"http://{self.api_host}:{self.api_port}"

    def current_datasets(self) -> dict[str, Dataset]:
        """The registered data sets as the config file says now: `dataset add` needs no restart."""
        live = self._live()
        if "datasets" not in live:
            return self.datasets
        try:
            return _datasets(live.get("datasets"))
        except SettingsError:  # a bad edit of a running instance: keep what it started with
            return self.datasets

    def current_model_cache(self) -> Path | None:
        """The model cache as the config file says now (`weights add` needs no restart); None without one."""
        runner = self._live().get("runner")
        value = runner.get("model_cache", self.runner.model_cache) if isinstance(runner, dict) else \
            self.runner.model_cache
        return Path(value) if isinstance(value, str) and value else None

    def current_access(self) -> AccessSettings:
        """The `access` section as the config file says now: opening the code needs no restart."""
        try:
            access = AccessSettings(**_section(self._live(), "access", AccessSettings))
            _check_access(access)
        except SettingsError:  # a bad edit of a running instance: keep what it started with
            return self.access
        return access

    def _live(self) -> dict[str, Any]:
        try:
            stamp = self.config_path.stat().st_mtime_ns
            cached = _LIVE.get(self.config_path)
            if cached is None or cached[0] != stamp:
                cached = _LIVE[self.config_path] = (stamp, _read_config(self.config_path))
        except (OSError, SettingsError):
            return {}
        return cached[1]

    def job_size(self, resource_class: str | None) -> JobSize:
        """What a job of this class may use: the class's figures, none above `limits` (the ceiling an
        operator sets for every job). KeyError when the instance no longer offers the class."""
        name = self.resource_classes.choose(resource_class)
        wanted, limits = self.resource_classes.classes[name], self.limits
        over_memory = size_bytes(wanted.memory) > size_bytes(limits.job_memory)
        over = {"cpus": wanted.cpus > limits.job_cpus, "memory": over_memory,
                "time_limit_seconds": wanted.time_limit_seconds > limits.job_timeout_seconds}
        capped = tuple(key for key, is_over in over.items() if is_over)
        return JobSize(name, min(wanted.cpus, limits.job_cpus), limits.job_memory if over_memory else wanted.memory,
                       min(wanted.time_limit_seconds, limits.job_timeout_seconds), wanted.gpus, capped)

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def load(cls, home: Path | str | None = None, environ: dict[str, str] | None = None) -> Settings:
        """Read the instance's config file (if it exists) and apply environment overrides."""
        env = os.environ if environ is None else environ
        root = Path(home or env.get("LEADERSBOARD_HOME") or DEFAULT_HOME).expanduser().resolve()
        path = root / CONFIG_FILE
        raw = _renamed_keys(_read_config(path), path)
        unknown = set(raw) - set(SECTIONS)
        if unknown:
            raise SettingsError(f"{path}: unknown sections {', '.join(sorted(unknown))}; known: {', '.join(SECTIONS)}")
        limits = Limits(**_section(raw, "limits", Limits))
        _check_limits(limits)
        runner = RunnerSettings(**_section(raw, "runner", RunnerSettings))
        runner = replace(runner, executor=env.get("LEADERSBOARD_EXECUTOR") or runner.executor)
        _check_runner(runner)
        access = AccessSettings(**_section(raw, "access", AccessSettings))
        _check_access(access)
        datasets = _datasets(raw.get("datasets"))
        try:
            resource_classes = ResourceClasses.from_config(raw.get("resource_classes"))
        except ResourceClassError as exc:
            raise SettingsError(f"{path}: {exc}") from exc
        server = ServerSection(**_section(raw, "server", ServerSection))
        settings = cls(
            home=root,
            limits=limits,
            runner=runner,
            access=access,
            datasets=datasets,
            resource_classes=resource_classes,
            redis_url=server.redis_url or None,
            mlflow_tracking_uri=server.mlflow_tracking_uri or None,
            api_host=server.api_host,
            api_port=server.api_port,
            web_port=server.web_port,
            mlflow_port=server.mlflow_port,
            public_url=server.public_url or None,
            worker_redis_url=server.worker_redis_url or None,
            worker_mlflow_url=server.worker_mlflow_url or None,
            health_check_ms=server.health_check_ms,
        )
        return settings.with_overrides(
            redis_url=env.get("LEADERSBOARD_REDIS_URL") or None,
            mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI") or None,
        )


def size_bytes(text: str) -> int:
    """A size as docker writes it (512m, 16g, 1024) in bytes."""
    match = SIZE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"not a size such as 512m or 16g: {text!r}")
    return int(match.group(1)) * SIZE_UNITS[match.group(2).lower()]


def _renamed_keys(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    """The document with keys of older config files under their current names."""
    document = {name: dict(section) if isinstance(section, dict) else section for name, section in raw.items()}
    for (old_section, old_key), (section, key) in RENAMED.items():
        old = document.get(old_section)
        if not isinstance(old, dict) or old_key not in old:
            continue
        value = old.pop(old_key)
        new = document.setdefault(section, {}) or {}
        if not isinstance(new, dict):
            continue  # the section's own check says what is wrong
        if key in new and new[key] != value:
            raise SettingsError(f"{path}: '{old_section}.{old_key}' is the old name of '{section}.{key}', "
                                "and they differ: keep only the second")
        new[key] = value
        document[section] = new
    return document


def _check_limits(limits: Limits) -> None:
    for key in ("job_memory", "job_shm_size", "job_scratch_size"):
        if not SIZE.fullmatch(getattr(limits, key)):
            raise SettingsError(f"Config 'limits.{key}' must be a size such as 512m or 16g, "
                                f"not {getattr(limits, key)!r}")
    for key in ("job_cpus", "job_pids"):
        if getattr(limits, key) < 1:
            raise SettingsError(f"Config 'limits.{key}' must be at least 1")


def _check_runner(runner: RunnerSettings) -> None:
    if runner.executor not in EXECUTORS:
        raise SettingsError(f"Config 'runner.executor' must be one of: {', '.join(EXECUTORS)}")
    if runner.sandbox_uid < 1:
        raise SettingsError("Config 'runner.sandbox_uid' must be at least 1")


def _datasets(raw: object) -> dict[str, Dataset]:
    if not raw:
        return {}
    if not isinstance(raw, dict):
        raise SettingsError("Config 'datasets' must map names to data set entries (see `leadersboard dataset add`)")
    try:
        return {str(name): Dataset.from_config(str(name), entry) for name, entry in raw.items()}
    except DatasetError as exc:
        raise SettingsError(str(exc)) from exc


def _check_access(access: AccessSettings) -> None:
    if access.code_visibility not in CODE_VISIBILITIES:
        raise SettingsError(f"Config 'access.code_visibility' must be one of: {', '.join(CODE_VISIBILITIES)}")


def _read_config(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = safe_yaml.load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: must be a mapping of sections")
    return data


def _section(raw: dict[str, Any], name: str,
             kind: type[Limits] | type[RunnerSettings] | type[ServerSection] | type[AccessSettings]) -> dict[str, Any]:
    section = raw.get(name) or {}
    if not isinstance(section, dict):
        raise SettingsError(f"Config section '{name}' must be a mapping")
    fields = kind.__dataclass_fields__
    unknown = set(section) - set(fields)
    if unknown:
        raise SettingsError(f"Config section '{name}' has unknown keys: {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for key, value in section.items():
        if isinstance(fields[key].default, str):
            if not isinstance(value, str):
                raise SettingsError(f"Config '{name}.{key}' must be text, not {value!r}")
        elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise SettingsError(f"Config '{name}.{key}' must be a whole number ≥ 0, not {value!r}")
        values[key] = value
    return values


def config_document(settings: Settings) -> dict[str, Any]:
    """The config file's content for `settings` (what `init` writes)."""
    limits, runner, access = settings.limits, settings.runner, settings.access
    return {
        "limits": {name: getattr(limits, name) for name in limits.__dataclass_fields__},
        "runner": {name: getattr(runner, name) for name in runner.__dataclass_fields__},
        "access": {name: getattr(access, name) for name in access.__dataclass_fields__},
        "datasets": {name: dataset.to_config() for name, dataset in sorted(settings.datasets.items())},
        "resource_classes": settings.resource_classes.to_config(),
        "server": {
            "api_host": settings.api_host,
            "api_port": settings.api_port,
            "web_port": settings.web_port,
            "mlflow_port": settings.mlflow_port,
        },
    }
