"""The predictors on their own, fast: two small ONNX models, fake feature reads, a list as log.

Which model answers, which one scores the shadow row, what is logged under which version
and what the metrics observe, without a registry, a feature store or an HTTP client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from features.churn_transforms import CHURN_FEATURES, churn_features
from mlops.model_bundle import BundleMeta, RegisteredBundle
from mlops.onnx_scorer import OnnxScorer
from mlops.prediction_log import SHADOW_KEY, Prediction, PredictionNotPersisted
from serving.challenger import ChallengerArm, in_canary
from serving.context import RequestContext
from serving.errors import InvalidInput, PredictionLogUnavailable
from serving.fraud_features import OpenPayment
from serving.metrics import Metrics
from serving.model_holder import LoadedModel, ModelHolder
from serving.predictors import CHURN_ENDPOINT, FRAUD_ENDPOINT, ChurnPredictor, FraudPredictor
from serving.schemas import ChurnPredictRequest, FraudTransaction
from training.export import export_onnx

CHURN_NAMES = list(CHURN_FEATURES)
FRAUD_NAMES = ["amount", "customer_nb_tx_1day", "terminal_risk_7day"]
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


def _model(
    folder: Path, names: list[str], version: str, *, seed: int, threshold: float
) -> LoadedModel:
    """A logistic regression on random rows, exported and loaded as serving loads a version."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, len(names))).astype(np.float32)
    y = (x @ rng.normal(size=len(names)) > 0).astype(int)
    folder.mkdir(parents=True)
    path = export_onnx(LogisticRegression().fit(x, y), len(names), folder / "model.onnx")
    meta = BundleMeta("m", "service", names, threshold, "logistic", "sha", 0.0)
    bundle = RegisteredBundle("m", version, f"run-{version}", folder, meta)
    return LoadedModel(bundle=bundle, alias="champion", scorer=OnnxScorer(path))


def _holder(model: LoadedModel | None) -> ModelHolder:
    holder = ModelHolder("m")
    holder._current = model  # what a successful load leaves
    return holder


class ListLog:
    def __init__(self) -> None:
        self.records: list[Prediction] = []

    def append(self, prediction: Prediction) -> None:
        self.records.append(prediction)


class StoreRows:
    """The online store: one row of values per customer, in the asked order."""

    def __init__(self) -> None:
        self.reads: list[tuple[str, tuple[str, ...]]] = []

    async def row_async(self, entity_id: str, names: Sequence[str]) -> np.ndarray:
        self.reads.append((entity_id, tuple(names)))
        seed = sum(map(ord, entity_id))
        return np.random.default_rng(seed).normal(size=len(names)).astype(np.float32)


class FraudRows:
    def __init__(self) -> None:
        self.recorded: list[tuple[int, int, datetime, float]] = []
        self.read: list[tuple[Any, ...]] = []

    def row(
        self,
        customer_id: int,
        terminal_id: int,
        when: datetime,
        amount: float,
        names: Sequence[str],
    ) -> np.ndarray:
        # The payment is not in its own history when it is scored.
        assert list(names) == FRAUD_NAMES
        self.read.append((customer_id, terminal_id, when, amount, len(self.recorded)))
        return np.asarray(
            [amount, float(customer_id % 7), float(terminal_id % 5)], dtype=np.float32
        )

    def record(self, customer_id: int, terminal_id: int, when: datetime, amount: float) -> None:
        self.recorded.append((customer_id, terminal_id, when, amount))

    @contextmanager
    def payment(
        self,
        customer_id: int,
        terminal_id: int,
        when: datetime,
        amount: float,
        names: Sequence[str],
    ) -> Iterator[OpenPayment]:
        """`FraudOnlineFeatures.payment`: the row, then the append only if asked."""
        row = self.row(customer_id, terminal_id, when, amount, names)
        yield OpenPayment(row, lambda: self.record(customer_id, terminal_id, when, amount))


@pytest.fixture
def models(tmp_path: Path) -> dict[str, LoadedModel]:
    return {
        "champion": _model(tmp_path / "c1", CHURN_NAMES, "1", seed=1, threshold=0.5),
        "challenger": _model(tmp_path / "c2", CHURN_NAMES, "2", seed=2, threshold=0.3),
        "fraud": _model(tmp_path / "f1", FRAUD_NAMES, "4", seed=3, threshold=0.2),
        "fraud_challenger": _model(tmp_path / "f2", FRAUD_NAMES, "5", seed=4, threshold=0.6),
    }


