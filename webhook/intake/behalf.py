"""Committing an uploaded folder on a user's behalf (REST API, web form) under a push's rules.

pygit2 runs no hooks, so what pre-receive checks for a push runs here in code: the branch rules
(`ref_problems`) on the ref update and the folder rules (`check_folder`) on the new tree. New objects
go to a quarantine folder first, as git does for a push, so a refused upload leaves nothing in the
repository. The branch then moves by compare-and-swap from the tip the commit was built on: a push
that landed meanwhile makes `publish` return False (the caller builds again on the new tip) instead
of being overwritten.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2
from pygit2.enums import FileMode

from leadersboard.datasets import Dataset
from leadersboard.folders import GitFolder
from leadersboard.names import ZERO_OID
from leadersboard.rules import SUBMISSION_FILE, FolderReport, Problem, check_folder, folder_name_problems
from leadersboard.settings import Limits

from .push import FolderSubmission, RefUpdate, open_repository, owner_problems, ref_problems
from .uploads import Upload, UploadedFile, UploadError, derived_folder

log = logging.getLogger(__name__)

QUARANTINE_PREFIX = "tmp_objdir-upload-"  # git's own quarantine folders are tmp_objdir-incoming-*
AUTHOR_DOMAIN = "users.leadersboard.invalid"
COMMITTER = ("LeadersBoard", "noreply@leadersboard.invalid")
FASTEST_COMPRESSION = -1  # libgit2: a negative level means Z_BEST_SPEED, git's default for loose objects


@dataclass
class PreparedCommit:
    """A commit built on `tip` (None: a new branch), not yet on the branch."""

    ref: str
    tip: str | None
    folder: str
    problems: list[Problem] = field(default_factory=list)
    commit_id: str | None = None
    tree_id: str | None = None  # the folder's tree, to be checked by the folder rules (`check_tree`)
    submission: FolderSubmission | None = None
    quarantine: Path | None = None

    @property
    def checkable(self) -> bool:
        """Built, and breaking no branch rule: the folder rules come next."""
        return self.commit_id is not None and self.tree_id is not None and not self.problems

    def judge(self, report: FolderReport) -> None:
        """Take the folder rules' verdict: what it breaks, or what it submits."""
        assert self.commit_id is not None and self.tree_id is not None
        self.problems += report.problems
        if not self.problems and report.spec is not None:
            self.submission = FolderSubmission(self.ref, self.commit_id, self.tree_id, report.spec)

    def discard(self) -> None:
        """Drop the quarantined objects (after `publish` moved them, there is nothing left to drop)."""
        if self.quarantine is not None:
            shutil.rmtree(self.quarantine, ignore_errors=True)
            self.quarantine = None


def prepare(repo_path: Path, user: str, upload: Upload) -> PreparedCommit:
    """Build the commit that adds (or replaces) the upload's folder on the tip of its branch, with
    the branch rules checked (`problems`); the folder rules come next, in a checker process
    (`check_tree`, then `judge`). Raises `UploadError` when there is nothing to commit."""
    ref = upload.ref(user)
    short = ref.removeprefix("refs/heads/")
    owner = owner_problems(user, ref)
    if owner:
        return PreparedCommit(ref, None, upload.folder or "", owner)
    repo = pygit2.Repository(str(repo_path))
    current = repo.references.get(ref)
    tip = str(current.target) if current is not None else None
    base = repo[tip].peel(pygit2.Tree) if tip else None
    folder = upload.folder or derived_folder(upload.metadata, {str(e.name) for e in base} if base else set())
    naming = folder_name_problems(folder)
    if naming:  # checked before the name is used in a tree: it could hold '/'
        return PreparedCommit(ref, tip, folder, naming)

    prepared = PreparedCommit(ref, tip, folder)
    prepared.quarantine = Path(tempfile.mkdtemp(prefix=QUARANTINE_PREFIX, dir=Path(repo.path) / "objects"))
    try:
        _write_into(repo, prepared.quarantine)
        try:
            tree_id = _folder_tree(repo, upload)
        except pygit2.GitError as exc:  # a name git refuses that the form's own checks let through
            raise UploadError(f"git cannot store these files: {exc}") from exc
        if base is not None and folder in base and base[folder].id == tree_id:
            raise UploadError(f"Nothing to submit: {folder}/ on {short} holds exactly these files already")
        root = repo.TreeBuilder(base) if base is not None else repo.TreeBuilder()
        root.insert(folder, tree_id, FileMode.TREE)
        author = pygit2.Signature(user, f"{user}@{AUTHOR_DOMAIN}")
        message = upload.message or f"Submit {folder}\n\nUploaded by {user} through the LeadersBoard API."
        commit_id = str(repo.create_commit(None, author, pygit2.Signature(*COMMITTER), message, root.write(),
                                           [tip] if tip else []))
        prepared.commit_id, prepared.tree_id = commit_id, str(tree_id)
        prepared.problems = ref_problems(repo, user, RefUpdate(tip or ZERO_OID, commit_id, ref))
    except BaseException:
        prepared.discard()
        raise
    if prepared.problems:
        prepared.discard()
    return prepared


