"""Fraud model training: prequential model selection, imbalance handling, an anomaly score,
a bounded Optuna search, a cost-chosen threshold, and registration behind the shared gate.

`train_fraud` runs inside the pipeline's MLflow run. Every candidate is a nested run:

- the logistic baseline and XGBoost, each with every way of handling the imbalance
  (`training.fraud_models.IMBALANCE`);
- `isolation_forest`: the unsupervised anomaly score on its own, as the fraud score. It
  is a reference, never the winner: it has no probability to threshold or serve;
- the best XGBoost variant with the anomaly score as an extra input;
- one run per Optuna trial (TPE, seeded) over XGBoost's hyperparameters for the best
  XGBoost variant, then `<variant>_tuned` with the best trial's parameters.

Selection uses the Fraud Detection Handbook's prequential folds (`model_selection_splits`):
earlier weeks of the training history, never the test period. The winner has the best
mean prequential average precision; its threshold minimises the expected cost on the
folds' validation scores. Test metrics (on `split`'s test period, known-compromised
cards removed) are logged for every variant but choose nothing. The winner is exported
to ONNX (the anomaly score computed inside the graph when it is an input), checked for
parity and registered with `training.registration.register_winner`, gated on test average
precision against the champion scored on the same rows.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import mlflow
import numpy as np
import optuna
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from features.feature_repo.fraud import fraud_model
from features.fraud_schema import CUSTOMER_ID, TX_DATETIME, TX_FRAUD
from features.fraud_windows import FRAUD_FEATURES
from mlops.case_studies import FRAUD
from mlops.settings import Settings
from training.evaluate import write_plots
from training.fraud_metrics import (
    DEFAULT_K,
    SCORE_COLUMN,
    card_precision_at_k,
    card_precision_per_day,
    choose_cost_threshold,
    expected_cost,
    fraud_metrics,
)
from training.fraud_models import (
    ANOMALY_FEATURE,
    IMBALANCE,
    AnomalyAugmentedClassifier,
    ModelSpec,
    anomaly_score,
    fit_detector,
    with_anomaly,
)
from training.fraud_splits import TimeSplit, model_selection_splits, split_frame
from training.promotion_gate import onnx_champion_scorer
from training.registration import Registration, WinningModel, register_winner
from training.train import TrainingResult, importances, log_native_model

FEATURE_SERVICE: Final = fraud_model.name
SELECTION_METRIC: Final = FRAUD.primary_metric
CARD_PRECISION: Final = f"card_precision_at_{DEFAULT_K}"
ANOMALY_ONLY: Final = "isolation_forest"
VALIDATION_SCORES_ARTIFACT: Final = "validation_scores.parquet"


@dataclass(frozen=True)
class Period:
    """The rows of one period: keys and labels for the metrics, float32 features."""

    frame: pd.DataFrame
    x: np.ndarray
    y: np.ndarray

    @classmethod
    def of(cls, frame: pd.DataFrame) -> Period:
        keys = frame[[TX_DATETIME, CUSTOMER_ID, TX_FRAUD]].reset_index(drop=True)
        return cls(
            frame=keys,
            x=frame[list(FRAUD_FEATURES)].to_numpy(dtype=np.float32),
            y=frame[TX_FRAUD].to_numpy(dtype=np.int64),
        )


@dataclass(frozen=True)
class Fold:
    """One prequential fold, with its IsolationForest's scores (fitted on its training rows)."""

    train: Period
    valid: Period
    anomaly_train: np.ndarray
    anomaly_valid: np.ndarray

    def inputs(self, with_anomaly_feature: bool) -> tuple[np.ndarray, np.ndarray]:
        if not with_anomaly_feature:
            return self.train.x, self.valid.x
        return (
            with_anomaly(self.train.x, self.anomaly_train),
            with_anomaly(self.valid.x, self.anomaly_valid),
        )


@dataclass(frozen=True)
class Prequential:
    """Validation scores of each fold and their metrics, averaged over the folds."""

    scores: list[np.ndarray]
    metrics: dict[str, float]


