"""Request middleware, pure ASGI (a few microseconds a request, no response buffering).

`ObservedRequests` gives every request an id (the caller's `X-Request-ID` when it is
sane, else a new one), returns it as a response header, and once the response is sent
writes one JSON access log line (`AccessLog`) and the request metrics. `BoundedRequests`
keeps the work bounded: a body larger than the limit is refused with 413 before it is
read, a body that does not arrive in time with 408, and beyond the concurrency limit, or
when the event loop is too far behind (`LoopLag`), requests are refused at once with 429
instead of queueing without end.
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
from serving.errors import ApiError, Overloaded, PayloadTooLarge, RequestTimeout
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
# Answer however loaded the API is: a shed liveness probe would get the pod restarted, a
# shed readiness probe would take a serving pod out of its Service.
# The Open Inference Protocol's probes are the same probes.
UNBOUNDED_PATHS = frozenset(
    {"/health/live", "/health/ready", "/v2/health/live", "/v2/health/ready", "/metrics"}
)


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
            answer = ApiError("unexpected server error").response(scope["path"])
            await answer(scope, receive, send_with_id)
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


class LoopLag:
    """How late the event loop runs a callback that is due: the time a request waits now.

    The scoring routes run inline on the event loop, so under overload requests do not
    pile up as work in progress (there is never more than one) but as callbacks in the
    loop's ready queue, where no counter sees them. A timer due every `interval_s` runs
    as late as that queue is long; its lateness is the queue time of a request arriving
    now. About a hundred callbacks a second, each a few microseconds.

    `lag_s` is the smaller of the last two latenesses, as CoDel watches the minimum delay
    over an interval: a queue that stands (the loop late tick after tick) is overload, a
    single late tick is a pause that has already passed (a full garbage collection, the
    process waiting for a core on a busy machine) and would refuse requests for nothing.
    """

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.lag_s = 0.0
        self._last_s = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Start measuring on the running loop (the app's lifespan)."""
        self._loop = asyncio.get_running_loop()
        self._due = self._loop.time() + self.interval_s
        self._handle = self._loop.call_at(self._due, self._tick)

    def stop(self) -> None:
        """Stop measuring; the lag reads 0 until started again."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.lag_s = self._last_s = 0.0

    def _tick(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        late = max(0.0, now - self._due)
        self.lag_s, self._last_s = min(late, self._last_s), late
        self._due = now + self.interval_s
        self._handle = self._loop.call_at(self._due, self._tick)


class BoundedRequests:
    """Keeps the work of the API bounded before a route runs.

    - A body over `max_body_bytes` is refused with 413 before it is read, and one that
      has not arrived whole `body_timeout_s` after the headers with 408. The body is read
      before the request counts as in progress: a client sending a byte a second holds a
      connection, never a slot of work.
    - Beyond `max_concurrent` requests in progress, 429 at once instead of queueing in the
      thread pool; and 429 when the event loop is behind by more than `max_queue_s`
      (`LoopLag`), since the inline routes queue there, where `in_flight` cannot see them.
    - `UNBOUNDED_PATHS` (the probes, the metrics) are never refused.

    The lag is measured from the end of the app's startup to its shutdown (the lifespan
    passes here).
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        max_concurrent: int,
        body_timeout_s: float = 10.0,
        max_queue_s: float = 0.1,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_concurrent = max_concurrent
        self.body_timeout_s = body_timeout_s
        self.max_queue_s = max_queue_s
        self.lag = LoopLag()
        # One event loop runs this: a plain counter, no lock.
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            try:
                await self.app(scope, receive, self._measure_once_started(send))
            finally:
                self.lag.stop()
            return
        if scope["type"] != "http" or scope["path"] in UNBOUNDED_PATHS:
            await self.app(scope, receive, send)
            return
        overload = self._overload()
        if overload is not None:
            await self._refuse(overload, scope, receive, send)
            return
        length = _content_length(scope["headers"])
        if length is not None and length > self.max_body_bytes:
            await self._refuse(self._too_large(), scope, receive, send)
            return
        if scope["method"] in ("POST", "PUT", "PATCH"):
            try:
                async with asyncio.timeout(self.body_timeout_s):
                    body = await _read_body(receive, self.max_body_bytes)
            except TimeoutError:
                timeout = RequestTimeout(
                    f"the body did not arrive within {self.body_timeout_s:g} s"
                )
                await self._refuse(timeout, scope, receive, send)
                return
            if body is None:
                await self._refuse(self._too_large(), scope, receive, send)
                return
            receive = _replay(body, receive)
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    def _measure_once_started(self, send: Send) -> Send:
        """`send` for the lifespan: the lag is measured from the end of startup, which blocks
        the loop while it loads the models and would read as a backlog."""

        async def send_and_start(message: Message) -> None:
            await send(message)
            if message["type"] == "lifespan.startup.complete":
                self.lag.start()

        return send_and_start

    def _overload(self) -> Overloaded | None:
        if self.in_flight >= self.max_concurrent:
            busy = f"more than {self.max_concurrent} requests in progress; retry shortly"
            return Overloaded(busy)
        if self.lag.lag_s > self.max_queue_s:
            return Overloaded(
                f"the server is {self.lag.lag_s * 1000:.0f} ms behind "
                f"(more than {self.max_queue_s * 1000:g} ms); retry shortly"
            )
        return None

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"request bodies are limited to {self.max_body_bytes} bytes")

    @staticmethod
    async def _refuse(error: ApiError, scope: Scope, receive: Receive, send: Send) -> None:
        context: RequestContext | None = scope.get(SCOPE_KEY)
        if context is not None:
            context.error = error.error
        await error.response(scope["path"])(scope, receive, send)


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
