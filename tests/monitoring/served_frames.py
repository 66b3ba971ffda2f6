"""Seeded frames of served predictions (churn-like features, a score, a label) and the
monitoring checks run on them against one reference window."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from monitoring.check_results import MonitoringResult
from monitoring.checks import run_checks

FEATURES = ["tenure_months", "monthly_charges", "support_calls", "sessions", "paperless", "fiber"]
# The features a `shifted=True` frame moves.
SHIFTED = ["tenure_months", "monthly_charges", "fiber"]
THRESHOLD = 0.35
TEST_METRICS = {"roc_auc": 0.8, "average_precision": 0.6, "precision": 0.55, "recall": 0.6}


def served_frame(n: int, seed: int, *, shifted: bool = False) -> pd.DataFrame:
    """Six features (two 0/1 flags), a score that depends on them, labels drawn from it."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "tenure_months": rng.integers(0, 24 if shifted else 72, n).astype(float),
            "monthly_charges": rng.uniform(60 if shifted else 20, 120, n),
            "support_calls": rng.poisson(1.5, n).astype(float),
            "sessions": rng.gamma(2.0, 2.0, n),
            "paperless": rng.binomial(1, 0.5, n).astype(float),
            "fiber": rng.binomial(1, 0.8 if shifted else 0.3, n).astype(float),
        }
    )
    logit = -0.04 * frame["tenure_months"] + 0.02 * frame["monthly_charges"] + frame["fiber"] - 1
    frame["score"] = 1 / (1 + np.exp(-logit))
    frame["label"] = rng.binomial(1, frame["score"])
    return frame


REFERENCE = served_frame(3000, seed=1)


def check(
    current: pd.DataFrame, labelled: pd.DataFrame | None = None, **options: Any
) -> MonitoringResult:
    """The checks of churn version 3 on `current` (and `labelled`, when given) against
    REFERENCE; `options` go to `run_checks`."""
    return run_checks(
        "churn",
        "3",
        REFERENCE,
        current,
        labelled,
        feature_names=FEATURES,
        threshold=THRESHOLD,
        test_metrics=TEST_METRICS,
        **options,
    )
