"""What the live workers offer. `accelerator: gpu` needs a worker with a GPU: refused at push time on an
instance that has none. A resource class no live worker takes is said at submit time (the job waits).

Workers publish what their jobs get in Redis (`contract.sandbox_key`, refreshed every few seconds,
with a TTL); the service's dependency watcher reads those reports every second (`dependencies.py`),
and this judges from what it last read: no Redis scan per submission.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from leadersboard.contract import SANDBOX_CLASSES, SANDBOX_GPUS
from leadersboard.rules import Problem, SubmissionSpec

WorkerReports = Mapping[str, Mapping[str, Any]]  # worker -> its report, as the watcher last read them


def live_gpu_worker(reports: WorkerReports) -> bool:
    """Whether a live worker's jobs see a GPU."""
    return any(isinstance(gpus := report.get(SANDBOX_GPUS, 0), int) and gpus > 0 for report in reports.values())


def gpu_problems(reports: WorkerReports, specs: Iterable[SubmissionSpec]) -> list[Problem]:
    """A problem per submission asking for a GPU when no live worker has one; none otherwise."""
    wanting = [spec for spec in specs if spec.needs_gpu]
    if not wanting or live_gpu_worker(reports):
        return []
    return [Problem("accelerator", f"{spec.folder}/{spec.config_file}",
                    f"trainer.accelerator is {spec.accelerator!r}, but no worker of this instance has a GPU",
                    "set 'accelerator: auto' (uses a GPU where there is one) or 'accelerator: cpu'")
            for spec in wanting]


def unserved_class(reports: WorkerReports, name: str) -> str | None:
    """What to tell a submitter when live workers run and none takes jobs of class `name` (the job is
    made and waits until such a worker joins); None when one does, or when no worker is live."""
    if not reports:
        return None
    served: set[str] = set()
    for report in reports.values():
        classes = report.get(SANDBOX_CLASSES)
        if not isinstance(classes, list):
            return None  # this worker takes every class
        served.update(str(cls) for cls in classes)
    if name in served:
        return None
    return (f"no live worker takes resource class {name!r} now (they take {', '.join(sorted(served))}): "
            "the job waits until one that does joins")
