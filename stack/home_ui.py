"""The stack's UIs on one MLOPS_HOME's embedded stores: `mlops ui mlflow|prefect|monitoring`.

Without the stack, the platform keeps everything under MLOPS_HOME: MLflow tracks to
`<home>/mlflow.db` with artifacts beside it, each flow's temporary Prefect server records
its runs in `<home>/prefect/prefect.db` (PREFECT_HOME), and the Evidently workspace is
a folder. Each UI here is the stack's own service from `stack.services`, the same argv
and environment, with the stack's PostgreSQL databases swapped for the home's and bound
where asked.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from mlops.settings import Settings
from stack.mlflow_auth import AUTH_ENVIRONMENT, without_auth
from stack.processes import StackError
from stack.services import Service, Topology, ports_of, service_table

HomeUi = Literal["mlflow", "prefect", "monitoring"]

# Each UI's service in the stack's table.
SERVICES: dict[HomeUi, str] = {
    "mlflow": "mlflow",
    "prefect": "prefect-server",
    "monitoring": "evidently-ui",
}
# Addresses that mean "every interface": a browser reaches the server on loopback.
_WILDCARDS = ("0.0.0.0", "::", "")


class NoStore(StackError):
    """The home has none of the store a UI shows; the message says what to run first."""


@dataclass(frozen=True)
class HomeUiService:
    """A UI's service, ready to run on the home, and what it shows (for the user)."""

    service: Service
    shows: str


def prefect_database(settings: Settings) -> Path:
    """The database each flow's temporary Prefect server keeps under PREFECT_HOME."""
    return settings.prefect_home / "prefect.db"


def home_ui(settings: Settings, ui: HomeUi, *, host: str, port: int) -> HomeUiService:
    """The stack service of `ui`, bound to host:port, on the home's own store.

    Raises `NoStore` when the home has no such store yet, or when the settings point the
    tool at a server of its own (whose UI is that server's).
    """
    name = SERVICES[ui]
    # The UIs use no secret of the stack: the home's stores have none.
    topology = replace(
        Topology.native(settings, admin_token="", prefect_auth_string=""),
        bind_host=host,
        ports={**ports_of(settings), name: port},
    )
    service = service_table(topology)[name]
    environment = dict(service.environment)
    command = service.command
    if ui == "mlflow":
        environment["MLFLOW_BACKEND_STORE_URI"] = _mlflow_store(settings)
        shows = f"tracking store {settings.tracking_uri}"
        # The home's store has no users: the plain server, without the stack's auth app.
        command = without_auth(command)
        environment = {k: v for k, v in environment.items() if k not in AUTH_ENVIRONMENT}
    elif ui == "prefect":
        database = prefect_database(settings)
        if not database.is_file():
            raise NoStore(
                f"no Prefect database at {database}: no flow has run on this home yet "
                "(run `mlops demo` or `mlops pipeline churn` first)"
            )
        environment["PREFECT_API_DATABASE_CONNECTION_URL"] = f"sqlite+aiosqlite:///{database}"
        shows = f"flow runs of {database}"
        # The flows' temporary servers ran without a login; so does their UI.
        del environment["PREFECT_SERVER_API_AUTH_STRING"]
        browser_host = "127.0.0.1" if host in _WILDCARDS else host
        environment["PREFECT_UI_API_URL"] = f"http://{browser_host}:{port}/api"
    else:
        shows = f"workspace {settings.monitoring_dir / 'workspace'}"
    return HomeUiService(replace(service, command=command, environment=environment), shows)


def _mlflow_store(settings: Settings) -> str:
    uri = settings.tracking_uri
    if uri.startswith(("http://", "https://", "databricks")):
        raise NoStore(f"MLFLOW_TRACKING_URI is a tracking server ({uri}): its UI is there")
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///"))
        if not database.is_file():
            raise NoStore(
                f"no MLflow database at {database}: nothing was tracked on this home yet "
                "(run `mlops demo` or `mlops pipeline churn` first)"
            )
    return uri
