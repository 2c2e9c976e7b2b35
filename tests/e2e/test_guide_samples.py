"""The contributor guide, as a participant holding it would use it, through a real platform.

- The guide's two samples as corrected in the docs (extracted from docs/submitting.md by their
  `<!-- sample: FILE -->` markers, the Japanese docs carrying the same code) complete on a generated
  VisA-like set, with the config's `data.name` and `metrics:` left in.
- The guide's samples verbatim: `accelerator: gpu` is refused at push time on this CPU-only
  instance; with that one line changed, the code fails (it is not anomalib 2.7's API) and the job ends.
- `pre_trained: true` works offline from the operator's model cache (`leadersboard weights add`).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from leadersboard.local.datagen import generate_dataset
from leadersboard.local.redis_server import RedisServer

from support.platform import Platform, new_platform, run_tags
from support.shared import SessionMlflow

ROOT = Path(__file__).resolve().parents[2]
VERBATIM = ROOT / "tests" / "support" / "guide_verbatim"
SAMPLE = re.compile(r"<!-- sample: (\S+) -->\n```[a-z]*\n(.*?)```", re.S)


def doc_samples(doc: Path) -> dict[str, str]:
    return {name: code for name, code in SAMPLE.findall(doc.read_text(encoding="utf-8"))}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer,
             mlflow_server: SessionMlflow) -> Iterator[Platform]:
    base = tmp_path_factory.mktemp("guide")
    # A user per test: each pushes from a fresh clone to a branch of its own.
    made = new_platform(base, redis_server.url, mlflow_server.url, limits={"job_timeout_seconds": 900}, users=4)
    data = generate_dataset(base / "visa-data", layout="visa", categories=("pcb1",), normal=24, anomalous=6)
    made.instance.cli("dataset", "add", "visa", str(data))
    made.start()
    yield made
    made.stop()


USERS = {"verbatim": 0, "guide": 1, "verbatim-cpu": 2, "pretrained": 3}  # folder -> which user pushes it


def user_of(platform: Platform, folder: str) -> str:
    return list(platform.instance.tokens)[USERS[folder]]


def push(platform: Platform, tmp_path: Path, folder: str, files: dict[str, str]) -> tuple[int, str, str]:
    user = user_of(platform, folder)
    git = platform.client(tmp_path, user)
    git.commit(f"the guide's {folder}", files, folder)
    code, out = git.push(f"users/{user}")
    job_ids = [line.split(" job ", 1)[1].split()[0] for line in out.splitlines() if f"{folder}: job " in line]
    return code, out, job_ids[0] if job_ids else ""


def test_the_docs_carry_the_samples_in_both_languages() -> None:
    english = doc_samples(ROOT / "docs" / "submitting.md")
    assert sorted(english) == ["config.yaml", "main.py"]
    assert doc_samples(ROOT / "docs" / "ja" / "submitting.md") == english
    assert "engine, model, datamodule = Engine.from_config(" in english["main.py"]
    assert "image_AUROC" in english["main.py"] and "data:\n  name: visa" in english["config.yaml"]


def test_the_verbatim_guide_config_is_refused_without_a_gpu_worker(platform: Platform, tmp_path: Path) -> None:
    files = {"main.py": (VERBATIM / "main.py.txt").read_text(), "config.yaml": (VERBATIM / "config.yaml").read_text()}
    platform.healthz_until(lambda health: bool(health.get("sandboxes")))  # the (CPU-only) worker has reported
    code, out, job_id = push(platform, tmp_path, "verbatim", files)
    assert code != 0 and not job_id, out
    assert "[accelerator] verbatim/config.yaml" in out and "no worker of this instance has a GPU" in out, out
    assert "accelerator: auto" in out, out


@pytest.mark.anomalib
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_corrected_samples_from_the_docs_complete(platform: Platform, tmp_path: Path) -> None:
    samples = doc_samples(ROOT / "docs" / "submitting.md")
    code, out, job_id = push(platform, tmp_path, "guide", samples)
    assert code == 0 and job_id, out
    user = user_of(platform, "guide")
    job = platform.wait_status(job_id, user, timeout=900)
    log = platform.api("GET", f"/jobs/{job_id}/logs", user).text
    assert job["status"] == "completed", (job, log[-4000:])
    assert 0.0 <= job["metrics"]["auroc"] <= 1.0 and "f1_score" in job["metrics"]
    assert "data.name and metrics are the platform's keys" in log
    run, _ = run_tags(platform, job)
    assert run.data.tags["leadersboard.metrics"] == "auroc,f1_score"


@pytest.mark.anomalib
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_verbatim_guide_code_fails_and_the_job_ends(platform: Platform, tmp_path: Path) -> None:
    config = (VERBATIM / "config.yaml").read_text().replace("accelerator: gpu", "accelerator: auto")
    files = {"main.py": (VERBATIM / "main.py.txt").read_text(), "config.yaml": config}
    code, out, job_id = push(platform, tmp_path, "verbatim-cpu", files)
    assert code == 0 and job_id, out
    job = platform.wait_status(job_id, user_of(platform, "verbatim-cpu"), timeout=900)
    # Its first pitfall: the pretrained backbone cannot be downloaded. The reason is the exception's own
    # line (rich draws the traceback), with the hint.
    assert job["status"] == "failed", job
    assert job["error"].startswith("main.py exited with code 1: ValueError: Does not validate against any of the "
                                    "Union subtypes (hint: jobs have no network"), job["error"]


MAKE_CACHE = '''
import sys
from pathlib import Path

import timm
from safetensors.torch import save_file

# The layout timm reads resnet18 from (its default tag, a1_in1k) through the Hugging Face cache.
repo = Path(sys.argv[1]) / "huggingface" / "hub" / "models--timm--resnet18.a1_in1k"
revision = "0123456789abcdef0123456789abcdef01234567"
(repo / "snapshots" / revision).mkdir(parents=True)
(repo / "refs").mkdir()
(repo / "refs" / "main").write_text(revision)
model = timm.create_model("resnet18", pretrained=False)  # random weights: the test needs the files, not ImageNet
save_file({k: v.contiguous() for k, v in model.state_dict().items()},
          str(repo / "snapshots" / revision / "model.safetensors"))
(repo / "snapshots" / revision / "model.safetensors").chmod(0o644)  # save_file writes 0600; jobs are another user
'''


@pytest.mark.anomalib
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_pretrained_backbones_load_offline_from_the_model_cache(platform: Platform, tmp_path: Path) -> None:
    cache = tmp_path / "model-cache"
    subprocess.run([sys.executable, "-c", MAKE_CACHE, str(cache)], check=True, timeout=300)
    added = platform.instance.cli("weights", "add", str(cache))
    assert "timm/resnet18.a1_in1k" in added.stdout
    samples = doc_samples(ROOT / "docs" / "submitting.md")
    config = samples["config.yaml"].replace("pre_trained: false", "pre_trained: true")
    assert config != samples["config.yaml"]
    code, out, job_id = push(platform, tmp_path, "pretrained", {**samples, "config.yaml": config})
    assert code == 0 and job_id, out
    user = user_of(platform, "pretrained")
    job = platform.wait_status(job_id, user, timeout=900)
    log = platform.api("GET", f"/jobs/{job_id}/logs", user).text
    platform.instance.cli("weights", "remove")
    assert job["status"] == "completed", (job, log[-4000:])
    assert "auroc" in job["metrics"]
