"""Data-drift reports: compare a current frame with a reference frame using Evidently.

``build_drift_report`` runs Evidently's ``DataDriftPreset`` over the chosen columns, writes the
self-contained HTML report, Evidently's JSON of the snapshot and a small summary next to each
other, and returns a ``DriftSummary`` read from the snapshot (scores, methods and verdicts are
Evidently's; nothing is recomputed here). ``log_drift_to_mlflow`` attaches those files and two
headline metrics to the active MLflow run.

``data_definition``, ``read_drift`` and ``read_column_drift`` are shared with the monitoring
checks (``monitoring.checks``), which run the same per-column metrics on served traffic.

Column types are always declared to Evidently. Left to itself Evidently calls any integer column
with at most ten distinct values categorical; here the caller decides, and by default the dtype
does (numbers are numerical, everything else categorical), so declare 0/1 flags and small integer
codes in ``categorical_columns``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TypedDict

import mlflow
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

if TYPE_CHECKING:
    from evidently.core.report import Snapshot

__all__ = [
    "DRIFT_SHARE_THRESHOLD",
    "ColumnDrift",
    "DriftSummary",
    "build_drift_report",
    "data_definition",
    "log_drift_to_mlflow",
    "read_column_drift",
    "read_drift",
]

DRIFT_SHARE_THRESHOLD: Final[float] = 0.5
"""Dataset drift is declared when at least this share of the columns drifted (Evidently's rule)."""

# Type tags Evidently writes in ``Snapshot.dict()``; the summary is read from that public form.
_VALUE_DRIFT: Final = "evidently:metric_v2:ValueDrift"
_DRIFTED_COLUMNS_COUNT: Final = "evidently:metric_v2:DriftedColumnsCount"
_FAILED: Final = "FAIL"
_PASSED: Final = "SUCCESS"


class ColumnDrift(TypedDict):
    """Evidently's verdict on one column, and the type it was declared with."""

    drift_score: float
    drifted: bool
    method: str
    threshold: float
    column_type: Literal["numerical", "categorical"]


@dataclass(frozen=True)
class DriftSummary:
    """What a drift report found, and where its files are."""

    dataset_drift: bool
    drift_share: float
    drift_share_threshold: float
    drifted_columns: list[str]
    n_columns: int
    per_column: dict[str, ColumnDrift]
    html_path: Path
    json_path: Path
    summary_path: Path

    @property
    def n_drifted_columns(self) -> int:
        return len(self.drifted_columns)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, for logs and the ``.summary.json`` file."""
        return {
            "dataset_drift": self.dataset_drift,
            "drift_share": self.drift_share,
            "drift_share_threshold": self.drift_share_threshold,
            "n_columns": self.n_columns,
            "n_drifted_columns": self.n_drifted_columns,
            "drifted_columns": list(self.drifted_columns),
            "per_column": {name: dict(drift) for name, drift in self.per_column.items()},
            "html_path": str(self.html_path),
            "json_path": str(self.json_path),
            "summary_path": str(self.summary_path),
        }


def build_drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    out_dir: Path,
    name: str,
    numerical_columns: list[str] | None = None,
    categorical_columns: list[str] | None = None,
    drift_share_threshold: float = DRIFT_SHARE_THRESHOLD,
) -> DriftSummary:
    """Run Evidently's data-drift report of ``current`` against ``reference`` and write it out.

    Columns: when neither list is given, every column present in both frames is compared, typed
    by dtype (numbers and not booleans → numerical; booleans, strings, objects and categories →
    categorical; datetimes are skipped). When either list is given, exactly the listed columns
    are compared, with the declared types.

    Writes ``<out_dir>/<name>.html``, ``<out_dir>/<name>.json`` (Evidently's snapshot JSON) and
    ``<out_dir>/<name>.summary.json`` (``DriftSummary.to_dict()``), creating ``out_dir``.

    Raises:
        ValueError: ``name`` is not a plain file name, a frame is empty, a column is missing
            from either frame or declared twice, a declared numerical column is not numeric,
            or no column is left to compare.
    """
    if not 0 < drift_share_threshold <= 1:
        raise ValueError(f"drift_share_threshold must be in (0, 1], got {drift_share_threshold}")
    if reference.empty or current.empty:
        raise ValueError("reference and current must both have rows")
    if not name or Path(name).name != name:
        raise ValueError(f"name must be a plain file name, got {name!r}")
    numerical, categorical = _column_types(
        reference, current, numerical_columns, categorical_columns
    )
    snapshot = _run_preset(reference, current, numerical, categorical, drift_share_threshold, name)
    html_path, json_path = _save_snapshot(snapshot, out_dir, name)
    dataset_drift, drift_share, per_column = read_drift(snapshot.dict(), numerical, categorical)
    summary = DriftSummary(
        dataset_drift=dataset_drift,
        drift_share=drift_share,
        drift_share_threshold=drift_share_threshold,
        drifted_columns=sorted(col for col, drift in per_column.items() if drift["drifted"]),
        n_columns=len(numerical) + len(categorical),
        per_column=per_column,
        html_path=html_path,
        json_path=json_path,
        summary_path=out_dir / f"{name}.summary.json",
    )
    summary.summary_path.write_text(
        json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8"
    )
    return summary


def _run_preset(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numerical: list[str],
    categorical: list[str],
    drift_share_threshold: float,
    name: str,
) -> Snapshot:
    """Evidently's `DataDriftPreset` over exactly these columns, with its tests."""
    columns = numerical + categorical
    definition = data_definition(numerical, categorical)
    report = Report(
        [DataDriftPreset(columns=columns, drift_share=drift_share_threshold)],
        # The per-column and dataset verdicts are the tests' pass/fail, so the tests must run.
        include_tests=True,
    )
    return report.run(
        Dataset.from_pandas(current[columns], data_definition=definition),
        Dataset.from_pandas(reference[columns], data_definition=definition),
        name=name,
    )


def _save_snapshot(snapshot: Snapshot, out_dir: Path, name: str) -> tuple[Path, Path]:
    """Write the snapshot's HTML report and JSON under `out_dir`; their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path = out_dir / f"{name}.html"
    json_path = out_dir / f"{name}.json"
    # Evidently's save_* silently write nothing unless given a str.
    snapshot.save_html(str(html_path))
    snapshot.save_json(str(json_path))
    return html_path, json_path


def log_drift_to_mlflow(summary: DriftSummary, *, artifact_path: str = "drift") -> None:
    """Log the report files as artifacts and the drift headline as metrics to the active run.

    Metrics: ``drift_share`` and ``n_drifted_columns``. The caller owns the run.

    Raises:
        RuntimeError: there is no active MLflow run.
    """
    if mlflow.active_run() is None:
        raise RuntimeError("log_drift_to_mlflow needs an active MLflow run (mlflow.start_run())")
    for path in (summary.html_path, summary.json_path, summary.summary_path):
        mlflow.log_artifact(str(path), artifact_path=artifact_path)
    mlflow.log_metrics(
        {"drift_share": summary.drift_share, "n_drifted_columns": float(summary.n_drifted_columns)}
    )


def data_definition(numerical: list[str], categorical: list[str]) -> DataDefinition:
    """Exactly these numerical and categorical columns, nothing inferred by Evidently."""
    return DataDefinition(
        numerical_columns=numerical,
        categorical_columns=categorical,
        # Empty lists, not None: a None list makes Evidently infer that kind from the data.
        text_columns=[],
        datetime_columns=[],
        unknown_columns=[],
        list_columns=[],
    )


def _column_types(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numerical_columns: list[str] | None,
    categorical_columns: list[str] | None,
) -> tuple[list[str], list[str]]:
    """Resolve the (numerical, categorical) columns to compare and check them in both frames."""
    if numerical_columns is None and categorical_columns is None:
        in_current = set(current.columns)
        shared = [col for col in reference.columns if col in in_current]
        numerical = [col for col in shared if _is_numerical(reference[col])]
        categorical = [col for col in shared if _is_categorical(reference[col])]
    else:
        numerical = list(numerical_columns or [])
        categorical = list(categorical_columns or [])
        declared = numerical + categorical
        twice = sorted({col for col in declared if declared.count(col) > 1})
        if twice:
            raise ValueError(f"columns declared more than once: {twice}")
        for frame_name, frame in (("reference", reference), ("current", current)):
            missing = [col for col in declared if col not in frame.columns]
            if missing:
                raise ValueError(f"columns missing from {frame_name}: {missing}")
    for frame_name, frame in (("reference", reference), ("current", current)):
        not_numeric = [col for col in numerical if not _is_numerical(frame[col])]
        if not_numeric:
            raise ValueError(
                f"numerical columns with a non-numeric dtype in {frame_name}: {not_numeric}"
            )
    if not numerical and not categorical:
        raise ValueError("no columns to compare")
    return numerical, categorical


def _is_numerical(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _is_categorical(series: pd.Series) -> bool:
    return (
        pd.api.types.is_bool_dtype(series)
        or pd.api.types.is_object_dtype(series)
        or pd.api.types.is_string_dtype(series)
        or isinstance(series.dtype, pd.CategoricalDtype)
    )


def test_statuses(snapshot: dict[str, Any]) -> dict[str, list[str]]:
    """Evidently's test statuses (``SUCCESS``, ``FAIL`` ...) by the id of the metric tested."""
    statuses: dict[str, list[str]] = {}
    for test in snapshot["tests"]:
        statuses.setdefault(test["metric_config"]["metric_id"], []).append(test["status"])
    return statuses


def failed(statuses: dict[str, list[str]], metric_id: str, what: str) -> bool:
    """Whether Evidently failed any test of a metric; a metric without a verdict is an error."""
    found = statuses.get(metric_id, [])
    if not found or any(status not in (_FAILED, _PASSED) for status in found):
        raise RuntimeError(f"Evidently gave no pass/fail for {what} (statuses {found})")
    return _FAILED in found


def read_drift(
    snapshot: dict[str, Any], numerical: list[str], categorical: list[str]
) -> tuple[bool, float, dict[str, ColumnDrift]]:
    """Pull the dataset verdict, the drifted share and per-column results from ``Snapshot.dict()``.

    The snapshot holds one ``DriftedColumnsCount`` (value: count and share; its test fails when
    the share reaches the threshold) and one ``ValueDrift`` per column (value: the score; config:
    the method and threshold Evidently resolved; its test fails when the column drifted), as the
    preset makes them. ``ValueDrift`` of other columns (say, the model's score) may be there too
    and are left out.
    """
    columns = numerical + categorical
    statuses = test_statuses(snapshot)
    dataset_drift: bool | None = None
    drift_share = float("nan")
    per_column: dict[str, ColumnDrift] = {}
    for metric in snapshot["metrics"]:
        config = metric["config"]
        if config["type"] == _DRIFTED_COLUMNS_COUNT:
            drift_share = float(metric["value"]["share"])
            dataset_drift = failed(statuses, metric["id"], "the dataset drift")
        elif config["type"] == _VALUE_DRIFT and config["column"] in columns:
            column = config["column"]
            per_column[column] = _column_drift(
                metric, statuses, "numerical" if column in numerical else "categorical"
            )
    if dataset_drift is None or set(per_column) != set(columns):
        raise RuntimeError(
            "Evidently's snapshot lacks the expected drift metrics: "
            f"dataset verdict {'found' if dataset_drift is not None else 'missing'}, "
            f"columns {sorted(per_column)} for {sorted(columns)}"
        )
    return dataset_drift, drift_share, {col: per_column[col] for col in columns}


def read_column_drift(
    snapshot: dict[str, Any], column: str, column_type: Literal["numerical", "categorical"]
) -> ColumnDrift:
    """The one ``ValueDrift`` result of ``column`` in ``Snapshot.dict()``."""
    statuses = test_statuses(snapshot)
    found = [
        metric
        for metric in snapshot["metrics"]
        if metric["config"]["type"] == _VALUE_DRIFT and metric["config"]["column"] == column
    ]
    if len(found) != 1:
        raise RuntimeError(f"Evidently's snapshot has {len(found)} drift results for {column!r}")
    return _column_drift(found[0], statuses, column_type)


def _column_drift(
    metric: dict[str, Any],
    statuses: dict[str, list[str]],
    column_type: Literal["numerical", "categorical"],
) -> ColumnDrift:
    config = metric["config"]
    return ColumnDrift(
        drift_score=float(metric["value"]),
        drifted=failed(statuses, metric["id"], f"column {config['column']!r}"),
        method=str(config["method"]),
        threshold=float(config["threshold"]),
        column_type=column_type,
    )
