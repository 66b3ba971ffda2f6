"""Request middleware, pure ASGI (a few microseconds a request, no response buffering).

`ObservedRequests` gives every request an id (the caller's `X-Request-ID` when it is
sane, else a new one), returns it as a response header, and once the response is sent
writes one JSON access log line (`AccessLog`) and the request metrics. `BoundedRequests`
keeps the work bounded: a body larger than the limit is refused with 413 before it is
read, and beyond the concurrency limit requests are refused at once with 429 instead of
queueing in the thread pool without end.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from serving.context import SCOPE_KEY, RequestContext
from serving.errors import ApiError, Overloaded, PayloadTooLarge
from serving.metrics import Metrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("serving.access")
logger = logging.getLogger("serving")

REQUEST_ID_HEADER = b"x-request-id"
# A caller's id goes into logs and headers: short, and nothing that could forge a line.
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:/+=-]{1,128}")
# Answer however loaded the API is: a shed liveness probe would get the pod restarted.
UNBOUNDED_PATHS = frozenset({"/health/live", "/metrics"})


class AccessLog:
    """The JSON access lines, one per request, handed to the `serving.access` logger in batches.

    A log record per request (the record, the caller lookup, a write and a flush) cost
    about 15 µs, a twentieth of a churn request. Like nginx's `access_log ... buffer=
    flush=`, lines wait in memory and go to the logger as one record, one JSON object per
    line, when `max_lines` are waiting, every `flush_s` (the app's `flush_periodically`
    task) and at shutdown. With `flush_s=0` every line is its own record, at once.
    """

    def __init__(
        self, logger: logging.Logger = access_log, flush_s: float = 0.5, max_lines: int = 256
    ) -> None:
        self.logger = logger
        self.flush_s = flush_s
        self.max_lines = 1 if flush_s == 0 else max_lines
        self._lines: list[bytes] = []

    def add(self, line: dict[str, Any]) -> None:
        """Queue one request's line (dropped when INFO is off); flush when the batch is full."""
        if not self.logger.isEnabledFor(logging.INFO):
            return
        self._lines.append(orjson.dumps(line))
        if len(self._lines) >= self.max_lines:
            self.flush()

    def flush(self) -> None:
        """Hand the waiting lines to the logger as one record."""
        if self._lines:
            lines, self._lines = self._lines, []
            self.logger.info(b"\n".join(lines).decode())

    async def flush_periodically(self) -> None:
        """Flush every `flush_s` until cancelled (the app's lifespan runs it)."""
        while self.flush_s > 0:
            await asyncio.sleep(self.flush_s)
            self.flush()


class ObservedRequests:
    """Request id in, request id out; one JSON log line and the metrics per request."""

    def __init__(self, app: ASGIApp, metrics: Metrics, access: AccessLog) -> None:
        self.app = app
        self.metrics = metrics
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = _request_id(scope["headers"])
        context = scope[SCOPE_KEY] = RequestContext(request_id.decode())
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                message["headers"] = [*message.get("headers", ()), (REQUEST_ID_HEADER, request_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Answered here rather than by the server, so even a 500 carries its request id.
            logger.exception("unhandled error in request %s", context.request_id)
            context.error = "internal_error"
            if started:
                raise
            await ApiError("unexpected server error").response()(scope, receive, send_with_id)
        finally:
            self._report(scope, context, status, time.perf_counter() - start)

    def _report(self, scope: Scope, context: RequestContext, status: int, seconds: float) -> None:
        route = scope.get("route")
        # The route's template, not the raw path: unknown paths must not grow the label set.
        endpoint = getattr(route, "path", None) or "unmatched"
        self.metrics.observe_request(endpoint, status, context.model_version, seconds)
        if context.error is not None:
            self.metrics.errors.labels(context.error).inc()
        self.access.add(
            {
                "request_id": context.request_id,
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "model_version": context.model_version,
                "error": context.error,
            }
        )


def uvicorn_log_config() -> dict[str, Any]:
    """Uvicorn's logging, with our JSON access lines (one per request) in place of its own."""
    from uvicorn.config import LOGGING_CONFIG

    config = {**LOGGING_CONFIG, "formatters": dict(LOGGING_CONFIG["formatters"])}
    config["formatters"]["json_line"] = {"format": "%(message)s"}
    config["handlers"] = {
        **LOGGING_CONFIG["handlers"],
        "json_access": {
            "class": "logging.StreamHandler",
            "formatter": "json_line",
            "stream": "ext://sys.stdout",
        },
    }
    config["loggers"] = {
        **LOGGING_CONFIG["loggers"],
        "serving.access": {"handlers": ["json_access"], "level": "INFO", "propagate": False},
        "serving": {"handlers": ["default"], "level": "INFO", "propagate": False},
    }
    return config


def _request_id(headers: list[tuple[bytes, bytes]]) -> bytes:
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            if _SANE_REQUEST_ID.fullmatch(value):
                return value
            break
    return uuid.uuid4().hex.encode()


class BoundedRequests:
    """Refuses bodies over `max_body_bytes` (413) and requests over `max_concurrent` (429)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_concurrent: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_concurrent = max_concurrent
        # One event loop runs this: a plain counter, no lock.
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNBOUNDED_PATHS:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_concurrent:
            await self._refuse(
                Overloaded(f"more than {self.max_concurrent} requests in progress; retry shortly"),
                scope,
                receive,
                send,
            )
            return
        length = _content_length(scope["headers"])
        if length is not None and length > self.max_body_bytes:
            await self._refuse(self._too_large(), scope, receive, send)
            return
        self.in_flight += 1
        try:
            if length is None and scope["method"] in ("POST", "PUT", "PATCH"):
                # A body of unannounced length (chunked) is read here, up to the limit.
                body = await _read_body(receive, self.max_body_bytes)
                if body is None:
                    await self._refuse(self._too_large(), scope, receive, send)
                    return
                receive = _replay(body, receive)
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"request bodies are limited to {self.max_body_bytes} bytes")

    @staticmethod
    async def _refuse(error: ApiError, scope: Scope, receive: Receive, send: Send) -> None:
        context: RequestContext | None = scope.get(SCOPE_KEY)
        if context is not None:
            context.error = error.error
        await error.response()(scope, receive, send)


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it exceeds `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away; the app will see an empty body
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body already read, then whatever the client sends next."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
