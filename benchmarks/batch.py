"""Batch scoring benchmark: each engine alone on a large matrix, then the file-to-file path.

- model only: the fraud champion scored by each batch engine (`serving.batch.engines`:
  the ONNX bundle, and the native model through MLflow) on every core and on one thread,
  one `predict_proba` over a float32 matrix of `MODEL_ROWS` rows: the window features of
  the first payments of the default simulation, what a batch job scores (tiling the few
  parity rows instead flattered both engines: the same rows stay in cache); best of
  `REPEATS` after a warm-up. Each engine is loaded as `mlops score` loads it, parity
  check included.
- whole path: `serving.batch.pipeline.score_file` on a simulated fraud transaction file
  of the default size (1.76 M rows: validation, window features over the file's history,
  ONNX, parquet out) and on a simulated churn customer file, with the time of each stage;
  both with the default engine ("auto": the native one when it passes the parity check),
  which the figures name.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmarks.machine import machine
from mlops.case_studies import CHURN, FRAUD
from mlops.names import CHAMPION
from mlops.settings import Settings

if TYPE_CHECKING:
    from serving.batch.engines import ProbabilityScorer

MODEL_ROWS = 1_000_000
REPEATS = 3


def model_rows_per_second(scorer: ProbabilityScorer, rows: np.ndarray) -> float:
    """Best rows/s of one predict_proba call over `rows` (after a warm-up call)."""
    scorer.predict_proba(rows[:10_000])
    best = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        scorer.predict_proba(rows)
        best = min(best, time.perf_counter() - started)
    return len(rows) / best


def bench_batch(
    settings: Settings, churn_rows: int, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Every batch figure for the champions of `settings.home`."""
    from features.fraud_windows import fraud_window_features
    from mlops.model_bundle import download_bundle
    from serving.batch.engines import ENGINES, load_scorer
    from serving.batch.pipeline import score_file
    from sources.churn_simulator import simulate_customers, write_customers
    from sources.fraud_simulator import simulate_transactions, write_transactions

    settings.models_dir.mkdir(parents=True, exist_ok=True)
    fraud = download_bundle(
        settings.tracking_uri, settings.fraud_model_name, settings.models_dir, alias=CHAMPION
    )
    log("  simulating the default payments (5,000 cards, 183 days) and their window features")
    simulated = simulate_transactions()
    features = fraud_window_features(simulated.iloc[:MODEL_ROWS])
    rows = features[list(fraud.meta.feature_names)].to_numpy(dtype=np.float32)
    del features
    cores = os.cpu_count() or 1
    figures: dict[str, Any] = {
        "benchmark": "batch scoring",
        "load_avg_before": os.getloadavg()[0],
        "fraud_model": f"{fraud.name} v{fraud.version} ({fraud.meta.candidate})",
        "onnx_rows": MODEL_ROWS,
    }
    probabilities = {}
    for engine in ENGINES:
        log(f"  {engine} alone: {len(rows):,} rows x {rows.shape[1]} features")
        for threads, label in ((cores, "all_cores"), (1, "one_thread")):
            scorer = load_scorer(settings, fraud, engine, threads=threads)
            figures[f"{engine}_rows_per_s_{label}"] = model_rows_per_second(scorer, rows)
        probabilities[engine] = scorer.predict_proba(rows[:100_000])
    gap = np.abs(probabilities["native"] - probabilities["onnx"]).max()
    figures["native_onnx_max_abs_diff"] = float(gap)
    del rows

    with tempfile.TemporaryDirectory(prefix="mlops-bench-batch-") as scratch:
        folder = Path(scratch)
        transactions = write_transactions(simulated, folder / "tx.parquet")
        del simulated
        log("  score_fraud_file")
        summary = score_file(settings, FRAUD, transactions, folder / "fraud_scores.parquet")
        figures["fraud_file"] = _figures(summary.to_dict())
        log(f"  simulating {churn_rows:,} customers")
        customers = write_customers(simulate_customers(churn_rows), folder / "customers.parquet")
        log("  score_churn_file")
        summary = score_file(settings, CHURN, customers, folder / "churn_scores.parquet")
        figures["churn_file"] = _figures(summary.to_dict())
    figures["machine"] = machine()
    return figures


def _figures(summary: dict[str, Any]) -> dict[str, Any]:
    keep = ("rows_scored", "seconds", "rows_per_second", "stage_seconds", "model_version", "engine")
    return {key: summary[key] for key in keep}
