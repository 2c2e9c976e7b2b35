"""The documentation is a tested artefact: it must agree with the code it describes.

- docs/cli.md is what `leadersboard.cli.clidoc` renders from the click commands;
- every configuration key `leadersboard.settings` reads is documented, in English and Japanese;
- README's quick start is the two commands CI runs;
- every relative link resolves;
- every rule tag a refused push can print is explained to participants, in English and Japanese.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import textwrap
from pathlib import Path

import pytest

from leadersboard import settings
from leadersboard.cli.clidoc import render_cli_reference

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
OPERATING = [DOCS / "operating.md", DOCS / "ja" / "operating.md"]
SUBMITTING = [DOCS / "submitting.md", DOCS / "ja" / "submitting.md"]
PROBLEM_SOURCES = [ROOT / "leadersboard" / "rules.py", ROOT / "webhook" / "intake" / "push.py",
                   ROOT / "webhook" / "intake" / "intake.py", ROOT / "webhook" / "intake" / "gpus.py"]
ADMISSION_SOURCE = ROOT / "leadersboard" / "admission.py"

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)
EXTERNAL = re.compile(r"^([a-z][a-z0-9+.-]*:|//|#)", re.I)


def _markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def _read(path: Path) -> str:
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing"
    return path.read_text(encoding="utf-8")


def _without_code(text: str) -> str:
    return INLINE_CODE.sub("", FENCE.sub("", text))


def _section(text: str, heading: str) -> str:
    """The body of the `## heading` section: up to the next heading of level 1 or 2."""
    match = re.search(rf"^{re.escape(heading)}[ \t]*\n(.*?)(?=^#{{1,2}} |\Z)", text, re.M | re.S)
    assert match, f"no {heading!r} section"
    return match.group(1)


# (a) the CLI reference


def test_cli_reference_is_current() -> None:
    assert _read(DOCS / "cli.md") == render_cli_reference(), (
        "docs/cli.md is out of date: run python -m leadersboard.cli.clidoc > docs/cli.md"
    )


def test_cli_reference_is_deterministic() -> None:
    assert render_cli_reference() == render_cli_reference()


# (b) every setting is documented


def _server_keys() -> list[str]:
    """The keys of the config file's `server` section (the fields of `ServerSection`)."""
    return list(settings.ServerSection.__dataclass_fields__)


