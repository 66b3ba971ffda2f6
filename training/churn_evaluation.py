"""Churn model quality beyond one split: repeated stratified splits, each metric as mean ± sd.

The public Telco CSV is one snapshot of ~7,000 customers, so one 80/20 split moves ROC-AUC
by about a hundredth from seed to seed. Here every candidate of `training.models.CANDIDATES`
(the pipeline's) is fitted on one part and scored on the other of `repeats` stratified
`folds`-fold splits (5 x 2 by default: each customer is tested once per repeat), and ROC-AUC,
average precision and the Brier score (calibration) are reported as mean ± sd over those
fits. Splits ignore time on purpose: they estimate the model's quality on this population,
not its forecast of a later month (the pipeline's time-ordered split does that).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.model_selection import RepeatedStratifiedKFold

from features.churn_frames import LABEL, feature_frame, label_frame
from features.churn_schema import validate_churn_frame
from features.churn_transforms import CHURN_FEATURES
from training.datasets import as_matrix
from training.evaluate import mean_sd
from training.models import CANDIDATES

CHURN_METRICS: Final = ("roc_auc", "average_precision", "brier")


@dataclass(frozen=True)
class ChurnData:
    """Model inputs of the valid customers, their labels, and where they came from."""

    x: np.ndarray
    y: np.ndarray
    source: str


def churn_data(raw: pd.DataFrame, origin: str) -> ChurnData:
    """The model inputs and labels of the valid rows of `raw` (Telco-schema rows as read or
    simulated; invalid rows are left out, as the pipeline quarantines them)."""
    valid = validate_churn_frame(raw, origin).valid
    features, labels = feature_frame(valid), label_frame(valid)
    return ChurnData(as_matrix(features, CHURN_FEATURES), labels[LABEL].to_numpy(), origin)


def split_metrics(y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """ROC-AUC, average precision and Brier score of one held-out part."""
    return {
        "roc_auc": float(roc_auc_score(y, scores)),
        "average_precision": float(average_precision_score(y, scores)),
        "brier": float(brier_score_loss(y, scores)),
    }


def evaluate_churn(
    data: ChurnData,
    seed: int,
    *,
    repeats: int = 5,
    folds: int = 2,
    candidates: Mapping[str, Callable[[int], Any]] = CANDIDATES,
) -> dict[str, Any]:
    """Each candidate over `repeats` x `folds` stratified splits: per metric mean ± sd, and
    every split's figures. The splits are the same for every candidate (seeded by `seed`)."""
    if repeats < 1 or folds < 2:
        raise ValueError(f"need repeats >= 1 and folds >= 2, got {repeats}, {folds}")
    splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    splits = list(splitter.split(data.x, data.y))
    results: dict[str, Any] = {}
    for name, factory in candidates.items():
        template = factory(seed)
        per_split = []
        for train, test in splits:
            model = clone(template).fit(data.x[train], data.y[train])
            per_split.append(split_metrics(data.y[test], model.predict_proba(data.x[test])[:, 1]))
        results[name] = {
            **{m: mean_sd(s[m] for s in per_split) for m in CHURN_METRICS},
            "splits": per_split,
        }
    return {
        "case_study": "churn",
        "source": data.source,
        "rows": len(data.y),
        "churn_rate": float(np.mean(data.y)),
        "seed": seed,
        "repeats": repeats,
        "folds": folds,
        "candidates": results,
    }
