"""Which fraud features earn their place: each group's gain, paired by seed and test week.

Issue 15's rule for a new feature is to keep it only where the gain holds beyond its
spread. For each realization (a seed's simulation, or one file) and each test week (the
Handbook's split, slid a week at a time), one fixed model is fitted on every feature, then
once without each group of `FEATURE_GROUPS`; a group's gain is the full model's metric
minus the one without it. Gains are paired (same data, same seed, same week), so the
spread between realizations, which is larger than any one feature's effect, cancels.

The model is XGBoost with SMOTE at its default parameters (`training.fraud_models`), no
search: a search would pick different parameters for each variant and mix its own noise
into the difference. So the figures rank features; they are not the tuned model's quality,
which `training.fraud_evaluation` measures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from features.fraud_schema import CUSTOMER_ID, TX_DATETIME, TX_FRAUD
from features.fraud_windows import FRAUD_FEATURES
from training.evaluate import mean_sd
from training.fraud_evaluation import check_covered
from training.fraud_metrics import DEFAULT_K, SCORE_COLUMN, card_precision_at_k
from training.fraud_models import ModelSpec
from training.fraud_splits import DAY, HANDBOOK_START, handbook_split, split_frame

# The features beyond the Handbook's, by what each group is for.
FEATURE_GROUPS: Final[Mapping[str, tuple[str, ...]]] = {
    "customer_habits": (
        "amount_to_customer_avg_30d",
        "seconds_since_customer_prev_tx",
        "customer_nb_tx_at_terminal_30d",
    ),
    "amount_zscore": ("amount_zscore_to_customer_30d",),
    "terminal_fraud_run": ("terminal_in_fraud_run", "terminal_fraud_run_days"),
}
METRICS: Final = ("roc_auc", "average_precision", f"card_precision_at_{DEFAULT_K}")
FULL: Final = "all features"
MODEL: Final = ModelSpec("xgboost", "smote")


def variants(groups: Mapping[str, Sequence[str]] = FEATURE_GROUPS) -> dict[str, list[str]]:
    """Every feature, then every feature but one group's (named `without <group>`)."""
    unknown = sorted({f for names in groups.values() for f in names} - set(FRAUD_FEATURES))
    if unknown:
        raise ValueError(f"feature groups name features the model does not have: {unknown}")
    full = list(FRAUD_FEATURES)
    return {
        FULL: full,
        **{f"without {g}": [f for f in full if f not in names] for g, names in groups.items()},
    }


def ablate_fraud(
    seeds: Sequence[int],
    transactions: Callable[[int], pd.DataFrame],
    *,
    weeks: int = 2,
    start: str = HANDBOOK_START,
    on_week: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Fit every variant on each seed's weeks; the JSON-ready summary (see `summarize`).

    `transactions(seed)` gives the realization's `training.fraud_evaluation.labelled_features`.
    """
    if weeks < 1:
        raise ValueError(f"weeks must be at least 1, got {weeks}")
    chosen = variants()
    splits = [handbook_split(pd.Timestamp(start) + w * 7 * DAY) for w in range(weeks)]
    runs: list[dict[str, Any]] = []
    for seed in seeds:
        frame = transactions(seed)
        check_covered(frame, splits[-1])
        for week, split in enumerate(splits):
            train, test = split_frame(frame, split)
            if test[TX_FRAUD].nunique() < 2 or train[TX_FRAUD].nunique() < 2:
                raise ValueError(
                    f"week {week} (test from {split.test_start:%Y-%m-%d}) lacks frauds or "
                    "genuine payments: simulate more cards"
                )
            metrics = {
                name: _fit_and_test(train, test, cols, seed) for name, cols in chosen.items()
            }
            run = {
                "seed": seed,
                "week": week,
                "test_start": f"{split.test_start:%Y-%m-%d}",
                "metrics": metrics,
            }
            runs.append(run)
            if on_week is not None:
                on_week(run)
        del frame
    return summarize(runs, list(seeds), weeks)


def _fit_and_test(
    train: pd.DataFrame, test: pd.DataFrame, columns: list[str], seed: int
) -> dict[str, float]:
    model = MODEL.fit_classifier(
        train[columns].to_numpy(dtype=np.float32), train[TX_FRAUD].to_numpy(), seed
    )
    scores = model.predict_proba(test[columns].to_numpy(dtype=np.float32))[:, 1]
    y = test[TX_FRAUD].to_numpy()
    cards = test[[TX_DATETIME, CUSTOMER_ID, TX_FRAUD]].assign(**{SCORE_COLUMN: scores})
    return {
        "roc_auc": float(roc_auc_score(y, scores)),
        "average_precision": float(average_precision_score(y, scores)),
        METRICS[2]: float(card_precision_at_k(cards, DEFAULT_K)),
    }


def summarize(runs: list[dict[str, Any]], seeds: list[int], weeks: int) -> dict[str, Any]:
    """Each variant's metrics as mean ± sd over every (seed, week), and each group's gain
    (all features minus all but the group's) paired by (seed, week): mean ± sd, its
    smallest value, and `holds`: the mean gain in average precision exceeds its sd."""
    names = list(runs[0]["metrics"])
    gains: dict[str, Any] = {}
    for name in names:
        if name == FULL:
            continue
        group = name.removeprefix("without ")
        per_metric = {}
        for metric in METRICS:
            diffs = [r["metrics"][FULL][metric] - r["metrics"][name][metric] for r in runs]
            per_metric[metric] = {**mean_sd(diffs), "min": float(min(diffs))}
        ap = per_metric["average_precision"]
        gains[group] = {**per_metric, "holds": bool(ap["mean"] > ap["sd"])}
    return {
        "case_study": "fraud",
        "model": MODEL.name,
        "seeds": seeds,
        "weeks": weeks,
        "groups": {g: list(f) for g, f in FEATURE_GROUPS.items()},
        "variants": {name: _across(r["metrics"][name] for r in runs) for name in names},
        "gains": gains,
        "runs": runs,
    }


def _across(rows: Iterable[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    table = list(rows)
    return {m: mean_sd(row[m] for row in table) for m in METRICS}
