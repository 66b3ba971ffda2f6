"""`GET /metrics`: this API instance's Prometheus metrics (not in the OpenAPI document)."""

from __future__ import annotations

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST

from serving.deps import MetricsDep


def prometheus_metrics(metrics: MetricsDep) -> Response:
    """Prometheus metrics of this API instance."""
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


def add_metrics_route(app: FastAPI) -> None:
    """Add `GET /metrics` to `app`, outside its OpenAPI document."""
    app.add_api_route("/metrics", prometheus_metrics, methods=["GET"], include_in_schema=False)
