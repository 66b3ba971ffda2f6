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
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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
# Prometheus scrapes and evaluates the rules this often in the test (15 s in compose).
SCRAPE_INTERVAL_S = 2
# Prometheus and Alertmanager run when Debian's packages are installed (CI installs them).
OBSERVABILITY = "healthy" if shutil.which("prometheus") else "not installed"


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
    ports = _free_ports(11)
    mlflow, prefect, worker, api, evidently, dask, dask_http, dask_worker, stream = ports[:9]
    prometheus, alertmanager = ports[9:]
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
        "MLOPS_STREAM_METRICS_PORT": str(stream),
        "MLOPS_STACK_PROMETHEUS_PORT": str(prometheus),
        "MLOPS_STACK_ALERTMANAGER_PORT": str(alertmanager),
        "MLOPS_STACK_SCRAPE_INTERVAL_S": str(SCRAPE_INTERVAL_S),
        # Small and quick: the flows' own settings reach the worker's flow runs.
        "MLOPS_SEED": "7",
        "MLOPS_FRAUD_SEARCH_TRIALS": "3",
        "MLOPS_MODEL_REFRESH_S": "0",  # the test reloads by hand, through the admin endpoint
        # The steps drive their own traffic: no traffic service (it would start before any
        # champion exists and change what the checks read).
        "MLOPS_STACK_TRAFFIC": "false",
        # Nor scheduled checks or label runs: the steps run their own, and count flow runs.
        "MLOPS_STACK_MONITOR_INTERVAL_S": "3600",
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
        "stream-scorer": "healthy",
        "traffic": "off",
        "alertmanager": OBSERVABILITY,
        "prometheus": OBSERVABILITY,
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
    runs = flow_runs.json()
    ran = [r for r in runs if r["state_type"] != "SCHEDULED"]
    assert sorted((r["state_type"], r["deployment_id"] is not None) for r in ran) == [
        ("COMPLETED", True),
        ("COMPLETED", True),
    ]
    # The server's scheduler queued the monitoring and label deployments' next runs (hourly
    # here): with SQLAlchemy 2.1 it failed on each, and no schedule of the stack ever ran.
    scheduled = {r["deployment_id"] for r in runs if r["state_type"] == "SCHEDULED"}
    assert len(scheduled) == 4, runs
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

    # The bootstrap (compose's one-shot) trains nothing once both models have a champion
    # (its pages: tests/stack/test_bootstrap_pages.py).
    bootstrap = _run(
        [sys.executable, "-m", "cli", "stack", "bootstrap", "--no-pages"],
        {**stack.env, **stack.client},
        300,
    )
    assert bootstrap.returncode == 0, bootstrap.stderr[-3000:]
    assert bootstrap.stdout.count("not training again") == 2, bootstrap.stdout


# Steps that need the stack with both champions go here, between the pipelines and `down`.


