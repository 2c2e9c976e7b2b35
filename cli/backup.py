"""Backing up an instance while it runs, and restoring one from its backup (`leadersboard backup/restore`).

A backup is a folder: the config file; the instance's database and MLflow's, each copied by SQLite's
online backup API (a consistent snapshot while `serve` writes); MLflow's artifacts; the bare
repository as a `git bundle` (refs and objects at one moment); the published site; and a manifest
with every file's digest. Parts are taken referrers first: the job index, then the runs it names,
then their artifacts, then the commits all of them name, so whatever the backup refers to is in it.
Redis is left out on purpose: it holds only the queue, counters and live logs, and the reconciler
queues the jobs again from MLflow after a restore.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from leadersboard.settings import CONFIG_FILE, DB_FILE, Settings, SettingsError

from . import instance

FORMAT = 1
MANIFEST = "manifest.json"
BUNDLE = "submissions.bundle"
MLFLOW_DB = "mlflow/mlflow.db"  # relative to the instance folder and to the backup alike
MLFLOW_ARTIFACTS = "mlflow/artifacts"
SITE = "site"


class BackupError(Exception):
    """The backup or the restore cannot be done as asked; the message says why."""


@dataclass
class BackupReport:
    folder: Path
    parts: dict[str, str] = field(default_factory=dict)  # part -> what was taken (one line, no secrets)
    files: int = 0
    size_bytes: int = 0
    seconds: float = 0.0


def backup(settings: Settings, dest: Path) -> BackupReport:
    """A consistent copy of `settings.home` in the new folder `dest` (the platform may be running).

    Written into a hidden sibling first and renamed at the end: `dest` is a whole backup or nothing.
    """
    start = time.monotonic()
    _empty_folder(dest, "back up into")
    dest = dest.absolute()
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.parent / f".{dest.name}.partial-{os.getpid()}"
    partial.mkdir(mode=0o700)  # token hashes, and maybe a Redis password in the config
    report = BackupReport(dest)
    try:
        _take(settings, partial, report)
        if dest.is_dir():
            dest.rmdir()  # the empty folder the operator made beforehand
        partial.rename(dest)
    except (OSError, sqlite3.Error) as exc:
        raise BackupError(f"the backup failed and was removed: {exc}") from exc
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    report.seconds = time.monotonic() - start
    return report


def _take(settings: Settings, folder: Path, report: BackupReport) -> None:
    home = settings.home
    shutil.copy2(settings.config_path, folder / CONFIG_FILE)
    report.parts["config"] = CONFIG_FILE
    _sqlite_copy(settings.db_path, folder / DB_FILE)
    report.parts["database"] = DB_FILE
    if (home / MLFLOW_DB).is_file():
        (folder / "mlflow").mkdir()
        _sqlite_copy(home / MLFLOW_DB, folder / MLFLOW_DB)
        artifacts = home / MLFLOW_ARTIFACTS
        if artifacts.is_dir():
            shutil.copytree(artifacts, folder / MLFLOW_ARTIFACTS, symlinks=True)
        report.parts["mlflow"] = f"{MLFLOW_DB} and {MLFLOW_ARTIFACTS}/"
    elif settings.mlflow_tracking_uri:
        report.parts["mlflow"] = ("not in the instance folder (a separate MLflow server): back up its "
                                  "store and artifacts with that server")
    else:
        report.parts["mlflow"] = "none yet (serve has not started MLflow here)"
    report.parts["repository"] = _bundle(settings.repo_path, folder / BUNDLE)
    if settings.site_dir.is_dir():
        shutil.copytree(settings.site_dir, folder / SITE, symlinks=True)
        report.parts["site"] = f"{SITE}/"
    files = _digests(folder)
    manifest = {"format": FORMAT, "leadersboard": version("leadersboard"),
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "home": str(home),
                "parts": report.parts, "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    report.files = len(files)
    report.size_bytes = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def restore(source: Path, home: Path) -> BackupReport:
    """Make the instance `home` (absent or an empty folder) from the backup folder `source`.

    On failure `home` is left as it was found (absent, or empty: it may be a mount point)."""
    start = time.monotonic()
    manifest = _manifest(source)
    _empty_folder(home, "restore into")
    broken = [name for name, digest in manifest["files"].items()
              if not (source / name).is_file() or _sha256(source / name) != digest]
    if broken:
        raise BackupError(f"{source} is damaged: {len(broken)} file(s) missing or changed since the backup, "
                          f"such as {broken[0]}; nothing was restored")
    existed = home.exists()
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        _put_back(source, home)
    except (OSError, SettingsError, instance.InstanceError, BackupError) as exc:
        for entry in home.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        if not existed:
            home.rmdir()
        raise BackupError(f"the restore failed and what it had written was removed: {exc}") from exc
    report = BackupReport(home, parts=dict(manifest["parts"]), files=len(manifest["files"]))
    report.seconds = time.monotonic() - start
    return report


def _put_back(source: Path, home: Path) -> None:
    shutil.copy2(source / CONFIG_FILE, home / CONFIG_FILE)
    shutil.copy2(source / DB_FILE, home / DB_FILE)
    if (source / MLFLOW_DB).is_file():
        (home / "mlflow").mkdir()
        shutil.copy2(source / MLFLOW_DB, home / MLFLOW_DB)
        if (source / MLFLOW_ARTIFACTS).is_dir():
            shutil.copytree(source / MLFLOW_ARTIFACTS, home / MLFLOW_ARTIFACTS, symlinks=True)
    settings = Settings.load(home)
    if (source / SITE).is_dir():
        _publish_site(source / SITE, settings.site_dir)
    repo = settings.repo_path
    _git("init", "--bare", "--quiet", "--initial-branch=main", str(repo))
    if (source / BUNDLE).is_file():
        _git("-C", str(repo), "fetch", "--quiet", str((source / BUNDLE).resolve()), "refs/*:refs/*")
    instance.upgrade(settings)  # the repository's settings and hooks, as `init` makes them


def _publish_site(copy: Path, site_dir: Path) -> None:
    """The site as the generator publishes it (a link to a version folder), so that its next build can swap it."""
    from leadersboard.site_generator.publish import staging_dir, switch  # the package imports MLflow

    staged = staging_dir(site_dir)
    shutil.copytree(copy, staged, symlinks=True, dirs_exist_ok=True)
    switch(site_dir, staged)


def _empty_folder(path: Path, doing: str) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise BackupError(f"will not {doing} {path}: it exists and is not an empty folder (nothing was changed)")


def _sqlite_copy(source: Path, target: Path) -> None:
    """SQLite's online backup: one consistent snapshot, whatever the writers do meanwhile."""
    with contextlib.closing(sqlite3.connect(source, timeout=60)) as src, \
            contextlib.closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def _bundle(repo: Path, target: Path) -> str:
    refs = _git("-C", str(repo), "for-each-ref", "--format=%(refname)").split()
    if not refs:
        return "empty repository (no branches yet)"
    _git("-C", str(repo), "bundle", "create", "--quiet", str(target.resolve()), "--all")
    return f"{BUNDLE} ({len(refs)} refs)"


def _manifest(source: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((source / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupError(f"{source} is not a LeadersBoard backup: it has no readable {MANIFEST}") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise BackupError(f"{source}/{MANIFEST} is not a LeadersBoard backup's manifest")
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{source} is a backup of format {manifest.get('format')!r}; this version reads "
                          f"format {FORMAT}")
    return manifest


def _digests(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): _sha256(path) for path in sorted(folder.rglob("*")) if path.is_file()}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _git(*args: str) -> str:
    result = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    if result.returncode:
        raise BackupError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout
