"""MLflow's own route table, read from the installed MLflow in a child process (importing MLflow's
server here would bring its import-time warnings and global state into the test process): the
Flask app's url_map (what `mlflow server` serves under gunicorn) and the routers the FastAPI app
adds (under uvicorn, the default of an operator's own server)."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass

from .shared import SharedCommand

DUMP = r'''
import json, warnings
warnings.simplefilter("ignore")
from mlflow.server import app
routes = [{"methods": sorted(rule.methods - {"HEAD", "OPTIONS"}), "rule": rule.rule, "endpoint": rule.endpoint}
          for rule in app.url_map.iter_rules()]
from mlflow.server import fastapi_app
for included in fastapi_app.app.routes:
    router = getattr(included, "original_router", None)
    if router is None:
        continue
    prefix = included.include_context.prefix
    for route in router.routes:
        methods = sorted((getattr(route, "methods", None) or set()) - {"HEAD", "OPTIONS"})
        if methods:
            routes.append({"methods": methods, "rule": prefix + route.path, "endpoint": route.name})
import os, sys
with open(sys.argv[1] + ".making", "w") as out:
    json.dump(routes, out)
os.replace(sys.argv[1] + ".making", sys.argv[1])
'''


@dataclass(frozen=True)
class Route:
    method: str
    rule: str  # Flask's spelling: <name>, <path:name>
    endpoint: str

    def path(self, fill: dict[str, str], default: str = "x") -> str:
        """A concrete path: each parameter from `fill` (by name), else `default`."""
        return re.sub(r"<(?:path:)?(\w+)>", lambda m: fill.get(m.group(1), default), self.rule)

    @property
    def shape(self) -> str:
        """The rule without parameter names (`<path>` / `<x>`), to compare spellings."""
        return re.sub(r"<\w+>", "<x>", re.sub(r"<path:\w+>", "<path>", self.rule))


ROUTE_DUMP = SharedCommand("mlflow-routes.json", [sys.executable, "-c", DUMP],
                           env={"MLFLOW_DISABLE_TELEMETRY": "true"},
                           drop=("MLFLOW_TRACKING_URI",))  # started early by tests/conftest.py when needed


def mlflow_routes() -> list[Route]:
    routes = set()
    for entry in json.loads(ROUTE_DUMP.result().read_text(encoding="utf-8")):
        # FastAPI spells parameters {name} and {name:path}; write them as Flask does.
        rule = re.sub(r"\{(\w+):path\}", r"<path:\1>", entry["rule"])
        rule = re.sub(r"\{(\w+)\}", r"<\1>", rule)
        routes |= {Route(method, rule, entry["endpoint"]) for method in entry["methods"]}
    return sorted(routes, key=lambda r: (r.rule, r.method))
