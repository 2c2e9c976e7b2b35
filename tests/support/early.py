"""Children that spend seconds on MLflow's imports before they answer (the template store, MLflow's
route table), started ahead of the test that reads their output: `tests/conftest.py` starts them
with the session's first test when a later one needs them, so they run on a spare core meanwhile."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence


class EarlyRun:
    """One run of a command, started once (early or when first needed), its output read once."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str] | None = None, drop: Sequence[str] = (),
                 timeout: float = 180) -> None:
        self.args = list(args)
        self.env, self.drop, self.timeout = dict(env or {}), tuple(drop), timeout
        self._process: subprocess.Popen[str] | None = None
        self._stdout: str | None = None

    def start(self) -> None:
        if self._process is None:
            env = {**os.environ, **self.env}
            for name in self.drop:
                env.pop(name, None)
            self._process = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE, text=True, env=env)

    def stdout(self) -> str:
        """What it printed, once it exited 0 (started now if it was not); raises CalledProcessError."""
        if self._stdout is None:
            self.start()
            assert self._process is not None
            try:
                out, err = self._process.communicate(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                self.stop()
                raise
            if self._process.returncode != 0:
                raise subprocess.CalledProcessError(self._process.returncode, self.args, out, err)
            self._stdout = out
        return self._stdout

    def stop(self) -> None:
        """End it if it still runs (a session that ended before a test read it)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.communicate()
