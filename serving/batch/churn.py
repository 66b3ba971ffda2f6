"""Churn's parts of the batch pipeline: a Telco-schema file of customers to score.

The file is checked against the churn contract (`features.churn_schema`) and its
features computed with the transforms the API and the training pipeline use
(`features.churn_transforms`), one chunk at a time: a customer's features need only
its own row. The output has customerID, churn_probability, will_churn, model_name,
model_version, and event_timestamp when the source has one; rows keep the source's order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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
from features.quarantine import ValidationResult
from features.raw_files import text_frame
from mlops.case_studies import CHURN
from serving.batch.case_study import BatchCaseStudy, FeatureChunk
from serving.batch.stages import StageClock

# The raw columns the transforms read: everything but the key and the label.
_TRANSFORM_INPUTS = tuple(c for c in RAW_COLUMNS if c not in (ID_COLUMN, LABEL_COLUMN))


class ChurnBatch(BatchCaseStudy):
    """Churn's parts of the batch pipeline (see the module doc)."""

    study = CHURN
    id_field = pa.field(ID_COLUMN, pa.string())
    probability_column = "churn_probability"
    decision_column = "will_churn"
    computed_features = CHURN_FEATURES
    default_chunk_rows = 100_000

    def validate(self, raw: pd.DataFrame | pa.Table, source: Path) -> ValidationResult:
        """`raw` checked against the churn contract, through its text (see
        `BatchCaseStudy.validate`)."""
        text = raw if isinstance(raw, pd.DataFrame) else text_frame(raw)
        return validate_churn_frame(text, source, require_label=False)

    def feature_chunks(
        self,
        valid: pd.DataFrame,
        feature_names: list[str],
        chunk_rows: int,
        clock: StageClock,
    ) -> Iterator[FeatureChunk]:
        """`valid` cut into chunks in the source's order, each chunk's features computed
        as it is taken (see `BatchCaseStudy.feature_chunks`)."""
        has_timestamp = TIMESTAMP_COLUMN in valid.columns
        for start in range(0, len(valid), chunk_rows):
            chunk = valid.iloc[start : start + chunk_rows]
            with clock.timed("features"):
                matrix = _feature_matrix(chunk, feature_names)
            trailing = {}
            if has_timestamp:
                # The extension array, not to_numpy(): that boxes each tz-aware stamp in a
                # Python object (3 s per million rows).
                trailing[TIMESTAMP_COLUMN] = chunk[TIMESTAMP_COLUMN].array
            yield FeatureChunk(chunk[ID_COLUMN].to_numpy(), matrix, trailing)

    def trailing_fields(self, valid: pd.DataFrame) -> list[pa.Field]:
        """event_timestamp when the source has one."""
        if TIMESTAMP_COLUMN in valid.columns:
            return [pa.field(TIMESTAMP_COLUMN, pa.timestamp("ns", tz="UTC"))]
        return []


def _feature_matrix(chunk: pd.DataFrame, feature_names: list[str]) -> np.ndarray:
    """The chunk's features as a C-contiguous float32 matrix in the model's column order."""
    columns = {c: chunk[c].to_numpy() for c in _TRANSFORM_INPUTS}
    features = churn_features(columns)
    matrix = np.empty((len(chunk), len(feature_names)), dtype=np.float32)
    for position, name in enumerate(feature_names):
        matrix[:, position] = features[name]
    return matrix
