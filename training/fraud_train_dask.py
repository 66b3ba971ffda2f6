"""Fraud XGBoost trained on a Dask cluster (xgboost.dask), registered like the in-process winner.

When a flow runs on a cluster, the training rows stay partitioned on the workers and
XGBoost trains there, each worker on its partitions (xgboost.dask's allreduce). The
in-process candidate zoo of `training.fraud_train` (resampling, the anomaly score, the
Optuna search over many refits) is a single-machine design and is not repeated here: the
cluster trains one model, `CLUSTER_SPEC` (XGBoost with class weights, default
hyperparameters, the same parameters as in-process through `ModelSpec.xgboost_params`).

As in-process, the threshold is chosen by expected cost on validation scores, never the
test's: those of the last prequential fold (the last week of the training history, with
a model trained, also on the cluster, on the weeks before its delay). The fitted booster
is loaded into a plain `XGBClassifier`, so export to ONNX, the parity check, registration
and the gate are those of the in-process winner (`register_fraud_winner`).

Parity with the in-process model of the same spec on the same rows: the trees differ a
little (the histogram bins are sketched per worker, row subsampling draws per worker),
so test metrics agree within `METRIC_TOLERANCE`, not to the last bit
(tests/training/test_fraud_train_dask.py checks it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import mlflow
import numpy as np
import pandas as pd
from xgboost import XGBClassifier

from features.fraud_schema import CUSTOMER_ID, TX_DATETIME, TX_FRAUD
from features.fraud_windows import FRAUD_FEATURES
from mlops.settings import Settings
from training.fraud_models import ModelSpec
from training.fraud_registration import register_fraud_winner
from training.fraud_selection import Period, cost_threshold, fraud_report, prefixed
from training.fraud_splits import TimeSplit, describe_split, handbook_split, split_frame
from training.train import TrainingResult, log_native_model

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client

CLUSTER_SPEC: Final = ModelSpec("xgboost", "class_weight")
CLUSTER_CANDIDATE: Final = f"{CLUSTER_SPEC.name}_dask"
# Largest |cluster - in-process| test ROC-AUC and average precision for the same spec and
# rows: the distributed sketch and subsampling move the trees, not the model's quality.
# Measured on the tests' small data (a test week of ~800 rows): differences up to 0.021.
METRIC_TOLERANCE: Final = {"roc_auc": 0.03, "average_precision": 0.05}


@dataclass(frozen=True)
class ClusterWinner:
    """The cluster's model; satisfies `training.registration.WinningModel`."""

    name: str
    model: XGBClassifier
    run_id: str
    model_uri: str
    threshold: float
    test_metrics: dict[str, float]


def fit_on_cluster(spec: ModelSpec, rows: dd.DataFrame, client: Client, seed: int) -> XGBClassifier:
    """Fit `spec` with xgboost.dask on `rows` (FRAUD_FEATURES and TX_FRAUD, partitioned).

    Returns a plain XGBClassifier holding the trained booster, which scores, exports and
    registers like an in-process one.
    """
    import xgboost.dask as dxgb

    if spec.family != "xgboost" or spec.imbalance not in ("none", "class_weight"):
        raise ValueError(f"the cluster trains XGBoost without resampling, not {spec.name}")
    if spec.anomaly_feature:
        raise ValueError("the cluster does not train with the anomaly score as an input")
    # Persisted once: the inputs and labels then come from the same partitions (a lazy
    # frame may be re-planned differently for each), and the filter runs once.
    # Optimised first: the plan may merge partitions (a filtered parquet read does), and the
    # persisted frame must have the partitions of its own graph.
    rows = client.persist(rows[[*FRAUD_FEATURES, TX_FRAUD]].optimize())
    x = rows[list(FRAUD_FEATURES)].astype(np.float32)
    y = rows[TX_FRAUD].astype(np.int64)
    n_rows, n_positives = client.compute([y.size, y.sum()], sync=True)
    params = spec.xgboost_params(int(n_rows), int(n_positives), seed)
    distributed_model = dxgb.DaskXGBClassifier(**params)
    distributed_model.client = client
    # xgboost.dask checks the client against the current one: make ours current, without
    # making it every later computation's default.
    with client.as_current():
        distributed_model.fit(x, y)
    model = XGBClassifier(**params, n_jobs=1)
    model.load_model(bytearray(distributed_model.get_booster().save_raw("json")))
    return model


