"""One error hierarchy for the API; each error carries its HTTP status and a clear message.

Every error answer is a JSON body {"error": code, "detail": ...}. Each `ApiError` class is
one code with its status; `body_model` is its body as a pydantic model, which is what the
OpenAPI document declares (`error_responses`), so a generated client knows every error
body by its code. A request that fails validation is the one body whose `detail` is a
list: {"error": "invalid_request", "detail": [{"field", "problem"}, ...]}.

The Open Inference Protocol's routes (`V2_PREFIX`) answer the protocol's error body
instead, {"error": "<message>"} (`V2ErrorBody`): the same errors and statuses, the
message being the detail. Which body is chosen by the request's path (`error_body`), so
the middleware's 413, 415, 429 and 408 follow too.
"""

from __future__ import annotations

import http
import logging
import re
from typing import Any, ClassVar, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, create_model
from starlette.exceptions import HTTPException

from serving.context import request_context

logger = logging.getLogger("serving")


class ApiError(Exception):
    """An error the API answers with its `status_code` and the body {"error", "detail"}.

    Each subclass is one `error` code with its status and a `summary` of when it is
    answered (the OpenAPI document's words); `detail` is the message for the caller, which
    names what went wrong and never echoes a secret.
    """

    status_code = 500
    error = "internal_error"
    summary = "an unexpected server error"
    headers: ClassVar[dict[str, str]] = {}

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def response(self, path: str = "") -> JSONResponse:
        """This error as the API's answer to a request for `path`: its status, headers and
        body, in the Open Inference Protocol's shape under `V2_PREFIX`."""
        return JSONResponse(
            error_body(path, self.error, self.detail),
            status_code=self.status_code,
            headers=self.headers,
        )


class InvalidRequest(ApiError):
    """Answered by the `RequestValidationError` handler, its detail a list of problems."""

    status_code = 422
    error = "invalid_request"
    summary = "the request does not validate; `detail` lists every problem"


class UnknownEntity(ApiError):
    status_code = 404
    error = "unknown_entity"
    summary = "no features for this id in the online store"


class PageNotFound(ApiError):
    status_code = 404
    error = "page_not_found"
    summary = "no walkthrough page of this name"


class UnknownModel(ApiError):
    status_code = 404
    error = "unknown_model"
    summary = "no served model of this name, or the version asked for is not served"


class InvalidTensor(ApiError):
    status_code = 400
    error = "invalid_tensor"
    summary = (
        "the inference request does not fit the model: its JSON, or an input's name, "
        "datatype, shape or data"
    )


class InvalidInput(ApiError):
    status_code = 422
    error = "invalid_input"
    summary = "the request validates, but the model cannot be given what it needs from it"


class FeatureStoreUnavailable(ApiError):
    status_code = 503
    error = "feature_store_unavailable"
    summary = "the online feature store did not answer"


class PredictionLogUnavailable(ApiError):
    status_code = 503
    error = "prediction_log_unavailable"
    summary = (
        "the prediction could not be logged (the spool is full or failing), so it is not "
        "answered; retry shortly"
    )
    headers: ClassVar[dict[str, str]] = {"Retry-After": "1"}


class ModelNotReady(ApiError):
    status_code = 503
    error = "model_not_ready"
    summary = "no model of this case study is loaded (not trained yet, or not served)"


class ModelLoadFailed(ApiError):
    status_code = 502
    error = "model_load_failed"
    summary = (
        "the version the alias names could not be loaded; whatever was served before keeps serving"
    )


class Unauthorized(ApiError):
    status_code = 401
    error = "unauthorized"
    summary = "the admin bearer token is missing or wrong"
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": "Bearer"}


class PayloadTooLarge(ApiError):
    status_code = 413
    error = "payload_too_large"
    summary = "the body is over the size limit (`MLOPS_MAX_BODY_BYTES`)"


class UnsupportedMediaType(ApiError):
    status_code = 415
    error = "unsupported_media_type"
    summary = "the body is not sent as `application/json`"


class RequestTimeout(ApiError):
    status_code = 408
    error = "request_timeout"
    summary = "the body did not arrive within `MLOPS_BODY_READ_TIMEOUT_S`"


