"""Candidate models: a regularised logistic-regression baseline and gradient-boosted trees."""

from __future__ import annotations

from typing import Any

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from xgboost import XGBClassifier


def logistic_baseline(seed: int) -> Pipeline:
    """Scaled L2 logistic regression: the interpretable baseline every model must beat."""
    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("model", LogisticRegression(C=0.5, max_iter=2000, random_state=seed)),
        ]
    )


def xgboost_classifier(seed: int, **overrides: Any) -> XGBClassifier:
    """Shallow, slowly learning trees: Telco-sized data overfits deep ones quickly."""
    params: dict[str, Any] = {
        "n_estimators": 300,
        "learning_rate": 0.03,
        "max_depth": 3,
        "min_child_weight": 5,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "reg_lambda": 2.0,
        "tree_method": "hist",
        "eval_metric": "logloss",
        "n_jobs": 2,
        "random_state": seed,
    }
    params.update(overrides)
    return XGBClassifier(**params)


CANDIDATES = {
    "logistic_baseline": logistic_baseline,
    "xgboost": xgboost_classifier,
}
