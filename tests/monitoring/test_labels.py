"""The label feed, its contract, the labels table and the join, on small hand-made rows."""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis

from features.fraud_online import TerminalHistory, relabel_terminal_history
from features.quarantine import QUARANTINE_REASON
from mlops.payment_stream import parse_redis_url
from mlops.prediction_log import Prediction, PredictionLog
from monitoring import labels
from monitoring.label_stream import LabelStream

T0 = datetime(2018, 6, 10, 12, tzinfo=UTC)


def _feed_row(request_id: str, label: object, hours: float, **changes: object) -> dict[str, object]:
    event = T0 + timedelta(hours=hours)
    row: dict[str, object] = {
        labels.REQUEST_ID: request_id,
        labels.ENTITY_ID: str(1000 + int(hours)),
        labels.TERMINAL_ID: "7",
        labels.EVENT_TIME: event.isoformat(),
        labels.DUE_AT: (event + timedelta(days=7)).isoformat(),
        labels.LABEL: str(label),
    }
    return {**row, **changes}


def test_bad_label_rows_are_quarantined_with_their_first_problem_and_counted() -> None:
    rows = pd.DataFrame(
        [
            _feed_row("r0", 0, 0),
            _feed_row("r1", 1, 1),
            _feed_row("r1", 0, 2),  # the same request again
            _feed_row("r3", "yes", 3),
            _feed_row("bad id!", 1, 4),
            _feed_row("r5", 1, 5, event_time="last tuesday"),
            _feed_row("r6", 1, 6, due_at=T0.isoformat()),  # due before it happened
            _feed_row("r7", 0, 7, terminal_id="-2"),
            _feed_row("r8", 0, 8, entity_id=""),
        ],
        dtype=str,
    )
    result = labels.validate_labels(rows, with_terminal=True)

    assert result.valid[labels.REQUEST_ID].tolist() == ["r0", "r1"]
    assert result.valid[labels.LABEL].tolist() == [0, 1]
    assert result.valid[labels.TERMINAL_ID].tolist() == [7, 7]
    assert str(result.valid[labels.EVENT_TIME].dt.tz) == "UTC"
    quarantined = result.quarantined
    reasons = dict(zip(quarantined[labels.REQUEST_ID], quarantined[QUARANTINE_REASON], strict=True))
    assert reasons == {
        "r1": "request_id: duplicate",
        "r3": "label: not 0 or 1",
        "bad id!": "request_id: not a request id",
        "r5": "event_time: not a time",
        "r6": "due_at: before event_time",
        "r7": "terminal_id: not a non-negative integer",
        "r8": "entity_id: missing",
    }
    assert result.counts["rows_quarantined"] == 7
    assert result.counts["quarantined[label: not 0 or 1]"] == 1


def test_churn_labels_need_no_terminal() -> None:
    row = _feed_row("c0", 1, 0, terminal_id="", entity_id="7590-VHVEG")
    result = labels.validate_labels(pd.DataFrame([row], dtype=str), with_terminal=False)
    assert result.quarantined.empty
    assert result.valid[labels.ENTITY_ID].tolist() == ["7590-VHVEG"]


@pytest.fixture(params=["feed", pytest.param("stream", marks=pytest.mark.services)])
def pending(request: pytest.FixtureRequest, tmp_path: Path) -> labels.PendingLabels:
    """A model's pending labels in the feed's files, or as events in a Redis stream."""
    if request.param == "feed":
        return labels.LabelFeed(labels.feed_dir(tmp_path, "fraud"))
    host, port, options = parse_redis_url(request.getfixturevalue("redis_url"))
    client = redis.Redis(host=host, port=port, db=int(options["db"]))
    request.addfinalizer(client.close)
    return LabelStream(client, "test:labels:fraud")


def test_only_due_rows_are_taken_and_each_only_once(pending: labels.PendingLabels) -> None:
    rows = pd.DataFrame([_feed_row(f"r{h}", h % 2, h) for h in range(6)], dtype=str)
    pending.file("run-a", rows)
    pending.file("run-b", pd.DataFrame([_feed_row("x", 1, 0, due_at="soon")]))

    assert pending.clock() == T0 + timedelta(hours=5)
    # Due 7 days after each event: by T0 + 7 days + 2.5 hours, events 0, 1 and 2.
    due = pending.take_due(T0 + timedelta(days=7, hours=2.5))
    assert sorted(due.rows[labels.REQUEST_ID]) == ["r0", "r1", "r2", "x"]  # "soon": unreadable
    assert due.rows.loc[due.rows[labels.REQUEST_ID] == "r1", labels.LABEL].tolist() == ["1"]
    assert pending.pending_count() == 7  # nothing leaves before commit
    # A flow that died before its commit is handed the same rows again.
    again = pending.take_due(T0 + timedelta(days=7, hours=2.5))
    assert sorted(again.rows[labels.REQUEST_ID]) == ["r0", "r1", "r2", "x"]
    due.commit()
    assert pending.pending_count() == 3
    assert pending.take_due(T0 + timedelta(days=7, hours=2.5)).rows.empty
    rest = pending.take_due(T0 + timedelta(days=30))
    assert sorted(rest.rows[labels.REQUEST_ID]) == ["r3", "r4", "r5"]
    rest.commit()
    assert pending.pending_count() == 0 and pending.clock() is None


