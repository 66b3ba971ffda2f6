"""The prediction API, built by a factory from its collaborators.

Churn hot path: validate the request -> one online read (or the request's raw fields
through the same transforms as training) -> float32 row -> onnxruntime -> response.
Fraud hot path: validate the transaction -> one online read of the card's and the
terminal's histories -> the window features at the transaction's time -> onnxruntime ->
response, and the transaction is appended to both histories online.
No pandas, no native model, no pickle on the request path. Every prediction is queued
for the prediction log, written by a background thread.

Around every request (`serving.middleware`): a request id, a JSON log line and metrics
(`GET /metrics`), a body size limit (413) and a concurrency limit that sheds load (429).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from features.churn_frames import ENTITY_KEY
from features.feature_repo.churn import churn_model
from mlops.monitoring_results import MonitoringCollector
from mlops.names import CHALLENGER
from mlops.prediction_log import PredictionLog
from mlops.settings import Settings
from serving.challenger import ChallengerArm
from serving.context import RequestContext, request_context
from serving.deps import (
    AdminDep,
    ChurnFeaturesDep,
    ChurnModelDep,
    FraudFeaturesDep,
    FraudModelDep,
)
from serving.errors import install_error_handlers
from serving.fraud_features import FraudOnlineFeatures
from serving.json_route import JsonRoute
from serving.metrics import Metrics
from serving.middleware import AccessLog, BoundedRequests, ObservedRequests
from serving.model_holder import LoadedModel, ModelHolder
from serving.online_features import OnlineFeatures
from serving.predictors import CHURN_ENDPOINT, FRAUD_ENDPOINT, ChurnPredictor, FraudPredictor
from serving.routes.churn_batch import router as churn_batch_router
from serving.routes.report_pages import router as report_pages_router
from serving.schemas import (
    ChurnPrediction,
    ChurnPredictRequest,
    FraudScore,
    FraudTransaction,
    ModelInfo,
    ReloadOutcome,
)

logger = logging.getLogger("serving")

GIL_SWITCH_INTERVAL_S = 0.0005


def create_app(
    settings: Settings,
    churn_model_holder: ModelHolder | None = None,
    churn_features_client: OnlineFeatures | None = None,
    fraud_model_holder: ModelHolder | None = None,
    fraud_features_client: FraudOnlineFeatures | None = None,
    prediction_log: PredictionLog | None = None,
) -> FastAPI:
    """Build the API. Collaborators not given are built from settings at startup.

    The app starts the prediction log at startup and closes it at shutdown, writing what
    is queued, whether it built the log or was given it.
    """
    metrics = Metrics()
    access = AccessLog(flush_s=settings.access_log_flush_s)
    # The monitoring flow's latest figures (drift, decisions) on this API's /metrics, so
    # the one scrape Prometheus makes carries them; the collector only reads small files.
    metrics.registry.register(MonitoringCollector(settings.monitoring_dir))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        churn = churn_model_holder or ModelHolder(settings.churn_model_name)
        fraud = fraud_model_holder or ModelHolder(settings.fraud_model_name)
        # Only the models this process serves are loaded and followed: a churn-only
        # replica holds no fraud session and polls no fraud alias.
        served = [
            h for name, h in (("churn", churn), ("fraud", fraud)) if name in settings.served_models
        ]
        for holder in served:
            if not holder.ready:
                holder.load_from_registry(settings)
        if churn_features_client is None or fraud_features_client is None:
            from features.store import bound_serving_reads, feature_store

            store = feature_store(settings)
            await bound_serving_reads(store, settings)
        churn_features = churn_features_client or OnlineFeatures(
            store, churn_model.name, ENTITY_KEY
        )
        fraud_features = fraud_features_client or FraudOnlineFeatures(store)
        log = prediction_log or PredictionLog(
            settings.prediction_log_uri,
            capacity=settings.prediction_log_capacity,
            flush_s=settings.prediction_log_flush_s,
        )
        log.start()
        metrics.watch(log, (churn, fraud))
        # Online experiments: a second holder per model follows `challenger` (mode not off).
        arms: dict[str, ChallengerArm | None] = {"churn": None, "fraud": None}
        if settings.challenger_mode != "off":
            for key, holder in (("churn", churn), ("fraud", fraud)):
                if key in settings.served_models:
                    challenger = ModelHolder(holder.name, alias=CHALLENGER)
                    challenger.load_from_registry(settings)  # none yet: the champion only
                    arms[key] = ChallengerArm(
                        challenger, settings.challenger_mode, settings.canary_share
                    )
        app.state.challengers = arms
        app.state.churn_model, app.state.churn_features = churn, churn_features
        app.state.fraud_model, app.state.fraud_features = fraud, fraud_features
        app.state.churn_predictor = ChurnPredictor(
            churn, churn_features, metrics, log, arms["churn"]
        )
        app.state.fraud_predictor = FraudPredictor(
            fraud, fraud_features, metrics, log, arms["fraud"]
        )
        followed = [*served, *(arm.holder for arm in arms.values() if arm is not None)]
        # Everything loaded so far (Feast, pandas, the registry, the ONNX sessions) lives
        # as long as the process: frozen, the cyclic collector's full collections, which
        # pause every request, no longer walk those objects.
        gc.freeze()
        # The prediction log's writer thread takes the GIL for a few ms a second; a request
        # on the event loop waits for it up to the switch interval (5 ms by default) each
        # time. At 0.5 ms the p99 at one connection fell from 6-8 ms to 3.2-3.7 ms here.
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        followers = (
            [asyncio.create_task(_follow_alias(h, settings)) for h in followed]
            if settings.model_refresh_s > 0
            else []
        )
        background = [*followers, asyncio.create_task(access.flush_periodically())]
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            access.flush()
            sys.setswitchinterval(switch_interval)
            # Off the event loop: writing the last batch may take a moment.
            await asyncio.to_thread(log.close)
            metrics.unwatch()

    app = FastAPI(
        title="MLOps platform prediction API",
        version="0.1.0",
        description="Churn and fraud predictions from the registry's champion models, "
        "served with ONNX.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    _add_scoring_routes(app)
    app.include_router(churn_batch_router)
    app.include_router(report_pages_router)
    # Added last, so outermost: its id, log line and metrics cover the 413s and 429s too.
    app.add_middleware(
        BoundedRequests,
        max_body_bytes=settings.max_body_bytes,
        max_concurrent=settings.max_concurrent_requests,
    )
    app.add_middleware(ObservedRequests, metrics=metrics, access=access)

    @app.get("/health/live", tags=["health"])
    def live() -> dict[str, str]:
        """The process is up. Depends on nothing else."""
        return {"status": "ok"}

    @app.get("/health/ready", tags=["health"])
    def ready(
        churn: ChurnModelDep,
        churn_features: ChurnFeaturesDep,
        fraud: FraudModelDep,
        fraud_features: FraudFeaturesDep,
    ) -> JSONResponse:
        """Ready when every served model is loaded and its online features answer."""
        both: dict[str, tuple[ModelHolder, OnlineFeatures | FraudOnlineFeatures]] = {
            "churn": (churn, churn_features),
            "fraud": (fraud, fraud_features),
        }
        served = {name: both[name] for name in settings.served_models}
        checks: dict[str, bool] = {}
        for name, (holder, features) in served.items():
            checks[f"{name}_model"] = holder.ready
            checks[f"{name}_features"] = features.ping()
        body: dict[str, Any] = {"ready": all(checks.values()), "checks": checks}
        errors = {name: h.last_error for name, (h, _) in served.items() if h.last_error}
        if errors:
            body["model_errors"] = errors
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        """Prometheus metrics of this API instance."""
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/churn/model", response_model=ModelInfo, tags=["churn"])
    def churn_model_info(holder: ChurnModelDep) -> ModelInfo:
        """The served churn model: version, features, threshold and test metrics."""
        return _model_info(holder.current)

    @app.get("/v1/fraud/model", response_model=ModelInfo, tags=["fraud"])
    def fraud_model_info(holder: FraudModelDep) -> ModelInfo:
        """The served fraud model: version, features, cost-chosen threshold, test metrics."""
        return _model_info(holder.current)

    @app.post("/admin/reload", tags=["admin"], dependencies=[AdminDep])
    async def admin_reload(churn: ChurnModelDep, fraud: FraudModelDep) -> dict[str, ReloadOutcome]:
        """Follow the champion aliases now, without waiting for the next refresh."""
        holders = {"churn": churn, "fraud": fraud}
        served = [holders[name] for name in settings.served_models]
        # Downloading and checking a model is blocking work: keep it off the event loop.
        return await asyncio.to_thread(_reload, served, settings)

    return app


def _add_scoring_routes(app: FastAPI) -> None:
    """The scoring routes: the hot path. A `JsonRoute` handles a request without FastAPI's
    dependency graph, so these take their predictor from the app state themselves.

    They are the app's own routes, not an included router's: FastAPI (0.140) rebuilds an
    included route's request handler on every request.
    """

    async def churn_predict(body: ChurnPredictRequest, request: Request) -> ChurnPrediction:
        """Churn probability and decision for a customer id or a customer's raw fields."""
        predictor: ChurnPredictor = request.app.state.churn_predictor
        return await predictor.predict(body, _context(request))

    async def fraud_score(body: FraudTransaction, request: Request) -> FraudScore:
        """Score a payment as it happens, then add it to the card's and terminal's windows."""
        predictor: FraudPredictor = request.app.state.fraud_predictor
        # In the thread pool: recording the payment writes both states under a lock.
        return await run_in_threadpool(predictor.score, body, _context(request))

    for path, endpoint, tag in (
        (CHURN_ENDPOINT, churn_predict, "churn"),
        (FRAUD_ENDPOINT, fraud_score, "fraud"),
    ):
        app.router.add_api_route(
            path, endpoint, methods=["POST"], tags=[tag], route_class_override=JsonRoute
        )


