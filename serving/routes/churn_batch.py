"""`POST /v1/churn/predict/batch`: many customers in one request, one read, one ONNX call.

Customers by id: one online read for all of them; an id the store does not know is a
per-row error (`"error": "unknown_entity"`), not a failed request, so one stale id does
not cost the caller the other rows. Customers by raw fields: the same transforms as
training and the single-row endpoint, on all rows at once. Either way the rows go to
onnxruntime as one float32 matrix. A request with no rows or more than
`MAX_BATCH_ROWS` is refused with 422, and a body not sent as JSON with 415, before any
work is done.

Every scored row is a prediction like a single-row one, and is logged like one (the
endpoint is this route's): spooled before the answer goes out, or, if the log cannot
take them, the whole batch is a 503 `prediction_log_unavailable` and nothing is answered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Self

import numpy as np
from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool

from features.churn_transforms import churn_features
from features.input_contract import MAX_TEXT_LENGTH
from mlops.case_studies import CHURN
from mlops.prediction_log import Prediction, PredictionLog, PredictionNotPersisted
from serving.collaborators import Collaborators
from serving.context import request_context
from serving.errors import (
    FeatureStoreUnavailable,
    InvalidInput,
    ModelNotReady,
    PredictionLogUnavailable,
    error_responses,
)
from serving.json_route import JsonRoute
from serving.model_holder import LoadedModel, ModelHolder
from serving.online_features import OnlineFeatures
from serving.schemas import ChurnCustomer, ModelRef

# A request's rows are scored in one call on the event loop's worker thread: bounded so
# one request cannot hold a worker for long (1,000 rows are a few milliseconds of ONNX).
MAX_BATCH_ROWS = 1000
BATCH_ROUTE = f"{CHURN.score_route}/batch"


class ChurnBatchRequest(BaseModel):
    """Up to MAX_BATCH_ROWS customers: ids (features from the online store) or raw fields."""

    # Its examples, customers of the demo's population, are added by `serving.openapi`.
    model_config = ConfigDict(extra="forbid")

    customer_ids: list[str] | None = Field(default=None, min_length=1, max_length=MAX_BATCH_ROWS)
    customers: list[ChurnCustomer] | None = Field(
        default=None, min_length=1, max_length=MAX_BATCH_ROWS
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.customer_ids is None) == (self.customers is None):
            raise ValueError("give exactly one of customer_ids or customers")
        if self.customer_ids is not None and any(
            not 1 <= len(i) <= MAX_TEXT_LENGTH for i in self.customer_ids
        ):
            raise ValueError(f"customer ids have 1 to {MAX_TEXT_LENGTH} characters")
        return self


class ChurnBatchRow(BaseModel):
    customer_id: str | None
    churn_probability: float | None = Field(ge=0, le=1)
    will_churn: bool | None
    error: Literal["unknown_entity"] | None = None


class ChurnBatchPrediction(BaseModel):
    predictions: list[ChurnBatchRow] = Field(description="One per requested row, in order.")
    threshold: float
    feature_source: Literal["online_store", "request"]
    model: ModelRef


async def churn_predict_batch(body: ChurnBatchRequest, request: Request) -> ChurnBatchPrediction:
    """Churn probabilities for many customers; unknown ids are per-row errors."""
    collaborators: Collaborators = request.app.state.collaborators
    context = request_context(request.scope)
    request_id = context.request_id if context is not None else ""
    # Up to MAX_BATCH_ROWS rows read and scored: blocking work, kept off the event loop.
    answer = await run_in_threadpool(
        score_batch,
        body,
        collaborators.models[CHURN.name],
        collaborators.churn_features,
        BatchLog(collaborators.log, request_id),
    )
    if context is not None:
        context.model_version = answer.model.version
    return answer


@dataclass(frozen=True)
class BatchLog:
    """Where one batch request's predictions are logged, under the request's id."""

    log: PredictionLog
    request_id: str

    def record(
        self, model: LoadedModel, ids: list[str | None], rows: np.ndarray, scores: np.ndarray
    ) -> None:
        """Spool one prediction per scored row; `PredictionLogUnavailable` (503) if the log
        cannot take one, so the batch is not answered."""
        names = model.bundle.meta.feature_names
        try:
            for customer_id, row, score in zip(ids, rows, scores, strict=True):
                self.log.append(
                    Prediction(
                        request_id=self.request_id,
                        endpoint=BATCH_ROUTE,
                        model_name=model.bundle.name,
                        model_version=model.version,
                        entity={"customer_id": customer_id},
                        feature_names=names,
                        feature_values=row.tolist(),
                        score=float(score),
                        decision=bool(score >= model.threshold),
                    )
                )
        except PredictionNotPersisted as error:
            raise PredictionLogUnavailable(
                "the batch's predictions could not be logged, so it is not answered; retry shortly"
            ) from error


def score_batch(
    request: ChurnBatchRequest, holder: ModelHolder, features: OnlineFeatures, log: BatchLog
) -> ChurnBatchPrediction:
    """The batch's answer from the model `holder` serves and the online `features`; each
    scored row is logged to `log` before the answer is returned."""
    model = holder.current
    names = model.bundle.meta.feature_names
    ids: list[str | None]
    if request.customer_ids is not None:
        ids = list(request.customer_ids)
        matrix, known = features.rows(request.customer_ids, names)
        source: Literal["online_store", "request"] = "online_store"
    else:
        assert request.customers is not None  # the request model guarantees one of them
        ids = [None] * len(request.customers)
        matrix = _raw_matrix(request.customers, names)
        known = np.ones(len(ids), dtype=bool)
        source = "request"
    probabilities = np.full(len(ids), np.nan, dtype=np.float32)
    if known.any():
        probabilities[known] = model.scorer.predict_proba(matrix[known])
        if not np.isfinite(probabilities[known]).all():
            raise InvalidInput("the model gives no finite score for some rows")
        scored = [customer_id for customer_id, ok in zip(ids, known, strict=True) if ok]
        log.record(model, scored, matrix[known], probabilities[known])
    rows = [
        ChurnBatchRow(
            customer_id=customer_id,
            churn_probability=float(p) if ok else None,
            will_churn=bool(p >= model.threshold) if ok else None,
            error=None if ok else "unknown_entity",
        )
        for customer_id, p, ok in zip(ids, probabilities, known, strict=True)
    ]
    return ChurnBatchPrediction(
        predictions=rows,
        threshold=model.threshold,
        feature_source=source,
        model=ModelRef(name=model.bundle.name, version=model.bundle.version),
    )


def _raw_matrix(customers: list[ChurnCustomer], names: list[str]) -> np.ndarray:
    """The customers' features, computed by the training transforms, as float32 rows."""
    fields = ChurnCustomer.model_fields
    columns = {
        field: np.asarray(
            [getattr(c, field) if getattr(c, field) is not None else np.nan for c in customers]
        )
        for field in fields
    }
    computed = churn_features(columns)
    unknown = [n for n in names if n not in computed]
    if unknown:
        raise InvalidInput(f"the model needs features the request cannot give: {unknown}")
    matrix = np.empty((len(customers), len(names)), dtype=np.float32)
    for position, name in enumerate(names):
        matrix[:, position] = computed[name]
    return matrix


def add_churn_batch_routes(app: FastAPI) -> None:
    """Add `POST /v1/churn/predict/batch` to `app`, as the app's own `JsonRoute`.

    Its body is read as the scoring routes read theirs, with the same answers to a body
    that is not JSON (415) or does not validate (422), and no dependency graph.
    """
    app.router.add_api_route(
        BATCH_ROUTE,
        churn_predict_batch,
        methods=["POST"],
        tags=[CHURN.name],
        response_model=ChurnBatchPrediction,
        route_class_override=JsonRoute,
        responses=error_responses(
            InvalidInput, ModelNotReady, FeatureStoreUnavailable, PredictionLogUnavailable
        ),
    )
