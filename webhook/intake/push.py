"""What a push asks for: which refs it moves, which folders it submits, and what breaks the rules.

Runs in the service on the pushed objects while they are still in git's quarantine, so the hook
process itself stays tiny.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pygit2
from pygit2.enums import FileMode, ObjectType, SortMode

from leadersboard.datasets import Dataset
from leadersboard.folders import GitFolder
from leadersboard.names import RESOURCE_CLASS, ZERO_OID, branch_owner_problem
from leadersboard.rules import Problem, SubmissionSpec, check_folder
from leadersboard.settings import Limits


@dataclass(frozen=True)
class RefUpdate:
    old: str
    new: str
    ref: str

    @property
    def short(self) -> str:
        return self.ref.removeprefix("refs/heads/")

    @classmethod
    def parse(cls, text: str) -> list[RefUpdate]:
        updates = []
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 3:
                updates.append(cls(*parts))
        return updates


@dataclass(frozen=True)
class PushOptions:
    """What `git push -o` asked for (the API and the web form have the same two fields)."""

    run: bool = True
    resource_class: str | None = None


def parse_push_options(raw: list[str]) -> tuple[PushOptions, list[Problem]]:
    run, resource_class, problems = True, None, []
    for option in raw:
        key, _, value = option.partition("=")
        if key == "run" and value in ("true", "false"):
            run = value == "true"
        elif key == "resource_class" and RESOURCE_CLASS.fullmatch(value):
            resource_class = value
        else:
            problems.append(Problem("push-option", f"-o {option}", "unknown or malformed push option",
                                    "use -o run=false or -o resource_class=NAME (lower-case letters, digits, "
                                    "'-', '_')"))
    return PushOptions(run, resource_class), problems


@dataclass(frozen=True)
class FolderSubmission:
    ref: str
    commit_id: str
    tree_id: str
    spec: SubmissionSpec


@dataclass
class PushAnalysis:
    problems: list[Problem] = field(default_factory=list)
    submissions: list[FolderSubmission] = field(default_factory=list)


def open_repository(repo_path: Path, quarantine: str | None) -> pygit2.Repository:
    """The repository as a hook sees it: with the pushed, not yet accepted objects."""
    repo = pygit2.Repository(str(repo_path))
    if quarantine:
        repo.odb.add_disk_alternate(quarantine)
    return repo


def analyze_push(
    repo_path: Path,
    quarantine: str | None,
    user: str,
    updates: Iterable[RefUpdate],
    datasets: Mapping[str, Dataset],
    limits: Limits,
) -> PushAnalysis:
    """Every rule on what the push moves: its refs, then each changed submission folder (run in a
    checker process: it parses the participant's files)."""
    repo = open_repository(repo_path, quarantine)
    result = PushAnalysis()
    for update, commit, name, tree in _changed_folders(repo_path, repo, user, updates, result.problems):
        report = check_folder(GitFolder(repo, tree, name), datasets, limits)
        result.problems.extend(report.problems)
        if report.spec is not None:
            result.submissions.append(FolderSubmission(update.ref, str(commit.id), str(tree.id), report.spec))
    return result


def count_changed_folders(repo_path: Path, quarantine: str | None, user: str, updates: Iterable[RefUpdate]) -> int:
    """How many folders the push submits, without reading any of them (what admission is asked about
    before the rules parse anything)."""
    return len(list(_changed_folders(repo_path, open_repository(repo_path, quarantine), user, updates, [])))


def _changed_folders(repo_path: Path, repo: pygit2.Repository, user: str, updates: Iterable[RefUpdate],
                     problems: list[Problem]) -> Iterable[tuple[RefUpdate, pygit2.Commit, str, pygit2.Tree]]:
    before = pygit2.Repository(str(repo_path))  # without the quarantine: what existed before the push
    for update in updates:
        ref_broken = ref_problems(repo, user, update)
        if ref_broken:
            problems.extend(ref_broken)
            continue
        commit = repo[update.new].peel(pygit2.Commit)
        base = _base_tree(repo, before, user, update)
        for name, tree in _changed_top_level(repo, base, commit.tree, problems, update):
            yield update, commit, name, tree


def ref_problems(repo: pygit2.Repository, user: str, update: RefUpdate) -> list[Problem]:
    """The branch and history rules for one ref update (pushes and commits made on a user's behalf)."""
    owner = owner_problems(user, update.ref)
    if owner:
        return owner
    if update.new == ZERO_OID:
        return [Problem("history", update.short, "deleting a branch is not allowed",
                        "submission history is append-only; push a new commit instead")]
    if repo.get(update.new) is None or repo[update.new].type != ObjectType.COMMIT:
        return [Problem("branch", update.short, "only commits can be pushed to a branch", "push a commit")]
    if update.old == ZERO_OID:
        clash = _name_clash(repo, update.ref)
        if clash:
            return [Problem("branch", update.short, f"the branch {clash} exists, and git cannot keep a branch and a "
                            "folder of branches under one name (users/NAME beside users/NAME/TOPIC)",
                            f"push to {clash} instead, or choose a topic name that does not clash")]
    if update.old != ZERO_OID and update.old != update.new and not repo.descendant_of(update.new, update.old):
        return [Problem("history", update.short,
                        "this push rewrites history (not a fast-forward); force-pushing is not allowed",
                        f"run 'git pull --rebase origin {update.short}' (or merge), then push again")]
    return []


def owner_problems(user: str, ref: str) -> list[Problem]:
    """Whether `ref` is in the user's own namespace (checked before the ref name is used at all)."""
    owner = branch_owner_problem(ref, user)
    short = ref.removeprefix("refs/heads/")
    return [Problem("branch", short, f"you ({user}) may not push to this branch", owner)] if owner else []


def _name_clash(repo: pygit2.Repository, ref: str) -> str | None:
    """An existing branch that shares a path with `ref` as file and folder (git refuses both)."""
    parts = ref.split("/")
    for i in range(3, len(parts)):
        prefix = "/".join(parts[:i])
        if prefix in repo.references:
            return prefix.removeprefix("refs/heads/")
    for name in repo.references:
        if name.startswith(ref + "/"):
            return str(name).removeprefix("refs/heads/")
    return None


def _base_tree(repo: pygit2.Repository, before: pygit2.Repository, user: str,
               update: RefUpdate) -> pygit2.Tree | None:
    """The tree the push is compared with: the old tip, or for a new branch the newest commit on its
    first-parent line that the user had pushed already (nothing, for a history new to the user). Another
    user's commits do not count: the same commit on two users' branches is a submission of each."""
    if update.old != ZERO_OID:
        return repo[update.old].peel(pygit2.Tree)
    pushed: set[pygit2.Oid] | None = None  # what the user's branches reach: walked once, when first needed
    commit = repo[update.new].peel(pygit2.Commit)
    while True:
        if commit.id in before:
            pushed = _reached_by_own_branches(before, user) if pushed is None else pushed
            if commit.id in pushed:
                return commit.tree
        if not commit.parent_ids:
            return None
        commit = repo[commit.parent_ids[0]].peel(pygit2.Commit)


def _reached_by_own_branches(before: pygit2.Repository, user: str) -> set[pygit2.Oid]:
    """Every commit the user's own branches reach (one walk of their history, not a reachability
    question per commit: that is quadratic on a long history, ~100 s for 2,000 commits)."""
    tips = [before.references[name].peel(pygit2.Commit).id for name in before.references
            if branch_owner_problem(name, user) is None]
    if not tips:
        return set()
    walker = before.walk(tips[0], SortMode.NONE)
    for tip in tips[1:]:
        walker.push(tip)
    return {commit.id for commit in walker}


def _changed_top_level(
    repo: pygit2.Repository,
    base: pygit2.Tree | None,
    tree: pygit2.Tree,
    problems: list[Problem],
    update: RefUpdate,
) -> Iterable[tuple[str, pygit2.Tree]]:
    """Each top-level folder whose tree differs from `base`; top-level links and submodules are problems."""
    for entry in tree:
        name = str(entry.name)
        old = base[name] if base is not None and name in base else None
        if old is not None and old.id == entry.id and old.filemode == entry.filemode:
            continue
        if entry.filemode == FileMode.TREE:
            yield name, repo[entry.id].peel(pygit2.Tree)
        elif entry.filemode == FileMode.LINK:
            problems.append(Problem("symlink", name, "symbolic links are not allowed",
                                    "replace the link with a real folder or file"))
        elif entry.filemode == FileMode.COMMIT:
            problems.append(Problem("submodule", name, "submodules are not allowed",
                                    "copy the code into a folder instead of adding a submodule"))
