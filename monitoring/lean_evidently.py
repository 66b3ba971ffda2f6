"""Evidently's drift metrics and datasets without the work a monitoring check throws away.

A check reads numbers and pass/fail from Evidently's snapshots (`monitoring.checks`).
Three things Evidently 0.7 does on the way cost most of a large check and are never read
(a profile of a 300,000-row check: 44 s, 15 of them in figures):

- `ValueDrift` builds plotly figures of each column (histograms, a binned time line) and
  computes the data behind them, then files them as the metric's widget.
  `LeanValueDrift` runs the same Evidently stattest on the same cleaned column, with
  the same resolved method and threshold and the same test, and leaves the widget to
  Evidently's default (a counter of the score).
- `DriftedColumnsCount` runs Evidently's legacy dataset-drift metric, which computes
  every column's drift a second time (and its figures). `LeanDriftedColumnsCount` counts
  the verdicts of the report's `LeanValueDrift` of the same columns, which Evidently's
  context has already computed: the same count and share, by the same rule.
- `PandasDataset` copies the frame and computes quantiles and value counts of every
  column, which no metric here reads. `FrameDataset` wraps the frame as it is.

The metrics keep Evidently's type tags and metric ids (`ValueDrift`, `DriftedColumnsCount`),
so snapshots, dashboard panels and `monitoring.drift.read_drift` see no difference but the
widgets. Evidently's own classes stay as they are: the training-time drift report
(`monitoring.drift.build_drift_report`) still renders its figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from evidently.core.datasets import Dataset, DatasetColumn, DatasetStats
from evidently.core.metric_types import (
    CountCalculation,
    CountValue,
    MetricTestResult,
    SingleValue,
    SingleValueCalculation,
)
from evidently.core.report import Context
from evidently.legacy.calculations.stattests import get_stattest
from evidently.legacy.core import ColumnType
from evidently.legacy.options.data_drift import DataDriftOptions
from evidently.legacy.tests.base_test import TestStatus
from evidently.metrics import DriftedColumnsCount, ValueDrift
from evidently.metrics.column_statistics import (
    DriftedColumnCalculation,
    ValueDriftBoundTest,
    ValueDriftTest,
)

__all__ = [
    "ColumnDriftResult",
    "FrameDataset",
    "LeanDriftedColumnsCount",
    "LeanValueDrift",
    "column_drift",
]


class LeanValueDrift(ValueDrift):
    """`ValueDrift`, computed by `LeanValueDriftCalculation` (see the module doc)."""

    class Config:
        # Evidently's own tag: snapshots hold `ValueDrift`, and are read back as one.
        type_alias = "evidently:metric_v2:ValueDrift"

    @classmethod
    def __get_classpath__(cls) -> str:
        # Evidently hashes the class path into the metric id: `ValueDrift`'s keeps the ids.
        return ValueDrift.__get_classpath__()


class LeanDriftedColumnsCount(DriftedColumnsCount):
    """`DriftedColumnsCount`, computed by `LeanDriftedColumnsCountCalculation`."""

    class Config:
        type_alias = "evidently:metric_v2:DriftedColumnsCount"

    @classmethod
    def __get_classpath__(cls) -> str:
        return DriftedColumnsCount.__get_classpath__()


class LeanValueDriftCalculation(SingleValueCalculation[LeanValueDrift]):
    """`ValueDriftCalculation` without the figures and the data behind them."""

    def calculate(
        self, context: Context, current_data: Dataset, reference_data: Dataset | None
    ) -> SingleValue:
        if reference_data is None:
            raise ValueError("Reference data is required for Value Drift")
        column = self.metric.column
        column_type = current_data.column(column).type
        drift = column_drift(
            current_data.as_dataframe()[column],
            reference_data.as_dataframe()[column],
            column,
            column_type,
            method=self.metric.method,
            threshold=self.metric.threshold,
        )
        # As ValueDriftCalculation: the resolved method and threshold go into the config.
        if self.metric.method is None:
            self.resolve_parameter("method", drift.method)
        if self.metric.threshold is None:
            self.resolve_parameter("threshold", drift.threshold)
        result = self.result(drift.score)
        if self.metric.tests is None and context.configuration.include_tests:
            result.set_tests(
                [
                    MetricTestResult(
                        id="drift",
                        name=f"Value Drift for column {column}",
                        description=f"Drift score is {drift.score:0.2f}. "
                        f"The drift detection method is {drift.method}. "
                        f"The drift threshold is {drift.threshold:0.2f}.",
                        status=TestStatus.FAIL if drift.drifted else TestStatus.SUCCESS,
                        metric_config=self.to_metric_config(),
                        test_config={},
                        bound_test=ValueDriftBoundTest(
                            test=ValueDriftTest(), metric_fingerprint=self.to_metric().metric_id
                        ),
                    )
                ]
            )
        return result

    def display_name(self) -> str:
        return f"Value drift for {self.metric.column}"


class LeanDriftedColumnsCountCalculation(CountCalculation[LeanDriftedColumnsCount]):
    """The count and share of the columns whose `LeanValueDrift` test found drift."""

    def calculate(
        self, context: Context, current_data: Dataset, reference_data: Dataset | None
    ) -> CountValue:
        if reference_data is None:
            raise ValueError("Reference data is required for drifted columns count")
        columns = self.metric.columns
        if columns is None or self._differs_from_column_drift(current_data, reference_data):
            return DriftedColumnCalculation(self.id, self.metric).calculate(
                context, current_data, reference_data
            )
        drifted = 0
        for column in columns:
            value_drift = LeanValueDrift(
                column=column, method=self.metric.method, threshold=self.metric.threshold
            )
            result = context.calculate_metric(value_drift.to_calculation())
            drifted += any(test.status == TestStatus.FAIL for test in result.tests)
        # Evidently's rule (legacy get_dataset_drift): drifted / columns, as a float.
        return self.result(drifted, drifted / len(columns))

    def _differs_from_column_drift(self, current: Dataset, reference: Dataset) -> bool:
        """Whether Evidently's own count could differ from the per-column verdicts: per-column
        settings this class does not pass on, or infinities, which Evidently's count keeps in
        a column without missing values and `ValueDrift` drops."""
        metric = self.metric
        if any(
            setting is not None
            for setting in (
                metric.embeddings,
                metric.cat_method,
                metric.num_method,
                metric.text_method,
                metric.per_column_method,
                metric.cat_threshold,
                metric.num_threshold,
                metric.text_threshold,
                metric.per_column_threshold,
            )
        ):
            return True
        for dataset in (current, reference):
            for column in metric.columns or []:
                values = dataset.column(column).data
                if pd.api.types.is_float_dtype(values) and np.isinf(values.to_numpy()).any():
                    return True
        return False

    def display_name(self) -> str:
        return "Count of Drifted Columns"

    def share_display_name(self) -> str:
        return "Share of Drifted Columns"


@dataclass(frozen=True)
class ColumnDriftResult:
    """One column's drift as Evidently's stattest gave it."""

    score: float
    drifted: bool
    method: str
    threshold: float


def column_drift(
    current: pd.Series,
    reference: pd.Series,
    column: str,
    column_type: ColumnType,
    *,
    method: Any = None,
    threshold: float | None = None,
) -> ColumnDriftResult:
    """What Evidently's `get_one_column_drift` finds for a feature column, without the data
    for its figures: the same options, cleaning, checks and stattest, in its order."""
    if column_type not in (ColumnType.Numerical, ColumnType.Categorical):
        raise ValueError(
            f"Cannot calculate drift metric for column '{column}' with type {column_type}"
        )
    options = DataDriftOptions(all_features_stattest=method, all_features_threshold=threshold)
    stattest = options.get_feature_stattest_func(column, column_type.value)
    resolved_threshold = options.get_threshold(column, column_type.value)
    reference = reference.replace([-np.inf, np.inf], np.nan).dropna()
    if reference.empty:
        raise ValueError(
            f"An empty column '{column}' was provided for drift calculation "
            "in the reference dataset."
        )
    current = current.replace([-np.inf, np.inf], np.nan).dropna()
    if current.empty:
        raise ValueError(
            f"An empty column '{column}' was provided for drift calculation in the current dataset."
        )
    if column_type == ColumnType.Numerical:
        for name, values in (("reference", reference), ("current", current)):
            if not pd.api.types.is_numeric_dtype(values):
                raise ValueError(
                    f"Column '{column}' in {name} dataset should contain numerical values only."
                )
    test = get_stattest(reference, current, column_type, stattest)
    found = test(reference, current, column_type, resolved_threshold)
    return ColumnDriftResult(
        float(found.drift_score), bool(found.drifted), test.display_name, found.actual_threshold
    )


class FrameDataset(Dataset):
    """An Evidently `Dataset` over a frame as it is: no copy, no column statistics.

    Enough for metrics that read columns (`Dataset.column`) and the row count, as the
    drift and data-quality metrics of a check do; the caller must not change the frame
    while a report runs. The data definition is taken as given, nothing inferred.
    """

    def __init__(self, data: pd.DataFrame, data_definition: Any) -> None:
        self._data = data
        self._data_definition = data_definition
        self._metadata: dict[str, Any] = {}
        self._tags: list[str] = []

    def as_dataframe(self) -> pd.DataFrame:
        return self._data

    def column(self, column_name: str) -> DatasetColumn:
        column_type = self._data_definition.get_column_type(column_name)
        return DatasetColumn(column_type, self._data[column_name])

    def subdataset(self, column_name: str, label: object) -> Dataset:
        return FrameDataset(self._data[self._data[column_name] == label], self._data_definition)

    def stats(self) -> DatasetStats:
        rows, columns = self._data.shape
        return DatasetStats(rows, columns, {})

    def add_descriptor(self, descriptor: Any, options: Any = None) -> None:
        raise NotImplementedError("FrameDataset holds a frame as it is: no descriptors")

    def save(self, uri: str) -> None:
        raise NotImplementedError("FrameDataset is not saved")

    @classmethod
    def _can_load(cls, uri: str) -> bool:
        return False

    @classmethod
    def _load(cls, uri: str) -> Dataset:
        raise NotImplementedError("FrameDataset is not loaded")
