"""Score a batch with a registered version's native model, the one training fitted.

The batch path's second engine (`mlops score --engine native`): MLflow loads the flavour
training logged for the version (XGBoost or scikit-learn) and the rows are scored by the
training library itself. For XGBoost that is the booster's `inplace_predict` on the
float32 matrix, no DMatrix and no DataFrame, on every core: faster than the ONNX tree
ensemble on the demo's fraud model (figures in `mlops bench batch`). Serving never imports
this module: it would load the training libraries into the API process.
"""

from __future__ import annotations

from typing import Any

import numpy as np

POSITIVE_CLASS_COLUMN = 1


class NativeScorer:
    """A registered version's native model behind `predict_proba(rows) -> probabilities`."""

    def __init__(self, model: Any, *, threads: int) -> None:
        """`model` is what MLflow's flavour loads: an `XGBClassifier` or a scikit-learn
        classifier (estimator, pipeline or composed model) with `predict_proba`."""
        if threads < 1:
            raise ValueError("thread counts must be at least 1")
        if not hasattr(model, "predict_proba"):
            raise ValueError(f"the native model ({type(model).__name__}) has no predict_proba")
        self.model = model
        self._booster: Any = None
        self._iteration_range = (0, 0)
        # Told apart by the class's module: a scikit-learn model then never imports XGBoost.
        if type(model).__module__.startswith("xgboost"):
            self._booster = model.get_booster()
            self._booster.set_param({"nthread": threads})
            # The trees predict_proba would use: best_iteration's when trained with early
            # stopping, else all of them.
            self._iteration_range = model._get_iteration_range(None)

    @property
    def engine_detail(self) -> str:
        return "xgboost inplace_predict" if self._booster is not None else "predict_proba"

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        """Positive-class probability of each row of a `(n, n_features)` float32 array."""
        if self._booster is not None:
            # binary:logistic gives the positive-class probability; another objective
            # would not, and the parity check refuses the model before any scoring.
            return np.asarray(
                self._booster.inplace_predict(rows, iteration_range=self._iteration_range)
            )
        return np.asarray(self.model.predict_proba(rows))[:, POSITIVE_CLASS_COLUMN]


def load_native_scorer(tracking_uri: str, name: str, version: str, *, threads: int) -> NativeScorer:
    """The native model registered as `name` version `version`, ready to score.

    Raises `LookupError` when the version or its model files cannot be found or loaded.
    """
    from mlops.model_bundle import load_native_model

    return NativeScorer(load_native_model(tracking_uri, name, version), threads=threads)
