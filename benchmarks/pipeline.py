"""Benchmarks of the real pipelines: wall time, peak memory and the model they produce.

Each benchmark runs the same flow a user runs, in a fresh `MLOPS_HOME`, and reports what
docs/benchmarks.md records: the figures, and the machine they were measured on.
"""

from __future__ import annotations

import importlib
import os
import time
from pathlib import Path
from typing import Any

from benchmarks.machine import machine, peak_rss_mb
from mlops.case_studies import case_study as case_study_of


def bench_pipeline(case_study: str, home: Path) -> dict[str, Any]:
    """Run a case study's flow at its default size in `home`; time it and take its memory.

    The flow runs in this process (Prefect's temporary server is a separate process and
    not counted), so the peak is the pipeline's own.
    """
    os.environ["MLOPS_HOME"] = str(home)
    started = time.perf_counter()
    module, name = case_study_of(case_study).pipeline_flow.split(":")
    summary = getattr(importlib.import_module(module), name)()
    return {
        "benchmark": f"pipeline {case_study}",
        "wall_s": round(time.perf_counter() - started, 1),
        "peak_rss_mb": peak_rss_mb(),
        "rows": summary["rows"],
        "winner": summary["winner"],
        "test_metrics": summary["test_metrics"],
        "parity_max_abs_diff": summary["parity_max_abs_diff"],
        "run_id": summary["run_id"],
        "home": str(home),
        "machine": machine(),
    }
