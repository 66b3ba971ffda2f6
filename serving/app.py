"""The prediction API, built by a factory from its collaborators.

Churn hot path: validate the request -> one online read (or the request's raw fields
through the same transforms as training) -> float32 row -> onnxruntime -> response.
Fraud hot path: validate the transaction -> one online read of the card's and the
terminal's histories -> the window features at the transaction's time -> onnxruntime ->
response, and the transaction is appended to both histories online.
No pandas, no native model, no pickle on the request path. Every prediction is queued
for the prediction log, written by a background thread.

The Open Inference Protocol (KServe V2) is served beside /v1 (`serving.routes.v2`): the
same models and the same scoring, on feature tensors.

Around every request (`serving.middleware`): a request id, a JSON log line and metrics
(`GET /metrics`), a body size limit (413) and a concurrency limit that sheds load (429).
With MLOPS_ADMIN_PORT set, `/admin/*`, `/metrics` and `/alerts` answer on that port only
(`serving.admin_port`).

Where the parts are: the collaborators are built in `serving.collaborators`, started and
stopped in `serving.lifespan`; each group of routes is a module of `serving.routes`.
"""

from __future__ import annotations

from fastapi import FastAPI

from mlops.prediction_log import PredictionLog
from mlops.settings import Settings
from serving.admin_port import AdminPortSplit
from serving.collaborators import Given, build_instruments
from serving.errors import install_error_handlers
from serving.fraud_features import FraudOnlineFeatures
from serving.lifespan import serving_lifespan
from serving.middleware import BoundedRequests, ObservedRequests
from serving.model_holder import ModelHolder
from serving.online_features import OnlineFeatures
from serving.openapi import install_openapi
from serving.routes.alerts import add_alert_routes
from serving.routes.api_docs import add_api_docs_routes
from serving.routes.churn_batch import add_churn_batch_routes
from serving.routes.health import add_health_routes
from serving.routes.metrics import add_metrics_route
from serving.routes.models import add_model_routes
from serving.routes.report_pages import add_report_page_routes
from serving.routes.scoring import add_scoring_routes
from serving.routes.v2 import add_v2_routes


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
    given = Given(
        churn_model_holder=churn_model_holder,
        churn_features_client=churn_features_client,
        fraud_model_holder=fraud_model_holder,
        fraud_features_client=fraud_features_client,
        prediction_log=prediction_log,
    )
    instruments = build_instruments(settings)
    app = FastAPI(
        title="MLOps platform prediction API",
        version="0.1.0",
        description="Churn and fraud predictions from the registry's champion models, "
        "served with ONNX.",
        # Served by add_api_docs_routes from local files, not from a CDN.
        docs_url=None,
        redoc_url=None,
        lifespan=serving_lifespan(settings, given, instruments),
    )
    app.state.settings = settings
    app.state.instruments = instruments
    install_error_handlers(app)
    # In this order: the OpenAPI document lists the routes as they are added.
    add_scoring_routes(app)
    add_churn_batch_routes(app)
    add_report_page_routes(app)
    add_health_routes(app)
    add_metrics_route(app)
    add_alert_routes(app)
    add_model_routes(app)
    add_v2_routes(app)
    add_api_docs_routes(app)
    install_openapi(app)
    if settings.admin_port is not None:
        # Innermost: its 404s are logged and counted like any other answer.
        app.add_middleware(AdminPortSplit, admin_port=settings.admin_port)
    # Added last, so outermost: its id, log line and metrics cover the 413s and 429s too.
    app.add_middleware(
        BoundedRequests,
        max_body_bytes=settings.max_body_bytes,
        max_concurrent=settings.max_concurrent_requests,
        body_timeout_s=settings.body_read_timeout_s,
        max_queue_s=settings.max_queue_ms / 1000,
    )
    app.add_middleware(ObservedRequests, metrics=instruments.metrics, access=instruments.access)
    return app
