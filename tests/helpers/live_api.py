"""The real API served over HTTP in the test process, for tests that drive it as a client would."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from benchmarks.serving import free_port
from mlops.settings import Settings


@contextmanager
def live_api(settings: Settings) -> Iterator[str]:
    """The real app under uvicorn in a thread; yields its base URL. Leaving stops it, which
    writes the prediction log."""
    import uvicorn

    from serving.app import create_app

    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="live-api", daemon=True)
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
