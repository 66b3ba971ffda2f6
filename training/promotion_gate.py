"""The promotion gate: at registration, a new version takes `champion` only if it beats it.

Both models are scored on the new version's held-out test rows, each with its own
feature order and threshold, on the case study's primary metric. The gate is offline:
it sees the test window the new model was evaluated on. After a drift the rows that
matter are the live ones, so retraining registers its model as `challenger` and leaves
promotion to the challenger test on live labels (`monitoring.challenger_test`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlops.model_bundle import RegisteredBundle, download_bundle
from mlops.names import CHAMPION
from mlops.onnx_scorer import OnnxScorer
from mlops.settings import Settings


@dataclass(frozen=True)
class GateDecision:
    """The promotion gate's verdict: promoted or not, why, and the two scores it compared."""

    promoted: bool
    reason: str
    challenger_metric: float
    champion_metric: float | None
    champion_version: str | None


class IncomparableChampion(Exception):
    """The champion cannot be scored on the new test rows (say, features this data lacks)."""


# Scores the current champion's bundle on the new version's test rows, returning the
# primary metric, or raises IncomparableChampion.
ChampionScorer = Callable[[RegisteredBundle], float]


def onnx_champion_scorer(
    test_frame: pd.DataFrame, metric: Callable[[np.ndarray, float], float]
) -> ChampionScorer:
    """Score the champion's ONNX bundle on `test_frame` (its features by name) with `metric`.

    `metric(scores, champion_threshold)` returns the gate metric; the champion's own
    feature order and threshold are used, so a champion trained on other features can
    still be compared as long as `test_frame` has them.
    """

    def score(champion: RegisteredBundle) -> float:
        missing = [f for f in champion.meta.feature_names if f not in test_frame.columns]
        if missing:
            raise IncomparableChampion(
                f"champion v{champion.version} needs features this data lacks: {missing[:5]}"
            )
        rows = test_frame.loc[:, champion.meta.feature_names].to_numpy(dtype=np.float32)
        return metric(OnnxScorer(champion.onnx_path).predict_proba(rows), champion.meta.threshold)

    return score


def promotion_gate(
    settings: Settings,
    model_name: str,
    challenger_metric: float,
    metric_name: str,
    score_champion: ChampionScorer,
) -> GateDecision:
    """Whether the new model takes `champion`: only if it beats the current champion on the
    same test rows (`score_champion` scores the champion's bundle on them), or there is no
    champion yet, or the champion cannot be scored on these rows."""
    try:
        champion = download_bundle(
            settings.tracking_uri, model_name, settings.models_dir, alias=CHAMPION
        )
    except LookupError:
        return GateDecision(True, "no champion yet", challenger_metric, None, None)
    try:
        champion_metric = score_champion(champion)
    except IncomparableChampion as reason:
        return GateDecision(True, str(reason), challenger_metric, None, champion.version)
    promoted = challenger_metric > champion_metric
    verdict = "beats" if promoted else "does not beat"
    return GateDecision(
        promoted,
        f"{metric_name} {challenger_metric:.4f} {verdict} champion "
        f"v{champion.version} at {champion_metric:.4f} on the same test rows",
        challenger_metric,
        champion_metric,
        champion.version,
    )
