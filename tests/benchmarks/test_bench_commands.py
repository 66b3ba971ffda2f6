"""Each `mlops bench` command run once at a tiny size: a smoke test, not a measurement.

The commands run in this process (typer's runner) so that the sizes the benchmarks fix
for docs/benchmarks.md (the handbook's 5,000 cards over 183 days, 5,000 churn customers,
a million rows for the batch engines) can be patched down to seconds; the figures they
print are not checked, only that each command ends well and reports its figures.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.helpers.runs import forget_mlflow_uris

pytestmark = pytest.mark.slow


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run `mlops bench ...`; returns the figures of its last (JSON) line."""
    # `prepare` replaces warnings.showwarning and the commands set MLOPS_HOME and MLflow's
    # URIs process-wide: all are put back after the test.
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    monkeypatch.setenv("MLOPS_HOME", os.environ["MLOPS_HOME"])

    def run(*args: str) -> dict[str, Any]:
        result = CliRunner().invoke(app, ["bench", *args, "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output[-4000:]
        # The figures are the last JSON line; libraries print lines of their own after it.
        last = [line for line in result.output.splitlines() if line.startswith("{")][-1]
        figures: dict[str, Any] = json.loads(last)
        return figures

    yield run
    forget_mlflow_uris()


@pytest.fixture
def tiny_fraud_simulation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fraud simulation's default size (`Simulation()`), as the benchmarks use it, made
    tiny. Its defaults, not the class: Prefect validates the flow's parameters against it."""
    from pipelines.fraud_flow import Simulation

    defaults = Simulation.__init__.__defaults__
    assert defaults is not None and defaults[:2] == (5000, 10000)
    monkeypatch.setattr(Simulation.__init__, "__defaults__", (60, 120, *defaults[2:]))


def test_bench_monitoring(bench: Any) -> None:
    figures = bench("monitoring", "--rows", "1000", "--features", "5")
    assert figures["check_s"] > 0 and "same_verdicts_as_unsampled" in figures


def test_bench_monitoring_needs_the_five_features_its_score_reads() -> None:
    # Fewer than five was an IndexError deep in the synthetic frames; now a usage error.
    result = CliRunner().invoke(app, ["bench", "monitoring", "--features", "4"])
    assert result.exit_code == 2


def test_bench_pipeline_churn(
    bench: Any, tmp_path: Path, prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipelines.churn_flow

    flow = pipelines.churn_flow.churn_pipeline
    monkeypatch.setattr(
        pipelines.churn_flow, "churn_pipeline", functools.partial(flow, customers=300)
    )
    figures = bench("pipeline", "churn", "--home", str(tmp_path / "home"))
    assert figures["benchmark"] == "pipeline churn" and figures["wall_s"] > 0
    assert figures["rows"]["rows_valid"] == 300


def test_bench_pipeline_fraud(
    bench: Any,
    tmp_path: Path,
    prefect_api: str,
    tiny_fraud_simulation: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLOPS_FRAUD_SEARCH_TRIALS", "2")
    figures = bench("pipeline", "fraud", "--home", str(tmp_path / "home"))
    assert figures["benchmark"] == "pipeline fraud" and figures["test_metrics"]


def test_bench_pipeline_fraud_scaled_in_process(
    bench: Any, tmp_path: Path, tiny_fraud_simulation: None
) -> None:
    figures = bench(
        "pipeline", "fraud", "--scale", "1", "--in-process", "--home", str(tmp_path / "home")
    )
    assert figures["transactions"] > 0 and figures["test_metrics"]


def test_bench_serving(bench: Any, churn_run: dict[str, Any], tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("wrk is required under CI (`make wrk`, which .ci/run and the workflow run)")
        pytest.skip("wrk is not installed (`make wrk` installs it with apt-get)")
    home = tmp_path / "home"
    skip = shutil.ignore_patterns("prefect", "raw", "predictions.db*", "labels", "monitoring")
    shutil.copytree(Path(str(churn_run["home"])), home, ignore=skip)
    # MLServer's environment is a download of its own: tests/benchmarks/test_mlserver_peer.py.
    figures = bench("serving", "--home", str(home), "--seconds", "1", "--no-mlserver")
    assert figures["servers"]["ours"]["c1"]["rps"] > 0
    # The ceiling took our bodies, validated them as ours does and did nothing else.
    ceiling = figures["servers"]["ceiling"]
    assert ceiling["c16"]["rps"] > 0
    assert ceiling["first_response"]["churn_probability"] == 0.5
    assert (
        ceiling["first_response"]["customer_id"]
        == (figures["servers"]["ours"]["first_response"]["customer_id"])
    )
    assert figures["ratios"]["rps_c16_ours_over_ceiling"] > 0
    v2 = figures["v2"]["churn"]["servers"]
    assert v2["mlserver"] == "skipped (--no-mlserver)"
    # Until the V2 routes exist, our leg says so instead of failing the benchmark.
    assert isinstance(v2["ours"], dict) or v2["ours"].startswith("unavailable")
    assert figures["v2"]["fraud"] == "no fraud champion in this home"
    assert figures["fraud"] == "no fraud champion in this home"


def test_bench_batch(
    bench: Any, tiny_demo: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import benchmarks.batch
    import sources.fraud_simulator

    monkeypatch.setattr(benchmarks.batch, "MODEL_ROWS", 2000)
    # The default payments it simulates (5,000 cards over 183 days), a few cards instead.
    simulate = sources.fraud_simulator.simulate_transactions
    small = functools.partial(simulate, n_customers=60, n_terminals=120, n_days=70)
    monkeypatch.setattr(sources.fraud_simulator, "simulate_transactions", small)
    home = tmp_path / "home"
    shutil.copytree(Path(str(tiny_demo["home"])), home, ignore=shutil.ignore_patterns("prefect"))
    figures = bench("batch", "--home", str(home), "--churn-rows", "1000")
    assert figures["fraud_file"]["rows_scored"] > 0
    assert figures["churn_file"]["rows_scored"] == 1000
