"""The fraud pipeline as a Prefect flow: card transactions to a served fraud model.

ingest (simulate, or read a file) -> validate (quarantine) -> point-in-time window features
-> Feast (apply, write the cards' and terminals' histories, materialize them online) ->
train on a time split (prequential selection, bounded search, cost-chosen threshold),
export ONNX, register, gate. Stages that touch I/O retry. The flow returns one summary
dict; the CLI prints it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from features import store as feature_store
from features.feature_repo.fraud import fraud_model
from features.fraud_schema import (
    LABEL_COLUMN,
    TX_DATETIME,
    TX_FRAUD,
    TX_FRAUD_SCENARIO,
    validate_fraud_frame,
)
from features.fraud_windows import FRAUD_FEATURES, fraud_window_features
from features.fraud_windows_dask import (
    ROWS_PER_PARTITION,
    fraud_window_features_on_cluster,
    scatter_frame,
)
from features.quarantine import ValidationResult
from mlops import progress
from mlops.case_studies import FRAUD
from mlops.settings import Settings
from pipelines.stages import quarantine_and_check, transient
from pipelines.task_runners import cluster_client, runner_from_settings
from sources.fraud_files import load_fraud_file
from sources.fraud_simulator import (
    DEFAULT_START,
    simulate_transactions,
    write_transactions,
)
from training import tracking
from training.fraud_splits import (
    HANDBOOK_DELAY_DAYS,
    HANDBOOK_START,
    HANDBOOK_TEST_DAYS,
    HANDBOOK_TRAIN_DAYS,
    TimeSplit,
    handbook_split,
)
from training.fraud_train import train_fraud
from training.fraud_train_dask import train_fraud_on_cluster

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client

# Below this the training week holds a handful of frauds: no trustworthy model or estimate.
MIN_VALID_ROWS = 1000


@dataclass(frozen=True)
class Simulation:
    """What the simulator makes when no source file is given (the handbook's default size)."""

    customers: int = 5000
    terminals: int = 10000
    days: int = 183
    start: str = DEFAULT_START
    scenario: str = "baseline"


@dataclass(frozen=True)
class Periods:
    """The time split: train `train_days` from `train_start`, wait `delay_days`, test."""

    train_start: str = HANDBOOK_START
    train_days: int = HANDBOOK_TRAIN_DAYS
    delay_days: int = HANDBOOK_DELAY_DAYS
    test_days: int = HANDBOOK_TEST_DAYS

    def split(self) -> TimeSplit:
        return handbook_split(self.train_start, self.train_days, self.delay_days, self.test_days)


@dataclass(frozen=True)
class Ingested:
    raw: pd.DataFrame
    path: Path
    source: str


@task(retries=2, retry_delay_seconds=2, retry_condition_fn=transient, cache_policy=NO_CACHE)
def ingest(settings: Settings, run_dir: str, source: Path | None, sim: Simulation) -> Ingested:
    """Read the source file as written; or simulate, write the raw file and read it back.

    Simulated data goes through the same file and contract as a user's file would.
    """
    logger = get_run_logger()
    if source is None:
        with progress.step(
            f"simulating {sim.days} days of {sim.customers} cards at {sim.terminals} terminals"
        ):
            frame = simulate_transactions(
                sim.customers,
                sim.terminals,
                sim.days,
                sim.start,
                seed=settings.seed,
                scenario=sim.scenario,
            )
        path = write_transactions(frame, settings.raw_dir / run_dir / "transactions.parquet")
        del frame
        origin = (
            f"simulator({', '.join(f'{k}={v}' for k, v in asdict(sim).items())}, "
            f"seed={settings.seed})"
        )
    else:
        path, origin = Path(source), str(source)
    raw = load_fraud_file(path)
    logger.info("ingested %d rows from %s (%s)", len(raw), origin, path)
    return Ingested(raw=raw, path=path, source=origin)


@task(cache_policy=NO_CACHE)
def validate(settings: Settings, run_dir: str, ingested: Ingested) -> ValidationResult:
    """Split valid rows from bad ones; bad rows go to a quarantine file with a reason."""
    result = validate_fraud_frame(ingested.raw, ingested.source)
    quarantine_and_check(
        result,
        folder=settings.quarantine_dir / run_dir,
        file_name="transactions.csv",
        source=ingested.source,
        label=LABEL_COLUMN,
        min_valid_rows=MIN_VALID_ROWS,
        logger=get_run_logger(),
    )
    return result


@task(cache_policy=NO_CACHE)
def build_features(valid: pd.DataFrame) -> pd.DataFrame:
    """Per transaction, the features known strictly before it, with its label.

    On the flow's Dask cluster when it runs on one (partitioned by customer and terminal),
    else in-process; both give the same values.
    """
    client = cluster_client()
    with progress.step(f"window features of {len(valid):,} transactions"):
        if client is None:
            features = fraud_window_features(valid)
        else:
            get_run_logger().info("window features partitioned on the Dask cluster")
            features = fraud_window_features_on_cluster(valid, client)
    features[TX_FRAUD] = valid[TX_FRAUD].to_numpy()
    # Not a feature: what kind of fraud each is, for the recall per scenario.
    features[TX_FRAUD_SCENARIO] = valid[TX_FRAUD_SCENARIO].to_numpy()
    return features


# Not log_prints, whatever the flow says: Feast serializes the on-demand view's function
# with dill, which finds the globals it uses by disassembling it into a captured stdout;
# with print() sent to the run logger, the disassembly was logged, thirty lines a run.
@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE, log_prints=False)
def publish_features(settings: Settings, valid: pd.DataFrame) -> str:
    """Register the definitions; write the histories as of the last transaction; go online."""
    as_of = valid[TX_DATETIME].max() + pd.Timedelta(seconds=1)
    store = feature_store.feature_store(settings)
    feature_store.apply_fraud_definitions(store, settings)
    feature_store.publish_fraud_state(store, settings, valid, as_of=as_of)
    get_run_logger().info("published card and terminal histories as of %s online", as_of)
    return str(as_of)


