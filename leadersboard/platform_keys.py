"""The keys of a submission's config that belong to the platform, not to anomalib.

The guide's `config.yaml` names its data set in `data.name` and what the leaderboard shows in a
top-level `metrics:` list. anomalib's parser (`Engine.from_config`, `anomalib train --config`)
refuses both, so the job's working copy of the config is written without them (the committed file
is unchanged), and the platform keeps what they say: the benchmark (admission) and the metrics shown
(a tag on the job's run).
"""

from __future__ import annotations

from typing import Any

import yaml

METRICS_KEY = "metrics"
MAX_SHOWN_METRICS = 8
GPU_ACCELERATORS = frozenset({"gpu", "cuda"})  # trainer.accelerator values that need a GPU worker


def shown_metrics(config: dict[str, Any]) -> tuple[str, ...] | None:
    """The metric names of a top-level `metrics:` list; None when it is not a list of names."""
    value = config.get(METRICS_KEY)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        return None
    return tuple(dict.fromkeys(v.strip() for v in value))


def accelerator(config: dict[str, Any]) -> str:
    """`trainer.accelerator` in lower case, or "" when the config does not set it."""
    trainer = config.get("trainer")
    value = trainer.get("accelerator") if isinstance(trainer, dict) else None
    return value.strip().lower() if isinstance(value, str) else ""


def needs_gpu(config: dict[str, Any]) -> bool:
    return accelerator(config) in GPU_ACCELERATORS


def without_platform_keys(config: dict[str, Any]) -> dict[str, Any]:
    """`config` without `data.name` and the top-level `metrics:` (a copy; the input is unchanged)."""
    stripped = {key: value for key, value in config.items() if key != METRICS_KEY}
    data = stripped.get("data")
    if isinstance(data, dict) and "name" in data:
        stripped["data"] = {key: value for key, value in data.items() if key != "name"}
    return stripped


def has_platform_keys(config: dict[str, Any]) -> bool:
    data = config.get("data")
    return METRICS_KEY in config or (isinstance(data, dict) and "name" in data)


def dump(config: dict[str, Any]) -> str:
    """YAML text of `config`, keys in their order."""
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
