"""The challenger test: a challenger takes `champion` only if it beats it on live labels.

The promotion gate at registration (`training.promotion_gate`) compares a new model with
the champion on the new model's own test rows. After a drift, those rows come from the
fresh data the challenger was trained on; what matters is how each model does on the
traffic it will actually serve. So a retrained model is registered as `challenger`
(`register_winner(..., auto_promote=False)`), and this test decides:

1. both the champion and the challenger rescore the same rows: the most recent
   labelled predictions of the prediction log (features as served, labels as they
   arrived), one row per request;
2. the challenger must beat the champion on the model's primary metric (ROC-AUC for
   churn, average precision for fraud) by more than `promotion_min_gain`, on at least
   `monitor_min_labelled_rows` rows holding both classes; a paired bootstrap interval
   of the difference (`monitoring.experiment_stats.paired_bootstrap`) is reported with it;
3. its single-row ONNX latency (p99 over `LATENCY_CALLS` calls, this process) must stay
   within `promotion_latency_budget_ms`;
4. when the challenger ran online (shadow or canary, `serving.challenger`), its own
   live outcomes are compared with the champion's (`monitoring.experiment_stats`): an
   experiment that finds it significantly worse refuses the promotion.

`judge` is the rule as a pure function; `run_challenger_test` gathers the figures and, on a
pass, promotes with `mlops.registry.promote` (the champion history that rollback
uses). A challenger that fails keeps its `challenger` alias for inspection.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd

from monitoring.experiment_stats import (
    METRICS,
    OnlineComparison,
    PairedComparison,
    online_comparison,
    paired_bootstrap,
)

if TYPE_CHECKING:
    from mlops.model_bundle import RegisteredBundle
    from mlops.settings import Settings

__all__ = [
    "LATENCY_CALLS",
    "ChallengerVerdict",
    "judge",
    "run_challenger_test",
    "single_row_p99_ms",
]

LATENCY_CALLS: Final = 500
_WARM_UP_CALLS: Final = 50


@dataclass(frozen=True)
class ChallengerVerdict:
    """What the challenger test decided and why, with the figures it read (None where it
    stopped before reading them)."""

    promoted: bool
    reason: str
    metric: str
    champion_version: str | None
    challenger_version: str | None
    labelled_rows: int
    champion_metric: float | None = None
    challenger_metric: float | None = None
    latency_p99_ms: float | None = None
    latency_budget_ms: float | None = None
    comparison: dict[str, Any] | None = None
    # The shadow or canary experiment's test (`monitoring.experiment_stats`), when there was one.
    online_experiment: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge(
    *,
    metric: str,
    champion_metric: float,
    challenger_metric: float,
    labelled_rows: int,
    min_labelled_rows: int,
    min_gain: float,
    latency_p99_ms: float,
    latency_budget_ms: float,
    online_worse: str | None = None,
) -> tuple[bool, str]:
    """The challenger test's rule (see the module doc): promote or not, and why.

    `online_worse` says why an online experiment found the challenger significantly worse
    on its own live outcomes; it refuses the promotion whatever the rescoring says.
    """
    if labelled_rows < min_labelled_rows:
        return False, f"{labelled_rows} labelled rows, fewer than {min_labelled_rows}"
    gain = challenger_metric - champion_metric
    if not gain > min_gain:
        return False, (
            f"{metric} {challenger_metric:.4f} does not beat the champion's "
            f"{champion_metric:.4f} by more than {min_gain:.4f} on {labelled_rows} labelled rows"
        )
    if not latency_p99_ms <= latency_budget_ms:
        return False, (
            f"{metric} {challenger_metric:.4f} beats {champion_metric:.4f}, but its single-row "
            f"p99 {latency_p99_ms:.3f} ms exceeds the {latency_budget_ms:.3f} ms budget"
        )
    if online_worse is not None:
        return (
            False,
            f"{metric} {challenger_metric:.4f} beats {champion_metric:.4f}, but {online_worse}",
        )
    return True, (
        f"{metric} {challenger_metric:.4f} beats the champion's {champion_metric:.4f} on "
        f"{labelled_rows} labelled rows; single-row p99 {latency_p99_ms:.3f} ms within "
        f"{latency_budget_ms:.3f} ms"
    )


def single_row_p99_ms(bundle: RegisteredBundle, row: np.ndarray) -> float:
    """p99 of `LATENCY_CALLS` single-row ONNX calls, as serving makes them (one thread)."""
    from mlops.onnx_scorer import single_row_timings_ms

    one = row.reshape(1, -1)
    timings = single_row_timings_ms(bundle.onnx_path, one, LATENCY_CALLS, _WARM_UP_CALLS)
    return float(np.quantile(timings, 0.99))


def _rows(labelled: pd.DataFrame, bundle: RegisteredBundle) -> np.ndarray:
    names = bundle.meta.feature_names
    missing = [name for name in names if name not in labelled.columns]
    if missing:
        raise LookupError(f"v{bundle.version} needs features the log lacks: {missing[:5]}")
    return labelled.loc[:, names].to_numpy(dtype=np.float32)


def run_challenger_test(
    settings: Settings, model_name: str, labelled: pd.DataFrame, metric: str
) -> ChallengerVerdict:
    """Rescore `labelled` with champion and challenger; promote the challenger if it passes.

    `labelled` is `monitoring.labels.labelled_predictions(...)` over the recent window;
    shadow and canary rows of the same request are counted once. `metric` is the case
    study's primary metric. Returns the verdict with the figures it read; the challenger's
    registry version gets a `challenger_test` tag with the reason once it was rescored.

    Raises:
        ValueError: `metric` is not one the test can compute.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown primary metric {metric!r}")
    found = _contenders(settings, model_name, metric)
    if isinstance(found, ChallengerVerdict):
        return found
    champion, challenger = found
    rows = labelled.drop_duplicates("request_id", keep="first") if len(labelled) else labelled
    base: dict[str, Any] = {
        "metric": metric,
        "champion_version": None if champion is None else champion.version,
        "challenger_version": challenger.version,
        "labelled_rows": len(rows),
        "latency_budget_ms": settings.promotion_latency_budget_ms,
    }
    refusal = _not_comparable(rows, champion)
    if champion is None or refusal is not None:
        return ChallengerVerdict(False, f"not promoted: {refusal}", **base)
    try:
        x_champion, x_challenger = _rows(rows, champion), _rows(rows, challenger)
    except LookupError as error:
        return ChallengerVerdict(False, f"not promoted: {error}", **base)
    comparison = paired_bootstrap(
        rows["label"].to_numpy(dtype=np.int64),
        _scores(champion, x_champion),
        _scores(challenger, x_challenger),
        metric,
        seed=settings.seed,
    )
    latency = single_row_p99_ms(challenger, x_challenger[0])
    online = _online_experiment(settings, labelled, champion, challenger, metric)
    promoted, reason = _judge(settings, metric, comparison, len(rows), latency, online)
    _record(settings, model_name, challenger.version, promoted, reason)
    return ChallengerVerdict(
        promoted,
        reason,
        champion_metric=comparison.champion,
        challenger_metric=comparison.challenger,
        latency_p99_ms=latency,
        comparison=comparison.to_dict(),
        online_experiment=None if online is None else online.to_dict(),
        **base,
    )


