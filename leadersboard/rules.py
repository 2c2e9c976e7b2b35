"""The rules every submission folder must meet, shared by the pre-receive hook, the API, the web
form and `leadersboard validate`.

A folder is seen through `FolderView` (a git tree or a local directory), so the same checks run
everywhere. Each broken rule becomes a `Problem` naming the rule, the file (and line) and the fix.
"""

from __future__ import annotations

import ast
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import yaml

from . import platform_keys, safe_yaml
from .datasets import Dataset
from .names import folder_name_problem
from .settings import Limits

DEFAULT_ENTRYPOINT = "main.py"
DEFAULT_CONFIG = "config.yaml"
SUBMISSION_FILE = "submission.yaml"
ENTRY_FUNCTIONS = ("main", "train")
REQUIRED_CONFIG_KEYS = ("model", "data", "trainer")
# submission.yaml: the keys the platform reads, with the type each must have; others are free-form.
SUBMISSION_KEYS: dict[str, type] = {"entrypoint": str, "config": str, "method": str, "description": str}
MAX_TEXT = 2000

EntryKind = Literal["file", "symlink", "submodule", "too-deep"]
MAX_DEPTH = 32  # folders within a submission folder
MAX_ENTRYPOINT_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Entry:
    path: str  # relative to the submission folder, '/'-separated
    kind: EntryKind
    size: int = 0


class FolderView(Protocol):
    """Read-only access to one submission folder, wherever it lives."""

    name: str

    def entries(self) -> Iterable[Entry]: ...

    def read(self, path: str) -> bytes | None: ...


@dataclass(frozen=True)
class Problem:
    rule: str
    path: str
    message: str
    fix: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.path + (f" line {self.line}" if self.line else "")
        return f"[{self.rule}] {where}: {self.message}. Fix: {self.fix}"


@dataclass(frozen=True)
class SubmissionSpec:
    """What a valid folder submits."""

    folder: str
    entrypoint: str
    config_file: str
    dataset: str
    category: str
    metadata: dict[str, Any] = field(default_factory=dict)
    accelerator: str = ""  # trainer.accelerator as written (lower case); admission checks a GPU worker exists
    metrics: tuple[str, ...] = ()  # the config's top-level `metrics:`: what the leaderboard shows

    @property
    def needs_gpu(self) -> bool:
        return self.accelerator in platform_keys.GPU_ACCELERATORS

    @property
    def benchmark(self) -> str:
        return f"{self.dataset}/{self.category}"


@dataclass
class FolderReport:
    folder: str
    problems: list[Problem] = field(default_factory=list)
    spec: SubmissionSpec | None = None


def check_folder(view: FolderView, datasets: Mapping[str, Dataset], limits: Limits) -> FolderReport:
    """Run every folder rule on `view`; `spec` is set only when nothing is wrong."""
    name = view.name
    report = FolderReport(folder=name)
    problems = report.problems
    problems.extend(folder_name_problems(name))

    entries = list(view.entries())
    problems.extend(_content_problems(name, entries, limits))
    paths = {e.path for e in entries if e.kind == "file"}

    metadata, entrypoint, config_file = _read_submission_yaml(view, paths, problems)
    sizes = {e.path: e.size for e in entries if e.kind == "file"}
    _check_entrypoint(view, entrypoint, sizes, problems)
    checked = _check_config(view, config_file, paths, datasets, problems)
    if not problems and checked is not None:
        (dataset, category), config = checked
        report.spec = SubmissionSpec(name, entrypoint, config_file, dataset, category, metadata,
                                     platform_keys.accelerator(config), platform_keys.shown_metrics(config) or ())
    return report


def folder_name_problems(name: str) -> list[Problem]:
    """The folder-name rule alone (the API checks it before it can build a tree with the name)."""
    naming = folder_name_problem(name)
    return [Problem("folder-name", f"{name}/", f"the folder name {name!r} is not allowed", naming)] if naming else []


