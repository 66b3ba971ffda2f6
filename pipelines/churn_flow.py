"""The churn pipeline as a Prefect flow: one task per stage, from raw data to a served model.

ingest -> validate (quarantine) -> features -> Feast (apply, offline, materialize)
-> point-in-time training set -> train, export ONNX, register, gate -> drift report.
Stages that touch I/O retry. The flow returns one summary dict; the CLI prints it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import mlflow
import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from features import store as feature_store
from features.churn_frames import ENTITY_KEY, LABEL, feature_frame, label_frame
from features.churn_schema import LABEL_COLUMN, TIMESTAMP_COLUMN, validate_churn_frame
from features.churn_transforms import CHURN_FEATURES
from features.feature_repo.churn import churn_model
from features.quarantine import ValidationResult
from mlops.case_studies import CHURN
from mlops.settings import Settings
from monitoring.drift import build_drift_report, log_drift_to_mlflow
from pipelines.stages import quarantine_and_check, transient
from pipelines.task_runners import runner_from_settings
from sources.churn_files import load_churn_file
from sources.churn_simulator import simulate_customers
from training import tracking
from training.datasets import as_matrix, split_train_test
from training.models import CANDIDATES
from training.train import TrainingData, train_and_register

# Fewer valid rows than this cannot give a trustworthy model or test estimate.
MIN_VALID_ROWS = 200


@dataclass(frozen=True)
class Ingested:
    raw: pd.DataFrame
    path: Path
    source: str


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=transient, cache_policy=NO_CACHE)
def ingest(
    settings: Settings, run_dir: str, source: Path | None, customers: int, scenario: str
) -> Ingested:
    """Read the source file, or simulate customers; keep a copy of the raw rows."""
    logger = get_run_logger()
    if source is not None:
        raw = load_churn_file(source)
        origin = str(source)
    else:
        raw = simulate_customers(customers, seed=settings.seed, scenario=scenario)
        origin = f"simulator(customers={customers}, seed={settings.seed}, scenario={scenario})"
    folder = settings.raw_dir / run_dir
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "customers.parquet"
    raw.astype(str).to_parquet(path, index=False)
    logger.info("ingested %d rows from %s -> %s", len(raw), origin, path)
    return Ingested(raw=raw, path=path, source=origin)


@task(cache_policy=NO_CACHE)
def validate(settings: Settings, run_dir: str, ingested: Ingested) -> ValidationResult:
    """Split valid rows from bad ones; bad rows go to a quarantine file with a reason."""
    result = validate_churn_frame(ingested.raw, ingested.source)
    quarantine_and_check(
        result,
        folder=settings.quarantine_dir / run_dir,
        file_name="customers.csv",
        source=ingested.source,
        label=LABEL_COLUMN,
        min_valid_rows=MIN_VALID_ROWS,
        logger=get_run_logger(),
    )
    return result


@task(cache_policy=NO_CACHE)
def build_features(valid: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return feature_frame(valid), label_frame(valid)


# Not log_prints: Feast's prints are its own business (`features.store`), not run logs.
@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE, log_prints=False)
def publish_features(settings: Settings, features: pd.DataFrame) -> str:
    """Write the offline table, register the definitions, load the online store."""
    logger = get_run_logger()
    path = feature_store.write_churn_offline(features, settings)
    store = feature_store.feature_store(settings)
    feature_store.apply_churn_definitions(store, settings)
    feature_store.publish_churn_online(store, features)
    logger.info("published %d feature rows to %s and the online store", len(features), path)
    return str(path)


@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def training_set(settings: Settings, labels: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time join of the labelled snapshots with the features known at that time."""
    store = feature_store.feature_store(settings)
    frame = feature_store.churn_training_frame(store, labels)
    missing = frame[list(CHURN_FEATURES)].isna().any(axis=1)
    if missing.any():
        raise RuntimeError(f"{int(missing.sum())} training rows found no features in Feast")
    return frame.sort_values([TIMESTAMP_COLUMN, ENTITY_KEY]).reset_index(drop=True)


