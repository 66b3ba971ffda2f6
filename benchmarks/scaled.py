"""The fraud features and training at `scale` times the default data, on a Dask cluster.

`mlops bench pipeline fraud --scale N` simulates N default-sized regions (5,000 cards and
10,000 terminals each, 183 days; seeds seed..seed+N-1, identifiers offset so regions never
share a card, a terminal or a transaction), each on a worker, into parquet files; then
the window features partitioned by customer and terminal
(`features.fraud_windows_dask`), written as parquet; then XGBoost with xgboost.dask
(`training.fraud_train_dask`), registered like any model. It reports the wall time of each
stage and the peak resident memory of every worker process, the figure that must stay
bounded while the data grows. The cluster is the one the settings name: the scheduler
at MLOPS_DASK_ADDRESS, or a LocalCluster of MLOPS_DASK_WORKERS worker processes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow

from benchmarks.machine import machine, peak_rss_mb
from features.fraud_schema import CUSTOMER_ID, TERMINAL_ID, TRANSACTION_ID, TX_FRAUD
from mlops.case_studies import FRAUD
from mlops.settings import Settings
from pipelines.fraud_flow import Periods, Simulation
from pipelines.task_runners import local_cluster_kwargs

if TYPE_CHECKING:
    from training.train import TrainingResult

# Larger than any region's transaction count (1.8 M at the default size).
TRANSACTION_ID_STRIDE = 1_000_000_000


def simulate_region(region: int, sim: Simulation, seed: int, path: Path) -> int:
    """Simulate one default-sized region into `path` (parquet); return its row count."""
    from sources.fraud_simulator import simulate_transactions, write_transactions

    frame = simulate_transactions(
        sim.customers, sim.terminals, sim.days, sim.start, seed=seed + region
    )
    frame[CUSTOMER_ID] += region * sim.customers
    frame[TERMINAL_ID] += region * sim.terminals
    frame[TRANSACTION_ID] += region * TRANSACTION_ID_STRIDE
    write_transactions(frame, path)
    return len(frame)


@contextmanager
def _cluster_client(settings: Settings) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    if settings.dask_address:
        with Client(settings.dask_address) as client:
            yield client
        return
    with LocalCluster(**local_cluster_kwargs(settings)) as cluster, Client(cluster) as client:
        yield client


def bench_fraud_scaled(
    scale: int, settings: Settings, *, log: Callable[[str], object] = print
) -> dict[str, Any]:
    """Simulate `scale` regions, compute the features and train on the cluster.

    Gives the figures: seconds per stage, transactions, workers, each worker's peak memory,
    the registered model's winner and test metrics, the load and the machine.
    """
    load_at_start = os.getloadavg()
    raw_dir = settings.raw_dir / f"bench-scale-{scale}"
    features_dir = settings.features_dir / f"bench-scale-{scale}"
    seconds: dict[str, float] = {}
    with _cluster_client(settings) as client:
        workers = len(client.scheduler_info()["workers"])
        log(f"cluster: {workers} workers at {client.scheduler.address}")

        started = time.perf_counter()
        rows = _simulate_regions(client, scale, settings.seed, raw_dir)
        seconds["simulate"] = time.perf_counter() - started
        log(f"simulated {rows:,} transactions in {seconds['simulate']:.0f} s")

        started = time.perf_counter()
        _write_features(raw_dir, features_dir, scale)
        seconds["features"] = time.perf_counter() - started
        log(f"features written in {seconds['features']:.0f} s")

        started = time.perf_counter()
        result = _train_and_register(features_dir, scale, settings, client)
        seconds["train"] = time.perf_counter() - started
        log(f"trained and registered in {seconds['train']:.0f} s")
        # Run in each worker process: its own peak.
        worker_peaks = client.run(peak_rss_mb)
    return {
        "benchmark": f"pipeline fraud --scale {scale} (features and training on Dask)",
        "scale": scale,
        "transactions": rows,
        "workers": workers,
        "memory_limit": settings.dask_memory_limit or "dask default (system memory / workers)",
        "stage_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "wall_s": round(sum(seconds.values()), 1),
        "worker_peak_rss_mb": sorted(worker_peaks.values()),
        "client_peak_rss_mb": peak_rss_mb(),
        "winner": result.winner,
        "test_metrics": result.test_metrics,
        "parity_max_abs_diff": result.parity_max_abs_diff,
        "home": str(settings.home),
        "load_average_at_start": [round(x, 2) for x in load_at_start],
        "machine": machine(),
    }


def _simulate_regions(client: Any, scale: int, seed: int, raw_dir: Path) -> int:
    """Each region simulated on a worker into raw_dir/NNN.parquet; the transactions in all."""
    sim = Simulation()
    regions = [
        client.submit(simulate_region, k, sim, seed, raw_dir / f"{k:03d}.parquet")
        for k in range(scale)
    ]
    rows: int = sum(client.gather(regions))
    return rows


def _write_features(raw_dir: Path, features_dir: Path, scale: int) -> None:
    """The window features of every region's transactions, written as parquet on the cluster."""
    import dask.dataframe as dd

    from features.fraud_windows_dask import fraud_window_features_dask

    transactions = dd.read_parquet(str(raw_dir))
    # Two entity partitions per region: about 0.9 M rows each.
    features = fraud_window_features_dask(transactions, npartitions=2 * scale, carried=(TX_FRAUD,))
    features.to_parquet(str(features_dir), write_index=False)


