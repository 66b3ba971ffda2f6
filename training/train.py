"""Train the churn candidates, pick the best by cross-validation and register it.

Generic over the case study: callers pass the feature order, the feature service, the
registered model name and the primary metric that ranks the candidates and decides the
promotion gate. Every candidate is a nested MLflow run with its params, cross-validated
and test metrics, plots and model. The winner is registered by
`training.registration.register_winner` (export, parity, bundle, reference, register,
gate, alias, tags), shared with the fraud case study; its run then also holds the ONNX
bundle that serving loads. `TrainingResult`, `log_native_model` and `importances` are
shared with the fraud training too.
"""

from __future__ import annotations

import platform
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from xgboost import XGBClassifier

from mlops import progress
from mlops.settings import Settings
from training.evaluate import choose_threshold, classification_metrics, write_plots
from training.promotion_gate import GateDecision, onnx_champion_scorer
from training.registration import register_winner
from training.tracking import package_version


@dataclass(frozen=True)
class TrainingData:
    """Model-ready arrays: float32 features in the model's order, 0/1 labels."""

    feature_names: tuple[str, ...]
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)  # lineage logged with every run


@dataclass
class Candidate:
    """A trained candidate: its model and run, cross-validated scores, threshold and test."""

    name: str
    model: Any
    run_id: str
    model_uri: str
    cv_scores: list[float]
    threshold: float
    test_scores: np.ndarray
    test_metrics: dict[str, float]

    @property
    def cv_mean(self) -> float:
        """The mean of the cross-validated fold scores: what ranks the candidates."""
        return float(np.mean(self.cv_scores))


