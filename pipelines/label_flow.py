"""The label-ingestion flow: deliver the labels that are due and join them to the predictions.

read the feed's due rows -> validate (bad rows quarantined with a reason, counted) ->
(fraud) write the true labels into the online terminal histories -> store the labels ->
join them to the prediction log -> take the delivered rows off the feed.

The feed is where pending labels wait: CSV files, or a Redis stream when labels arrive as
events (`MLOPS_LABEL_SOURCE`; `monitoring.labels.PendingLabels`). "Due" is in the feed's
simulated time: without a cut-off, up to the latest event the feed holds. Every step can
run again: the online rewrite and the table write are idempotent, and the feed gives up
its rows only at the end, so a flow that fails half-way delivers the same rows next time
and stores nothing twice.

Fraud: `serving.fraud_features.FraudOnlineFeatures.record` appends each served payment to
its terminal's history with a pending label 0. A terminal's risk windows end
`label_delay_days` before the payment being scored, exactly when the label falls due, so
the labels must be written there on delivery, or the online risk would drift below the
offline one (`features.fraud_windows`) that the model was trained on. Only terminals with
a delivered fraud are rewritten: a genuine label equals the pending 0.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from features.fraud_online import epoch_ns
from features.quarantine import QUARANTINE_REASON, ValidationResult
from mlops.case_studies import FRAUD, case_study
from mlops.settings import Settings
from monitoring import labels
from pipelines.task_runners import runner_from_settings


@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def read_due_labels(
    settings: Settings, model_name: str, until: datetime | None
) -> labels.DueLabels | None:
    """The pending rows due by `until` (default: the latest event pending), from the feed's
    files or the label stream (`settings.label_source`)."""
    pending = labels.pending_labels(settings, model_name)
    cut_off = until or pending.clock()
    if cut_off is None:
        get_run_logger().info("no pending labels for %s in %s", model_name, pending.where)
        return None
    due = pending.take_due(cut_off)
    get_run_logger().info(
        "%d %s labels due by %s in %s", len(due.rows), model_name, due.until, pending.where
    )
    return due


@task(cache_policy=NO_CACHE)
def validate_labels(
    settings: Settings, run_dir: str, model_name: str, raw: pd.DataFrame, with_terminal: bool
) -> tuple[ValidationResult, str | None]:
    """Valid labels typed; bad rows written to the run's quarantine file with a reason."""
    result = labels.validate_labels(raw, with_terminal=with_terminal)
    if result.quarantined.empty:
        return result, None
    folder = settings.quarantine_dir / run_dir
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{model_name}_labels.csv"
    result.quarantined.to_csv(path, index=False)
    top = result.quarantined[QUARANTINE_REASON].value_counts().head(5).to_dict()
    get_run_logger().warning(
        "quarantined %d label rows -> %s; top reasons %s", len(result.quarantined), path, top
    )
    return result, str(path)


@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def relabel_terminals(settings: Settings, valid: pd.DataFrame) -> dict[str, int]:
    """Write the delivered frauds into the online terminal histories (see the module doc)."""
    from features.store import feature_store
    from serving.fraud_features import FraudOnlineFeatures

    frauds = valid[valid[labels.LABEL] == 1]
    counts = {"terminals_rewritten": 0, "frauds_written_online": 0, "frauds_not_online": 0}
    if frauds.empty:
        return counts
    online = FraudOnlineFeatures(feature_store(settings))
    for terminal_id, rows in frauds.groupby(labels.TERMINAL_ID, sort=True):
        times = [epoch_ns(t) for t in rows[labels.EVENT_TIME]]
        matched = online.relabel_terminal(int(terminal_id), times, [1] * len(times))
        counts["terminals_rewritten"] += matched > 0
        counts["frauds_written_online"] += matched
        counts["frauds_not_online"] += len(times) - matched
    get_run_logger().info("online terminal histories: %s", counts)
    return counts


@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def write_labels(settings: Settings, model_name: str, valid: pd.DataFrame) -> dict[str, int]:
    """Store the labels next to the prediction log; a label stored before is skipped."""
    new, already = labels.write_labels(settings.prediction_log_uri, model_name, valid)
    return {"stored": len(new), "already_stored": already}


@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def join_labels(settings: Settings, model_name: str, valid: pd.DataFrame) -> dict[str, int]:
    """How many delivered labels found their prediction in the log (by request id)."""
    request_ids = valid[labels.REQUEST_ID].tolist()
    logged = labels.logged_request_ids(settings.prediction_log_uri, model_name, request_ids)
    unjoined = len(set(request_ids) - logged)
    if unjoined:
        # Kept all the same: the log drops predictions rather than slow serving down.
        get_run_logger().warning("%d labels have no logged prediction", unjoined)
    return {"joined": len(logged), "unjoined": unjoined}


@flow(name="ingest_labels", log_prints=True, task_runner=runner_from_settings())
def ingest_labels(model: str = "churn", until: datetime | None = None) -> dict[str, Any]:
    """Deliver `model`'s labels due by `until` and return the counts of each step."""
    settings = Settings().prepare()
    study = case_study(model)
    model_name = study.model_name(settings)
    # Fraud labels are payments: they name their terminal, whose online history they amend.
    payments = study is FRAUD
    run_dir = f"labels-{flow_run.get_id() or 'local'}"
    summary: dict[str, Any] = {"model": model_name, "until": None, "delivered": 0}
    # Prefect's task typing admits a coroutine; these tasks are synchronous.
    due = cast("labels.DueLabels | None", read_due_labels(settings, model_name, until))
    if due is None:
        return {**summary, "pending": 0}
    # The feed gives up its rows last: a failure above leaves them for the next run.
    summary["until"] = due.until.isoformat()
    result, quarantine_file = validate_labels(
        settings, run_dir, model_name, due.rows, with_terminal=payments
    )
    summary |= {
        "delivered": len(due.rows),
        **{k: v for k, v in result.counts.items() if k != "rows_in"},
        "quarantine_file": quarantine_file,
    }
    if payments:
        summary |= relabel_terminals(settings, result.valid)
    summary |= write_labels(settings, model_name, result.valid)
    summary |= join_labels(settings, model_name, result.valid)
    due.commit()
    summary["pending"] = labels.pending_labels(settings, model_name).pending_count()
    get_run_logger().info("labels delivered: %s", summary)
    return summary
