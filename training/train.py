"""Train candidates, pick the best, export it to ONNX and register it behind a promotion gate.

Generic over the case study: callers pass the feature order, the feature service and
the registered model name. `register_winner` (export -> parity -> bundle -> register ->
gate -> tags) is shared with the fraud case study (`training.fraud_train`), which gates
on another metric. Every candidate is a nested MLflow run with its params,
cross-validated and test metrics, plots and model; the winner's run also holds the
ONNX bundle that serving loads.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from xgboost import XGBClassifier

from mlops.model_bundle import (
    BUNDLE_ARTIFACT_PATH,
    BundleMeta,
    write_parity_sample,
)
from mlops.names import CHALLENGER, CHAMPION
from mlops.onnx_scorer import OnnxScorer
from mlops.reference import reference_sample, save_reference
from mlops.registry import mark_challenger, promote
from mlops.settings import Settings
from training.evaluate import choose_threshold, classification_metrics, write_plots
from training.export import assert_parity, check_parity, export_onnx, onnx_sha256
from training.promotion_gate import (
    ChampionScorer,
    GateDecision,
    onnx_champion_scorer,
    promotion_gate,
)
from training.tracking import package_version

SELECTION_METRIC = "roc_auc"


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
        return float(np.mean(self.cv_scores))


@dataclass(frozen=True)
class TrainingResult:
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
    factory: Callable[[int], Any], x: np.ndarray, y: np.ndarray, seed: int, folds: int = 5
) -> tuple[np.ndarray, list[float]]:
    """Stratified k-fold: out-of-fold scores (for the threshold) and per-fold ROC-AUC."""
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    oof = np.zeros(len(y), dtype=np.float64)
    fold_scores: list[float] = []
    template = factory(seed)
    for train_idx, valid_idx in splitter.split(x, y):
        model = clone(template).fit(x[train_idx], y[train_idx])
        oof[valid_idx] = model.predict_proba(x[valid_idx])[:, 1]
        fold_scores.append(classification_metrics(y[valid_idx], oof[valid_idx], 0.5)["roc_auc"])
    return oof, fold_scores


def importances(model: Any, feature_names: tuple[str, ...]) -> dict[str, float]:
    """Coefficients on standardised inputs for the baseline, gain share for trees."""
    values = model[-1].coef_[0] if isinstance(model, Pipeline) else model.feature_importances_
    return {name: float(v) for name, v in zip(feature_names, values, strict=True)}


def train_candidate(
    name: str, factory: Callable[[int], Any], data: TrainingData, seed: int, plots_root: Path
) -> Candidate:
    """Cross-validate, fit on all training rows, evaluate on the held-out test rows."""
    with mlflow.start_run(run_name=name, nested=True) as run:
        oof, fold_scores = cross_validate(factory, data.x_train, data.y_train, seed)
        threshold = choose_threshold(data.y_train, oof)
        model = factory(seed).fit(data.x_train, data.y_train)
        test_scores = model.predict_proba(data.x_test)[:, 1]
        metrics = classification_metrics(data.y_test, test_scores, threshold)

        mlflow.log_params({"candidate": name, **_model_params(model), **data.params})
        mlflow.log_metrics(
            {
                "cv_roc_auc_mean": float(np.mean(fold_scores)),
                "cv_roc_auc_std": float(np.std(fold_scores)),
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
    # Requirements are given, not inferred: inference re-imports the model in a
    # subprocess and costs ~15 s per model.
    if isinstance(model, XGBClassifier):
        info = mlflow.xgboost.log_model(
            model,
            name="model",
            signature=signature,
            pip_requirements=_requirements("xgboost-cpu"),
        )
    else:
        # A composed model names the types its skops file holds beyond scikit-learn's.
        trusted = getattr(model, "skops_trusted_types", None)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            pip_requirements=_requirements(*(("xgboost-cpu",) if trusted else ())),
            skops_trusted_types=list(trusted) if trusted else None,
        )
    return str(info.model_uri)


class WinningModel(Protocol):
    """What registration needs of a winner: its native model, run, threshold and metrics."""

    @property
    def name(self) -> str: ...
    @property
    def model(self) -> Any: ...
    @property
    def run_id(self) -> str: ...
    @property
    def model_uri(self) -> str: ...
    @property
    def threshold(self) -> float: ...
    @property
    def test_metrics(self) -> dict[str, float]: ...


@dataclass(frozen=True)
class Registration:
    version: str
    alias: str
    gate: GateDecision
    parity_max_abs_diff: float
    meta: BundleMeta


def register_winner(
    winner: WinningModel,
    *,
    feature_names: tuple[str, ...],
    x_test: np.ndarray,
    y_test: np.ndarray,
    model_name: str,
    feature_service: str,
    settings: Settings,
    gate_metric: str,
    score_champion: ChampionScorer,
    auto_promote: bool = True,
) -> Registration:
    """Export the winner to ONNX, check parity, register it and gate its promotion.

    The bundle (ONNX file, metadata, parity sample) is logged under the winner's run;
    a model whose export does not score like it (`settings.parity_tolerance` on
    `x_test`) is never registered. The new version becomes `champion` if its test
    `gate_metric` beats the current champion's, scored by `score_champion` on the same
    test rows, else `challenger`. With `auto_promote=False` it is `challenger` whatever
    the gate says (the verdict is kept as evidence): retraining leaves promotion to the
    online gate on live labels (`monitoring.challenger_test`). Must run inside the pipeline's
    active MLflow run.
    """
    parent = mlflow.active_run()
    if parent is None:
        raise RuntimeError("register_winner needs an active MLflow run")
    client = MlflowClient()
    with tempfile.TemporaryDirectory() as scratch:
        bundle_dir = Path(scratch)
        onnx_path = export_onnx(winner.model, len(feature_names), bundle_dir / "model.onnx")
        parity = check_parity(winner.model, onnx_path, x_test, tolerance=settings.parity_tolerance)
        assert_parity(parity)  # a model whose export scores differently is never registered
        meta = BundleMeta(
            model_name=model_name,
            feature_service=feature_service,
            feature_names=list(feature_names),
            threshold=winner.threshold,
            candidate=winner.name,
            onnx_sha256=onnx_sha256(onnx_path),
            parity_max_abs_diff=parity.max_abs_diff,
            test_metrics=winner.test_metrics,
        )
        meta.write(bundle_dir)
        write_parity_sample(bundle_dir, winner.model, x_test)
        client.log_artifacts(winner.run_id, str(bundle_dir), artifact_path=BUNDLE_ARTIFACT_PATH)
        client.log_metric(winner.run_id, "onnx_parity_max_abs_diff", parity.max_abs_diff)
        reference = reference_sample(
            feature_names, x_test, y_test, OnnxScorer(onnx_path).predict_proba, seed=settings.seed
        )
        save_reference(client, winner.run_id, reference)

    version = str(mlflow.register_model(winner.model_uri, model_name).version)
    challenger_metric = winner.test_metrics[gate_metric]
    gate = promotion_gate(settings, model_name, challenger_metric, gate_metric, score_champion)
    if not auto_promote:
        gate = GateDecision(
            False,
            f"{gate.reason} (test-window gate not applied: promotion is the online gate's)",
            gate.challenger_metric,
            gate.champion_metric,
            gate.champion_version,
        )
    if gate.promoted:
        promote(client, model_name, version, reason=gate.reason)
        alias = CHAMPION
    else:
        mark_challenger(client, model_name, version)
        alias = CHALLENGER
    for key, value in {
        "candidate": winner.name,
        "feature_service": feature_service,
        "onnx_artifact": f"runs:/{winner.run_id}/{BUNDLE_ARTIFACT_PATH}",
        "onnx_sha256": meta.onnx_sha256,
        "threshold": f"{winner.threshold:.6f}",
        "promotion_gate": gate.reason,
        "pipeline_run_id": parent.info.run_id,
    }.items():
        client.set_model_version_tag(model_name, version, key, value)
    mlflow.log_dict(
        {"winner": winner.name, "version": version, "promotion_gate": gate.__dict__},
        "registration.json",
    )
    mlflow.set_tags({"winner": winner.name, "model_version": version, "alias": alias})
    return Registration(version, alias, gate, parity.max_abs_diff, meta)


def train_and_register(
    data: TrainingData,
    *,
    candidates: Mapping[str, Callable[[int], Any]],
    model_name: str,
    feature_service: str,
    settings: Settings,
    test_frame: pd.DataFrame,
    auto_promote: bool = True,
) -> TrainingResult:
    """Train every candidate, register the best by cross-validation, gate its promotion.

    Must run inside an active (parent) MLflow run. `test_frame` holds the test rows'
    features by name, so the current champion can be scored on the same rows even if
    its feature list differs.
    """
    parent = mlflow.active_run()
    if parent is None:
        raise RuntimeError("train_and_register needs an active MLflow run")
    with tempfile.TemporaryDirectory() as scratch:
        trained = [
            train_candidate(name, factory, data, settings.seed, Path(scratch) / "plots")
            for name, factory in candidates.items()
        ]
    # Chosen on cross-validation, so the test set stays an unbiased estimate.
    winner = max(trained, key=lambda c: c.cv_mean)
    y_test = data.y_test
    registration = register_winner(
        winner,
        feature_names=data.feature_names,
        x_test=data.x_test,
        y_test=data.y_test,
        model_name=model_name,
        feature_service=feature_service,
        settings=settings,
        gate_metric=SELECTION_METRIC,
        score_champion=onnx_champion_scorer(
            test_frame,
            lambda scores, threshold: classification_metrics(y_test, scores, threshold)[
                SELECTION_METRIC
            ],
        ),
        auto_promote=auto_promote,
    )
    cv_metrics = {f"{c.name}_cv_roc_auc": c.cv_mean for c in trained}
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


def _model_params(model: Any) -> dict[str, Any]:
    estimator = model[-1] if isinstance(model, Pipeline) else model
    params = estimator.get_params()
    return {
        f"model.{k}": v
        for k, v in params.items()
        if isinstance(v, (int, float, str, bool)) and v is not None
    }


def _requirements(*extra: str) -> list[str]:
    return [f"{name}=={package_version(name)}" for name in ("scikit-learn", "numpy", *extra)]
