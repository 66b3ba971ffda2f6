"""Fraud's parts of the batch pipeline: a file of card transactions to score.

The file is checked against the fraud contract (`features.fraud_schema`, which sorts the
valid rows by TX_DATETIME, then TRANSACTION_ID). The window features are computed over
the file's own history, point-in-time (`features.fraud_windows`): each transaction sees
only earlier ones, so the whole file's features are computed before the first chunk is
scored. The file should start 30 days (the longest window) plus the label delay before
the first transaction that matters; earlier rows are scored with short histories.

The terminal risk windows need labels, known one label delay (7 days) late:

- with TX_FRAUD in the file, the labels older than the delay are used, exactly as in
  training;
- without it, every terminal risk is 0 (no known fraud), the counts stay right, and the
  summary's `notes` say so: scores are then lower at compromised terminals than the
  model would give with labels. Add the labelled history to the file when it exists.

The output has TRANSACTION_ID, fraud_probability, is_fraud (at the model's cost-chosen
threshold), model_name and model_version, one row per valid transaction in time order.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from features.fraud_schema import (
    ID_COLUMN,
    TX_FRAUD,
    validate_fraud_frame,
    validate_fraud_table,
)
from features.fraud_windows import FRAUD_FEATURES, fraud_feature_columns
from features.quarantine import ValidationResult
from mlops.case_studies import FRAUD
from serving.batch.case_study import BatchCaseStudy, FeatureChunk
from serving.batch.stages import StageClock

logger = logging.getLogger(__name__)


class FraudBatch(BatchCaseStudy):
    """Fraud's parts of the batch pipeline (see the module doc)."""

    study = FRAUD
    id_field = pa.field(ID_COLUMN, pa.int64())
    probability_column = "fraud_probability"
    decision_column = "is_fraud"
    computed_features = FRAUD_FEATURES
    default_chunk_rows = 500_000

    def validate(self, raw: pd.DataFrame | pa.Table, source: Path) -> ValidationResult:
        """`raw` checked against the fraud contract (see `BatchCaseStudy.validate`); a
        parquet file's typed table on its typed columns (`validate_fraud_table`)."""
        if isinstance(raw, pd.DataFrame):
            return validate_fraud_frame(raw, source, require_label=False)
        return validate_fraud_table(raw, source, require_label=False)

    def prepare(self, valid: pd.DataFrame, source: Path) -> tuple[pd.DataFrame, list[str]]:
        """`valid` with TX_FRAUD 0 everywhere when the file has no labels, and a note
        saying so; else `valid` as it is and no note."""
        if TX_FRAUD in valid.columns:
            return valid, []
        note = f"{source.name} has no {TX_FRAUD}: terminal risk windows are 0 (no known fraud)"
        logger.warning("%s", note)
        # A shallow copy: the new column is the only one written (assign copies them all).
        labelled = valid.copy(deep=False)
        labelled[TX_FRAUD] = 0
        return labelled, [note]

    def feature_chunks(
        self,
        valid: pd.DataFrame,
        feature_names: list[str],
        chunk_rows: int,
        clock: StageClock,
    ) -> Iterator[FeatureChunk]:
        """The window features of the whole file, computed now, then handed out in chunks
        of rows in time order (see `BatchCaseStudy.feature_chunks`)."""
        with clock.timed("features"):
            # The feature arrays themselves, not the frame `fraud_window_features` makes
            # of them: each goes straight into its column of the model's matrix.
            features = fraud_feature_columns(valid)
            matrix = np.empty((len(valid), len(feature_names)), dtype=np.float32)
            for position, name in enumerate(feature_names):
                matrix[:, position] = features.pop(name)
            ids = valid[ID_COLUMN].to_numpy()
            del features
        return (
            FeatureChunk(ids[start : start + chunk_rows], matrix[start : start + chunk_rows])
            for start in range(0, len(matrix), chunk_rows)
        )
