"""The statistics of champion against challenger, and the promotion gate's rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from monitoring.challenger_test import judge
from monitoring.experiment_stats import (
    average_precision,
    online_comparison,
    paired_bootstrap,
    roc_auc,
    two_proportion_test,
)


def _scores(seed: int, rows: int, signal: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, rows)
    return labels, labels * signal + rng.normal(0, 1, rows)


def test_fast_metrics_equal_scikit_learn_with_ties() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 500)
    scores = np.round(labels * 0.4 + rng.uniform(0, 1, 500), 1)  # many ties
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))
    assert average_precision(labels, scores) == pytest.approx(
        average_precision_score(labels, scores)
    )


def test_paired_bootstrap_finds_a_better_model_and_contains_the_truth() -> None:
    labels, weak = _scores(1, 600, 0.5)
    rng = np.random.default_rng(2)
    strong = labels * 1.5 + rng.normal(0, 1, len(labels))
    result = paired_bootstrap(labels, weak, strong, "roc_auc", resamples=400, seed=0)
    assert result.champion == pytest.approx(roc_auc_score(labels, weak))
    assert result.challenger == pytest.approx(roc_auc_score(labels, strong))
    assert result.ci_low <= result.difference <= result.ci_high
    assert result.ci_low > 0 and result.significant
    assert result.challenger_better_share == 1.0
    assert result.resamples == 400


def test_the_same_model_twice_is_not_significant() -> None:
    labels, scores = _scores(3, 300, 1.0)
    result = paired_bootstrap(labels, scores, scores, "average_precision", resamples=200)
    assert result.difference == 0 and result.ci_low == 0 and result.ci_high == 0
    assert not result.significant


def test_paired_bootstrap_refuses_one_class_and_unequal_rows() -> None:
    with pytest.raises(ValueError, match="one class"):
        paired_bootstrap(np.zeros(10), np.zeros(10), np.zeros(10))
    with pytest.raises(ValueError, match="10 labels, 9"):
        paired_bootstrap(np.arange(10) % 2, np.zeros(9), np.zeros(10))
    with pytest.raises(ValueError, match="unknown metric"):
        paired_bootstrap(np.arange(10) % 2, np.zeros(10), np.zeros(10), "accuracy")


def test_two_proportion_test_matches_the_textbook() -> None:
    # 420/500 against 460/500: pooled p = 0.88, z = 0.08 / sqrt(0.88*0.12*(2/500)) = 3.89.
    result = two_proportion_test(420, 500, 460, 500)
    assert result.z == pytest.approx(3.892, abs=1e-3)
    assert result.p_value == pytest.approx(9.9e-5, rel=0.05)
    assert result.significant
    assert result.ci_low < 0.08 < result.ci_high
    even = two_proportion_test(50, 100, 50, 100)
    assert even.z == 0 and even.p_value == pytest.approx(1.0) and not even.significant


def _logged(
    versions: list[str], shadow: list[bool], labels: np.ndarray, scores: np.ndarray
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(len(versions))],
            "model_version": versions,
            "shadow": shadow,
            "score": scores,
            "decision": scores >= 0.5,
            "label": labels,
        }
    )


def test_online_comparison_pairs_shadow_rows_by_request() -> None:
    labels, champion = _scores(4, 200, 0.3)
    challenger = labels * 2.0 + np.random.default_rng(5).normal(0, 1, len(labels))
    both = pd.concat(
        [
            _logged(["1"] * 200, [False] * 200, labels, champion),
            _logged(["2"] * 200, [True] * 200, labels, challenger),
        ],
        ignore_index=True,
    )
    result = online_comparison(both, "1", "2", metric="roc_auc")
    assert result.mode == "shadow" and result.labelled_rows == 200
    assert result.paired is not None and result.paired.significant
    assert result.paired.difference > 0


def test_online_comparison_of_a_canary_split_uses_two_groups() -> None:
    labels, scores = _scores(6, 400, 3.0)
    versions = ["1" if i % 5 else "2" for i in range(400)]
    result = online_comparison(
        _logged(versions, [False] * 400, labels, scores), "1", "2", thresholds=(1.5, 1.5)
    )
    assert result.mode == "canary" and result.paired is None
    assert result.proportions is not None
    assert result.proportions.champion_rows == 320 and result.proportions.challenger_rows == 80
    few = online_comparison(
        _logged(versions, [False] * 400, labels, scores).iloc[:100], "1", "2", min_rows=30
    )
    assert few.skipped == "80 champion and 20 challenger labelled rows, need 30 each"


def test_the_challenger_test_promotes_only_a_better_fast_enough_model_on_enough_rows() -> None:
    base = {
        "metric": "roc_auc",
        "champion_metric": 0.80,
        "labelled_rows": 500,
        "min_labelled_rows": 200,
        "min_gain": 0.0,
        "latency_budget_ms": 5.0,
    }
    promoted, reason = judge(challenger_metric=0.81, latency_p99_ms=0.2, **base)
    assert promoted and reason.startswith("roc_auc 0.8100 beats the champion's 0.8000")
    tie, why = judge(challenger_metric=0.80, latency_p99_ms=0.2, **base)
    assert not tie and "does not beat" in why
    slow, why = judge(challenger_metric=0.90, latency_p99_ms=5.01, **base)
    assert not slow and "exceeds the 5.000 ms budget" in why
    at_budget, _ = judge(challenger_metric=0.90, latency_p99_ms=5.0, **base)
    assert at_budget
    few, why = judge(challenger_metric=0.90, latency_p99_ms=0.2, **{**base, "labelled_rows": 199})
    assert not few and why == "199 labelled rows, fewer than 200"
    refused, why = judge(
        challenger_metric=0.90,
        latency_p99_ms=0.2,
        online_worse="the shadow experiment finds it worse",
        **base,
    )
    assert not refused and why.endswith("but the shadow experiment finds it worse")
    margin, _ = judge(challenger_metric=0.805, latency_p99_ms=0.2, **{**base, "min_gain": 0.01})
    assert not margin
