"""What a push to a new branch is compared with: the newest commit on its first-parent line that the
pushing user's own branches reach; another user's commits, and the instance's main, do not count."""

from __future__ import annotations

from pathlib import Path

import pygit2

from leadersboard.names import ZERO_OID
from leadersboard.webhook.intake.push import RefUpdate, _base_tree

SIGNATURE = pygit2.Signature("someone", "someone@example.org", 1_800_000_000, 0)


def linear_history(repo: pygit2.Repository, length: int) -> list[pygit2.Oid]:
    commits: list[pygit2.Oid] = []
    for n in range(length):
        builder = repo.TreeBuilder()
        builder.insert("model", _folder(repo, f"v{n}"), pygit2.GIT_FILEMODE_TREE)
        commits.append(repo.create_commit(None, SIGNATURE, SIGNATURE, f"{n}", builder.write(), commits[-1:]))
    return commits


def _folder(repo: pygit2.Repository, text: str) -> pygit2.Oid:
    builder = repo.TreeBuilder()
    builder.insert("main.py", repo.create_blob(text.encode()), pygit2.GIT_FILEMODE_BLOB)
    return builder.write()


def test_a_new_branch_is_compared_with_what_its_user_pushed(tmp_path: Path) -> None:
    repo = pygit2.init_repository(str(tmp_path / "repo.git"), bare=True)
    history = linear_history(repo, 300)
    repo.create_reference("refs/heads/main", history[-1])
    repo.create_reference("refs/heads/users/alice/old", history[100])
    repo.create_reference("refs/heads/users/alice/older", history[40])
    repo.create_reference("refs/heads/users/bob", history[250])
    new = repo.create_commit(None, SIGNATURE, SIGNATURE, "new", repo[history[-1]].peel(pygit2.Commit).tree.id,
                             [history[-1]])

    def base(user: str) -> pygit2.Oid | None:
        tree = _base_tree(repo, repo, user, RefUpdate(ZERO_OID, str(new), f"refs/heads/users/{user}/new"))
        return tree.id if tree is not None else None

    assert base("alice") == repo[history[100]].peel(pygit2.Commit).tree.id  # her newest, not main's or bob's
    assert base("bob") == repo[history[250]].peel(pygit2.Commit).tree.id
    assert base("carol") is None  # nothing of hers: every folder is new to her
    # A branch that moves is compared with its old tip, whoever else has the commits.
    moved = _base_tree(repo, repo, "alice", RefUpdate(str(history[100]), str(new), "refs/heads/users/alice/old"))
    assert moved is not None and moved.id == repo[history[100]].peel(pygit2.Commit).tree.id