def _churn(
    models: dict[str, LoadedModel],
    mode: Literal["shadow", "canary"] | None = None,
    *,
    challenger: LoadedModel | None = None,
    share: float = 0.5,
) -> tuple[ChurnPredictor, ListLog, Metrics, StoreRows]:
    log, metrics, store = ListLog(), Metrics(), StoreRows()
    arm = None
    if mode is not None:
        arm = ChallengerArm(_holder(challenger or models["challenger"]), mode, share)
    predictor = ChurnPredictor(_holder(models["champion"]), store, metrics, log, arm)  # type: ignore[arg-type]
    return predictor, log, metrics, store


def _by_id(predictor: ChurnPredictor, customer_id: str, request_id: str = "r1") -> Any:
    context = RequestContext(request_id)
    answer = asyncio.run(predictor.predict(ChurnPredictRequest(customer_id=customer_id), context))
    return answer, context


def test_a_customer_by_id_is_scored_and_logged_by_the_champion(
    models: dict[str, LoadedModel],
) -> None:
    predictor, log, metrics, store = _churn(models)
    answer, context = _by_id(predictor, "c-7")
    champion = models["champion"]
    row = asyncio.run(StoreRows().row_async("c-7", CHURN_NAMES))
    expected = champion.score(row)
    assert store.reads == [("c-7", tuple(CHURN_NAMES))]
    assert answer.churn_probability == pytest.approx(expected)
    assert answer.will_churn == (expected >= 0.5) and answer.threshold == 0.5
    assert answer.feature_source == "online_store" and answer.customer_id == "c-7"
    assert (answer.model.name, answer.model.version) == ("m", "1")
    assert context.model_version == "1"
    [record] = log.records
    assert record.request_id == "r1" and record.endpoint == CHURN_ENDPOINT
    assert (record.model_name, record.model_version) == ("m", "1")
    assert record.entity == {"customer_id": "c-7"}
    assert list(record.feature_names) == CHURN_NAMES
    np.testing.assert_allclose(record.feature_values, row)
    assert record.score == pytest.approx(expected) and record.decision == (expected >= 0.5)
    assert metrics.registry.get_sample_value("mlops_prediction_score_count", {"model": "m"}) == 1
    read = metrics.registry.get_sample_value(
        "mlops_feature_read_duration_seconds_count", {"model": "m"}
    )
    assert read == 1


def test_raw_fields_are_scored_on_the_shared_transform(models: dict[str, LoadedModel]) -> None:
    predictor, log, _, store = _churn(models)
    context = RequestContext("r2")
    request = ChurnPredictRequest(customer=RAW_CUSTOMER)  # type: ignore[arg-type]
    answer = asyncio.run(predictor.predict(request, context))
    computed = churn_features({k: np.asarray([v]) for k, v in RAW_CUSTOMER.items()})
    row = np.asarray([computed[n][0] for n in CHURN_NAMES], dtype=np.float32)
    assert store.reads == []
    assert answer.feature_source == "request" and answer.customer_id is None
    assert answer.churn_probability == pytest.approx(models["champion"].score(row))
    # The float32 row the model scored, exactly (89.95 is not a float32).
    np.testing.assert_array_equal(log.records[0].feature_values, row)
    assert log.records[0].entity == {"customer_id": None}


def test_raw_fields_cannot_feed_a_model_needing_other_features(
    models: dict[str, LoadedModel], tmp_path: Path
) -> None:
    other = _model(tmp_path / "o", [*CHURN_NAMES[:3], "not_a_feature"], "9", seed=5, threshold=0.5)
    predictor = ChurnPredictor(_holder(other), StoreRows(), Metrics(), ListLog())  # type: ignore[arg-type]
    request = ChurnPredictRequest(customer=RAW_CUSTOMER)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="not_a_feature"):
        asyncio.run(predictor.predict(request, RequestContext("r3")))


