"""A winner's way into the registry: export and check its ONNX bundle, save the monitoring
reference, register a version, apply the promotion gate and move the alias, tag the version.

`register_winner` is shared by every case study and training path (`training.train`,
`training.fraud_train`, `training.fraud_train_dask`): they differ in how they choose the
winner and which metric the promotion gate compares, not in how a winner is registered.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import mlflow
import numpy as np
from mlflow import MlflowClient

from mlops.digests import (
    ONNX_DIGEST_TAG,
    PARITY_DIGEST_TAG,
    REFERENCE_DIGEST_TAG,
    file_sha256,
)
from mlops.model_bundle import (
    BUNDLE_ARTIFACT_PATH,
    ONNX_FILE,
    PARITY_FILE,
    BundleMeta,
    write_parity_sample,
)
from mlops.names import CHALLENGER, CHAMPION
from mlops.onnx_scorer import OnnxScorer
from mlops.reference import reference_sample, save_reference
from mlops.registry import mark_challenger, promote
from mlops.settings import Settings
from training.export import assert_parity, check_parity, export_onnx, onnx_sha256
from training.promotion_gate import ChampionScorer, GateDecision, promotion_gate


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
    """A registered winner: its version, the alias it took, the gate's verdict, its bundle."""

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
    challenger test on live labels (`monitoring.challenger_test`). Must run inside the pipeline's
    active MLflow run. Returns the new version, its alias, the gate's verdict and the bundle's
    metadata.
    """
    parent = mlflow.active_run()
    if parent is None:
        raise RuntimeError("register_winner needs an active MLflow run")
    client = MlflowClient()
    with tempfile.TemporaryDirectory() as scratch:
        bundle_dir = Path(scratch)
        meta = export_bundle(
            winner, bundle_dir, feature_names, x_test, model_name, feature_service, settings
        )
        log_bundle(client, winner.run_id, bundle_dir, meta)
        reference_digest = save_monitoring_reference(
            client, winner.run_id, bundle_dir / ONNX_FILE, feature_names, x_test, y_test, settings
        )
        digests = {
            ONNX_DIGEST_TAG: meta.onnx_sha256,
            PARITY_DIGEST_TAG: file_sha256(bundle_dir / PARITY_FILE),
            REFERENCE_DIGEST_TAG: reference_digest,
        }
    # The digests are part of the new version from its first moment: serving may follow an
    # alias to it as soon as it moves, and refuses a version without them off 'local'.
    version = str(mlflow.register_model(winner.model_uri, model_name, tags=digests).version)
    gate = apply_promotion_gate(
        settings,
        model_name,
        winner.test_metrics[gate_metric],
        gate_metric,
        score_champion,
        auto_promote=auto_promote,
    )
    alias = move_alias(client, model_name, version, gate)
    tag_version(client, model_name, version, winner, meta, gate, parent.info.run_id)
    record_registration(winner.name, version, alias, gate)
    return Registration(version, alias, gate, meta.parity_max_abs_diff, meta)


def export_bundle(
    winner: WinningModel,
    folder: Path,
    feature_names: tuple[str, ...],
    x_test: np.ndarray,
    model_name: str,
    feature_service: str,
    settings: Settings,
) -> BundleMeta:
    """Write the winner's bundle into `folder`: the ONNX file (`ONNX_FILE`), its metadata and
    the parity sample. Raises if the export does not score `x_test` like the native model
    within `settings.parity_tolerance`: such a model is never registered."""
    onnx_path = export_onnx(winner.model, len(feature_names), folder / ONNX_FILE)
    parity = check_parity(winner.model, onnx_path, x_test, tolerance=settings.parity_tolerance)
    assert_parity(parity)
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
    meta.write(folder)
    write_parity_sample(folder, winner.model, x_test)
    return meta


def log_bundle(client: MlflowClient, run_id: str, folder: Path, meta: BundleMeta) -> None:
    """Log the bundle in `folder` under the winner's run, with its parity as a metric."""
    client.log_artifacts(run_id, str(folder), artifact_path=BUNDLE_ARTIFACT_PATH)
    client.log_metric(run_id, "onnx_parity_max_abs_diff", meta.parity_max_abs_diff)


def save_monitoring_reference(
    client: MlflowClient,
    run_id: str,
    onnx_path: Path,
    feature_names: tuple[str, ...],
    x_test: np.ndarray,
    y_test: np.ndarray,
    settings: Settings,
) -> str:
    """Save, under the winner's run, the seeded sample of test rows scored by the exported
    model that monitoring compares live traffic with (`mlops.reference`); return its SHA-256."""
    reference = reference_sample(
        feature_names, x_test, y_test, OnnxScorer(onnx_path).predict_proba, seed=settings.seed
    )
    return save_reference(client, run_id, reference)


def apply_promotion_gate(
    settings: Settings,
    model_name: str,
    challenger_metric: float,
    gate_metric: str,
    score_champion: ChampionScorer,
    *,
    auto_promote: bool,
) -> GateDecision:
    """The promotion gate's verdict on the new version (`training.promotion_gate`); with
    `auto_promote=False` never promoted, the verdict kept in the reason as evidence."""
    gate = promotion_gate(settings, model_name, challenger_metric, gate_metric, score_champion)
    if auto_promote:
        return gate
    return GateDecision(
        False,
        f"{gate.reason} (promotion gate not applied: promotion is the challenger test's)",
        gate.challenger_metric,
        gate.champion_metric,
        gate.champion_version,
    )


def move_alias(client: MlflowClient, model_name: str, version: str, gate: GateDecision) -> str:
    """Give `version` the alias the gate decided (`champion` or `challenger`); return it."""
    if gate.promoted:
        promote(client, model_name, version, reason=gate.reason)
        return CHAMPION
    mark_challenger(client, model_name, version)
    return CHALLENGER


def tag_version(
    client: MlflowClient,
    model_name: str,
    version: str,
    winner: WinningModel,
    meta: BundleMeta,
    gate: GateDecision,
    pipeline_run_id: str,
) -> None:
    """Tag the registered version with its lineage: candidate, bundle, threshold, gate, run.
    (Its artifacts' digests were registered with it, see `register_winner`.)"""
    for key, value in {
        "candidate": winner.name,
        "feature_service": meta.feature_service,
        "onnx_artifact": f"runs:/{winner.run_id}/{BUNDLE_ARTIFACT_PATH}",
        "threshold": f"{winner.threshold:.6f}",
        "promotion_gate": gate.reason,
        "pipeline_run_id": pipeline_run_id,
    }.items():
        client.set_model_version_tag(model_name, version, key, value)


def record_registration(winner: str, version: str, alias: str, gate: GateDecision) -> None:
    """Record in the pipeline's active run which candidate won, its version, alias and gate."""
    mlflow.log_dict(
        {"winner": winner, "version": version, "promotion_gate": gate.__dict__},
        "registration.json",
    )
    mlflow.set_tags({"winner": winner, "model_version": version, "alias": alias})
