"""The real API served over HTTP in the test process, for tests that drive it as a client would."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from benchmarks.serving import free_port
from mlops.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI


@contextmanager
def live_api(settings: Settings, app: FastAPI | None = None) -> Iterator[str]:
    """The real app (or `app`, built from it) under uvicorn in a thread, as `mlops serve`
    runs it; yields its base URL. Leaving stops it, which writes the prediction log.

    On a free port; with `settings.admin_port` set, on the settings' API port and admin
    port instead, both sockets of one server as `mlops serve` binds them."""
    import uvicorn

    from serving.admin_port import listening_sockets
    from serving.app import create_app
    from serving.http_protocol import with_header_deadline

    sockets = None if settings.admin_port is None else listening_sockets(settings)
    port = free_port() if sockets is None else settings.api_port
    config = uvicorn.Config(
        app or create_app(settings),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        http=with_header_deadline(settings.header_read_timeout_s),  # as `mlops serve` runs it
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": sockets}, name="live-api", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive(), "the API did not start"
        assert time.monotonic() < deadline, "the API took over 120 s to start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