def _content_problems(folder: str, entries: list[Entry], limits: Limits) -> Iterable[Problem]:
    total = 0
    for entry in entries:
        shown = f"{folder}/{entry.path}"
        reserved = reserved_name(entry.path)
        if reserved:
            yield Problem("path", shown, f"{reserved!r} is a name git keeps for itself",
                          "rename it (names like .git, .GIT, .git. or git~1 cannot be stored or checked out)")
        if entry.kind == "too-deep":
            yield Problem("path", shown, f"folders nest more than {MAX_DEPTH} levels deep here",
                          "flatten the folder structure")
        elif entry.kind == "symlink":
            yield Problem("symlink", shown, "symbolic links are not allowed",
                          "replace the link with the file itself (git rm --cached, then add the real file)")
        elif entry.kind == "submodule":
            yield Problem("submodule", shown, "submodules are not allowed",
                          "copy the code into the folder instead (git rm the submodule, then add its files)")
        elif entry.size > limits.max_file_bytes:
            yield Problem("file-size", shown,
                          f"the file is {_mb(entry.size)}, over the {_mb(limits.max_file_bytes)} limit per file",
                          "leave large files (weights, data) out of the submission; the data sets are mounted "
                          "for you")
        total += entry.size
    if total > limits.max_submission_bytes:
        yield Problem("submission-size", f"{folder}/",
                      f"the folder holds {_mb(total)}, over the {_mb(limits.max_submission_bytes)} limit",
                      "remove large files from the folder")


def reserved_name(path: str) -> str | None:
    """A part of `path` that git refuses in a tree (or that some file systems take for `.git`), or None."""
    for part in path.split("/"):
        if part.rstrip(". ").lower() in (".git", "git~1"):
            return part
    return None


def _read_submission_yaml(
    view: FolderView, paths: set[str], problems: list[Problem]
) -> tuple[dict[str, Any], str, str]:
    entrypoint, config_file = DEFAULT_ENTRYPOINT, DEFAULT_CONFIG
    if SUBMISSION_FILE not in paths:
        return {}, entrypoint, config_file
    shown = f"{view.name}/{SUBMISSION_FILE}"
    data, problem = _load_yaml(view.read(SUBMISSION_FILE) or b"", shown, "submission-yaml")
    if problem:
        problems.append(problem)
        return {}, entrypoint, config_file
    if data is None:
        return {}, entrypoint, config_file
    if not isinstance(data, dict):
        problems.append(Problem("submission-yaml", shown, f"must be a mapping of keys, not a {_kind(data)}",
                                "write keys such as 'method: PaDiM' and 'description: ...'"))
        return {}, entrypoint, config_file
    for key, kind in SUBMISSION_KEYS.items():
        value = data.get(key)
        if value is not None and (not isinstance(value, kind) or len(str(value)) > MAX_TEXT):
            problems.append(Problem("submission-yaml", shown, f"'{key}' must be text of at most {MAX_TEXT} characters",
                                    f"write '{key}:' followed by text"))
    for key in ("entrypoint", "config"):
        value = data.get(key)
        if isinstance(value, str) and _unsafe_path(value):
            problems.append(Problem("submission-yaml", shown, f"'{key}: {value}' must name a file inside the folder",
                                    "use a relative path such as 'src/train.py', without '..'"))
        elif isinstance(value, str) and key == "entrypoint":
            entrypoint = value
        elif isinstance(value, str):
            config_file = value
    metadata = {str(k): v for k, v in data.items() if k not in ("entrypoint", "config")}
    return metadata, entrypoint, config_file


