"""Shared fixtures: every test gets a clean environment and its own MLOPS_HOME."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops.settings import Settings


def use_home(patch: pytest.MonkeyPatch, home: Path) -> None:
    """Drop the caller's MLOPS_*/MLFLOW_* variables and point MLOPS_HOME at `home`."""
    for key in list(os.environ):
        if key.startswith(("MLOPS_", "MLFLOW_")):
            patch.delenv(key)
    patch.setenv("MLOPS_HOME", str(home))


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Drop the caller's MLOPS_*/MLFLOW_* variables and point MLOPS_HOME at a temp folder."""
    home = tmp_path / "mlops-home"
    use_home(monkeypatch, home)
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


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[str]:
    """One two-worker Dask LocalCluster for the session; yields its scheduler address.

    Workers are threads of the test process (processes=False): a real scheduler, real
    workers and real shuffles, without two more interpreters starting on a busy machine.
    """
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


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
        use_home(patch, home)
        summary = churn_pipeline(customers=CHURN_RUN_CUSTOMERS, current_scenario="price_rise")
    yield {**summary, "home": home}


@pytest.fixture
def churn_settings(churn_run: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings pointing at the session's churn run, served as a churn-only API."""
    monkeypatch.setenv("MLOPS_HOME", str(churn_run["home"]))
    monkeypatch.setenv("MLOPS_SERVED_MODELS", "churn")
    return Settings()


def run_mlops(
    *args: str, home: Path, prefect_api: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `mlops` in its own process, as a user would, on the session's Prefect server."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_"))}
    clean |= {"MLOPS_HOME": str(home), "PREFECT_API_URL": prefect_api, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env=clean,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def assert_same_probabilities(
    got: pd.DataFrame, want: pd.DataFrame, columns: tuple[str, str], *, tolerance: float
) -> None:
    """Two score files hold the same ids in the same order and probabilities within
    `tolerance`; `columns` names the id and the probability column."""
    ids, probability = columns
    assert list(got[ids]) == list(want[ids])
    np.testing.assert_allclose(got[probability], want[probability], atol=tolerance, rtol=0)


# Small, but long enough for the protocol: 30 days of window history before the four
# prequential folds (35 days before the final training week), then 7 + 7 + 7 days.
FRAUD_RUN_SIMULATION = {"n_customers": 300, "n_terminals": 600, "n_days": 70, "seed": 7}
FRAUD_RUN_TRAIN_START = "2018-05-20"
# Rows of the fraud run's file broken on purpose, by the rule each breaks.
FRAUD_RUN_BROKEN = {"TX_AMOUNT: not a number": 2, "TRANSACTION_ID: duplicate": 1}


@pytest.fixture(scope="session")
def fraud_run(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> dict[str, Any]:
    """`mlops pipeline fraud --source FILE --json`, run once as a user would, on a simulated
    file with a few broken rows. Returns the JSON summary plus `home` and `source`."""
    from sources.fraud_simulator import simulate_transactions, write_transactions

    home = tmp_path_factory.mktemp("fraud-run")
    frame = simulate_transactions(**FRAUD_RUN_SIMULATION)
    raw = frame.astype({"TX_AMOUNT": object})
    raw.loc[[5, 9], "TX_AMOUNT"] = ["-3.20", "lots"]
    raw.loc[12, "TRANSACTION_ID"] = raw.loc[11, "TRANSACTION_ID"]
    source = write_transactions(raw, home / "transactions.csv")
    result = run_mlops(
        "pipeline",
        "fraud",
        "--source",
        str(source),
        "--train-start",
        FRAUD_RUN_TRAIN_START,
        "--json",
        home=home,
        prefect_api=prefect_api,
        env={"MLOPS_FRAUD_SEARCH_TRIALS": "3", "MLOPS_SEED": "7"},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    summary: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return {**summary, "home": home, "source": source, "transactions": frame}


@pytest.fixture
def fraud_settings(fraud_run: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings pointing at the session's fraud run, served as a fraud-only API."""
    monkeypatch.setenv("MLOPS_HOME", str(fraud_run["home"]))
    monkeypatch.setenv("MLOPS_SERVED_MODELS", "fraud")
    return Settings()


def require_chromium() -> str:
    """Chromium's path; skip with the reason when it is absent, and under CI=true fail instead
    (`.ci/run` installs Debian's package)."""
    import shutil

    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{message}; CI=true requires it")
        pytest.skip(message)
    return found


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
