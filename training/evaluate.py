"""Evaluation: metrics at a chosen threshold, the threshold itself, and diagnostic plots."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def choose_threshold(y_true: np.ndarray, scores: np.ndarray) -> float:
    """The threshold that maximises F1 on out-of-fold scores (never on the test set)."""
    precision, recall, thresholds = precision_recall_curve(y_true, scores)
    f1 = 2 * precision * recall / np.clip(precision + recall, 1e-12, None)
    best = int(np.argmax(f1[:-1]))  # the last point has no threshold
    return float(thresholds[best])


def classification_metrics(
    y_true: np.ndarray, scores: np.ndarray, threshold: float
) -> dict[str, float]:
    """Ranking, calibration and decision metrics; honest under class imbalance."""
    decision = scores >= threshold
    top_decile = scores >= np.quantile(scores, 0.9)
    base_rate = float(np.mean(y_true))
    return {
        "roc_auc": float(roc_auc_score(y_true, scores)),
        "average_precision": float(average_precision_score(y_true, scores)),
        "f1": float(f1_score(y_true, decision, zero_division=0)),
        "precision": float(precision_score(y_true, decision, zero_division=0)),
        "recall": float(recall_score(y_true, decision, zero_division=0)),
        "brier": float(brier_score_loss(y_true, scores)),
        "lift_top_decile": float(np.mean(y_true[top_decile]) / base_rate) if base_rate else 0.0,
        "positive_rate": base_rate,
        "threshold": float(threshold),
    }


def mean_sd(values: Iterable[float]) -> dict[str, float]:
    """Mean and sample standard deviation (0 for one value) of `values`, and how many."""
    array = np.asarray(list(values), dtype=np.float64)
    if array.size == 0:
        raise ValueError("no values to summarise")
    sd = float(np.std(array, ddof=1)) if array.size > 1 else 0.0
    return {"mean": float(np.mean(array)), "sd": sd, "n": int(array.size)}


def write_plots(
    y_true: np.ndarray,
    scores: np.ndarray,
    importances: dict[str, float],
    out_dir: Path,
    title: str,
) -> list[Path]:
    """ROC, precision-recall, calibration and feature-importance plots as PNG files."""
    import matplotlib

    matplotlib.use("Agg")  # headless: plots are written to files, never shown
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []

    fpr, tpr, _ = roc_curve(y_true, scores)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr, label=f"ROC-AUC {roc_auc_score(y_true, scores):.3f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"{title}: ROC")
    ax.legend(loc="lower right")
    paths.append(_save(fig, out_dir / "roc.png"))

    precision, recall, _ = precision_recall_curve(y_true, scores)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(
        recall, precision, label=f"average precision {average_precision_score(y_true, scores):.3f}"
    )
    ax.axhline(float(np.mean(y_true)), linestyle="--", color="grey", label="base rate")
    ax.set(xlabel="recall", ylabel="precision", title=f"{title}: precision-recall")
    ax.legend(loc="upper right")
    paths.append(_save(fig, out_dir / "pr.png"))

    observed, predicted = calibration_curve(y_true, scores, n_bins=10, strategy="quantile")
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(predicted, observed, marker="o", label="model")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    ax.set(xlabel="predicted probability", ylabel="observed rate", title=f"{title}: calibration")
    ax.legend(loc="upper left")
    paths.append(_save(fig, out_dir / "calibration.png"))

    top = sorted(importances.items(), key=lambda kv: abs(kv[1]), reverse=True)[:20]
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.barh([name for name, _ in reversed(top)], [value for _, value in reversed(top)])
    ax.set(title=f"{title}: feature importance", xlabel="importance")
    fig.tight_layout()
    paths.append(_save(fig, out_dir / "feature_importance.png"))
    return paths


def _save(fig: Figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path