class Overloaded(ApiError):
    status_code = 429
    error = "overloaded"
    summary = (
        "too many requests in progress (`MLOPS_MAX_CONCURRENT_REQUESTS`), or the server is "
        "behind by more than `MLOPS_MAX_QUEUE_MS`; retry shortly"
    )
    # Requests last milliseconds: a second later the load has usually passed.
    headers: ClassVar[dict[str, str]] = {"Retry-After": "1"}


# Every `error` an answer of the API can carry (the metrics count each from 0).
API_ERROR_TYPES: tuple[str, ...] = tuple(
    sorted({ApiError.error, *(kind.error for kind in ApiError.__subclasses__())})
)


class Problem(BaseModel):
    """One reason a request does not validate."""

    field: str = Field(
        description="Where in the request, dotted (`customer.tenure`), or `body` for all of it."
    )
    problem: str = Field(description="What is wrong there.")


class InvalidRequestBody(BaseModel):
    """The body of a 422 `invalid_request`: every problem found in the request."""

    model_config = ConfigDict(title=InvalidRequest.__name__)

    error: Literal["invalid_request"]
    detail: list[Problem]


class V2ErrorBody(BaseModel):
    """The Open Inference Protocol's error body: what went wrong, in one message."""

    model_config = ConfigDict(title="InferenceErrorResponse")

    error: str = Field(description="What went wrong, for the caller to read.")


# The Open Inference Protocol's paths: their errors are answered as `V2ErrorBody`.
V2_PREFIX = "/v2"

# The OpenAPI document names each error body after its class, in its components.
SCHEMA_REF = "#/components/schemas/"


_BODY_MODELS: dict[str, type[BaseModel]] = {InvalidRequest.__name__: InvalidRequestBody}


def body_model(error: type[ApiError]) -> type[BaseModel]:
    """The body `error` is answered with, as a model named after the class."""
    if error.__name__ not in _BODY_MODELS:
        code: Any = Literal[error.error]
        _BODY_MODELS[error.__name__] = create_model(
            error.__name__,
            __doc__=f"The body of a {error.status_code} `{error.error}`: {error.summary}.",
            error=(code, ...),
            detail=(str, Field(description="What went wrong, for the caller to read.")),
        )
    return _BODY_MODELS[error.__name__]


def error_responses(*errors: type[ApiError]) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that may answer `errors`: per status, their bodies.

    Declared once, when the app is built, and read by FastAPI only to build the OpenAPI
    document: no work per request. The schemas refer to components the document's
    builder adds (`serving.openapi`); they are JSON whatever the route's media type.
    """
    by_status: dict[int, list[type[ApiError]]] = {}
    for error in errors:
        by_status.setdefault(error.status_code, []).append(error)
    return {status: error_response(by_status[status]) for status in sorted(by_status)}


def error_response(errors: list[type[ApiError]]) -> dict[str, Any]:
    """The OpenAPI response of one status that answers any of `errors` (each one body)."""
    refs = [{"$ref": f"{SCHEMA_REF}{error.__name__}"} for error in errors]
    response: dict[str, Any] = {
        "description": "\n".join(f"- `{error.error}`: {error.summary}" for error in errors),
        "content": {"application/json": {"schema": refs[0] if len(refs) == 1 else {"oneOf": refs}}},
    }
    headers = {name: _DOCUMENTED_HEADERS[name] for error in errors for name in error.headers}
    if headers:
        response["headers"] = headers
    return response


def declared_errors(response: dict[str, Any]) -> list[type[ApiError]]:
    """The errors an OpenAPI response made by `error_response` declares; [] for another."""
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    refs = schema.get("oneOf", [schema])
    names = [ref.get("$ref", "").removeprefix(SCHEMA_REF) for ref in refs]
    known = {error.__name__: error for error in _api_errors(ApiError)}
    return [known[name] for name in names if name in known]


def _api_errors(base: type[ApiError]) -> list[type[ApiError]]:
    subclasses = base.__subclasses__()
    return [base] + [error for sub in subclasses for error in _api_errors(sub)]


_DOCUMENTED_HEADERS: dict[str, dict[str, Any]] = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer"},
    },
    "WWW-Authenticate": {
        "description": "How to authenticate: `Bearer` with the admin token.",
        "schema": {"type": "string"},
    },
}


def _body(error: str, detail: Any) -> dict[str, Any]:
    return {"error": error, "detail": detail}


def is_v2_path(path: str) -> bool:
    """Whether `path` is one of the Open Inference Protocol's (`/v2` or under it)."""
    return path == V2_PREFIX or path.startswith(V2_PREFIX + "/")


