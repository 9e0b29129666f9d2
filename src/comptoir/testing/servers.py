"""Test helpers shared by the suites: real HTTP servers and per-test database schemas."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import uvicorn
from sqlalchemy import create_engine, make_url, text

from comptoir.dburl import database_url

POSTGRES_ENV = "COMPTOIR_TEST_POSTGRES_URL"
# Database tests run on SQLite, and on PostgreSQL too when CI provides one.
BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get(POSTGRES_ENV) else [])


@contextmanager
def serve_app(app: Any, lifespan: Literal["auto", "on", "off"] = "off") -> Iterator[str]:
    """Serve an ASGI app over real HTTP (uvicorn in a thread, free loopback port)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan=lifespan))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@contextmanager
def serve_handler(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve a plain http.server handler (a hand-written hostile or hollow service) on a
    free loopback port, in a thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def postgres_schema(prefix: str) -> Iterator[str]:
    """A URL of the CI PostgreSQL database scoped to a fresh schema, dropped afterwards.

    One schema per test isolates tests without dropping tables, safe under pytest-xdist."""
    url = database_url(os.environ[POSTGRES_ENV])
    schema = f"{prefix}_{uuid.uuid4().hex[:16]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
