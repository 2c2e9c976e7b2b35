"""Where code lives: the card's folders are packages of one distribution, without links, and the
shared domain stays below every component (read from the sources, without importing them)."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGE_DIRS: dict[str, str] = CONFIG["tool"]["setuptools"]["package-dir"]
CARD_FOLDERS = {"hooks": "leadersboard.hooks", "webhook": "leadersboard.webhook", "runner": "leadersboard.runner",
                "site-generator": "leadersboard.site_generator", "templates": "leadersboard.templates"}
COMPONENTS = ("leadersboard.cli", "leadersboard.hooks", "leadersboard.webhook", "leadersboard.runner",
              "leadersboard.site_generator")


def imports_of(path: Path, package: str) -> set[str]:
    """Every module `path` imports, relative imports resolved against `package` (the file's own)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def modules_under(folder: Path, package: str) -> list[tuple[Path, str]]:
    """(file, the package it is in) for every Python file under `folder`."""
    out = []
    for path in sorted(folder.rglob("*.py")):
        parts = path.relative_to(folder).parent.parts
        out.append((path, ".".join((package, *parts))))
    return out


def test_no_symlink_is_tracked() -> None:
    tracked = subprocess.run(["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    links = [line.split("\t", 1)[1] for line in tracked.splitlines() if line.startswith("120000")]
    assert links == []


@pytest.mark.parametrize("folder", sorted(CARD_FOLDERS))
def test_every_card_folder_is_a_package_of_the_distribution(folder: str) -> None:
    assert PACKAGE_DIRS[CARD_FOLDERS[folder]] == folder
    assert (ROOT / folder / "__init__.py").is_file()
    assert CARD_FOLDERS[folder] in CONFIG["tool"]["setuptools"]["packages"]


def test_every_package_folder_is_listed() -> None:
    listed = set(CONFIG["tool"]["setuptools"]["packages"])
    for name, folder in PACKAGE_DIRS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            if "padim" in init.parts:
                continue
            sub = init.parent.relative_to(ROOT / folder).parts
            assert ".".join((name, *sub)) in listed, f"{init.relative_to(ROOT)} is not in the wheel"


def test_the_shared_package_imports_no_component() -> None:
    for path, package in modules_under(ROOT / "leadersboard", "leadersboard"):
        bad = sorted(m for m in imports_of(path, package) if m.startswith(COMPONENTS))
        assert bad == [], f"{path.relative_to(ROOT)} imports {bad}"


@pytest.mark.parametrize("component", ["webhook", "runner", "site-generator", "hooks"])
def test_components_import_no_cli_and_themselves_relatively(component: str) -> None:
    package = next(name for name, folder in PACKAGE_DIRS.items() if folder == component)
    for path, inner in modules_under(ROOT / component, package):
        imported = imports_of(path, inner)
        assert not any(m.startswith("leadersboard.cli") for m in imported), path
        text = path.read_text(encoding="utf-8")
        assert f"from {package}." not in text and f"import {package}." not in text, (
            f"{path.relative_to(ROOT)}: import its own component relatively")


def test_only_the_cli_imports_the_service_and_the_worker_together() -> None:
    for folder, package in (("webhook", "leadersboard.webhook"), ("site-generator", "leadersboard.site_generator")):
        for path, inner in modules_under(ROOT / folder, package):
            assert not any(m.startswith("leadersboard.runner") for m in imports_of(path, inner)), path


def test_the_command_line_starts_without_mlflow_or_torch() -> None:
    """Every `leadersboard` command pays for what `cli.main` imports: MLflow costs seconds of CPU, and
    tests and operators run many short commands. A command imports its heavy parts when it runs."""
    probe = "import sys, leadersboard.cli.main; print(sorted({'mlflow', 'torch', 'anomalib'} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_the_rules_checker_processes_load_no_mlflow() -> None:
    """The rules run in checker processes (`webhook/intake/checks.py`) that import the rules' modules,
    `push` and `behalf`, and their package: MLflow there would cost each one seconds of CPU at start."""
    probe = ("import sys, leadersboard.webhook.intake.checks as c; c._load_the_rules(); "
             "print(sorted({'mlflow', 'torch', 'anomalib', 'fastapi'} & set(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_a_worker_starts_without_the_scoring_libraries() -> None:
    """scikit-learn and scipy.ndimage (~1 s of CPU to import) score verified jobs only: a worker, started
    once per GPU and again after every restart, loads them when it scores one."""
    probe = ("import sys, leadersboard.runner.worker; "
             "print(sorted({'sklearn', 'scipy.ndimage'} & set(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