@dataclass
class Evaluated:
    """A candidate after selection and test; satisfies `training.registration.WinningModel`."""

    name: str
    spec: ModelSpec | None  # None for the anomaly score alone
    model: Any
    run_id: str
    threshold: float
    prequential: Prequential
    test_scores: np.ndarray
    test_metrics: dict[str, float]
    model_uri: str = ""

    @property
    def selection_score(self) -> float:
        return self.prequential.metrics[f"prequential_{SELECTION_METRIC}"]


@dataclass(frozen=True)
class Budget:
    n_trials: int
    timeout_s: float


@dataclass
class _Search:
    trials: int = 0
    best_params: dict[str, Any] = field(default_factory=dict)
    best: Prequential | None = None


def train_fraud(
    transactions_with_features: pd.DataFrame,
    split: TimeSplit,
    settings: Settings,
    *,
    n_trials: int | None = None,
    timeout_s: float | None = None,
    auto_promote: bool = True,
) -> TrainingResult:
    """Select, tune, threshold, test, export and register the fraud model (see module doc).

    `transactions_with_features` holds TX_DATETIME (UTC), CUSTOMER_ID, TX_FRAUD and the
    `FRAUD_FEATURES` columns, for the whole history: the prequential folds need the weeks
    before `split`'s training period. `n_trials` and `timeout_s` override the settings'
    search budget. Must run inside an active (parent) MLflow run.
    """
    parent = mlflow.active_run()
    if parent is None:
        raise RuntimeError("train_fraud needs an active MLflow run")
    missing = [
        c
        for c in (TX_DATETIME, CUSTOMER_ID, TX_FRAUD, *FRAUD_FEATURES)
        if c not in transactions_with_features.columns
    ]
    if missing:
        raise ValueError(f"transactions lack column(s) {missing}")
    budget = Budget(
        n_trials if n_trials is not None else settings.fraud_search_trials,
        timeout_s if timeout_s is not None else settings.fraud_search_timeout_s,
    )
    seed = settings.seed
    started = time.perf_counter()
    folds = prepare_folds(transactions_with_features, split, seed)
    train_frame, test_frame = split_frame(transactions_with_features, split)
    train, test = Period.of(train_frame), Period.of(test_frame)
    for name, period in (("training", train), ("test", test)):
        if period.y.min() == period.y.max():
            raise ValueError(f"the {name} period needs both frauds and genuine transactions")
    mlflow.log_params(
        {
            "split": describe_split(split),
            "prequential_folds": len(folds),
            "prequential_tests": ",".join(_day(f.valid.frame) for f in folds),
            "train_rows": len(train.y),
            "test_rows": len(test.y),
            "selection_metric": f"prequential_{SELECTION_METRIC}",
            "cost_missed_fraud": settings.fraud_cost_missed_fraud,
            "cost_false_alarm": settings.fraud_cost_false_alarm,
            "search_trials": budget.n_trials,
            "search_timeout_s": budget.timeout_s,
        }
    )

    def evaluate(
        spec: ModelSpec, name: str | None = None, known: Prequential | None = None
    ) -> Evaluated:
        return evaluate_variant(spec, folds, train, test, settings, name=name, known=known)

    variants = [
        evaluate(ModelSpec(family, imbalance))
        for family in ("logistic", "xgboost")
        for imbalance in IMBALANCE
    ]
    anomaly_only = evaluate_anomaly_score(folds, train, test, settings)
    best_xgboost = max(
        (v for v in variants if v.name.startswith("xgboost")), key=lambda v: v.selection_score
    )
    assert best_xgboost.spec is not None
    variants.append(evaluate(ModelSpec("xgboost", best_xgboost.spec.imbalance, True)))
    base = max(
        (v for v in variants if v.spec and v.spec.family == "xgboost"),
        key=lambda v: v.selection_score,
    )
    assert base.spec is not None
    search = search_xgboost(base.spec, folds, seed, budget)
    if search.best is not None:
        tuned = ModelSpec(
            "xgboost", base.spec.imbalance, base.spec.anomaly_feature, search.best_params
        )
        variants.append(evaluate(tuned, name=f"{base.spec.name}_tuned", known=search.best))
    # Chosen on the prequential folds, so the test period stays an unbiased estimate.
    winner = max(variants, key=lambda v: v.selection_score)
    _log_winner_artifacts(winner, folds, test, settings)

    registration = register_fraud_winner(
        winner, test, test_frame, settings, auto_promote=auto_promote
    )
    every = [*variants, anomaly_only]
    selection = {f"{v.name}_prequential_{SELECTION_METRIC}": v.selection_score for v in every}
    mlflow.log_metrics(
        {
            **{k.replace("+", "_plus_"): v for k, v in selection.items()},
            **{f"test_{k}": v for k, v in winner.test_metrics.items()},
            "training_seconds": time.perf_counter() - started,
        }
    )
    return TrainingResult(
        parent_run_id=parent.info.run_id,
        winner=winner.name,
        model_name=settings.fraud_model_name,
        version=registration.version,
        aliases=[registration.alias],
        test_metrics=winner.test_metrics,
        cv_metrics=selection,
        gate=registration.gate,
        parity_max_abs_diff=registration.parity_max_abs_diff,
        extra={
            "threshold": winner.threshold,
            "threshold_chosen_on": "prequential validation scores, by expected cost",
            "selection_metric": f"prequential_{SELECTION_METRIC}",
            "search_trials_run": search.trials,
            "anomaly_only_test_average_precision": anomaly_only.test_metrics[SELECTION_METRIC],
            "split": describe_split(split),
        },
    )


