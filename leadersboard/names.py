"""Names the platform accepts, and the branch namespace each user owns."""

from __future__ import annotations

import re

USER_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,38}")
FOLDER_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
DATASET_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}(/[A-Za-z0-9._-]{1,64})*")
RESOURCE_CLASS = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
ZERO_OID = "0" * 40


class InvalidName(ValueError):
    """A user, data set or folder name that breaks its pattern."""


def check_user_name(name: str) -> str:
    if not USER_NAME.fullmatch(name):
        raise InvalidName(
            f"Invalid user name {name!r}: use 1-39 characters, lower-case letters, digits, '-' or '_', "
            "starting with a letter or digit."
        )
    return name


def check_dataset_name(name: str) -> str:
    if not DATASET_NAME.fullmatch(name):
        raise InvalidName(
            f"Invalid data set name {name!r}: use 1-64 characters, lower-case letters, digits, '-' or '_', "
            "starting with a letter or digit."
        )
    return name


def folder_name_problem(name: str) -> str | None:
    """Why `name` cannot be a submission folder, or None when it can."""
    if not FOLDER_NAME.fullmatch(name):
        return "use 1-64 characters from A-Z a-z 0-9 . _ -"
    if name in {".", ".."} or name.startswith("."):
        return "a submission folder must not start with '.'"
    return None


def user_branch(user: str) -> str:
    return f"refs/heads/users/{user}"


def branch_owner_problem(ref: str, user: str) -> str | None:
    """Why `user` may not write `ref`, or None when the ref is theirs."""
    own = user_branch(user)
    if ref == own:
        return None
    if ref.startswith(own + "/"):
        topic = ref[len(own) + 1 :]
        if TOPIC_NAME.fullmatch(topic) and ".." not in topic and not topic.endswith(".lock"):
            return None
        return f"the topic name {topic!r} may only use A-Z a-z 0-9 . _ - and '/' between parts"
    if ref.startswith("refs/heads/users/"):
        return f"it belongs to another user; push to users/{user} or users/{user}/<topic>"
    return f"only users/{user} and users/{user}/<topic> are yours; push there instead"