def _contenders(
    settings: Settings, model_name: str, metric: str
) -> tuple[RegisteredBundle | None, RegisteredBundle] | ChallengerVerdict:
    """The champion (None if there is none) and the challenger, or the verdict that there
    is nothing to test: no challenger, or the challenger is the champion already."""
    from mlops.model_bundle import download_bundle
    from mlops.names import CHALLENGER, CHAMPION

    try:
        challenger = download_bundle(
            settings.tracking_uri, model_name, settings.models_dir, alias=CHALLENGER
        )
    except LookupError as error:
        return ChallengerVerdict(False, f"no challenger: {error}", metric, None, None, 0)
    try:
        champion = download_bundle(
            settings.tracking_uri, model_name, settings.models_dir, alias=CHAMPION
        )
    except LookupError:
        champion = None
    if champion is not None and champion.version == challenger.version:
        return ChallengerVerdict(
            False,
            "the challenger is the champion already",
            metric,
            champion.version,
            challenger.version,
            0,
        )
    return champion, challenger


def _not_comparable(rows: pd.DataFrame, champion: RegisteredBundle | None) -> str | None:
    """Why the rows cannot compare the two models (no champion, one class), or None."""
    classes = rows["label"].nunique() if len(rows) else 0
    if champion is None:
        return "no champion to compare with"
    if classes < 2:
        return f"{len(rows)} labelled rows with {classes} class(es)"
    return None