def _context(request: Request) -> RequestContext:
    context = request_context(request.scope)
    assert context is not None, "the app is built with ObservedRequests outermost"
    return context


def _model_info(model: LoadedModel) -> ModelInfo:
    meta = model.bundle.meta
    return ModelInfo(
        name=model.bundle.name,
        version=model.bundle.version,
        alias=model.alias,
        candidate=meta.candidate,
        feature_service=meta.feature_service,
        features=meta.feature_names,
        threshold=meta.threshold,
        onnx_sha256=meta.onnx_sha256,
        test_metrics=meta.test_metrics,
    )


def _reload(holders: list[ModelHolder], settings: Settings) -> dict[str, ReloadOutcome]:
    outcomes = {}
    for holder in holders:
        changed = holder.refresh(settings)
        outcomes[holder.name] = ReloadOutcome(
            version=holder.current.version if holder.ready else None,
            changed=changed,
            error=holder.last_error,
        )
        if changed:
            logger.info("reload: now serving %s v%s", holder.name, holder.current.version)
    return outcomes


async def _follow_alias(holder: ModelHolder, settings: Settings) -> None:
    """Poll the alias; a new champion is loaded beside the old one and swapped in."""
    while True:
        await asyncio.sleep(settings.model_refresh_s)
        # Downloading and checking a model is blocking work: keep it off the event loop.
        if await asyncio.to_thread(holder.refresh, settings):
            logger.info("now serving %s v%s", holder.name, holder.current.version)
        elif holder.last_error:
            logger.warning("keeping the current model: %s", holder.last_error)
