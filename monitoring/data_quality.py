"""The data-quality check's Evidently metrics, and how its snapshot is read.

Every current row is checked: `MissingValueCount` per feature, `OutRangeValueCount`
against the reference's [min, max] of each numerical feature, `OutListValueCount` against
the reference's values of each categorical feature (new categories), each with an
Evidently test on its share at the declared `QualityLimits`. `monitoring.checks` runs it.
"""

from __future__ import annotations

import math
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
from evidently.metrics import MissingValueCount, OutListValueCount, OutRangeValueCount, RowCount
from evidently.tests import lte

from monitoring.check_results import DataQuality, FeatureQuality, QualityLimits
from monitoring.drift import failed, test_statuses

__all__ = ["data_quality_metrics", "read_data_quality"]

_MISSING: Final = "evidently:metric_v2:MissingValueCount"
_OUT_OF_RANGE: Final = "evidently:metric_v2:OutRangeValueCount"
_OUT_OF_LIST: Final = "evidently:metric_v2:OutListValueCount"
_ROW_COUNT: Final = "evidently:metric_v2:RowCount"
_CHECK_NAMES: Final = {
    _MISSING: "missing values",
    _OUT_OF_RANGE: "out of the reference's range",
    _OUT_OF_LIST: "values the reference never had",
}


def data_quality_metrics(
    reference: pd.DataFrame, numerical: list[str], categorical: list[str], limits: QualityLimits
) -> list[Any]:
    """The report's metrics, with their tests: the row count, then missing values of every
    feature, the reference's range of each numerical one, its values of each categorical one."""
    features = numerical + categorical
    metrics: list[Any] = [RowCount()]
    for name in features:
        metrics.append(MissingValueCount(column=name, share_tests=[lte(limits.missing_share)]))
    # On the column's float64 values, without `dropna()`'s copy of a million-row reference:
    # fmin and fmax skip NaN, and give NaN only when no value is present.
    for name in numerical:
        values = _floats(reference[name])
        low = np.fmin.reduce(values) if values.size else np.nan
        if not np.isnan(low):
            metrics.append(
                OutRangeValueCount(
                    column=name,
                    left=float(low),
                    right=float(np.fmax.reduce(values)),
                    share_tests=[lte(limits.out_of_range_share)],
                )
            )
    for name in categorical:
        known = sorted(float(v) for v in pd.unique(_floats(reference[name])) if not np.isnan(v))
        metrics.append(
            OutListValueCount(
                column=name, values=known, share_tests=[lte(limits.new_category_share)]
            )
        )
    return metrics


def read_data_quality(
    snapshot: dict[str, Any], numerical: list[str], categorical: list[str], limits: QualityLimits
) -> DataQuality:
    """The figures and verdicts of the report's `Snapshot.dict()`, per feature and overall."""
    statuses = test_statuses(snapshot)
    per_feature = {
        name: _no_findings("numerical" if name in numerical else "categorical")
        for name in numerical + categorical
    }
    rows = 0
    for metric in snapshot["metrics"]:
        kind, value = metric["config"]["type"], metric["value"]
        if kind == _ROW_COUNT:
            rows = int(value)
        elif kind in _CHECK_NAMES:
            name = metric["config"]["column"]
            quality = per_feature[name]
            count, share = int(value["count"]), _share(value["share"])
            if kind == _MISSING:
                quality["missing_count"], quality["missing_share"] = count, share
            else:
                quality["out_of_reference_count"] = count
                quality["out_of_reference_share"] = share
            if failed(statuses, metric["id"], f"{_CHECK_NAMES[kind]} of {name!r}"):
                quality["failed"].append(_CHECK_NAMES[kind])
    failures = [f"{name}: {check}" for name, q in per_feature.items() for check in q["failed"]]
    return DataQuality(
        rows=rows,
        max_missing_share=max(quality["missing_share"] for quality in per_feature.values()),
        passed=not failures,
        failures=failures,
        per_feature=per_feature,
        limits=limits,
    )


def _floats(column: pd.Series) -> np.ndarray:
    """The column as float64 values, missing ones NaN (no copy of a float64 column)."""
    if column.dtype == np.float64:
        return column.to_numpy()
    return column.to_numpy(dtype=np.float64, na_value=np.nan)


def _no_findings(column_type: Literal["numerical", "categorical"]) -> FeatureQuality:
    return FeatureQuality(
        column_type=column_type,
        missing_count=0,
        missing_share=0.0,
        out_of_reference_count=0,
        out_of_reference_share=0.0,
        failed=[],
    )


def _share(value: Any) -> float:
    share = float(value)
    return 0.0 if math.isnan(share) else share  # an all-missing column: no values to judge
