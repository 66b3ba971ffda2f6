"""Simulated traffic over real HTTP to a live API, and the delivery of its delayed labels.

The API runs in-process under uvicorn on a free port, on a copy of the session's trained
home (the traffic writes predictions, labels and online state that other tests must not
see). The fraud test runs the commands as a user would, in their own process.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.fraud_schema import CUSTOMER_ID, TERMINAL_ID, TX_AMOUNT, TX_DATETIME, TX_FRAUD
from features.fraud_windows import FRAUD_FEATURES, fraud_window_features
from features.quarantine import QUARANTINE_REASON
from mlops.prediction_log import read_predictions
from mlops.settings import Settings
from monitoring import labels
from sources.fraud_world import fraud_history, fraud_payments
from stack.traffic import run_traffic
from tests.helpers.live_api import live_api
from tests.helpers.runs import run_mlops

pytestmark = pytest.mark.slow

# The rows the fraud_run fixture broke in its file (the pipeline quarantined them).
FRAUD_RUN_BROKEN_ROWS = [5, 9, 12]


def _copy_home(home: Path, target: Path) -> Path:
    """The stores a served model needs; MLflow's artifacts stay where the run put them."""
    skip = shutil.ignore_patterns("prefect", "raw", "mlartifacts", "predictions.db*", "labels")
    shutil.copytree(home, target, ignore=skip)
    return target


def _served_settings(home: Path, monkeypatch: pytest.MonkeyPatch, model: str) -> Settings:
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.setenv("MLOPS_SERVED_MODELS", model)
    return Settings(model_refresh_s=0).prepare()


@pytest.fixture
def churn_home(churn_run: dict[str, Any], tmp_path: Path) -> Path:
    return _copy_home(Path(str(churn_run["home"])), tmp_path / "churn-home")


