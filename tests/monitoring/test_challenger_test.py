"""The challenger test on a real registry: a challenger no better than the champion stays one."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow import MlflowClient

from mlops.reference import load_reference
from mlops.settings import Settings
from monitoring.challenger_test import run_challenger_test

pytestmark = pytest.mark.slow


def test_an_equal_challenger_is_kept_for_inspection_never_promoted(
    churn_run: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    skip = shutil.ignore_patterns("prefect", "raw", "predictions.db*", "labels", "monitoring")
    shutil.copytree(Path(str(churn_run["home"])), home, ignore=skip)
    monkeypatch.setenv("MLOPS_HOME", str(home))
    settings = Settings()
    # MLflow's registry looks a `models:/m-...` source up through the process-wide
    # tracking URI, not the client's: an earlier test may have pointed it elsewhere.
    mlflow.set_tracking_uri(settings.tracking_uri)
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    champion = client.get_model_version_by_alias("churn", "champion")
    # The champion's own model under a new version: it cannot beat itself.
    same = client.create_model_version("churn", champion.source, run_id=champion.run_id)
    client.set_registered_model_alias("churn", "challenger", same.version)
    labelled = load_reference(settings, "churn", str(champion.version)).reset_index()
    labelled["request_id"] = labelled["index"].astype(str)
    labelled["model_version"] = str(champion.version)

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
