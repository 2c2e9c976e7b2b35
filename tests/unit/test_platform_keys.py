"""The platform's own config keys: what the rules read from them, the job's working copy without them,
the GPU check at push time (against a real Redis), and the metrics the leaderboard shows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from mlflow.entities import Metric, Run, RunData, RunInfo, RunTag

from leadersboard import contract as c
from leadersboard.datasets import Dataset
from leadersboard.job_index import JobRecord
from leadersboard.rules import SubmissionSpec, check_folder
from leadersboard.runner.worker import gpu_present
from leadersboard.runner.working_config import prepare
from leadersboard.settings import Limits
from leadersboard.site_generator.entries import Entry, entry_from_run
from leadersboard.site_generator.exports import leaderboard_json
from leadersboard.site_generator.ranking import boards, user_pages
from leadersboard.site_generator.render import environment, render_pages
from leadersboard.webhook.intake.gpus import gpu_problems

from support.instances import GOOD_MAIN
from support.memory import MemoryFolder

DATASETS = {"visa": Dataset("visa", Path("/data/visa"), "visa", categories=("pcb1",))}
GUIDE_CONFIG = """# the guide's shape
model:
  class_path: anomalib.models.Padim
  init_args: {backbone: resnet18, pre_trained: false}
data:
  name: visa
  class_path: anomalib.data.Folder
  init_args: {name: pcb1, root: pcb1/Data/Images}
trainer: {max_epochs: 1, accelerator: GPU, devices: 1}
metrics:
  - auroc
  - pixel_auroc
