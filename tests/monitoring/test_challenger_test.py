"""The challenger test on a real registry: a challenger no better than the champion stays one;
a better one is promoted only within the latency budget, measured on its own ONNX file."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from mlops.reference import load_reference
from mlops.settings import Settings
from monitoring.challenger_test import (
    LATENCY_CALLS,
    judge,
    run_challenger_test,
    single_row_p99_ms,
)
from tests.helpers.registry import register_other_model


def _copied_home(
    churn_run: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    home = tmp_path / "home"
    skip = shutil.ignore_patterns("prefect", "raw", "predictions.db*", "labels", "monitoring")
    shutil.copytree(Path(str(churn_run["home"])), home, ignore=skip)
    monkeypatch.setenv("MLOPS_HOME", str(home))
    settings = Settings()
    # MLflow's registry looks a `models:/m-...` source up through the process-wide
    # tracking URI, not the client's: an earlier test may have pointed it elsewhere.
    mlflow.set_tracking_uri(settings.tracking_uri)
    return settings


def _labelled(settings: Settings, champion_version: str) -> pd.DataFrame:
    """The champion's reference rows as labelled predictions it served."""
    labelled = load_reference(settings, "churn", champion_version).reset_index()
    labelled["request_id"] = labelled["index"].astype(str)
    labelled["model_version"] = champion_version
    return labelled


@pytest.mark.slow
def test_an_equal_challenger_is_kept_for_inspection_never_promoted(
    churn_run: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _copied_home(churn_run, tmp_path, monkeypatch)
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    champion = client.get_model_version_by_alias("churn", "champion")
    # The champion's own model under a new version: it cannot beat itself.
    same = client.create_model_version("churn", champion.source, run_id=champion.run_id)
    client.set_registered_model_alias("churn", "challenger", same.version)
    labelled = _labelled(settings, str(champion.version))

    decision = run_challenger_test(settings, "churn", labelled, "roc_auc")

    assert not decision.promoted
    assert decision.champion_metric == decision.challenger_metric
    assert decision.labelled_rows == len(labelled)
    assert "does not beat the champion's" in decision.reason
    assert decision.comparison is not None and not decision.comparison["significant"]
    assert decision.latency_p99_ms is not None and decision.latency_p99_ms > 0
    assert str(client.get_model_version_by_alias("churn", "champion").version) == str(
        champion.version
    )
    assert str(client.get_model_version_by_alias("churn", "challenger").version) == str(
        same.version
    )
    tags = client.get_model_version("churn", same.version).tags
    assert tags["challenger_test"] == decision.reason


@pytest.mark.slow
@pytest.mark.parametrize("added_ms", [0.0, 40.0], ids=["fast", "slowed"])
def test_a_better_challenger_is_promoted_only_within_its_measured_latency_budget(
    churn_run: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, added_ms: float
) -> None:
    import mlops.onnx_scorer

    # The challenger made slow: every call it is timed on takes `added_ms` longer. A
    # figure that does not come from the timer (a constant) is either over the budget
    # when fast or under it when slowed.
    measure = mlops.onnx_scorer.single_row_timings_ms

    def slowed(*args: Any) -> np.ndarray:
        return measure(*args) + added_ms

    monkeypatch.setattr(mlops.onnx_scorer, "single_row_timings_ms", slowed)
    monkeypatch.setenv("MLOPS_PROMOTION_LATENCY_BUDGET_MS", "20")
    settings = _copied_home(churn_run, tmp_path, monkeypatch)
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    champion = str(client.get_model_version_by_alias("churn", "champion").version)
    labelled = _labelled(settings, champion)
    # A tree fitted on the very rows it is judged on: it beats the champion there.
    challenger, _, _ = register_other_model(settings, "churn", labelled, alias="challenger")

    decision = run_challenger_test(settings, "churn", labelled, "roc_auc")

    assert decision.challenger_metric is not None and decision.champion_metric is not None
    assert decision.challenger_metric > decision.champion_metric
    assert decision.latency_budget_ms == 20
    assert decision.latency_p99_ms is not None and decision.latency_p99_ms > added_ms
    assert f"p99 {decision.latency_p99_ms:.3f} ms" in decision.reason
    now = str(client.get_model_version_by_alias("churn", "champion").version)
    if added_ms:
        assert not decision.promoted and "exceeds the 20.000 ms budget" in decision.reason
        assert now == champion
    else:
        assert decision.promoted and "within 20.000 ms" in decision.reason
        assert now == challenger


def test_the_latency_is_the_99th_percentile_of_the_timed_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlops.onnx_scorer

    calls: list[tuple[Path, np.ndarray, int, int]] = []

    def timings(model: Path, rows: np.ndarray, count: int, warm_up: int) -> np.ndarray:
        calls.append((model, rows, count, warm_up))
        return np.arange(1.0, count + 1)  # 1 .. 500 ms

    monkeypatch.setattr(mlops.onnx_scorer, "single_row_timings_ms", timings)
    bundle = type("Bundle", (), {"onnx_path": tmp_path / "model.onnx"})()
    row = np.arange(4, dtype=np.float32)

    p99 = single_row_p99_ms(bundle, row)  # type: ignore[arg-type]

    assert p99 == pytest.approx(np.quantile(np.arange(1.0, LATENCY_CALLS + 1), 0.99))
    assert p99 == pytest.approx(495.01)
    [(model, rows, count, warm_up)] = calls
    assert model == tmp_path / "model.onnx" and count == LATENCY_CALLS and warm_up > 0
    assert rows.shape == (1, 4)  # one row a call, as serving makes them


def test_exactly_the_minimum_of_labelled_rows_is_enough() -> None:
    promoted, _ = judge(
        metric="roc_auc",
        champion_metric=0.80,
        challenger_metric=0.90,
        labelled_rows=200,
        min_labelled_rows=200,
        min_gain=0.0,
        latency_p99_ms=0.2,
        latency_budget_ms=5.0,
    )
    assert promoted
