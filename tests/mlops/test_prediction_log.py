"""The prediction log on real databases: SQLite by default, Postgres in the stack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from mlops.prediction_log import Prediction, PredictionLog, read_predictions

FEATURES = ("tenure_months", "monthly_charges")


def prediction(i: int, model: str = "churn", at: datetime | None = None) -> Prediction:
    return Prediction(
        request_id=f"req-{i}",
        endpoint="/v1/churn/predict",
        model_name=model,
        model_version="3",
        entity={"customer_id": f"C{i}"},
        feature_names=FEATURES,
        feature_values=[float(i), float("nan") if i == 1 else 20.5],
        score=i / 10,
        decision=i > 5,
        **({"time": at} if at else {}),
    )


def test_close_writes_everything_queued_and_the_reader_gives_it_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    # A flush interval far longer than the test: only `close` can have written these.
    log = PredictionLog(url, flush_s=3600)
    log.start()
    for i in range(7):
        log.append(prediction(i))
    log.append(prediction(99, model="fraud"))
    log.close()

    assert log.written == 8
    frame = read_predictions(url, model="churn")
    assert frame["request_id"].tolist() == [f"req-{i}" for i in range(7)]
    assert frame["customer_id"].tolist() == [f"C{i}" for i in range(7)]
    assert frame["tenure_months"].tolist() == [float(i) for i in range(7)]
    assert frame["monthly_charges"].isna().tolist() == [i == 1 for i in range(7)]
    assert frame["model_version"].unique().tolist() == ["3"]
    assert str(frame["time"].dt.tz) == "UTC"
    assert read_predictions(url, model="fraud")["request_id"].tolist() == ["req-99"]


def test_the_reader_selects_a_time_window(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    start = datetime(2025, 3, 1, tzinfo=UTC)
    log = PredictionLog(url)
    log.start()
    for day in range(5):
        log.append(prediction(day, at=start + timedelta(days=day)))
    log.close()
    window = read_predictions(url, since=start + timedelta(days=1), until=start + timedelta(days=3))
    assert window["request_id"].tolist() == ["req-1", "req-2"]
    assert read_predictions(url, model="nobody").empty


def test_a_full_queue_drops_and_counts_without_blocking(tmp_path: Path) -> None:
    log = PredictionLog(f"sqlite:///{tmp_path / 'p.db'}", capacity=3, flush_s=3600)
    log.start()
    for i in range(10):
        log.append(prediction(i))  # would hang here if a full queue blocked
    assert log.depth == 3
    assert log.dropped["queue_full"] == 7
    log.close()
    assert log.written == 3


def test_a_failing_database_drops_the_batch_and_the_writer_goes_on(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    log = PredictionLog(url, flush_s=3600)
    log.start()
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE predictions"))
    log.append(prediction(1))
    log.close()
    assert log.dropped["write_error"] == 1
    assert log.written == 0
    engine.dispose()


@pytest.mark.services
def test_postgres_round_trip(postgres_url: str) -> None:
    log = PredictionLog(postgres_url, flush_s=3600)
    log.start()
    for i in range(3):
        log.append(prediction(i))
    log.close()
    frame = read_predictions(postgres_url, model="churn")
    assert frame["request_id"].tolist() == ["req-0", "req-1", "req-2"]
    # NaN is not JSON: Postgres gets null, the reader gives NaN back.
    assert frame["monthly_charges"].isna().tolist() == [False, True, False]
    engine = sa.create_engine(postgres_url)
    with engine.connect() as connection:
        indexes = sa.inspect(connection).get_indexes("predictions")
    engine.dispose()
    assert {"name": "ix_predictions_model_time", "column_names": ["model_name", "time"]} in [
        {"name": index["name"], "column_names": index["column_names"]} for index in indexes
    ]
