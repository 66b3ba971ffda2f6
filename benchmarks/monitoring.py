"""Benchmark of a monitoring check: 100,000 served rows x 30 features vs a 100,000-row reference.

The frames are synthetic but shaped like the case studies' features: numerical columns of
several distributions (normal, log-normal, counts, bounded) and 0/1 flags, with a third of
the features shifted in the current window, and a score. The check is `run_checks` as the
monitoring flow runs it (drift on Evidently's sample, data quality on every row); the same
check with the drift on every row is timed beside it, with whether both found the same
drifted features, and so is the drift alone through `DataDriftPreset` on every row (the
training-time report of `monitoring.drift`). A small check runs first, so the figures
leave out Evidently's one-off import and set-up cost.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from benchmarks.machine import machine, peak_rss_mb
from mlops.settings import Settings

if TYPE_CHECKING:
    from monitoring.checks import MonitoringResult


def synthetic_frames(
    rows: int, features: int, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, list[str], list[str]]:
    """(reference, current, feature names, shifted features); a fifth of the features are flags."""
    rng = np.random.default_rng(seed)
    names = [f"feature_{i:02d}" for i in range(features)]
    shifted = names[::3]

    def frame(shift: bool) -> pd.DataFrame:
        # One (features, rows) block filled column by column, which the frame then wraps
        # without a copy: the layout pandas gives a frame of float columns, without holding
        # the columns and their stacked copy at once (a million rows: 240 MB more peak).
        block = np.empty((features, rows))
        for i, name in enumerate(names):
            moved = shift and name in shifted
            kind = i % 5
            if kind == 0:
                block[i] = rng.normal(0.5 if moved else 0.0, 1.0, rows)
            elif kind == 1:
                block[i] = rng.lognormal(3.0, 0.6, rows) * (1.3 if moved else 1.0)
            elif kind == 2:
                block[i] = rng.poisson(6 if moved else 4, rows)
            elif kind == 3:
                block[i] = rng.uniform(0.2 if moved else 0.0, 1.0, rows)
            else:
                block[i] = rng.binomial(1, 0.45 if moved else 0.3, rows)
        out = pd.DataFrame(block.T, columns=names, copy=False)
        logit = 0.8 * out[names[0]] - 0.5 * out[names[4]] + 0.1 * out[names[2]] - 1.0
        out["score"] = 1 / (1 + np.exp(-logit))
        out["label"] = rng.binomial(1, out["score"])
        return out

    return frame(False), frame(True), names, shifted


def bench_monitoring(
    rows: int = 100_000, features: int = 30, compare_unsampled: bool = True
) -> dict[str, Any]:
    """Time `run_checks` (and `record_check`) on the synthetic frames; see the module doc.

    Gives the figures docs/benchmarks.md records: seconds per step, what the check found,
    with `compare_unsampled` the unsampled check and the preset report beside it, the peak
    memory, the load average before and the machine.
    """
    from monitoring.checks import binary_features, run_checks

    load_before = os.getloadavg()[0]
    reference, current, names, shifted = synthetic_frames(rows, features)
    flags = binary_features(reference, names)
    arguments: dict[str, Any] = {
        "feature_names": names,
        "threshold": 0.5,
        "test_metrics": {"roc_auc": 0.8},
    }
    # Evidently's first report in a process pays for imports and registries: not the check's.
    small = reference.iloc[:1000], current.iloc[:1000]
    run_checks("bench", "1", *small, **arguments)
    started = time.perf_counter()
    result = run_checks("bench", "1", reference, current, **arguments)
    check_s = time.perf_counter() - started
    figures: dict[str, Any] = {
        "benchmark": "monitoring check",
        "rows": {"reference": rows, "current": rows},
        "features": features,
        "check_s": round(check_s, 2),
        "drift_sample_rows": result.data_drift.current_rows,
        "drift_share": result.data_drift.drift_share,
        "drifted_features": result.data_drift.drifted_features,
        "shifted_features": shifted,
        "data_quality_failures": result.data_quality.failures,
        "prediction_drift_score": round(result.prediction_drift.score, 4),
        "prediction_drift_method": result.prediction_drift.method,
    }
    figures["record_s"] = _time_record(result)
    if compare_unsampled:
        figures |= _compare_unsampled(reference, current, names, flags, result, arguments)
    figures["peak_rss_mb"] = peak_rss_mb()
    figures["load_avg_before"] = round(load_before, 2)
    figures["machine"] = machine()
    return figures


def _time_record(result: MonitoringResult) -> float:
    """Seconds `record_check` takes to file the check in a fresh workspace."""
    from monitoring.workspace import record_check

    with tempfile.TemporaryDirectory(prefix="mlops-bench-monitoring-") as home:
        settings = Settings(home=Path(home))
        started = time.perf_counter()
        record_check(settings, result)
        return round(time.perf_counter() - started, 2)


def _compare_unsampled(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    names: list[str],
    flags: list[str],
    result: MonitoringResult,
    arguments: dict[str, Any],
) -> dict[str, Any]:
    """The check with the drift on every row, and the preset report, beside `result`."""
    from monitoring.checks import run_checks
    from monitoring.drift import build_drift_report

    figures: dict[str, Any] = {}
    rows = len(current)
    started = time.perf_counter()
    unsampled = run_checks("bench", "1", reference, current, drift_sample_rows=rows, **arguments)
    figures["check_unsampled_s"] = round(time.perf_counter() - started, 2)
    figures["unsampled_drifted_features"] = unsampled.data_drift.drifted_features
    figures["same_verdicts_as_unsampled"] = (
        unsampled.data_drift.drifted_features == result.data_drift.drifted_features
        and unsampled.prediction_drift.drifted == result.prediction_drift.drifted
    )
    # The training-time report's way: DataDriftPreset, which also renders a summary table.
    with tempfile.TemporaryDirectory(prefix="mlops-bench-preset-") as out:
        started = time.perf_counter()
        build_drift_report(
            reference,
            current,
            out_dir=Path(out),
            name="preset",
            numerical_columns=[n for n in names if n not in flags],
            categorical_columns=flags,
        )
        figures["preset_unsampled_s"] = round(time.perf_counter() - started, 2)
    figures["largest_score_gap_vs_unsampled"] = round(
        max(
            abs(
                unsampled.data_drift.per_feature[name]["drift_score"]
                - result.data_drift.per_feature[name]["drift_score"]
            )
            for name in names
        ),
        4,
    )
    return figures
