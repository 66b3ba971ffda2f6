"""Shared fixtures: every test gets a clean environment and its own MLOPS_HOME."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops.settings import Settings


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Drop the caller's MLOPS_*/MLFLOW_* variables and point MLOPS_HOME at a temp folder."""
    for key in list(os.environ):
        if key.startswith(("MLOPS_", "MLFLOW_")):
            monkeypatch.delenv(key)
    home = tmp_path / "mlops-home"
    monkeypatch.setenv("MLOPS_HOME", str(home))
    yield home


@pytest.fixture
def settings(isolated_env: Path) -> Settings:
    return Settings().prepare()


@pytest.fixture(scope="session")
def public_telco_csv() -> Path:
    """The public IBM Telco CSV. Not shipped (no data in git): put it at data/ or set TELCO_CSV."""
    default = Path(__file__).resolve().parents[1] / "data" / "WA_Fn-UseC_-Telco-Customer-Churn.csv"
    path = Path(os.environ.get("TELCO_CSV", default))
    if not path.is_file():
        pytest.skip(f"public Telco CSV not found at {path} (set TELCO_CSV to its path)")
    return path


# Big enough that the behavioural model tests are not at the mercy of sampling noise.
CHURN_RUN_CUSTOMERS = 3000


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One temporary Prefect server for the whole session (it takes 10-20 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def prefect_api(prefect_server: None) -> str:
    """The session server's API URL, for `mlops` commands run in their own process."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url, "the Prefect test harness did not set an API URL"
    return str(url)


@pytest.fixture(scope="session")
def churn_run(
    tmp_path_factory: pytest.TempPathFactory, prefect_server: None
) -> Iterator[dict[str, object]]:
    """The real churn flow, run once on small simulated data; tests read its stores.

    Returns the flow's summary plus `home`, the MLOPS_HOME it ran in.
    """
    from pipelines.churn_flow import churn_pipeline

    home = tmp_path_factory.mktemp("churn-run")
    with pytest.MonkeyPatch.context() as patch:
        for key in list(os.environ):
            if key.startswith(("MLOPS_", "MLFLOW_")):
                patch.delenv(key)
        patch.setenv("MLOPS_HOME", str(home))
        summary = churn_pipeline(customers=CHURN_RUN_CUSTOMERS, current_scenario="price_rise")
    yield {**summary, "home": home}


@pytest.fixture
def churn_settings(churn_run: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings pointing at the session's churn run, served as a churn-only API."""
    monkeypatch.setenv("MLOPS_HOME", str(churn_run["home"]))
    monkeypatch.setenv("MLOPS_SERVED_MODELS", "churn")
    return Settings()


def _require_service(name: str, host: str, port: int) -> None:
    """Skip when a service is absent, with the reason; under CI=true, fail instead."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as error:
        message = f"{name} is not reachable at {host}:{port} ({error})"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message}; CI=true requires it")
    pytest.skip(message)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database for one test (db 9 of the local server), emptied before and after."""
    import redis

    host, port = os.environ.get("TEST_REDIS_HOST", "127.0.0.1"), 6379
    _require_service("Redis", host, port)
    client = redis.Redis(host=host, port=port, db=9, socket_timeout=5)
    client.flushdb()
    yield f"{host}:{port},db=9"
    client.flushdb()
    client.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A SQLAlchemy URL into a fresh schema of the local `test` database, dropped after."""
    import uuid

    import sqlalchemy as sa

    host, port = os.environ.get("TEST_POSTGRES_HOST", "127.0.0.1"), 5432
    _require_service("PostgreSQL", host, port)
    server = f"postgresql+psycopg://postgres@{host}:{port}/test"
    schema = f"test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(server)
    with engine.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    # Tables created through this URL land in the schema: it comes first on the search path.
    yield f"{server}?options=-csearch_path%3D{schema}"
    with engine.begin() as connection:
        connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()
