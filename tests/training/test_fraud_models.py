"""Fraud candidates: resampling ratios, and the anomaly score computed inside the ONNX graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from sklearn.datasets import make_classification

from mlops.onnx_scorer import OnnxScorer
from training.export import INPUT_NAME, check_parity, export_onnx
from training.fraud_models import (
    RESAMPLED_RATIO,
    AnomalyAugmentedClassifier,
    ModelSpec,
    anomaly_score,
    fit_detector,
    isolation_forest_augmenter,
    resample,
    with_anomaly,
)

N_FEATURES = 8


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y = make_classification(
        n_samples=3000, n_features=N_FEATURES, weights=[0.97], random_state=3
    )
    x = x.astype(np.float32)
    # Repeated values, as the window features have (counts, flags): ties at split points.
    x[:, 0] = np.round(x[:, 0])
    return x[:2000], y[:2000], x[2000:]


def test_anomaly_score_in_the_graph_is_bit_identical_to_the_native_one(data) -> None:  # type: ignore[no-untyped-def]
    x_train, _, x_test = data
    detector = fit_detector(x_train, seed=0)
    session = ort.InferenceSession(
        isolation_forest_augmenter(detector, N_FEATURES).SerializeToString()
    )

    (augmented,) = session.run(None, {INPUT_NAME: x_test})

    np.testing.assert_array_equal(augmented[:, :N_FEATURES], x_test)
    np.testing.assert_array_equal(
        augmented[:, -1], anomaly_score(detector, x_test).astype(np.float32)
    )
    # The same score scikit-learn computes, up to float32 rounding of each tree's path.
    np.testing.assert_allclose(
        anomaly_score(detector, x_test), -detector.score_samples(x_test), rtol=1e-6
    )


@pytest.mark.parametrize("family", ["logistic", "xgboost"])
def test_composed_model_takes_the_transaction_row_and_scores_like_the_native_one(
    family: str,
    data,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    x_train, y_train, x_test = data
    detector = fit_detector(x_train, seed=0)
    spec = ModelSpec(family, anomaly_feature=True)  # type: ignore[arg-type]
    classifier = spec.fit_classifier(
        with_anomaly(x_train, anomaly_score(detector, x_train)), y_train, seed=0
    )
    model = AnomalyAugmentedClassifier(detector, classifier)

    path = export_onnx(model, N_FEATURES, tmp_path / "composed.onnx")
    scorer = OnnxScorer(path)

    assert scorer.input_name == INPUT_NAME and scorer.n_features == N_FEATURES
    report = check_parity(model, path, x_test, tolerance=1e-4)
    assert report.passed, report
    assert scorer.predict_proba(x_test[:1]).shape == (1,)


@pytest.mark.parametrize("imbalance", ["smote", "undersample"])
def test_resampling_reaches_the_target_ratio_and_leaves_balanced_data_alone(
    imbalance: str,
    data,  # type: ignore[no-untyped-def]
) -> None:
    x, y, _ = data
    x_out, y_out = resample(imbalance, x, y, seed=0)  # type: ignore[arg-type]

    genuine, frauds = int((y_out == 0).sum()), int(y_out.sum())
    assert genuine == pytest.approx(RESAMPLED_RATIO * frauds, rel=0.01)
    assert len(x_out) == len(y_out)
    balanced = np.r_[np.zeros(10), np.ones(10)].astype(int)
    rows = np.zeros((20, N_FEATURES), dtype=np.float32)
    assert resample(imbalance, rows, balanced, seed=0)[1] is balanced  # type: ignore[arg-type]
