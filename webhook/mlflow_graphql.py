"""MLflow's GraphQL endpoint through the gateway: queries only, of known fields.

The document is parsed here (graphql-core, as MLflow parses it): a mutation is refused, even the
ones MLflow uses to search (the UI queries), and so is any top-level field not listed below, so a
field a newer MLflow adds is refused until someone decides it reads nothing private. The one field
that reaches artifacts, `mlflowListArtifacts`, names the runs whose owners must be checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    parse,
    value_from_ast_untyped,
)

from .mlflow_refusal import Refusal

# Top-level fields that read what every user may read (runs' metrics, params, tags; experiments).
PUBLIC_FIELDS = frozenset({
    "mlflowGetExperiment", "mlflowGetRun", "mlflowSearchRuns", "mlflowGetMetricHistoryBulkInterval",
    "mlflowSearchModelVersions", "test", "__typename", "__schema", "__type",
})
ARTIFACT_FIELDS = frozenset({"mlflowListArtifacts"})  # argument `input: {runId | runUuid}`
MAX_TOKENS = 20_000  # the UI's largest query has ~300: a bound on the work one request makes here


@dataclass(frozen=True)
class GraphqlRequest:
    """A checked request: what is forwarded (only these keys), and the runs whose artifacts it lists."""

    body: dict[str, Any]
    artifact_runs: frozenset[str | None]  # None: a listing whose run could not be told (admins only)


def check_graphql(document: Any) -> GraphqlRequest:
    """The request to forward for a JSON body `document`; Refusal when it is not a plain read."""
    if not isinstance(document, dict) or not isinstance(document.get("query"), str):
        raise Refusal(400, "A GraphQL request is a JSON object with a 'query' string")
    variables = document.get("variables")
    operation_name = document.get("operationName")
    if not isinstance(variables, dict | None) or not isinstance(operation_name, str | None):
        raise Refusal(400, "GraphQL 'variables' must be an object and 'operationName' a string")
    try:
        parsed = parse(document["query"], max_tokens=MAX_TOKENS)
    except GraphQLError as exc:
        raise Refusal(400, f"Not a GraphQL document: {exc.message}") from exc
    fragments = {d.name.value: d for d in parsed.definitions if isinstance(d, FragmentDefinitionNode)}
    runs: set[str | None] = set()
    for definition in parsed.definitions:
        if isinstance(definition, FragmentDefinitionNode):
            continue
        if not isinstance(definition, OperationDefinitionNode) or definition.operation != OperationType.QUERY:
            raise Refusal(403, "MLflow is read-only here: GraphQL mutations are refused")
        for fld in _top_fields(definition.selection_set, fragments):
            runs |= _field_runs(fld, variables or {})
    body = {"query": document["query"], "variables": variables or None, "operationName": operation_name}
    return GraphqlRequest(body, frozenset(runs))


def _top_fields(selections: SelectionSetNode, fragments: dict[str, FragmentDefinitionNode]) -> list[FieldNode]:
    """The fields asked of the root type, through fragments (each expanded once: no cycles); a loop,
    not recursion, so no nesting exhausts the stack."""
    fields: list[FieldNode] = []
    seen: set[str] = set()
    waiting = list(selections.selections)
    while waiting:
        node = waiting.pop()
        if isinstance(node, FieldNode):
            fields.append(node)
        elif isinstance(node, InlineFragmentNode):
            waiting += node.selection_set.selections
        elif isinstance(node, FragmentSpreadNode) and node.name.value not in seen:
            seen.add(node.name.value)
            fragment = fragments.get(node.name.value)
            if fragment is None:
                raise Refusal(400, f"GraphQL fragment {node.name.value!r} is not defined")
            waiting += fragment.selection_set.selections
    return fields


def _field_runs(fld: FieldNode, variables: dict[str, Any]) -> set[str | None]:
    name = fld.name.value
    if name in PUBLIC_FIELDS:
        return set()
    if name not in ARTIFACT_FIELDS:
        raise Refusal(403, f"The GraphQL field {name!r} is not served by this gateway")
    arguments = {arg.name.value: value_from_ast_untyped(arg.value, variables) for arg in fld.arguments}
    given = arguments.get("input")
    ids = {given.get(key) for key in ("runId", "runUuid")} if isinstance(given, dict) else set()
    named: set[str | None] = {run for run in ids if isinstance(run, str) and run}
    # MLflow reads runId, else runUuid: two different ones (or none we can read) name no one run.
    return named if len(named) == 1 else {None}