def test_churn_traffic_lands_in_the_log_drifts_and_gets_its_labels_when_due(
    churn_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _served_settings(churn_home, monkeypatch, "churn")
    with live_api(settings) as url:
        runs = {
            scenario: run_traffic(
                settings, "churn", scenario=scenario, rate=200, duration_s=0.2, url=url, seed=3
            )
            for scenario in ("baseline", "price_rise")
        }
    for result in runs.values():
        assert result.statuses == {"200": 40}
        assert result.labels_filed == 40

    logged = read_predictions(settings.prediction_log_uri, model="churn").set_index("request_id")
    charges = {}
    for scenario, result in runs.items():
        ours = logged[logged.index.str.startswith(f"churn-{result.run_id}-")]
        assert len(ours) == 40
        assert ours["customer_id"].isna().all()  # scored by raw fields, not by id
        charges[scenario] = ours["monthly_charges"].to_numpy()
    # The same customers (same seed), every bill 15% higher, rounded to the nickel.
    assert np.mean(charges["price_rise"]) / np.mean(charges["baseline"]) == pytest.approx(
        1.15, abs=0.01
    )

    # A label file of another system, with rows that break the contract.
    feed = labels.feed_dir(settings.home, "churn")
    now = datetime.now(UTC)
    labels.write_feed(
        feed,
        "hand-made",
        pd.DataFrame(
            {
                "request_id": ["h1", "h2"],
                "entity_id": ["c", ""],
                "event_time": [now, now],
                "due_at": [now, now],
                "label": [2, 1],
            }
        ),
    )
    from pipelines.label_flow import ingest_labels

    # A billing cycle after the traffic, nothing but the hand-made rows is due yet.
    early = ingest_labels(model="churn")
    assert early["delivered"] == 2
    assert early["rows_quarantined"] == 2
    assert early["quarantined[label: not 0 or 1]"] == 1
    assert early["quarantined[entity_id: missing]"] == 1
    quarantined = pd.read_csv(early["quarantine_file"], dtype=str)
    assert sorted(quarantined[QUARANTINE_REASON]) == ["entity_id: missing", "label: not 0 or 1"]
    assert early["pending"] == 80
    assert labels.labelled_predictions(settings.prediction_log_uri, "churn").empty

    summary = ingest_labels(model="churn", until=now + timedelta(days=31))
    assert summary["delivered"] == summary["stored"] == summary["joined"] == 80
    assert summary["pending"] == 0
    joined = labels.labelled_predictions(settings.prediction_log_uri, "churn")
    assert len(joined) == 80
    from stack.traffic import churn_plan

    for scenario, result in runs.items():
        truth = {r.request_id: r.label for r in churn_plan(40, scenario, 3, result.run_id)}
        ours = joined[joined["request_id"].isin(truth)]
        assert dict(zip(ours["request_id"], ours["label"], strict=True)) == truth
    assert 0 < joined["label"].sum() < 80


def _probe_features(settings: Settings, probes: pd.DataFrame) -> pd.DataFrame:
    """The online features of payments that are not recorded: what the store would serve."""
    from features.store import feature_store
    from serving.fraud_features import FraudOnlineFeatures

    online = FraudOnlineFeatures(feature_store(settings))
    rows = [
        online.row(
            int(p[CUSTOMER_ID]),
            int(p[TERMINAL_ID]),
            p[TX_DATETIME].to_pydatetime(),
            float(p[TX_AMOUNT]),
            FRAUD_FEATURES,
        )
        for _, p in probes.iterrows()
    ]
    return pd.DataFrame(np.vstack(rows).astype(np.float64), columns=list(FRAUD_FEATURES))


def test_fraud_traffic_continues_the_history_and_its_labels_rewrite_the_online_terminals(
    fraud_run: dict[str, Any], prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from features.store import feature_store, publish_fraud_state

    home = _copy_home(Path(fraud_run["home"]), tmp_path / "fraud-home")
    settings = _served_settings(home, monkeypatch, "fraud")
    history = fraud_run["transactions"].drop(index=FRAUD_RUN_BROKEN_ROWS).reset_index(drop=True)
    # Other tests record payments in the session's online store: start from the published one.
    publish_fraud_state(
        feature_store(settings),
        settings,
        history,
        as_of=pd.Timestamp(fraud_run["online_state_as_of"]),
    )
    source = Path(fraud_run["source"])
    expected = fraud_payments(fraud_history(settings, source), 60, "new_fraud_pattern", seed=7)
    assert expected[TX_DATETIME].min() > history[TX_DATETIME].max()
    assert expected["TRANSACTION_ID"].min() > history["TRANSACTION_ID"].max()

    env = {"MLOPS_SEED": "7"}
    with live_api(settings) as url:
        sent = run_mlops(
            *("simulate", "traffic", "--model", "fraud", "--scenario", "new_fraud_pattern"),
            *("--rate", "60", "--duration", "1", "--url", url, "--history", str(source), "--json"),
            home=home,
            prefect_api=prefect_api,
            env=env,
        )
    assert sent.returncode == 0, sent.stderr[-3000:]
    result = json.loads(sent.stdout.strip().splitlines()[-1])
    assert result["statuses"] == {"200": 60}

    feed = pd.read_csv(result["feed"], dtype=str)
    assert feed[labels.ENTITY_ID].astype(int).tolist() == expected["TRANSACTION_ID"].tolist()
    assert feed[labels.LABEL].astype(int).tolist() == expected[TX_FRAUD].tolist()
    assert expected[TX_FRAUD].sum() >= 1, "no fraud among the served payments: nothing to test"
    logged = read_predictions(settings.prediction_log_uri, model="fraud")
    assert sorted(logged["request_id"]) == sorted(feed[labels.REQUEST_ID])
    # Logged in the order they were answered, which concurrency may shuffle a little.
    assert sorted(logged["transaction_id"]) == expected["TRANSACTION_ID"].tolist()

    # Payments a week after the traffic, at every terminal that served a fraud.
    last = expected[TX_DATETIME].max()
    fraud_terminals = expected.loc[expected[TX_FRAUD] == 1, TERMINAL_ID].unique()
    probes = pd.DataFrame(
        {
            "TRANSACTION_ID": 10**8 + np.arange(len(fraud_terminals)),
            TX_DATETIME: last + timedelta(days=7, seconds=1),
            CUSTOMER_ID: int(expected[CUSTOMER_ID].iloc[0]),
            TERMINAL_ID: fraud_terminals,
            TX_AMOUNT: 12.5,
            TX_FRAUD: 0,
            "TX_FRAUD_SCENARIO": 0,
        }
    )
    labelled = pd.concat([history, expected[history.columns], probes], ignore_index=True)
    offline = fraud_window_features(labelled).iloc[-len(probes) :].reset_index(drop=True)
    offline = offline[list(FRAUD_FEATURES)].astype(np.float64)
    before = _probe_features(settings, probes)
    assert (before["terminal_risk_1d"] < offline["terminal_risk_1d"]).all()  # still pending

    # Half-way through the week after the traffic's first payment: only the labels due.
    halfway = expected[TX_DATETIME].iloc[30] + timedelta(days=7)
    partial = run_mlops(
        *("simulate", "labels", "--model", "fraud", "--until", halfway.isoformat(), "--json"),
        home=home,
        prefect_api=prefect_api,
        env=env,
    )
    assert partial.returncode == 0, partial.stderr[-3000:]
    first = json.loads(partial.stdout.strip().splitlines()[-1])
    due = int((expected[TX_DATETIME] + timedelta(days=7) <= halfway).sum())
    assert first["delivered"] == first["stored"] == first["joined"] == due
    assert first["pending"] == 60 - due
    assert first["rows_quarantined"] == 0

    from pipelines.label_flow import ingest_labels

    rest = ingest_labels(model="fraud", until=last + timedelta(days=7))
    assert rest["delivered"] == 60 - due
    assert rest["pending"] == 0
    assert rest["frauds_not_online"] == 0
    after = _probe_features(settings, probes)
    # Serving hands the model float32: equal to float32 precision, on every feature.
    pd.testing.assert_frame_equal(after, offline, check_exact=False, rtol=1e-6, atol=1e-6)

    joined = labels.labelled_predictions(settings.prediction_log_uri, "fraud")
    truth = dict(zip(expected["TRANSACTION_ID"], expected[TX_FRAUD], strict=True))
    assert [truth[t] for t in joined["transaction_id"]] == joined["label"].tolist()