def _train_and_register(
    features_dir: Path, scale: int, settings: Settings, client: Any
) -> TrainingResult:
    """XGBoost with xgboost.dask on the features, tracked and registered like any model."""
    import dask.dataframe as dd

    from training import tracking
    from training.fraud_train_dask import train_fraud_on_cluster

    tracking.use_experiment(settings, FRAUD.experiment)
    with mlflow.start_run(run_name=f"bench-scale-{scale}"):
        return train_fraud_on_cluster(
            dd.read_parquet(str(features_dir)), Periods().split(), settings, client
        )


def bench_fraud_scaled_in_process(
    scale: int, settings: Settings, *, log: Callable[[str], object] = print
) -> dict[str, Any]:
    """The same stages in this process, for comparison: the regions simulated one after
    the other, `fraud_window_features` on the whole frame, the same XGBoost fitted
    in-process (`train_in_process_reference`; nothing registered)."""
    import pandas as pd

    from features.fraud_windows import fraud_window_features
    from training.fraud_train_dask import train_in_process_reference

    load_at_start = os.getloadavg()
    sim, split = Simulation(), Periods().split()
    raw_dir = settings.raw_dir / f"bench-scale-{scale}"
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    paths = [raw_dir / f"{k:03d}.parquet" for k in range(scale)]
    for region, path in enumerate(paths):
        simulate_region(region, sim, settings.seed, path)
    transactions = pd.concat([pd.read_parquet(path) for path in paths], ignore_index=True)
    seconds["simulate"] = time.perf_counter() - started
    log(f"simulated {len(transactions):,} transactions in {seconds['simulate']:.0f} s")

    started = time.perf_counter()
    frame = fraud_window_features(transactions)
    frame[TX_FRAUD] = transactions[TX_FRAUD].to_numpy()
    rows = len(transactions)
    del transactions
    seconds["features"] = time.perf_counter() - started
    log(f"features in {seconds['features']:.0f} s")

    started = time.perf_counter()
    _, test_metrics = train_in_process_reference(frame, split, settings)
    seconds["train"] = time.perf_counter() - started
    log(f"trained in {seconds['train']:.0f} s")
    return {
        "benchmark": f"pipeline fraud --scale {scale} --in-process",
        "scale": scale,
        "transactions": rows,
        "stage_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "wall_s": round(sum(seconds.values()), 1),
        "peak_rss_mb": peak_rss_mb(),
        "test_metrics": test_metrics,
        "home": str(settings.home),
        "load_average_at_start": [round(x, 2) for x in load_at_start],
        "machine": machine(),
    }