def _check_entrypoint(view: FolderView, path: str, sizes: dict[str, int], problems: list[Problem]) -> None:
    shown = f"{view.name}/{path}"
    if path not in sizes:
        problems.append(Problem("entrypoint", shown, "the entrypoint is missing",
                                f"add {path} defining main() or train()"
                                if path == DEFAULT_ENTRYPOINT else
                                f"add {path}, or correct 'entrypoint' in {SUBMISSION_FILE}"))
        return
    if not path.endswith(".py"):
        problems.append(Problem("entrypoint", shown, "the entrypoint must be a Python file", "name a .py file"))
        return
    if sizes[path] > MAX_ENTRYPOINT_BYTES:  # parsing holds the interpreter ~1 s per MB: bounded first
        problems.append(Problem("entrypoint", shown, f"the entrypoint is {_mb(sizes[path])}, over the "
                                f"{_mb(MAX_ENTRYPOINT_BYTES)} an entrypoint may be",
                                "keep data and weights in other files and load them from the code"))
        return
    source = view.read(path) or b""
    try:
        tree = ast.parse(source, filename=shown)
    except SyntaxError as exc:
        problems.append(Problem("entrypoint", shown, f"Python syntax error: {exc.msg}",
                                "correct the syntax; 'python -m py_compile FILE' shows it locally", exc.lineno))
        return
    except ValueError as exc:  # null bytes, undecodable source
        problems.append(Problem("entrypoint", shown, f"not readable as Python source ({exc})",
                                "save the file as UTF-8 text"))
        return
    defined = {
        node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    if not defined & set(ENTRY_FUNCTIONS):
        problems.append(Problem("entrypoint", shown, "defines no top-level main() or train() function",
                                "add 'def main():' at the top level of the file and call it under "
                                "'if __name__ == \"__main__\":'"))


def _check_config(
    view: FolderView, path: str, paths: set[str], datasets: Mapping[str, Dataset], problems: list[Problem]
) -> tuple[tuple[str, str], dict[str, Any]] | None:
    shown = f"{view.name}/{path}"
    if path not in paths:
        problems.append(Problem("config", shown, "the config file is missing",
                                f"add {path} with 'model', 'data' and 'trainer' sections"
                                if path == DEFAULT_CONFIG else
                                f"add {path}, or correct 'config' in {SUBMISSION_FILE}"))
        return None
    data, problem = _load_yaml(view.read(path) or b"", shown, "config")
    if problem:
        problems.append(problem)
        return None
    if not isinstance(data, dict):
        problems.append(Problem("config", shown, f"must be a YAML mapping, not a {_kind(data)}",
                                "write top-level keys 'model:', 'data:' and 'trainer:'"))
        return None
    missing = [key for key in REQUIRED_CONFIG_KEYS if key not in data]
    if missing:
        problems.append(Problem("config", shown, f"missing top-level key(s): {', '.join(missing)}",
                                "add them; see docs/submitting.md for a complete config"))
        return None
    data_section = data["data"]
    known = ", ".join(sorted(datasets)) or "(none registered yet)"
    if not isinstance(data_section, dict) or not isinstance(data_section.get("name"), str):
        problems.append(Problem("config", shown, "'data.name' must name a data set",
                                f"set data.name to one of: {known}"))
        return None
    dataset = data_section["name"]
    if dataset not in datasets:
        problems.append(Problem("config", shown, f"unknown data set {dataset!r} in data.name",
                                f"use one of: {known}"))
        return None
    init_args = data_section.get("init_args")
    category = init_args.get("name") if isinstance(init_args, dict) else None
    if not isinstance(category, str) or folder_name_problem(category):
        problems.append(Problem("config", shown, "'data.init_args.name' must name the category (e.g. pcb1)",
                                "set data.init_args.name to the category you are evaluated on"))
        return None
    if not datasets[dataset].has_category(category):
        categories = ", ".join(datasets[dataset].categories) or "(see the operator)"
        problems.append(Problem("config", shown, f"unknown category {category!r} of {dataset} in data.init_args.name",
                                f"use one of: {categories}"))
        return None
    metrics = platform_keys.shown_metrics(data)
    if metrics is None or len(metrics or ()) > platform_keys.MAX_SHOWN_METRICS:
        problems.append(Problem("config", shown, "'metrics' must be a list of metric names (what the leaderboard "
                                f"shows for this submission, at most {platform_keys.MAX_SHOWN_METRICS})",
                                "write e.g. 'metrics: [auroc, f1_score]', or leave the key out"))
        return None
    return (dataset, category), data


def _load_yaml(raw: bytes, shown: str, rule: str) -> tuple[Any, Problem | None]:
    try:
        return safe_yaml.load(raw.decode("utf-8")), None
    except UnicodeDecodeError:
        return None, Problem(rule, shown, "not UTF-8 text", "save the file as UTF-8")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        line = mark.line + 1 if mark is not None else None
        fix = ("write the values out, without anchors and aliases, in a file under 256 KiB and 64 levels deep"
               if isinstance(exc, safe_yaml.UnsafeYaml)  # a bound, not a syntax error
               else "correct the YAML syntax (indentation, ':' after keys, quotes)")
        return None, Problem(rule, shown, f"not valid YAML: {reason}", fix, line)


def _unsafe_path(path: str) -> bool:
    return not path or path.startswith("/") or ".." in posixpath.normpath(path).split("/")


def _kind(value: object) -> str:
    return {list: "list", str: "text", int: "number", float: "number", type(None): "empty document"}.get(
        type(value), type(value).__name__)


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
