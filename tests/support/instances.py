"""Instances made by the real CLI (`leadersboard init`, `dataset add`, `user add`), and the files of a
submission folder."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from leadersboard.local.datagen import encode_png

from .git import git_env
from .shared import SharedCommand

BIN = Path(sys.executable).parent
LEADERSBOARD = str(BIN / "leadersboard") if (BIN / "leadersboard").exists() else shutil.which("leadersboard")

GOOD_MAIN = '''"""A submission entrypoint."""


def main():
    print("training")


if __name__ == "__main__":
    main()
'''

GOOD_CONFIG = """model:
  class_path: anomalib.models.Padim
  init_args:
    backbone: resnet18
    pre_trained: false
data:
  class_path: anomalib.data.Folder
  name: visa
  init_args:
    name: pcb1
    root: pcb1/Data/Images
trainer:
  max_epochs: 1
"""


def submission_files(main: str | bytes | None = GOOD_MAIN, config: str | bytes | None = GOOD_CONFIG,
                     **extra: str | bytes) -> dict[str, str | bytes]:
    """The files of a submission folder (None leaves a file out); `extra` adds more."""
    files: dict[str, str | bytes] = {}
    if main is not None:
        files["main.py"] = main
    if config is not None:
        files["config.yaml"] = config
    files.update(extra)
    return files


def run_cli(*args: str, home: Path | None = None, check: bool = True,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`leadersboard ARGS` as a participant or operator runs it."""
    assert LEADERSBOARD, "the leadersboard console script is not installed"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LEADERSBOARD_")}
    full_env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    if home is not None:
        full_env["LEADERSBOARD_HOME"] = str(home)
    full_env.update(env or {})
    result = subprocess.run([LEADERSBOARD, *args], capture_output=True, text=True, env=full_env,
                            timeout=60, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"leadersboard {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


@dataclass
class Instance:
    home: Path
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def repo(self) -> Path:
        return self.home / "submissions.git"

    @property
    def db_path(self) -> Path:
        return self.home / "leadersboard.db"

    @property
    def config_path(self) -> Path:
        return self.home / "leadersboard.yaml"

    @property
    def mlflow_uri(self) -> str:
        """Where the servers the tests start track jobs: a local SQLite store (no MLflow server)."""
        return f"sqlite:///{self.home / 'mlflow.db'}"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, home=self.home, check=check)

    def add_user(self, name: str) -> str:
        token = self.cli("user", "add", name).stdout.strip().splitlines()[-1]
        self.tokens[name] = token
        return token

    def query(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        """Rows of a read-only query on the instance's SQLite database."""
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30)
        try:
            conn.row_factory = sqlite3.Row
            return [dict(row) for row in conn.execute(sql, params).fetchall()]
        finally:
            conn.close()

    def wait_rows(self, count: int, sql: str, *params: Any, timeout: float = 30) -> list[dict[str, Any]]:
        """The rows of `sql` once there are `count` of them (jobs are created just after a push
        returns); fails when there are more, or still fewer after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.query(sql, *params)
            assert len(rows) <= count, rows
            if len(rows) == count:
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(rows)} rows, not {count}, after {timeout} s: {sql} {params}")
            time.sleep(0.05)

    def refs(self) -> str:
        """Every ref of the bare repository with its target (`git for-each-ref`)."""
        return subprocess.run(["git", "--git-dir", str(self.repo), "for-each-ref"], capture_output=True,
                              text=True, check=True, env=git_env(self.home)).stdout

    def ref(self, name: str) -> str | None:
        result = subprocess.run(["git", "--git-dir", str(self.repo), "rev-parse", "--verify", "--quiet", name],
                                capture_output=True, text=True, check=False, env=git_env(self.home))
        return result.stdout.strip() or None


MLFLOW_TEMPLATE = SharedCommand(
    "mlflow-template.db",
    [sys.executable, "-W", "ignore", "-c",
     "import os, sys; from mlflow.tracking import MlflowClient; "
     "made = sys.argv[1] + '.making'; MlflowClient(tracking_uri='sqlite:///' + made).search_experiments(); "
     "os.replace(made, sys.argv[1])"],
    env={"MLFLOW_DISABLE_TELEMETRY": "true"}, timeout=120)


def mlflow_template() -> Path:
    """An empty MLflow SQLite store with its tables made (by MLflow itself, once per test run): each
    instance starts from a copy, which saves every server the seconds MLflow's migrations take.
    `tests/conftest.py` starts making it with the run's first test when a test will need it."""
    return MLFLOW_TEMPLATE.result()


def create_instance(base: Path, limits: Mapping[str, int] | None = None,
                    datasets: tuple[str, ...] = ("visa",), users: tuple[str, ...] = ("alice", "bob")) -> Instance:
    """A fresh instance made with the real CLI: `init`, data sets (each with `pcb1/`), users."""
    home = base / "home"
    run_cli("init", "--home", str(home))
    shutil.copyfile(mlflow_template(), home / "mlflow.db")
    if limits:
        document = yaml.safe_load((home / "leadersboard.yaml").read_text(encoding="utf-8"))
        document["limits"].update(limits)
        (home / "leadersboard.yaml").write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    inst = Instance(home)
    for name in datasets:
        folder = base / "data" / name
        normal = folder / "pcb1" / "Data" / "Images" / "Normal"
        normal.mkdir(parents=True)
        (normal / "000.png").write_bytes(encode_png(2, 2, 1, bytes(4)))  # a category holds an image at least
        inst.cli("dataset", "add", name, str(folder))
    for user in users:
        inst.add_user(user)
    return inst


def unique_user() -> str:
    """A user name no other test uses (tests that share an MLflow server keep apart by it)."""
    return "u" + uuid.uuid4().hex[:10]
