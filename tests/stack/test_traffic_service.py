"""The stack's traffic service: rounds of both models' traffic, baseline then drift, labels filed.

The loop runs against the real API (uvicorn in a thread) on a copy of the tiny demo's home,
which serves both champions and holds the fraud world to continue; its labels are then
delivered by the real label flow.
"""

from __future__ import annotations

import re
import secrets
import shutil
import threading
import urllib.request
from itertools import islice, pairwise
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from benchmarks.serving import free_port
from mlops.payment_stream import Payment, StreamKeys, stream_redis
from mlops.prediction_log import read_predictions
from mlops.settings import Settings
from sources.churn_simulator import simulate_customers
from stack.services import TRAFFIC_REDIS_PASSWORD_VAR, TRAFFIC_REDIS_USER
from stack.traffic import TrafficError
from stack.traffic_service import TrafficMetrics, TrafficPlan, serve_traffic, traffic_rounds
from tests.helpers.live_api import live_api
from tests.helpers.redis_server import own_redis

DRIFT = {"churn": "price_rise", "fraud": "spending_shift"}
COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def _plan(**changes: Any) -> TrafficPlan:
    values: dict[str, Any] = {
        "rate": 20.0,
        "round_s": 0.5,
        "drift_after_s": 1.0,
        "drift": DRIFT,
        "label_delay_s": 0.0,
    }
    return TrafficPlan(**(values | changes))


def test_the_switch_comes_at_the_first_round_past_the_delay() -> None:
    plan = _plan(round_s=30.0, drift_after_s=300.0)
    assert plan.drift_round == 10
    assert [plan.scenario("churn", k) for k in (0, 9, 10, 11)] == [
        "baseline",
        "baseline",
        "price_rise",
        "price_rise",
    ]
    assert _plan(drift_after_s=0.0).scenario("fraud", 0) == "spending_shift"
    assert _plan(drift_after_s=301.0, round_s=30.0).drift_round == 11


def test_fraud_goes_to_the_api_and_the_stream_in_turn_and_churn_to_the_api() -> None:
    alternate = _plan(fraud_to="alternate")
    assert [alternate.destination("fraud", k) for k in range(4)] == [
        "api",
        "stream",
        "api",
        "stream",
    ]
    assert {alternate.destination("churn", k) for k in range(4)} == {"api"}
    assert _plan().destination("fraud", 1) == "api"
    assert _plan(fraud_to="stream").destination("fraud", 0) == "stream"
    assert _plan(fraud_to="stream").destination("churn", 0) == "api"


def test_the_settings_make_the_plan(settings: Settings) -> None:
    plan = TrafficPlan.from_settings(
        settings.model_copy(
            update={"stack_traffic_drift_after_s": 60.0, "stack_traffic_fraud_scenario": "x"}
        ),
        round_s=20.0,
    )
    assert (plan.rate, plan.drift_round, plan.label_delay_s) == (2.0, 3, 120.0)
    assert plan.drift == {"churn": "price_rise", "fraud": "x"}
    assert plan.fraud_to == "alternate"
    with pytest.raises(TrafficError, match="unknown fraud scenario 'x'"):
        plan.check()


def test_turned_off_it_answers_its_metrics_and_sends_nothing(settings: Settings) -> None:
    off = settings.model_copy(update={"stack_traffic": False})
    port = free_port()
    stop = threading.Event()
    sent: list[int] = []
    # Nothing listens at the API's address: turned off, the service never calls it.
    thread = threading.Thread(
        target=lambda: sent.append(
            serve_traffic(off, stop, url="http://127.0.0.1:9", host="127.0.0.1", metrics_port=port)
        )
    )
    thread.start()
    try:
        text = ""
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    text = r.read().decode()
                break
            except OSError:
                stop.wait(0.1)
        assert "mlops_traffic_enabled 0.0" in text
    finally:
        stop.set()
        thread.join(10)
    assert sent == [0]


def _copy_home(home: Path, target: Path) -> Path:
    """The served stores and the fraud world; MLflow's artifacts stay where the run put them."""
    skip = shutil.ignore_patterns("prefect", "mlartifacts", "predictions.db*", "labels", "traffic")
    shutil.copytree(home, target, ignore=skip)
    return target


