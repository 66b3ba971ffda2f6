"""Parse an `mlops` command line the way the CLI would, without running it."""

from __future__ import annotations

from typing import Any

import typer

from cli.main import app


def parse_mlops(arguments: list[str]) -> Any:
    """Resolve and parse `mlops <arguments>` as the CLI would, without running it."""
    command: Any = typer.main.get_command(app)
    context = typer.Context(command, info_name="mlops")
    while hasattr(command, "list_commands"):  # a group: the next word names a command
        assert arguments, "a command group was called without a command"
        name, *arguments = arguments
        sub = command.get_command(context, name)
        assert sub is not None, f"`mlops` has no command {name!r}"
        command = sub
        context = typer.Context(command, info_name=name, parent=context)
    # Raises on an unknown option, a missing argument or a value of the wrong type.
    command.make_context(command.name or "", list(arguments), parent=context.parent)
    return command