def register_fraud_winner(
    winner: WinningModel,
    test: Period,
    test_frame: pd.DataFrame,
    settings: Settings,
    *,
    auto_promote: bool,
) -> Registration:
    """Export, check and register the fraud winner, gated on test average precision
    against the champion scored on the same rows (`test_frame`, its features by name)."""
    return register_winner(
        winner,
        feature_names=FRAUD_FEATURES,
        x_test=test.x,
        y_test=test.y,
        model_name=settings.fraud_model_name,
        feature_service=FEATURE_SERVICE,
        settings=settings,
        gate_metric=SELECTION_METRIC,
        score_champion=onnx_champion_scorer(
            test_frame, lambda scores, _: float(average_precision_score(test.y, scores))
        ),
        auto_promote=auto_promote,
    )


def prepare_folds(frame: pd.DataFrame, split: TimeSplit, seed: int) -> list[Fold]:
    """The prequential folds ahead of `split`, as arrays, with each fold's anomaly scores."""
    folds = []
    for fold_split in model_selection_splits(frame, split):
        fold_train, fold_valid = split_frame(frame, fold_split)
        train, valid = Period.of(fold_train), Period.of(fold_valid)
        detector = fit_detector(train.x, seed)
        folds.append(
            Fold(train, valid, anomaly_score(detector, train.x), anomaly_score(detector, valid.x))
        )
    return folds


def prequential(spec: ModelSpec, folds: list[Fold], seed: int) -> Prequential:
    """Fit on each fold's training weeks, score its validation week."""
    scores = []
    for fold in folds:
        x_train, x_valid = fold.inputs(spec.anomaly_feature)
        model = spec.fit_classifier(x_train, fold.train.y, seed)
        scores.append(model.predict_proba(x_valid)[:, 1])
    return Prequential(scores, _fold_metrics(folds, scores))


def evaluate_variant(
    spec: ModelSpec,
    folds: list[Fold],
    train: Period,
    test: Period,
    settings: Settings,
    *,
    name: str | None = None,
    known: Prequential | None = None,
) -> Evaluated:
    """One nested run: prequential metrics, cost threshold, fit on the training period, test."""
    name = name or spec.name
    with mlflow.start_run(run_name=name, nested=True) as run:
        result = known or prequential(spec, folds, settings.seed)
        threshold = _cost_threshold(folds, result.scores, settings)
        model = fit_final(spec, train, settings.seed)
        test_scores = model.predict_proba(test.x)[:, 1]
        metrics = fraud_report(test, test_scores, threshold, settings)
        mlflow.log_params({"candidate": name, **spec.log_params()})
        mlflow.log_metrics({**result.metrics, "threshold": threshold, **prefixed("test_", metrics)})
        return Evaluated(
            name, spec, model, run.info.run_id, threshold, result, test_scores, metrics
        )