def test_dashboards_and_alert_rules_have_data_and_the_drift_alert_reaches_the_api(
    native_stack: NativeStack,
) -> None:
    """Drifted churn traffic with its labels, a monitoring check, fraud traffic to the API and
    to the payments stream; then every expression of every provisioned Grafana dashboard
    and every series an alert rule reads has data in the stack's Prometheus, the drift alert
    fires through Alertmanager into the API's log, and the serving SLO alerts stay quiet."""
    if OBSERVABILITY != "healthy":
        pytest.skip(
            "Prometheus is not installed (apt-get install prometheus prometheus-alertmanager)"
        )
    stack = native_stack
    churn = stack.mlops(
        "simulate", "traffic", "--model", "churn", "--scenario", "price_rise",
        "--rate", "200", "--duration", "4", "--label-delay", "0", "--concurrency", "8",
    )  # fmt: skip
    assert churn.returncode == 0, churn.stdout[-2000:] + churn.stderr[-2000:]
    labels = _run(
        [sys.executable, "-m", "cli", "simulate", "labels", "--model", "churn"],
        {**stack.env, **stack.client}, 300,
    )  # fmt: skip
    assert labels.returncode == 0, labels.stdout[-2000:] + labels.stderr[-2000:]
    check = _run(
        [sys.executable, "-m", "cli", "monitor", "churn", "--dry-run", "--json"],
        {**stack.env, **stack.client}, 300,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-2000:]
    summary = json.loads(check.stdout.strip().splitlines()[-1])
    _evidently_panels_agree_with_the_decision_log(stack)
    fraud = stack.mlops(
        "simulate", "traffic", "--model", "fraud", "--rate", "40", "--duration", "3",
    )  # fmt: skip
    assert fraud.returncode == 0, fraud.stdout[-2000:] + fraud.stderr[-2000:]
    bad = httpx.post(f"{stack.api}/v1/fraud/score", json={"amount": "lots"}, timeout=30)
    assert bad.status_code == 422
    # More of the world's payments, on the payments stream: the stream scorer decides them.
    streamed = stack.mlops(
        "simulate", "traffic", "--model", "fraud", "--to", "stream",
        "--rate", "40", "--duration", "3",
    )  # fmt: skip
    assert streamed.returncode == 0, streamed.stdout[-2000:] + streamed.stderr[-2000:]

    prometheus = f"http://127.0.0.1:{stack.env['MLOPS_STACK_PROMETHEUS_PORT']}"
    time.sleep(3 * SCRAPE_INTERVAL_S)  # scraped after the last request, rules evaluated
    table = _dashboard_values(prometheus)
    print("\npanel values at the end of the run:")
    for where, _, values in table:
        print(f"  {where:<60} {values}")
    empty = [(where, expr) for where, expr, values in table if not values]
    assert not empty, f"panels without data: {empty}"
    for rule, operand, values in _rule_operand_values(prometheus):
        print(f"  rule {rule:<27} {operand[:70]:<70} {values}")
        assert values, f"{rule}: {operand} has no data"

    firing = _wait_for_alerts(prometheus, lambda a: a["state"] == "firing", timeout=60)
    drift = {a["labels"]["alertname"] for a in firing if a["labels"].get("model") == "churn"}
    decision = summary["decision"]["action"]
    assert decision in ("alert", "retrain"), summary["decision"]
    assert drift & {"ModelDataDrift", "ModelPredictionDrift"}, (summary, firing)
    every = httpx.get(f"{prometheus}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    serving = {"ApiErrorRatioHigh", "ApiLatencyP99OverBudget", "ApiSheddingLoad"}
    assert not serving & {a["labels"]["alertname"] for a in every}, every
    alertmanager = f"http://127.0.0.1:{stack.env['MLOPS_STACK_ALERTMANAGER_PORT']}"
    received = httpx.get(f"{alertmanager}/api/v2/alerts", timeout=10).json()
    assert drift <= {a["labels"]["alertname"] for a in received}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        inbox = httpx.get(f"{stack.api}/alerts", timeout=10).json()["alerts"]
        if drift <= {a["labels"]["alertname"] for a in inbox if a["status"] == "firing"}:
            break
        time.sleep(1)
    assert drift <= {a["labels"]["alertname"] for a in inbox}, inbox
    log = (stack.home / "stack" / "logs" / "api.log").read_text()
    assert any(f"alert firing {name}" in log for name in drift)
    print(f"decision {decision}; alerts fired: {sorted(drift)}")


def _evidently_panels_agree_with_the_decision_log(stack: NativeStack) -> None:
    """Each panel of the model's Evidently dashboard, read through the UI's own API (what
    its charts draw), shows the figures the decision log recorded for the same check."""
    from monitoring.decision_log import read_decisions
    from monitoring.workspace import DASHBOARD_PANELS

    (entry,) = read_decisions(Settings(home=stack.home), "churn")
    evidence = entry["decision"]["evidence"]
    ui = f"http://127.0.0.1:{stack.env['MLOPS_STACK_EVIDENTLY_PORT']}"
    projects = {p["name"]: p["id"] for p in httpx.get(f"{ui}/api/projects", timeout=30).json()}
    dashboard = httpx.get(f"{ui}/api/v2/dashboards/{projects['churn']}", timeout=30).json()
    kinds = {panel["title"]: panel["plot_params"]["plot_type"] for panel in dashboard["panels"]}
    assert list(kinds) == [title for _, title, _, _ in DASHBOARD_PANELS]
    # Bars: a line chart of one check labelled its only tick 0 for a share of 0.28.
    assert kinds["Share of drifted features"] == "bar"
    plotted: dict[str, dict[str, list[float]]] = {}
    for panel in dashboard["panels"]:
        filters = [
            {
                "tags": value.get("tags") or [],
                "metadata": value.get("metadata") or {},
                "metric": value["metric"],
                "metric_labels": value.get("metric_labels") or {},
            }
            for value in panel["values"]
        ]
        answer = httpx.post(
            f"{ui}/api/v2/snapshots/{projects['churn']}/data_series_batch",
            json={"series_filter": filters},
            timeout=30,
        )
        assert answer.status_code in (200, 201), answer.text
        series = answer.json()["series"]
        legends = [value["legend"] for value in panel["values"]]
        plotted[panel["title"]] = {}
        for one in series:
            plotted[panel["title"]].setdefault(legends[one["filter_index"]], []).extend(
                one["values"]
            )
    print("\nEvidently panels (one check):", json.dumps(plotted))
    assert plotted["Share of drifted features"]["drifted share"] == [
        pytest.approx(evidence["drift_share"])
    ]
    assert plotted["Prediction drift (drift score of the model's score)"]["score drift"] == [
        pytest.approx(evidence["prediction_drift_score"])
    ]
    assert plotted["Drifted features"]["drifted features"] == [len(evidence["drifted_features"])]
    assert plotted["Rows checked"]["rows"] == [evidence["current_rows"]]
    assert plotted["Labelled predictions"]["labelled rows"] == [evidence["labelled_rows"]]
    metrics = evidence["quality"]["metrics"]
    assert plotted["Quality on labelled predictions"]["ROC-AUC"] == [
        pytest.approx(metrics["roc_auc"])
    ]
    assert plotted["Quality on labelled predictions"]["average precision"] == [
        pytest.approx(metrics["average_precision"])
    ]


def _dashboard_values(prometheus: str) -> list[tuple[str, str, list[str]]]:
    """(panel, expression, values) of every target and variable of every dashboard, as
    `mlops stack panels` reads them."""
    from stack.dashboards import describe, panel_values

    return [
        (panel.where, panel.query, [describe([one]) for one in panel.series])
        for panel in panel_values(prometheus)
    ]


def _rule_operand_values(prometheus: str) -> list[tuple[str, str, list[str]]]:
    """(alert, operand, values) of what every alert rule compares with its threshold."""
    from tests.helpers.dashboards import RULES, rule_operands

    rows = []
    for group in RULES["groups"]:
        for rule in group["rules"]:
            for operand in rule_operands(rule["expr"]):
                result = _instant(prometheus, operand)
                rows.append((rule["alert"], operand, _values(result)))
    return rows


def _values(result: list[Any]) -> list[str]:
    return [
        f"{','.join(v for k, v in sorted(r['metric'].items()) if k != '__name__')}"
        f"={float(r['value'][1]):.4g}"
        for r in result
    ]


def _instant(prometheus: str, query: str) -> list[Any]:
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": query}, timeout=30)
    assert answer.status_code == 200, (query, answer.text)
    result: list[Any] = answer.json()["data"]["result"]
    return result


def _wait_for_alerts(prometheus: str, wanted: Any, timeout: float) -> list[Any]:
    deadline = time.monotonic() + timeout
    alerts: list[Any] = []
    while time.monotonic() < deadline:
        alerts = httpx.get(f"{prometheus}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
        if [a for a in alerts if wanted(a)]:
            break
        time.sleep(1)
    return [a for a in alerts if wanted(a)]


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
    # A model that does not exist has no champion, to either user; the auth app answers
    # its alias with 403 rather than 404 (the bootstrap asks before training).
    from mlflow import MlflowClient

    from mlops.registry import champion_version

    for user, password in (reader, writer):
        with _mlflow_user(user, password):
            client = MlflowClient(tracking_uri=stack.client["MLFLOW_TRACKING_URI"])
            assert champion_version(client, "no-such-model") is None
            assert champion_version(client, "churn") == "1"


def test_a_version_changed_after_registration_is_refused_while_the_champion_answers(
    native_stack: NativeStack, tmp_path: Path
) -> None:
    """The writer registers a version as training does, with its files' digests, then its
    ONNX file is replaced in MLflow's artifact store and the alias moved to it: the API
    refuses to load it (the digest differs) and v1 answers every request meanwhile."""
    import threading

    import pandas as pd
    from mlflow import MlflowClient

    from features.feature_repo.churn import CHURN_FEATURES_FILE
    from mlops.names import CHAMPION
    from tests.helpers.tampering import register_then_tamper

    stack = native_stack
    uri = stack.client["MLFLOW_TRACKING_URI"]
    token = stack.client["MLOPS_ADMIN_TOKEN"]
    features = pd.read_parquet(stack.home / "features" / CHURN_FEATURES_FILE)
    customer = {"customer_id": str(features["customer_id"].iloc[0])}
    statuses: list[int] = []
    versions: set[str] = set()
    stop = threading.Event()

    def clients() -> None:
        with httpx.Client(base_url=stack.api, timeout=30) as client:
            while not stop.is_set():
                answer = client.post("/v1/churn/predict", json=customer)
                statuses.append(answer.status_code)
                if answer.status_code == 200:
                    versions.add(answer.json()["model"]["version"])

    with _mlflow_user(
        stack.client["MLFLOW_TRACKING_USERNAME"], stack.client["MLFLOW_TRACKING_PASSWORD"]
    ):
        client = MlflowClient(tracking_uri=uri)
        champion = client.get_model_version_by_alias("churn", CHAMPION)
        experiment = client.get_experiment_by_name("churn")
        assert experiment is not None
        run = client.create_run(experiment.experiment_id)
        tampered = register_then_tamper(client, uri, "churn", champion, run.info.run_id, tmp_path)
        loop = threading.Thread(target=clients)
        loop.start()
        try:
            client.set_registered_model_alias("churn", CHAMPION, tampered)
            reload = httpx.post(
                f"{stack.api}/admin/reload",
                headers={"Authorization": f"Bearer {token}"},
                timeout=120,
            )
        finally:
            client.set_registered_model_alias("churn", CHAMPION, champion.version)
            stop.set()
            loop.join(30)
    assert reload.status_code == 502, reload.text
    assert "DigestMismatch" in reload.text or "digest" in reload.text.lower(), reload.text
    model = httpx.get(f"{stack.api}/v1/churn/model", timeout=30).json()
    assert model["version"] == "1"
    assert model["last_load_error"]["version"] == tampered
    assert statuses and set(statuses) == {200}, sorted(set(statuses))
    assert versions == {"1"}


@contextmanager
def _mlflow_user(user: str, password: str) -> Iterator[None]:
    """MLflow's client reads its user from the environment: this one, for the block."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = user, password
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


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
        "stream-scorer": "stopped",
        "traffic": "off",
        **{name: OBSERVABILITY.replace("healthy", "stopped") for name in OBSERVABILITY_NAMES},
    }


OBSERVABILITY_NAMES = ("alertmanager", "prometheus")


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
