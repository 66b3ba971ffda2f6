"""The Open Inference Protocol's REST routes (KServe "V2"), beside /v1, for each case study.

`GET /v2`, `GET /v2/health/live|ready`, and per model (`churn`, `fraud`), with or
without `/versions/{version}`: `GET /v2/models/<name>` (metadata), `GET .../ready` and
`POST .../infer`. What they mean is `serving.open_inference`; here they only read the
request and the app's collaborators. Errors are the protocol's {"error": message}
(`serving.errors.error_body`), with the statuses of /v1, and 400 for a request the model
cannot read.

The infer routes are `JsonRoute`s, like the /v1 scoring routes, which also take a body
sent without a content type; the version, when the path has one, is read from the path
by the endpoint, and declared to the OpenAPI document by hand. A body in the protocol's
binary tensor extension is refused with 415.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from mlops.case_studies import CASE_STUDIES, CaseStudyName
from serving.collaborators import Collaborators
from serving.context import request_context
from serving.deps import CollaboratorsDep, SettingsDep
from serving.errors import (
    InvalidInput,
    InvalidTensor,
    ModelNotReady,
    PredictionLogUnavailable,
    UnknownModel,
    error_responses,
)
from serving.json_route import JsonRoute, is_json
from serving.open_inference import (
    InferenceLog,
    InferenceRequest,
    InferenceResponse,
    LiveResponse,
    ModelMetadata,
    ReadyResponse,
    ServedModel,
    ServerMetadata,
    infer,
)
from serving.routes.health import ready as api_ready

TAG: Final = "open inference protocol (v2)"
BINARY_HEADER: Final = "inference-header-content-length"
V2_LIVE: Final = "/v2/health/live"
V2_READY: Final = "/v2/health/ready"
VERSION_PARAMETER: Final[dict[str, Any]] = {
    "name": "version",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "A served version: the champion's, or the challenger's when one is served.",
}
# Up to this many rows are scored on the event loop (tens of microseconds of ONNX); more
# go to the thread pool, as the batch route's do, so a large request does not hold the loop.
INLINE_ROWS: Final = 64


class V2JsonRoute(JsonRoute):
    """A `JsonRoute` that also reads a body sent with no content type as JSON: the
    protocol does not ask for one, and its clients (tritonclient) send none. A body in the
    binary tensor extension (its JSON header's length in `Inference-Header-Content-Length`)
    is not supported: 415."""

    @staticmethod
    def accepts(request: Request) -> bool:
        headers = request.headers
        if BINARY_HEADER in headers:
            return False
        return "content-type" not in headers or is_json(request)


def model_path(name: str, versioned: bool) -> str:
    """The path of model `name`, or of one of its versions: what `/ready`, `/infer` follow."""
    return f"/v2/models/{name}" + ("/versions/{version}" if versioned else "")


def server_metadata(request: Request) -> ServerMetadata:
    """The server's name and version; it supports no protocol extension."""
    return ServerMetadata(name="mlops-platform", version=request.app.version, extensions=[])


def live() -> LiveResponse:
    """The process is up: `/health/live`'s answer."""
    return LiveResponse(live=True)


def ready(collaborators: CollaboratorsDep, settings: SettingsDep) -> JSONResponse:
    """`/health/ready`'s verdict (every served model loaded, its store answering, the log
    persisting): 200 when ready, 503 when not; its checks are at `/health/ready`."""
    verdict = api_ready(collaborators, settings).status_code == 200
    return JSONResponse({"ready": verdict}, status_code=200 if verdict else 503)


def _served(request: Request, name: CaseStudyName) -> ServedModel:
    collaborators: Collaborators = request.app.state.collaborators
    return ServedModel(name, collaborators.models[name], collaborators.challengers[name])


def _metadata_endpoint(name: CaseStudyName, versioned: bool) -> Callable[..., Any]:
    if versioned:

        async def versioned_metadata(request: Request, version: str) -> ModelMetadata:
            return _served(request, name).metadata(version)

        return versioned_metadata

    async def metadata(request: Request) -> ModelMetadata:
        return _served(request, name).metadata(None)

    return metadata


def _ready_endpoint(name: CaseStudyName, versioned: bool) -> Callable[..., Any]:
    if versioned:

        async def versioned_model_ready(request: Request, version: str) -> ReadyResponse:
            _served(request, name).model(version)
            return ReadyResponse(ready=True)

        return versioned_model_ready

    async def model_ready(request: Request) -> ReadyResponse:
        _served(request, name).model(None)
        return ReadyResponse(ready=True)

    return model_ready


def _infer_endpoint(
    name: CaseStudyName, route: str
) -> Callable[[InferenceRequest, Request], Awaitable[InferenceResponse]]:
    async def model_infer(body: InferenceRequest, request: Request) -> InferenceResponse:
        context = request_context(request.scope)
        log = InferenceLog(
            request.app.state.collaborators.log,
            request.app.state.instruments.metrics,
            context.request_id if context is not None else "",
            route,
        )
        version = request.path_params.get("version")
        served = _served(request, name)
        rows = body.inputs[0].shape[0] if body.inputs and body.inputs[0].shape else 0
        if rows <= INLINE_ROWS:
            answer = infer(body, served, version, log)
        else:
            answer = await run_in_threadpool(infer, body, served, version, log)
        if context is not None:
            context.model_version = answer.model_version
        return answer

    model_infer.__name__ = f"{name}_infer"
    return model_infer


def add_v2_routes(app: FastAPI) -> None:
    """Add the Open Inference Protocol's routes to `app`: server, probes, each model."""
    app.add_api_route("/v2", server_metadata, methods=["GET"], tags=[TAG])
    app.add_api_route(V2_LIVE, live, methods=["GET"], tags=[TAG])
    app.add_api_route(
        V2_READY,
        ready,
        methods=["GET"],
        tags=[TAG],
        response_model=None,
        responses={
            200: {"model": ReadyResponse, "description": "Every served model answers."},
            503: {"model": ReadyResponse, "description": "Not ready: `/health/ready` says why."},
        },
    )
    for study in CASE_STUDIES.values():
        for versioned in (False, True):
            base = model_path(study.name, versioned)
            suffix = "_version" if versioned else ""
            lookup = (UnknownModel, ModelNotReady) if versioned else (ModelNotReady,)
            app.add_api_route(
                base,
                _metadata_endpoint(study.name, versioned),
                methods=["GET"],
                tags=[TAG],
                name=f"v2_{study.name}_metadata{suffix}",
                responses=error_responses(*lookup),
            )
            app.add_api_route(
                f"{base}/ready",
                _ready_endpoint(study.name, versioned),
                methods=["GET"],
                tags=[TAG],
                name=f"v2_{study.name}_ready{suffix}",
                responses=error_responses(*lookup),
            )
            app.router.add_api_route(
                f"{base}/infer",
                _infer_endpoint(study.name, f"{base}/infer"),
                methods=["POST"],
                tags=[TAG],
                name=f"v2_{study.name}_infer{suffix}",
                response_model=InferenceResponse,
                route_class_override=V2JsonRoute,
                openapi_extra={"parameters": [VERSION_PARAMETER]} if versioned else None,
                responses=error_responses(
                    InvalidTensor, *lookup, InvalidInput, PredictionLogUnavailable
                ),
            )