"""


def spec_of(config: str) -> SubmissionSpec | None:
    report = check_folder(MemoryFolder("m", {"main.py": GOOD_MAIN, "config.yaml": config}), DATASETS, Limits())
    return report.spec


def test_the_rules_read_the_accelerator_and_the_metrics_shown() -> None:
    spec = spec_of(GUIDE_CONFIG)
    assert spec is not None and spec.benchmark == "visa/pcb1"
    assert spec.accelerator == "gpu" and spec.needs_gpu and spec.metrics == ("auroc", "pixel_auroc")
    plain = spec_of(GUIDE_CONFIG.replace("accelerator: GPU", "accelerator: auto").split("metrics:")[0])
    assert plain is not None and not plain.needs_gpu and plain.metrics == ()


def test_metrics_must_be_a_list_of_names() -> None:
    for bad in ("metrics: auroc\n", "metrics: [1, 2]\n", "metrics: {auroc: 1}\n", f"metrics: {list('abcdefghi')}\n"):
        report = check_folder(MemoryFolder("m", {"main.py": GOOD_MAIN, "config.yaml": GUIDE_CONFIG.split(
            "metrics:")[0] + bad}), DATASETS, Limits())
        assert [p.rule for p in report.problems] == ["config"], bad
        assert "'metrics' must be a list of metric names" in str(report.problems[0])


def test_the_working_copy_loses_the_platform_keys_only(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(GUIDE_CONFIG)
    result = prepare(tmp_path, "config.yaml")
    assert result.removed == ("data.name", "metrics") and result.metrics == ("auroc", "pixel_auroc")
    written = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert list(written) == ["model", "data", "trainer"]
    assert written["data"] == {"class_path": "anomalib.data.Folder",
                               "init_args": {"name": "pcb1", "root": "pcb1/Data/Images"}}
    assert written["model"] == yaml.safe_load(GUIDE_CONFIG)["model"]


def test_a_config_without_platform_keys_is_left_byte_for_byte(tmp_path: Path) -> None:
    text = "# mine\nmodel: {}\ndata: {init_args: {name: pcb1}}\ntrainer: {}\n"
    (tmp_path / "config.yaml").write_text(text)
    assert prepare(tmp_path, "config.yaml").removed == ()
    assert (tmp_path / "config.yaml").read_text() == text
    (tmp_path / "broken.yaml").write_text("a: [")
    assert prepare(tmp_path, "broken.yaml").removed == () and prepare(tmp_path, "gone.yaml").removed == ()


def test_gpu_configs_are_refused_unless_a_live_worker_has_a_gpu() -> None:
    gpu_spec, cpu_spec = spec_of(GUIDE_CONFIG), spec_of(GUIDE_CONFIG.replace("accelerator: GPU", "accelerator: cpu"))
    assert gpu_spec is not None and cpu_spec is not None
    reports: dict[str, dict[str, Any]] = {}  # the live workers' reports, as the service's watcher reads them
    none = [str(p) for p in gpu_problems(reports, [gpu_spec, cpu_spec])]
    reports["cpu-host:1"] = {"executor": "process", c.SANDBOX_GPUS: 0}
    reports["old-host:2"] = {"executor": "process"}  # an older worker
    cpu_only = [str(p) for p in gpu_problems(reports, [gpu_spec])]
    reports["gpu-host:3"] = {"executor": "docker", c.SANDBOX_GPUS: 1}
    with_gpu = [str(p) for p in gpu_problems(reports, [gpu_spec])]
    cpu_asks = [str(p) for p in gpu_problems(reports, [cpu_spec])]
    assert len(none) == 1 and none[0].startswith("[accelerator] m/config.yaml: trainer.accelerator is 'gpu'")
    assert "no worker of this instance has a GPU" in none[0] and "'accelerator: auto'" in none[0]
    assert cpu_only == none and with_gpu == [] and cpu_asks == []


def test_the_leaderboard_entry_carries_the_metrics_asked_for() -> None:
    record = JobRecord(job_id="j1", run_id="r1", user="alice", benchmark="visa/pcb1", submission_id="s1",
                       folder="padim", commit="c" * 40, entrypoint="main.py", config_file="config.yaml",
                       resource_class=None, created_at=1.0, method="")
    metrics = {c.METRIC_AUROC: 0.9, c.METRIC_F1: 0.8, "pixel_auroc": 0.95, "loss": 0.1}
    tags = {c.TAG_SHOWN_METRICS: "auroc,pixel_auroc,aupro,pixel_auroc"}
    run = Run(RunInfo("r1", "0", "alice", "FINISHED", 1, 2000, "active"),
              RunData([Metric(k, v, 0, 0) for k, v in metrics.items()], [], [RunTag(k, v) for k, v in tags.items()]))
    found = entry_from_run(run, record)
    assert found is not None and found.shown == {"pixel_auroc": 0.95}  # auroc has its column; aupro was not logged


def test_the_pages_show_the_asked_metrics_escaped(tmp_path: Path) -> None:
    shown = {"pixel_auroc": 0.95, "<b>aupro</b>": 0.5}
    entry = Entry(run_id="r1", job_id="j1", benchmark="visa/pcb1", user="alice", folder="padim", submission_id="s1",
                  commit="c" * 40, method="", submitted_at=1.0, end_time_ms=2000, auroc=0.9, f1_score=0.8,
                  runtime_seconds=1.0, shown=shown)
    all_boards = boards([entry])
    render_pages(environment(), all_boards, user_pages(all_boards), datetime(2026, 1, 1, tzinfo=UTC), tmp_path)
    for page in (tmp_path / "index.html", *(tmp_path / "benchmark").iterdir(), *(tmp_path / "user").iterdir()):
        html = page.read_text()
        assert '<span class="shown-metric" data-metric="pixel_auroc">pixel_auroc 0.9500</span>' in html, page
        assert "&lt;b&gt;aupro&lt;/b&gt; 0.5000" in html and "<b>aupro" not in html
    document = json.loads(leaderboard_json(all_boards, datetime(2026, 1, 1, tzinfo=UTC)))
    assert document["benchmarks"][0]["ranking"][0]["metrics"] == shown


def test_a_worker_counts_a_gpu_only_where_the_host_has_it(tmp_path: Path) -> None:
    assert not gpu_present(None, tmp_path) and not gpu_present("0", tmp_path)  # serve's numbering on a CPU host
    assert not gpu_present("GPU-1234", tmp_path)
    (tmp_path / "nvidia0").touch()
    (tmp_path / "nvidiactl").touch()
    assert gpu_present("0", tmp_path) and not gpu_present("1", tmp_path) and gpu_present("GPU-1234", tmp_path)
