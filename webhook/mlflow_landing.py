"""Where the MLflow UI opens: the benchmarks' experiments, in MLflow's "Model training" view.

MLflow's UI routes in the URL's fragment (`/#/experiments`), which a server never sees, and its own
home page is a GenAI welcome. So a bare `/` gets this page, whose script goes on to the UI at
`/?ui` with the fragment it came with (a link to a run still opens that run) or `#/experiments`,
after making "Model training" the view (unless the participant chose one: the UI's own setting, in
this origin's local storage). A redirect could not do it: a fragment in `Location` would replace
the link's, and a redirect of `/` to `/#...` would loop.
"""

from __future__ import annotations

import base64
import hashlib

UI_PATH = "/?ui"  # MLflow's page itself; the query only keeps the gateway from answering with this one
WORKFLOW_KEY = "mlflow.workflowType_v1"  # the UI's setting (useLocalStorage: key + "_v" + version)
SCRIPT = (
    "try { if (localStorage.getItem('" + WORKFLOW_KEY + "') === null) "
    "localStorage.setItem('" + WORKFLOW_KEY + "', JSON.stringify('machine_learning')); } catch (e) {}\n"
    "location.replace('" + UI_PATH + "' + (location.hash.length > 1 ? location.hash : '#/experiments'));"
)
PAGE = (
    '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>MLflow</title>'
    f"<script>{SCRIPT}</script></head>"
    f'<body><noscript><a href="{UI_PATH}#/experiments">MLflow</a></noscript></body></html>\n'
).encode()
_DIGEST = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
HEADERS = [
    (b"content-type", b"text/html; charset=utf-8"),
    (b"content-length", str(len(PAGE)).encode()),
    (b"cache-control", b"no-store"),
    (b"content-security-policy", f"default-src 'none'; script-src 'sha256-{_DIGEST}'".encode()),
    (b"x-content-type-options", b"nosniff"),
]


def is_landing(method: str, path: str, query: str) -> bool:
    return method in ("GET", "HEAD") and path == "/" and not query
