"""One GPU per job, as each executor hands it over: the docker executor's container spec names the
worker's own device (`--gpus device=N`) and nothing else, while inside the container that one device
is CUDA's 0; without the NVIDIA runtime, or without a GPU of its own, a container gets none."""

from __future__ import annotations

from pathlib import Path

from leadersboard.runner.docker_executor import ContainerSpec, DockerExecutor, create_args
from leadersboard.runner.sandbox import Sandbox


def spec(gpus: bool) -> ContainerSpec:
    return ContainerSpec(image="img", memory="1g", cpus=2, pids=64, shm_size="256m", uid=10001, gid=10001, gpus=gpus)


def gpu_flags(args: list[str]) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg == "--gpus"]


def test_two_workers_containers_each_get_their_own_device(tmp_path: Path) -> None:
    for device in ("0", "1"):
        sandbox = Sandbox(scratch=tmp_path / device, command=["python", "main.py"], timeout_seconds=60, gpu=device,
                          env={"CUDA_VISIBLE_DEVICES": "0"})
        args = create_args(sandbox, spec(gpus=True), f"job-{device}", device)
        assert gpu_flags(args) == [f"device={device}"]
        assert "CUDA_VISIBLE_DEVICES=0" in args  # the container sees only its device, as CUDA's first


def test_no_gpu_flag_without_the_runtime_or_a_gpu_of_its_own(tmp_path: Path) -> None:
    with_gpu = Sandbox(scratch=tmp_path / "a", command=["python"], env={}, timeout_seconds=60, gpu="1")
    without = Sandbox(scratch=tmp_path / "b", command=["python"], env={}, timeout_seconds=60)
    assert gpu_flags(create_args(with_gpu, spec(gpus=False), "a", "a")) == []
    assert gpu_flags(create_args(without, spec(gpus=True), "b", "b")) == []


def test_the_view_inside_a_container_names_device_zero() -> None:
    with_runtime, without_runtime = DockerExecutor(spec(gpus=True)), DockerExecutor(spec(gpus=False))
    assert with_runtime.view(Path("/scratch"), "3").gpu == "0"
    assert with_runtime.view(Path("/scratch"), None).gpu == ""
    assert without_runtime.view(Path("/scratch"), "3").gpu == ""
