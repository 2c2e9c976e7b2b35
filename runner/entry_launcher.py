"""Runs a submission's entrypoint as the guide promises: as a script, and when the file does not run
its entry function itself under `if __name__ == "__main__":`, the platform calls `main()`, else
`train()`; exactly once either way.

The sandbox runs this file's source with `python -c` (`command`), so nothing has to be copied into
a job and the same interpreter works under either executor (standard library only). The decision is
static (`ast`, as the push rules read the entrypoint): a file with a top-level main block runs as
`python main.py` would; one without runs as a script too, then its function is called. Either way
the code sees what `python main.py` gives it: `__name__ == "__main__"`, an absolute `__file__`,
`sys.argv[0]` as given, the entrypoint's folder first on `sys.path` (sibling imports), the working
directory unchanged. One line in the job log says which was done.
"""

from __future__ import annotations

import ast
import os
import sys
import types
from importlib.machinery import SourceFileLoader
from pathlib import Path

ENTRY_FUNCTIONS = ("main", "train")  # in order of preference, as the guide names them
NOTE = "[leadersboard] "  # the platform's lines in the job log


def command(python: str, entrypoint: str) -> list[str]:
    """The sandbox's command that launches `entrypoint` (a path relative to the working directory)."""
    return [python, "-c", Path(__file__).read_text(encoding="utf-8"), entrypoint]


def has_main_block(tree: ast.Module) -> bool:
    """Whether the module has a top-level `if __name__ == "__main__":` (either side of the ==)."""
    for node in tree.body:
        test = node.test if isinstance(node, ast.If) else None
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq):
            sides = (test.left, test.comparators[0])
            if (any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
                    and any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides)):
                return True
    return False


def entry_function(tree: ast.Module) -> str | None:
    """The function the platform calls: main() if the module defines it at the top level, else train()."""
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    return next((name for name in ENTRY_FUNCTIONS if name in defined), None)


def launch(argv: list[str]) -> None:
    """Run `argv[1]` as `python argv[1] argv[2:]` would, then call its entry function if it has no main block."""
    shown = argv[1]
    path = os.path.abspath(shown)
    with open(path, "rb") as file:
        source = file.read()
    tree = ast.parse(source, filename=path)  # a syntax error reads as python's own
    call = None if has_main_block(tree) else entry_function(tree)
    if call is None:
        print(f"{NOTE}{shown} runs as a script (it has its own if __name__ == \"__main__\": block)", flush=True)
    else:
        print(f"{NOTE}{shown} has no if __name__ == \"__main__\": block: the platform calls its {call}()",
              flush=True)
    module = types.ModuleType("__main__")
    module.__file__ = path
    module.__loader__ = SourceFileLoader("__main__", path)
    sys.modules["__main__"] = module  # pickling and multiprocessing find the submission's own module
    sys.argv = [shown, *argv[2:]]
    sys.path[0] = os.path.dirname(path)  # `python -c` put the working directory there; a script, its folder
    exec(compile(tree, path, "exec"), module.__dict__)  # noqa: S102 (the submission's code, in its sandbox)
    if call is not None:
        function = module.__dict__.get(call)
        if not callable(function):
            raise SystemExit(f"{shown}: {call} is not a function when the module has run")
        function()


if __name__ == "__main__":
    launch(sys.argv)
