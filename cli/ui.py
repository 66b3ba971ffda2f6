"""`mlops ui mlflow|prefect|monitoring`: the tools' web UIs on MLOPS_HOME's own stores.

Each runs the stack's service of `stack.services` (`stack.home_ui` swaps the stack's
databases for the home's) in place of this process, so Ctrl-C stops it. MLflow's and
Prefect's UIs show what the home holds: nothing is created in a home that has none.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from cli.common import fail, load_settings, prepare
from mlops.case_studies import CASE_STUDIES

if TYPE_CHECKING:
    from mlops.settings import Settings
    from stack.home_ui import HomeUi

ui_app = typer.Typer(help="Web UIs of the platform's tools.", no_args_is_help=True)

HostOption = Annotated[str, typer.Option(help="Address the UI binds.")]


def _run(settings: Settings, ui: HomeUi, title: str, host: str, port: int) -> NoReturn:
    """Replace this process with the UI's service, as the native stack would start it."""
    from stack.home_ui import home_ui
    from stack.processes import StackError, executable, process_environment

    try:
        run = home_ui(settings, ui, host=host, port=port)
        argv = [executable(run.service.command[0]), *run.service.command[1:]]
    except StackError as error:
        fail(str(error))
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    typer.echo(f"{title} on http://{shown}:{port} ({run.shows}; Ctrl-C stops)")
    os.execve(argv[0], argv, process_environment(run.service.environment))


@ui_app.command("mlflow")
def ui_mlflow(
    host: HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the MLflow UI.")] = 5000,
) -> None:
    """Start the MLflow UI on MLOPS_HOME's tracking store: runs, plots, the model registry."""
    _run(load_settings(), "mlflow", "MLflow UI", host, port)


@ui_app.command("prefect")
def ui_prefect(
    host: HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the Prefect UI.")] = 4200,
) -> None:
    """Start the Prefect server and UI on the flow runs recorded under MLOPS_HOME/prefect."""
    _run(load_settings(), "prefect", "Prefect UI", host, port)


@ui_app.command("monitoring")
def ui_monitoring(
    host: Annotated[str, typer.Option(help="Address the Evidently UI binds.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the Evidently UI.")] = 8001,
) -> None:
    """Start the Evidently UI on MLOPS_HOME/monitoring/workspace, a dashboard per model."""

    settings = prepare()
    from monitoring.workspace import ensure_project, open_workspace

    # Both projects exist before the first check, so the UI shows them from the start.
    workspace = open_workspace(settings)
    for study in CASE_STUDIES.values():
        ensure_project(workspace, study.model_name(settings))
    _run(settings, "monitoring", "Evidently UI", host, port)
