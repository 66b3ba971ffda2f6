"""Export trained binary classifiers to ONNX and prove the export scores like the original.

``export_onnx`` writes a model the serving process can load with
``mlops.onnx_scorer.OnnxScorer``: one float32 input named ``features`` of shape
``[None, n_features]`` and a plain probability tensor (no ZipMap). scikit-learn
estimators and pipelines go through skl2onnx; ``xgboost.XGBClassifier`` goes
through onnxmltools. ``check_parity`` compares native and ONNX probabilities on
held-out rows; ``assert_parity`` turns a failed report into ``ParityError`` so a
flow can refuse to register a model whose export does not score like it.
"""

from __future__ import annotations

import copy
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

import numpy as np
import onnx
from onnxmltools.convert import convert_xgboost
from onnxmltools.convert.common.data_types import FloatTensorType as XgbFloatTensorType
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType as SklFloatTensorType
from xgboost import XGBClassifier

from mlops.onnx_scorer import OnnxScorer

INPUT_NAME: Final = "features"
# The onnxmltools XGBoost converter accepts opsets up to 15; scikit-learn models use
# the same so every exported model needs the same runtime support.
TARGET_OPSET: Final = 15


class ProbabilisticClassifier(Protocol):
    """A fitted binary classifier: `predict_proba(rows)` gives [N, 2] class probabilities."""

    def predict_proba(self, X: Any) -> np.ndarray: ...


@runtime_checkable
class OnnxConvertible(Protocol):
    """A model that builds its own ONNX graph (e.g. a classifier composed with a detector).

    The graph must follow the serving contract: one float32 input named ``INPUT_NAME``
    of shape ``[None, n_features]`` and a ``[None, 2]`` probability output.
    """

    def predict_proba(self, X: Any) -> np.ndarray: ...

    def to_onnx(self, n_features: int) -> onnx.ModelProto: ...


class ParityError(RuntimeError):
    """The ONNX export does not reproduce the native model's probabilities."""

    def __init__(self, report: ParityReport) -> None:
        super().__init__(
            f"ONNX and native probabilities differ by up to {report.max_abs_diff:.3g} "
            f"(mean {report.mean_abs_diff:.3g}) over {report.n_rows} rows; "
            f"tolerance {report.tolerance:.3g}"
        )
        self.report = report


@dataclass(frozen=True)
class ParityReport:
    """Absolute differences between native and ONNX positive-class probabilities."""

    max_abs_diff: float
    mean_abs_diff: float
    n_rows: int
    tolerance: float
    passed: bool


def export_onnx(model: ProbabilisticClassifier, n_features: int, path: Path) -> Path:
    """Convert a fitted binary classifier to ONNX and write it atomically to ``path``.

    ``model`` is an ``XGBClassifier``, a scikit-learn estimator or pipeline with
    ``predict_proba``, or an ``OnnxConvertible``. Returns ``path``.
    """
    onnx_model = to_onnx_model(model, n_features)
    onnx.checker.check_model(onnx_model)
    _write_atomically(onnx_model.SerializeToString(), path)
    return path


def to_onnx_model(model: ProbabilisticClassifier, n_features: int) -> onnx.ModelProto:
    """The ONNX graph of a fitted binary classifier, in memory (see ``export_onnx``)."""
    _check_exportable(model, n_features)
    if isinstance(model, OnnxConvertible):
        return model.to_onnx(n_features)
    if isinstance(model, XGBClassifier):
        return _xgboost_to_onnx(model, n_features)
    return _sklearn_to_onnx(model, n_features)


def check_parity(
    model: ProbabilisticClassifier, onnx_path: Path, X: np.ndarray, tolerance: float
) -> ParityReport:
    """Score ``X`` with the native model and with the ONNX file and compare.

    scikit-learn models are scored natively on ``X`` as given and the ONNX file on
    ``X`` cast to float32, which is exactly what serving does. XGBoost is scored
    natively on the float32 rows too: it casts to float32 internally anyway.
    Never raises on a mismatch; pass the report to ``assert_parity`` for that.
    """
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"X must be a non-empty 2-D array, got shape {X.shape}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    rows = np.ascontiguousarray(X, dtype=np.float32)
    native_input = rows if isinstance(model, XGBClassifier) else X
    native = np.asarray(model.predict_proba(native_input), dtype=np.float64)[:, 1]
    exported = OnnxScorer(onnx_path).predict_proba(rows).astype(np.float64)
    diff = np.abs(native - exported)
    max_abs_diff = float(diff.max())
    return ParityReport(
        max_abs_diff=max_abs_diff,
        mean_abs_diff=float(diff.mean()),
        n_rows=int(X.shape[0]),
        tolerance=tolerance,
        # Written so that a NaN difference fails.
        passed=bool(max_abs_diff <= tolerance),
    )


def assert_parity(report: ParityReport) -> None:
    """Raise ``ParityError`` unless the report passed."""
    if not report.passed:
        raise ParityError(report)


def onnx_sha256(path: Path) -> str:
    """Hex SHA-256 of the file, recorded with the registered model to pin what is served."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _check_exportable(model: ProbabilisticClassifier, n_features: int) -> None:
    if not hasattr(model, "predict_proba"):
        raise TypeError(f"{type(model).__name__} has no predict_proba")
    fitted_features = getattr(model, "n_features_in_", None)
    if fitted_features is not None and fitted_features != n_features:
        raise ValueError(f"model was fitted on {fitted_features} features, not {n_features}")
    classes = getattr(model, "classes_", None)
    if classes is not None and len(classes) != 2:
        raise ValueError(f"expected a binary classifier, model has {len(classes)} classes")


def _sklearn_to_onnx(model: ProbabilisticClassifier, n_features: int) -> onnx.ModelProto:
    # Options without an estimator key apply to every classifier in a pipeline.
    return convert_sklearn(
        model,
        initial_types=[(INPUT_NAME, SklFloatTensorType([None, n_features]))],
        options={"zipmap": False},
        target_opset=TARGET_OPSET,
    )


def _xgboost_to_onnx(model: XGBClassifier, n_features: int) -> onnx.ModelProto:
    # The converter maps split features by name and only understands "f<index>".
    # A model fitted on a DataFrame carries its column names, which are either not
    # of that form or (worse) are, in another order. Serving passes columns by
    # position, so convert a copy whose booster has no names: XGBoost then uses
    # the positional f0..f<n-1>. The caller's model keeps its names.
    positional = copy.deepcopy(model)
    positional.get_booster().feature_names = None
    return convert_xgboost(
        positional,
        initial_types=[(INPUT_NAME, XgbFloatTensorType([None, n_features]))],
        target_opset=TARGET_OPSET,
    )


def _write_atomically(data: bytes, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same folder as the target, so the rename stays on one file system.
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
