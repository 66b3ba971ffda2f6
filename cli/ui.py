"""`mlops ui monitoring`: the Evidently UI on the project's workspace, a dashboard per model."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from cli.common import fail, prepare
from mlops.case_studies import CASE_STUDIES

ui_app = typer.Typer(help="Web UIs of the platform's tools.", no_args_is_help=True)


def evidently_executable() -> Path | None:
    """The `evidently` CLI of this environment (beside its Python), else the one on PATH."""
    beside = Path(sys.executable).parent / "evidently"
    if beside.exists():
        return beside
    found = shutil.which("evidently")
    return Path(found) if found else None


@ui_app.command("monitoring")
def ui_monitoring(
    host: Annotated[str, typer.Option(help="Address the Evidently UI binds.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the Evidently UI.")] = 8001,
) -> None:
    """Start the Evidently UI on MLOPS_HOME/monitoring/workspace, a dashboard per model."""

    settings = prepare()
    from monitoring.workspace import ensure_project, open_workspace, workspace_dir

    # Both projects exist before the first check, so the UI shows them from the start.
    workspace = open_workspace(settings)
    for study in CASE_STUDIES.values():
        ensure_project(workspace, study.model_name(settings))
    executable = evidently_executable()
    if executable is None:
        fail("the evidently CLI is not installed here")
    folder = workspace_dir(settings)
    typer.echo(f"Evidently UI on http://{host}:{port} (workspace {folder}; Ctrl-C stops)")
    # No usage reports from a local tool: the platform reaches nothing but loopback.
    os.environ.setdefault("DO_NOT_TRACK", "1")
    command = [str(executable), "ui", "--workspace", str(folder), "--host", host]
    os.execv(executable, [*command, "--port", str(port)])
