"""The predictors on their own, fast: small ONNX models on a tiny real feature store.

The module's home holds a real Feast store (SQLite), published as the pipelines publish
it: the churn features of 60 simulated customers, the fraud states of 30 simulated cards
as of a cut-off (about a second in all, once). Each test reads it through what the API
builds on it (`OnlineFeatures` for churn, `FraudOnlineFeatures` for fraud) and logs to a
real prediction log (SQLite and its spool in tmp_path), read back from its table. Which
model answers, which one scores the shadow row, what is logged under which version and
what the metrics observe, without a registry or an HTTP client.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from feast import FeatureStore
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from features import store as feature_store
from features.churn_frames import ENTITY_KEY, feature_frame
from features.churn_schema import validate_churn_frame
from features.churn_transforms import CHURN_FEATURES, churn_features
from features.feature_repo.churn import churn_model
from features.fraud_online import epoch_ns
from features.fraud_windows import fraud_window_features
from mlops.model_bundle import BundleMeta, RegisteredBundle
from mlops.onnx_scorer import OnnxScorer
from mlops.prediction_log import (
    SHADOW_KEY,
    Prediction,
    PredictionLog,
    PredictionNotPersisted,
    log_engine,
    predictions,
)
from mlops.settings import Settings
from serving.challenger import ChallengerArm, in_canary
from serving.context import RequestContext
from serving.errors import InvalidInput, PredictionLogUnavailable, UnknownEntity
from serving.fraud_features import FraudOnlineFeatures
from serving.metrics import Metrics
from serving.model_holder import LoadedModel, ModelHolder
from serving.online_features import OnlineFeatures
from serving.predictors import CHURN_ENDPOINT, FRAUD_ENDPOINT, ChurnPredictor, FraudPredictor
from serving.schemas import ChurnPredictRequest, FraudTransaction
from sources.churn_simulator import simulate_customers
from sources.fraud_simulator import simulate_transactions
from tests.helpers.runs import use_home
from training.export import export_onnx

CHURN_NAMES = list(CHURN_FEATURES)
# A few of the fraud model's features, not in the service's order.
FRAUD_NAMES = ["terminal_risk_7d", "tx_amount", "customer_nb_tx_7d", "terminal_nb_tx_7d"]
FRAUD_CUT_OFF = pd.Timestamp("2018-05-09", tz="UTC")
RAW_CUSTOMER = {
    "gender": "Male",
    "SeniorCitizen": 0,
    "Partner": "Yes",
    "Dependents": "No",
    "tenure": 3,
    "PhoneService": "Yes",
    "MultipleLines": "No",
    "InternetService": "Fiber optic",
    "OnlineSecurity": "No",
    "OnlineBackup": "No",
    "DeviceProtection": "No",
    "TechSupport": "No",
    "StreamingTV": "Yes",
    "StreamingMovies": "No",
    "Contract": "Month-to-month",
    "PaperlessBilling": "Yes",
    "PaymentMethod": "Electronic check",
    "MonthlyCharges": 89.95,
    "TotalCharges": 269.85,
}


@dataclass(frozen=True)
class Home:
    """The module's home: its settings, what was published in its store, and what to train on."""

    settings: Settings
    customers: list[str]
    """The customer ids the churn view holds."""
    churn_rows: np.ndarray
    """The published churn features (CHURN_NAMES), one row per customer."""
    fraud_rows: np.ndarray
    """The offline fraud features (FRAUD_NAMES) of the payments before the cut-off."""
    payment: dict[str, Any]
    """The first payment after the cut-off: a card and a terminal with a history."""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    """A fresh home whose store holds churn features and fraud states, as the flows publish
    them (`tests/features/test_feature_store.py`, `test_fraud_feature_store.py`)."""
    folder = tmp_path_factory.mktemp("predictors-home")
    with pytest.MonkeyPatch.context() as patch:
        use_home(patch, folder)
        settings = Settings()
    settings.features_dir.mkdir(parents=True)
    settings.feast_dir.mkdir(parents=True)
    store = feature_store.feature_store(settings)

    valid = validate_churn_frame(simulate_customers(60, seed=11, months=1), "customers").valid
    churn = feature_frame(valid)
    feature_store.apply_churn_definitions(store, settings)
    feature_store.write_churn_offline(churn, settings)
    feature_store.publish_churn_online(store, churn)

    transactions = simulate_transactions(30, 200, 45, seed=7, radius=15)
    feature_store.apply_fraud_definitions(store, settings)
    feature_store.publish_fraud_state(store, settings, transactions, FRAUD_CUT_OFF.to_pydatetime())
    before = transactions["TX_DATETIME"] < FRAUD_CUT_OFF
    offline = fraud_window_features(transactions)[before]
    first = transactions[~before].iloc[0]
    assert first["CUSTOMER_ID"] in set(transactions.loc[before, "CUSTOMER_ID"])
    payment = {
        "transaction_id": int(first["TRANSACTION_ID"]),
        "customer_id": int(first["CUSTOMER_ID"]),
        "terminal_id": int(first["TERMINAL_ID"]),
        "amount": float(first["TX_AMOUNT"]),
        "tx_datetime": first["TX_DATETIME"].to_pydatetime(),
    }
    return Home(
        settings=settings,
        customers=churn[ENTITY_KEY].tolist(),
        churn_rows=churn[CHURN_NAMES].to_numpy(np.float64),
        fraud_rows=offline[FRAUD_NAMES].to_numpy(np.float64),
        payment=payment,
    )