def evaluate_anomaly_score(
    folds: list[Fold], train: Period, test: Period, settings: Settings
) -> Evaluated:
    """The IsolationForest's score as the fraud score, evaluated like the supervised models."""
    with mlflow.start_run(run_name=ANOMALY_ONLY, nested=True) as run:
        scores = [fold.anomaly_valid for fold in folds]
        result = Prequential(scores, _fold_metrics(folds, scores))
        threshold = _cost_threshold(folds, scores, settings)
        detector = fit_detector(train.x, settings.seed)
        test_scores = anomaly_score(detector, test.x)
        metrics = fraud_report(test, test_scores, threshold, settings)
        mlflow.log_params({"candidate": ANOMALY_ONLY, "model.n_estimators": detector.n_estimators})
        mlflow.log_metrics({**result.metrics, "threshold": threshold, **prefixed("test_", metrics)})
        return Evaluated(
            ANOMALY_ONLY, None, detector, run.info.run_id, threshold, result, test_scores, metrics
        )


def search_xgboost(base: ModelSpec, folds: list[Fold], seed: int, budget: Budget) -> _Search:
    """Optuna TPE over XGBoost's hyperparameters on the prequential folds; a run per trial."""
    search = _Search()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        params = {
            "n_estimators": trial.suggest_int("n_estimators", 50, 300, step=50),
            "max_depth": trial.suggest_int("max_depth", 2, 7),
            "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
            "min_child_weight": trial.suggest_float("min_child_weight", 0.5, 20.0, log=True),
            "subsample": trial.suggest_float("subsample", 0.6, 1.0),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 0.01, 10.0, log=True),
        }
        spec = ModelSpec(base.family, base.imbalance, base.anomaly_feature, params)
        with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True):
            result = prequential(spec, folds, seed)
            mlflow.log_params(
                {"candidate": f"{base.name}_trial", "trial": trial.number, **spec.log_params()}
            )
            mlflow.log_metrics(result.metrics)
        search.trials += 1
        value = result.metrics[f"prequential_{SELECTION_METRIC}"]
        if search.best is None or value > search.best.metrics[f"prequential_{SELECTION_METRIC}"]:
            search.best, search.best_params = result, params
        return value

    study.optimize(objective, n_trials=budget.n_trials, timeout=budget.timeout_s)
    return search


def fit_final(spec: ModelSpec, train: Period, seed: int) -> Any:
    """The variant fitted on the whole training period; takes the FRAUD_FEATURES rows."""
    if not spec.anomaly_feature:
        return spec.fit_classifier(train.x, train.y, seed)
    detector = fit_detector(train.x, seed)
    classifier = spec.fit_classifier(
        with_anomaly(train.x, anomaly_score(detector, train.x)), train.y, seed
    )
    return AnomalyAugmentedClassifier(detector, classifier)


def fraud_report(
    test: Period, scores: np.ndarray, threshold: float, settings: Settings
) -> dict[str, float]:
    """`fraud_metrics` at k=100 (card precision named `card_precision_at_100`)."""
    metrics = fraud_metrics(
        test.frame,
        scores,
        threshold,
        k=DEFAULT_K,
        cost_missed_fraud=settings.fraud_cost_missed_fraud,
        cost_false_alarm=settings.fraud_cost_false_alarm,
    )
    return metrics


def _fold_metrics(folds: list[Fold], scores: list[np.ndarray]) -> dict[str, float]:
    per_fold: dict[str, list[float]] = {SELECTION_METRIC: [], "roc_auc": [], CARD_PRECISION: []}
    for fold, fold_scores in zip(folds, scores, strict=True):
        per_fold[SELECTION_METRIC].append(average_precision_score(fold.valid.y, fold_scores))
        per_fold["roc_auc"].append(roc_auc_score(fold.valid.y, fold_scores))
        cards = fold.valid.frame.assign(**{SCORE_COLUMN: fold_scores})
        per_fold[CARD_PRECISION].append(card_precision_at_k(cards, DEFAULT_K))
    metrics = {f"prequential_{k}": float(np.mean(v)) for k, v in per_fold.items()}
    metrics[f"prequential_{SELECTION_METRIC}_std"] = float(np.std(per_fold[SELECTION_METRIC]))
    return metrics


def _cost_threshold(folds: list[Fold], scores: list[np.ndarray], settings: Settings) -> float:
    """The expected-cost threshold on the folds' validation scores (never the test's)."""
    return cost_threshold(
        np.concatenate([f.valid.y for f in folds]), np.concatenate(scores), settings
    )


