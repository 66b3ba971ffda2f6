"""What a walkthrough page shows, gathered from the real runs under MLOPS_HOME.

Everything comes from the registry's champion of a case study: its bundle (threshold,
test metrics on the whole test window), its run, its training reference (a seeded sample
of the test rows it was evaluated on, with the exported model's score and the label:
`mlops.reference`), its native model (for per-prediction contributions), the
monitoring decisions logged for it, and single-row ONNX timings measured now. Nothing is
typed in: a page built from another run shows that run's numbers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from mlops.case_studies import CASE_STUDIES, CaseStudyName
from mlops.model_bundle import RegisteredBundle, download_bundle, load_native_model
from mlops.names import CHAMPION
from mlops.onnx_scorer import single_row_timings_ms
from mlops.reference import LABEL_COLUMN, SCORE_COLUMN, load_reference
from mlops.settings import Settings

LATENCY_CALLS: Final = 1000
"""Single-row calls timed per page: enough for a stable p99, about a tenth of a second."""
LATENCY_WARMUP: Final = 50
EXPLAINED_ROWS: Final = 3


class NoChampion(LookupError):
    """The case study has no champion in this MLOPS_HOME (nothing trained, or not promoted)."""


@dataclass(frozen=True)
class Explanation:
    """One scored row split into per-feature contributions to its log-odds."""

    why_chosen: str
    score: float
    label: int
    bias: float
    contributions: dict[str, float]
    values: dict[str, float]

    @property
    def log_odds(self) -> float:
        return self.bias + sum(self.contributions.values())


@dataclass(frozen=True)
class Contributions:
    """Per-row, per-feature contributions to the log-odds, and how they were computed."""

    feature_names: tuple[str, ...]
    values: np.ndarray  # (rows, features)
    bias: np.ndarray  # (rows,)
    method: str


@dataclass(frozen=True)
class Latency:
    """Single-row ONNX scoring times of the champion, measured when the page was built."""

    timings_ms: np.ndarray
    threads: int = 1

    @property
    def p50_ms(self) -> float:
        return float(np.percentile(self.timings_ms, 50))

    @property
    def p99_ms(self) -> float:
        return float(np.percentile(self.timings_ms, 99))


@dataclass(frozen=True)
class DriftPoint:
    """One monitoring check of the model, from its decision log."""

    decided_at: pd.Timestamp
    model_version: str
    action: str
    drift_share: float | None
    prediction_drift_score: float | None
    current_rows: int | None


@dataclass(frozen=True)
class ModelEvidence:
    """Everything one page shows about one champion."""

    case_study: CaseStudyName
    bundle: RegisteredBundle
    experiment_id: str
    tags: dict[str, str]
    reference: pd.DataFrame
    importance: dict[str, float]
    importance_kind: str
    contributions: Contributions
    explanations: list[Explanation]
    latency: Latency
    drift: list[DriftPoint]
    costs: tuple[float, float] | None  # (missed positive, false alarm) when the model has them
    serving_bench: dict[str, Any] | None
    evidently_project_id: str | None
    # The champion's test recall per fraud scenario, from its pipeline run (fraud only).
    recall_by_scenario: dict[str, float] = field(default_factory=dict)
    built_at: pd.Timestamp = field(default_factory=lambda: pd.Timestamp.now(tz="UTC"))

    @property
    def labels(self) -> np.ndarray:
        """The reference rows' labels (0 or 1)."""
        return self.reference[LABEL_COLUMN].to_numpy(dtype=np.int64)

    @property
    def scores(self) -> np.ndarray:
        """The reference rows' scores by the exported model."""
        return self.reference[SCORE_COLUMN].to_numpy(dtype=np.float64)