@task(cache_policy=NO_CACHE)
def train(
    settings: Settings,
    features: pd.DataFrame,
    split: TimeSplit,
    lineage: dict[str, Any],
    auto_promote: bool = True,
) -> dict[str, Any]:
    """Train, search and gate in one parent MLflow run; register the winner.

    On the flow's Dask cluster, XGBoost trains there (`training.fraud_train_dask`).
    """
    logger = get_run_logger()
    client = cluster_client()
    with tracking.pipeline_run(
        settings,
        FRAUD.experiment,
        lineage=lineage,
        feature_service=fraud_model.name,
        features=FRAUD_FEATURES,
        data=features,
        params={
            "train_start": str(split.train_start),
            "train_end": str(split.train_end),
            "test_start": str(split.test_start),
            "test_end": str(split.test_end),
            "delay_days": split.delay.days,
        },
    ):
        if client is None:
            result = train_fraud(features, split, settings, auto_promote=auto_promote)
        else:
            result = train_fraud_on_cluster(
                _partitioned(features, client), split, settings, client, auto_promote=auto_promote
            )
    logger.info(
        "registered %s v%s as %s (%s); test average precision %.4f",
        result.model_name,
        result.version,
        result.aliases,
        result.gate.reason,
        result.test_metrics["average_precision"],
    )
    return result.summary()


def _partitioned(features: pd.DataFrame, client: Client) -> dd.DataFrame:
    """The features as a Dask frame whose every partition spans the whole history.

    Rows are dealt out like cards (row i to partition i mod n), so any period's rows,
    hence XGBoost's training rows, are spread over every partition and every worker.
    """
    workers = len(client.scheduler_info()["workers"])
    npartitions = max(2 * workers, math.ceil(len(features) / ROWS_PER_PARTITION))
    dealt = np.argsort(np.arange(len(features)) % npartitions, kind="stable")
    return scatter_frame(features.iloc[dealt], client, npartitions)


@flow(name="fraud_pipeline", log_prints=True, task_runner=runner_from_settings())
def fraud_pipeline(
    source: Path | None = None,
    simulation: Simulation | None = None,
    periods: Periods | None = None,
    auto_promote: bool = True,
) -> dict[str, Any]:
    """Run the fraud case study end to end and return its summary.

    `source` is a transactions file in the handbook simulator's schema (CSV or parquet);
    without it the simulator makes `simulation`'s transactions. `periods` is the time
    split, the handbook's protocol by default. `auto_promote=False` registers the model
    as challenger whatever the promotion gate says (the challenger test decides).
    """
    settings = Settings().prepare()
    sim, periods = simulation or Simulation(), periods or Periods()
    split = periods.split()  # a bad split fails before any work
    run_dir = f"fraud-{flow_run.get_id() or 'local'}"

    ingested = ingest(settings, run_dir, source, sim)
    checked = validate(settings, run_dir, ingested)
    # Prefect's task typing admits a coroutine; these tasks are synchronous.
    features = cast(pd.DataFrame, build_features(checked.valid))
    as_of = publish_features(settings, checked.valid)
    counts = checked.counts
    summary = train(
        settings,
        features,
        split,
        {
            "pipeline_run": run_dir,
            "source": ingested.source,
            "rows_in": counts["rows_in"],
            "rows_quarantined": counts["rows_quarantined"],
        },
        auto_promote,
    )
    return {
        **summary,
        "pipeline_run": run_dir,
        "source": ingested.source,
        "rows": counts,
        "quarantine_dir": str(settings.quarantine_dir / run_dir),
        "online_state_as_of": as_of,
        "periods": asdict(periods),
        "tracking_uri": settings.tracking_uri,
    }
