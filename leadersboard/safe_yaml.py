"""YAML from people the platform does not trust, parsed with bounds: no aliases, a size, a depth and
a number of values that no document gets past.

A 442-byte document of nested aliases ("billion laughs") expands to gigabytes when it is built; a
document of 10,000 nested lists overflows the stack. Both are refused while they are read, before
anything is built. Anchors without aliases are harmless and allowed.
"""

from __future__ import annotations

from typing import Any, cast

import yaml

MAX_BYTES = 256 * 1024  # a model's config is a few KB
MAX_DEPTH = 64
MAX_NODES = 10_000  # PyYAML reads ~40,000 values a second: the bound trips in a fraction of one


class UnsafeYaml(yaml.YAMLError):
    """The document breaks a bound; `problem` says which, `problem_mark` where (as PyYAML's own errors)."""

    def __init__(self, problem: str, mark: object = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


class _BoundedLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def fetch_flow_collection_start(self, token_class: type[yaml.Token]) -> None:
        # Checked while scanning too: PyYAML's scanner reads all of "[[[[..." ahead of the composer
        # (each "[" may start a simple key), in time that grows with the square of the depth.
        if self.flow_level >= MAX_DEPTH:
            raise UnsafeYaml(f"nested more than {MAX_DEPTH} levels deep", self.get_mark())
        super().fetch_flow_collection_start(token_class)

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = cast(yaml.Event, self.peek_event())  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            raise UnsafeYaml(f"aliases (*{event.anchor}) are not allowed: write the value out", event.start_mark)
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise UnsafeYaml(f"more than {MAX_NODES:,} values", event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise UnsafeYaml(f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load(text: str) -> Any:
    """The document's value; `yaml.YAMLError` (an `UnsafeYaml` for a bound) when it cannot be used."""
    if len(text.encode("utf-8")) > MAX_BYTES:
        raise UnsafeYaml(f"larger than {MAX_BYTES // 1024} KiB")
    return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 (a SafeLoader, with bounds)
