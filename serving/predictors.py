"""The scoring behind each endpoint, as plain classes: routes only hand them the request.

Each predictor takes the current model, reads or computes the features, scores them,
observes the score and the feature read in the metrics, and spools the prediction for
the prediction log, keyed by the request id, before the answer goes out. A prediction
the log cannot persist is not answered: 503 `prediction_log_unavailable` (a client may
retry it; an answer the log then loses would break the promise that every answer is
logged). A shadow prediction the log cannot take is counted and skipped: it was never
answered.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Mapping
from typing import Literal

import numpy as np

from features.churn_transforms import churn_features
from mlops.case_studies import CHURN, FRAUD
from mlops.prediction_log import SHADOW_KEY, Prediction, PredictionLog, PredictionNotPersisted
from serving.challenger import ChallengerArm, in_canary
from serving.context import RequestContext
from serving.errors import InvalidInput, PredictionLogUnavailable
from serving.fraud_features import FraudOnlineFeatures
from serving.metrics import Metrics
from serving.model_holder import LoadedModel, ModelHolder
from serving.online_features import OnlineFeatures
from serving.schemas import (
    ChurnPrediction,
    ChurnPredictRequest,
    FraudScore,
    FraudTransaction,
    ModelRef,
)

CHURN_ENDPOINT = CHURN.score_route
FRAUD_ENDPOINT = FRAUD.score_route


class _Predictor:
    def __init__(
        self,
        holder: ModelHolder,
        metrics: Metrics,
        log: PredictionLog,
        challenger: ChallengerArm | None = None,
    ) -> None:
        self.holder = holder
        self.challenger = challenger
        self._log = log
        # Children bound once: a label lookup per request is a lock and a dict lookup.
        self._feature_read_seconds = metrics.feature_read_seconds.labels(holder.name)
        self._scores = metrics.scores.labels(holder.name)

    def _model(self, context: RequestContext) -> LoadedModel:
        model = self.holder.current
        context.model_version = model.version
        return model

    def _answering(self, champion: LoadedModel, entity_id: str) -> LoadedModel:
        """The canary's challenger for the entities in its share, else the champion."""
        arm = self.challenger
        if arm is None or arm.mode != "canary":
            return champion
        challenger = arm.model_beside(champion)
        if challenger is None or not in_canary(entity_id, arm.canary_share):
            return champion
        return challenger

    def _shadow(
        self,
        context: RequestContext,
        endpoint: str,
        answered_by: LoadedModel,
        entity: Mapping[str, object],
        row: np.ndarray,
    ) -> None:
        """Score the row with the challenger too and log it as a shadow prediction."""
        arm = self.challenger
        if arm is None or arm.mode != "shadow":
            return
        challenger = arm.model_beside(answered_by)
        if challenger is None:
            return
        score = challenger.score(row)
        # Never answered, so nothing to refuse: the log counts it and says why it failed.
        with contextlib.suppress(PredictionNotPersisted):
            self._log.append(
                Prediction(
                    request_id=context.request_id,
                    endpoint=endpoint,
                    model_name=challenger.bundle.name,
                    model_version=challenger.version,
                    entity={**entity, SHADOW_KEY: True},
                    feature_names=challenger.bundle.meta.feature_names,
                    feature_values=row.tolist(),
                    score=score,
                    decision=score >= challenger.threshold,
                )
            )

    def _timed_read(self, started: float) -> None:
        self._feature_read_seconds.observe(time.perf_counter() - started)

    def _record(
        self,
        context: RequestContext,
        endpoint: str,
        model: LoadedModel,
        entity: Mapping[str, object],
        row: np.ndarray,
        score: float,
        decision: bool,
    ) -> None:
        self._scores.observe(score)
        prediction = Prediction(
            request_id=context.request_id,
            endpoint=endpoint,
            model_name=model.bundle.name,
            model_version=model.version,
            entity=entity,
            feature_names=model.bundle.meta.feature_names,
            feature_values=row.tolist(),
            score=score,
            decision=decision,
        )
        try:
            self._log.append(prediction)
        except PredictionNotPersisted as error:
            raise PredictionLogUnavailable(
                "the prediction could not be logged, so it is not answered; retry shortly"
            ) from error


