"""ONNX export: exported models score like the native ones, and mismatches are caught."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from xgboost import XGBClassifier

from mlops.onnx_scorer import OnnxScorer
from training.export import (
    INPUT_NAME,
    ParityError,
    assert_parity,
    check_parity,
    export_onnx,
    onnx_sha256,
)

N_FEATURES = 25
TOLERANCE = 1e-4
DESCRIPTIVE_COLUMNS = [f"signal_{i}" for i in range(N_FEATURES)]
# The trap: names the converter reads as f<index>, in an order that is not the column order.
SHUFFLED_F_COLUMNS = [f"f{i}" for i in reversed(range(N_FEATURES))]

Split = tuple[np.ndarray, np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def split() -> Split:
    X, y = make_classification(
        n_samples=400, n_features=N_FEATURES, n_informative=10, random_state=7
    )
    return X[:300], y[:300], X[300:]


def _lr_pipeline(X: np.ndarray, y: np.ndarray) -> Pipeline:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)


def _xgb(X: np.ndarray | pd.DataFrame, y: np.ndarray, seed: int = 0) -> XGBClassifier:
    model = XGBClassifier(n_estimators=50, max_depth=4, n_jobs=1, random_state=seed)
    return model.fit(X, y)


@pytest.fixture(scope="module")
def lr_onnx(split: Split, tmp_path_factory: pytest.TempPathFactory) -> tuple[Pipeline, Path]:
    X_train, y_train, _ = split
    model = _lr_pipeline(X_train, y_train)
    return model, export_onnx(model, N_FEATURES, tmp_path_factory.mktemp("lr") / "lr.onnx")


@pytest.fixture(scope="module")
def xgb_onnx(split: Split, tmp_path_factory: pytest.TempPathFactory) -> tuple[XGBClassifier, Path]:
    X_train, y_train, _ = split
    model = _xgb(X_train, y_train)
    return model, export_onnx(model, N_FEATURES, tmp_path_factory.mktemp("xgb") / "xgb.onnx")


@pytest.mark.parametrize("fixture", ["lr_onnx", "xgb_onnx"])
def test_export_matches_native_on_held_out_rows(
    fixture: str, split: Split, request: pytest.FixtureRequest
) -> None:
    model, path = request.getfixturevalue(fixture)
    report = check_parity(model, path, split[2], TOLERANCE)

    assert report.passed, report
    assert report.max_abs_diff < TOLERANCE
    assert report.n_rows == len(split[2])
    assert_parity(report)


@pytest.mark.parametrize("columns", [DESCRIPTIVE_COLUMNS, SHUFFLED_F_COLUMNS])
def test_xgboost_fitted_on_named_columns_exports_by_position(
    columns: list[str], split: Split, tmp_path: Path
) -> None:
    X_train, y_train, X_test = split
    model = _xgb(pd.DataFrame(X_train, columns=columns), y_train)

    path = export_onnx(model, N_FEATURES, tmp_path / "named.onnx")

    assert check_parity(model, path, X_test, TOLERANCE).passed
    assert model.get_booster().feature_names == columns, "the caller's model was modified"


def test_exported_file_has_the_serving_contract(lr_onnx: tuple[Pipeline, Path]) -> None:
    _, path = lr_onnx
    scorer = OnnxScorer(path.read_bytes())

    assert scorer.input_name == INPUT_NAME
    assert scorer.n_features == N_FEATURES
    assert not list(path.parent.glob("*.tmp")), "temporary file left behind"
    assert onnx_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("fixture", ["lr_onnx", "xgb_onnx"])
def test_single_row_returns_one_probability(
    fixture: str, split: Split, request: pytest.FixtureRequest
) -> None:
    model, path = request.getfixturevalue(fixture)
    row = split[2][:1].astype(np.float32)

    probability = OnnxScorer(path).predict_proba(row)

    assert probability.shape == (1,)
    assert 0.0 <= probability[0] <= 1.0
    assert probability[0] == pytest.approx(model.predict_proba(row)[0, 1], abs=TOLERANCE)


@pytest.mark.parametrize(
    "shape", [(1, N_FEATURES - 1), (3, N_FEATURES + 1), (N_FEATURES,)], ids=str
)
def test_scorer_rejects_wrong_width(
    shape: tuple[int, ...], xgb_onnx: tuple[XGBClassifier, Path]
) -> None:
    scorer = OnnxScorer(xgb_onnx[1])

    with pytest.raises(ValueError, match=f"\\(n, {N_FEATURES}\\)"):
        scorer.predict_proba(np.zeros(shape, dtype=np.float32))


def test_export_from_another_model_fails_parity(
    split: Split, lr_onnx: tuple[Pipeline, Path], tmp_path: Path
) -> None:
    X_train, y_train, X_test = split
    other = _xgb(X_train, 1 - y_train, seed=1)
    other_path = export_onnx(other, N_FEATURES, tmp_path / "other.onnx")
    native_lr, _ = lr_onnx

    report = check_parity(native_lr, other_path, X_test, TOLERANCE)

    assert not report.passed
    assert report.max_abs_diff > 0.1
    with pytest.raises(ParityError) as caught:
        assert_parity(report)
    assert caught.value.report is report


def test_export_refuses_a_feature_count_the_model_was_not_fitted_on(
    lr_onnx: tuple[Pipeline, Path], tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="fitted on 25 features"):
        export_onnx(lr_onnx[0], N_FEATURES + 1, tmp_path / "wrong.onnx")
    assert not list(tmp_path.iterdir())
