"""What some tests need from the machine (PostgreSQL, Redis, Chromium): skip with the reason
when it is absent, and under CI=true fail instead: CI provides all three."""

from __future__ import annotations

import os
import shutil
import socket

import pytest


def _required_by_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_service(name: str, host: str, port: int) -> None:
    """Skip when a service is absent, with the reason; under CI=true, fail instead."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as error:
        message = f"{name} is not reachable at {host}:{port} ({error})"
    if _required_by_ci():
        pytest.fail(f"{message}; CI=true requires it")
    pytest.skip(message)


def require_chromium() -> str:
    """Chromium's path; skip with the reason when it is absent, and under CI=true fail instead
    (`.ci/run` installs Debian's package)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "chromium is not installed (apt-get install -y chromium)"
        if _required_by_ci():
            pytest.fail(f"{message}; CI=true requires it")
        pytest.skip(message)
    return found
