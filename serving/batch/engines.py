"""The engines that score a batch, and loading one that is checked before it scores.

Two engines score (`Engine`): "onnx", the bundle's ONNX file as serving runs it, spread
over every core (`mlops.onnx_scorer.ConcurrentOnnxScorer`), or "native", the registered
version's native model through its MLflow flavour (XGBoost or scikit-learn), faster on
large tree ensembles. Either must reproduce the native probabilities saved with the
bundle (its parity sample, within `settings.parity_tolerance`) before it scores a row;
one that does not is refused with `mlops.model_bundle.ParityMismatch`.

By default ("auto") the batch path takes the native engine for an XGBoost model (its
registered candidate's name says so), the faster one on the demo's tree ensembles
(`mlops bench batch`: `inplace_predict` 2.5x the ONNX tree ensemble on the same cores),
whose trees score each row the same whatever the chunk; it falls back to ONNX when the
native model cannot be loaded or does not reproduce the parity sample. Any other model
(a scikit-learn one, whose last bits can depend on the chunk's size) is scored with
ONNX. The summary says which engine scored, and why when it fell back.

For XGBoost the native engine is the booster's `inplace_predict` on the float32 matrix,
no DMatrix and no DataFrame, on every core: faster than the ONNX tree ensemble on the
demo's fraud model (figures in `mlops bench batch`). Serving never imports this module:
the native engine loads the training libraries into the process that scores.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args

import numpy as np

from mlops.model_bundle import RegisteredBundle, download_bundle
from mlops.onnx_scorer import ConcurrentOnnxScorer
from mlops.settings import Settings

Engine = Literal["onnx", "native"]
ENGINES: tuple[Engine, ...] = get_args(Engine)
# What a caller may ask for: an engine, or "auto", the faster one that passes its check.
EngineChoice = Literal["auto", "onnx", "native"]
ENGINE_CHOICES: tuple[EngineChoice, ...] = get_args(EngineChoice)
AUTO: EngineChoice = "auto"
# How training's XGBoost candidates are named ("xgboost" for churn, "xgboost_<imbalance>..."
# for fraud, `training.fraud_models`): "auto" scores those natively.
XGBOOST_CANDIDATES = "xgboost"
POSITIVE_CLASS_COLUMN = 1

logger = logging.getLogger(__name__)


class ProbabilityScorer(Protocol):
    """What an engine offers the batch path: positive-class probabilities of float32 rows."""

    def predict_proba(self, rows: np.ndarray) -> np.ndarray: ...


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


def load_scorer(
    settings: Settings, bundle: RegisteredBundle, engine: Engine, *, threads: int | None = None
) -> ProbabilityScorer:
    """`bundle`'s version scored by `engine` on `threads` cores (default: every CPU), once
    it reproduces the bundle's parity sample within `settings.parity_tolerance`.

    Raises `mlops.model_bundle.ParityMismatch` when it does not, `LookupError` when the native model
    cannot be loaded.
    """
    # A batch has many rows per call: unlike the API, use every core.
    cores = threads or os.cpu_count() or 1
    scorer: ProbabilityScorer
    if engine == "native":
        scorer = load_native_scorer(
            settings.tracking_uri, bundle.name, bundle.version, threads=cores
        )
    else:
        scorer = ConcurrentOnnxScorer(bundle.onnx_path, threads=cores)
    bundle.check_parity(scorer.predict_proba, settings.parity_tolerance, f"the {engine} engine")
    return scorer


@dataclass(frozen=True)
class LoadedEngine:
    """The bundle of the version to score, the engine that scores it, and why that one."""

    bundle: RegisteredBundle
    scorer: ProbabilityScorer
    engine: Engine
    fallback_reason: str | None = None


def load_registered_engine(
    settings: Settings,
    name: str,
    computed: tuple[str, ...],
    *,
    alias: str,
    version: str | None,
    threads: int | None,
    engine: EngineChoice,
) -> LoadedEngine:
    """The bundle of model `name` at `version` (else at `alias`) and its `engine`, checked
    on the parity sample (see `load_scorer`); with "auto", the native engine, else the
    ONNX one when the native cannot be loaded or fails the check (see the module doc).

    Raises `ValueError` when the model needs features the batch path does not compute
    (`computed`), `LookupError` when the alias or version does not exist.
    """
    models = settings.models_dir
    models.mkdir(parents=True, exist_ok=True)
    if version is not None:
        bundle = download_bundle(settings.tracking_uri, name, models, version=version)
    else:
        bundle = download_bundle(settings.tracking_uri, name, models, alias=alias)
    missing = [feature for feature in bundle.meta.feature_names if feature not in computed]
    if missing:
        raise ValueError(
            f"{bundle.name} v{bundle.version} expects features the batch path does not "
            f"compute: {', '.join(missing)}"
        )
    if engine == AUTO and not bundle.meta.candidate.startswith(XGBOOST_CANDIDATES):
        engine = "onnx"
    if engine == "onnx" or engine == "native":
        return LoadedEngine(bundle, load_scorer(settings, bundle, engine, threads=threads), engine)
    try:
        return LoadedEngine(
            bundle, load_scorer(settings, bundle, "native", threads=threads), "native"
        )
    # LookupError: not loadable; ValueError: no predict_proba, or ParityMismatch.
    except (LookupError, ValueError) as error:
        reason = f"native engine unusable ({str(error).splitlines()[0]}); scored with onnx"
        logger.warning("%s v%s: %s", bundle.name, bundle.version, reason)
        scorer = load_scorer(settings, bundle, "onnx", threads=threads)
        return LoadedEngine(bundle, scorer, "onnx", reason)