def gather(
    settings: Settings,
    case_study: CaseStudyName,
    *,
    decisions: Sequence[dict[str, Any]] = (),
    serving_bench: dict[str, Any] | None = None,
) -> ModelEvidence:
    """The champion of `case_study` and everything its page shows.

    `decisions` are the monitoring decisions logged for the model (oldest first);
    `serving_bench` the JSON of `mlops bench serving --json`, when the caller has one.

    Raises:
        NoChampion: no version of the model holds the alias `champion`.
    """
    from mlflow import MlflowClient

    study = CASE_STUDIES[case_study]
    name = study.model_name(settings)
    local_db = settings.tracking_uri.removeprefix("sqlite:///")
    if local_db != settings.tracking_uri and not Path(local_db).exists():
        # Opening a missing database would create an empty registry just to find no model.
        raise NoChampion(f"no MLflow database at {local_db}")
    try:
        bundle = download_bundle(settings.tracking_uri, name, settings.models_dir, alias=CHAMPION)
    except LookupError as error:
        raise NoChampion(str(error)) from error
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    run = client.get_run(bundle.run_id)
    tags = dict(client.get_model_version(name, bundle.version).tags)
    reference = load_reference(settings, name, bundle.version)
    features = tuple(bundle.meta.feature_names)
    rows = reference.loc[:, list(features)].to_numpy(dtype=np.float32)

    model = load_native_model(settings.tracking_uri, name, bundle.version)
    contributions = tree_or_linear_contributions(model, rows, features)
    importance, importance_kind = _importance(model, features)
    return ModelEvidence(
        case_study=case_study,
        bundle=bundle,
        experiment_id=str(run.info.experiment_id),
        tags=tags,
        reference=reference,
        importance=importance,
        importance_kind=importance_kind,
        contributions=contributions,
        explanations=explain_examples(reference, contributions, rows, bundle.meta.threshold),
        latency=measure_latency(bundle.onnx_path, rows),
        drift=drift_points(decisions),
        costs=(
            (settings.fraud_cost_missed_fraud, settings.fraud_cost_false_alarm)
            if study.threshold_rule == "min_expected_cost"
            else None
        ),
        serving_bench=serving_bench,
        evidently_project_id=_evidently_project(settings, name),
        recall_by_scenario=_recall_by_scenario(client, run),
    )


SCENARIO_RECALL_PREFIX: Final = "test_recall_"


def _recall_by_scenario(client: Any, run: Any) -> dict[str, float]:
    """The test recall of each fraud scenario, as the pipeline's parent run logged it
    (`test_recall_<scenario>`); empty for a run without one (churn, older runs)."""
    parent_id = run.data.tags.get("mlflow.parentRunId")
    if not parent_id:
        return {}
    metrics = client.get_run(parent_id).data.metrics
    return {
        k.removeprefix(SCENARIO_RECALL_PREFIX): float(v)
        for k, v in sorted(metrics.items())
        if k.startswith(SCENARIO_RECALL_PREFIX)
    }


def tree_or_linear_contributions(
    model: Any, rows: np.ndarray, feature_names: tuple[str, ...]
) -> Contributions:
    """Exact per-feature contributions to each row's log-odds, for the model families trained.

    XGBoost: the booster's `pred_contribs` (TreeSHAP on the trees). A scaled logistic
    regression: coefficient x standardised value, which is the linear model itself, not an
    approximation. With the anomaly score as an input (fraud), the score is computed as the
    ONNX graph does and explained as one more feature.
    """
    from sklearn.pipeline import Pipeline
    from xgboost import DMatrix, XGBClassifier

    from training.fraud_models import ANOMALY_FEATURE, AnomalyAugmentedClassifier, anomaly_score
    from training.fraud_models import with_anomaly as append_anomaly

    if isinstance(model, AnomalyAugmentedClassifier):
        augmented = append_anomaly(rows, anomaly_score(model.detector, rows))
        inner = tree_or_linear_contributions(
            model.classifier, augmented, (*feature_names, ANOMALY_FEATURE)
        )
        return Contributions(
            inner.feature_names,
            inner.values,
            inner.bias,
            f"{inner.method}; the IsolationForest anomaly score is explained as one input",
        )
    if isinstance(model, XGBClassifier):
        matrix = model.get_booster().predict(DMatrix(rows), pred_contribs=True)
        return Contributions(
            feature_names,
            np.asarray(matrix[:, :-1], dtype=np.float64),
            np.asarray(matrix[:, -1], dtype=np.float64),
            "XGBoost tree contributions (pred_contribs, TreeSHAP), in log-odds",
        )
    if isinstance(model, Pipeline):
        standardised = np.asarray(model[:-1].transform(rows), dtype=np.float64)
        linear = model[-1]
        values = standardised * linear.coef_[0]
        return Contributions(
            feature_names,
            values,
            np.full(len(rows), float(linear.intercept_[0])),
            "logistic regression: coefficient x standardised value, the exact linear "
            "contribution, in log-odds",
        )
    raise TypeError(f"no contribution method for a {type(model).__name__}")


