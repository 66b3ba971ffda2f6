"""The prediction log on real databases (SQLite by default, Postgres in the stack) and its
spool on disk: shipped once, retried while the database is down, a bad record rejected alone,
bounded and loud when it cannot persist."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from mlops.prediction_log import (
    REJECTED_FILE,
    Prediction,
    PredictionLog,
    PredictionNotPersisted,
    read_predictions,
)

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


def test_close_ships_everything_spooled_and_the_reader_gives_it_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    # A flush interval far longer than the test: only `close` can have shipped these.
    log = PredictionLog(url, tmp_path / "spool", flush_s=3600)
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
    log = PredictionLog(url, tmp_path / "spool")
    log.start()
    for day in range(5):
        log.append(prediction(day, at=start + timedelta(days=day)))
    log.close()
    window = read_predictions(url, since=start + timedelta(days=1), until=start + timedelta(days=3))
    assert window["request_id"].tolist() == ["req-1", "req-2"]
    assert read_predictions(url, model="nobody").empty


@pytest.mark.services
def test_postgres_round_trip(postgres_url: str, tmp_path: Path) -> None:
    log = PredictionLog(postgres_url, tmp_path / "spool", flush_s=3600)
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


def _count(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(sa.text("SELECT count(*) FROM predictions")).scalar_one())
    finally:
        engine.dispose()


def test_append_writes_the_record_to_a_segment_before_it_returns(tmp_path: Path) -> None:
    log = PredictionLog(f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "spool")
    log.spool.open()  # no shipper: only the spool
    log.append(prediction(3))
    (segment,) = log.spool.segments()
    line = segment.read_bytes()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert b'"req-3"' in line and b'"C3"' in line
    assert log.spool.size == len(line)
    log.spool.close()


def test_segments_a_crashed_process_left_are_shipped_at_the_next_start(tmp_path: Path) -> None:
    url, spool = f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "spool"
    crashed = PredictionLog(url, spool)
    crashed.spool.open()
    for i in range(5):
        crashed.append(prediction(i))
    crashed.spool.close()  # what the kernel does to a killed process's files: no shipping
    assert _count_or_none(url) is None

    log = PredictionLog(url, spool, flush_s=3600)
    log.start()
    log.close()
    assert read_predictions(url)["request_id"].tolist() == [f"req-{i}" for i in range(5)]
    assert log.spool.segments() == []


def _count_or_none(url: str) -> int | None:
    try:
        return _count(url)
    except sa.exc.OperationalError:
        return None


def test_a_segment_shipped_twice_logs_each_record_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    log = PredictionLog(url, tmp_path / "spool", flush_s=3600)
    log.start()
    for i in range(4):
        log.append(prediction(i))
    log.spool.seal()
    (segment,) = log.spool.segments()
    copy = segment.read_bytes()
    assert log.ship()
    # A crash between the commit and the delete: the same segment is shipped again.
    segment.write_bytes(copy)
    assert log.ship()
    log.close()
    assert _count(url) == 4
    # The same request id under two records (a shadow row shares its request's) is kept.
    log = PredictionLog(url, tmp_path / "spool", flush_s=3600)
    log.start()
    log.append(prediction(1, model="churn-challenger"))
    log.close()
    assert read_predictions(url)["request_id"].tolist().count("req-1") == 2


def test_while_the_database_is_down_records_stay_spooled_and_arrive_after(
    tmp_path: Path,
) -> None:
    # SQLite cannot open a file in a folder that does not exist: the database is down.
    folder = tmp_path / "db"
    url = f"sqlite:///{folder / 'p.db'}"
    log = PredictionLog(url, tmp_path / "spool", flush_s=3600)
    log.start()  # does not raise: the shipper retries
    for i in range(3):
        log.append(prediction(i))
    assert not log.ship()
    assert log.ship_failures == 1 and log.ship_error
    assert log.persisting  # the spool still takes records
    assert log.spool.size > 0
    folder.mkdir()
    assert log.ship()
    assert log.ship_error is None
    log.close()
    assert _count(url) == 3 and log.spool.segments() == []


def test_a_dropped_table_is_made_again_and_nothing_is_lost(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    log = PredictionLog(url, tmp_path / "spool", flush_s=3600)
    log.start()
    assert log.ship()
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE predictions"))
    engine.dispose()
    log.append(prediction(1))
    assert not log.ship()
    assert log.ship()
    log.close()
    assert _count(url) == 1


def test_a_record_the_database_refuses_is_rejected_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    log = PredictionLog(url, tmp_path / "spool", flush_s=3600)
    log.start()
    assert log.ship()
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "CREATE TRIGGER poison BEFORE INSERT ON predictions "
                "WHEN NEW.request_id = 'req-4' BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
            )
        )
    engine.dispose()
    for i in range(8):
        log.append(prediction(i))
    log.append(
        Prediction(
            request_id="req-nan",
            endpoint="/v1/churn/predict",
            model_name="churn",
            model_version="3",
            entity={"customer_id": "CNaN"},
            feature_names=FEATURES,
            feature_values=[1.0, 2.0],
            score=float("nan"),
            decision=False,
        )
    )
    log.close()
    logged = read_predictions(url)["request_id"].tolist()
    assert logged == [f"req-{i}" for i in range(8) if i != 4]
    assert log.dropped["rejected"] == 2 and log.written == 7
    rejected = [
        orjson.loads(line)
        for line in (tmp_path / "spool" / REJECTED_FILE).read_bytes().splitlines()
    ]
    reasons = {r["record"]["request_id"]: r["reason"] for r in rejected}
    assert reasons == {"req-4": "poisoned", "req-nan": "the score is not a finite number"}


def test_a_torn_line_is_rejected_and_the_rest_of_its_segment_shipped(tmp_path: Path) -> None:
    url, spool = f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "spool"
    crashed = PredictionLog(url, spool)
    crashed.spool.open()
    crashed.append(prediction(1))
    crashed.spool.close()
    (segment,) = crashed.spool.segments()
    with segment.open("ab") as file:
        file.write(b'0badc0de ["half a rec')  # a write cut short by a power cut
    log = PredictionLog(url, spool, flush_s=3600)
    log.start()
    log.close()
    assert read_predictions(url)["request_id"].tolist() == ["req-1"]
    assert log.dropped["rejected"] == 1
    assert "unreadable spool line" in (spool / REJECTED_FILE).read_text()


def test_a_full_spool_refuses_the_record_says_why_and_recovers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    log = PredictionLog(url, tmp_path / "spool", max_spool_bytes=1000, flush_s=3600)
    log.start()
    accepted = 0
    with pytest.raises(PredictionNotPersisted, match="spool full"):
        for i in range(100):
            log.append(prediction(i))
            accepted += 1
    assert 0 < accepted < 100
    assert not log.persisting and log.problem and "MLOPS_PREDICTION_LOG_SPOOL_MAX_MB" in log.problem
    assert log.dropped["spool_full"] == 1
    assert log.ship()  # shipped: room again
    assert log.persisting and log.problem is None
    log.append(prediction(100))
    log.close()
    assert _count(url) == accepted + 1


def test_a_spool_that_cannot_write_refuses_the_record(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the spool folder should be")
    log = PredictionLog(f"sqlite:///{tmp_path / 'p.db'}", blocker / "spool")
    log.start()
    assert not log.persisting and "cannot create the spool folder" in (log.problem or "")
    with pytest.raises(PredictionNotPersisted):
        log.append(prediction(1))
    assert log.dropped["spool_error"] == 1
    log.close()


def test_a_table_from_before_the_spool_gets_its_record_id(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "CREATE TABLE predictions (id INTEGER PRIMARY KEY, time DATETIME NOT NULL, "
                "request_id VARCHAR(128) NOT NULL, endpoint VARCHAR(64) NOT NULL, "
                "model_name VARCHAR(128) NOT NULL, model_version VARCHAR(32) NOT NULL, "
                "entity JSON NOT NULL, features JSON NOT NULL, score FLOAT NOT NULL, "
                "decision BOOLEAN NOT NULL)"
            )
        )
    engine.dispose()
    log = PredictionLog(url, tmp_path / "spool", flush_s=3600)
    log.start()
    log.append(prediction(2))
    log.close()
    assert read_predictions(url)["request_id"].tolist() == ["req-2"]


def test_sqlites_one_statement_batch_stores_what_sqlalchemys_insert_stores(
    tmp_path: Path,
) -> None:
    """SQLite's shipper inserts a batch as one JSON parameter SQLite expands itself; the
    table must hold, byte for byte, what SQLAlchemy's own insert of the rows holds."""
    import mlops.prediction_log as log_module

    whole_second = datetime(2026, 12, 8, 1, 2, 3, tzinfo=UTC)  # no microseconds
    records = [
        prediction(0, at=whole_second),
        prediction(1),  # a NaN feature: null
        prediction(7, at=whole_second + timedelta(microseconds=1)),
        Prediction(
            request_id='req-"quoted"',
            endpoint="/v1/fraud/score",
            model_name="fraud",
            model_version="12",
            entity={"customer_id": 3, "terminal_id": 9, "note": "naïve \u2603 'x'"},
            feature_names=("a", "b"),
            feature_values=[1e-300, -0.0],
            score=0.999999999999,
            decision=True,
        ),
    ]
    ours = f"sqlite:///{tmp_path / 'ours.db'}"
    log = PredictionLog(ours, tmp_path / "spool", flush_s=3600)
    log.start()
    for record in records:
        log.append(record)
    log.close()
    assert log.written == len(records)

    lines = b"".join(log_module._encode(r, f"rec-{i}") for i, r in enumerate(records))
    rows = [log_module._decode(line) for line in lines.splitlines(keepends=True)]
    theirs = f"sqlite:///{tmp_path / 'theirs.db'}"
    engine = log_module.log_engine(theirs)
    log_module.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(log_module.predictions.insert(), rows)
    engine.dispose()

    def table(url: str) -> list[tuple[object, ...]]:
        columns = "time, request_id, endpoint, model_name, model_version, entity, features, "
        columns += "score, decision, typeof(time), typeof(score), typeof(decision)"
        with sa.create_engine(url).connect() as connection:
            query = f"SELECT {columns} FROM predictions ORDER BY request_id"
            return [tuple(row) for row in connection.exec_driver_sql(query)]

    assert table(ours) == table(theirs)
    assert len(table(ours)) == len(records)
    pd_ours, pd_theirs = read_predictions(ours), read_predictions(theirs)
    assert pd_ours.drop(columns="time").equals(pd_theirs.drop(columns="time"))
    assert pd_ours["time"].tolist() == pd_theirs["time"].tolist()
