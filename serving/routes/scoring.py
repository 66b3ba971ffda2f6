"""The scoring routes, the hot path: `POST` a case study's score route, get its answer.

They are `JsonRoute`s: a request is handled without FastAPI's dependency graph, so each
endpoint takes its predictor from the app state itself and hands it the request. They
are the app's own routes, not an included router's: FastAPI (0.140) rebuilds an included
route's request handler on every request.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool

from mlops.case_studies import CHURN, FRAUD
from serving.context import RequestContext, request_context
from serving.errors import (
    ApiError,
    FeatureStoreUnavailable,
    InvalidInput,
    ModelNotReady,
    PredictionLogUnavailable,
    UnknownEntity,
    error_responses,
)
from serving.json_route import JsonRoute
from serving.predictors import ChurnPredictor, FraudPredictor
from serving.schemas import ChurnPrediction, ChurnPredictRequest, FraudScore, FraudTransaction

# What the predictors may answer besides their model; the app's OpenAPI document adds what
# every route with a JSON body may answer (`serving.openapi`).
CHURN_ERRORS: tuple[type[ApiError], ...] = (
    UnknownEntity,
    InvalidInput,
    ModelNotReady,
    FeatureStoreUnavailable,
    PredictionLogUnavailable,
)
FRAUD_ERRORS: tuple[type[ApiError], ...] = (
    InvalidInput,
    ModelNotReady,
    FeatureStoreUnavailable,
    PredictionLogUnavailable,
)


async def churn_predict(body: ChurnPredictRequest, request: Request) -> ChurnPrediction:
    """Churn probability and decision for a customer id or a customer's raw fields."""
    predictor: ChurnPredictor = request.app.state.churn_predictor
    return await predictor.predict(body, _context(request))


async def fraud_score(body: FraudTransaction, request: Request) -> FraudScore:
    """Score a payment as it happens, then add it to the card's and terminal's windows."""
    predictor: FraudPredictor = request.app.state.fraud_predictor
    if predictor.features.local:
        # On the event loop: a local file's read and write take a fraction of a millisecond,
        # less than the trip to the thread pool and back, and nothing awaits in between, so
        # no other request of this process comes between the read and the append.
        return predictor.score(body, _context(request))
    # In the thread pool: a network store's calls block, under the features' lock.
    return await run_in_threadpool(predictor.score, body, _context(request))


def add_scoring_routes(app: FastAPI) -> None:
    """Add each case study's score route to `app`, as the app's own `JsonRoute`."""
    for study, endpoint, errors in (
        (CHURN, churn_predict, CHURN_ERRORS),
        (FRAUD, fraud_score, FRAUD_ERRORS),
    ):
        app.router.add_api_route(
            study.score_route,
            endpoint,
            methods=["POST"],
            tags=[study.name],
            route_class_override=JsonRoute,
            responses=error_responses(*errors),
        )


def _context(request: Request) -> RequestContext:
    context = request_context(request.scope)
    assert context is not None, "the app is built with ObservedRequests outermost"
    return context
