"""What the MLflow gateway lets through: an allowlist of MLflow's read routes, each with who may read it.

Anything not listed is refused, so a write route (or one a newer MLflow adds) can never slip past
by being forgotten; tests/api/test_mlflow_gateway.py checks this list against MLflow's own route
table (every entry is a real read route; every other route is refused). Templates are written as
MLflow's Flask routes are (`<name>` one path segment, `<path:name>` the rest of the path).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum


class Access(Enum):
    """Who may read a route, and what decides it."""

    PUBLIC = "public"  # every signed-in user: experiments, runs' metrics, params and tags, the UI itself
    ADMIN = "admin"  # admins only: content nothing on the leaderboard shows (traces, evaluation datasets)
    RUN_ARTIFACTS = "run artifacts"  # the run named by `run_id` / `run_uuid`: its owner and admins
    STORED_ARTIFACTS = "stored artifacts"  # a path in the artifact store: the owner of the run it lies under
    MODEL_ARTIFACTS = "model artifacts"  # a logged model's files: the owner of the run that logged it
    GRAPHQL = "graphql"  # queries only, checked field by field (mlflow_graphql.py)


@dataclass(frozen=True)
class Read:
    methods: frozenset[str]
    template: str
    access: Access
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", _compile(self.template))


@dataclass(frozen=True)
class Match:
    read: Read
    params: dict[str, str]


def _compile(template: str) -> re.Pattern[str]:
    parts = re.split(r"(<(?:path:)?\w+>)", template)
    regex = ""
    for part in parts:
        if part.startswith("<path:"):
            regex += f"(?P<{part[6:-1]}>.+)"
        elif part.startswith("<"):
            regex += f"(?P<{part[1:-1]}>[^/]+)"
        else:
            regex += re.escape(part)
    return re.compile(regex)


def _reads(methods: str, access: Access, *templates: str) -> list[Read]:
    return [Read(frozenset(methods.split(",")), template, access) for template in templates]


def _both(path: str) -> tuple[str, str]:
    """A REST route under both of MLflow's prefixes: /api (clients) and /ajax-api (the UI)."""
    return f"/api/{path}", f"/ajax-api/{path}"


PUBLIC, ADMIN = Access.PUBLIC, Access.ADMIN
READS: tuple[Read, ...] = tuple([
    # The UI: its page, files and the probes it makes at start.
    *_reads("GET", PUBLIC, "/", "/static-files/<path:path>", "/health", "/version",
            *_both("3.0/mlflow/server-info"), "/ajax-api/3.0/mlflow/ui-telemetry",
            "/ajax-api/2.0/mlflow/gateway-proxy"),  # GET only lists AI-gateway endpoints (MLflow checks the path)
    # Experiments, runs, metrics: what the leaderboard shows anyway.
    *_reads("GET", PUBLIC, *_both("2.0/mlflow/experiments/get"), *_both("2.0/mlflow/experiments/get-by-name"),
            *_both("2.0/mlflow/runs/get"), *_both("2.0/mlflow/metrics/get-history"),
            *_both("2.0/mlflow/metrics/get-history-bulk-interval"), "/ajax-api/2.0/mlflow/metrics/get-history-bulk"),
    *_reads("GET,POST", PUBLIC, *_both("2.0/mlflow/experiments/search")),
    *_reads("POST", PUBLIC, *_both("2.0/mlflow/runs/search"), "/ajax-api/2.0/mlflow/experiments/search-datasets",
            *_both("3.0/mlflow/traces/metrics")),  # trace counts per day, no trace's content
    # Models: their descriptions (their files are artifacts, below).
    *_reads("GET", PUBLIC, *_both("2.0/mlflow/logged-models/<model_id>"), *_both("2.0/mlflow/registered-models/get"),
            *_both("2.0/mlflow/registered-models/search"), *_both("2.0/mlflow/registered-models/alias"),
            *_both("2.0/mlflow/model-versions/get"), *_both("2.0/mlflow/model-versions/search"),
            *_both("2.0/mlflow/model-versions/get-download-uri")),
    *_reads("POST", PUBLIC, *_both("2.0/mlflow/logged-models/search")),
    *_reads("GET,POST", PUBLIC, *_both("2.0/mlflow/registered-models/get-latest-versions")),
    # Artifacts, the job log among them: the run's owner and admins.
    *_reads("GET", Access.RUN_ARTIFACTS, *_both("2.0/mlflow/artifacts/list"), "/get-artifact"),
    *_reads("GET", Access.STORED_ARTIFACTS, *_both("2.0/mlflow-artifacts/artifacts"),
            *_both("2.0/mlflow-artifacts/artifacts/<path:artifact_path>")),
    *_reads("GET", Access.MODEL_ARTIFACTS, *_both("2.0/mlflow/logged-models/<model_id>/artifacts/directories"),
            "/ajax-api/2.0/mlflow/logged-models/<model_id>/artifacts/files"),
    *_reads("POST", Access.GRAPHQL, "/graphql"),
    # Admins only: a registered version's files, traces and evaluation datasets (the platform writes
    # none of them; whatever is there is nobody's leaderboard entry).
    *_reads("GET", ADMIN, "/model-versions/get-artifact", *_both("2.0/mlflow/traces"),
            *_both("2.0/mlflow/traces/<request_id>/info"), "/ajax-api/2.0/mlflow/get-trace-artifact",
            "/ajax-api/3.0/mlflow/get-trace-artifact", *_both("3.0/mlflow/traces/<trace_id>"),
            *_both("3.0/mlflow/traces/get"), *_both("3.0/mlflow/traces/batchGet"),
            *_both("3.0/mlflow/traces/<trace_id>/assessments/<assessment_id>"),
            *_both("3.0/mlflow/datasets/<dataset_id>"), *_both("3.0/mlflow/datasets/<dataset_id>/records"),
            *_both("3.0/mlflow/datasets/<dataset_id>/experiment-ids")),
    *_reads("POST", ADMIN, *_both("3.0/mlflow/traces/search"), *_both("3.0/mlflow/traces/batchGetInfos")),
    *_reads("GET,POST", ADMIN, *_both("3.0/mlflow/datasets/search")),
])


def find_read(method: str, path: str) -> Match | None:
    """The read that `method path` is, or None (then the gateway refuses it). HEAD reads as GET.

    An exact route wins over a template (`/traces/get` is not `/traces/<trace_id>`), though both
    would be read alike."""
    method = "GET" if method == "HEAD" else method
    found: Match | None = None
    for read in READS:
        if method not in read.methods:
            continue
        hit = read.pattern.fullmatch(path)
        if hit is not None:
            if not hit.groupdict():
                return Match(read, {})
            found = found or Match(read, hit.groupdict())
    return found
