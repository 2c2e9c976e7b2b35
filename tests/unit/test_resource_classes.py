"""Resource classes in the settings: defaults, the config file, refusals that name the key; the size a
job gets from its class (never above the instance's limits), as each executor applies it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from leadersboard.resource_classes import ResourceClass, ResourceClasses
from leadersboard.runner.cgroups import ResourceLimits
from leadersboard.runner.docker_executor import ContainerSpec, DockerExecutor, create_args
from leadersboard.runner.process_executor import HostJail
from leadersboard.runner.sandbox import Sandbox
from leadersboard.settings import Settings, SettingsError, config_document, size_bytes


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
    ({"classes": {"s": {"cpus": 1, "memory": "1g", "gpus": 2, "time_limit_seconds": 1}}}, "gpus' is 2: a job gets one"),
    ({"classes": {}}, "resource_classes.classes"),
    ({"small": {}}, "'resource_classes' must be a mapping"),
])
def test_a_malformed_section_names_its_key(tmp_path: Path, section: dict[str, object], named: str) -> None:
    (tmp_path / "leadersboard.yaml").write_text(yaml.safe_dump({"resource_classes": section}))
    with pytest.raises(SettingsError, match=named.replace(".", r"\.")):
        Settings.load(tmp_path, environ={})
    assert ResourceClasses.from_config(None) == ResourceClasses()


def test_a_job_gets_its_class_and_never_more_than_the_limits(tmp_path: Path) -> None:
    settings = Settings.load(tmp_path, environ={})
    assert [settings.job_size(name).describe() for name in (None, "small", "large")] == [
        "class medium: 4 CPU(s), memory 16g, time limit 3600 s",
        "class small: 2 CPU(s), memory 8g, time limit 1800 s",
        "class large: 8 CPU(s), memory 32g, time limit 14400 s",
    ]
    (tmp_path / "leadersboard.yaml").write_text(yaml.safe_dump(
        {"limits": {"job_cpus": 4, "job_memory": "12g", "job_timeout_seconds": 7200}}))
    lowered = Settings.load(tmp_path, environ={})
    assert lowered.job_size("small") == settings.job_size("small")  # under the ceiling: the class's own
    large = lowered.job_size("large")
    assert (large.cpus, large.memory, large.time_limit_seconds) == (4, "12g", 7200)
    assert large.describe().endswith("(capped by the instance's limits: cpus, memory, time_limit_seconds)")
    with pytest.raises(KeyError):
        lowered.job_size("xl")  # no longer offered: the worker fails the job with that reason
    (tmp_path / "leadersboard.yaml").write_text(yaml.safe_dump({"resource_classes": {"default": "cpu", "classes": {
        "cpu": {"cpus": 2, "memory": "4g", "gpus": 0, "time_limit_seconds": 600}}}}))
    cpu = Settings.load(tmp_path, environ={}).job_size(None)
    assert cpu.gpus == 0 and cpu.describe() == "class cpu: 2 CPU(s), memory 4g, no GPU, time limit 600 s"


def test_each_executor_sizes_the_job_by_its_class(tmp_path: Path) -> None:
    size = Settings.load(tmp_path, environ={}).job_size("small")
    sandbox = Sandbox(scratch=tmp_path / "job", command=["python"], env={}, timeout_seconds=60, size=size)
    worker = ContainerSpec(image="img", memory="32g", cpus=1, pids=64, shm_size="64m", uid=10001, gid=10001, gpus=False)
    args = create_args(sandbox, DockerExecutor(worker).spec_for(sandbox), "job", "job")
    flags = {args[i]: args[i + 1] for i, arg in enumerate(args) if arg in ("--memory", "--memory-swap", "--cpus")}
    assert flags == {"--memory": "8g", "--memory-swap": "8g", "--cpus": str(min(2, os.cpu_count() or 1))}
    jail = HostJail(uid=10001, gid=10001, hidden=(), readable=(), limits=ResourceLimits(size_bytes("32g"), 1, 64),
                    memory="32g", shm_size="64m", cgroups=None)
    assert jail.for_job(sandbox) == (ResourceLimits(size_bytes("8g"), min(2, os.cpu_count() or 1), 64), "8g")
    unsized = Sandbox(scratch=tmp_path / "job", command=["python"], env={}, timeout_seconds=60)
    assert jail.for_job(unsized) == (jail.limits, "32g")  # no class: the worker's own limits
