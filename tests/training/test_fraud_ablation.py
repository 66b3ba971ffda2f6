"""The fraud feature ablation: its variants drop exactly one group, and a group's gain is
the full model's metric minus the one without it, paired by seed and week."""

from __future__ import annotations

import pytest

from features.fraud_windows import FRAUD_FEATURES
from sources.fraud_simulator import simulate_transactions
from training.fraud_ablation import FEATURE_GROUPS, FULL, METRICS, ablate_fraud, summarize, variants
from training.fraud_evaluation import labelled_features


def test_each_variant_lacks_exactly_its_group() -> None:
    chosen = variants()
    assert chosen[FULL] == list(FRAUD_FEATURES)
    assert len(chosen) == 1 + len(FEATURE_GROUPS)
    for group, names in FEATURE_GROUPS.items():
        kept = chosen[f"without {group}"]
        assert set(FRAUD_FEATURES) - set(kept) == set(names)
        assert kept == [f for f in FRAUD_FEATURES if f in kept]  # the model's order


def test_a_group_naming_an_unknown_feature_is_refused() -> None:
    with pytest.raises(ValueError, match="does not have"):
        variants({"typo": ("terminal_risk_8d",)})


def _run(seed: int, week: int, full: float, without: float) -> dict:
    return {
        "seed": seed,
        "week": week,
        "metrics": {
            FULL: dict.fromkeys(METRICS, full),
            "without g": dict.fromkeys(METRICS, without),
        },
    }


def test_gains_are_paired_differences_and_hold_only_beyond_their_spread() -> None:
    # Realizations far apart (0.5 vs 0.8) with the same small gain: the pairing keeps it.
    steady = summarize([_run(0, 0, 0.52, 0.50), _run(1, 0, 0.81, 0.80)], [0, 1], 1)
    gain = steady["gains"]["g"]["average_precision"]
    assert gain["mean"] == pytest.approx(0.015)
    assert gain["min"] == pytest.approx(0.01)
    assert steady["gains"]["g"]["holds"]
    assert steady["variants"][FULL]["average_precision"]["sd"] > 0.2
    # A gain one way on one seed and the other way on the next does not hold.
    noisy = summarize([_run(0, 0, 0.52, 0.50), _run(1, 0, 0.79, 0.80)], [0, 1], 1)
    assert not noisy["gains"]["g"]["holds"]


def test_ablation_of_a_small_simulation() -> None:
    frames = {3: labelled_features(simulate_transactions(300, 600, 140, seed=3))}
    result = ablate_fraud([3], frames.__getitem__, weeks=1)
    (run,) = result["runs"]
    assert set(run["metrics"]) == set(variants())
    for group in FEATURE_GROUPS:
        for metric in METRICS:
            diff = run["metrics"][FULL][metric] - run["metrics"][f"without {group}"][metric]
            assert result["gains"][group][metric]["mean"] == pytest.approx(diff)
    for metrics in run["metrics"].values():
        assert 0.5 < metrics["roc_auc"] <= 1.0
    with pytest.raises(ValueError, match="fewer weeks"):
        ablate_fraud([3], frames.__getitem__, weeks=5)
