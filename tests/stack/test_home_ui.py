"""`stack.home_ui`: each UI is the stack table's service, on the home's own stores."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mlops.settings import Settings
from stack.home_ui import NoStore, home_ui, prefect_database
from stack.mlflow_auth import without_auth
from stack.services import Service, Topology, service_table


def _table_service(settings: Settings, name: str, host: str, port: int) -> Service:
    """The service as `mlops stack up` would run it, bound to host:port."""
    native = Topology.native(settings, admin_token="", prefect_auth_string="")
    topology = replace(native, bind_host=host, ports={**native.ports, name: port})
    return service_table(topology)[name]


def test_mlflow_is_the_stacks_server_on_the_homes_sqlite_store(settings: Settings) -> None:
    (settings.home / "mlflow.db").touch()
    run = home_ui(settings, "mlflow", host="127.0.0.1", port=18250)
    table = _table_service(settings, "mlflow", "127.0.0.1", 18250)
    # The table's server without the stack's auth app: the home's store has no users.
    assert run.service.command == without_auth(table.command)
    assert run.service.command[:2] == ("mlflow", "server")
    assert "MLFLOW_AUTH_CONFIG_PATH" not in run.service.environment
    assert run.service.environment["MLFLOW_BACKEND_STORE_URI"] == settings.tracking_uri
    assert f"{settings.home}/mlartifacts" in run.service.command
    assert "postgresql" not in str(run.service.environment)


def test_prefect_is_the_stacks_server_on_the_homes_flow_runs(settings: Settings) -> None:
    prefect_database(settings).touch()
    run = home_ui(settings, "prefect", host="0.0.0.0", port=18251)
    table = _table_service(settings, "prefect-server", "0.0.0.0", 18251)
    assert run.service.command == table.command
    environment = run.service.environment
    assert environment["PREFECT_HOME"] == str(settings.prefect_home)
    assert environment["PREFECT_API_DATABASE_CONNECTION_URL"] == (
        f"sqlite+aiosqlite:///{prefect_database(settings)}"
    )
    assert "PREFECT_SERVER_API_AUTH_STRING" not in environment
    assert environment["PREFECT_UI_API_URL"] == "http://127.0.0.1:18251/api"
    assert home_ui(settings, "prefect", host="10.0.0.5", port=18251).service.environment[
        "PREFECT_UI_API_URL"
    ] == ("http://10.0.0.5:18251/api")


def test_monitoring_is_the_stacks_evidently_ui_on_the_workspace(settings: Settings) -> None:
    run = home_ui(settings, "monitoring", host="127.0.0.1", port=18252)
    assert (
        run.service.command == _table_service(settings, "evidently-ui", "127.0.0.1", 18252).command
    )
    assert str(settings.monitoring_dir / "workspace") in run.service.command


def test_a_home_without_the_store_says_what_to_run_first(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(NoStore, match=r"no MLflow database at .*mlops pipeline churn"):
        home_ui(settings, "mlflow", host="127.0.0.1", port=18250)
    with pytest.raises(NoStore, match=r"no Prefect database at .*prefect\.db"):
        home_ui(settings, "prefect", host="127.0.0.1", port=18251)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    with pytest.raises(NoStore, match="its UI is there"):
        home_ui(Settings(), "mlflow", host="127.0.0.1", port=18250)
