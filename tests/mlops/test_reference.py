"""The training reference saved with each registered version, and read back for monitoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops.model_bundle import download_bundle
from mlops.onnx_scorer import OnnxScorer
from mlops.reference import REFERENCE_ROWS, load_reference, reference_sample
from mlops.settings import Settings
from monitoring.checks import run_checks


def test_sample_is_bounded_seeded_and_scored() -> None:
    rows = np.arange(30, dtype=np.float32).reshape(10, 3)
    labels = np.array([0, 1] * 5)

    def score(batch: np.ndarray) -> np.ndarray:
        return batch[:, 0] / 100

    sample = reference_sample(("a", "b", "c"), rows, labels, score, max_rows=4, seed=3)
    assert list(sample.columns) == ["a", "b", "c", "score", "label"]
    assert len(sample) == 4
    assert sample["a"].is_monotonic_increasing  # original order kept
    assert np.allclose(sample["score"], sample["a"] / 100)
    assert (sample["label"] == (sample["a"] / 3 % 2)).all()  # each row keeps its own label
    again = reference_sample(("a", "b", "c"), rows, labels, score, max_rows=4, seed=3)
    pd.testing.assert_frame_equal(sample, again)
    with pytest.raises(ValueError, match="3 columns"):
        reference_sample(("a", "b", "c"), rows[:, :2], labels, score)


@pytest.mark.slow  # reads the session's churn and fraud runs: both flows, trained
@pytest.mark.parametrize("model", ["churn", "fraud"])
def test_each_case_study_saves_a_reference(model: str, request: pytest.FixtureRequest) -> None:
    settings: Settings = request.getfixturevalue(f"{model}_settings")
    bundle = download_bundle(settings.tracking_uri, model, settings.models_dir, alias="champion")
    reference = load_reference(settings, model, bundle.version)

    assert list(reference.columns) == [*bundle.meta.feature_names, "score", "label"]
    assert 0 < len(reference) <= REFERENCE_ROWS
    rows = reference[bundle.meta.feature_names].to_numpy(dtype=np.float32)
    onnx = OnnxScorer(bundle.onnx_path).predict_proba(rows)
    assert np.allclose(reference["score"], onnx, atol=1e-6)
    assert set(reference["label"].unique()) <= {0, 1}


@pytest.mark.slow  # reads the session's churn run
def test_registered_version_has_its_reference(churn_settings: Settings) -> None:
    settings = churn_settings
    bundle = download_bundle(settings.tracking_uri, "churn", settings.models_dir, alias="champion")
    reference = load_reference(settings, "churn", bundle.version)

    assert list(reference.columns) == [*bundle.meta.feature_names, "score", "label"]
    assert 0 < len(reference) <= REFERENCE_ROWS
    assert set(reference["label"].unique()) == {0, 1}
    # The score column is what serving computes: the version's ONNX model on the same rows.
    rows = reference[bundle.meta.feature_names].to_numpy(dtype=np.float32)
    onnx = OnnxScorer(bundle.onnx_path).predict_proba(rows)
    assert np.allclose(reference["score"], onnx, atol=1e-6)
    # Cached after the first read.
    assert (settings.monitoring_dir / "references" / f"churn-v{bundle.version}").is_dir()

    # Its own rows against it: no drift, and the quality check works on the real metrics.
    first, second = reference.iloc[::2], reference.iloc[1::2]
    result = run_checks(
        "churn",
        bundle.version,
        first,
        second,
        second,
        feature_names=bundle.meta.feature_names,
        threshold=bundle.meta.threshold,
        test_metrics=bundle.meta.test_metrics,
    )
    assert result.data_drift.dataset_drift is False
    assert result.prediction_drift.drifted is False
    assert result.classification is not None
    assert result.classification.metrics["roc_auc"] == pytest.approx(
        bundle.meta.test_metrics["roc_auc"], abs=0.05
    )

    with pytest.raises(LookupError, match="no version 999"):
        load_reference(settings, "churn", "999")
