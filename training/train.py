"""Train candidates, pick the best, export it to ONNX and register it behind a promotion gate.

Generic over the case study: callers pass the feature order, the feature service and
the registered model name. Every candidate is a nested MLflow run with its params,
cross-validated and test metrics, plots and model; the winner's run also holds the
ONNX bundle that serving loads.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    download_bundle,
    write_parity_sample,
)
from mlops.onnx_scorer import OnnxScorer
from mlops.settings import Settings
from training.evaluate import choose_threshold, classification_metrics, write_plots
from training.export import assert_parity, check_parity, export_onnx, onnx_sha256
from training.registry import CHALLENGER, CHAMPION, mark_challenger, promote
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
class GateDecision:
    promoted: bool
    reason: str
    challenger_metric: float
    champion_metric: float | None
    champion_version: str | None


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
        frame = pd.DataFrame(data.x_test[:5], columns=list(data.feature_names))
        signature = infer_signature(frame, model.predict_proba(data.x_test[:5]))
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
            info = mlflow.sklearn.log_model(
                model, name="model", signature=signature, pip_requirements=_requirements()
            )
        return Candidate(
            name=name,
            model=model,
            run_id=run.info.run_id,
            model_uri=info.model_uri,
            cv_scores=fold_scores,
            threshold=threshold,
            test_scores=test_scores,
            test_metrics=metrics,
        )


def train_and_register(
    data: TrainingData,
    *,
    candidates: Mapping[str, Callable[[int], Any]],
    model_name: str,
    feature_service: str,
    settings: Settings,
    test_frame: pd.DataFrame,
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
        workdir = Path(scratch)
        trained = [
            train_candidate(name, factory, data, settings.seed, workdir / "plots")
            for name, factory in candidates.items()
        ]
        # Chosen on cross-validation, so the test set stays an unbiased estimate.
        winner = max(trained, key=lambda c: c.cv_mean)
        bundle_dir = workdir / "bundle"
        bundle_dir.mkdir()
        onnx_path = export_onnx(winner.model, len(data.feature_names), bundle_dir / "model.onnx")
        parity = check_parity(
            winner.model, onnx_path, data.x_test, tolerance=settings.parity_tolerance
        )
        assert_parity(parity)  # a model whose export scores differently is never registered
        meta = BundleMeta(
            model_name=model_name,
            feature_service=feature_service,
            feature_names=list(data.feature_names),
            threshold=winner.threshold,
            candidate=winner.name,
            onnx_sha256=onnx_sha256(onnx_path),
            parity_max_abs_diff=parity.max_abs_diff,
            test_metrics=winner.test_metrics,
        )
        meta.write(bundle_dir)
        write_parity_sample(bundle_dir, winner.model, data.x_test)
        client = MlflowClient()
        client.log_artifacts(winner.run_id, str(bundle_dir), artifact_path=BUNDLE_ARTIFACT_PATH)
        client.log_metric(winner.run_id, "onnx_parity_max_abs_diff", parity.max_abs_diff)

    version = mlflow.register_model(winner.model_uri, model_name).version
    gate = _gate(settings, model_name, winner, test_frame, data.y_test)
    if gate.promoted:
        promote(client, model_name, str(version), reason=gate.reason)
        alias = CHAMPION
    else:
        mark_challenger(client, model_name, str(version))
        alias = CHALLENGER
    for key, value in {
        "candidate": winner.name,
        "feature_service": feature_service,
        "onnx_artifact": f"runs:/{winner.run_id}/{BUNDLE_ARTIFACT_PATH}",
        "onnx_sha256": meta.onnx_sha256,
        "threshold": f"{winner.threshold:.6f}",
        "gate": gate.reason,
        "pipeline_run_id": parent.info.run_id,
    }.items():
        client.set_model_version_tag(model_name, str(version), key, value)

    cv_metrics = {f"{c.name}_cv_roc_auc": c.cv_mean for c in trained}
    mlflow.log_metrics({**cv_metrics, **{f"test_{k}": v for k, v in winner.test_metrics.items()}})
    mlflow.log_dict(
        {"winner": winner.name, "version": str(version), "gate": gate.__dict__},
        "registration.json",
    )
    mlflow.set_tags({"winner": winner.name, "model_version": str(version), "alias": alias})
    return TrainingResult(
        parent_run_id=parent.info.run_id,
        winner=winner.name,
        model_name=model_name,
        version=str(version),
        aliases=[alias],
        test_metrics=winner.test_metrics,
        cv_metrics=cv_metrics,
        gate=gate,
        parity_max_abs_diff=parity.max_abs_diff,
    )


def _gate(
    settings: Settings,
    model_name: str,
    challenger: Candidate,
    test_frame: pd.DataFrame,
    y_test: np.ndarray,
) -> GateDecision:
    """Promote only if the new model beats the current champion on the same test rows."""
    challenger_metric = challenger.test_metrics[SELECTION_METRIC]
    try:
        champion = download_bundle(
            settings.tracking_uri, model_name, settings.models_dir, alias=CHAMPION
        )
    except LookupError:
        return GateDecision(True, "no champion yet", challenger_metric, None, None)
    missing = [f for f in champion.meta.feature_names if f not in test_frame.columns]
    if missing:
        return GateDecision(
            True,
            f"champion v{champion.version} needs features this data lacks: {missing[:5]}",
            challenger_metric,
            None,
            champion.version,
        )
    scorer = OnnxScorer(champion.onnx_path)
    rows = test_frame.loc[:, champion.meta.feature_names].to_numpy(dtype=np.float32)
    champion_metric = classification_metrics(
        y_test, scorer.predict_proba(rows), champion.meta.threshold
    )[SELECTION_METRIC]
    promoted = challenger_metric > champion_metric
    verdict = "beats" if promoted else "does not beat"
    return GateDecision(
        promoted,
        f"{SELECTION_METRIC} {challenger_metric:.4f} {verdict} champion "
        f"v{champion.version} at {champion_metric:.4f} on the same test rows",
        challenger_metric,
        champion_metric,
        champion.version,
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