def _model(
    folder: Path, names: list[str], x: np.ndarray, version: str, *, seed: int, threshold: float
) -> LoadedModel:
    """A scaled logistic regression on the rows `x`, labelled by a random direction (one
    per seed: two seeds, two models), exported and loaded as serving loads a version."""
    rng = np.random.default_rng(seed)
    spread = x.std(axis=0)
    z = (x - x.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    direction = z @ rng.normal(size=len(names))
    y = (direction > np.median(direction)).astype(int)
    classifier = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    folder.mkdir(parents=True)
    path = export_onnx(classifier, len(names), folder / "model.onnx")
    meta = BundleMeta("m", "service", names, threshold, "logistic", "sha", 0.0)
    bundle = RegisteredBundle("m", version, f"run-{version}", folder, meta)
    return LoadedModel(bundle=bundle, alias="champion", scorer=OnnxScorer(path))


def _holder(model: LoadedModel | None) -> ModelHolder:
    holder = ModelHolder("m")
    holder._current = model  # what a successful load leaves
    return holder


@pytest.fixture(scope="module")
def models(home: Home, tmp_path_factory: pytest.TempPathFactory) -> dict[str, LoadedModel]:
    folder = tmp_path_factory.mktemp("predictor-models")
    churn, fraud = home.churn_rows, home.fraud_rows
    return {
        "champion": _model(folder / "c1", CHURN_NAMES, churn, "1", seed=1, threshold=0.5),
        "challenger": _model(folder / "c2", CHURN_NAMES, churn, "2", seed=2, threshold=0.3),
        "fraud": _model(folder / "f1", FRAUD_NAMES, fraud, "4", seed=3, threshold=0.2),
        "fraud_challenger": _model(folder / "f2", FRAUD_NAMES, fraud, "5", seed=4, threshold=0.6),
    }


@pytest.fixture
def store(home: Home) -> FeatureStore:
    """The home's store as the API opens it: its reads bounded (`serving.lifespan`)."""
    store = feature_store.feature_store(home.settings)
    asyncio.run(feature_store.bound_serving_reads(store, home.settings))
    return store


@pytest.fixture
def churn_reads(store: FeatureStore) -> OnlineFeatures:
    """The churn feature reader the API builds (`serving.collaborators`)."""
    return OnlineFeatures(store, churn_model.name, ENTITY_KEY)


@pytest.fixture
def fraud_features(store: FeatureStore) -> FraudOnlineFeatures:
    """The fraud features the API builds (`serving.collaborators`)."""
    return FraudOnlineFeatures(store)


def _store_row(home: Home, customer_id: str, names: list[str] = CHURN_NAMES) -> np.ndarray:
    """The customer's row read from the store on a reader of its own (the sync path)."""
    reads = OnlineFeatures(feature_store.feature_store(home.settings), churn_model.name, ENTITY_KEY)
    return reads.row(customer_id, names)


def _started_log(folder: Path, max_spool_bytes: int = 1024 * 1024) -> PredictionLog:
    """A prediction log in `folder` (SQLite, its spool beside), its shipper idle: `_logged`
    ships what it holds."""
    folder.mkdir(parents=True)
    url = f"sqlite:///{folder / 'predictions.db'}"
    log = PredictionLog(url, folder / "spool", max_spool_bytes=max_spool_bytes, flush_s=3600)
    log.start()
    return log


@pytest.fixture
def new_log(tmp_path: Path) -> Iterator[Callable[..., PredictionLog]]:
    """Starts prediction logs in tmp_path; closes them after the test."""
    logs: list[PredictionLog] = []

    def new(max_spool_bytes: int = 1024 * 1024) -> PredictionLog:
        logs.append(_started_log(tmp_path / f"log-{len(logs)}", max_spool_bytes))
        return logs[-1]

    yield new
    for log in logs:
        log.close()


@pytest.fixture
def log(new_log: Callable[..., PredictionLog]) -> PredictionLog:
    return new_log()


@dataclass(frozen=True)
class Logged:
    """A row of the prediction log's table."""

    request_id: str
    endpoint: str
    model_name: str
    model_version: str
    entity: dict[str, Any]
    features: dict[str, float]
    score: float
    decision: bool

    @property
    def feature_values(self) -> np.ndarray:
        return np.asarray(list(self.features.values()), dtype=np.float32)


def _logged(log: PredictionLog) -> list[Logged]:
    """What the log holds, shipped now, in the order it was appended."""
    assert log.ship(), log.ship_error
    engine = log_engine(log.url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.select(predictions).order_by(predictions.c.id))
            return [
                Logged(**{name: row[name] for name in Logged.__dataclass_fields__})
                for row in rows.mappings()
            ]
    finally:
        engine.dispose()


def _churn(
    models: dict[str, LoadedModel],
    reads: OnlineFeatures,
    log: PredictionLog,
    mode: Literal["shadow", "canary"] | None = None,
    *,
    challenger: LoadedModel | None = None,
    share: float = 0.5,
) -> tuple[ChurnPredictor, Metrics]:
    metrics = Metrics()
    arm = None
    if mode is not None:
        arm = ChallengerArm(_holder(challenger or models["challenger"]), mode, share)
    return ChurnPredictor(_holder(models["champion"]), reads, metrics, log, arm), metrics


def _by_id(predictor: ChurnPredictor, customer_id: str, request_id: str = "r1") -> Any:
    context = RequestContext(request_id)
    answer = asyncio.run(predictor.predict(ChurnPredictRequest(customer_id=customer_id), context))
    return answer, context


def _feature_reads(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value(
        "mlops_feature_read_duration_seconds_count", {"model": "m"}
    )


def test_a_customer_by_id_is_scored_and_logged_by_the_champion(
    home: Home, models: dict[str, LoadedModel], churn_reads: OnlineFeatures, log: PredictionLog
) -> None:
    predictor, metrics = _churn(models, churn_reads, log)
    customer = home.customers[7]
    answer, context = _by_id(predictor, customer)
    champion = models["champion"]
    row = _store_row(home, customer)
    expected = champion.score(row)
    assert answer.churn_probability == pytest.approx(expected)
    assert answer.will_churn == (expected >= 0.5) and answer.threshold == 0.5
    assert answer.feature_source == "online_store" and answer.customer_id == customer
    assert (answer.model.name, answer.model.version) == ("m", "1")
    assert context.model_version == "1"
    [record] = _logged(log)
    assert record.request_id == "r1" and record.endpoint == CHURN_ENDPOINT
    assert (record.model_name, record.model_version) == ("m", "1")
    assert record.entity == {"customer_id": customer}
    assert list(record.features) == CHURN_NAMES
    # The float32 row the store gave, exactly.
    np.testing.assert_array_equal(record.feature_values, row)
    assert record.score == pytest.approx(expected) and record.decision == (expected >= 0.5)
    assert metrics.registry.get_sample_value("mlops_prediction_score_count", {"model": "m"}) == 1
    assert _feature_reads(metrics) == 1


def test_a_customer_the_store_does_not_hold_is_unknown_and_not_logged(
    models: dict[str, LoadedModel], churn_reads: OnlineFeatures, log: PredictionLog
) -> None:
    predictor, _ = _churn(models, churn_reads, log)
    with pytest.raises(UnknownEntity, match="no-such-customer"):
        _by_id(predictor, "no-such-customer")
    assert _logged(log) == []


def test_raw_fields_are_scored_on_the_shared_transform(
    models: dict[str, LoadedModel], churn_reads: OnlineFeatures, log: PredictionLog
) -> None:
    predictor, metrics = _churn(models, churn_reads, log)
    context = RequestContext("r2")
    request = ChurnPredictRequest(customer=RAW_CUSTOMER)  # type: ignore[arg-type]
    answer = asyncio.run(predictor.predict(request, context))
    computed = churn_features({k: np.asarray([v]) for k, v in RAW_CUSTOMER.items()})
    row = np.asarray([computed[n][0] for n in CHURN_NAMES], dtype=np.float32)
    assert _feature_reads(metrics) == 0  # the store is not read
    assert answer.feature_source == "request" and answer.customer_id is None
    assert answer.churn_probability == pytest.approx(models["champion"].score(row))
    [record] = _logged(log)
    # The float32 row the model scored, exactly (89.95 is not a float32).
    np.testing.assert_array_equal(record.feature_values, row)
    assert record.entity == {"customer_id": None}


def test_raw_fields_cannot_feed_a_model_needing_other_features(
    home: Home, churn_reads: OnlineFeatures, log: PredictionLog, tmp_path: Path
) -> None:
    names = [*CHURN_NAMES[:3], "not_a_feature"]
    x = np.column_stack([home.churn_rows[:, :3], np.arange(len(home.churn_rows))])
    other = _model(tmp_path / "o", names, x, "9", seed=5, threshold=0.5)
    predictor = ChurnPredictor(_holder(other), churn_reads, Metrics(), log)
    request = ChurnPredictRequest(customer=RAW_CUSTOMER)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="not_a_feature"):
        asyncio.run(predictor.predict(request, RequestContext("r3")))
    assert _logged(log) == []


def test_shadow_logs_the_challengers_own_score_and_answers_with_the_champion(
    home: Home, models: dict[str, LoadedModel], churn_reads: OnlineFeatures, log: PredictionLog
) -> None:
    predictor, _ = _churn(models, churn_reads, log, "shadow")
    customer = home.customers[8]
    answer, context = _by_id(predictor, customer)
    row = _store_row(home, customer)
    champion, challenger = models["champion"].score(row), models["challenger"].score(row)
    assert abs(champion - challenger) > 1e-3  # two models, two scores
    assert answer.churn_probability == pytest.approx(champion) and context.model_version == "1"
    served, shadow = _logged(log)
    assert served.model_version == "1" and SHADOW_KEY not in served.entity
    assert shadow.model_version == "2" and shadow.request_id == "r1"
    assert shadow.endpoint == CHURN_ENDPOINT and shadow.model_name == "m"
    assert shadow.entity == {"customer_id": customer, SHADOW_KEY: True}
    assert shadow.score == pytest.approx(challenger)
    assert shadow.decision == (challenger >= 0.3)
    np.testing.assert_array_equal(shadow.feature_values, row)
    assert list(shadow.features) == CHURN_NAMES


def test_no_shadow_row_when_the_challenger_cannot_stand_beside_the_champion(
    home: Home,
    models: dict[str, LoadedModel],
    churn_reads: OnlineFeatures,
    new_log: Callable[..., PredictionLog],
    tmp_path: Path,
) -> None:
    x = home.churn_rows[:, :-1]
    other_row = _model(tmp_path / "x", CHURN_NAMES[:-1], x, "3", seed=6, threshold=0.5)
    customer = home.customers[9]
    for challenger in (models["champion"], other_row):
        log = new_log()
        predictor, _ = _churn(models, churn_reads, log, "shadow", challenger=challenger)
        _by_id(predictor, customer)
        assert [r.model_version for r in _logged(log)] == ["1"]
    log = new_log()
    arm = ChallengerArm(_holder(None), "shadow", 0.5)
    predictor = ChurnPredictor(_holder(models["champion"]), churn_reads, Metrics(), log, arm)
    _by_id(predictor, customer)
    assert [r.model_version for r in _logged(log)] == ["1"]


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_the_canary_answers_its_share_and_logs_under_the_answering_version(
    home: Home,
    models: dict[str, LoadedModel],
    churn_reads: OnlineFeatures,
    log: PredictionLog,
    share: float,
) -> None:
    ids = home.customers[:20]
    predictor, _ = _churn(models, churn_reads, log, "canary", share=share)
    for customer_id in ids:
        answer, context = _by_id(predictor, customer_id, request_id=customer_id)
        expected = "2" if in_canary(customer_id, share) else "1"
        model = models["challenger" if expected == "2" else "champion"]
        row = _store_row(home, customer_id)
        assert answer.model.version == context.model_version == expected
        assert answer.churn_probability == pytest.approx(model.score(row))
        assert answer.threshold == model.threshold
    logged = _logged(log)
    assert [r.model_version for r in logged] == ["2" if in_canary(i, share) else "1" for i in ids]
    assert [r.request_id for r in logged] == ids
    assert not any(SHADOW_KEY in r.entity for r in logged)
    if share == 0.5:
        assert {r.model_version for r in logged} == {"1", "2"}


def test_a_raw_request_is_split_by_its_request_id(
    models: dict[str, LoadedModel], churn_reads: OnlineFeatures, log: PredictionLog
) -> None:
    predictor, _ = _churn(models, churn_reads, log, "canary", share=0.5)
    ids = [f"request-{i}" for i in range(12)]
    for request_id in ids:
        request = ChurnPredictRequest(customer=RAW_CUSTOMER)  # type: ignore[arg-type]
        asyncio.run(predictor.predict(request, RequestContext(request_id)))
    assert [r.model_version for r in _logged(log)] == [
        "2" if in_canary(i, 0.5) else "1" for i in ids
    ]


def _fraud(
    models: dict[str, LoadedModel],
    features: FraudOnlineFeatures,
    log: PredictionLog,
    mode: Literal["shadow", "canary"] | None = None,
    share: float = 0.5,
) -> tuple[FraudPredictor, Metrics]:
    metrics = Metrics()
    arm = None if mode is None else ChallengerArm(_holder(models["fraud_challenger"]), mode, share)
    return FraudPredictor(_holder(models["fraud"]), features, metrics, log, arm), metrics


def _payment_row(features: FraudOnlineFeatures, payment: dict[str, Any]) -> np.ndarray:
    """The payment's features from the store as it is now (read only, nothing recorded)."""
    return features.row(
        payment["customer_id"],
        payment["terminal_id"],
        payment["tx_datetime"],
        payment["amount"],
        FRAUD_NAMES,
    )


def _entries(features: FraudOnlineFeatures, card: int, terminal: int) -> Counter[tuple[Any, ...]]:
    """The card's and the terminal's state entries, read from the store."""
    customers, terminals = features.read_states([card], [terminal])
    customer, at_terminal = customers[card], terminals[terminal]
    return Counter(
        [
            *(
                ("card", t, amount, where)
                for t, amount, where in zip(
                    customer.times_ns.tolist(),
                    customer.amounts.tolist(),
                    customer.terminal_ids.tolist(),
                    strict=True,
                )
            ),
            *(
                ("terminal", t, fraud)
                for t, fraud in zip(
                    at_terminal.times_ns.tolist(), at_terminal.frauds.tolist(), strict=True
                )
            ),
        ]
    )


def test_a_payment_is_scored_on_its_history_then_added_to_it(
    home: Home,
    models: dict[str, LoadedModel],
    fraud_features: FraudOnlineFeatures,
    log: PredictionLog,
) -> None:
    payment = home.payment
    card, terminal = payment["customer_id"], payment["terminal_id"]
    before = _entries(fraud_features, card, terminal)
    row = _payment_row(fraud_features, payment)
    assert row[FRAUD_NAMES.index("customer_nb_tx_7d")] > 0  # the card has a history
    predictor, metrics = _fraud(models, fraud_features, log)
    context = RequestContext("p1")
    answer = predictor.score(FraudTransaction(**payment), context)
    expected = models["fraud"].score(row)
    # Added once, after scoring: the card's entry with its amount and terminal, the
    # terminal's with its label pending.
    when = epoch_ns(payment["tx_datetime"])
    added = _entries(fraud_features, card, terminal) - before
    assert added == Counter([("card", when, payment["amount"], terminal), ("terminal", when, 0)])
    assert answer.fraud_probability == pytest.approx(expected)
    assert answer.is_fraud == (expected >= 0.2) and answer.threshold == 0.2
    assert answer.transaction_id == payment["transaction_id"]
    assert answer.model.version == context.model_version == "4"
    [record] = _logged(log)
    assert record.endpoint == FRAUD_ENDPOINT and record.model_version == "4"
    assert record.entity == {
        "transaction_id": payment["transaction_id"],
        "customer_id": card,
        "terminal_id": terminal,
    }
    assert list(record.features) == FRAUD_NAMES
    assert record.score == pytest.approx(expected) and record.decision == (expected >= 0.2)
    # Scored on the history before it: the row read before it was added.
    np.testing.assert_array_equal(record.feature_values, row)
    assert _feature_reads(metrics) == 1


def _full(log: PredictionLog) -> PredictionLog:
    """`log` with its spool filled to its bound (its shipper idle: nothing drains it)."""
    filler = Prediction("filler", FRAUD_ENDPOINT, "m", "4", {}, ["x"], [0.0], 0.0, False)
    with pytest.raises(PredictionNotPersisted):
        for _ in range(1000):
            log.append(filler)
    assert not log.persisting and log.problem is not None
    assert log.problem.startswith("spool full")
    return log


def test_a_payment_the_log_refuses_is_not_added_to_its_history(
    home: Home,
    models: dict[str, LoadedModel],
    fraud_features: FraudOnlineFeatures,
    new_log: Callable[..., PredictionLog],
) -> None:
    # Not answered (503), so the client retries it: had it joined the card's and the
    # terminal's windows, the retry would count it twice.
    log = _full(new_log(max_spool_bytes=2048))
    refused = log.dropped["spool_full"]
    payment = {**home.payment, "transaction_id": 12}
    card, terminal = payment["customer_id"], payment["terminal_id"]
    before = _entries(fraud_features, card, terminal)
    predictor, metrics = _fraud(models, fraud_features, log)
    with pytest.raises(PredictionLogUnavailable):
        predictor.score(FraudTransaction(**payment), RequestContext("p1"))
    assert _feature_reads(metrics) == 1  # read and scored,
    assert log.dropped["spool_full"] == refused + 1  # refused by the log,
    assert _entries(fraud_features, card, terminal) == before  # and not added


def test_fraud_shadow_and_canary(
    home: Home,
    models: dict[str, LoadedModel],
    fraud_features: FraudOnlineFeatures,
    new_log: Callable[..., PredictionLog],
) -> None:
    row = _payment_row(fraud_features, home.payment)
    challenger = models["fraud_challenger"].score(row)
    log = new_log()
    predictor, _ = _fraud(models, fraud_features, log, "shadow")
    answer = predictor.score(FraudTransaction(**home.payment), RequestContext("p2"))
    assert answer.model.version == "4"
    served, shadow = _logged(log)
    assert shadow.model_version == "5" and shadow.entity[SHADOW_KEY] is True
    assert shadow.endpoint == FRAUD_ENDPOINT and shadow.request_id == "p2"
    assert shadow.score == pytest.approx(challenger) != pytest.approx(served.score)
    assert shadow.decision == (challenger >= 0.6)
    np.testing.assert_array_equal(shadow.feature_values, row)
    row = _payment_row(fraud_features, home.payment)
    challenger = models["fraud_challenger"].score(row)
    log = new_log()
    predictor, _ = _fraud(models, fraud_features, log, "canary", share=1.0)
    context = RequestContext("p3")
    answer = predictor.score(FraudTransaction(**home.payment), context)
    assert answer.model.version == context.model_version == "5" and answer.threshold == 0.6
    assert answer.fraud_probability == pytest.approx(challenger)
    assert [r.model_version for r in _logged(log)] == ["5"]


def test_the_fraud_canary_splits_by_card(
    home: Home,
    models: dict[str, LoadedModel],
    fraud_features: FraudOnlineFeatures,
    log: PredictionLog,
) -> None:
    predictor, _ = _fraud(models, fraud_features, log, "canary", share=0.5)
    cards = list(range(30))  # every card of the simulation
    for card in cards:
        payment = {**home.payment, "customer_id": card}
        predictor.score(FraudTransaction(**payment), RequestContext(f"p-{card}"))
    expected = ["5" if in_canary(str(card), 0.5) else "4" for card in cards]
    logged = _logged(log)
    assert [r.model_version for r in logged] == expected
    assert [r.entity["customer_id"] for r in logged] == cards
    assert set(expected) == {"4", "5"}


def _at_threshold(model: LoadedModel, row: np.ndarray) -> LoadedModel:
    """`model` with its threshold set to its own score of `row`."""
    meta = replace(model.bundle.meta, threshold=model.score(row))
    return replace(model, bundle=replace(model.bundle, meta=meta))


def test_a_score_equal_to_the_threshold_is_a_positive_decision(
    home: Home,
    models: dict[str, LoadedModel],
    churn_reads: OnlineFeatures,
    fraud_features: FraudOnlineFeatures,
    new_log: Callable[..., PredictionLog],
) -> None:
    customer = home.customers[5]
    row = _store_row(home, customer)
    at = {
        "champion": _at_threshold(models["champion"], row),
        "challenger": _at_threshold(models["challenger"], row),
    }
    log = new_log()
    predictor, _ = _churn(at, churn_reads, log, "shadow")
    answer, _ = _by_id(predictor, customer)
    assert answer.will_churn
    assert [r.decision for r in _logged(log)] == [True, True]
    payment = _payment_row(fraud_features, home.payment)
    fraud = {**models, "fraud": _at_threshold(models["fraud"], payment)}
    predictor_f, _ = _fraud(fraud, fraud_features, new_log())
    assert predictor_f.score(FraudTransaction(**home.payment), RequestContext("p4")).is_fraud


def test_the_feature_read_is_timed_in_seconds(
    home: Home, models: dict[str, LoadedModel], churn_reads: OnlineFeatures, log: PredictionLog
) -> None:
    predictor, metrics = _churn(models, churn_reads, log)
    _by_id(predictor, home.customers[6])
    total = metrics.registry.get_sample_value(
        "mlops_feature_read_duration_seconds_sum", {"model": "m"}
    )
    assert total is not None and 0 <= total < 1