def test_a_feed_file_goes_once_all_its_rows_are_delivered(tmp_path: Path) -> None:
    folder = labels.feed_dir(tmp_path, "fraud")
    labels.write_feed(folder, "run-b", pd.DataFrame([_feed_row("x", 1, 0)]))
    labels.take_due(folder, T0 + timedelta(days=8)).commit()
    assert not (folder / "run-b.csv").exists()


def _log_predictions(url: str, rows: list[tuple[str, str, float, datetime]]) -> None:
    # The spool is emptied by `close`: a folder of its own for this call.
    spool = Path(tempfile.mkdtemp(prefix="spool-"))
    log = PredictionLog(url, spool, flush_s=0.05)
    log.start()
    for request_id, version, score, moment in rows:
        log.append(
            Prediction(
                request_id=request_id,
                endpoint="/v1/fraud/score",
                model_name="fraud",
                model_version=version,
                entity={"transaction_id": int(request_id[1:])},
                feature_names=["tx_amount", "terminal_risk_1d"],
                feature_values=[score * 100, 0.0],
                score=score,
                decision=score > 0.5,
                time=moment,
            )
        )
    log.close()
    shutil.rmtree(spool)


def _check_join(url: str) -> None:
    now = datetime.now(UTC)
    _log_predictions(
        url,
        [
            ("r1", "1", 0.9, now),
            ("r2", "1", 0.1, now + timedelta(seconds=1)),
            ("r3", "1", 0.2, now + timedelta(seconds=2)),  # its label is not in yet
            ("r1", "2", 0.8, now + timedelta(seconds=3)),  # a shadow model, same request
        ],
    )
    valid = labels.validate_labels(
        pd.DataFrame([_feed_row("r1", 1, 0), _feed_row("r2", 0, 1)], dtype=str),
        with_terminal=True,
    ).valid
    new, already = labels.write_labels(url, "fraud", valid)
    assert (len(new), already) == (2, 0)
    new, already = labels.write_labels(url, "fraud", valid)  # delivered again
    assert (len(new), already) == (0, 2)
    assert labels.logged_request_ids(url, "fraud", ["r1", "r2", "r9"]) == {"r1", "r2"}

    joined = labels.labelled_predictions(url, "fraud")
    assert joined[["request_id", "model_version", "label"]].values.tolist() == [
        ["r1", "1", 1],
        ["r2", "1", 0],
        ["r1", "2", 1],
    ]
    assert joined["tx_amount"].tolist() == pytest.approx([90.0, 10.0, 80.0])
    for column in ("time", "score", "decision", "terminal_risk_1d", "transaction_id"):
        assert column in joined.columns
    later = labels.labelled_predictions(url, "fraud", since=now + timedelta(seconds=2))
    assert later["model_version"].tolist() == ["2"]
    assert labels.labelled_predictions(url, "churn").empty


def test_the_join_gives_each_logged_prediction_its_request_label(tmp_path: Path) -> None:
    _check_join(f"sqlite:///{tmp_path / 'predictions.db'}")


@pytest.mark.services
def test_the_join_on_postgres(postgres_url: str) -> None:
    _check_join(postgres_url)


def test_relabelling_a_terminal_history_matches_entries_by_time() -> None:
    times = np.array([10, 20, 20, 30, 40], dtype=np.int64)
    history = TerminalHistory(times, np.array([1, 0, 0, 0, 0], dtype=np.int64))

    # Two payments in the same nanosecond, one of them fraud; one label the state lacks.
    relabelled, matched = relabel_terminal_history(history, [20, 40, 20, 99], [1, 1, 0, 1])

    assert matched == 3
    assert relabelled.times_ns.tolist() == times.tolist()
    assert relabelled.frauds.tolist() == [1, 1, 0, 0, 1]
    assert history.frauds.tolist() == [1, 0, 0, 0, 0]  # the input is left as it was
