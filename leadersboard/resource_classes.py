"""Resource classes: the named sizes of job an instance offers (`-o resource_class=NAME`, the upload's
`resource_class`, POST /jobs' `config.resource_class`), as section `resource_classes` of the config file:

    resource_classes:
      default: medium          # a job that names none gets this one
      classes:
        small:  {cpus: 2, memory: 8g,  gpus: 1, time_limit_seconds: 1800}
        medium: {cpus: 4, memory: 16g, gpus: 1, time_limit_seconds: 3600}
        large:  {cpus: 8, memory: 32g, gpus: 1, time_limit_seconds: 14400}

A job keeps the name of its class (its run's tag `leadersboard.resource_class`); a name the instance
does not offer is refused wherever it can be given, before anything is changed. A job runs with its
class's CPUs, memory and time limit, none above the instance's ceiling in `limits` (`job_cpus`,
`job_memory`, `job_timeout_seconds`): `Settings.job_size`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from .names import RESOURCE_CLASS

_SIZE = re.compile(r"[1-9][0-9]*[bkmg]?", re.I)  # docker's way: 512m, 16g


class ResourceClassError(Exception):
    """The `resource_classes` section is malformed; the message names the key."""


@dataclass(frozen=True)
class ResourceClass:
    """What one job of this class may use."""

    cpus: int
    memory: str  # as docker writes it: 512m, 16g
    gpus: int  # how many GPUs (0: a CPU job)
    time_limit_seconds: int

    def to_config(self) -> dict[str, Any]:
        return {"cpus": self.cpus, "memory": self.memory, "gpus": self.gpus,
                "time_limit_seconds": self.time_limit_seconds}


@dataclass(frozen=True)
class JobSize:
    """What one job may use: its class's figures, each capped at the instance's `limits`."""

    resource_class: str
    cpus: int
    memory: str  # as docker writes it
    time_limit_seconds: int
    gpus: int = 1  # 0: the job sees no GPU; 1: its worker's, when it has one
    capped: tuple[str, ...] = ()  # what the ceiling lowered: cpus, memory, time_limit_seconds

    def host_cpus(self) -> int:
        """Its CPUs on this host: no more than the host has."""
        return min(self.cpus, os.cpu_count() or 1)

    def describe(self) -> str:
        capped = f" (capped by the instance's limits: {', '.join(self.capped)})" if self.capped else ""
        gpu = "" if self.gpus else ", no GPU"
        return (f"class {self.resource_class}: {self.cpus} CPU(s), memory {self.memory}{gpu}, "
                f"time limit {self.time_limit_seconds} s{capped}")


def _defaults() -> dict[str, ResourceClass]:
    # medium is a job's size unless it asks for another (4 CPUs, 16g, 1 h); the others halve and double it.
    # `limits` caps them all (its defaults are large's).
    return {"small": ResourceClass(2, "8g", 1, 1800), "medium": ResourceClass(4, "16g", 1, 3600),
            "large": ResourceClass(8, "32g", 1, 4 * 3600)}


@dataclass(frozen=True)
class ResourceClasses:
    classes: dict[str, ResourceClass] = field(default_factory=_defaults)
    default: str = "medium"

    @property
    def names(self) -> list[str]:
        """The class names, smallest first (the config file's order is lost when it is written sorted)."""
        return sorted(self.classes, key=lambda n: (self.classes[n].gpus, self.classes[n].cpus,
                                                   self.classes[n].time_limit_seconds, n))

    def problem(self, name: str | None) -> str | None:
        """Why `name` cannot be asked for on this instance (None: it can, or none was named)."""
        if name is None or name in self.classes:
            return None
        shown = name if len(name) <= 40 else name[:40] + "…"
        return (f"unknown resource class {shown!r}: this instance offers {', '.join(self.names)} "
                f"(default {self.default})")

    def choose(self, name: str | None) -> str:
        """The class a job gets: the one named, else the default."""
        return name or self.default

    def to_config(self) -> dict[str, Any]:
        return {"default": self.default, "classes": {name: self.classes[name].to_config() for name in self.names}}

    @classmethod
    def from_config(cls, raw: object) -> ResourceClasses:
        """The section as the config file holds it; `ResourceClassError` names what is wrong."""
        if raw is None:
            return cls()
        if not isinstance(raw, dict) or set(raw) - {"default", "classes"}:
            raise ResourceClassError("Config 'resource_classes' must be a mapping with 'default' and 'classes'")
        classes = _defaults() if raw.get("classes") is None else _classes(raw["classes"])
        default = raw.get("default", "medium" if "medium" in classes else next(iter(classes)))
        if default not in classes:
            raise ResourceClassError(f"Config 'resource_classes.default' is {default!r}, not one of the classes "
                                     f"({', '.join(classes)})")
        return cls(classes, default)


def _classes(raw: object) -> dict[str, ResourceClass]:
    if not isinstance(raw, dict) or not raw:
        raise ResourceClassError("Config 'resource_classes.classes' must map at least one name to "
                                 "{cpus, memory, gpus, time_limit_seconds}")
    out: dict[str, ResourceClass] = {}
    for name, entry in raw.items():
        where = f"resource_classes.classes.{name}"
        if not isinstance(name, str) or not RESOURCE_CLASS.fullmatch(name):
            raise ResourceClassError(f"Config '{where}': a class name is 1-32 lower-case letters, digits, '-', '_'")
        if not isinstance(entry, dict) or set(entry) != set(ResourceClass.__dataclass_fields__):
            raise ResourceClassError(f"Config '{where}' must give exactly cpus, memory, gpus and time_limit_seconds")
        for key in ("cpus", "gpus", "time_limit_seconds"):
            value = entry[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if key == "gpus" else 1):
                raise ResourceClassError(f"Config '{where}.{key}' must be a whole number "
                                         f"≥ {0 if key == 'gpus' else 1}, not {value!r}")
        if entry["gpus"] > 1:
            raise ResourceClassError(f"Config '{where}.gpus' is {entry['gpus']}: a job gets one GPU at most (a "
                                     "worker per GPU); use 1, or 0 for a CPU class")
        if not isinstance(entry["memory"], str) or not _SIZE.fullmatch(entry["memory"]):
            raise ResourceClassError(f"Config '{where}.memory' must be a size such as 512m or 16g")
        out[name] = ResourceClass(entry["cpus"], entry["memory"], entry["gpus"], entry["time_limit_seconds"])
    return out
