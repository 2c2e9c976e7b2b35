"""The entrypoint launcher, run by a real interpreter as the sandbox runs it: the guide's entry
functions are called once, a main block runs alone, and the code sees what `python main.py` gives it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from leadersboard.runner.entry_launcher import command

PROBE = """
import os, pickle, sys
import helper
class Point:
    pass
def report(who):
    print(who, __name__, os.path.basename(__file__), os.path.isabs(__file__), sys.argv[0],
          os.path.basename(os.getcwd()), helper.VALUE, len(pickle.dumps(Point())) > 0)
"""


def launch(folder: Path, entry: str, source: str) -> subprocess.CompletedProcess[str]:
    (folder / "sub").mkdir(exist_ok=True)
    (folder / "sub" / "helper.py").write_text("VALUE = 'sibling'\n")
    (folder / "sub" / entry).write_text(PROBE + source)
    return subprocess.run(command(sys.executable, f"sub/{entry}"), cwd=folder, capture_output=True, text=True,
                          check=False)


def test_train_only_is_called_once_as_a_script_would_run(tmp_path: Path) -> None:
    done = launch(tmp_path, "main.py", "def train():\n    report('train')\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        '[leadersboard] sub/main.py has no if __name__ == "__main__": block: the platform calls its train()',
        f"train __main__ main.py True sub/main.py {tmp_path.name} sibling True"]


def test_main_is_preferred_to_train(tmp_path: Path) -> None:
    done = launch(tmp_path, "run.py", "def train():\n    report('train')\ndef main():\n    report('main')\n")
    assert [line.split()[0] for line in done.stdout.splitlines()[1:]] == ["main"]


def test_a_main_block_runs_alone(tmp_path: Path) -> None:
    done = launch(tmp_path, "main.py", "def main():\n    report('main')\nif '__main__' == __name__:\n    main()\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == ('[leadersboard] sub/main.py runs as a script '
                                           '(it has its own if __name__ == "__main__": block)')
    assert [line.split()[0] for line in done.stdout.splitlines()[1:]] == ["main"]


def test_an_exception_ends_it_as_python_would(tmp_path: Path) -> None:
    done = launch(tmp_path, "main.py", "def train():\n    (1, 2).train()\n")
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == "AttributeError: 'tuple' object has no attribute 'train'"
    exited = launch(tmp_path, "main.py", "import sys\ndef main():\n    sys.exit(3)\n")
    assert exited.returncode == 3
