"""Type-check LeadersBoard as it is installed, its benchmarks and its tests: mypy (strict, as pyproject.toml

mypy finds a module by its folder, but the card's folders become `leadersboard.*` packages only
through `[tool.setuptools.package-dir]` (runner/ is `leadersboard.runner`, site-generator/ is
`leadersboard.site_generator`, ...). So this lays that tree out of links under build/typecheck/
(ignored by git), runs mypy there, and prints what mypy says with the paths of the checkout.

    .venv/bin/python scripts/typecheck.py        exit status: mypy's
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TREE = ROOT / "build" / "typecheck"
NOT_OURS = "/examples/padim[^/]*/"  # participants' code, run in the sandbox: not ours to type-check


def package_dirs() -> dict[str, Path]:
    """Package name -> its folder in the checkout, as setuptools maps them."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {name: ROOT / folder for name, folder in config["tool"]["setuptools"]["package-dir"].items()}


def lay_out(packages: dict[str, Path]) -> None:
    """The installed layout as links: a package with mapped sub-packages is a real folder of links."""
    shutil.rmtree(TREE, ignore_errors=True)
    for name in sorted(packages, key=lambda n: n.count(".")):
        target = TREE.joinpath(*name.split("."))
        nested = [other for other in packages if other.startswith(name + ".")]
        if not nested:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(packages[name], target_is_directory=True)
            continue
        target.mkdir(parents=True)
        for child in packages[name].iterdir():
            if f"{name}.{child.name}" not in packages and child.name != "__pycache__":
                (target / child.name).symlink_to(child)


def to_checkout(line: str, packages: dict[str, Path]) -> str:
    """A mypy line with its path as it is in the checkout."""
    for name in sorted(packages, key=lambda n: -n.count(".")):
        laid = "/".join(name.split(".")) + "/"
        if line.startswith(laid):
            return os.path.relpath(packages[name], ROOT) + "/" + line[len(laid):]
    return line


def main() -> int:
    packages = package_dirs()
    lay_out(packages)
    status = 0
    # The package, then what imports it as installed: the benchmarks (top-level scripts) and the tests
    # (their helpers in tests/support, on pytest's `pythonpath`).
    for target, cwd, env in (
        (["-p", "leadersboard"], TREE, None),
        ([str(path) for path in sorted((ROOT / "benchmarks").glob("*.py"))], ROOT,
         {**os.environ, "MYPYPATH": str(TREE)}),
        (["--explicit-package-bases", "tests"], ROOT, {**os.environ, "MYPYPATH": f"{TREE}:{ROOT / 'tests'}"}),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
             "--cache-dir", str(ROOT / ".mypy_cache"), "--exclude", NOT_OURS, *target],
            cwd=cwd, env=env, capture_output=True, text=True, check=False)
        for line in (result.stdout + result.stderr).splitlines():
            print(to_checkout(line, packages))
        status = status or result.returncode
    return status


if __name__ == "__main__":
    sys.exit(main())
