"""Champion against challenger on labelled outcomes, with a statistical test and its confidence.

Two designs, two tests:

- **paired** (`paired_bootstrap`): both models scored the same rows: the shadow mode of
  serving, where the challenger scores every request beside the champion, and the
  promotion gate, which rescores the labelled window with both. The rows are resampled
  with replacement `resamples` times, the metric difference (challenger - champion) is
  computed on each resample, and its percentile interval at `confidence` is reported.
  Pairing removes the rows' own difficulty from the comparison, so the interval is far
  narrower than two independent intervals would be.
- **two groups** (`two_proportion_test`): each entity was answered by one model, the
  canary split (by a hash of the entity id, `serving.challenger`). Different rows,
  so no paired metric: the test compares a proportion (the share of correct decisions
  at each model's own threshold) between the groups with a two-sided z-test.

`online_comparison` reads both designs from the prediction log and the labels: the shadow
rows (`shadow` marked in the entity) pair with the champion's rows of the same request;
canary rows are the challenger's answers. Its result is what the promotion gate can take
as evidence once enough labels arrive.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from mlops.prediction_log import SHADOW_KEY

__all__ = [
    "METRICS",
    "OnlineComparison",
    "PairedComparison",
    "ProportionComparison",
    "average_precision",
    "online_comparison",
    "paired_bootstrap",
    "roc_auc",
    "two_proportion_test",
]

Metric = Callable[[np.ndarray, np.ndarray], float]


# scikit-learn's definitions, without its input validation: a bootstrap calls them a
# thousand times per comparison.
def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC-AUC as the Mann-Whitney statistic (ties count one half)."""
    positive = labels == 1
    n_pos = int(positive.sum())
    n_neg = len(labels) - n_pos
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision: precision at each distinct threshold, weighted by the recall step."""
    order = np.argsort(-scores, kind="mergesort")
    ordered, sorted_scores = labels[order], scores[order]
    last_of_tie = np.r_[np.diff(sorted_scores) != 0, True]
    true_positives = np.cumsum(ordered)[last_of_tie]
    predicted = np.arange(1, len(labels) + 1)[last_of_tie]
    precision = true_positives / predicted
    recall = true_positives / true_positives[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


METRICS: dict[str, Metric] = {"roc_auc": roc_auc, "average_precision": average_precision}


@dataclass(frozen=True)
class PairedComparison:
    """Challenger minus champion on the same rows, with a bootstrap interval."""

    metric: str
    rows: int
    champion: float
    challenger: float
    difference: float
    ci_low: float
    ci_high: float
    confidence: float
    resamples: int
    # Share of resamples where the challenger was better: a one-sided bootstrap p of 1 - this.
    challenger_better_share: float

    @property
    def significant(self) -> bool:
        """The interval excludes 0: one model is better at this confidence."""
        return self.ci_low > 0 or self.ci_high < 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "significant": self.significant}


@dataclass(frozen=True)
class ProportionComparison:
    """The share of correct decisions of each group, and a two-sided z-test of their gap."""

    champion_rows: int
    challenger_rows: int
    champion_rate: float
    challenger_rate: float
    difference: float
    z: float
    p_value: float
    ci_low: float
    ci_high: float
    confidence: float

    @property
    def significant(self) -> bool:
        """The z-test rejects equal proportions at this confidence."""
        return self.p_value < 1 - self.confidence

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "significant": self.significant}


def paired_bootstrap(
    labels: np.ndarray,
    champion_scores: np.ndarray,
    challenger_scores: np.ndarray,
    metric: str = "roc_auc",
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedComparison:
    """The paired bootstrap of `metric`(challenger) - `metric`(champion) on the same rows.

    Resamples in which one class is missing (the metric is undefined) are drawn again
    within a bounded number of tries, so small windows still give `resamples` values.

    Raises:
        ValueError: arrays of different lengths, one class only, or an unknown metric.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    y = np.asarray(labels, dtype=np.int64)
    a = np.asarray(champion_scores, dtype=np.float64)
    b = np.asarray(challenger_scores, dtype=np.float64)
    if not len(y) == len(a) == len(b):
        raise ValueError(f"{len(y)} labels, {len(a)} and {len(b)} scores")
    if len(np.unique(y)) < 2:
        raise ValueError("the labelled rows have one class only")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    score = METRICS[metric]
    rng = np.random.default_rng(seed)
    differences: list[float] = []
    tries = 0
    while len(differences) < resamples and tries < 10 * resamples:
        tries += 1
        pick = rng.integers(0, len(y), len(y))
        sample = y[pick]
        if sample.min() == sample.max():
            continue
        differences.append(score(sample, b[pick]) - score(sample, a[pick]))
    spread = np.asarray(differences)
    tail = (1 - confidence) / 2
    champion, challenger = score(y, a), score(y, b)
    return PairedComparison(
        metric=metric,
        rows=len(y),
        champion=champion,
        challenger=challenger,
        difference=challenger - champion,
        ci_low=float(np.quantile(spread, tail)),
        ci_high=float(np.quantile(spread, 1 - tail)),
        confidence=confidence,
        resamples=len(spread),
        challenger_better_share=float(np.mean(spread > 0)),
    )