def test_shadow_logs_the_challengers_own_score_and_answers_with_the_champion(
    models: dict[str, LoadedModel],
) -> None:
    predictor, log, _, _ = _churn(models, "shadow")
    answer, context = _by_id(predictor, "c-8")
    row = asyncio.run(StoreRows().row_async("c-8", CHURN_NAMES))
    champion, challenger = models["champion"].score(row), models["challenger"].score(row)
    assert abs(champion - challenger) > 1e-3  # two models, two scores
    assert answer.churn_probability == pytest.approx(champion) and context.model_version == "1"
    served, shadow = log.records
    assert served.model_version == "1" and SHADOW_KEY not in served.entity
    assert shadow.model_version == "2" and shadow.request_id == "r1"
    assert shadow.endpoint == CHURN_ENDPOINT and shadow.model_name == "m"
    assert shadow.entity == {"customer_id": "c-8", SHADOW_KEY: True}
    assert shadow.score == pytest.approx(challenger)
    assert shadow.decision == (challenger >= 0.3)
    np.testing.assert_allclose(shadow.feature_values, row)
    assert list(shadow.feature_names) == CHURN_NAMES


def test_no_shadow_row_when_the_challenger_cannot_stand_beside_the_champion(
    models: dict[str, LoadedModel], tmp_path: Path
) -> None:
    other_row = _model(tmp_path / "x", CHURN_NAMES[:-1], "3", seed=6, threshold=0.5)
    for challenger in (models["champion"], other_row):
        predictor, log, _, _ = _churn(models, "shadow", challenger=challenger)
        _by_id(predictor, "c-9")
        assert [r.model_version for r in log.records] == ["1"]
    log = ListLog()
    arm = ChallengerArm(_holder(None), "shadow", 0.5)
    predictor = ChurnPredictor(_holder(models["champion"]), StoreRows(), Metrics(), log, arm)  # type: ignore[arg-type]
    _by_id(predictor, "c-9")
    assert [r.model_version for r in log.records] == ["1"]


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_the_canary_answers_its_share_and_logs_under_the_answering_version(
    models: dict[str, LoadedModel], share: float
) -> None:
    ids = [f"c-{i}" for i in range(20)]
    predictor, log, _, _ = _churn(models, "canary", share=share)
    for customer_id in ids:
        answer, context = _by_id(predictor, customer_id, request_id=customer_id)
        expected = "2" if in_canary(customer_id, share) else "1"
        model = models["challenger" if expected == "2" else "champion"]
        row = asyncio.run(StoreRows().row_async(customer_id, CHURN_NAMES))
        assert answer.model.version == context.model_version == expected
        assert answer.churn_probability == pytest.approx(model.score(row))
        assert answer.threshold == model.threshold
    assert [r.model_version for r in log.records] == [
        "2" if in_canary(i, share) else "1" for i in ids
    ]
    assert not any(SHADOW_KEY in r.entity for r in log.records)
    if share == 0.5:
        assert {r.model_version for r in log.records} == {"1", "2"}


def test_a_raw_request_is_split_by_its_request_id(models: dict[str, LoadedModel]) -> None:
    predictor, log, _, _ = _churn(models, "canary", share=0.5)
    ids = [f"request-{i}" for i in range(12)]
    for request_id in ids:
        request = ChurnPredictRequest(customer=RAW_CUSTOMER)  # type: ignore[arg-type]
        asyncio.run(predictor.predict(request, RequestContext(request_id)))
    assert [r.model_version for r in log.records] == [
        "2" if in_canary(i, 0.5) else "1" for i in ids
    ]


def _fraud(
    models: dict[str, LoadedModel],
    mode: Literal["shadow", "canary"] | None = None,
    share: float = 0.5,
) -> tuple[FraudPredictor, ListLog, FraudRows]:
    log, rows = ListLog(), FraudRows()
    arm = None if mode is None else ChallengerArm(_holder(models["fraud_challenger"]), mode, share)
    predictor = FraudPredictor(_holder(models["fraud"]), rows, Metrics(), log, arm)  # type: ignore[arg-type]
    return predictor, log, rows


PAYMENT: dict[str, Any] = {
    "transaction_id": 11,
    "customer_id": 3,
    "terminal_id": 8,
    "amount": 42.5,
    "tx_datetime": datetime(2024, 5, 1, 12, tzinfo=UTC),
}


def test_a_payment_is_scored_on_its_history_then_added_to_it(
    models: dict[str, LoadedModel],
) -> None:
    predictor, log, rows = _fraud(models)
    context = RequestContext("p1")
    answer = predictor.score(FraudTransaction(**PAYMENT), context)
    row = np.asarray([42.5, 3.0, 3.0], dtype=np.float32)
    expected = models["fraud"].score(row)
    assert rows.read == [(3, 8, PAYMENT["tx_datetime"], 42.5, 0)]
    assert rows.recorded == [(3, 8, PAYMENT["tx_datetime"], 42.5)]
    assert answer.fraud_probability == pytest.approx(expected)
    assert answer.is_fraud == (expected >= 0.2) and answer.threshold == 0.2
    assert answer.transaction_id == 11 and answer.model.version == context.model_version == "4"
    [record] = log.records
    assert record.endpoint == FRAUD_ENDPOINT and record.model_version == "4"
    assert record.entity == {"transaction_id": 11, "customer_id": 3, "terminal_id": 8}
    assert record.score == pytest.approx(expected) and record.decision == (expected >= 0.2)
    np.testing.assert_allclose(record.feature_values, row)


