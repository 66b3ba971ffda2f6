"""Uvicorn's HTTP protocol with a deadline for a request's headers.

Uvicorn closes an idle keep-alive connection after `timeout_keep_alive`, but a connection
that has sent part of a request line or of its headers is never closed: a few hundred
clients sending a header byte every few seconds (slowloris) hold as many sockets and
file descriptors for as long as they like. `with_header_deadline` arms a timer when a
connection opens and when the next request's first bytes arrive, disarms it when the
headers are complete, and closes the connection if it fires first. The body has its own
deadline in `serving.middleware.BoundedRequests`.

This subclasses uvicorn's httptools protocol (uvicorn is pinned in `uv.lock`, and a test
drives the real server with a slow client).
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

logger = logging.getLogger("serving")


class _HeaderDeadlineProtocol(HttpToolsProtocol):
    header_timeout_s: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and (self.cycle is None or self.cycle.response_complete):
            self._arm()  # the first bytes of the connection's next request
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            logger.warning(
                "closed a connection from %s: no complete request headers within %g s",
                self.client[0] if self.client else "?",
                self.header_timeout_s,
            )
            self.transport.close()


def with_header_deadline(header_timeout_s: float) -> type[HttpToolsProtocol]:
    """The protocol class to give `uvicorn.run(http=...)`: headers due within the deadline."""
    return type(
        "HeaderDeadlineProtocol", (_HeaderDeadlineProtocol,), {"header_timeout_s": header_timeout_s}
    )
