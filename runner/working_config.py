"""The job's working copy of its config: anomalib's parser gets only anomalib's keys.

The committed file stays as the participant wrote it (the git history is the submission); only the
checked-out copy in the job's scratch folder is rewritten, and only when it holds a key the platform
owns (`leadersboard/platform_keys.py`): a config without them is left byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from leadersboard import platform_keys, safe_yaml


@dataclass(frozen=True)
class WorkingConfig:
    removed: tuple[str, ...] = ()  # the platform's keys taken out of the working copy
    metrics: tuple[str, ...] = ()  # the metrics the config asks the leaderboard to show


def prepare(work: Path, config_file: str) -> WorkingConfig:
    """Rewrite `work/config_file` without the platform's keys; what was removed and the metrics shown."""
    path = work / config_file
    try:
        config = safe_yaml.load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return WorkingConfig()  # the rules checked it at push time; anything else is the code's to meet
    if not isinstance(config, dict) or not platform_keys.has_platform_keys(config):
        return WorkingConfig(metrics=platform_keys.shown_metrics(config) or () if isinstance(config, dict) else ())
    removed = tuple(key for key, present in (
        ("data.name", isinstance(config.get("data"), dict) and "name" in config["data"]),
        (platform_keys.METRICS_KEY, platform_keys.METRICS_KEY in config)) if present)
    path.write_text(platform_keys.dump(platform_keys.without_platform_keys(config)), encoding="utf-8")
    return WorkingConfig(removed, platform_keys.shown_metrics(config) or ())