def two_proportion_test(
    champion_successes: int,
    champion_rows: int,
    challenger_successes: int,
    challenger_rows: int,
    *,
    confidence: float = 0.95,
) -> ProportionComparison:
    """Two-sided z-test of two proportions (pooled), with the unpooled interval of the gap."""
    if champion_rows < 1 or challenger_rows < 1:
        raise ValueError("each group needs at least one row")
    p1, p2 = champion_successes / champion_rows, challenger_successes / challenger_rows
    pooled = (champion_successes + challenger_successes) / (champion_rows + challenger_rows)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / champion_rows + 1 / challenger_rows))
    z = 0.0 if se_pooled == 0 else (p2 - p1) / se_pooled
    p_value = math.erfc(abs(z) / math.sqrt(2))
    se = math.sqrt(p1 * (1 - p1) / champion_rows + p2 * (1 - p2) / challenger_rows)
    z_crit = _normal_quantile(1 - (1 - confidence) / 2)
    return ProportionComparison(
        champion_rows=champion_rows,
        challenger_rows=challenger_rows,
        champion_rate=p1,
        challenger_rate=p2,
        difference=p2 - p1,
        z=z,
        p_value=p_value,
        ci_low=p2 - p1 - z_crit * se,
        ci_high=p2 - p1 + z_crit * se,
        confidence=confidence,
    )


def _normal_quantile(p: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(p))


@dataclass(frozen=True)
class OnlineComparison:
    """What the online experiment of a challenger version says so far."""

    mode: Literal["shadow", "canary"]
    champion_version: str
    challenger_version: str
    labelled_rows: int
    paired: PairedComparison | None = None
    proportions: ProportionComparison | None = None
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "champion_version": self.champion_version,
            "challenger_version": self.challenger_version,
            "labelled_rows": self.labelled_rows,
            "paired": None if self.paired is None else self.paired.to_dict(),
            "proportions": None if self.proportions is None else self.proportions.to_dict(),
            "skipped": self.skipped,
        }


def online_comparison(
    labelled: pd.DataFrame,
    champion_version: str,
    challenger_version: str,
    *,
    metric: str = "roc_auc",
    thresholds: tuple[float, float] | None = None,
    min_rows: int = 30,
    confidence: float = 0.95,
    seed: int = 0,
) -> OnlineComparison:
    """Compare two versions on their own logged, labelled predictions.

    `labelled` is `monitoring.labels.labelled_predictions(...)`. Shadow predictions carry
    `shadow == True`; when there are any, the comparison is paired on the requests both
    versions scored. Otherwise the canary rows of each version are compared with a
    two-proportion test of correct decisions at `thresholds` (champion's, challenger's;
    the logged decision when None). Fewer than `min_rows` rows (of both classes, when
    paired) give a comparison with `skipped` saying so and no test.
    """
    versions = labelled["model_version"].astype(str)
    shadow = (
        labelled[SHADOW_KEY].eq(True)  # absent (None, NaN) on served rows
        if SHADOW_KEY in labelled.columns
        else pd.Series(False, index=labelled.index)
    )
    champion_rows = labelled[(versions == champion_version) & ~shadow]
    if shadow.any():
        return _shadow_comparison(
            champion_rows,
            labelled[(versions == challenger_version) & shadow],
            (champion_version, challenger_version),
            metric=metric,
            min_rows=min_rows,
            confidence=confidence,
            seed=seed,
        )
    return _canary_comparison(
        champion_rows,
        labelled[versions == challenger_version],
        (champion_version, challenger_version),
        thresholds=thresholds,
        min_rows=min_rows,
        confidence=confidence,
    )


def _shadow_comparison(
    champion_rows: pd.DataFrame,
    shadow_rows: pd.DataFrame,
    versions: tuple[str, str],
    *,
    metric: str,
    min_rows: int,
    confidence: float,
    seed: int,
) -> OnlineComparison:
    """The paired bootstrap on the requests both versions scored (shadow mode)."""
    pairs = champion_rows.merge(shadow_rows, on="request_id", suffixes=("_champion", "_challenger"))
    base = OnlineComparison("shadow", *versions, len(pairs))
    if len(pairs) < min_rows or pairs["label_champion"].nunique() < 2:
        return _skip(base, f"{len(pairs)} labelled shadow pairs, need {min_rows} of both classes")
    paired = paired_bootstrap(
        pairs["label_champion"].to_numpy(),
        pairs["score_champion"].to_numpy(),
        pairs["score_challenger"].to_numpy(),
        metric,
        confidence=confidence,
        seed=seed,
    )
    return OnlineComparison("shadow", *versions, len(pairs), paired=paired)


def _canary_comparison(
    champion_rows: pd.DataFrame,
    challenger_rows: pd.DataFrame,
    versions: tuple[str, str],
    *,
    thresholds: tuple[float, float] | None,
    min_rows: int,
    confidence: float,
) -> OnlineComparison:
    """The two-proportion test of correct decisions of each version's own rows (canary)."""
    labelled_rows = len(champion_rows) + len(challenger_rows)
    if len(champion_rows) < min_rows or len(challenger_rows) < min_rows:
        return _skip(
            OnlineComparison("canary", *versions, labelled_rows),
            f"{len(champion_rows)} champion and {len(challenger_rows)} challenger labelled "
            f"rows, need {min_rows} each",
        )
    champion_threshold, challenger_threshold = thresholds or (None, None)
    proportions = two_proportion_test(
        _correct_decisions(champion_rows, champion_threshold),
        len(champion_rows),
        _correct_decisions(challenger_rows, challenger_threshold),
        len(challenger_rows),
        confidence=confidence,
    )
    return OnlineComparison("canary", *versions, labelled_rows, proportions=proportions)


def _correct_decisions(rows: pd.DataFrame, threshold: float | None) -> int:
    """Rows whose decision (at `threshold`, else the logged one) matched the label."""
    decided = rows["decision"].astype(bool) if threshold is None else rows["score"] >= threshold
    return int((decided.to_numpy() == rows["label"].astype(bool).to_numpy()).sum())


def _skip(base: OnlineComparison, why: str) -> OnlineComparison:
    return OnlineComparison(
        base.mode, base.champion_version, base.challenger_version, base.labelled_rows, skipped=why
    )
