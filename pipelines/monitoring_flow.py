"""The monitoring flow of one model: check, decide, log the decision, act.

read the champion's predictions since the last check (or the last `window_hours`) and
the recent labelled predictions -> load the champion's training reference -> Evidently
checks (`monitoring.checks`) -> snapshots in the workspace, HTML reports, the latest
figures for Prometheus (`monitoring.workspace`) -> decide (`monitoring.decisions`) ->
log the decision with its evidence (an MLflow run in `monitoring-<model>`, a JSON line
in `MLOPS_HOME/monitoring/decisions/<model>.jsonl`, `monitoring.decision_log`) -> act:

- **alert**: a warning in the flow's log and `mlops_monitoring_decision{decision="alert"}`;
- **retrain**: the model's training flow on fresh data, registering a challenger
  without promoting it (`auto_promote=False`), then the challenger test
  (`monitoring.challenger_test`) on the recent labelled window, which promotes it if it
  beats the champion on live labels. Serving follows `champion`; the model's walkthrough
  page, if one was built, is rebuilt for the new champion (`reports.page.refresh_pages`).

Fresh data, honestly: the platform's worlds are simulators, so fresh data is the
simulator run under the world as it now is: `MLOPS_RETRAIN_CHURN_SCENARIO` and
`MLOPS_RETRAIN_FRAUD_SCENARIO` name it (the operator who simulates a price rise says so).
Churn retrains on `MLOPS_RETRAIN_CHURN_CUSTOMERS` simulated customers. Fraud retrains on
the served world (its cards and terminals, from the history's first day through the last
payment traffic sent), whose latest weeks become the training block; it republishes the
online histories, which equal the served ones under the same scenario (one seed, one world).
The labelled traffic is not added to the training data: the log holds the model's
features, not the raw fields the pipelines ingest.

The check's cursor (`monitoring.decision_log`) moves only when a check ran: a window with
fewer than `MLOPS_MONITOR_MIN_ROWS` predictions waits for more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from mlops.case_studies import CHURN, FRAUD, CaseStudy, case_study
from mlops.model_bundle import RegisteredBundle
from mlops.prediction_log import SHADOW_KEY
from mlops.settings import Settings
from monitoring import decision_log
from monitoring.check_results import MonitoringResult, json_ready
from monitoring.decisions import Decision, Thresholds, decide
from pipelines.task_runners import runner_from_settings

EXPERIMENT_PREFIX = "monitoring-"


@dataclass(frozen=True)
class Window:
    since: datetime | None
    until: datetime


def _window(settings: Settings, name: str, window_hours: float | None, now: datetime) -> Window:
    hours = window_hours or settings.monitor_window_hours
    if hours is not None:
        return Window(now - timedelta(hours=hours), now)
    return Window(decision_log.checked_until(settings, name), now)


@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def load_champion(settings: Settings, name: str) -> tuple[RegisteredBundle, pd.DataFrame]:
    """The champion's bundle and its training reference."""
    from mlops.model_bundle import download_bundle
    from mlops.names import CHAMPION
    from mlops.reference import load_reference

    bundle = download_bundle(settings.tracking_uri, name, settings.models_dir, alias=CHAMPION)
    return bundle, load_reference(settings, name, bundle.version)


def _served_by(frame: pd.DataFrame, version: str) -> pd.DataFrame:
    """The rows answered by `version`: shadow predictions were never answered."""
    mine = frame["model_version"].astype(str) == version
    if SHADOW_KEY in frame.columns:
        mine &= ~frame[SHADOW_KEY].eq(True)  # absent (None, NaN) on served rows
    return frame[mine].reset_index(drop=True)