def error_body(path: str, error: str, detail: Any) -> dict[str, Any]:
    """The body of error `error` answered to a request for `path`: {"error", "detail"}, or
    the protocol's {"error": message} under `V2_PREFIX` (a list of problems in one line)."""
    if not is_v2_path(path):
        return _body(error, detail)
    if isinstance(detail, list):
        detail = "; ".join(f"{p['field']}: {p['problem']}" for p in detail)
    return {"error": str(detail)}


# What an error body may quote of the request: a field name or a problem is cut to this
# many characters, and at most this many problems are listed. A body of the size limit
# could otherwise come back whole (a 60,000-character unknown field name, a thousand bad
# rows), which costs bandwidth and carries whatever the caller sent into logs and UIs.
MAX_QUOTED_CHARS = 120
MAX_PROBLEMS = 20
ELLIPSIS = "…"


def excerpt(text: str, limit: int = MAX_QUOTED_CHARS) -> str:
    """`text`, or its first `limit` characters and an ellipsis when it is longer."""
    return text if len(text) <= limit else text[:limit] + ELLIPSIS


def validation_problems(errors: list[Any]) -> list[dict[str, str]]:
    """pydantic's errors as the 422 body's problems, each bounded, and at most
    `MAX_PROBLEMS` of them (a last one says how many more there were)."""
    problems = [
        {
            "field": excerpt(".".join(str(p) for p in e["loc"] if p != "body") or "body"),
            "problem": excerpt(str(e["msg"])),
        }
        for e in errors[:MAX_PROBLEMS]
    ]
    if len(errors) > MAX_PROBLEMS:
        more = len(errors) - MAX_PROBLEMS
        problems.append({"field": "body", "problem": f"and {more} more problem(s)"})
    return problems


# host:port pairs and URLs with a scheme: how a driver names the server it could not
# reach. A 5xx answered to a caller names the dependency, never where it lives.
_ADDRESS = re.compile(
    r"[a-z][a-z0-9+.-]*://\S+"  # a URL or a connection string
    r"|\b(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:]+\]|[a-z0-9-]+(?:\.[a-z0-9-]+)*):\d{2,5}\b"
    r"|\b\d{1,3}(?:\.\d{1,3}){3}\b",  # a bare IPv4 address
    re.IGNORECASE,
)


def without_addresses(detail: str) -> str:
    """`detail` with every internal address (URL, host:port, IP) replaced by `<address>`."""
    return _ADDRESS.sub("<address>", detail)


def install_error_handlers(app: FastAPI) -> None:
    """Bodies are {"error", "detail"}: no traceback, no echo of the submitted values."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        _note(request, exc.error)
        if exc.status_code >= 500:
            # A dependency's failure is logged whole; the caller is told which, not where.
            safe = without_addresses(exc.detail)
            if safe != exc.detail:
                logger.warning("%s: %s", exc.error, exc.detail)
                return JSONResponse(
                    error_body(request.scope["path"], exc.error, safe),
                    status_code=exc.status_code,
                    headers=exc.headers,
                )
        return exc.response(request.scope["path"])

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        # Routing's own errors (unknown path, wrong method) in the same shape as ours.
        error = http.HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
        _note(request, error)
        return JSONResponse(
            error_body(request.scope["path"], error, exc.detail),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Logged with its traceback by the server; the client gets no internals.
        logger.exception("unhandled error", exc_info=exc)
        _note(request, "internal_error")
        body = error_body(request.scope["path"], "internal_error", "unexpected server error")
        return JSONResponse(body, status_code=500)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = validation_problems(list(exc.errors()))
        if is_v2_path(request.scope["path"]):
            # The protocol answers a request it cannot read with 400, not 422.
            _note(request, InvalidTensor.error)
            body = error_body(request.scope["path"], InvalidTensor.error, problems)
            return JSONResponse(body, status_code=InvalidTensor.status_code)
        _note(request, InvalidRequest.error)
        return JSONResponse(
            _body(InvalidRequest.error, problems), status_code=InvalidRequest.status_code
        )


def _note(request: Request, error: str) -> None:
    """Tell the request middleware which error the request ended with (metrics, log line)."""
    context = request_context(request.scope)
    if context is not None:
        context.error = error
