"""Names the platform accepts, and which branches each user owns."""

from __future__ import annotations

import pytest

from leadersboard.names import (
    InvalidName,
    branch_owner_problem,
    check_dataset_name,
    check_user_name,
    folder_name_problem,
)
from leadersboard.submissions import job_id, submission_id


@pytest.mark.parametrize("name", ["alice", "a", "team-7_x", "0" * 39])
def test_user_names_accepted(name: str) -> None:
    assert check_user_name(name) == name


@pytest.mark.parametrize("name", ["", "Alice", "-a", "a" * 40, "a/b", "a b", "ä"])
def test_user_names_refused(name: str) -> None:
    with pytest.raises(InvalidName, match="Invalid user name"):
        check_user_name(name)


def test_dataset_names() -> None:
    assert check_dataset_name("visa") == "visa"
    with pytest.raises(InvalidName, match="Invalid data set name"):
        check_dataset_name("VisA")


@pytest.mark.parametrize(("name", "problem"), [
    ("padim", None), ("PaDiM-v2.1_x", None), (".git", "must not start with '.'"), ("..", "must not start"),
    ("a/b", "use 1-64 characters"), ("", "use 1-64 characters"), ("x" * 65, "use 1-64 characters"),
])
def test_folder_names(name: str, problem: str | None) -> None:
    found = folder_name_problem(name)
    assert (found is None) if problem is None else (found is not None and problem in found)


@pytest.mark.parametrize(("ref", "fragment"), [
    ("refs/heads/users/alice", None),
    ("refs/heads/users/alice/topic", None),
    ("refs/heads/users/alice/a/b.c", None),
    ("refs/heads/users/alice/x..y", "may only use"),
    ("refs/heads/users/alice/x.lock", "may only use"),
    ("refs/heads/users/bob", "belongs to another user"),
    ("refs/heads/users/alicex", "belongs to another user"),
    ("refs/heads/main", "only users/alice and users/alice/<topic> are yours"),
    ("refs/tags/v1", "only users/alice"),
])
def test_branch_ownership(ref: str, fragment: str | None) -> None:
    found = branch_owner_problem(ref, "alice")
    assert (found is None) if fragment is None else (found is not None and fragment in found)


def test_submission_ids_are_stable_per_event_and_never_shared_between_users() -> None:
    commit = "a" * 40
    assert submission_id("alice", commit, "padim") == submission_id("alice", commit, "padim")
    assert len({submission_id("alice", commit, "padim"), submission_id("bob", commit, "padim"),
                submission_id("alice", commit, "patchcore")}) == 3
    assert job_id(submission_id("alice", commit, "padim")) != job_id(submission_id("bob", commit, "padim"))