def _environment_variables() -> list[str]:
    """The environment variables `Settings.load` reads (`env.get("NAME")`)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(settings.Settings.load)))
    names = [
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "get"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "env"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ]
    assert names, "found no env.get(...) in Settings.load: update this test"
    return names


SETTINGS = sorted(
    [("limits", f.name) for f in dataclasses.fields(settings.Limits)]
    + [("runner", f.name) for f in dataclasses.fields(settings.RunnerSettings)]
    + [("server", key) for key in _server_keys()]
    + [("access", f.name) for f in dataclasses.fields(settings.AccessSettings)]
)


def _documents_key(text: str, section: str, key: str) -> bool:
    """`key` appears as a YAML key (`key:`, commented out or not) or in backticks (`key`, `section.key`)."""
    as_yaml = re.search(rf"^[ \t]*(#[ \t]*)?{re.escape(key)}:", text, re.M)
    return bool(as_yaml) or f"`{key}`" in text or f"`{section}.{key}`" in text


@pytest.mark.parametrize("doc", OPERATING, ids=lambda p: str(p.relative_to(ROOT)))
@pytest.mark.parametrize(("section", "key"), SETTINGS, ids=[f"{s}.{k}" for s, k in SETTINGS])
def test_setting_is_documented(doc: Path, section: str, key: str) -> None:
    assert _documents_key(_read(doc), section, key), (
        f"the setting {section}.{key} is not documented in {doc.relative_to(ROOT)}"
    )


@pytest.mark.parametrize("doc", OPERATING, ids=lambda p: str(p.relative_to(ROOT)))
def test_config_sections_and_environment_are_documented(doc: Path) -> None:
    text = _read(doc)
    missing = [f"{name}:" for name in settings.SECTIONS if f"{name}:" not in text]
    missing += [name for name in _environment_variables() if f"`{name}`" not in text]
    assert not missing, f"{doc.relative_to(ROOT)} does not document {', '.join(missing)}"


# (c) README's quick start is what CI runs


def _quick_start_lines(readme: Path = README, heading: str = "## Quick start") -> list[str]:
    blocks = FENCE.findall(_section(_read(readme), heading))
    where = f"{readme.relative_to(ROOT)}, {heading!r}"
    assert len(blocks) == 1, f"{where} must hold exactly one code block, not {len(blocks)}"
    return [line for line in blocks[0].splitlines() if line.strip()]


def test_quick_start_is_demo_then_tests() -> None:
    lines = _quick_start_lines()
    assert len(lines) == 2, f"README.md's Quick start must have exactly two commands, not {lines}"
    assert re.search(r"\bleadersboard demo\b", lines[0]), f"the first Quick start line must run the demo: {lines[0]}"
    assert re.search(r"\bpytest\b", lines[1]), f"the second Quick start line must run the tests: {lines[1]}"


def test_ci_runs_the_quick_start_tests() -> None:
    commands = [
        line for line in _read(ROOT / ".ci" / "run").splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    second = _quick_start_lines()[1].strip()
    assert commands and second in commands[-1], (
        f".ci/run's last command must contain README's test command {second!r} verbatim"
    )


def test_japanese_quick_start_is_the_same() -> None:
    assert _quick_start_lines(DOCS / "ja" / "README.md", "## クイックスタート") == _quick_start_lines()


# (d) relative links


def _relative_links(text: str) -> list[str]:
    prose = _without_code(text)
    targets = INLINE_LINK.findall(prose) + REFERENCE_LINK.findall(prose)
    return [target for target in targets if not EXTERNAL.match(target)]


def test_link_parser_sees_links() -> None:
    sample = (
        "[a](x.md) ![b](img/y.png#z) [c](https://e.org) [d](#top) `[e](no.md)`\n"
        "[f]: ref.md\n"
        "```\n[g](no2.md)\n```\n"
    )
    assert _relative_links(sample) == ["x.md", "img/y.png#z", "ref.md"]


@pytest.mark.parametrize("doc", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path) -> None:
    broken = [
        target
        for target in _relative_links(_read(doc))
        if not (doc.parent / target.split("#", 1)[0].split("?", 1)[0]).exists()
    ]
    assert not broken, f"{doc.relative_to(ROOT)} links to missing files: {', '.join(broken)}"


# (e) rule tags


def _first_arguments(path: Path, callee: str) -> set[str]:
    """The string literals passed as first argument to `callee(...)` in the module at `path`."""
    found = set()
    for node in ast.walk(ast.parse(_read(path), filename=str(path))):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
        first = node.args[0]
        if name == callee and isinstance(first, ast.Constant) and isinstance(first.value, str):
            found.add(first.value)
    return found


def _rule_tags() -> list[str]:
    tags: set[str] = set()
    for path in PROBLEM_SOURCES:
        tags |= _first_arguments(path, "Problem")
    admission = _first_arguments(ADMISSION_SOURCE, "Refusal")
    assert {"rate-limit", "concurrency"} <= admission, f"admission.py refuses with {admission}: update this test"
    assert {"branch", "history", "config", "entrypoint"} <= tags, f"found only {tags}: update this test"
    return sorted(tags | admission)


RULE_TAGS = _rule_tags()


@pytest.mark.parametrize("doc", SUBMITTING, ids=lambda p: str(p.relative_to(ROOT)))
@pytest.mark.parametrize("tag", RULE_TAGS)
def test_rule_tag_is_explained(doc: Path, tag: str) -> None:
    assert f"`{tag}`" in _read(doc), f"the rule `{tag}` a push can be refused with is not in {doc.relative_to(ROOT)}"


@pytest.mark.parametrize("doc", SUBMITTING, ids=lambda p: str(p.relative_to(ROOT)))
def test_rules_table_names_no_retired_rule(doc: Path) -> None:
    rows = [line for line in _read(doc).splitlines() if line.startswith("| `")]
    named = {tag for row in rows for tag in re.findall(r"`([a-z-]+)`", row.split("|")[1])}
    assert named, f"found no rules table in {doc.relative_to(ROOT)}"
    retired = named - set(RULE_TAGS)
    assert not retired, f"{doc.relative_to(ROOT)} lists rules the code no longer has: {', '.join(sorted(retired))}"


# the two languages point at each other


@pytest.mark.parametrize(
    ("japanese", "english"),
    [
        ("docs/ja/README.md", "README.md"),
        ("docs/ja/submitting.md", "docs/submitting.md"),
        ("docs/ja/operating.md", "docs/operating.md"),
        ("docs/ja/deploy.md", "docs/deploy.md"),
    ],
)
def test_japanese_page_links_its_english_original(japanese: str, english: str) -> None:
    page = ROOT / japanese
    head = "\n".join(_read(page).splitlines()[:5])
    targets = [(page.parent / target).resolve() for target in _relative_links(head)]
    assert (ROOT / english).resolve() in targets, f"{japanese} must link to its English original near the top"
