"""The user-facing surface as data: the `mlops` command tree and the API's OpenAPI document.

Both were written to `tests/snapshots/*.json` before the packages were reorganised; the
tests in `tests/cli/test_command_tree.py` and `tests/serving/test_openapi_snapshot.py`
compare today's surface with them, so a move that changes a command, an option or a route
fails. Regenerate on purpose only: `UPDATE_SNAPSHOTS=1 uv run pytest
tests/cli/test_command_tree.py tests/serving/test_openapi_snapshot.py`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

SNAPSHOTS = Path(__file__).resolve().parent
# Wide and plain: the help text wraps and colours the same on every terminal.
_HELP_ENV = {
    "COLUMNS": "160",
    "TERM": "dumb",
    "NO_COLOR": "1",
    "_TYPER_FORCE_DISABLE_TERMINAL": "1",
}


def command_paths(app: typer.Typer) -> list[tuple[str, ...]]:
    """Every command and group of `app`, by its words (`("pipeline", "churn")`), root first."""
    paths: list[tuple[str, ...]] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        paths.append(path)
        if hasattr(command, "list_commands"):  # a group (Typer ships its own click)
            for name in command.list_commands(None):
                walk(command.get_command(None, name), (*path, name))

    walk(typer.main.get_command(app), ())
    return paths


def help_texts(app: typer.Typer, prog_name: str = "mlops") -> dict[str, str]:
    """`mlops <path> --help` of every command, as a user's terminal shows it, by path."""
    runner = CliRunner()
    texts = {}
    for path in command_paths(app):
        result = runner.invoke(app, [*path, "--help"], prog_name=prog_name, env=_HELP_ENV)
        assert result.exit_code == 0, result.output
        texts[" ".join(path)] = "\n".join(line.rstrip() for line in result.output.splitlines())
    return texts


def compare_or_update(name: str, current: Any) -> Any:
    """The snapshot `name`; with UPDATE_SNAPSHOTS=1 (and `current` given), `current` is
    written as it first."""
    path = SNAPSHOTS / f"{name}.json"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1" and current is not None:
        path.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    return json.loads(path.read_text())
