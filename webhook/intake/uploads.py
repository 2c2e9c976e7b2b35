"""A submission uploaded as files (REST API, web form): what it may hold, checked before anything
is written.

The service parses the multipart body into form fields and `UploadedFile`s, bounded while it reads;
`Upload.from_form` turns them into one folder's worth of files, or says why the request is
malformed. The folder is then committed on the user's behalf (see `behalf.py`) under the same
rules as a push.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import yaml

from leadersboard.admission import Refusal
from leadersboard.names import RESOURCE_CLASS, user_branch
from leadersboard.rules import DEFAULT_CONFIG, DEFAULT_ENTRYPOINT, MAX_DEPTH, SUBMISSION_FILE, Problem, reserved_name

FILES_FIELD = "files"
TEXT_FIELDS = ("entrypoint", "config_file", "metadata", "folder", "branch", "message", "run", "resource_class")
MAX_FILES = 1000
MAX_PATH_CHARS = 1024
MAX_NAME_CHARS = 255
MAX_FIELD_BYTES = 64 * 1024
MAX_MESSAGE_CHARS = 2000
MAX_METADATA_DEPTH = 16  # metadata becomes submission.yaml, whose reader stops at 64 levels
# Keys of submission.yaml that the form has fields for; the same keys in `metadata` would contradict them.
RESERVED_METADATA = {"entrypoint": "entrypoint", "config": "config_file"}
_SLUG_JUNK = re.compile(r"[^a-z0-9._-]+")


class UploadError(Exception):
    """The request is malformed (HTTP 400); the message says what to change."""


class UploadTooLarge(UploadError):
    """A file, a field or the whole upload is over its limit (HTTP 413)."""


class UploadRejected(UploadError):
    """The folder or the branch breaks a rule (HTTP 400, the same messages a push gets)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("Submission rejected, nothing was changed. Fix the following and submit again:\n"
                         + "\n".join(str(p) for p in problems))
        self.problems = problems


class UploadRefused(Exception):
    """Over a limit (HTTP 429): the submission would break the hourly or the active-jobs limit."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal


class BranchBusy(Exception):
    """The branch kept moving under the upload (HTTP 409): try again."""


@dataclass
class UploadedFile:
    path: str  # as the client named it; checked by `clean_path`
    content: IO[bytes]  # positioned at the start
    size: int


@dataclass
class Upload:
    """One folder to commit: its files (with submission.yaml when needed) and how to submit it."""

    files: dict[str, UploadedFile]
    entrypoint: str = DEFAULT_ENTRYPOINT
    config_file: str = DEFAULT_CONFIG
    metadata: dict[str, Any] = field(default_factory=dict)
    folder: str | None = None
    branch: str | None = None
    message: str | None = None
    run: bool = True
    resource_class: str | None = None

    def ref(self, user: str) -> str:
        """The branch to commit to: the user's own unless the request names one of theirs."""
        if not self.branch:
            return user_branch(user)
        return self.branch if self.branch.startswith("refs/") else f"refs/heads/{self.branch}"

    def submission_yaml(self) -> bytes | None:
        """submission.yaml for the folder, when anything differs from the defaults."""
        document: dict[str, Any] = {}
        if self.entrypoint != DEFAULT_ENTRYPOINT:
            document["entrypoint"] = self.entrypoint
        if self.config_file != DEFAULT_CONFIG:
            document["config"] = self.config_file
        document.update(self.metadata)
        if not document:
            return None
        return yaml.safe_dump(document, sort_keys=False, allow_unicode=True).encode("utf-8")

    def close(self) -> None:
        for item in self.files.values():
            item.content.close()

    @classmethod
    def from_form(cls, fields: Mapping[str, str], files: list[UploadedFile]) -> Upload:
        """Check the form and its file names; raises `UploadError` saying what is wrong."""
        if not files:
            raise UploadError("No files: send the folder's files as 'files' parts (main.py, config.yaml, ...)")
        by_path: dict[str, UploadedFile] = {}
        for item in files:
            path = clean_path(item.path, "file name")
            if path in by_path:
                raise UploadError(f"Duplicate file name {path!r}: each file may be sent once")
            by_path[path] = item
        for path in by_path:
            parent = path.rpartition("/")[0]
            while parent:
                if parent in by_path:
                    raise UploadError(f"{parent!r} is sent as a file and as a folder (of {path!r})")
                parent = parent.rpartition("/")[0]
        upload = cls(files=by_path)
        upload.entrypoint = clean_path(fields.get("entrypoint") or DEFAULT_ENTRYPOINT, "entrypoint")
        upload.config_file = clean_path(fields.get("config_file") or DEFAULT_CONFIG, "config_file")
        upload.folder = fields.get("folder") or None
        upload.branch = fields.get("branch") or None
        upload.message = fields.get("message") or None
        if upload.message is not None and len(upload.message) > MAX_MESSAGE_CHARS:
            raise UploadError(f"'message' is longer than {MAX_MESSAGE_CHARS} characters")
        metadata = _metadata(fields.get("metadata"))
        run = _run_option(fields.get("run"), metadata.pop("run", None))
        upload.run = run
        resource_class = fields.get("resource_class") or metadata.pop("resource_class", None)
        if resource_class is not None and (not isinstance(resource_class, str)
                                           or not RESOURCE_CLASS.fullmatch(resource_class)):
            raise UploadError("'resource_class' must be a name of lower-case letters, digits, '-' and '_'")
        upload.resource_class = resource_class
        upload.metadata = metadata
        if SUBMISSION_FILE in by_path and upload.submission_yaml() is not None:
            raise UploadError(f"{SUBMISSION_FILE} is among the files and the form sets entrypoint, config_file "
                              "or metadata: give one or the other")
        return upload


