"""The bounded Optuna search over XGBoost's hyperparameters for the fraud model.

TPE, seeded, maximising the mean prequential `SELECTION_METRIC` over the folds of
`training.fraud_selection`; bounded by a number of trials and a time budget (the
settings' `fraud_search_trials` and `fraud_search_timeout_s`, or the caller's). Every
trial is a nested MLflow run; the best trial's parameters become `<variant>_tuned`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import mlflow
import optuna

from mlops import progress
from mlops.settings import Settings
from training.fraud_models import ModelSpec
from training.fraud_selection import SELECTION_METRIC, Fold, Prequential, prequential


@dataclass(frozen=True)
class Budget:
    """How far the search may go: at most `n_trials` trials, stopping after `timeout_s`."""

    n_trials: int
    timeout_s: float

    @classmethod
    def of(cls, settings: Settings, n_trials: int | None, timeout_s: float | None) -> Budget:
        """The settings' search budget, each bound overridden when given."""
        return cls(
            n_trials if n_trials is not None else settings.fraud_search_trials,
            timeout_s if timeout_s is not None else settings.fraud_search_timeout_s,
        )


@dataclass
class SearchResult:
    """How many trials ran, and the best one's parameters and prequential result (if any)."""

    trials: int = 0
    best_params: dict[str, Any] = field(default_factory=dict)
    best: Prequential | None = None


def search_xgboost(base: ModelSpec, folds: list[Fold], seed: int, budget: Budget) -> SearchResult:
    """Optuna TPE over XGBoost's hyperparameters on the prequential folds; a run per trial.

    `base` gives the family, imbalance handling and anomaly input the trials keep.
    """
    search = SearchResult()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)

    metric = f"prequential_{SELECTION_METRIC}"

    def objective(trial: optuna.Trial) -> float:
        params = _suggest_xgboost_params(trial)
        spec = ModelSpec(base.family, base.imbalance, base.anomaly_feature, params)
        with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True):
            result = prequential(spec, folds, seed)
            mlflow.log_params(
                {"candidate": f"{base.name}_trial", "trial": trial.number, **spec.log_params()}
            )
            mlflow.log_metrics(result.metrics)
        search.trials += 1
        value = result.metrics[metric]
        if search.best is None or value > search.best.metrics[metric]:
            search.best, search.best_params = result, params
        trials.advance(note=f"best {search.best.metrics[metric]:.3f}")
        return value

    with progress.step(f"Optuna trials on {base.name}", total=budget.n_trials) as trials:
        study.optimize(objective, n_trials=budget.n_trials, timeout=budget.timeout_s)
    return search


def _suggest_xgboost_params(trial: optuna.Trial) -> dict[str, Any]:
    """The search space; the order of the suggestions is part of what the seed reproduces."""
    return {
        "n_estimators": trial.suggest_int("n_estimators", 50, 300, step=50),
        "max_depth": trial.suggest_int("max_depth", 2, 7),
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
        "min_child_weight": trial.suggest_float("min_child_weight", 0.5, 20.0, log=True),
        "subsample": trial.suggest_float("subsample", 0.6, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 0.01, 10.0, log=True),
    }