class RefusingLog:
    """A prediction log whose spool is full: it takes nothing."""

    def append(self, prediction: Prediction) -> None:
        raise PredictionNotPersisted("spool full")


def test_a_payment_the_log_refuses_is_not_added_to_its_history(
    models: dict[str, LoadedModel],
) -> None:
    # Not answered (503), so the client retries it: had it joined the card's and the
    # terminal's windows, the retry would count it twice.
    rows = FraudRows()
    predictor = FraudPredictor(_holder(models["fraud"]), rows, Metrics(), RefusingLog())  # type: ignore[arg-type]
    with pytest.raises(PredictionLogUnavailable):
        predictor.score(FraudTransaction(**PAYMENT), RequestContext("p1"))
    assert len(rows.read) == 1
    assert rows.recorded == []


def test_fraud_shadow_and_canary(models: dict[str, LoadedModel]) -> None:
    row = np.asarray([42.5, 3.0, 3.0], dtype=np.float32)
    challenger = models["fraud_challenger"].score(row)
    predictor, log, _ = _fraud(models, "shadow")
    answer = predictor.score(FraudTransaction(**PAYMENT), RequestContext("p2"))
    assert answer.model.version == "4"
    served, shadow = log.records
    assert shadow.model_version == "5" and shadow.entity[SHADOW_KEY] is True
    assert shadow.endpoint == FRAUD_ENDPOINT
    assert shadow.score == pytest.approx(challenger) != pytest.approx(served.score)
    assert shadow.decision == (challenger >= 0.6)
    predictor, log, _ = _fraud(models, "canary", share=1.0)
    context = RequestContext("p3")
    answer = predictor.score(FraudTransaction(**PAYMENT), context)
    assert answer.model.version == context.model_version == "5" and answer.threshold == 0.6
    assert answer.fraud_probability == pytest.approx(challenger)
    assert [r.model_version for r in log.records] == ["5"]


def test_the_fraud_canary_splits_by_card(models: dict[str, LoadedModel]) -> None:
    predictor, log, _ = _fraud(models, "canary", share=0.5)
    cards = list(range(30))
    for card in cards:
        predictor.score(FraudTransaction(**{**PAYMENT, "customer_id": card}), RequestContext("p"))
    expected = ["5" if in_canary(str(card), 0.5) else "4" for card in cards]
    assert [r.model_version for r in log.records] == expected
    assert set(expected) == {"4", "5"}


def _at_threshold(model: LoadedModel, row: np.ndarray) -> LoadedModel:
    """`model` with its threshold set to its own score of `row`."""
    meta = replace(model.bundle.meta, threshold=model.score(row))
    return replace(model, bundle=replace(model.bundle, meta=meta))


def test_a_score_equal_to_the_threshold_is_a_positive_decision(
    models: dict[str, LoadedModel],
) -> None:
    row = asyncio.run(StoreRows().row_async("c-5", CHURN_NAMES))
    at = {
        "champion": _at_threshold(models["champion"], row),
        "challenger": _at_threshold(models["challenger"], row),
    }
    predictor, log, _, _ = _churn(at, "shadow")
    answer, _ = _by_id(predictor, "c-5")
    assert answer.will_churn
    assert [r.decision for r in log.records] == [True, True]
    payment = np.asarray([42.5, 3.0, 3.0], dtype=np.float32)
    fraud = {**models, "fraud": _at_threshold(models["fraud"], payment)}
    predictor_f, _, _ = _fraud(fraud)
    assert predictor_f.score(FraudTransaction(**PAYMENT), RequestContext("p4")).is_fraud


def test_the_feature_read_is_timed_in_seconds(models: dict[str, LoadedModel]) -> None:
    predictor, _, metrics, _ = _churn(models)
    _by_id(predictor, "c-6")
    total = metrics.registry.get_sample_value(
        "mlops_feature_read_duration_seconds_sum", {"model": "m"}
    )
    assert total is not None and 0 <= total < 1