def _scores(bundle: RegisteredBundle, rows: np.ndarray) -> np.ndarray:
    """The bundle's ONNX scores of `rows`, as serving computes them."""
    from mlops.onnx_scorer import OnnxScorer

    return OnnxScorer(bundle.onnx_path).predict_proba(rows)


def _judge(
    settings: Settings,
    metric: str,
    comparison: PairedComparison,
    labelled_rows: int,
    latency_p99_ms: float,
    online: OnlineComparison | None,
) -> tuple[bool, str]:
    """`judge` under the settings' bars, the bootstrap interval added to the reason."""
    promoted, reason = judge(
        metric=metric,
        champion_metric=comparison.champion,
        challenger_metric=comparison.challenger,
        labelled_rows=labelled_rows,
        min_labelled_rows=settings.monitor_min_labelled_rows,
        min_gain=settings.promotion_min_gain,
        latency_p99_ms=latency_p99_ms,
        latency_budget_ms=settings.promotion_latency_budget_ms,
        online_worse=None if online is None else _worse(online),
    )
    reason += (
        f" (paired bootstrap {comparison.confidence:.0%} CI of the difference "
        f"[{comparison.ci_low:+.4f}, {comparison.ci_high:+.4f}])"
    )
    return promoted, reason


def _record(
    settings: Settings, model_name: str, challenger_version: str, promoted: bool, reason: str
) -> None:
    """Promote a challenger that passed; tag the version with the reason either way."""
    from mlflow import MlflowClient

    from mlops.names import CHALLENGER
    from mlops.registry import promote

    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    if promoted:
        promote(client, model_name, challenger_version, reason=f"challenger test: {reason}")
        # The alias named the candidate under test; it has none now.
        client.delete_registered_model_alias(model_name, CHALLENGER)
    client.set_model_version_tag(model_name, challenger_version, "challenger_test", reason[:5000])


def _online_experiment(
    settings: Settings,
    labelled: pd.DataFrame,
    champion: RegisteredBundle,
    challenger: RegisteredBundle,
    metric: str,
) -> OnlineComparison | None:
    """The shadow or canary comparison, when the challenger served (or shadowed) traffic."""
    if not (labelled["model_version"].astype(str) == challenger.version).any():
        return None
    return online_comparison(
        labelled,
        champion.version,
        challenger.version,
        metric=metric,
        thresholds=(champion.meta.threshold, challenger.meta.threshold),
        seed=settings.seed,
    )


def _worse(online: OnlineComparison) -> str | None:
    """Why the online experiment says the challenger is worse, if it says so."""
    test = online.paired or online.proportions
    if test is None or not test.ci_high < 0:
        return None
    return (
        f"the {online.mode} experiment finds it worse on {online.labelled_rows} live outcomes "
        f"({test.confidence:.0%} CI of the difference [{test.ci_low:+.4f}, {test.ci_high:+.4f}])"
    )