@dataclass(frozen=True)
class TrainingResult:
    """What a training pipeline reports: the winner, its registered version and the gate."""

    parent_run_id: str
    winner: str
    model_name: str
    version: str
    aliases: list[str]
    test_metrics: dict[str, float]
    cv_metrics: dict[str, float]
    gate: GateDecision
    parity_max_abs_diff: float
    # Case-study specific entries of the summary (the fraud search, the threshold's costs).
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The result as a JSON-ready dict: what the flows return and the CLI prints."""
        return {
            "run_id": self.parent_run_id,
            "model_name": self.model_name,
            "model_version": self.version,
            "aliases": self.aliases,
            "winner": self.winner,
            "test_metrics": self.test_metrics,
            "cv_metrics": self.cv_metrics,
            "promoted": self.gate.promoted,
            "gate_reason": self.gate.reason,
            "parity_max_abs_diff": self.parity_max_abs_diff,
            **self.extra,
        }


def cross_validate(
    factory: Callable[[int], Any],
    x: np.ndarray,
    y: np.ndarray,
    seed: int,
    folds: int = 5,
    *,
    metric: str,
) -> tuple[np.ndarray, list[float]]:
    """Stratified k-fold: out-of-fold scores (for the threshold) and per-fold `metric` (a key
    of `classification_metrics`)."""
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    oof = np.zeros(len(y), dtype=np.float64)
    fold_scores: list[float] = []
    template = factory(seed)
    for train_idx, valid_idx in splitter.split(x, y):
        model = clone(template).fit(x[train_idx], y[train_idx])
        oof[valid_idx] = model.predict_proba(x[valid_idx])[:, 1]
        fold_scores.append(classification_metrics(y[valid_idx], oof[valid_idx], 0.5)[metric])
    return oof, fold_scores


def importances(model: Any, feature_names: tuple[str, ...]) -> dict[str, float]:
    """Coefficients on standardised inputs for the baseline, gain share for trees."""
    values = model[-1].coef_[0] if isinstance(model, Pipeline) else model.feature_importances_
    return {name: float(v) for name, v in zip(feature_names, values, strict=True)}


def train_candidate(
    name: str,
    factory: Callable[[int], Any],
    data: TrainingData,
    seed: int,
    plots_root: Path,
    *,
    metric: str,
) -> Candidate:
    """Cross-validate on `metric`, fit on all training rows, evaluate on the held-out test
    rows; one nested MLflow run with its params, metrics, plots and native model."""
    with mlflow.start_run(run_name=name, nested=True) as run:
        oof, fold_scores = cross_validate(factory, data.x_train, data.y_train, seed, metric=metric)
        threshold = choose_threshold(data.y_train, oof)
        model = factory(seed).fit(data.x_train, data.y_train)
        test_scores = model.predict_proba(data.x_test)[:, 1]
        metrics = classification_metrics(data.y_test, test_scores, threshold)

        mlflow.log_params({"candidate": name, **_model_params(model), **data.params})
        mlflow.log_metrics(
            {
                f"cv_{metric}_mean": float(np.mean(fold_scores)),
                f"cv_{metric}_std": float(np.std(fold_scores)),
                **{f"test_{k}": v for k, v in metrics.items()},
            }
        )
        plots = write_plots(
            data.y_test,
            test_scores,
            importances(model, data.feature_names),
            plots_root / name,
            title=name,
        )
        for plot in plots:
            mlflow.log_artifact(str(plot), artifact_path="plots")
        model_uri = log_native_model(model, data.x_test[:5], data.feature_names)
        return Candidate(
            name=name,
            model=model,
            run_id=run.info.run_id,
            model_uri=model_uri,
            cv_scores=fold_scores,
            threshold=threshold,
            test_scores=test_scores,
            test_metrics=metrics,
        )


def log_native_model(model: Any, x_sample: np.ndarray, feature_names: tuple[str, ...]) -> str:
    """Log the fitted model in the active run as `model`, with its signature; return its URI."""
    frame = pd.DataFrame(x_sample, columns=list(feature_names))
    signature = infer_signature(frame, model.predict_proba(x_sample))
    # The environment is given, not inferred: inference re-imports the model in a
    # subprocess and costs ~15 s per model.
    if isinstance(model, XGBClassifier):
        info = mlflow.xgboost.log_model(
            model,
            name="model",
            signature=signature,
            conda_env=model_environment("xgboost-cpu"),
        )
    else:
        # A composed model names the types its skops file holds beyond scikit-learn's.
        trusted = getattr(model, "skops_trusted_types", None)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            conda_env=model_environment(*(("xgboost-cpu",) if trusted else ())),
            skops_trusted_types=list(trusted) if trusted else None,
        )
    return str(info.model_uri)


def train_and_register(
    data: TrainingData,
    *,
    candidates: Mapping[str, Callable[[int], Any]],
    model_name: str,
    feature_service: str,
    settings: Settings,
    test_frame: pd.DataFrame,
    primary_metric: str,
    auto_promote: bool = True,
) -> TrainingResult:
    """Train every candidate, register the best by cross-validation, gate its promotion.

    Candidates are ranked, and the promotion gate decides, on `primary_metric` (a key of
    `training.evaluate.classification_metrics`; the case study's `primary_metric`). Must run
    inside an active (parent) MLflow run. `test_frame` holds the test rows' features by
    name, so the current champion can be scored on the same rows even if its feature list
    differs. Returns the winner, its registered version and alias, and its metrics.
    """
    parent = mlflow.active_run()
    if parent is None:
        raise RuntimeError("train_and_register needs an active MLflow run")
    trained = train_candidates(
        data, candidates, primary_metric, settings.seed, step=f"{model_name} candidate models"
    )
    # Chosen on cross-validation, so the test set stays an unbiased estimate.
    winner = max(trained, key=lambda c: c.cv_mean)
    registration = register_winner(
        winner,
        feature_names=data.feature_names,
        x_test=data.x_test,
        y_test=data.y_test,
        model_name=model_name,
        feature_service=feature_service,
        settings=settings,
        gate_metric=primary_metric,
        score_champion=onnx_champion_scorer(test_frame, _metric_on(data.y_test, primary_metric)),
        auto_promote=auto_promote,
    )
    cv_metrics = {f"{c.name}_cv_{primary_metric}": c.cv_mean for c in trained}
    mlflow.log_metrics({**cv_metrics, **{f"test_{k}": v for k, v in winner.test_metrics.items()}})
    return TrainingResult(
        parent_run_id=parent.info.run_id,
        winner=winner.name,
        model_name=model_name,
        version=registration.version,
        aliases=[registration.alias],
        test_metrics=winner.test_metrics,
        cv_metrics=cv_metrics,
        gate=registration.gate,
        parity_max_abs_diff=registration.parity_max_abs_diff,
    )


def train_candidates(
    data: TrainingData,
    candidates: Mapping[str, Callable[[int], Any]],
    metric: str,
    seed: int,
    *,
    step: str = "candidate models",
) -> list[Candidate]:
    """Train and evaluate every candidate (`name -> factory(seed)`), each in a nested run;
    progress is reported as the step `step` (`mlops.progress`)."""
    trained = []
    with (
        tempfile.TemporaryDirectory() as scratch,
        progress.step(step, total=len(candidates)) as done,
    ):
        for name, factory in candidates.items():
            plots = Path(scratch) / "plots"
            trained.append(train_candidate(name, factory, data, seed, plots, metric=metric))
            done.advance(note=name)
    return trained


def _metric_on(y_test: np.ndarray, metric: str) -> Callable[[np.ndarray, float], float]:
    """`metric` of scores at a threshold on the test labels: how the champion is scored."""

    def score(scores: np.ndarray, threshold: float) -> float:
        return classification_metrics(y_test, scores, threshold)[metric]

    return score


def _model_params(model: Any) -> dict[str, Any]:
    estimator = model[-1] if isinstance(model, Pipeline) else model
    params = estimator.get_params()
    return {
        f"model.{k}": v
        for k, v in params.items()
        if isinstance(v, (int, float, str, bool)) and v is not None
    }


def model_environment(*extra: str) -> dict[str, Any]:
    """The logged model's environment: this Python and the pinned packages it needs.

    Given whole, as a conda env, rather than as pip requirements: from those MLflow builds
    the conda env itself, pinning the installed pip, and a uv environment has no pip, so
    it warned "Failed to resolve installed pip version" on every model. The content is what
    MLflow would write (pip unpinned); it adds its own `mlflow==` pin to the requirements.
    """
    requirements = [
        f"{name}=={package_version(name)}" for name in ("scikit-learn", "numpy", *extra)
    ]
    return {
        "name": "mlflow-env",
        "channels": ["conda-forge"],
        "dependencies": [f"python={platform.python_version()}", "pip", {"pip": requirements}],
    }
