"""Creating and changing an instance: its folder, config file, database and bare repository."""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from leadersboard import db, model_cache, safe_yaml
from leadersboard.dataset_layouts import LayoutError
from leadersboard.datasets import Dataset, DatasetError, register
from leadersboard.hooks import install as install_hooks
from leadersboard.names import check_dataset_name
from leadersboard.settings import Settings, config_document

# Set on the bare repository: hooks get push options; history stays append-only even if a hook
# were bypassed; a push's pack cannot exceed what a submission may hold.
REPO_CONFIG = {
    "receive.advertisePushOptions": "true",
    "receive.denyNonFastForwards": "true",
    "receive.denyDeletes": "true",
    "receive.fsckObjects": "true",  # malformed objects (a tree entry '..' or '.git') never enter the repository
    "http.receivepack": "true",
    "core.logAllRefUpdates": "true",
}


class InstanceError(Exception):
    """The instance cannot be created or changed as asked."""


def init(settings: Settings) -> list[str]:
    """Create what is missing and leave what exists alone; the list of things created."""
    created: list[str] = []
    home = settings.home
    if not home.exists():
        home.mkdir(parents=True, mode=0o700)
        created.append(str(home))
    if not settings.config_path.exists():
        uid = free_sandbox_id(settings.runner.sandbox_uid)
        write_config(replace(settings, runner=replace(settings.runner, sandbox_uid=uid)))
        created.append(str(settings.config_path))
    if not settings.db_path.exists():
        created.append(str(settings.db_path))
    if not (settings.repo_path / "HEAD").exists():
        _git("init", "--bare", "--quiet", "--initial-branch=main", str(settings.repo_path))
        created.append(str(settings.repo_path))
    upgrade(settings)
    return created


def upgrade(settings: Settings) -> None:
    """Bring an existing instance up to this version (`init` and every `serve` start): the database's
    tables, the repository's settings and hooks. Idempotent."""
    db.create_schema(settings.db_path)
    repo = settings.repo_path
    for key, value in REPO_CONFIG.items():
        _git("config", "--file", str(repo / "config"), key, value)
    _git("config", "--file", str(repo / "config"), "receive.maxInputSize", str(settings.limits.max_submission_bytes))
    install_hooks(repo)
    settings.run_dir.mkdir(exist_ok=True)


def free_sandbox_id(start: int, taken: Callable[[int], bool] | None = None) -> int:
    """The first id from `start` that no account and no group of this host uses: jobs run as it
    (user and group), so that no file of the host is theirs."""
    taken = taken or _id_taken
    candidate = start
    while taken(candidate):
        candidate += 1
    return candidate


def _id_taken(number: int) -> bool:
    for lookup in (pwd.getpwuid, grp.getgrgid):
        try:
            lookup(number)
        except KeyError:
            continue
        return True
    return False


def require(settings: Settings) -> None:
    """Fail with a helpful sentence when `settings.home` is not an instance."""
    if not settings.config_path.exists() or not (settings.repo_path / "HEAD").exists():
        raise InstanceError(f"No LeadersBoard instance at {settings.home}: run 'leadersboard init --home "
                            f"{settings.home}' first (or set LEADERSBOARD_HOME).")


def write_config(settings: Settings, document: dict[str, Any] | None = None) -> None:
    text = "# LeadersBoard instance configuration (see docs/operating.md)\n" + yaml.safe_dump(
        document or config_document(settings), sort_keys=False, allow_unicode=True)
    tmp = settings.config_path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, settings.config_path)


def add_dataset(settings: Settings, name: str, path: Path, layout: str = "auto",
                scoring: str = "self_reported") -> Settings:
    """Register data set `name` at `path` (a folder holding its categories), or register it again:
    its layout and categories are checked and its version (content digest) recorded."""
    check_dataset_name(name)
    folder = path.expanduser().resolve()
    if not folder.is_dir():
        raise InstanceError(f"Data set folder {folder} does not exist or is not a folder.")
    try:
        dataset = register(name, folder, layout, scoring)
    except (LayoutError, DatasetError) as exc:
        raise InstanceError(f"Data set {name} not registered: {exc}") from exc
    return _write_datasets(settings, {**settings.current_datasets(), name: dataset})


def remove_dataset(settings: Settings, name: str) -> Settings:
    """Forget data set `name` (its files stay where they are)."""
    datasets = settings.current_datasets()
    if name not in datasets:
        known = ", ".join(sorted(datasets)) or "none"
        raise InstanceError(f"No data set {name!r} (registered: {known}); see 'leadersboard dataset list'.")
    return _write_datasets(settings, {key: value for key, value in datasets.items() if key != name})


def set_model_cache(settings: Settings, path: Path | None) -> Settings:
    """Give every job the model cache at `path` (checked: it must hold weights), or none (`path` None)."""
    value = ""
    if path is not None:
        folder = path.expanduser().resolve()
        try:
            model_cache.inspect(folder)
        except model_cache.ModelCacheError as exc:
            raise InstanceError(f"Model cache not set: {exc}") from exc
        value = str(folder)
    document = safe_yaml.load(settings.config_path.read_text(encoding="utf-8")) or {}
    runner = document.get("runner")
    document["runner"] = {**(runner if isinstance(runner, dict) else {}), "model_cache": value}
    write_config(settings, document)
    return replace(settings, runner=replace(settings.runner, model_cache=value))


def _write_datasets(settings: Settings, datasets: dict[str, Dataset]) -> Settings:
    document = safe_yaml.load(settings.config_path.read_text(encoding="utf-8")) or {}
    document["datasets"] = {key: value.to_config() for key, value in sorted(datasets.items())}
    write_config(settings, document)
    return replace(settings, datasets=datasets)


def _git(*args: str) -> None:
    result = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    if result.returncode:
        raise InstanceError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
