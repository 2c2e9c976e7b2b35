"""An upload's form, checked before anything is written: file names that stay inside the folder,
metadata that is a JSON object, and the push options' twins (`run`, `resource_class`)."""

from __future__ import annotations

import io

import pytest
import yaml

from leadersboard.webhook.intake.push import PushOptions, parse_push_options
from leadersboard.webhook.intake.uploads import Upload, UploadedFile, UploadError, clean_path, derived_folder


def files(*names: str) -> list[UploadedFile]:
    return [UploadedFile(name, io.BytesIO(b"x"), 1) for name in names]


def test_a_plain_upload() -> None:
    upload = Upload.from_form({"metadata": '{"method": "PaDiM", "team": "blue"}'}, files("main.py", "config.yaml"))
    assert sorted(upload.files) == ["config.yaml", "main.py"]
    assert (upload.entrypoint, upload.config_file, upload.run, upload.resource_class) == (
        "main.py", "config.yaml", True, None)
    assert upload.ref("alice") == "refs/heads/users/alice"
    assert yaml.safe_load(upload.submission_yaml() or b"") == {"method": "PaDiM", "team": "blue"}


def test_other_names_and_options_go_into_submission_yaml() -> None:
    upload = Upload.from_form({"entrypoint": "src/run.py", "config_file": "c.yaml", "run": "false",
                               "resource_class": "large", "branch": "users/alice/exp"}, files("src/run.py", "c.yaml"))
    assert yaml.safe_load(upload.submission_yaml() or b"") == {"entrypoint": "src/run.py", "config": "c.yaml"}
    assert (upload.run, upload.resource_class, upload.ref("alice")) == (False, "large", "refs/heads/users/alice/exp")


def test_nothing_to_add_means_no_submission_yaml() -> None:
    assert Upload.from_form({}, files("main.py")).submission_yaml() is None


@pytest.mark.parametrize("name", ["../x.py", "/etc/passwd", "a/../../b", ".git/config", "a\\b", "C:x", "a//b",
                                  "./a", "", "a\x00b", "x" * 1025])
def test_file_names_that_could_escape_or_not_be_stored(name: str) -> None:
    with pytest.raises(UploadError, match="Invalid file name"):
        clean_path(name, "file name")


@pytest.mark.parametrize(("fields", "names", "message"), [
    ({}, (), "No files"),
    ({}, ("a.py", "a.py"), "Duplicate file name 'a.py'"),
    ({}, ("a", "a/b.py"), "'a' is sent as a file and as a folder"),
    ({"metadata": "{"}, ("a.py",), "'metadata' is not valid JSON"),
    ({"metadata": "[1]"}, ("a.py",), "'metadata' must be a JSON object"),
    ({"metadata": '{"entrypoint": "x.py"}'}, ("a.py",), "use the form field 'entrypoint'"),
    ({"run": "maybe"}, ("a.py",), "'run' must be true or false"),
    ({"metadata": '{"run": "no"}'}, ("a.py",), "'run' in metadata must be true or false"),
    ({"resource_class": "Big!"}, ("a.py",), "'resource_class' must be a name"),
    ({"message": "m" * 2001}, ("a.py",), "'message' is longer than 2000"),
    ({"metadata": '{"method": "x"}'}, ("a.py", "submission.yaml"), "give one or the other"),
])
def test_malformed_forms(fields: dict[str, str], names: tuple[str, ...], message: str) -> None:
    with pytest.raises(UploadError, match=None) as caught:
        Upload.from_form(fields, files(*names))
    assert message in str(caught.value)


def test_a_folder_name_from_the_method_made_unique() -> None:
    assert derived_folder({"method": "PaDiM (ResNet-18)"}, set()) == "padim-resnet-18"
    taken = derived_folder({"method": "PaDiM"}, {"padim"})
    assert taken.startswith("padim-") and taken != "padim"
    assert derived_folder({}, set()).startswith("submission-")


def test_push_options() -> None:
    assert parse_push_options([]) == (PushOptions(), [])
    assert parse_push_options(["run=false", "resource_class=large"]) == (PushOptions(False, "large"), [])
    options, problems = parse_push_options(["run=maybe", "colour=red"])
    assert options == PushOptions() and [p.rule for p in problems] == ["push-option", "push-option"]
    assert problems[0].path == "-o run=maybe" and "-o run=false" in problems[0].fix


def test_deeply_nested_metadata_is_refused() -> None:
    for depth in (17, 100_000):
        with pytest.raises(UploadError, match="'metadata' is nested more than 16 levels deep"):
            Upload.from_form({"metadata": '{"a": ' + "[" * depth + "]" * depth + "}"}, files("main.py"))


@pytest.mark.parametrize("name", [".git./x.py", ".GIT/config", "a/git~1", "a/.git /b"])
def test_names_git_keeps_for_itself_are_refused(name: str) -> None:
    with pytest.raises(UploadError, match="names git keeps for itself"):
        clean_path(name, "file name")


def test_folders_may_nest_32_levels() -> None:
    assert clean_path("a/" * 31 + "x.py", "file name")
    with pytest.raises(UploadError, match="at most 32 levels deep"):
        clean_path("a/" * 32 + "x.py", "file name")