def period_rows(features: dd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> dd.DataFrame:
    """The rows of [start, end), filtered on the workers."""
    stamps = features[TX_DATETIME]
    return features[(stamps >= start) & (stamps < end)]


def last_prequential_fold(split: TimeSplit) -> TimeSplit:
    """The latest fold of `training.fraud_splits.model_selection_splits`: its validation
    period is the end of `split`'s training period, with `split`'s lengths and delay."""
    days = pd.Timedelta(days=1)
    fold_test_start = split.train_end - split.test_length
    return handbook_split(
        fold_test_start - split.delay - split.train_length,
        split.train_length // days,
        split.delay // days,
        split.test_length // days,
    )


def train_fraud_on_cluster(
    features: dd.DataFrame,
    split: TimeSplit,
    settings: Settings,
    client: Client,
    *,
    auto_promote: bool = True,
) -> TrainingResult:
    """Train `CLUSTER_SPEC` on the cluster, choose its threshold, test, export and register.

    `features` holds TX_DATETIME (UTC), CUSTOMER_ID, TX_FRAUD and `FRAUD_FEATURES` for the
    whole history, partitioned on `client`'s cluster. Only the validation and test weeks
    (plus what the test's known-compromised rule reads) come to this process. Must run
    inside an active (parent) MLflow run, like `training.fraud_train.train_fraud`. Returns
    the model's registered version and alias, its test metrics and threshold.
    """
    parent = mlflow.active_run()
    if parent is None:
        raise RuntimeError("train_fraud_on_cluster needs an active MLflow run")
    started = time.perf_counter()
    fold = last_prequential_fold(split)
    features = features[[TX_DATETIME, CUSTOMER_ID, TX_FRAUD, *FRAUD_FEATURES]]
    valid, test, test_frame = _local_periods(features, fold, split, client)
    winner = _train_cluster_winner(features, fold, split, valid, test, settings, client)
    registration = register_fraud_winner(
        winner, test, test_frame, settings, auto_promote=auto_promote
    )
    mlflow.log_params({"split": describe_split(split), "test_rows": len(test.y)})
    mlflow.log_metrics(
        {
            **prefixed("test_", winner.test_metrics),
            "training_seconds": time.perf_counter() - started,
        }
    )
    return TrainingResult(
        parent_run_id=parent.info.run_id,
        winner=CLUSTER_CANDIDATE,
        model_name=settings.fraud_model_name,
        version=registration.version,
        aliases=[registration.alias],
        test_metrics=winner.test_metrics,
        cv_metrics={},
        gate=registration.gate,
        parity_max_abs_diff=registration.parity_max_abs_diff,
        extra={
            "threshold": winner.threshold,
            "threshold_chosen_on": "the last prequential fold's validation scores, by cost",
            "trained_on": "dask",
            "split": describe_split(split),
        },
    )


def _local_periods(
    features: dd.DataFrame, fold: TimeSplit, split: TimeSplit, client: Client
) -> tuple[Period, Period, pd.DataFrame]:
    """The fold's validation period and `split`'s test period, brought to this process, and
    the test rows as a frame (the promotion gate scores the champion on them)."""
    # The known-compromised rule of the test reads every fraud since the training start.
    first = min(fold.test_start, split.train_start)
    local = client.compute(period_rows(features, first, split.test_end)).result()
    _, valid_frame = split_frame(local, fold, remove_known_compromised=False)
    _, test_frame = split_frame(local, split)
    valid, test = Period.of(valid_frame), Period.of(test_frame)
    for name, period in (("validation", valid), ("test", test)):
        if period.y.size == 0 or period.y.min() == period.y.max():
            raise ValueError(f"the {name} period needs both frauds and genuine transactions")
    return valid, test, test_frame


def _train_cluster_winner(
    features: dd.DataFrame,
    fold: TimeSplit,
    split: TimeSplit,
    valid: Period,
    test: Period,
    settings: Settings,
    client: Client,
) -> ClusterWinner:
    """One nested run: the threshold from a model of the fold's training weeks on its
    validation week, the model of `split`'s training period, its test metrics and model."""
    seed = settings.seed
    with mlflow.start_run(run_name=CLUSTER_CANDIDATE, nested=True) as run:
        fold_model = fit_on_cluster(
            CLUSTER_SPEC, period_rows(features, fold.train_start, fold.train_end), client, seed
        )
        threshold = cost_threshold(valid.y, fold_model.predict_proba(valid.x)[:, 1], settings)
        model = fit_on_cluster(
            CLUSTER_SPEC, period_rows(features, split.train_start, split.train_end), client, seed
        )
        test_metrics = fraud_report(test, model.predict_proba(test.x)[:, 1], threshold, settings)
        mlflow.log_params(
            {
                "candidate": CLUSTER_CANDIDATE,
                "trained_on": "dask cluster (xgboost.dask)",
                "dask_workers": len(client.scheduler_info()["workers"]),
                "threshold_chosen_on": f"validation {fold.test_start:%Y-%m-%d}",
                **CLUSTER_SPEC.log_params(),
            }
        )
        mlflow.log_metrics({"threshold": threshold, **prefixed("test_", test_metrics)})
        model_uri = log_native_model(model, test.x[:5], FRAUD_FEATURES)
        mlflow.set_tag("winner", "true")
    return ClusterWinner(
        CLUSTER_CANDIDATE, model, run.info.run_id, model_uri, threshold, test_metrics
    )


def train_in_process_reference(
    frame: pd.DataFrame, split: TimeSplit, settings: Settings
) -> tuple[XGBClassifier, dict[str, float]]:
    """What `train_fraud_on_cluster` does, in this process on an in-memory frame: the
    reference its metrics are compared with (nothing logged or registered)."""
    fold = last_prequential_fold(split)
    fold_train, _ = split_frame(frame, fold)
    _, valid_frame = split_frame(frame, fold, remove_known_compromised=False)
    train_frame, test_frame = split_frame(frame, split)
    fold_rows, valid = Period.of(fold_train), Period.of(valid_frame)
    train, test = Period.of(train_frame), Period.of(test_frame)
    fold_model = CLUSTER_SPEC.fit_classifier(fold_rows.x, fold_rows.y, settings.seed)
    threshold = cost_threshold(valid.y, fold_model.predict_proba(valid.x)[:, 1], settings)
    model = CLUSTER_SPEC.fit_classifier(train.x, train.y, settings.seed)
    return model, fraud_report(test, model.predict_proba(test.x)[:, 1], threshold, settings)
