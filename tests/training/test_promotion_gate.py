"""The promotion gate at registration, fast: a registry stand-in and a small ONNX champion."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import training.promotion_gate as gate_module
from mlops.model_bundle import BundleMeta, RegisteredBundle
from mlops.names import CHAMPION
from mlops.onnx_scorer import OnnxScorer
from training.export import export_onnx
from training.promotion_gate import IncomparableChampion, onnx_champion_scorer, promotion_gate

NAMES = ["a", "b", "c"]


@pytest.fixture
def champion(tmp_path: Path) -> RegisteredBundle:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3)).astype(np.float32)
    y = (x[:, 0] - x[:, 2] > 0).astype(int)
    export_onnx(LogisticRegression().fit(x, y), 3, tmp_path / "model.onnx")
    meta = BundleMeta("m", "service", NAMES, 0.4, "logistic", "sha", 0.0)
    return RegisteredBundle("m", "3", "run", tmp_path, meta)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch, champion: RegisteredBundle) -> list[dict[str, Any]]:
    """The registry holds `champion` under the champion alias; calls are recorded."""
    calls: list[dict[str, Any]] = []

    def download(tracking_uri: str, name: str, dest: Path, **which: Any) -> RegisteredBundle:
        calls.append({"uri": tracking_uri, "name": name, "dest": dest, **which})
        return champion

    monkeypatch.setattr(gate_module, "download_bundle", download)
    return calls


def _gate(settings: Any, challenger_metric: float, champion_metric: float) -> Any:
    def score(bundle: RegisteredBundle) -> float:
        assert bundle.version == "3"  # the champion the registry gave, scored
        return champion_metric

    return promotion_gate(settings, "m", challenger_metric, "roc_auc", score)


def test_a_better_model_takes_champion(settings: Any, registry: list[dict[str, Any]]) -> None:
    decision = _gate(settings, 0.81, 0.80)
    assert registry == [
        {"uri": settings.tracking_uri, "name": "m", "dest": settings.models_dir, "alias": CHAMPION}
    ]
    assert decision.promoted
    assert (decision.challenger_metric, decision.champion_metric) == (0.81, 0.80)
    assert decision.champion_version == "3"
    assert decision.reason == "roc_auc 0.8100 beats champion v3 at 0.8000 on the same test rows"


@pytest.mark.parametrize("champion_metric", [0.80, 0.90])
def test_a_model_no_better_keeps_the_champion(
    settings: Any, registry: list[dict[str, Any]], champion_metric: float
) -> None:
    decision = _gate(settings, 0.80, champion_metric)
    assert not decision.promoted and decision.champion_metric == champion_metric
    assert decision.reason.startswith("roc_auc 0.8000 does not beat champion v3")


def test_the_first_model_takes_champion(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def none(*args: Any, **kwargs: Any) -> RegisteredBundle:
        raise LookupError("no alias")

    monkeypatch.setattr(gate_module, "download_bundle", none)
    decision = _gate(settings, 0.5, 0.9)
    assert decision.promoted and decision.reason == "no champion yet"
    assert decision.champion_metric is None and decision.champion_version is None
    assert decision.challenger_metric == 0.5


def test_a_champion_that_cannot_be_scored_gives_way(
    settings: Any, registry: list[dict[str, Any]]
) -> None:
    def incomparable(_: RegisteredBundle) -> float:
        raise IncomparableChampion("needs features this data lacks")

    decision = promotion_gate(settings, "m", 0.5, "roc_auc", incomparable)
    assert decision.promoted and decision.reason == "needs features this data lacks"
    assert decision.champion_metric is None and decision.champion_version == "3"
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
