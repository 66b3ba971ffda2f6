"""Fixtures the tests of several folders share: every test gets a clean environment and its
own MLOPS_HOME; the session runs the Prefect server, the churn and fraud runs and a Dask
cluster once; PostgreSQL and Redis come fresh per test.

Fixtures one folder uses live in that folder's conftest.py; shared helper functions and
the runs' parameters in `tests/helpers/`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlops.settings import Settings
from tests.helpers.runs import (
    CHURN_RUN_CUSTOMERS,
    FRAUD_RUN_SIMULATION,
    FRAUD_RUN_TRAIN_START,
    isolated_home,
    run_mlops,
    use_home,
)
from tests.helpers.services import require_service


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
    with isolated_home(home):
        summary = churn_pipeline(customers=CHURN_RUN_CUSTOMERS, current_scenario="price_rise")
    yield {**summary, "home": home}


@pytest.fixture
def churn_settings(churn_run: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings pointing at the session's churn run, served as a churn-only API."""
    monkeypatch.setenv("MLOPS_HOME", str(churn_run["home"]))
    monkeypatch.setenv("MLOPS_SERVED_MODELS", "churn")
    return Settings()


@pytest.fixture(scope="session")
def fraud_run(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> dict[str, Any]:
    """`mlops pipeline fraud --source FILE --json`, run once as a user would, on a simulated
    file with a few broken rows. Returns the JSON summary plus `home`, `source` and
    `output` (what the command printed, stdout then stderr)."""
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
    output = result.stdout + result.stderr
    return {**summary, "home": home, "source": source, "transactions": frame, "output": output}


# `mlops demo`'s smallest run: the sizes the fraud protocol still accepts, two search trials.
TINY_DEMO_ARGS = ("--customers", "200", "--fraud-customers", "100", "--fraud-terminals", "200")


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> dict[str, Any]:
    """`mlops demo --no-serve --json` at a tiny size in a fresh home, run once as a user
    would: both summaries, `home`, and `seconds` (its wall time)."""
    import time

    home = tmp_path_factory.mktemp("tiny-demo")
    started = time.perf_counter()
    result = run_mlops(
        "demo",
        "--no-serve",
        "--json",
        *TINY_DEMO_ARGS,
        home=home,
        prefect_api=prefect_api,
        env={"MLOPS_FRAUD_SEARCH_TRIALS": "2"},
    )
    seconds = time.perf_counter() - started
    assert result.returncode == 0, result.stderr[-4000:]
    summary: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return {**summary, "home": home, "seconds": seconds}


@pytest.fixture
def fraud_settings(fraud_run: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings pointing at the session's fraud run, served as a fraud-only API."""
    monkeypatch.setenv("MLOPS_HOME", str(fraud_run["home"]))
    monkeypatch.setenv("MLOPS_SERVED_MODELS", "fraud")
    return Settings()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database for one test (db 9 of the local server), emptied before and after."""
    import redis

    host, port = os.environ.get("TEST_REDIS_HOST", "127.0.0.1"), 6379
    require_service("Redis", host, port)
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
    require_service("PostgreSQL", host, port)
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
