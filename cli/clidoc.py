"""The command-line reference (`docs/cli.md`), generated from the click command tree itself.

Regenerate it with ``python -m leadersboard.cli.clidoc > docs/cli.md``; `tests/test_docs.py` fails when
the checked-in page and the commands disagree. Rendering is pure and deterministic: a fixed width,
no terminal, no environment, and commands in click's own (sorted) order.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import click

from .main import main

PROG = "leadersboard"
WIDTH = 100  # fixed, so the output does not depend on the terminal it is generated in
REGENERATE = "python -m leadersboard.cli.clidoc > docs/cli.md"

INTRO = f"""\
# Command-line reference

<!-- Generated from the click commands by `{REGENERATE}`; do not edit by hand. -->

Every `{PROG}` command, with the text its `--help` prints. Options that take an instance folder
(`--home`) default to `$LEADERSBOARD_HOME`, else `~/.leadersboard`; the configuration file and the
environment variables are described in [operating.md](operating.md).
"""


def _context(command: click.Command, name: str, parent: click.Context | None = None) -> click.Context:
    return click.Context(command, info_name=name, parent=parent, terminal_width=WIDTH, max_content_width=WIDTH)


def _walk(command: click.Command, ctx: click.Context) -> Iterator[tuple[click.Command, click.Context]]:
    """`command` and, for a group, every visible subcommand below it, depth first in sorted order."""
    yield command, ctx
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            yield from _walk(sub, _context(sub, name, ctx))


def _anchor(path: str) -> str:
    """The heading anchor GitHub and most Markdown renderers derive from `path`."""
    return path.lower().replace(" ", "-")


def render_cli_reference() -> str:
    """The Markdown page for every command of `leadersboard`, as `docs/cli.md` holds it."""
    entries = list(_walk(main, _context(main, PROG)))
    parts = [INTRO, "## Commands\n"]
    for command, ctx in entries[1:]:
        path = ctx.command_path
        summary = command.get_short_help_str(limit=WIDTH * 2)
        parts.append(f"- [`{path}`](#{_anchor(path)}) — {summary}" if summary else f"- [`{path}`](#{_anchor(path)})")
    parts.append("")
    for command, ctx in entries:
        parts.append(f"## {ctx.command_path}\n\n```\n{command.get_help(ctx).rstrip()}\n```\n")
    return "\n".join(parts).rstrip("\n") + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_cli_reference())
