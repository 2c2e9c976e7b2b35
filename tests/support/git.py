"""The real `git` client over real HTTP, with an isolated HOME and config."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from .files import write_files


def git_env(home: Path) -> dict[str, str]:
    """An environment in which git reads no config of the developer's and never prompts."""
    config = home / ".gitconfig-isolated"
    if not config.exists():
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text("")
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GIT_CONFIG_GLOBAL": str(config),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "",
        "SSH_ASKPASS": "",
        "LC_ALL": "C",
        "TZ": "UTC",
    }


class GitClient:
    """One participant's working repository, driven by the real `git` over real HTTP."""

    def __init__(self, workdir: Path, url: str, user: str = "participant") -> None:
        self.workdir = workdir
        self.url = url
        self.user = user
        self.env = git_env(workdir.parent / f".home-{workdir.name}")

    def git(self, *args: str, cwd: Path | None = None, check: bool = False,
            env: Mapping[str, str] | None = None) -> tuple[int, str]:
        """Run git; (returncode, stdout and stderr together)."""
        result = subprocess.run(
            ["git", "-c", f"user.name={self.user}", "-c", f"user.email={self.user}@example.org", *args],
            cwd=cwd or self.workdir, env={**self.env, **(env or {})}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True, timeout=120, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} exited {result.returncode}:\n{result.stdout}")
        return result.returncode, result.stdout

    def init(self) -> GitClient:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.git("init", "--quiet", "--initial-branch=main", check=True)
        self.git("remote", "add", "origin", self.url, check=True)
        return self

    def clone(self, branch: str | None = None) -> tuple[int, str]:
        args = ["clone", *(["--branch", branch] if branch else []), self.url, str(self.workdir)]
        return self.git(*args, cwd=self.workdir.parent)

    def write(self, files: Mapping[str, str | bytes], folder: str = "") -> None:
        write_files(self.workdir / folder if folder else self.workdir, files)

    def commit(self, message: str = "submission", files: Mapping[str, str | bytes] | None = None,
               folder: str = "") -> str:
        if files:
            self.write(files, folder)
        self.git("add", "--all", check=True)
        self.git("commit", "--quiet", "--allow-empty", "-m", message, check=True)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD", check=True)[1].strip()

    def push(self, refspec: str, *options: str, force: bool = False) -> tuple[int, str]:
        args = ["push"]
        for option in options:
            args += ["-o", option]
        if force:
            args.append("--force")
        return self.git(*args, "origin", refspec)


def remote_lines(output: str) -> list[str]:
    """The `remote:` lines of git's output, without the prefix and git's padding."""
    return [line[len("remote:"):].strip() for line in output.splitlines() if line.startswith("remote:")]
