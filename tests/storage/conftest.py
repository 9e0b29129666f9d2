"""Serve ASGI apps over real HTTP (uvicorn in a thread, on a free loopback port)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from comptoir.testing.servers import serve_app


@pytest.fixture
def serve() -> Callable[[Any], Any]:
    return serve_app