class ChurnPredictor(_Predictor):
    """Scores a customer, by id from the online store or from the request's raw fields."""

    def __init__(
        self,
        holder: ModelHolder,
        features: OnlineFeatures,
        metrics: Metrics,
        log: PredictionLog,
        challenger: ChallengerArm | None = None,
    ) -> None:
        super().__init__(holder, metrics, log, challenger)
        self.features = features

    async def predict(
        self, request: ChurnPredictRequest, context: RequestContext
    ) -> ChurnPrediction:
        """Churn probability and decision for a customer id or a customer's raw fields.

        Runs on the event loop: the feature read is async or a local file read, scoring
        one row takes microseconds, and the prediction log is a queue.
        """
        model = self._model(context)
        if self.challenger is not None:
            model = self._answering(model, request.customer_id or context.request_id)
            context.model_version = model.version
        names = model.bundle.meta.feature_names
        if request.customer_id is not None:
            started = time.perf_counter()
            row = await self.features.row_async(request.customer_id, names)
            self._timed_read(started)
            source: Literal["online_store", "request"] = "online_store"
        else:
            assert request.customer is not None  # the request model guarantees one of them
            raw = {k: np.asarray([v if v is not None else np.nan]) for k, v in request.customer}
            computed = churn_features(raw)
            unknown = [n for n in names if n not in computed]
            if unknown:
                raise InvalidInput(f"the model needs features the request cannot give: {unknown}")
            row = np.fromiter((computed[n][0] for n in names), dtype=np.float32, count=len(names))
            source = "request"
        probability = finite_score(model.score(row))
        decision = probability >= model.threshold
        entity = {"customer_id": request.customer_id}
        self._record(context, CHURN_ENDPOINT, model, entity, row, probability, decision)
        if self.challenger is not None:
            self._shadow(context, CHURN_ENDPOINT, model, entity, row)
        return ChurnPrediction(
            customer_id=request.customer_id,
            churn_probability=probability,
            will_churn=decision,
            threshold=model.threshold,
            feature_source=source,
            model=ModelRef(name=model.bundle.name, version=model.version),
        )


class FraudPredictor(_Predictor):
    """Scores a payment from the card's and terminal's windows, then adds it to them."""

    def __init__(
        self,
        holder: ModelHolder,
        features: FraudOnlineFeatures,
        metrics: Metrics,
        log: PredictionLog,
        challenger: ChallengerArm | None = None,
    ) -> None:
        super().__init__(holder, metrics, log, challenger)
        self.features = features

    def score(self, tx: FraudTransaction, context: RequestContext) -> FraudScore:
        """Score a payment as it happens, then add it to the card's and terminal's windows."""
        model = self._model(context)
        if self.challenger is not None:
            model = self._answering(model, str(tx.customer_id))
            context.model_version = model.version
        started = time.perf_counter()
        entity = {
            "transaction_id": tx.transaction_id,
            "customer_id": tx.customer_id,
            "terminal_id": tx.terminal_id,
        }
        # One read of the card's and the terminal's states, held (under the features' lock)
        # until the payment is appended to them.
        with self.features.payment(
            tx.customer_id,
            tx.terminal_id,
            tx.tx_datetime,
            tx.amount,
            model.bundle.meta.feature_names,
        ) as payment:
            row = payment.row
            self._timed_read(started)
            probability = finite_score(model.score(row))
            decision = probability >= model.threshold
            # Logged before it joins the windows: a payment the log refuses is not answered
            # (503) and will be sent again, and must not be in the windows when it is.
            self._record(context, FRAUD_ENDPOINT, model, entity, row, probability, decision)
            payment.record()
        if self.challenger is not None:
            self._shadow(context, FRAUD_ENDPOINT, model, entity, row)
        return FraudScore(
            transaction_id=tx.transaction_id,
            fraud_probability=probability,
            is_fraud=decision,
            threshold=model.threshold,
            model=ModelRef(name=model.bundle.name, version=model.version),
        )


def finite_score(probability: float) -> float:
    """`probability`, or `InvalidInput` (422) when the model gives none for these features.

    The input contract keeps such features out; this keeps a NaN out of the answer and the
    prediction log should a model still give one (a NaN once failed a whole log batch).
    """
    if not math.isfinite(probability):
        raise InvalidInput("the model gives no finite score for these fields")
    return probability