@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def read_window(settings: Settings, name: str, window: Window) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every prediction of the model in the window, and the recent labelled ones."""
    from mlops.prediction_log import read_predictions
    from monitoring.labels import labelled_predictions

    url = settings.prediction_log_uri
    current = read_predictions(url, model=name, since=window.since, until=window.until)
    labelled = labelled_predictions(
        url, name, since=window.until - timedelta(days=settings.monitor_label_window_days)
    )
    return current, labelled


@task(cache_policy=NO_CACHE)
def check(
    settings: Settings,
    name: str,
    champion: RegisteredBundle,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    labelled: pd.DataFrame,
) -> MonitoringResult:
    """Evidently's checks of the champion's window; recorded in the workspace and as HTML."""
    from monitoring.checks import run_checks
    from monitoring.workspace import record_check

    meta = champion.meta
    result = run_checks(
        name,
        champion.version,
        reference,
        current,
        labelled,
        feature_names=meta.feature_names,
        threshold=meta.threshold,
        test_metrics=meta.test_metrics,
        drift_share_threshold=settings.monitor_drift_share_retrain,
        max_quality_drop=settings.monitor_max_quality_drop,
    )
    recorded = record_check(settings, result)
    get_run_logger().info(
        "check recorded: %s", {k: str(v) for k, v in recorded.html_reports.items()}
    )
    return result


@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def log_decision(
    settings: Settings, name: str, entry: dict[str, Any], result: MonitoringResult | None
) -> str:
    """The decision with its evidence: an MLflow run, a JSON line, the latest figures."""
    import mlflow

    from monitoring.workspace import record_decision
    from training.tracking import use_experiment

    decision = entry["decision"]
    record_decision(settings, name, decision["action"], "; ".join(decision["reasons"]))
    use_experiment(settings, f"{EXPERIMENT_PREFIX}{name}")
    with mlflow.start_run(run_name=f"{name}-{decision['action']}-{entry['decided_at']}") as run:
        mlflow.set_tags(
            {
                "decision": decision["action"],
                "model": name,
                "model_version": str(entry.get("model_version")),
                "flow_run": str(entry.get("flow_run")),
            }
        )
        evidence = decision["evidence"]
        figures = {
            "current_rows": evidence.get("current_rows"),
            "drift_share": evidence.get("drift_share"),
            "prediction_drift_score": evidence.get("prediction_drift_score"),
            "labelled_rows": evidence.get("labelled_rows"),
            **{
                f"quality_{k}": v
                for k, v in (evidence.get("quality") or {}).get("metrics", {}).items()
            },
        }
        mlflow.log_metrics(
            {
                k: float(v)
                for k, v in figures.items()
                if isinstance(v, int | float) and math.isfinite(v)
            }
        )
        mlflow.log_dict(entry, "decision.json")
        if result is not None:
            mlflow.log_dict(result.to_dict(), "check.json")
        entry["mlflow_run_id"] = run.info.run_id
    decision_log.append_decision(settings, name, entry)
    return str(run.info.run_id)


def _retrain_churn(settings: Settings) -> dict[str, Any]:
    from pipelines.churn_flow import churn_pipeline

    return churn_pipeline(
        customers=settings.retrain_churn_customers,
        scenario=settings.retrain_churn_scenario,
        auto_promote=False,
    )


def _retrain_fraud(settings: Settings) -> dict[str, Any]:
    from pipelines.fraud_flow import Periods, Simulation, fraud_pipeline
    from sources.fraud_world import NoFraudHistory, fraud_history

    try:
        world = fraud_history(settings, None)
    except NoFraudHistory:
        # No served world on record: the simulator's default world and the handbook's split.
        return fraud_pipeline(
            simulation=Simulation(scenario=settings.retrain_fraud_scenario), auto_promote=False
        )
    periods = Periods()
    block = periods.train_days + periods.delay_days + periods.test_days
    last_day = world.last_time.normalize()
    days = int((last_day - world.first_day) / pd.Timedelta(days=1)) + 1
    return fraud_pipeline(
        simulation=Simulation(
            customers=world.n_customers,
            terminals=world.n_terminals,
            days=days,
            start=world.first_day.strftime("%Y-%m-%d"),
            scenario=settings.retrain_fraud_scenario,
        ),
        periods=Periods(train_start=(last_day - pd.Timedelta(days=block - 1)).strftime("%Y-%m-%d")),
        auto_promote=False,
    )


_RETRAINERS = {CHURN.name: _retrain_churn, FRAUD.name: _retrain_fraud}


def retrain(settings: Settings, study: CaseStudy) -> dict[str, Any]:
    """The case study's training flow on fresh data (a subflow); registers a challenger."""
    summary = _RETRAINERS[study.name](settings)
    get_run_logger().info(
        "retrained %s: v%s registered as %s",
        study.name,
        summary["model_version"],
        summary["aliases"],
    )
    return summary


@task(cache_policy=NO_CACHE)
def challenger_test(
    settings: Settings, name: str, labelled: pd.DataFrame, metric: str
) -> dict[str, Any]:
    """The challenger test on the recent labelled window; promotes a challenger that passes."""
    from monitoring.challenger_test import run_challenger_test

    verdict = run_challenger_test(settings, name, labelled, metric)
    get_run_logger().info("challenger test: %s", verdict.reason)
    return verdict.to_dict()


