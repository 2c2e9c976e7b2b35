"""The folder rules, on folders held in memory: each broken rule is one problem naming the rule, the
file (and line) and the fix; a folder that breaks none yields what it submits."""

from __future__ import annotations

from pathlib import Path

import pygit2
import pytest
from pygit2.enums import FileMode

from leadersboard.datasets import Dataset
from leadersboard.folders import GitFolder
from leadersboard.rules import Problem, check_folder
from leadersboard.settings import Limits

from support.instances import GOOD_CONFIG, GOOD_MAIN
from support.memory import MemoryFolder

DATASETS = {"visa": Dataset("visa", Path("/data/visa"), "visa", categories=("pcb1", "candle")),
            "miic": Dataset("miic", Path("/data/miic"), "folder", categories=("pcb1",))}
LIMITS = Limits(max_file_bytes=1000, max_submission_bytes=2500)


def problems(files: dict[str, str | bytes], name: str = "model", **kinds: tuple[str, ...]) -> list[Problem]:
    return check_folder(MemoryFolder(name, files, **kinds), DATASETS, LIMITS).problems


def only(files: dict[str, str | bytes], **kinds: tuple[str, ...]) -> Problem:
    found = check_folder(MemoryFolder("model", files, **kinds), DATASETS, LIMITS).problems
    assert len(found) == 1, found
    return found[0]


def good(**extra: str | bytes) -> dict[str, str | bytes]:
    return {"main.py": GOOD_MAIN, "config.yaml": GOOD_CONFIG, **extra}


def test_a_good_folder_yields_its_spec() -> None:
    report = check_folder(MemoryFolder("padim", good(**{"submission.yaml": "method: PaDiM\nteam: blue\n"})),
                          DATASETS, Limits())
    assert report.problems == []
    assert report.spec is not None
    assert (report.spec.folder, report.spec.benchmark, report.spec.entrypoint, report.spec.config_file) == (
        "padim", "visa/pcb1", "main.py", "config.yaml")
    assert report.spec.metadata == {"method": "PaDiM", "team": "blue"}


def test_a_problem_reads_as_one_line_with_rule_place_and_fix() -> None:
    problem = Problem("config", "m/config.yaml", "not valid YAML: oops", "correct it", 7)
    assert str(problem) == "[config] m/config.yaml line 7: not valid YAML: oops. Fix: correct it"


@pytest.mark.parametrize("name", ["my@model", ".hidden", "a" * 65, ".."])
def test_folder_name(name: str) -> None:
    found = problems(good(), name=name)
    assert [p.rule for p in found] == ["folder-name"]
    assert found[0].path == f"{name}/"


def test_links_and_submodules_are_refused() -> None:
    found = problems(good(), links=("link.py",), submodules=("vendor",))
    assert sorted((p.rule, p.path) for p in found) == [("submodule", "model/vendor"), ("symlink", "model/link.py")]


def test_file_and_folder_sizes() -> None:
    big = only(good(**{"weights.bin": b"x" * 1001}))
    assert big.rule == "file-size" and big.path == "model/weights.bin" and "limit per file" in big.message
    found = problems(good(a="x" * 1000, b="x" * 1000, c="x" * 1000))
    assert [p.rule for p in found] == ["submission-size"]


def test_missing_entrypoint_and_config_say_what_to_add() -> None:
    main = only({"config.yaml": GOOD_CONFIG})
    assert (main.rule, main.path) == ("entrypoint", "model/main.py") and "defining main() or train()" in main.fix
    config = only({"main.py": GOOD_MAIN})
    assert (config.rule, config.path) == ("config", "model/config.yaml")
    assert "'model', 'data' and 'trainer'" in config.fix


def test_syntax_error_names_its_line() -> None:
    problem = only(good(**{"main.py": "import os\n\ndef main(:\n    pass\n"}))
    assert (problem.rule, problem.line) == ("entrypoint", 3) and "syntax error" in problem.message


def test_unreadable_source() -> None:
    problem = only(good(**{"main.py": b"def main():\n    pass\0\n"}))
    assert problem.rule == "entrypoint" and "null bytes" in problem.message


@pytest.mark.parametrize("source", ["def train():\n    pass\n", "async def main():\n    pass\n"])
def test_train_or_async_main_is_an_entry_function(source: str) -> None:
    assert problems(good(**{"main.py": source})) == []


def test_an_entry_function_must_be_top_level() -> None:
    problem = only(good(**{"main.py": "class A:\n    def main(self):\n        pass\n"}))
    assert "defines no top-level main() or train()" in problem.message


@pytest.mark.parametrize(("config", "fragment", "line"), [
    ("model: {}\ndata: [\n", "not valid YAML", 3),
    ("- model\n- data\n", "must be a YAML mapping, not a list", None),
    ("model: {}\ndata: {}\n", "missing top-level key(s): trainer", None),
    ("model: {}\ntrainer: {}\ndata: {init_args: {name: pcb1}}\n", "'data.name' must name a data set", None),
    ("model: {}\ntrainer: {}\ndata: {name: mvtec, init_args: {name: pcb1}}\n", "unknown data set 'mvtec'", None),
    ("model: {}\ntrainer: {}\ndata: {name: visa}\n", "'data.init_args.name' must name the category", None),
    ("model: {}\ntrainer: {}\ndata: {name: visa, init_args: {name: ../x}}\n", "must name the category", None),
])
def test_config(config: str, fragment: str, line: int | None) -> None:
    problem = only(good(**{"config.yaml": config}))
    assert problem.rule == "config" and fragment in problem.message and problem.line == line


