"""What a case study brings to the batch pipeline (`serving.batch.pipeline`).

The pipeline's steps are the same for every case study; these are the parts that differ:
the data contract a file is checked against, how the features are computed and how the
rows are cut into chunks to score, and the output's id and score columns. Each case
study has one `BatchCaseStudy` (`serving.batch.churn`, `serving.batch.fraud`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from features.quarantine import ValidationResult
from mlops.case_studies import CaseStudy
from mlops.model_bundle import RegisteredBundle
from serving.batch.stages import StageClock

MODEL_NAME = "model_name"
MODEL_VERSION = "model_version"


@dataclass(frozen=True)
class FeatureChunk:
    """Rows ready to score: their ids, their float32 feature matrix in the model's column
    order, and the columns the output carries after the model's (`trailing`)."""

    ids: np.ndarray
    matrix: np.ndarray
    trailing: dict[str, Any] = field(default_factory=dict)


class BatchCaseStudy(ABC):
    """One case study's parts of the batch pipeline (see the module doc)."""

    study: CaseStudy
    """The case study (`mlops.case_studies`): its name and registered model."""
    id_field: pa.Field
    """The output's first column: the row's id as the source has it."""
    probability_column: str
    """The output's positive-class probability column."""
    decision_column: str
    """The output's decision column: probability >= the model's threshold."""
    computed_features: tuple[str, ...]
    """The features the batch path computes: a model that needs another is refused."""
    default_chunk_rows: int
    """Rows scored and written at a time when the caller does not say."""

    @abstractmethod
    def validate(self, raw: pd.DataFrame | pa.Table, source: Path) -> ValidationResult:
        """`raw` (the file as read, `features.raw_files.read_raw_source`: a CSV's text, a
        parquet file's typed table) checked against the contract: the typed valid rows
        and the quarantined ones, as for the file's text. Labels are optional.

        Raises `UnusableSource` for a file that cannot be used at all."""

    def prepare(self, valid: pd.DataFrame, source: Path) -> tuple[pd.DataFrame, list[str]]:
        """The valid rows as the features need them, and what a reader of the scores must
        know about how they were made (the summary's notes). By default, as they are."""
        return valid, []

    @abstractmethod
    def feature_chunks(
        self,
        valid: pd.DataFrame,
        feature_names: list[str],
        chunk_rows: int,
        clock: StageClock,
    ) -> Iterator[FeatureChunk]:
        """`valid`'s rows as chunks of at most `chunk_rows` rows with the features
        `feature_names`, in the output's row order; the time spent computing features
        goes to `clock`'s "features" stage.

        Work that needs the whole file is done before this returns; the rest is done as
        the chunks are taken, so the matrix need not exist for the whole file at once."""

    def trailing_fields(self, valid: pd.DataFrame) -> list[pa.Field]:
        """The output's columns after the model's, as `FeatureChunk.trailing` fills them."""
        return []

    def output_schema(self, valid: pd.DataFrame) -> pa.Schema:
        """The output's columns for `valid`'s rows, in order, with their Arrow types."""
        return pa.schema(
            [
                self.id_field,
                pa.field(self.probability_column, pa.float32()),
                pa.field(self.decision_column, pa.bool_()),
                pa.field(MODEL_NAME, pa.string()),
                pa.field(MODEL_VERSION, pa.string()),
                *self.trailing_fields(valid),
            ]
        )

    def scored_table(
        self,
        chunk: FeatureChunk,
        probabilities: np.ndarray,
        bundle: RegisteredBundle,
        schema: pa.Schema,
    ) -> pa.Table:
        """The output rows of `chunk` with the columns of `schema` (`output_schema`): its
        ids, `probabilities`, the decisions at the model's threshold, the model's name and
        version, then the trailing columns. Built from the arrays, without a DataFrame:
        pandas held the name and the version as one Python string per row."""
        rows = len(chunk.ids)
        decisions = np.asarray(probabilities >= bundle.meta.threshold, dtype=bool)
        columns = [
            pa.array(chunk.ids, type=self.id_field.type),
            pa.array(np.asarray(probabilities, dtype=np.float32)),
            pa.array(decisions),
            pa.repeat(pa.scalar(bundle.name, pa.string()), rows),
            pa.repeat(pa.scalar(bundle.version, pa.string()), rows),
        ]
        trailing = schema.names[len(columns) :]
        columns += [
            pa.array(chunk.trailing[name], type=schema.field(name).type) for name in trailing
        ]
        return pa.Table.from_arrays(columns, schema=schema)