def explain_examples(
    reference: pd.DataFrame, contributions: Contributions, rows: np.ndarray, threshold: float
) -> list[Explanation]:
    """A few telling rows: the most confident catch, a missed positive, the closest call."""
    scores = reference[SCORE_COLUMN].to_numpy()
    labels = reference[LABEL_COLUMN].to_numpy()
    picks: list[tuple[int, str]] = []
    caught = np.flatnonzero((labels == 1) & (scores >= threshold))
    if len(caught):
        picks.append((int(caught[np.argmax(scores[caught])]), "the highest-scored positive"))
    missed = np.flatnonzero((labels == 1) & (scores < threshold))
    if len(missed):
        picks.append(
            (int(missed[np.argmax(scores[missed])]), "a positive the threshold missed (closest)")
        )
    closest = np.argsort(np.abs(scores - threshold))
    for index in closest:
        if len(picks) >= EXPLAINED_ROWS:
            break
        if int(index) not in {i for i, _ in picks}:
            picks.append((int(index), "the row scored nearest the threshold"))
    names = contributions.feature_names
    n_inputs = rows.shape[1]
    return [
        Explanation(
            why_chosen=why,
            score=float(scores[i]),
            label=int(labels[i]),
            bias=float(contributions.bias[i]),
            contributions=dict(zip(names, contributions.values[i].tolist(), strict=True)),
            values=dict(zip(names[:n_inputs], rows[i].astype(np.float64).tolist(), strict=True)),
        )
        for i, why in picks[:EXPLAINED_ROWS]
    ]


def measure_latency(onnx_path: Path, rows: np.ndarray) -> Latency:
    """Time single-row scoring as the API does it: one float32 row, one session call."""
    return Latency(single_row_timings_ms(onnx_path, rows, LATENCY_CALLS, LATENCY_WARMUP))


def drift_points(decisions: Sequence[dict[str, Any]]) -> list[DriftPoint]:
    """The checks among the logged decisions (a window too small to check has no figures)."""
    points = []
    for entry in decisions:
        evidence = entry.get("decision", {}).get("evidence", {})
        if evidence.get("drift_share") is None and evidence.get("prediction_drift_score") is None:
            continue
        points.append(
            DriftPoint(
                decided_at=pd.Timestamp(entry["decided_at"]),
                model_version=str(entry.get("model_version")),
                action=str(entry.get("decision", {}).get("action")),
                drift_share=_number(evidence.get("drift_share")),
                prediction_drift_score=_number(evidence.get("prediction_drift_score")),
                current_rows=evidence.get("current_rows"),
            )
        )
    return points


def read_serving_bench(path: Path) -> dict[str, Any]:
    """The figures of `mlops bench serving --json` saved to a file (its last JSON line)."""
    for line in reversed(path.read_text(encoding="utf-8").splitlines()):
        if line.startswith("{"):
            figures: dict[str, Any] = json.loads(line)
            if "servers" in figures:
                return figures
    raise ValueError(f"{path} holds no `mlops bench serving --json` line")


def _importance(model: Any, feature_names: tuple[str, ...]) -> tuple[dict[str, float], str]:
    from sklearn.pipeline import Pipeline

    from training.fraud_models import ANOMALY_FEATURE, AnomalyAugmentedClassifier
    from training.train import importances

    if isinstance(model, AnomalyAugmentedClassifier):
        model, feature_names = model.classifier, (*feature_names, ANOMALY_FEATURE)
    if isinstance(model, Pipeline):
        return importances(model, feature_names), "coefficient on the standardised input"
    return importances(model, feature_names), "share of the trees' total gain"


def _evidently_project(settings: Settings, name: str) -> str | None:
    from monitoring.workspace import open_workspace, workspace_dir

    if not workspace_dir(settings).is_dir():  # never create a workspace just to link to it
        return None
    found = open_workspace(settings).search_project(name)
    return str(found[0].id) if found else None


def _number(value: Any) -> float | None:
    return None if value is None else float(value)