def clean_path(name: str, what: str) -> str:
    """`name` as a relative '/'-separated path inside the folder; `UploadError` when it could escape
    the folder or git could not store it."""
    if not name or len(name) > MAX_PATH_CHARS:
        raise UploadError(f"Invalid {what} {name!r}: give a relative path of 1-{MAX_PATH_CHARS} characters")
    if any(ord(c) < 32 or c == "\x7f" for c in name):
        raise UploadError(f"Invalid {what} {name!r}: control characters are not allowed")
    if "\\" in name or name.startswith("/") or re.match(r"[A-Za-z]:", name):
        raise UploadError(f"Invalid {what} {name!r}: give a relative path with '/' between folders "
                          "(no absolute paths, drive letters or backslashes)")
    parts = name.split("/")
    for part in parts:
        if part in ("", ".", "..") or reserved_name(part) or len(part) > MAX_NAME_CHARS:
            raise UploadError(f"Invalid {what} {name!r}: every part of the path must be a plain name "
                              "(no '..', '.', empty parts, or names git keeps for itself such as .git or git~1)")
    if len(parts) > MAX_DEPTH:
        raise UploadError(f"Invalid {what} {name!r}: folders may nest at most {MAX_DEPTH} levels deep")
    return name


def derived_folder(metadata: Mapping[str, Any], taken: Container[str]) -> str:
    """A folder name for an upload that named none: from its `method`, else 'submission', made unique."""
    method = metadata.get("method")
    base = _SLUG_JUNK.sub("-", method.lower()).strip("-._")[:40] if isinstance(method, str) else ""
    if base and base not in taken:
        return base
    while True:
        name = f"{base or 'submission'}-{secrets.token_hex(3)}"
        if name not in taken:
            return name


def _metadata(raw: str | None) -> dict[str, Any]:
    if not raw or not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UploadError(f"'metadata' is not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise UploadError(f"'metadata' is nested more than {MAX_METADATA_DEPTH} levels deep") from None
    if _depth(value) > MAX_METADATA_DEPTH:
        raise UploadError(f"'metadata' is nested more than {MAX_METADATA_DEPTH} levels deep")
    if not isinstance(value, dict):
        raise UploadError('\'metadata\' must be a JSON object, e.g. {"method": "PaDiM", "description": "..."}')
    for key, form_field in RESERVED_METADATA.items():
        if key in value:
            raise UploadError(f"'metadata' must not hold {key!r}: use the form field '{form_field}'")
    return value


def _depth(value: object) -> int:
    """How deeply lists and objects nest in a JSON value (without recursion: the value is the caller's)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            todo += [(child, level + 1) for child in (item.values() if isinstance(item, dict) else item)]
    return deepest


def _run_option(form: str | None, from_metadata: object) -> bool:
    if form:
        if form not in ("true", "false"):
            raise UploadError("'run' must be true or false")
        return form == "true"
    if from_metadata is None:
        return True
    if not isinstance(from_metadata, bool):
        raise UploadError("'run' in metadata must be true or false")
    return from_metadata
