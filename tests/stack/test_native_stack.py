"""`mlops stack up`, both pipelines through it, predictions over HTTP, `mlops stack down`.

Against this machine's real PostgreSQL and Redis: fresh databases with a unique prefix and
an empty Redis database, dropped and flushed afterwards. The flows run as deployments on
the stack's Prefect worker, track to the MLflow server (runs in Postgres, artifacts served
by the server), publish to Feast (SQL registry in Postgres, online store in Redis); the API
serves both champions and logs its predictions to Postgres.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlops.settings import Settings
from stack.data_services import drop_databases
from tests.helpers.runs import FRAUD_RUN_SIMULATION, FRAUD_RUN_TRAIN_START
from tests.helpers.services import require_service

pytestmark = [pytest.mark.services, pytest.mark.slow]

POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
CHURN_CUSTOMERS = 400


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _empty_redis_db() -> int:
    import redis

    for db in range(10, 16):
        client = redis.Redis(host="127.0.0.1", port=6379, db=db, socket_timeout=5)
        try:
            if client.dbsize() == 0:
                return db
        finally:
            client.close()
    pytest.skip("no empty Redis database among 10-15 for the stack test")


@dataclass
class NativeStack:
    home: Path
    env: dict[str, str]  # what `mlops stack ...` runs with
    client: dict[str, str]  # `mlops stack env --json`: what a client of the stack uses
    prefix: str
    redis_db: int

    def mlops(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return _run([sys.executable, "-m", "cli", *args], self.env, timeout)

    def prefect(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        prefect = str(Path(sys.executable).parent / "prefect")
        return _run([prefect, *args], {**self.env, **self.client}, timeout)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.env['MLOPS_API_PORT']}"

    def database(self, name: str) -> str:
        return f"{POSTGRES_SERVER}/{self.prefix}{name}"


def _run(argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def native_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    """The stack up on fresh databases and free ports, once for this module's tests (each a
    step, in order: the pipelines first, `down` last); down and dropped afterwards."""
    import redis

    require_service("PostgreSQL", "127.0.0.1", 5432)
    require_service("Redis", "127.0.0.1", 6379)
    tmp_path = tmp_path_factory.mktemp("native-stack")
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    redis_db = _empty_redis_db()
    mlflow, prefect, worker, api, evidently, dask, dask_http, dask_worker = _free_ports(8)
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_", "PREFECT_"))
    }
    env = clean | {
        "MLOPS_HOME": str(tmp_path / "home"),
        "MLOPS_STACK_POSTGRES_URL": POSTGRES_SERVER,
        "MLOPS_STACK_DATABASE_PREFIX": prefix,
        "MLOPS_REDIS_URL": f"127.0.0.1:6379,db={redis_db}",
        "MLOPS_STACK_MLFLOW_PORT": str(mlflow),
        "MLOPS_STACK_PREFECT_PORT": str(prefect),
        "MLOPS_STACK_WORKER_PORT": str(worker),
        "MLOPS_API_PORT": str(api),
        "MLOPS_STACK_EVIDENTLY_PORT": str(evidently),
        "MLOPS_STACK_DASK_PORT": str(dask),
        "MLOPS_STACK_DASK_HTTP_PORT": str(dask_http),
        "MLOPS_STACK_DASK_WORKER_PORT": str(dask_worker),
        # Small and quick: the flows' own settings reach the worker's flow runs.
        "MLOPS_SEED": "7",
        "MLOPS_FRAUD_SEARCH_TRIALS": "3",
        "MLOPS_MODEL_REFRESH_S": "0",  # the test reloads by hand, through the admin endpoint
    }
    stack = NativeStack(tmp_path / "home", env, {}, prefix, redis_db)
    try:
        result = stack.mlops("stack", "up", "--no-bootstrap")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        client = stack.mlops("stack", "env", "--json")
        assert client.returncode == 0, client.stderr
        stack.client = json.loads(client.stdout)
        yield stack
    finally:
        stack.mlops("stack", "down", "--timeout", "10", timeout=300)
        drop_databases(Settings(stack_postgres_url=POSTGRES_SERVER, stack_database_prefix=prefix))
        redis.Redis(host="127.0.0.1", port=6379, db=redis_db).flushdb()


def _query(url: str, sql: str) -> list[Any]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.text(sql)))
    finally:
        engine.dispose()


def _pids(stack: NativeStack) -> dict[str, int]:
    state = json.loads((stack.home / "stack" / "state.json").read_text())
    return {name: entry["pid"] for name, entry in state.items()}


def test_both_pipelines_through_the_native_stack(native_stack: NativeStack) -> None:
    stack = native_stack
    status = json.loads(stack.mlops("stack", "status", "--json").stdout)
    states = {row["name"]: row["state"] for row in status}
    assert states == {
        "postgres": "external",
        "redis": "external",
        "mlflow": "healthy",
        "prefect-server": "healthy",
        "dask-scheduler": "healthy",
        "dask-worker": "healthy",
        "prefect-worker": "healthy",
        "api": "healthy",
        "evidently-ui": "healthy",
    }

    # The flows run as deployments on the stack's worker, not in this process.
    churn = stack.prefect(
        "deployment", "run", "churn_pipeline/churn",
        "--params", json.dumps({"customers": CHURN_CUSTOMERS}),
        "--watch", "--watch-timeout", "500",
    )  # fmt: skip
    assert churn.returncode == 0, churn.stdout[-3000:] + churn.stderr[-3000:]
    simulation = {
        "customers": FRAUD_RUN_SIMULATION["n_customers"],
        "terminals": FRAUD_RUN_SIMULATION["n_terminals"],
        "days": FRAUD_RUN_SIMULATION["n_days"],
    }
    periods = {"train_start": FRAUD_RUN_TRAIN_START}
    fraud = stack.prefect(
        "deployment", "run", "fraud_pipeline/fraud",
        "--params", json.dumps({"simulation": simulation, "periods": periods}),
        "--watch", "--watch-timeout", "500",
    )  # fmt: skip
    assert fraud.returncode == 0, fraud.stdout[-3000:] + fraud.stderr[-3000:]

    # MLflow: runs in Postgres, artifacts uploaded to the server, both models registered.
    runs = _query(stack.database("mlflow"), "SELECT artifact_uri FROM runs")
    assert runs and all(uri.startswith("mlflow-artifacts:/") for (uri,) in runs)
    models = _query(stack.database("mlflow"), "SELECT name FROM registered_models")
    assert {name for (name,) in models} == {"churn", "fraud"}
    assert not (stack.home / "mlflow.db").exists()
    # Feast: definitions in the SQL registry, features in this test's Redis database.
    views = _query(stack.database("feast"), "SELECT feature_view_name FROM feature_views")
    assert {"churn_customer_features", "fraud_customer_state", "fraud_terminal_state"} <= {
        name for (name,) in views
    }
    import redis

    assert redis.Redis(host="127.0.0.1", port=6379, db=stack.redis_db).dbsize() > 0
    # Prefect: both flow runs recorded by the server, through its auth.
    user, password = stack.client["PREFECT_API_AUTH_STRING"].split(":", 1)
    flow_runs = httpx.post(
        f"{stack.client['PREFECT_API_URL']}/flow_runs/filter", json={}, auth=(user, password)
    )
    assert flow_runs.status_code == 200
    assert sorted((r["state_type"], r["deployment_id"] is not None) for r in flow_runs.json()) == [
        ("COMPLETED", True),
        ("COMPLETED", True),
    ]
    assert (
        httpx.post(f"{stack.client['PREFECT_API_URL']}/flow_runs/filter", json={}).status_code
        == 401
    )

    # The API loads both champions when told to, and answers over HTTP.
    token = stack.client["MLOPS_ADMIN_TOKEN"]
    reload = httpx.post(
        f"{stack.api}/admin/reload", headers={"Authorization": f"Bearer {token}"}, timeout=120
    )
    assert reload.status_code == 200, reload.text
    assert {model: body["version"] for model, body in reload.json().items()} == {
        "churn": "1",
        "fraud": "1",
    }
    assert httpx.get(f"{stack.api}/health/ready", timeout=30).status_code == 200

    import pandas as pd

    from features.feature_repo.churn import CHURN_FEATURES_FILE
    from features.feature_repo.fraud import CUSTOMER_STATE_FILE

    features = stack.home / "features"
    customer_id = str(pd.read_parquet(features / CHURN_FEATURES_FILE)["customer_id"].iloc[-1])
    churn_answer = httpx.post(
        f"{stack.api}/v1/churn/predict", json={"customer_id": customer_id}, timeout=30
    )
    assert churn_answer.status_code == 200, churn_answer.text
    assert churn_answer.json()["feature_source"] == "online_store"
    card = pd.read_parquet(features / CUSTOMER_STATE_FILE).iloc[0]
    payment = {
        "customer_id": int(card["customer_id"]),
        "terminal_id": int(card["customer_tx_terminal_ids"][-1]),
        "amount": 42.5,
        "tx_datetime": "2018-06-10T12:00:00Z",  # after the 70 simulated days from 2018-04-01
    }
    fraud_answer = httpx.post(f"{stack.api}/v1/fraud/score", json=payment, timeout=30)
    assert fraud_answer.status_code == 200, fraud_answer.text
    assert fraud_answer.json()["model"] == {"name": "fraud", "version": "1"}

    # The prediction log is the stack's Postgres (written in batches, about every second).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        logged = _query(
            stack.database("predictions"),
            "SELECT model_name, count(*) FROM predictions GROUP BY model_name",
        )
        if len(logged) == 2:
            break
        time.sleep(0.5)
    assert dict(logged) == {"churn": 1, "fraud": 1}

    # The bootstrap (compose's one-shot) trains nothing once both models have a champion.
    bootstrap = _run(
        [sys.executable, "-m", "cli", "stack", "bootstrap"],
        {**stack.env, **stack.client},
        300,
    )
    assert bootstrap.returncode == 0, bootstrap.stderr[-3000:]
    assert bootstrap.stdout.count("not training again") == 2, bootstrap.stdout


# Steps that need the stack with both champions go here, between the pipelines and `down`.


def test_mlflow_lets_only_the_writer_register_or_move_an_alias(native_stack: NativeStack) -> None:
    """MLflow runs its basic-auth app: anonymous requests are 401, the API's reading user is
    refused every registry write (403), the flows' writing user may write."""
    from stack.mlflow_auth import READER, WRITER

    stack = native_stack
    registry = f"{stack.client['MLFLOW_TRACKING_URI']}/api/2.0/mlflow"
    secrets = json.loads((stack.home / "stack" / "secrets.json").read_text())
    reader = (READER, secrets["mlflow_reader_password"])
    writer = (WRITER, stack.client["MLFLOW_TRACKING_PASSWORD"])
    assert stack.client["MLFLOW_TRACKING_USERNAME"] == WRITER
    run_id = httpx.get(
        f"{registry}/registered-models/alias",
        params={"name": "churn", "alias": "champion"},
        auth=writer,
        timeout=30,
    ).json()["model_version"]["run_id"]
    register = {"name": "churn", "source": f"runs:/{run_id}/onnx", "run_id": run_id}
    move = {"name": "churn", "alias": "champion", "version": "1"}

    def answers(auth: tuple[str, str] | None) -> tuple[int, int, int]:
        with httpx.Client(auth=auth, timeout=30) as client:
            read = client.get(
                f"{registry}/registered-models/alias", params={"name": "churn", "alias": "champion"}
            )
            created = client.post(f"{registry}/model-versions/create", json=register)
            moved = client.post(f"{registry}/registered-models/alias", json=move)
        return read.status_code, created.status_code, moved.status_code

    assert answers(None) == (401, 401, 401)
    assert answers(("mlops-reader", "a-wrong-password")) == (401, 401, 401)
    assert answers(reader) == (200, 403, 403)
    # The writer may: it registers a version (left without an alias) and moves the alias
    # to where it already points.
    assert answers(writer) == (200, 200, 200)
    champion = httpx.get(f"{stack.api}/v1/churn/model", timeout=30).json()["version"]
    assert champion == "1"


def test_down_stops_every_process_the_stack_started(native_stack: NativeStack) -> None:
    """The module's last step: down stops every process the stack started, children included."""
    stack = native_stack
    pids = _pids(stack)
    down = stack.mlops("stack", "down")
    assert down.returncode == 0, down.stderr
    for name, pid in pids.items():
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid), f"{name} (pid {pid}) left"
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)
    status = json.loads(stack.mlops("stack", "status", "--json").stdout)
    assert {row["name"]: row["state"] for row in status if row["pid"] is None} == {
        "postgres": "external",
        "redis": "external",
        "mlflow": "stopped",
        "prefect-server": "stopped",
        "dask-scheduler": "stopped",
        "dask-worker": "stopped",
        "prefect-worker": "stopped",
        "api": "stopped",
        "evidently-ui": "stopped",
    }


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
