"""The promotion gate at registration, against a real MLflow registry (SQLite) holding a
small ONNX champion."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

from mlops.model_bundle import BUNDLE_ARTIFACT_PATH, ONNX_FILE, BundleMeta, RegisteredBundle
from mlops.names import CHAMPION
from mlops.onnx_scorer import OnnxScorer
from mlops.settings import Settings
from training.export import export_onnx, onnx_sha256
from training.promotion_gate import IncomparableChampion, onnx_champion_scorer, promotion_gate

NAMES = ["a", "b", "c"]
CHAMPION_VERSION = "2"  # of three registered versions: the alias, not the newest, is followed


def _bundle(folder: Path) -> BundleMeta:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3)).astype(np.float32)
    y = (x[:, 0] - x[:, 2] > 0).astype(int)
    onnx_path = export_onnx(LogisticRegression().fit(x, y), 3, folder / ONNX_FILE)
    meta = BundleMeta("m", "service", NAMES, 0.4, "logistic", onnx_sha256(onnx_path), 0.0)
    meta.write(folder)
    return meta


@pytest.fixture(scope="module")
def registry_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite MLflow registry where model `m` has three versions, v2 the champion."""
    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("gate", artifact_location=(root / "artifacts").as_uri())
    folder = root / "bundle"
    folder.mkdir()
    _bundle(folder)
    client.create_registered_model("m")
    for _ in range(3):
        run = client.create_run(experiment)
        client.log_artifacts(run.info.run_id, str(folder), artifact_path=BUNDLE_ARTIFACT_PATH)
        client.set_terminated(run.info.run_id)
        source = f"{run.info.artifact_uri}/{BUNDLE_ARTIFACT_PATH}"
        client.create_model_version("m", source, run_id=run.info.run_id)
    client.set_registered_model_alias("m", CHAMPION, CHAMPION_VERSION)
    return uri


@pytest.fixture
def gate_settings(registry_uri: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings of a fresh home whose tracking server is the module's registry."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry_uri)
    return Settings().prepare()


@pytest.fixture
def champion(tmp_path: Path) -> RegisteredBundle:
    folder = tmp_path / "champion"
    folder.mkdir()
    return RegisteredBundle("m", "3", "run", folder, _bundle(folder))


def _gate(
    settings: Settings, challenger_metric: float, champion_metric: float, name: str = "m"
) -> Any:
    def score(bundle: RegisteredBundle) -> float:
        # The champion the registry gave, downloaded into the home, is what gets scored.
        assert bundle.version == CHAMPION_VERSION
        assert bundle.folder == settings.models_dir / f"m-v{CHAMPION_VERSION}"
        assert OnnxScorer(bundle.onnx_path).predict_proba(np.zeros((1, 3), np.float32)).shape
        return champion_metric

    return promotion_gate(settings, name, challenger_metric, "roc_auc", score)


def test_a_better_model_takes_champion(gate_settings: Settings) -> None:
    decision = _gate(gate_settings, 0.81, 0.80)
    assert decision.promoted
    assert (decision.challenger_metric, decision.champion_metric) == (0.81, 0.80)
    assert decision.champion_version == CHAMPION_VERSION
    assert decision.reason == "roc_auc 0.8100 beats champion v2 at 0.8000 on the same test rows"


@pytest.mark.parametrize("champion_metric", [0.80, 0.90])
def test_a_model_no_better_keeps_the_champion(
    gate_settings: Settings, champion_metric: float
) -> None:
    decision = _gate(gate_settings, 0.80, champion_metric)
    assert not decision.promoted and decision.champion_metric == champion_metric
    assert decision.reason.startswith("roc_auc 0.8000 does not beat champion v2")


def test_the_first_model_takes_champion(gate_settings: Settings) -> None:
    decision = _gate(gate_settings, 0.5, 0.9, name="never-registered")
    assert decision.promoted and decision.reason == "no champion yet"
    assert decision.champion_metric is None and decision.champion_version is None
    assert decision.challenger_metric == 0.5


def test_a_champion_that_cannot_be_scored_gives_way(gate_settings: Settings) -> None:
    def incomparable(_: RegisteredBundle) -> float:
        raise IncomparableChampion("needs features this data lacks")

    decision = promotion_gate(gate_settings, "m", 0.5, "roc_auc", incomparable)
    assert decision.promoted and decision.reason == "needs features this data lacks"
    assert decision.champion_metric is None and decision.champion_version == CHAMPION_VERSION
    assert decision.challenger_metric == 0.5


def test_the_champion_is_scored_with_its_own_features_order_and_threshold(
    champion: RegisteredBundle,
) -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(50, 4)), columns=["c", "extra", "a", "b"])
    seen: list[tuple[np.ndarray, float]] = []

    def metric(scores: np.ndarray, threshold: float) -> float:
        seen.append((scores, threshold))
        return 0.7

    assert onnx_champion_scorer(frame, metric)(champion) == 0.7
    [(scores, threshold)] = seen
    rows = frame.loc[:, NAMES].to_numpy(dtype=np.float32)
    np.testing.assert_allclose(scores, OnnxScorer(champion.onnx_path).predict_proba(rows))
    assert threshold == 0.4


def test_a_champion_needing_missing_features_is_incomparable(champion: RegisteredBundle) -> None:
    frame = pd.DataFrame({"a": [1.0], "c": [2.0]})
    with pytest.raises(IncomparableChampion, match=r"champion v3 needs features .*'b'"):
        onnx_champion_scorer(frame, lambda s, t: 0.0)(champion)


def test_the_missing_features_named_are_the_first_five(champion: RegisteredBundle) -> None:
    names = [f"f{i}" for i in range(8)]
    wide = RegisteredBundle(
        "m", "3", "run", champion.folder, replace(champion.meta, feature_names=names)
    )
    with pytest.raises(IncomparableChampion) as raised:
        onnx_champion_scorer(pd.DataFrame({"a": [1.0]}), lambda s, t: 0.0)(wide)
    assert str(raised.value).endswith("['f0', 'f1', 'f2', 'f3', 'f4']")
