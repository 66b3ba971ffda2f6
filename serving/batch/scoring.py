"""Score a whole file with a registered model: the batch path beside the API.

Churn and fraud share the machinery here: validation with a quarantine file beside the
output, chunked scoring on every core, and outputs that appear complete or not at all.

Two engines score (`engine`): "onnx", the bundle's ONNX file as serving runs it (the
default), or "native", the registered version's native model through its MLflow flavour
(`serving.batch.engines`), faster on large tree ensembles. Either must reproduce the
native probabilities saved with the bundle (its parity sample, within
`settings.parity_tolerance`) before it scores a row; one that does not is refused with
`mlops.model_bundle.ParityMismatch`.

`score_churn_file` reads a raw Telco-schema file (CSV or parquet, labels optional), checks
it against the contract, computes the features with the same transforms the API and the
training pipeline use (`features.churn_transforms`), scores them with the model's ONNX
bundle and writes one row per valid input row. Invalid rows are written, with their
reason, to `<output stem>.quarantine.csv` beside the output and counted; a file that
cannot be used at all raises `UnusableSource`.

Validation needs the whole file (a duplicate observation can be anywhere in it); the
features, the scoring and the writing then go `chunk_rows` rows at a time, so the
feature matrix and the output never exist for the whole file at once. Outputs appear
complete or not at all: each is written beside its target and renamed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from features.churn_schema import (
    ID_COLUMN,
    LABEL_COLUMN,
    RAW_COLUMNS,
    TIMESTAMP_COLUMN,
    validate_churn_frame,
)
from features.churn_transforms import CHURN_FEATURES, churn_features
from features.fraud_schema import ID_COLUMN as FRAUD_ID_COLUMN
from features.fraud_schema import TX_FRAUD, validate_fraud_frame
from features.fraud_windows import FRAUD_FEATURES, fraud_window_features
from features.quarantine import UnusableSource
from features.raw_files import read_raw_file
from mlops.model_bundle import RegisteredBundle
from mlops.settings import Settings
from serving.batch.engines import ENGINES, Engine, load_registered_engine
from serving.batch.output_files import (
    check_output_suffix,
    chunk_writer,
    quarantine_path_for,
    write_quarantine,
)
from serving.batch.stages import StageClock

logger = logging.getLogger(__name__)

PROBABILITY = "churn_probability"
DECISION = "will_churn"
FRAUD_PROBABILITY = "fraud_probability"
FRAUD_DECISION = "is_fraud"
MODEL_NAME = "model_name"
MODEL_VERSION = "model_version"
# The raw columns the transforms read: everything but the key and the label.
_TRANSFORM_INPUTS = tuple(c for c in RAW_COLUMNS if c not in (ID_COLUMN, LABEL_COLUMN))


@dataclass(frozen=True)
class BatchScoreSummary:
    """What one batch scoring run read, scored, set aside and wrote, and how fast."""

    rows_in: int
    rows_scored: int
    rows_quarantined: int
    output: Path
    quarantine: Path | None
    model_name: str
    model_version: str
    # Which engine scored: "onnx" (the bundle's ONNX file) or "native" (the native model).
    engine: str
    seconds: float
    rows_per_second: float
    # Wall-clock seconds per stage: model_load, load_validate, features, score, write.
    stage_seconds: dict[str, float] = field(default_factory=dict)
    # What a reader of the scores must know about how they were made.
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["output"] = str(self.output)
        data["quarantine"] = None if self.quarantine is None else str(self.quarantine)
        return data


def score_churn_file(
    settings: Settings,
    source: Path,
    output: Path,
    *,
    alias: str = "champion",
    version: str | None = None,
    chunk_rows: int = 100_000,
    threads: int | None = None,
    engine: Engine = "onnx",
) -> BatchScoreSummary:
    """Score every valid row of `source` with `churn@alias` (or `version`) into `output`.

    `output` is CSV or parquet by its suffix, with columns customerID, churn_probability,
    will_churn (probability >= the model's threshold, as the API decides), model_name,
    model_version, and event_timestamp when the source has one; rows keep the source's
    order. `engine` scores with the bundle's ONNX file or the native model (see the
    module's notes); `threads` is how many cores it uses (default: every CPU).

    Raises `UnusableSource` for a file that cannot be read, lacks a column or has no valid
    row (its quarantine file is still written), `LookupError` when the model alias or
    version (or its native model) does not exist, `ParityMismatch` (`mlops.model_bundle`)
    when the engine does not reproduce the parity sample, and `ValueError` for an
    unsupported output suffix or engine.
    """
    source, output = Path(source), Path(output)
    _check_output(output, chunk_rows, engine)
    clock = StageClock()
    started = time.perf_counter()

    with clock.timed("model_load"):
        bundle, scorer = load_registered_engine(
            settings,
            settings.churn_model_name,
            CHURN_FEATURES,
            alias=alias,
            version=version,
            threads=threads,
            engine=engine,
        )

    with clock.timed("load_validate"):
        raw = read_raw_file(source)
        has_timestamp = TIMESTAMP_COLUMN in raw.columns
        checked = validate_churn_frame(raw, source, require_label=False)
        del raw
    quarantine = write_quarantine(checked.quarantined, quarantine_path_for(output), clock)
    valid = checked.valid
    if valid.empty:
        raise UnusableSource(
            source, f"no valid rows; {len(checked.quarantined)} quarantined to {quarantine}"
        )

    with chunk_writer(output, _output_schema(has_timestamp), clock) as write_chunk:
        for start in range(0, len(valid), chunk_rows):
            chunk = valid.iloc[start : start + chunk_rows]
            with clock.timed("features"):
                matrix = _feature_matrix(chunk, bundle.meta.feature_names)
            with clock.timed("score"):
                probabilities = scorer.predict_proba(matrix)
            with clock.timed("write"):
                scored = _scored_frame(chunk, probabilities, bundle, has_timestamp)
            write_chunk(scored)

    seconds = time.perf_counter() - started
    summary = BatchScoreSummary(
        rows_in=len(valid) + len(checked.quarantined),
        rows_scored=len(valid),
        rows_quarantined=len(checked.quarantined),
        output=output,
        quarantine=quarantine,
        model_name=bundle.name,
        model_version=bundle.version,
        engine=engine,
        seconds=seconds,
        rows_per_second=len(valid) / seconds if seconds > 0 else float("inf"),
        stage_seconds=clock.seconds,
    )
    logger.info("batch scored %s -> %s: %s", source, output, summary.to_dict())
    return summary


def score_fraud_file(
    settings: Settings,
    source: Path,
    output: Path,
    *,
    alias: str = "champion",
    version: str | None = None,
    chunk_rows: int = 500_000,
    threads: int | None = None,
    engine: Engine = "onnx",
) -> BatchScoreSummary:
    """Score every valid transaction of `source` with `fraud@alias` (or `version`).

    `output` (CSV or parquet by suffix) has TRANSACTION_ID, fraud_probability, is_fraud
    (probability >= the model's cost-chosen threshold), model_name and model_version, one
    row per valid transaction in time order (TX_DATETIME, then TRANSACTION_ID). Invalid
    rows go to the quarantine file beside the output, as for churn.

    The window features are computed over the file's own history, point-in-time: each
    transaction sees only earlier ones, so the file should start 30 days (the longest
    window) plus the label delay before the first transaction that matters; earlier
    rows are scored with short histories. The terminal risk windows need labels, known
    one label delay (7 days) late:

    - with TX_FRAUD in the file, the labels older than the delay are used, exactly as in
      training;
    - without it, every terminal risk is 0 (no known fraud), the counts stay right, and
      the summary's `notes` say so: scores are then lower at compromised terminals than
      the model would give with labels. Add the labelled history to the file when it
      exists.

    Raises like `score_churn_file`.
    """
    source, output = Path(source), Path(output)
    _check_output(output, chunk_rows, engine)
    clock = StageClock()
    started = time.perf_counter()

    with clock.timed("model_load"):
        bundle, scorer = load_registered_engine(
            settings,
            settings.fraud_model_name,
            FRAUD_FEATURES,
            alias=alias,
            version=version,
            threads=threads,
            engine=engine,
        )

    with clock.timed("load_validate"):
        raw = read_raw_file(source)
        checked = validate_fraud_frame(raw, source, require_label=False)
        del raw
    quarantine = write_quarantine(checked.quarantined, quarantine_path_for(output), clock)
    valid = checked.valid
    if valid.empty:
        raise UnusableSource(
            source, f"no valid rows; {len(checked.quarantined)} quarantined to {quarantine}"
        )
    notes = []
    if TX_FRAUD not in valid.columns:
        notes.append(
            f"{source.name} has no {TX_FRAUD}: terminal risk windows are 0 (no known fraud)"
        )
        logger.warning("%s", notes[-1])
        valid = valid.assign(**{TX_FRAUD: 0})

    with clock.timed("features"):
        features = fraud_window_features(valid)
        matrix = np.empty((len(features), len(bundle.meta.feature_names)), dtype=np.float32)
        for position, name in enumerate(bundle.meta.feature_names):
            matrix[:, position] = features[name].to_numpy()
        ids = features[FRAUD_ID_COLUMN].to_numpy()
        del features
    with chunk_writer(output, _FRAUD_OUTPUT_SCHEMA, clock) as write_chunk:
        for start in range(0, len(matrix), chunk_rows):
            with clock.timed("score"):
                probabilities = scorer.predict_proba(matrix[start : start + chunk_rows])
            with clock.timed("write"):
                scored = pd.DataFrame(
                    {
                        FRAUD_ID_COLUMN: ids[start : start + chunk_rows],
                        FRAUD_PROBABILITY: probabilities,
                        FRAUD_DECISION: probabilities >= bundle.meta.threshold,
                        MODEL_NAME: bundle.name,
                        MODEL_VERSION: bundle.version,
                    }
                )
            write_chunk(scored)

    seconds = time.perf_counter() - started
    summary = BatchScoreSummary(
        rows_in=len(valid) + len(checked.quarantined),
        rows_scored=len(valid),
        rows_quarantined=len(checked.quarantined),
        output=output,
        quarantine=quarantine,
        model_name=bundle.name,
        model_version=bundle.version,
        engine=engine,
        seconds=seconds,
        rows_per_second=len(valid) / seconds if seconds > 0 else float("inf"),
        stage_seconds=clock.seconds,
        notes=notes,
    )
    logger.info("batch scored %s -> %s: %s", source, output, summary.to_dict())
    return summary


_FRAUD_OUTPUT_SCHEMA = pa.schema(
    [
        pa.field(FRAUD_ID_COLUMN, pa.int64()),
        pa.field(FRAUD_PROBABILITY, pa.float32()),
        pa.field(FRAUD_DECISION, pa.bool_()),
        pa.field(MODEL_NAME, pa.string()),
        pa.field(MODEL_VERSION, pa.string()),
    ]
)


def _check_output(output: Path, chunk_rows: int, engine: str) -> None:
    check_output_suffix(output)
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")


def _feature_matrix(chunk: pd.DataFrame, feature_names: list[str]) -> np.ndarray:
    """The chunk's features as a C-contiguous float32 matrix in the model's column order."""
    columns = {c: chunk[c].to_numpy() for c in _TRANSFORM_INPUTS}
    features = churn_features(columns)
    matrix = np.empty((len(chunk), len(feature_names)), dtype=np.float32)
    for position, name in enumerate(feature_names):
        matrix[:, position] = features[name]
    return matrix


def _scored_frame(
    chunk: pd.DataFrame,
    probabilities: np.ndarray,
    bundle: RegisteredBundle,
    has_timestamp: bool,
) -> pd.DataFrame:
    columns: dict[str, Any] = {
        ID_COLUMN: chunk[ID_COLUMN].to_numpy(),
        PROBABILITY: probabilities,
        DECISION: probabilities >= bundle.meta.threshold,
        MODEL_NAME: bundle.name,
        MODEL_VERSION: bundle.version,
    }
    if has_timestamp:
        # The extension array, not to_numpy(): that boxes each tz-aware stamp in a Python
        # object (3 s per million rows).
        columns[TIMESTAMP_COLUMN] = chunk[TIMESTAMP_COLUMN].array
    return pd.DataFrame(columns)


def _output_schema(has_timestamp: bool) -> pa.Schema:
    fields = [
        pa.field(ID_COLUMN, pa.string()),
        pa.field(PROBABILITY, pa.float32()),
        pa.field(DECISION, pa.bool_()),
        pa.field(MODEL_NAME, pa.string()),
        pa.field(MODEL_VERSION, pa.string()),
    ]
    if has_timestamp:
        fields.append(pa.field(TIMESTAMP_COLUMN, pa.timestamp("ns", tz="UTC")))
    return pa.schema(fields)
