"""What every command shares: settings prepared for a run, one way to fail, one JSON option."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from mlops.case_studies import CASE_STUDIES, case_study
from mlops.settings import Settings, SettingsError, get_settings

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path


# The case studies of the registry, as a choice of `--help` and of validation.
CaseStudy = StrEnum("CaseStudy", {name: name for name in CASE_STUDIES})  # type: ignore[misc]


JsonOption = Annotated[bool, typer.Option("--json", help="End with one JSON summary line.")]

# Feast warns on every apply that on-demand views are "experimental"; they are used here
# on purpose, for online reads only (the offline features come from features.fraud_windows).
_KNOWN_NOISE = ("On demand feature view is an experimental feature",)
_show_warning = warnings.showwarning


def _hide_deprecations(
    message: Any, category: type[Warning], filename: str, *args: Any, **kwargs: Any
) -> None:
    if issubclass(category, DeprecationWarning) or any(n in str(message) for n in _KNOWN_NOISE):
        return
    # From 3.12 a library's module compiled on its first import warns about its own source
    # (evidently's invalid escape sequences): its authors' to fix, never the user's.
    if issubclass(category, SyntaxWarning) and "site-packages" in str(filename):
        return
    _show_warning(message, category, filename, *args, **kwargs)


def prepare() -> Settings:
    """The settings, with MLOPS_HOME's folders made and the tools pointed at them.

    Call it before Prefect is imported: Prefect reads its settings on import.
    """
    # The third-party stack warns about its own deprecations, which users cannot act on.
    # Some of those libraries install their own warning filters on import, so filtering
    # is not enough: deprecations are dropped where warnings are shown.
    warnings.showwarning = _hide_deprecations
    # MLflow logs its housekeeping at INFO ("Creating initial MLflow database tables...");
    # its warnings stay. Read when MLflow is imported, which a command does after this.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    settings = load_settings().prepare()
    # Prefect's temporary server can be slow to start on a busy 2-core machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    return settings


def load_settings() -> Settings:
    """The settings of the environment; a variable that cannot be used stops the command
    with one line naming it (exit 2), not a validation traceback."""
    try:
        return get_settings()
    except SettingsError as error:
        fail(f"settings: {error}")


def model_name(settings: Settings, choice: str) -> str:
    """The registered model of the case study a command was given."""
    return case_study(choice).model_name(settings)


def fail(message: str, code: int = 2) -> NoReturn:
    """Stop the command: `message` in red on stderr, exit `code` (2: the command cannot run)."""
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code)


def check_source(source: Path | None) -> None:
    """Stop at once (exit 2) on a source file that cannot be read, before a flow's imports
    and its run cost seconds; what is inside the file is the flow's to check."""
    from features.quarantine import UnusableSource
    from features.raw_files import check_source_path

    if source is None:
        return
    try:
        check_source_path(source)
    except UnusableSource as error:
        fail(f"cannot use {error.path}: {error.problem}")


def run_flow(flow: Callable[..., dict[str, Any]], **arguments: Any) -> dict[str, Any]:
    """Run a flow; a source that cannot be used is a message and exit code 2, not a trace."""
    from features.quarantine import UnusableSource

    try:
        return flow(**arguments)
    except UnusableSource as error:
        fail(f"cannot use {error.path}: {error.problem}")


def echo_json(summary: Mapping[str, Any]) -> None:
    """The one machine-readable line a `--json` command ends with."""
    typer.echo(json.dumps(summary, sort_keys=True, default=str))


def machine_line(figures: Mapping[str, Any], width: int) -> str:
    """The machine a benchmark ran on, and whether it was quiet enough to trust."""
    load = figures["load_avg_before"]
    quiet = "quiet" if load < 0.5 else "BUSY: figures are provisional"
    return f"  {'machine':<{width}} {figures['machine']}, load {load:.2f} ({quiet})"
