"""Fraud training on a small simulation, with a real MLflow registry under MLOPS_HOME.

One module-scoped run trains and registers a champion; a second run on shuffled training
labels must lose the gate. The simulation is small (300 customers) but long enough for the
protocol: 14 days of window history, then the 4 prequential folds (35 days before the
final training week) and the final 7 + 7 + 7 days block: 70 days from 2018-04-01, final
training week from 2018-05-20.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.metrics import average_precision_score

from features.fraud_schema import TX_AMOUNT, TX_DATETIME, TX_FRAUD
from features.fraud_windows import FRAUD_FEATURES, fraud_window_features
from mlops.model_bundle import download_bundle
from mlops.onnx_scorer import OnnxScorer
from mlops.settings import Settings
from sources.fraud_simulator import simulate_transactions
from tests.helpers.runs import isolated_home
from training import tracking
from training.fraud_metrics import SCORE_COLUMN, choose_cost_threshold
from training.fraud_models import IMBALANCE
from training.fraud_splits import handbook_split, split_frame
from training.fraud_train import (
    ANOMALY_ONLY,
    CARD_PRECISION,
    VALIDATION_SCORES_ARTIFACT,
    train_fraud,
)
from training.train import TrainingResult

pytestmark = pytest.mark.slow

SPLIT = handbook_split(start="2018-05-20")
TRIALS = 3
# 2 families x 4 imbalance strategies, the anomaly score alone, XGBoost + anomaly, tuned.
VARIANTS = 2 * len(IMBALANCE) + 3


@dataclass(frozen=True)
class Trained:
    settings: Settings
    frame: pd.DataFrame
    first: TrainingResult
    second: TrainingResult


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    home = tmp_path_factory.mktemp("fraud-train")
    with isolated_home(home):
        settings = Settings().prepare()
        transactions = simulate_transactions(
            n_customers=300, n_terminals=600, n_days=70, start="2018-04-01", seed=5
        )
        frame = transactions.join(fraud_window_features(transactions)[list(FRAUD_FEATURES)])
        tracking.use_experiment(settings, "fraud-test")
        with mlflow.start_run(run_name="first"):
            first = train_fraud(frame, SPLIT, settings, n_trials=TRIALS)
        # Labels shuffled before the test period: a model that learnt nothing.
        rng = np.random.default_rng(0)
        noise = frame.copy()
        before_test = (noise[TX_DATETIME] < SPLIT.test_start).to_numpy()
        noise.loc[before_test, TX_FRAUD] = rng.permutation(noise.loc[before_test, TX_FRAUD])
        with mlflow.start_run(run_name="second"):
            second = train_fraud(noise, SPLIT, settings, n_trials=1)
        yield Trained(settings, frame, first, second)


def _children(settings: Settings, parent_run_id: str) -> pd.DataFrame:
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
    )
    assert isinstance(runs, pd.DataFrame)
    return runs


def test_every_variant_and_trial_is_a_nested_run(trained: Trained) -> None:
    runs = _children(trained.settings, trained.first.parent_run_id)
    names = runs["tags.mlflow.runName"]

    trials = runs[names.str.startswith("trial-")]
    assert len(trials) == TRIALS
    assert len(runs) == VARIANTS + TRIALS
    assert {f"logistic_{i}" for i in IMBALANCE} | {f"xgboost_{i}" for i in IMBALANCE} <= set(names)
    assert ANOMALY_ONLY in set(names)
    assert names.str.endswith("+anomaly").sum() == 1
    assert names.str.endswith("_tuned").sum() == 1
    variants = runs[~names.str.startswith("trial-")]
    for metric in ("prequential_average_precision", "prequential_roc_auc"):
        assert runs[f"metrics.{metric}"].notna().all(), metric
    assert variants[f"metrics.prequential_{CARD_PRECISION}"].notna().all()
    assert variants[f"metrics.test_{CARD_PRECISION}"].notna().all()
    assert variants["params.imbalance"].notna().sum() == VARIANTS - 1  # all but the forest


def test_summary_reports_the_test_metrics_and_threshold(trained: Trained) -> None:
    summary = trained.first.summary()
    for key in ("roc_auc", "average_precision", CARD_PRECISION, "expected_cost", "threshold"):
        assert key in summary["test_metrics"], key
    assert CARD_PRECISION == "card_precision_at_100"
    assert summary["threshold"] == summary["test_metrics"]["threshold"]
    assert summary["search_trials_run"] == TRIALS


def test_first_version_is_champion_and_its_onnx_scores_like_the_native_model(
    trained: Trained,
) -> None:
    settings, result = trained.settings, trained.first
    assert result.aliases == ["champion"]
    bundle = download_bundle(
        settings.tracking_uri, settings.fraud_model_name, settings.models_dir, alias="champion"
    )
    assert bundle.version == result.version
    assert bundle.meta.feature_names == list(FRAUD_FEATURES)

    _, test = split_frame(trained.frame, SPLIT)
    rows = test[list(FRAUD_FEATURES)].to_numpy(np.float32)
    exported = OnnxScorer(bundle.onnx_path).predict_proba(rows)
    # The registered native model, reloaded: what parity must hold against.
    loaded = _native_model(settings, result.version)
    assert np.abs(exported - loaded.predict_proba(rows)[:, 1]).max() <= settings.parity_tolerance
    assert result.parity_max_abs_diff <= settings.parity_tolerance


def test_threshold_is_the_cost_choice_on_validation_scores_not_test(trained: Trained) -> None:
    settings, result = trained.settings, trained.first
    bundle = download_bundle(
        settings.tracking_uri, settings.fraud_model_name, settings.models_dir, alias="champion"
    )
    path = mlflow.artifacts.download_artifacts(
        run_id=bundle.run_id, artifact_path=VALIDATION_SCORES_ARTIFACT
    )
    validation = pd.read_parquet(path)
    assert (validation[TX_DATETIME] < SPLIT.train_end).all(), "validation rows from the future"
    costs = {
        "cost_missed_fraud": settings.fraud_cost_missed_fraud,
        "cost_false_alarm": settings.fraud_cost_false_alarm,
    }
    on_validation = choose_cost_threshold(validation[TX_FRAUD], validation[SCORE_COLUMN], **costs)
    assert bundle.meta.threshold == on_validation == result.summary()["threshold"]


def test_winner_beats_a_trivial_scorer_on_average_precision(trained: Trained) -> None:
    _, test = split_frame(trained.frame, SPLIT)
    by_amount = average_precision_score(test[TX_FRAUD], test[TX_AMOUNT])
    assert trained.first.test_metrics["average_precision"] > by_amount
    assert trained.first.test_metrics["average_precision"] > test[TX_FRAUD].mean()


def test_a_worse_model_becomes_challenger(trained: Trained) -> None:
    settings, first, second = trained.settings, trained.first, trained.second
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    name = settings.fraud_model_name

    assert second.aliases == ["challenger"], second.gate.reason
    assert not second.gate.promoted
    assert second.gate.champion_version == first.version
    assert "average_precision" in second.gate.reason
    assert str(client.get_model_version_by_alias(name, "champion").version) == first.version
    assert str(client.get_model_version_by_alias(name, "challenger").version) == second.version


def _native_model(settings: Settings, version: str) -> Any:
    uri = f"models:/{settings.fraud_model_name}/{version}"
    flavors = mlflow.models.get_model_info(uri).flavors
    if "xgboost" in flavors:
        return mlflow.xgboost.load_model(uri)
    return mlflow.sklearn.load_model(uri)
