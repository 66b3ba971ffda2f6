"""The continuous-training loop end to end, with nothing manual between the steps.

A champion is served over real HTTP (uvicorn in a thread, following the alias every
second), simulated customers are sent to it, their labels delivered a billing cycle
later, and the monitoring flow runs:

- under a price rise (every bill 15% higher, churn twice as sensitive to price), the
  charges features and the score drift: the flow retrains on fresh data of that world,
  registers a challenger, the challenger test rescores the labelled traffic with both
  models and promotes the better one, the API answers with it and the walkthrough page
  shows it;
- with no drift, the same steps end in "nothing" and the champion stays.

Seeded throughout (simulators, splits, models, the drift sample, the bootstrap), so the
outcome is the same on every run. Each test works on a copy of the session's churn home:
the traffic, the labels and the registry changes stay there.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient
from prometheus_client import CollectorRegistry, generate_latest

from mlops.monitoring_results import MonitoringCollector
from mlops.prediction_log import read_predictions
from mlops.settings import Settings
from monitoring.decision_log import read_decisions
from pipelines.label_flow import ingest_labels
from pipelines.monitoring_flow import monitor_model
from reports.page import CHAMPION_META, page_file_name, page_version
from stack.traffic import run_traffic
from tests.helpers.live_api import live_api
from tests.helpers.runs import run_mlops

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Over 1,000 rows: enough for the drift tests to see a 15% price rise in the charges and
# in the score, and for the challenger test's comparison on the labelled rows.
RATE, DURATION_S, TRAFFIC_SEED = 300.0, 3.4, 43
DRIFT_SHARE_ALERT = 0.08


def _copy_home(churn_run: dict[str, Any], target: Path) -> Path:
    # MLflow's artifacts stay where the session's run put them (their URIs are absolute).
    skip = shutil.ignore_patterns(
        "prefect", "raw", "predictions.db*", "labels", "monitoring", "traffic"
    )
    shutil.copytree(Path(str(churn_run["home"])), target, ignore=skip)
    return target


def _serve_settings(home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.setenv("MLOPS_SERVED_MODELS", "churn")
    monkeypatch.setenv("MLOPS_MODEL_REFRESH_S", "1")
    monkeypatch.setenv("MLOPS_RETRAIN_CHURN_CUSTOMERS", "3000")
    # Declared for this world: a price rise moves 3 of the 35 features (the charges), and
    # a quiet window of this size shows a false drift in 2 by chance (tests at 5% each).
    monkeypatch.setenv("MLOPS_MONITOR_DRIFT_SHARE_ALERT", str(DRIFT_SHARE_ALERT))
    return Settings().prepare()


def _send_and_label(settings: Settings, url: str, scenario: str) -> int:
    sent = run_traffic(
        settings,
        "churn",
        scenario=scenario,
        rate=RATE,
        duration_s=DURATION_S,
        url=url,
        seed=TRAFFIC_SEED,
    )
    assert sent.statuses == {"200": sent.planned}, sent.statuses
    deadline = time.monotonic() + 30
    while len(read_predictions(settings.prediction_log_uri, model="churn")) < sent.planned:
        assert time.monotonic() < deadline, "the prediction log did not catch up"
        time.sleep(0.5)
    # A billing cycle later.
    delivered = ingest_labels(model="churn", until=datetime.now(UTC) + timedelta(days=31))
    assert delivered["joined"] == sent.planned
    return sent.planned


def _champion(settings: Settings) -> str:
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    return str(client.get_model_version_by_alias("churn", "champion").version)


def _decision_gauges(settings: Settings) -> str:
    registry = CollectorRegistry()
    registry.register(MonitoringCollector(settings.monitoring_dir))
    return generate_latest(registry).decode()


def test_drift_retrains_promotes_and_the_api_serves_the_new_champion(
    churn_run: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _serve_settings(_copy_home(churn_run, tmp_path / "home"), monkeypatch)
    assert _champion(settings) == "1"
    # A walkthrough page of the champion before (as the stack's bootstrap builds it).
    page = settings.report_pages_dir / page_file_name("churn")
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(f'<meta name="{CHAMPION_META}" content="1">the page of v1')
    with live_api(settings) as url:
        sent = _send_and_label(settings, url, "price_rise")
        monkeypatch.setenv("MLOPS_RETRAIN_CHURN_SCENARIO", "price_rise")
        summary = monitor_model(model="churn")

        decision = summary["decision"]
        assert decision["action"] == "retrain", decision["reasons"]
        evidence = decision["evidence"]
        assert evidence["current_rows"] == sent
        assert evidence["prediction_drifted"]
        assert {"monthly_charges", "avg_monthly_charges"} <= set(evidence["drifted_features"])
        assert evidence["labelled_rows"] == sent

        retrained = summary["retrain"]
        new_version = str(retrained["model_version"])
        assert new_version != "1"
        assert retrained["aliases"] == ["challenger"]
        assert "promotion gate not applied" in retrained["gate_reason"]

        verdict = summary["challenger_test"]
        assert verdict["challenger_version"] == new_version
        assert verdict["champion_version"] == "1"
        assert verdict["labelled_rows"] == sent
        assert verdict["latency_p99_ms"] <= settings.promotion_latency_budget_ms
        assert verdict["promoted"], verdict["reason"]
        assert verdict["challenger_metric"] > verdict["champion_metric"]
        assert _champion(settings) == new_version
        # The page is rebuilt for the new champion.
        assert summary["page"] == f"built v{new_version}"
        assert page_version(page) == new_version
        assert "the page of v1" not in page.read_text()

        # The API follows the alias: no restart, no reload call.
        deadline = time.monotonic() + 30
        with httpx.Client(base_url=url, timeout=10) as http:
            while http.get("/v1/churn/model").json()["version"] != new_version:
                assert time.monotonic() < deadline, "the API did not pick up the new champion"
                time.sleep(0.5)
            body = {"customer": _a_customer()}
            answer = http.post("/v1/churn/predict", json=body).json()
            assert answer["model"]["version"] == new_version

    logged = read_decisions(settings, "churn")
    assert [entry["decision"]["action"] for entry in logged] == ["retrain"]
    assert logged[0]["challenger_test"]["promoted"]
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    run = client.get_run(summary["mlflow_run_id"])
    assert run.data.tags["decision"] == "retrain"
    assert run.data.metrics["drift_share"] == pytest.approx(evidence["drift_share"])
    assert 'mlops_monitoring_decision{decision="retrain",model="churn"} 1.0' in (
        _decision_gauges(settings)
    )
    html = sorted((settings.monitoring_dir / "reports" / "churn").glob("*.html"))
    assert {path.name.rsplit("-", 1)[1] for path in html} == {
        "drift.html",
        "data_quality.html",
        "classification.html",
    }


def test_no_drift_ends_in_nothing_and_the_champion_stays(
    churn_run: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    prefect_api: str,
) -> None:
    home = _copy_home(churn_run, tmp_path / "home")
    settings = _serve_settings(home, monkeypatch)
    versions_before = _versions(settings)
    with live_api(settings) as url:
        _send_and_label(settings, url, "baseline")
    # As a user would: the command, in its own process.
    result = run_mlops("monitor", "churn", "--json", home=home, prefect_api=prefect_api)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["decision"]["action"] == "nothing", summary["decision"]["reasons"]
    assert "retrain" not in summary and "challenger_test" not in summary
    assert _versions(settings) == versions_before
    assert _champion(settings) == "1"
    # The next run reads only what came since: nothing yet, so it waits.
    again = run_mlops("monitor", "churn", "--json", home=home, prefect_api=prefect_api)
    assert again.returncode == 0, again.stderr[-3000:]
    waiting = json.loads(again.stdout.strip().splitlines()[-1])
    assert waiting["predictions"] == 0
    assert "waiting for more" in waiting["decision"]["reasons"][0]


def _versions(settings: Settings) -> list[str]:
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    return sorted(str(v.version) for v in client.search_model_versions("name='churn'"))


def _a_customer() -> dict[str, Any]:
    return {
        "gender": "Female",
        "SeniorCitizen": 0,
        "Partner": "Yes",
        "Dependents": "No",
        "tenure": 5,
        "PhoneService": "Yes",
        "MultipleLines": "No",
        "InternetService": "Fiber optic",
        "OnlineSecurity": "No",
        "OnlineBackup": "No",
        "DeviceProtection": "No",
        "TechSupport": "No",
        "StreamingTV": "Yes",
        "StreamingMovies": "Yes",
        "Contract": "Month-to-month",
        "PaperlessBilling": "Yes",
        "PaymentMethod": "Electronic check",
        "MonthlyCharges": 95.5,
        "TotalCharges": 480.0,
    }
