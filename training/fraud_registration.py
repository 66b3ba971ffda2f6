"""The fraud winner's artifacts and registration.

The winner's own run gets its native model, the validation scores its threshold was
chosen on, and its plots (the shared ones of `training.evaluate`, card precision@100 per
test day, test cost by threshold). It is then registered like every winner
(`training.registration.register_winner`): exported to ONNX with the anomaly score inside
the graph when it is an input, checked for parity, and gated on test average precision
against the champion scored on the same rows.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Final

import mlflow
import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from features.feature_repo.fraud import fraud_model
from features.fraud_windows import FRAUD_FEATURES
from mlops.settings import Settings
from training.evaluate import write_plots
from training.fraud_metrics import DEFAULT_K, SCORE_COLUMN, card_precision_per_day, expected_cost
from training.fraud_models import ANOMALY_FEATURE, AnomalyAugmentedClassifier
from training.fraud_selection import SELECTION_METRIC, Evaluated, Fold, Period, validation_scores
from training.promotion_gate import onnx_champion_scorer
from training.registration import Registration, WinningModel, register_winner
from training.train import importances, log_native_model

FEATURE_SERVICE: Final = fraud_model.name
VALIDATION_SCORES_ARTIFACT: Final = "validation_scores.parquet"


def register_fraud_winner(
    winner: WinningModel,
    test: Period,
    test_frame: pd.DataFrame,
    settings: Settings,
    *,
    auto_promote: bool,
) -> Registration:
    """Export, check and register the fraud winner, gated on test average precision
    against the champion scored on the same rows (`test_frame`, its features by name)."""
    return register_winner(
        winner,
        feature_names=FRAUD_FEATURES,
        x_test=test.x,
        y_test=test.y,
        model_name=settings.fraud_model_name,
        feature_service=FEATURE_SERVICE,
        settings=settings,
        gate_metric=SELECTION_METRIC,
        score_champion=onnx_champion_scorer(
            test_frame, lambda scores, _: float(average_precision_score(test.y, scores))
        ),
        auto_promote=auto_promote,
    )


def log_winner_artifacts(
    winner: Evaluated, folds: list[Fold], test: Period, settings: Settings
) -> None:
    """The winner's native model, validation scores and plots, in its own run; sets the
    winner's `model_uri` to its logged native model."""
    augmented = isinstance(winner.model, AnomalyAugmentedClassifier)
    names = (*FRAUD_FEATURES, ANOMALY_FEATURE) if augmented else FRAUD_FEATURES
    inner = winner.model.classifier if augmented else winner.model
    with mlflow.start_run(run_id=winner.run_id, nested=True), tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        winner.model_uri = log_native_model(winner.model, test.x[:5], FRAUD_FEATURES)
        path = folder / VALIDATION_SCORES_ARTIFACT
        validation_scores(folds, winner.prequential.scores).to_parquet(path, index=False)
        mlflow.log_artifact(str(path))
        plots = write_plots(
            test.y,
            winner.test_scores,
            importances(inner, names),
            folder / "plots",
            title=winner.name,
        )
        plots += _fraud_plots(winner, test, settings, folder / "plots")
        for plot in plots:
            mlflow.log_artifact(str(plot), artifact_path="plots")
        mlflow.set_tag("winner", "true")


def _fraud_plots(winner: Evaluated, test: Period, settings: Settings, out: Path) -> list[Path]:
    """Card precision@100 per test day, and the test cost over thresholds, as PNG files."""
    import matplotlib

    matplotlib.use("Agg")  # headless: plots are written to files, never shown
    return [
        _card_precision_plot(winner, test, out / "card_precision_per_day.png"),
        _cost_plot(winner, test, settings, out / "cost_by_threshold.png"),
    ]


def _card_precision_plot(winner: Evaluated, test: Period, path: Path) -> Path:
    import matplotlib.pyplot as plt

    per_day = card_precision_per_day(
        test.frame.assign(**{SCORE_COLUMN: winner.test_scores}), DEFAULT_K
    ).per_day
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(per_day.index.strftime("%m-%d"), per_day["card_precision"], label="model")
    best = np.minimum(per_day["compromised_cards"], DEFAULT_K) / DEFAULT_K
    ax.plot(per_day.index.strftime("%m-%d"), best, color="grey", marker="o", label="best possible")
    ax.set(title=f"{winner.name}: card precision@{DEFAULT_K} per day", ylabel="precision")
    ax.legend()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def _cost_plot(winner: Evaluated, test: Period, settings: Settings, path: Path) -> Path:
    import matplotlib.pyplot as plt

    grid = np.quantile(winner.test_scores, np.linspace(0.5, 1.0, 60))
    costs = [
        expected_cost(
            test.y,
            winner.test_scores,
            t,
            cost_missed_fraud=settings.fraud_cost_missed_fraud,
            cost_false_alarm=settings.fraud_cost_false_alarm,
        )
        for t in grid
    ]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(grid, costs)
    ax.axvline(winner.threshold, color="grey", linestyle="--", label="chosen on validation")
    ax.set(title=f"{winner.name}: test cost by threshold", xlabel="threshold", ylabel="cost")
    ax.legend()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path
