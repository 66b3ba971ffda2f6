"""The prediction API, built by a factory from its collaborators.

Hot path: validate the request -> one online read (or the request's raw fields through
the same transforms as training) -> float32 row -> onnxruntime -> response.
No pandas, no native model, no pickle on the request path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import numpy as np
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from features.churn_frames import ENTITY_KEY
from features.churn_transforms import churn_features
from features.feature_repo.churn import churn_model
from mlops.settings import Settings
from serving.deps import ChurnFeaturesDep, ChurnModelDep
from serving.errors import InvalidInput, install_error_handlers
from serving.model_holder import ModelHolder
from serving.online_features import OnlineFeatures
from serving.schemas import ChurnPrediction, ChurnPredictRequest, ModelInfo, ModelRef


def create_app(
    settings: Settings,
    churn_model_holder: ModelHolder | None = None,
    churn_features_client: OnlineFeatures | None = None,
) -> FastAPI:
    """Build the API. Collaborators not given are built from settings at startup."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        holder = churn_model_holder or ModelHolder(settings.churn_model_name)
        if not holder.ready:
            holder.load_from_registry(settings)
        client = churn_features_client
        if client is None:
            from features.store import feature_store

            client = OnlineFeatures(feature_store(settings), churn_model.name, ENTITY_KEY)
        app.state.churn_model = holder
        app.state.churn_features = client
        follower = (
            asyncio.create_task(_follow_alias(holder, settings))
            if settings.model_refresh_s > 0
            else None
        )
        yield
        if follower is not None:
            follower.cancel()

    app = FastAPI(
        title="MLOps platform prediction API",
        version="0.1.0",
        description="Churn predictions from the registry's champion model, served with ONNX.",
        lifespan=lifespan,
    )
    install_error_handlers(app)

    @app.get("/health/live", tags=["health"])
    def live() -> dict[str, str]:
        """The process is up. Depends on nothing else."""
        return {"status": "ok"}

    @app.get("/health/ready", tags=["health"])
    def ready(holder: ChurnModelDep, features: ChurnFeaturesDep) -> JSONResponse:
        """Ready when a model is loaded and the online store answers."""
        checks = {"model": holder.ready, "feature_store": features.ping()}
        body = {"ready": all(checks.values()), "checks": checks}
        if holder.last_error:
            body["model_error"] = holder.last_error
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    @app.get("/v1/churn/model", response_model=ModelInfo, tags=["churn"])
    def churn_model_info(holder: ChurnModelDep) -> ModelInfo:
        """The served churn model: version, features, threshold and test metrics."""
        model = holder.current
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

    return app


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
