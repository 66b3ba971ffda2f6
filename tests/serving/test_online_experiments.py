"""Shadow and canary in the real API: the challenger scores or answers, logged under its version.

On a copy of the session's churn home, the champion's run is registered a second time
and given the `challenger` alias: the same model under another version, so every score
can be checked against the champion's. Shadow scoring is also checked with a genuinely
different challenger (`tests.helpers.registry`): with the same model under both versions,
a shadow row scored by the champion would look exactly right.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from features.feature_repo.churn import CHURN_FEATURES_FILE
from mlops.prediction_log import read_predictions
from mlops.reference import load_reference
from mlops.settings import Settings
from serving.app import create_app
from serving.challenger import in_canary
from tests.helpers.registry import register_other_model

pytestmark = pytest.mark.slow


@pytest.fixture
def two_models(
    churn_run: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, str]:
    home = tmp_path / "home"
    skip = shutil.ignore_patterns("prefect", "raw", "predictions.db*", "labels", "monitoring")
    shutil.copytree(Path(str(churn_run["home"])), home, ignore=skip)
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.setenv("MLOPS_SERVED_MODELS", "churn")
    monkeypatch.setenv("MLOPS_MODEL_REFRESH_S", "0")
    settings = Settings()
    # MLflow's registry looks a `models:/m-...` source up through the process-wide
    # tracking URI, not the client's: an earlier test may have pointed it elsewhere.
    mlflow.set_tracking_uri(settings.tracking_uri)
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    champion = client.get_model_version_by_alias("churn", "champion")
    again = client.create_model_version("churn", champion.source, run_id=champion.run_id)
    client.set_registered_model_alias("churn", "challenger", again.version)
    return home, str(again.version)


@pytest.fixture
def other_challenger(
    two_models: tuple[Path, str],
) -> tuple[Path, str, Any, list[str]]:
    """The copied home with a decision tree as `challenger`: another model, other scores."""
    home, _ = two_models
    settings = Settings()
    champion = MlflowClient(
        settings.tracking_uri, settings.tracking_uri
    ).get_model_version_by_alias("churn", "champion")
    rows = load_reference(settings, "churn", str(champion.version))
    version, tree, names = register_other_model(settings, "churn", rows, alias="challenger")
    return home, version, tree, names


def _customers(home: Path, count: int) -> list[str]:
    frame = pd.read_parquet(home / "features" / CHURN_FEATURES_FILE)
    return sorted(frame["customer_id"].unique())[:count]


def _serve(ids: list[str]) -> list[dict[str, Any]]:
    with TestClient(create_app(Settings())) as api:
        answers = []
        for customer_id in ids:
            response = api.post("/v1/churn/predict", json={"customer_id": customer_id})
            assert response.status_code == 200, response.text
            answers.append(response.json())
    return answers  # leaving the client closed the log: every prediction is written


def test_shadow_scores_every_request_and_answers_with_the_champion(
    two_models: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home, challenger = two_models
    monkeypatch.setenv("MLOPS_CHALLENGER_MODE", "shadow")
    ids = _customers(home, 15)
    answers = _serve(ids)
    assert {a["model"]["version"] for a in answers} == {"1"}
    logged = read_predictions(Settings().prediction_log_uri, model="churn")
    shadow = logged[logged["shadow"].eq(True)]
    served = logged[~logged["shadow"].eq(True)]
    assert len(served) == len(shadow) == len(ids)
    assert set(served["model_version"]) == {"1"} and set(shadow["model_version"]) == {challenger}
    pairs = served.merge(shadow, on="request_id", suffixes=("", "_shadow"))
    assert len(pairs) == len(ids)
    # The same model under two versions: the same row gives the same score.
    assert (pairs["score"] - pairs["score_shadow"]).abs().max() < 1e-6


def test_shadow_rows_carry_the_challengers_version_and_its_own_scores(
    other_challenger: tuple[Path, str, Any, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    home, challenger, tree, names = other_challenger
    monkeypatch.setenv("MLOPS_CHALLENGER_MODE", "shadow")
    ids = _customers(home, 30)
    answers = _serve(ids)
    assert {a["model"]["version"] for a in answers} == {"1"}
    logged = read_predictions(Settings().prediction_log_uri, model="churn")
    shadow = logged[logged["shadow"].eq(True)]
    served = logged[~logged["shadow"].eq(True)]
    assert set(shadow["model_version"]) == {challenger}
    pairs = served.merge(shadow, on="request_id", suffixes=("", "_shadow"))
    assert len(pairs) == len(ids)
    # The shadow score is the tree's on the row served, not the champion's.
    rows = shadow.loc[:, names].to_numpy(dtype=np.float32)
    np.testing.assert_allclose(shadow["score"], tree.predict_proba(rows)[:, 1], atol=1e-6)
    different = (pairs["score"] - pairs["score_shadow"]).abs() > 1e-3
    assert different.mean() > 0.5, "the shadow scores look like the champion's"


def test_canary_answers_a_stable_share_of_customers_with_the_challenger(
    two_models: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home, challenger = two_models
    monkeypatch.setenv("MLOPS_CHALLENGER_MODE", "canary")
    monkeypatch.setenv("MLOPS_CANARY_SHARE", "0.5")
    ids = _customers(home, 20)
    answers = _serve(ids + ids)  # every customer twice
    expected = [challenger if in_canary(i, 0.5) else "1" for i in ids]
    assert [a["model"]["version"] for a in answers] == expected + expected
    assert 0 < expected.count(challenger) < len(ids)
    logged = read_predictions(Settings().prediction_log_uri, model="churn")
    assert "shadow" not in logged.columns
    assert sorted(logged["model_version"]) == sorted(expected + expected)


def test_off_builds_no_challenger(two_models: tuple[Path, str]) -> None:
    with TestClient(create_app(Settings())) as api:
        assert api.app.state.collaborators.challengers == {"churn": None, "fraud": None}  # type: ignore[attr-defined]
        assert api.app.state.churn_predictor.challenger is None  # type: ignore[attr-defined]


def test_the_canary_split_is_stable_and_near_its_share() -> None:
    ids = [f"customer-{i}" for i in range(10_000)]
    share = sum(in_canary(i, 0.1) for i in ids) / len(ids)
    assert share == pytest.approx(0.1, abs=0.01)
    assert not any(in_canary(i, 0.0) for i in ids[:100])
    assert all(in_canary(i, 1.0) for i in ids[:100])