def test_an_unknown_category_lists_the_known_ones() -> None:
    problem = only(good(**{"config.yaml": GOOD_CONFIG.replace("name: pcb1", "name: pcb9")}))
    assert problem.message == "unknown category 'pcb9' of visa in data.init_args.name"
    assert problem.fix == "use one of: pcb1, candle"


def test_an_unknown_data_set_lists_the_known_ones() -> None:
    problem = only(good(**{"config.yaml": GOOD_CONFIG.replace("name: visa", "name: other")}))
    assert problem.fix == "use one of: miic, visa"


def test_submission_yaml_names_other_files() -> None:
    files = {"src/train.py": GOOD_MAIN, "cfg.yaml": GOOD_CONFIG,
             "submission.yaml": "entrypoint: src/train.py\nconfig: cfg.yaml\n"}
    report = check_folder(MemoryFolder("m", files), DATASETS, Limits())
    assert report.problems == [] and report.spec is not None
    assert (report.spec.entrypoint, report.spec.config_file, report.spec.metadata) == ("src/train.py", "cfg.yaml", {})


@pytest.mark.parametrize(("document", "fragment"), [
    ("- a\n", "must be a mapping of keys, not a list"),
    ("method: [1]\n", "'method' must be text"),
    ("description: " + "x" * 2001 + "\n", "'description' must be text of at most 2000"),
    ("entrypoint: ../outside.py\n", "must name a file inside the folder"),
    ("config: /etc/passwd\n", "must name a file inside the folder"),
    ("method: [\n", "not valid YAML"),
])
def test_submission_yaml(document: str, fragment: str) -> None:
    found = problems(good(**{"submission.yaml": document}))
    assert any(p.rule == "submission-yaml" and fragment in p.message for p in found), found


def test_every_problem_of_a_folder_is_reported_at_once() -> None:
    found = problems({"main.py": "def helper(): pass\n", "config.yaml": "- x\n", "w.bin": b"x" * 1001}, name="bad@")
    assert sorted(p.rule for p in found) == ["config", "entrypoint", "file-size", "folder-name"]


def test_an_alias_bomb_is_a_config_problem_not_a_stall() -> None:
    bomb = 'a: &a ["x","x","x"]\nb: &b [*a,*a,*a]\nc: [*b,*b,*b]\n'
    problem = only(good(**{"config.yaml": bomb}))
    assert (problem.rule, problem.line) == ("config", 2)
    assert problem.message == "not valid YAML: aliases (*a) are not allowed: write the value out"


@pytest.mark.parametrize("path", ["x/.git/config", ".GIT", "a/.git./b.py", "git~1/x", "a/.git  /b"])
def test_names_git_keeps_for_itself(path: str) -> None:
    problem = only(good(**{path: "x"}))
    assert problem.rule == "path" and "is a name git keeps for itself" in problem.message


@pytest.mark.parametrize("levels", [40, 1100])
def test_folders_nested_too_deep(tmp_path: Path, levels: int) -> None:
    """A real git tree nested `levels` deep (a pushed one may nest thousands): one clear problem."""
    repo = pygit2.init_repository(str(tmp_path / "r.git"), bare=True)
    node = repo.TreeBuilder()
    node.insert("leaf.txt", repo.create_blob(b"x"), FileMode.BLOB)
    tree_id = node.write()
    for _ in range(levels):
        parent = repo.TreeBuilder()
        parent.insert("d", tree_id, FileMode.TREE)
        tree_id = parent.write()
    top = repo.TreeBuilder()
    top.insert("main.py", repo.create_blob(GOOD_MAIN.encode()), FileMode.BLOB)
    top.insert("config.yaml", repo.create_blob(GOOD_CONFIG.encode()), FileMode.BLOB)
    top.insert("deep", tree_id, FileMode.TREE)
    folder = GitFolder(repo, repo[top.write()].peel(pygit2.Tree), "m")
    found = check_folder(folder, DATASETS, LIMITS).problems
    assert [(p.rule, p.message) for p in found] == [("path", "folders nest more than 32 levels deep here")]
    assert found[0].path == "m/deep" + "/d" * 31


def check_files_with_big_limits(files: dict[str, str | bytes]) -> list[Problem]:
    return check_folder(MemoryFolder("model", files), DATASETS, Limits()).problems


def test_an_entrypoint_over_a_megabyte_is_not_parsed() -> None:
    huge = "def main():\n    pass\nDATA = '" + "x" * (1024 * 1024) + "'\n"
    [problem] = check_files_with_big_limits({"main.py": huge, "config.yaml": GOOD_CONFIG})
    assert problem.rule == "entrypoint" and "over the 1.0 MB an entrypoint may be" in problem.message
