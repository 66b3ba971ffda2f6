"""XGBoost on a two-worker Dask cluster: registered, exported and served like the in-process
model, with test metrics within `METRIC_TOLERANCE` of the in-process fit of the same spec.

The simulation is the one of test_fraud_train.py but with 150 cards (about 19,000
transactions); the features are partitioned on the session's LocalCluster, row i in
partition i mod 4, so the training rows are spread over both workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import dask.dataframe as dd
import mlflow
import numpy as np
import pandas as pd
import pytest
from distributed import Client

from features.fraud_windows import FRAUD_FEATURES, fraud_window_features
from mlops.model_bundle import download_bundle
from mlops.onnx_scorer import OnnxScorer
from mlops.settings import Settings
from sources.fraud_simulator import simulate_transactions
from tests.helpers.runs import isolated_home
from training import tracking
from training.fraud_splits import handbook_split
from training.fraud_train_dask import (
    CLUSTER_CANDIDATE,
    METRIC_TOLERANCE,
    train_fraud_on_cluster,
    train_in_process_reference,
)
from training.train import TrainingResult

pytestmark = pytest.mark.slow

SPLIT = handbook_split(start="2018-05-20")
PARTITIONS = 4


@dataclass(frozen=True)
class Trained:
    settings: Settings
    frame: pd.DataFrame
    result: TrainingResult


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, dask_cluster: str) -> Iterator[Trained]:
    home = tmp_path_factory.mktemp("fraud-train-dask")
    with isolated_home(home):
        settings = Settings().prepare()
        transactions = simulate_transactions(
            n_customers=150, n_terminals=300, n_days=70, start="2018-04-01", seed=7
        )
        frame = transactions.join(fraud_window_features(transactions)[list(FRAUD_FEATURES)])
        dealt = np.argsort(np.arange(len(frame)) % PARTITIONS, kind="stable")
        partitioned = dd.from_pandas(frame.iloc[dealt], npartitions=PARTITIONS, sort=False)
        tracking.use_experiment(settings, "fraud-dask-test")
        with Client(dask_cluster, set_as_default=False) as client, mlflow.start_run():
            result = train_fraud_on_cluster(partitioned, SPLIT, settings, client)
        yield Trained(settings, frame, result)


def test_cluster_model_matches_the_in_process_one_within_tolerance(trained: Trained) -> None:
    _, expected = train_in_process_reference(trained.frame, SPLIT, trained.settings)
    actual = trained.result.test_metrics
    for metric, tolerance in METRIC_TOLERANCE.items():
        assert abs(actual[metric] - expected[metric]) <= tolerance, (metric, actual, expected)
    # A model that learnt something, not two equally useless ones.
    assert actual["roc_auc"] > 0.75
    assert actual["average_precision"] > 3 * actual["fraud_rate"]


def test_cluster_model_is_registered_exported_and_scores_like_it(trained: Trained) -> None:
    settings, result = trained.settings, trained.result
    assert result.winner == CLUSTER_CANDIDATE
    assert result.aliases == ["champion"]  # the first model of the registry
    bundle = download_bundle(
        settings.tracking_uri, settings.fraud_model_name, settings.models_dir, alias="champion"
    )
    assert bundle.version == result.version
    assert bundle.meta.feature_names == list(FRAUD_FEATURES)
    assert bundle.meta.candidate == CLUSTER_CANDIDATE
    assert bundle.meta.threshold == result.extra["threshold"]
    rows, native = bundle.parity_sample()
    exported = OnnxScorer(bundle.onnx_path).predict_proba(rows)
    assert np.abs(exported - native).max() <= settings.parity_tolerance
    assert result.parity_max_abs_diff <= settings.parity_tolerance
