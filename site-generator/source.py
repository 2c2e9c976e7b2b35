"""Reading completed jobs from MLflow with `MlflowClient` (not `mlflow.search_runs`, which needs pandas).

A cold read pages through every completed run of every experiment; a warm read asks only for runs
that ended at or after a given time (`attributes.end_time` is a searchable run attribute in MLflow's
search grammar, see `RunInfo.get_searchable_attributes`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from mlflow.entities import Run, ViewType
from mlflow.tracking import MlflowClient

from leadersboard import contract as c
from leadersboard.job_index import JobIndex
from leadersboard.jobs import JobStatus

from .entries import Entry, entry_from_run

COMPLETED_FILTER = (f"tags.`{c.TAG_STATUS}` = '{JobStatus.COMPLETED}' "
                    f"AND attributes.status = '{JobStatus.COMPLETED.run_status}'")
PAGE_SIZE = 1000
# Keeps each request's `experiment_id IN (...)` list short on instances with very many benchmarks.
EXPERIMENTS_PER_QUERY = 100


@dataclass
class Fetched:
    entries: list[Entry]
    runs: int  # completed runs MLflow returned
    skipped: int  # of those, runs without a usable AUROC or end time


def fetch_entries(client: MlflowClient, index: JobIndex, since_ms: int | None = None) -> Fetched:
    """Completed jobs in every active experiment; only those ended at or after `since_ms` when given.

    A run counts only when the platform's index records it as a job (so not a submission's own run
    copied under its job, nor anything else in MLflow), and its owner and benchmark come from there."""
    experiments = _experiment_names(client)
    query = COMPLETED_FILTER if since_ms is None else f"{COMPLETED_FILTER} AND attributes.end_time >= {since_ms}"
    fetched = Fetched([], 0, 0)
    seen: set[str] = set()
    ids = sorted(experiments)
    for start in range(0, len(ids), EXPERIMENTS_PER_QUERY):
        for page in _pages(client, ids[start:start + EXPERIMENTS_PER_QUERY], query):
            # Offset paging can repeat a run when the result set moves between pages.
            runs = [run for run in page if run.info.run_id not in seen]
            seen.update(run.info.run_id for run in runs)
            records = index.by_runs([run.info.run_id for run in runs])
            for run in runs:
                record = records.get(run.info.run_id)
                if record is None:
                    continue
                fetched.runs += 1
                entry = entry_from_run(run, record)
                if entry is None:
                    fetched.skipped += 1
                else:
                    fetched.entries.append(entry)
    return fetched


def _experiment_names(client: MlflowClient) -> dict[str, str]:
    found: dict[str, str] = {}
    token: str | None = None
    while True:
        page = client.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=PAGE_SIZE, page_token=token)
        found.update((experiment.experiment_id, experiment.name) for experiment in page)
        token = page.token
        if not token:
            return found


def _pages(client: MlflowClient, experiment_ids: list[str], query: str) -> Iterator[list[Run]]:
    token: str | None = None
    while True:
        # Ascending end time: runs that finish while we page land after the pages already read.
        page = client.search_runs(experiment_ids, query, run_view_type=ViewType.ACTIVE_ONLY, max_results=PAGE_SIZE,
                                  order_by=["attributes.end_time ASC"], page_token=token)
        yield list(page)
        token = page.token
        if not token:
            return