@flow(name="monitor_model", log_prints=True, task_runner=runner_from_settings())
def monitor_model(
    model: str = "churn", window_hours: float | None = None, act: bool = True
) -> dict[str, Any]:
    """Check `model`'s champion on its recent traffic, decide, log, and (if `act`) act.

    Returns the decision log's entry (`monitoring.decision_log`): the window, the counts,
    the decision with its evidence, and what acting did (`retrain`, `challenger_test`).
    """
    settings = Settings().prepare()
    study = case_study(model)
    name = study.model_name(settings)
    now = datetime.now(UTC)
    window = _window(settings, name, window_hours, now)
    champion, reference = cast(
        "tuple[RegisteredBundle, pd.DataFrame]", load_champion(settings, name)
    )
    logged, labelled = cast(
        "tuple[pd.DataFrame, pd.DataFrame]", read_window(settings, name, window)
    )
    current = _served_by(logged, champion.version) if len(logged) else logged
    champion_labelled = _served_by(labelled, champion.version) if len(labelled) else labelled
    entry: dict[str, Any] = {
        "model": name,
        "model_version": champion.version,
        "decided_at": now.isoformat(),
        "flow_run": str(flow_run.get_id() or "local"),
        "window": {
            "since": None if window.since is None else window.since.isoformat(),
            "until": window.until.isoformat(),
        },
        "predictions": len(current),
        "labelled_predictions": len(champion_labelled),
    }
    result, decision = _check_and_decide(
        settings, study, champion, reference, current, champion_labelled
    )
    if result is not None:
        decision_log.move_cursor(settings, name, window.until)
    entry["decision"] = decision.to_dict()
    get_run_logger().info(
        "decision for %s v%s: %s (%s)", name, champion.version, decision.action, decision.reason
    )
    if act:
        entry |= _act(settings, study, champion, decision, labelled)
    entry["mlflow_run_id"] = log_decision(settings, name, entry, result)
    return json_ready(entry)


def _check_and_decide(
    settings: Settings,
    study: CaseStudy,
    champion: RegisteredBundle,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    labelled: pd.DataFrame,
) -> tuple[MonitoringResult | None, Decision]:
    """The checks' result and the decision; no check (and `nothing`) on too few predictions."""
    if len(current) < settings.monitor_min_rows:
        waiting = Decision(
            "nothing",
            [
                f"{len(current)} predictions of v{champion.version} in the window, fewer than "
                f"{settings.monitor_min_rows}: waiting for more"
            ],
            {"current_rows": len(current), "labelled_rows": len(labelled)},
        )
        return None, waiting
    name = study.model_name(settings)
    result = cast(MonitoringResult, check(settings, name, champion, reference, current, labelled))
    return result, decide(result, Thresholds.from_settings(settings, study.primary_metric))


def _act(
    settings: Settings,
    study: CaseStudy,
    champion: RegisteredBundle,
    decision: Decision,
    labelled: pd.DataFrame,
) -> dict[str, Any]:
    """Alert in the flow's log, or retrain and test the challenger; what was done, for the
    decision log."""
    name = study.model_name(settings)
    if decision.action == "alert":
        get_run_logger().warning("ALERT %s v%s: %s", name, champion.version, decision.reason)
    if decision.action != "retrain":
        return {}
    summary = retrain(settings, study)
    done: dict[str, Any] = {
        "retrain": {
            key: summary.get(key)
            for key in ("run_id", "model_version", "aliases", "gate_reason", "test_metrics")
        },
        "challenger_test": challenger_test(settings, name, labelled, study.primary_metric),
    }
    if done["challenger_test"]["promoted"]:
        done["page"] = refresh_page(settings, study)
    return done


@task(cache_policy=NO_CACHE)
def refresh_page(settings: Settings, study: CaseStudy) -> str:
    """Rebuild the case study's walkthrough page for its new champion, if it has one (the
    stack's bootstrap builds them). A page that cannot be built is logged, not raised: the
    promotion stands."""
    from reports.page import refresh_pages

    try:
        (done,) = refresh_pages(settings, [study.name], missing=False).values()
    except Exception as error:  # the page is a view of the champion, not part of promoting it
        get_run_logger().warning("walkthrough page of %s not rebuilt: %r", study.name, error)
        return f"not rebuilt: {type(error).__name__}"
    get_run_logger().info("walkthrough page of %s: %s", study.name, done)
    return done
