"""The MLflow gateway's rules on their own: which read a request is, which paths mean what they say,
and what a GraphQL document asks (the gateway in front of a real MLflow is tests/api's)."""

from __future__ import annotations

from typing import Any

import pytest

from leadersboard.webhook.mlflow_access import is_plain_path
from leadersboard.webhook.mlflow_graphql import check_graphql
from leadersboard.webhook.mlflow_refusal import Refusal
from leadersboard.webhook.mlflow_rules import Access, find_read


def test_a_read_is_found_by_method_and_path() -> None:
    found = find_read("GET", "/api/2.0/mlflow/runs/get")
    assert found is not None and found.read.access is Access.PUBLIC and found.params == {}
    assert find_read("HEAD", "/get-artifact") is not None  # HEAD reads as GET
    assert find_read("POST", "/api/2.0/mlflow/runs/get") is None
    assert find_read("POST", "/api/2.0/mlflow/runs/set-tag") is None
    assert find_read("GET", "/api/2.0/mlflow/runs/get/") is None
    stored = find_read("GET", "/ajax-api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/x.txt")
    assert stored is not None and stored.params == {"artifact_path": "1/abc/artifacts/x.txt"}
    # An exact route wins over a template that also matches it.
    exact = find_read("GET", "/api/3.0/mlflow/traces/get")
    assert exact is not None and exact.read.template == "/api/3.0/mlflow/traces/get"
    model = find_read("GET", "/api/2.0/mlflow/logged-models/m-1/artifacts/directories")
    assert model is not None and model.read.access is Access.MODEL_ARTIFACTS and model.params == {"model_id": "m-1"}


@pytest.mark.parametrize(("path", "plain"), [
    ("1/run/artifacts/x.txt", True), ("/static-files/a/b.js", True), ("a/", True),
    ("1/run/artifacts/../other", False), ("./x", False), ("a//b", False), ("a\\b", False), ("a\x00b", False),
])
def test_plain_paths(path: str, plain: bool) -> None:
    assert is_plain_path(path) is plain


def runs(query: str, variables: dict[str, Any] | None = None) -> frozenset[str | None]:
    return check_graphql({"query": query, "variables": variables}).artifact_runs


def test_graphql_queries_of_listed_fields_pass_and_name_the_runs_they_list() -> None:
    assert runs("query Q($d: MlflowGetRunInput!) { mlflowGetRun(input: $d) { run { info { runUuid } } } }",
                {"d": {"runId": "r1"}}) == frozenset()
    assert runs('{ a: mlflowListArtifacts(input: {runId: "r1"}) { rootUri } }') == {"r1"}
    assert runs('{ mlflowListArtifacts(input: {runUuid: "r1", runId: "r1"}) { rootUri } }') == {"r1"}
    assert runs("query L($i: MlflowListArtifactsInput) { mlflowListArtifacts(input: $i) { rootUri } }",
                {"i": {"runId": "r2"}}) == {"r2"}
    assert runs('query L($r: String) { mlflowListArtifacts(input: {runId: $r}) { rootUri } }', {"r": "r3"}) == {"r3"}
    inline = '{ ... on Query { ...F } } fragment F on Query { mlflowListArtifacts(input: {runId: "r4"}) { rootUri } }'
    assert runs(inline) == {"r4"}


def test_graphql_listings_that_name_no_one_run_are_for_admins() -> None:
    assert runs('{ mlflowListArtifacts(input: {runId: "a", runUuid: "b"}) { rootUri } }') == {None}
    assert runs("query L($i: MlflowListArtifactsInput) { mlflowListArtifacts(input: $i) { rootUri } }") == {None}
    assert runs("{ mlflowListArtifacts(input: {runId: 3}) { rootUri } }") == {None}
    assert runs("{ mlflowListArtifacts { rootUri } }") == {None}


@pytest.mark.parametrize(("document", "status"), [
    ({"query": "mutation { mlflowSearchRuns(input: {}) { runs { info { runUuid } } } }"}, 403),
    ({"query": "{ test { output } } mutation M { testMutation(inputString: \"x\") { output } }"}, 403),
    ({"query": "{ mlflowSearchDatasets(input: {}) { datasetSummaries { name } } }"}, 403),
    ({"query": "{ ...Nowhere }"}, 400),
    ({"query": "{ unclosed"}, 400),
    ({"query": "{" + "... on Query {" * 400 + "test { output }" + "}" * 400 + "}"}, 400),
    ({"query": 1}, 400), ([], 400), ({"query": "{ test { output } }", "variables": []}, 400),
])
def test_graphql_documents_that_are_not_plain_reads_are_refused(document: Any, status: int) -> None:
    with pytest.raises(Refusal) as refused:
        check_graphql(document)
    assert refused.value.status == status


def test_what_is_forwarded_is_what_was_checked() -> None:
    checked = check_graphql({"query": "{ test { output } }", "operationName": None, "extensions": {"x": 1}})
    assert checked.body == {"query": "{ test { output } }", "variables": None, "operationName": None}
