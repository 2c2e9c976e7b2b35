"""The operator's model cache: what counts as one, how `weights add` records it, and how each executor
gives it to a job (read-only, at scratch/models, with TORCH_HOME and HF_HOME pointing into it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from leadersboard.cli.main import main
from leadersboard.model_cache import ModelCacheError, environment, inspect
from leadersboard.runner.docker_executor import ContainerSpec, create_args
from leadersboard.runner.process_executor import model_cache_binds
from leadersboard.runner.sandbox import Sandbox
from leadersboard.settings import Settings

HF_MODEL = Path("huggingface/hub/models--timm--resnet18.a1_in1k")


def make_cache(root: Path, torch: bool = True, hf: bool = True) -> Path:
    if torch:
        (root / "torch" / "hub" / "checkpoints").mkdir(parents=True)
        (root / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth").write_bytes(b"weights")
    if hf:
        (root / HF_MODEL / "snapshots" / "0").mkdir(parents=True)
        (root / HF_MODEL / "refs").mkdir()
        (root / HF_MODEL / "refs" / "main").write_text("0")
    return root


def test_a_cache_holds_torch_hub_or_hugging_face_files(tmp_path: Path) -> None:
    found = inspect(make_cache(tmp_path / "both"))
    assert (found.torch_files, found.hf_models) == (1, ("timm/resnet18.a1_in1k",))
    assert inspect(make_cache(tmp_path / "hf", torch=False)).torch_files == 0
    assert inspect(make_cache(tmp_path / "torch", hf=False)).hf_models == ()


@pytest.mark.parametrize("layout", ["missing", "empty", "weights-at-the-top"])
def test_a_folder_without_weights_is_refused_with_the_layout(tmp_path: Path, layout: str) -> None:
    folder = tmp_path / "cache"
    if layout != "missing":
        folder.mkdir()
    if layout == "weights-at-the-top":
        (folder / "resnet18.pth").write_bytes(b"weights")
    with pytest.raises(ModelCacheError, match="torch/hub/checkpoints" if layout != "missing" else "not a folder"):
        inspect(folder)


def test_a_cache_jobs_could_not_read_is_refused(tmp_path: Path) -> None:
    cache = make_cache(tmp_path / "cache")
    weights = cache / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    weights.chmod(0o600)  # as safetensors' save_file leaves a file
    with pytest.raises(ModelCacheError, match=r"resnet18-f37072fd\.pth is not readable by every user.*chmod -R a\+rX"):
        inspect(cache)
    weights.chmod(0o644)
    (cache / HF_MODEL).chmod(0o700)
    with pytest.raises(ModelCacheError, match=r"models--timm--resnet18\.a1_in1k is not readable"):
        inspect(cache)


def test_jobs_are_pointed_at_the_cache_offline() -> None:
    assert environment("/job/models") == {"TORCH_HOME": "/job/models/torch", "HF_HOME": "/job/models/huggingface",
                                          "HF_HUB_OFFLINE": "1"}


def cli(*args: str, check: bool = True) -> Result:
    """`leadersboard ARGS` through click in this process (the same commands, without a new interpreter)."""
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert not check or result.exit_code == 0, result.output
    return result


def test_weights_add_show_remove(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cli("init", "--home", str(home))
    assert Settings.load(home).current_model_cache() is None
    refused = cli("weights", "add", str(tmp_path), "--home", str(home), check=False)
    assert refused.exit_code != 0 and "no weights found" in refused.stderr
    cache = make_cache(tmp_path / "cache")
    added = cli("weights", "add", str(cache), "--home", str(home))
    assert "1 torch hub checkpoint(s); Hugging Face models: timm/resnet18.a1_in1k" in added.stdout
    assert Settings.load(home).runner.model_cache == str(cache)
    assert Settings.load(home).current_model_cache() == cache
    assert str(cache) in cli("weights", "show", "--home", str(home)).stdout
    cli("weights", "remove", "--home", str(home))
    assert Settings.load(home).current_model_cache() is None
    assert "no model cache" in cli("weights", "show", "--home", str(home)).stdout


def test_each_executor_mounts_the_cache_read_only_in_the_scratch_folder(tmp_path: Path) -> None:
    cache = make_cache(tmp_path / "cache,1")
    sandbox = Sandbox(scratch=tmp_path / "job", command=["python", "main.py"], env={}, timeout_seconds=60,
                      model_cache=cache)
    assert model_cache_binds(sandbox) == {str(tmp_path / "job" / "models"): str(cache)}
    spec = ContainerSpec(image="img", memory="1g", cpus=2, pids=64, shm_size="256m", uid=10001, gid=10001,
                         gpus=False)
    line = " ".join(create_args(sandbox, spec, "leadersboard-job-x", "x"))
    assert f'type=bind,"source={cache}",target=/job/models,readonly' in line
    without = Sandbox(scratch=tmp_path / "job", command=["python", "main.py"], env={}, timeout_seconds=60)
    assert model_cache_binds(without) == {} and "/job/models" not in " ".join(create_args(without, spec, "n", "x"))
