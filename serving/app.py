"""The prediction API, built by a factory from its collaborators.

Churn hot path: validate the request -> one online read (or the request's raw fields
through the same transforms as training) -> float32 row -> onnxruntime -> response.
Fraud hot path: validate the transaction -> one online read of the card's and the
terminal's histories -> the window features at the transaction's time -> onnxruntime ->
response, and the transaction is appended to both histories online.
No pandas, no native model, no pickle on the request path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import numpy as np
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from features.churn_frames import ENTITY_KEY
from features.churn_transforms import churn_features
from features.feature_repo.churn import churn_model
from mlops.settings import Settings
from serving.churn_batch import router as churn_batch_router
from serving.deps import ChurnFeaturesDep, ChurnModelDep, FraudFeaturesDep, FraudModelDep
from serving.errors import InvalidInput, install_error_handlers
from serving.fraud_features import FraudOnlineFeatures
from serving.model_holder import LoadedModel, ModelHolder
from serving.online_features import OnlineFeatures
from serving.schemas import (
    ChurnPrediction,
    ChurnPredictRequest,
    FraudScore,
    FraudTransaction,
    ModelInfo,
    ModelRef,
)


def create_app(
    settings: Settings,
    churn_model_holder: ModelHolder | None = None,
    churn_features_client: OnlineFeatures | None = None,
    fraud_model_holder: ModelHolder | None = None,
    fraud_features_client: FraudOnlineFeatures | None = None,
) -> FastAPI:
    """Build the API. Collaborators not given are built from settings at startup."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        churn = churn_model_holder or ModelHolder(settings.churn_model_name)
        fraud = fraud_model_holder or ModelHolder(settings.fraud_model_name)
        for holder in (churn, fraud):
            if not holder.ready:
                holder.load_from_registry(settings)
        if churn_features_client is None or fraud_features_client is None:
            from features.store import feature_store

            store = feature_store(settings)
        app.state.churn_model = churn
        app.state.churn_features = churn_features_client or OnlineFeatures(
            store, churn_model.name, ENTITY_KEY
        )
        app.state.fraud_model = fraud
        app.state.fraud_features = fraud_features_client or FraudOnlineFeatures(store)
        followers = (
            [asyncio.create_task(_follow_alias(h, settings)) for h in (churn, fraud)]
            if settings.model_refresh_s > 0
            else []
        )
        yield
        for follower in followers:
            follower.cancel()

    app = FastAPI(
        title="MLOps platform prediction API",
        version="0.1.0",
        description="Churn predictions from the registry's champion model, served with ONNX.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(churn_batch_router)

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
        """Ready when every served model is loaded and the online store answers."""
        both: dict[str, tuple[ModelHolder, OnlineFeatures | FraudOnlineFeatures]] = {
            "churn": (churn, churn_features),
            "fraud": (fraud, fraud_features),
        }
        served = {name: both[name] for name in settings.served_models}
        checks = {f"{name}_model": holder.ready for name, (holder, _) in served.items()}
        checks["feature_store"] = all(features.ping() for _, features in served.values())
        body: dict[str, Any] = {"ready": all(checks.values()), "checks": checks}
        errors = {name: h.last_error for name, (h, _) in served.items() if h.last_error}
        if errors:
            body["model_errors"] = errors
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    @app.get("/v1/churn/model", response_model=ModelInfo, tags=["churn"])
    def churn_model_info(holder: ChurnModelDep) -> ModelInfo:
        """The served churn model: version, features, threshold and test metrics."""
        return _model_info(holder.current)

    @app.post("/v1/churn/predict", response_model=ChurnPrediction, tags=["churn"])
    def churn_predict(
        request: ChurnPredictRequest, holder: ChurnModelDep, features: ChurnFeaturesDep
    ) -> ChurnPrediction:
        """Churn probability and decision for a customer id or a customer's raw fields."""
        model = holder.current
        names = model.bundle.meta.feature_names
        if request.customer_id is not None:
            row = features.row(request.customer_id, names)
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
        probability = model.score(row)
        return ChurnPrediction(
            customer_id=request.customer_id,
            churn_probability=probability,
            will_churn=probability >= model.threshold,
            threshold=model.threshold,
            feature_source=source,
            model=ModelRef(name=model.bundle.name, version=model.bundle.version),
        )

    @app.get("/v1/fraud/model", response_model=ModelInfo, tags=["fraud"])
    def fraud_model_info(holder: FraudModelDep) -> ModelInfo:
        """The served fraud model: version, features, cost-chosen threshold, test metrics."""
        return _model_info(holder.current)

    @app.post("/v1/fraud/score", response_model=FraudScore, tags=["fraud"])
    def fraud_score(
        tx: FraudTransaction, holder: FraudModelDep, features: FraudFeaturesDep
    ) -> FraudScore:
        """Score a payment as it happens, then add it to the card's and terminal's windows."""
        model = holder.current
        row = features.row(
            tx.customer_id,
            tx.terminal_id,
            tx.tx_datetime,
            tx.amount,
            model.bundle.meta.feature_names,
        )
        probability = model.score(row)
        features.record(tx.customer_id, tx.terminal_id, tx.tx_datetime, tx.amount)
        return FraudScore(
            transaction_id=tx.transaction_id,
            fraud_probability=probability,
            is_fraud=probability >= model.threshold,
            threshold=model.threshold,
            model=ModelRef(name=model.bundle.name, version=model.bundle.version),
        )

    return app


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


async def _follow_alias(holder: ModelHolder, settings: Settings) -> None:
    """Poll the alias; a new champion is loaded beside the old one and swapped in."""
    logger = logging.getLogger("serving")
    while True:
        await asyncio.sleep(settings.model_refresh_s)
        # Downloading and checking a model is blocking work: keep it off the event loop.
        if await asyncio.to_thread(holder.refresh, settings):
            logger.info("now serving %s v%s", holder.name, holder.current.version)
        elif holder.last_error:
            logger.warning("keeping the current model: %s", holder.last_error)
