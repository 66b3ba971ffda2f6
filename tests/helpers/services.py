"""What some tests need from the machine (PostgreSQL, Redis, Chromium, psql): skip with the reason
when it is absent, and under CI=true fail instead: CI provides them."""

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


def require_program(names: tuple[str, ...], install: str) -> str:
    """The path of the first of `names` on PATH; skip with how to `install` it when none is
    there, and under CI=true fail instead."""
    for name in names:
        found = shutil.which(name)
        if found is not None:
            return found
    message = f"{names[0]} is not installed ({install})"
    if _required_by_ci():
        pytest.fail(f"{message}; CI=true requires it")
    pytest.skip(message)


def require_chromium() -> str:
    """Chromium's path (`.ci/run` installs Debian's package)."""
    return require_program(("chromium", "chromium-browser"), "apt-get install -y chromium")