def cost_threshold(labels: np.ndarray, scores: np.ndarray, settings: Settings) -> float:
    """The threshold of least expected cost at the settings' costs of a miss and an alarm."""
    return choose_cost_threshold(
        labels,
        scores,
        cost_missed_fraud=settings.fraud_cost_missed_fraud,
        cost_false_alarm=settings.fraud_cost_false_alarm,
    )


def validation_scores(folds: list[Fold], scores: list[np.ndarray]) -> pd.DataFrame:
    """The validation rows of every fold with their score: what the threshold was chosen on."""
    return pd.concat(
        [
            f.valid.frame.assign(fold=i, **{SCORE_COLUMN: s})
            for i, (f, s) in enumerate(zip(folds, scores, strict=True))
        ],
        ignore_index=True,
    )


def _log_winner_artifacts(
    winner: Evaluated, folds: list[Fold], test: Period, settings: Settings
) -> None:
    """The winner's native model, validation scores and plots, in its own run."""
    names = (
        (*FRAUD_FEATURES, ANOMALY_FEATURE)
        if isinstance(winner.model, AnomalyAugmentedClassifier)
        else FRAUD_FEATURES
    )
    inner = (
        winner.model.classifier
        if isinstance(winner.model, AnomalyAugmentedClassifier)
        else (winner.model)
    )
    with mlflow.start_run(run_id=winner.run_id, nested=True), tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        winner.model_uri = log_native_model(winner.model, test.x[:5], FRAUD_FEATURES)
        path = folder / VALIDATION_SCORES_ARTIFACT
        validation_scores(folds, winner.prequential.scores).to_parquet(path, index=False)
        mlflow.log_artifact(str(path))
        plots = write_plots(
            test.y,
            winner.test_scores,
            importances(inner, names),
            folder / "plots",
            title=winner.name,
        )
        plots += _fraud_plots(winner, test, settings, folder / "plots")
        for plot in plots:
            mlflow.log_artifact(str(plot), artifact_path="plots")
        mlflow.set_tag("winner", "true")


def _fraud_plots(winner: Evaluated, test: Period, settings: Settings, out: Path) -> list[Path]:
    """Card precision@100 per test day, and the test cost over thresholds."""
    import matplotlib

    matplotlib.use("Agg")  # headless: plots are written to files, never shown
    import matplotlib.pyplot as plt

    per_day = card_precision_per_day(
        test.frame.assign(**{SCORE_COLUMN: winner.test_scores}), DEFAULT_K
    ).per_day
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(per_day.index.strftime("%m-%d"), per_day["card_precision"], label="model")
    best = np.minimum(per_day["compromised_cards"], DEFAULT_K) / DEFAULT_K
    ax.plot(per_day.index.strftime("%m-%d"), best, color="grey", marker="o", label="best possible")
    ax.set(title=f"{winner.name}: card precision@{DEFAULT_K} per day", ylabel="precision")
    ax.legend()
    paths = [out / "card_precision_per_day.png"]
    fig.savefig(paths[-1], dpi=90, bbox_inches="tight")
    plt.close(fig)

    grid = np.quantile(winner.test_scores, np.linspace(0.5, 1.0, 60))
    costs = [
        expected_cost(
            test.y,
            winner.test_scores,
            t,
            cost_missed_fraud=settings.fraud_cost_missed_fraud,
            cost_false_alarm=settings.fraud_cost_false_alarm,
        )
        for t in grid
    ]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(grid, costs)
    ax.axvline(winner.threshold, color="grey", linestyle="--", label="chosen on validation")
    ax.set(title=f"{winner.name}: test cost by threshold", xlabel="threshold", ylabel="cost")
    ax.legend()
    paths.append(out / "cost_by_threshold.png")
    fig.savefig(paths[-1], dpi=90, bbox_inches="tight")
    plt.close(fig)
    return paths


def prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}{k}": v for k, v in metrics.items()}


def describe_split(split: TimeSplit) -> str:
    return (
        f"train {split.train_start:%Y-%m-%d}..{split.train_end:%Y-%m-%d}, "
        f"delay {split.delay.days}d, test {split.test_start:%Y-%m-%d}..{split.test_end:%Y-%m-%d}"
    )


def _day(frame: pd.DataFrame) -> str:
    return f"{frame[TX_DATETIME].min():%Y-%m-%d}"