@pytest.mark.slow
def test_rounds_send_baseline_then_the_drift_and_their_labels_are_delivered(
    tiny_demo: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _copy_home(Path(tiny_demo["home"]), tmp_path / "home")
    monkeypatch.setenv("MLOPS_HOME", str(home))
    settings = Settings(model_refresh_s=0).prepare()
    plan = _plan()
    metrics = TrafficMetrics(enabled=True)
    with live_api(settings) as url:
        rounds = list(islice(traffic_rounds(settings, plan, url=url), 4))
    for done in rounds:
        metrics.record(done)

    assert [done.scenarios for done in rounds] == [
        {"churn": "baseline", "fraud": "baseline"},
        {"churn": "baseline", "fraud": "baseline"},
        DRIFT,
        DRIFT,
    ]
    for done in rounds:
        assert done.errors == {}
        for model, result in done.results.items():
            assert result.statuses == {"200": 10}, (done.number, model)
            assert result.scenario == done.scenarios[model]
            assert result.labels_filed == 10

    # Each round's churn customers are new (seed MLOPS_SEED + 1 + round) and drawn from
    # that round's world: the logged charges are the simulator's for that seed and scenario.
    logged = read_predictions(settings.prediction_log_uri, model="churn")
    for done in rounds:
        ours = logged[logged["request_id"].str.startswith(f"churn-{done.results['churn'].run_id}-")]
        expected = simulate_customers(
            10, seed=settings.seed + 1 + done.number, scenario=done.scenarios["churn"]
        )
        assert sorted(ours["monthly_charges"].round(2)) == sorted(
            expected["MonthlyCharges"].astype(float).round(2)
        )
    # Fraud continues one world: each round's payments come after the previous round's.
    fraud = [done.results["fraud"] for done in rounds]
    for before, after in pairwise(fraud):
        assert before.last_event is not None and after.first_event is not None
        assert pd.Timestamp(after.first_event) > pd.Timestamp(before.last_event)

    from prometheus_client import generate_latest

    exposed = generate_latest(metrics.registry).decode()
    churn_drifted = 'model="churn",scenario="price_rise",status="200",to="api"'
    assert f"mlops_traffic_requests_total{{{churn_drifted}}} 20.0" in exposed
    assert 'mlops_traffic_drifting{model="fraud"} 1.0' in exposed

    # Due at once (no delay): the label flow delivers every answered request's label.
    from pipelines.label_flow import ingest_labels

    for model in ("churn", "fraud"):
        delivered = ingest_labels(model=model)
        assert delivered["delivered"] == delivered["joined"] == 40, (model, delivered)
        assert delivered["pending"] == 0


def _compose_redis_arguments(passwords: dict[str, str]) -> tuple[str, ...]:
    """The options of docker-compose.yml's redis command, its secrets filled in."""
    command = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["redis"]["command"]
    assert command[0] == "redis-server"
    secret = re.compile(r"\$\{(\w+):\?[^}]*\}")
    return tuple(secret.sub(lambda m: passwords[m.group(1)], part) for part in command[1:])


@pytest.mark.slow
def test_stream_rounds_publish_as_the_traffic_user_of_compose_which_can_do_nothing_else(
    tiny_demo: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Redis started with compose's own options; the service's fraud rounds to the stream
    log in as its `traffic` user: each payment of the world lands once, and the user can
    neither read a stream, nor write elsewhere, nor delete."""
    import redis

    passwords = {
        "REDIS_PASSWORD": secrets.token_hex(12),
        TRAFFIC_REDIS_PASSWORD_VAR: secrets.token_hex(12),
    }
    home = _copy_home(Path(tiny_demo["home"]), tmp_path / "home")
    monkeypatch.setenv("MLOPS_HOME", str(home))
    with own_redis(tmp_path / "redis", _compose_redis_arguments(passwords)) as server:
        password = passwords[TRAFFIC_REDIS_PASSWORD_VAR]
        traffic_url = f"{server.url},username={TRAFFIC_REDIS_USER},password={password}"
        settings = Settings(stream_redis_url=traffic_url).prepare()
        plan = _plan(models=("fraud",), fraud_to="stream")
        # Nothing listens at the API's address: the payments go to the stream only.
        rounds = list(islice(traffic_rounds(settings, plan, url="http://127.0.0.1:9"), 2))

        for done in rounds:
            assert done.errors == {}
            assert done.destinations == {"fraud": "stream"}
            assert done.results["fraud"].statuses == {"200": 10}
            assert done.results["fraud"].labels_filed == 10
        keys = StreamKeys.of(settings)
        admin = redis.Redis(
            host="127.0.0.1", port=server.port, password=passwords["REDIS_PASSWORD"]
        )
        published = [
            Payment.from_fields(fields)
            for key in keys.all_payments()
            for _, fields in admin.xrange(key)
        ]
        ids = [payment.transaction_id for payment in published]
        assert len(ids) == len(set(ids)) == 20

        traffic = stream_redis(settings)
        refused = {
            "XRANGE": lambda: traffic.xrange(keys.payments(0)),
            "XADD decisions": lambda: traffic.xadd(keys.decisions, {"a": "1"}),
            "GET": lambda: traffic.get("any"),
            "DEL": lambda: traffic.delete(keys.payments(0)),
            "FLUSHALL": lambda: traffic.flushall(),
        }
        for name, command in refused.items():
            with pytest.raises(redis.exceptions.NoPermissionError):
                command()
                pytest.fail(f"the traffic user may {name}")
        assert sum(admin.xlen(key) for key in keys.all_payments()) == 20
        admin.close()
        traffic.close()
