"""Batch scoring benchmark: ONNX alone on a large matrix, then the whole file-to-file path.

- model only: the fraud champion's ONNX session on every core, one `run` over a float32
  matrix of `MODEL_ROWS` rows (the bundle's parity rows, tiled: real feature values);
  best of `REPEATS` after a warm-up.
- whole path: `score_fraud_file` on a simulated transaction file of the default size
  (1.76 M rows: validation, window features over the file's history, ONNX, parquet out)
  and `score_churn_file` on a simulated customer file, with the time of each stage.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mlops.settings import Settings
from pipelines.bench import machine

MODEL_ROWS = 1_000_000
REPEATS = 3


def onnx_rows_per_second(onnx_path: Path, rows: np.ndarray, threads: int) -> float:
    """Best rows/s of one predict_proba call over `rows` (after a warm-up call)."""
    from mlops.onnx_scorer import OnnxScorer

    scorer = OnnxScorer(onnx_path, intra_op_num_threads=threads)
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
    from mlops.model_bundle import download_bundle
    from pipelines.batch_scoring import score_churn_file, score_fraud_file
    from pipelines.sources.churn_simulator import simulate_customers, write_customers
    from pipelines.sources.fraud_simulator import simulate_transactions, write_transactions

    settings.models_dir.mkdir(parents=True, exist_ok=True)
    fraud = download_bundle(
        settings.tracking_uri, settings.fraud_model_name, settings.models_dir, alias="champion"
    )
    sample, _ = fraud.parity_sample()
    rows = np.ascontiguousarray(np.resize(sample, (MODEL_ROWS, sample.shape[1])))
    cores = os.cpu_count() or 1
    figures: dict[str, Any] = {
        "benchmark": "batch scoring",
        "load_avg_before": os.getloadavg()[0],
        "fraud_model": f"{fraud.name} v{fraud.version} ({fraud.meta.candidate})",
        "onnx_rows": MODEL_ROWS,
    }
    log(f"  ONNX alone: {MODEL_ROWS:,} rows x {sample.shape[1]} features")
    figures["onnx_rows_per_s_all_cores"] = onnx_rows_per_second(fraud.onnx_path, rows, cores)
    figures["onnx_rows_per_s_one_thread"] = onnx_rows_per_second(fraud.onnx_path, rows, 1)
    del rows

    with tempfile.TemporaryDirectory(prefix="mlops-bench-batch-") as scratch:
        folder = Path(scratch)
        log("  simulating the default transaction file (5,000 cards, 183 days)")
        transactions = write_transactions(simulate_transactions(), folder / "tx.parquet")
        log("  score_fraud_file")
        summary = score_fraud_file(settings, transactions, folder / "fraud_scores.parquet")
        figures["fraud_file"] = _figures(summary.to_dict())
        log(f"  simulating {churn_rows:,} customers")
        customers = write_customers(simulate_customers(churn_rows), folder / "customers.parquet")
        log("  score_churn_file")
        summary = score_churn_file(settings, customers, folder / "churn_scores.parquet")
        figures["churn_file"] = _figures(summary.to_dict())
    figures["machine"] = machine()
    return figures


def _figures(summary: dict[str, Any]) -> dict[str, Any]:
    keep = ("rows_scored", "seconds", "rows_per_second", "stage_seconds", "model_version")
    return {key: summary[key] for key in keep}