@task(cache_policy=NO_CACHE)
def train(
    settings: Settings, frame: pd.DataFrame, lineage: dict[str, Any], auto_promote: bool = True
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """Train the candidates in one parent MLflow run; register and gate the winner."""
    logger = get_run_logger()
    split = split_train_test(frame, label=LABEL, timestamp=TIMESTAMP_COLUMN, seed=settings.seed)
    data = TrainingData(
        feature_names=CHURN_FEATURES,
        x_train=as_matrix(split.train, CHURN_FEATURES),
        y_train=split.train[LABEL].to_numpy(),
        x_test=as_matrix(split.test, CHURN_FEATURES),
        y_test=split.test[LABEL].to_numpy(),
        params={"split_strategy": split.strategy, "feature_service": churn_model.name},
    )
    with tracking.pipeline_run(
        settings,
        CHURN.experiment,
        lineage=lineage,
        feature_service=churn_model.name,
        features=CHURN_FEATURES,
        data=frame,
        params={
            "train_rows": len(split.train),
            "test_rows": len(split.test),
            "split_strategy": split.strategy,
            "split_cutoff": str(split.cutoff),
        },
    ):
        result = train_and_register(
            data,
            candidates=CANDIDATES,
            model_name=settings.churn_model_name,
            feature_service=churn_model.name,
            settings=settings,
            test_frame=split.test,
            primary_metric=CHURN.primary_metric,
            auto_promote=auto_promote,
        )
    logger.info(
        "registered %s v%s as %s (%s); test ROC-AUC %.4f",
        result.model_name,
        result.version,
        result.aliases,
        result.gate.reason,
        result.test_metrics["roc_auc"],
    )
    return result.summary(), split.train, split.test


@task(cache_policy=NO_CACHE)
def drift_report(
    settings: Settings, run_id: str, reference: pd.DataFrame, current: pd.DataFrame, run_dir: str
) -> dict[str, Any]:
    """Evidently data drift of the current batch against the training reference."""
    # 0/1 indicators are categories to Evidently, not magnitudes.
    flags = [c for c in CHURN_FEATURES if reference[c].isin((0.0, 1.0)).all()]
    summary = build_drift_report(
        reference[list(CHURN_FEATURES)],
        current[list(CHURN_FEATURES)],
        out_dir=settings.reports_dir / run_dir,
        name="churn_drift",
        numerical_columns=[c for c in CHURN_FEATURES if c not in flags],
        categorical_columns=flags,
    )
    with mlflow.start_run(run_id=run_id):
        log_drift_to_mlflow(summary)
    get_run_logger().info(
        "drift: %d of %d features drifted -> %s",
        len(summary.drifted_columns),
        summary.n_columns,
        summary.html_path,
    )
    return {
        "html": str(summary.html_path),
        "json": str(summary.json_path),
        "dataset_drift": summary.dataset_drift,
        "drift_share": summary.drift_share,
        "drifted_columns": summary.drifted_columns,
    }


@flow(name="churn_pipeline", log_prints=True, task_runner=runner_from_settings())
def churn_pipeline(
    source: Path | None = None,
    customers: int = 5000,
    scenario: str = "baseline",
    current_scenario: str | None = None,
    auto_promote: bool = True,
) -> dict[str, Any]:
    """Run the churn case study end to end and return its summary.

    `source` is a Telco-schema CSV or parquet file; without it the simulator makes
    `customers` customers. The drift report compares the training window with the
    test window, or, with `current_scenario`, with a freshly simulated batch.
    `auto_promote=False` registers the model as challenger whatever the test-window gate
    says (retraining: the monitoring flow's challenger test decides).
    """
    settings = Settings().prepare()
    run_dir = f"churn-{flow_run.get_id() or 'local'}"
    if source is not None and current_scenario is not None:
        raise ValueError("current_scenario simulates a batch; it cannot be compared with a file")

    ingested = ingest(settings, run_dir, source, customers, scenario)
    checked = validate(settings, run_dir, ingested)
    features, labels = build_features(checked.valid)
    publish_features(settings, features)
    # Prefect's task typing admits a coroutine; these tasks are synchronous.
    frame = cast(pd.DataFrame, training_set(settings, labels))
    counts = checked.counts
    summary, train_rows, test_rows = train(
        settings,
        frame,
        {
            "pipeline_run": run_dir,
            "source": ingested.source,
            "rows_in": counts["rows_in"],
            "rows_quarantined": counts["rows_quarantined"],
        },
        auto_promote,
    )
    if current_scenario is not None:
        current_raw = simulate_customers(
            max(customers // 4, 500),
            seed=settings.seed + 1,
            start=frame[TIMESTAMP_COLUMN].max().to_pydatetime() + timedelta(days=1),
            months=1,
            scenario=current_scenario,
        )
        current = feature_frame(validate_churn_frame(current_raw, current_scenario).valid)
    else:
        current = test_rows
    drift = drift_report(settings, summary["run_id"], train_rows, current, run_dir)
    return {
        **summary,
        "pipeline_run": run_dir,
        "source": ingested.source,
        "rows": counts,
        "quarantine_dir": str(settings.quarantine_dir / run_dir),
        "drift": drift,
        "tracking_uri": settings.tracking_uri,
    }
