"""The SDK's reads of a market's network index reuse one connection per thread.

Opening an HTTP client builds a TLS context (tens of milliseconds of CPU), more than the
index read it serves; a request resolves a name and looks for deals through the index.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import ClassVar

import pytest

from comptoir.exceptions import IndexUnavailable
from comptoir.sdk.netindex import NetworkIndex
from comptoir.testing.servers import serve_handler

HUB = "0x" + "11" * 20


class _Index(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a reused client sends on one connection
    connections: ClassVar[list[str]] = []
    final: ClassVar[int | None] = 41

    def setup(self) -> None:
        super().setup()
        self.connections.append(str(self.client_address))

    def do_GET(self) -> None:
        body = json.dumps({"enabled": self.final is not None, "final": self.final}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def index_url() -> Iterator[str]:
    _Index.connections = []
    _Index.final = 41
    with serve_handler(_Index) as url:
        yield url


def test_reads_from_one_thread_share_one_connection(index_url: str) -> None:
    reads = [NetworkIndex(index_url, HUB).final() for _ in range(5)]
    assert reads == [41] * 5
    assert len(_Index.connections) == 1


def test_another_thread_has_its_own_client(index_url: str) -> None:
    NetworkIndex(index_url, HUB).final()
    other = threading.Thread(target=lambda: NetworkIndex(index_url, HUB).final())
    other.start()
    other.join()
    assert len(_Index.connections) == 2


def test_a_reused_client_still_reports_an_index_that_is_not_kept(index_url: str) -> None:
    assert NetworkIndex(index_url, HUB).final() == 41
    _Index.final = None
    with pytest.raises(IndexUnavailable, match="keeps no index yet"):
        NetworkIndex(index_url, HUB).final()