def check_tree(repo_path: Path, quarantine: Path | None, tree_id: str, folder: str,
               datasets: Mapping[str, Dataset], limits: Limits) -> FolderReport:
    """The folder rules on a tree still in quarantine (run in a checker process)."""
    repo = open_repository(repo_path, str(quarantine) if quarantine else None)
    return check_folder(GitFolder(repo, repo[tree_id].peel(pygit2.Tree), folder), datasets, limits)


def publish(repo_path: Path, prepared: PreparedCommit) -> bool:
    """Move the branch from the tip the commit was built on to the commit; False when the tip moved
    (or git holds the ref's lock for a push right now) and nothing was changed."""
    assert prepared.commit_id is not None and prepared.quarantine is not None
    repo = pygit2.Repository(str(repo_path))
    _migrate(prepared.quarantine, Path(repo.path) / "objects")
    prepared.quarantine = None
    message = f"leadersboard: upload of {prepared.folder}"
    try:
        if prepared.tip is None:
            repo.create_reference_direct(prepared.ref, prepared.commit_id, False, message=message)
            return True
        current = repo.references.get(prepared.ref)
        if current is None or str(current.target) != prepared.tip:
            return False
        current.set_target(prepared.commit_id, message)  # compare-and-swap under git's ref lock
        return True
    except (pygit2.GitError, pygit2.AlreadyExistsError, OSError) as exc:  # OSError: git holds the lock
        log.info("could not move %s (a push moved it or holds its lock: %s); building the upload again",
                 prepared.ref, exc)
        return False


def _write_into(repo: pygit2.Repository, quarantine: Path) -> None:
    """Let `repo` read every object it has, and write new ones only into `quarantine`."""
    objects = Path(repo.path) / "objects"
    odb = pygit2.Odb()
    odb.add_backend(pygit2.OdbBackendPack(str(objects)), 1)
    odb.add_backend(pygit2.OdbBackendLoose(str(objects), FASTEST_COMPRESSION, False), 2)
    odb.add_backend(pygit2.OdbBackendLoose(str(quarantine), FASTEST_COMPRESSION, False), 3)  # first to write
    repo.set_odb(odb)


def _folder_tree(repo: pygit2.Repository, upload: Upload) -> pygit2.Oid:
    nested: dict[str, Any] = {}
    entries: dict[str, UploadedFile | bytes] = dict(upload.files)
    extra = upload.submission_yaml()
    if extra is not None:
        entries[SUBMISSION_FILE] = extra
    for path, item in entries.items():
        *folders, name = path.split("/")
        node = nested
        for part in folders:
            node = node.setdefault(part, {})
        if isinstance(item, bytes):
            node[name] = repo.create_blob(item)
        else:
            item.content.seek(0)  # a retry reads the same file again
            node[name] = repo.create_blob_fromiobase(item.content)  # type: ignore[arg-type]  # any binary file object
    return _write_tree(repo, nested)


def _write_tree(repo: pygit2.Repository, node: dict[str, Any]) -> pygit2.Oid:
    builder = repo.TreeBuilder()
    for name, value in node.items():
        if isinstance(value, dict):
            builder.insert(name, _write_tree(repo, value), FileMode.TREE)
        else:
            builder.insert(name, value, FileMode.BLOB)
    oid: pygit2.Oid = builder.write()
    return oid


def _migrate(quarantine: Path, objects: Path) -> None:
    """Move the quarantined objects into the repository (as git does once a push is accepted)."""
    for source in sorted(quarantine.rglob("*")):
        if source.is_file():
            target = objects / source.relative_to(quarantine)
            target.parent.mkdir(exist_ok=True)
            if not target.exists():
                os.replace(source, target)  # the same file system: atomic; an existing object is identical
    shutil.rmtree(quarantine, ignore_errors=True)
