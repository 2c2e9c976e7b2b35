"""Resource classes in the settings: defaults, the config file, refusals that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from leadersboard.resource_classes import ResourceClass, ResourceClasses
from leadersboard.settings import Settings, SettingsError, config_document


def test_defaults_and_a_round_trip_through_the_config_file(tmp_path: Path) -> None:
    settings = Settings.load(tmp_path, environ={})
    classes = settings.resource_classes
    assert classes.names == ["small", "medium", "large"] and classes.default == "medium"
    assert classes.classes["medium"] == ResourceClass(cpus=4, memory="16g", gpus=1, time_limit_seconds=3600)
    assert classes.choose(None) == "medium" and classes.choose("large") == "large"
    assert classes.problem(None) is None and classes.problem("small") is None
    assert classes.problem("xl") == "unknown resource class 'xl': this instance offers small, medium, large " \
                                    "(default medium)"
    (tmp_path / "leadersboard.yaml").write_text(yaml.safe_dump(config_document(settings)))
    assert Settings.load(tmp_path, environ={}).resource_classes == classes


def test_an_instance_of_its_own_classes(tmp_path: Path) -> None:
    (tmp_path / "leadersboard.yaml").write_text(yaml.safe_dump({"resource_classes": {
        "default": "cpu", "classes": {"cpu": {"cpus": 2, "memory": "4g", "gpus": 0, "time_limit_seconds": 600},
                                      "a100": {"cpus": 16, "memory": "64g", "gpus": 1, "time_limit_seconds": 7200}}}}))
    classes = Settings.load(tmp_path, environ={}).resource_classes
    assert classes.names == ["cpu", "a100"] and classes.choose(None) == "cpu"
    assert "offers cpu, a100 (default cpu)" in (classes.problem("medium") or "")


@pytest.mark.parametrize(("section", "named"), [
    ({"default": "huge"}, "resource_classes.default"),
    ({"classes": {"Big": {"cpus": 1, "memory": "1g", "gpus": 0, "time_limit_seconds": 1}}}, "classes.Big"),
    ({"classes": {"s": {"cpus": 0, "memory": "1g", "gpus": 0, "time_limit_seconds": 1}}}, "classes.s.cpus"),
    ({"classes": {"s": {"cpus": 1, "memory": "lots", "gpus": 0, "time_limit_seconds": 1}}}, "classes.s.memory"),
    ({"classes": {"s": {"cpus": 1, "memory": "1g"}}}, "classes.s' must give exactly"),
    ({"classes": {}}, "resource_classes.classes"),
    ({"small": {}}, "'resource_classes' must be a mapping"),
])
def test_a_malformed_section_names_its_key(tmp_path: Path, section: dict[str, object], named: str) -> None:
    (tmp_path / "leadersboard.yaml").write_text(yaml.safe_dump({"resource_classes": section}))
    with pytest.raises(SettingsError, match=named.replace(".", r"\.")):
        Settings.load(tmp_path, environ={})
    assert ResourceClasses.from_config(None) == ResourceClasses()
