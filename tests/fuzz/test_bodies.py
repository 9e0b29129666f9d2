"""Hostile request bodies: every service bounds size, nesting and item counts before it
parses anything, answers 413/422 with one sentence, and keeps serving.

The market runs as its own process through its real entry point (`run_market`), with
web3 imported as in production: before the guard, one deeply nested body segfaulted it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from comptoir.httpguard import (
    MAX_BODY_BYTES,
    BodyRefused,
    check_json_shape,
    parse_json,
    sane_recursion_limit,
)
from comptoir.market.app import MAX_BODY as MARKET_MAX_BODY
from comptoir.stack import free_port

DEEP_HUGE = b"[" * 300_000 + b"]" * 300_000  # a few hundred kilobytes, deeper than any stack
DEEP_SMALL = b'{"a":' * 10_000 + b"1" + b"}" * 10_000  # under the size cap, too deep


def test_shape_check_counts_outside_strings_only() -> None:
    check_json_shape(b'{"k": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[,,,,"}')
    check_json_shape(b"[" * 32 + b"]" * 32)
    with pytest.raises(BodyRefused) as deep:
        check_json_shape(b"[" * 33 + b"]" * 33)
    assert deep.value.status == 422 and "deeper than 32" in str(deep.value)
    with pytest.raises(BodyRefused) as many:
        check_json_shape(b"[" + b"0," * 20_000 + b"0]")
    assert "more than 20000 values" in str(many.value)
    with pytest.raises(BodyRefused):  # a closed value first does not hide a deep part
        check_json_shape(b"[0]" + b"[" * 100 + b"]" * 100)
    # closes before opens: the decoder stops at the first byte, never descending
    check_json_shape(b"]" * 100 + b"[" * 100)
    with pytest.raises(ValueError):
        json.loads(b"]" * 100 + b"[" * 100)
    # an escaped quote does not end the string it is in
    check_json_shape(b'["\\"' + b"[" * 100 + b'"]')


def test_parse_json_bounds_then_parses() -> None:
    assert parse_json(b'{"a": [1, 2]}') == {"a": [1, 2]}
    with pytest.raises(BodyRefused) as big:
        parse_json(b"1" * (MAX_BODY_BYTES + 1))
    assert big.value.status == 413
    with pytest.raises(BodyRefused):
        parse_json(DEEP_SMALL)


def test_recursion_limit_is_lowered_after_web3() -> None:
    import web3  # noqa: F401  (py_ecc raises the limit to 100 000 on import)

    before = sys.getrecursionlimit()
    try:
        assert sane_recursion_limit() <= 4000
        assert sane_recursion_limit(before) <= 4000  # never raises it
    finally:
        sys.setrecursionlimit(before)


MARKET = textwrap.dedent(
    """
    import sys
    import web3  # noqa: F401  as in production: the recursion limit is now 100 000
    from comptoir.market import InMemoryChainView, MarketSettings, run_market
    settings = MarketSettings(chain_id=31337, hub="0x" + "4b" * 20, database=sys.argv[2],
                              chain=InMemoryChainView(), sync_interval=None)
    run_market("127.0.0.1", int(sys.argv[1]), settings, log_level="warning")
    """
)


@pytest.fixture
def market_process(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", MARKET, str(port), str(tmp_path / "m.db")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        try:
            if httpx.get(f"{url}/v1/info", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the market did not start"
        time.sleep(0.2)
    try:
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(10)


def test_market_process_survives_hostile_bodies(
    market_process: tuple[str, subprocess.Popen[bytes]],
) -> None:
    url, proc = market_process
    headers = {"content-type": "application/json"}
    huge = httpx.post(f"{url}/v1/orders", content=DEEP_HUGE, headers=headers, timeout=30)
    assert huge.status_code == 413
    assert huge.json()["detail"] == (
        f"The request body is larger than {MARKET_MAX_BODY} bytes; send less."
    )

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused while it arrives
        for _ in range(MARKET_MAX_BODY // 10_000 + 1):
            yield b"[" * 10_000

    streamed = httpx.post(f"{url}/v1/orders", content=chunks(), headers=headers, timeout=30)
    assert streamed.status_code == 413
    deep = httpx.post(f"{url}/v1/orders", content=DEEP_SMALL, headers=headers, timeout=30)
    assert deep.status_code == 422
    assert "nests deeper than 32 levels" in deep.json()["detail"]
    # and a well-formed request still gets its ordinary answer from the same process
    ordinary = httpx.post(f"{url}/v1/orders", json={"kind": "app"}, timeout=10)
    assert ordinary.status_code == 422 and "field required" in ordinary.json()["detail"]
    assert proc.poll() is None
    assert httpx.get(f"{url}/v1/info", timeout=5).status_code == 200


def _scheduler_and_keys() -> list[tuple[str, object, str]]:
    from .test_openapi import _scheduler, _storage

    return [
        ("scheduler", _scheduler(), "/v1/workers/register"),
        ("keys", _storage(), "/keys/release"),
        ("keys", _storage(), "/keys/register"),
    ]


@pytest.mark.parametrize(
    "index", range(3), ids=["scheduler-register", "keys-release", "keys-register"]
)
async def test_scheduler_and_key_service_refuse_hostile_bodies(index: int) -> None:
    name, app, path = _scheduler_and_keys()[index]
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{name}") as client:
        headers = {"content-type": "application/json"}
        huge = await client.post(path, content=b"[" * (2 << 20), headers=headers)  # over 1 MiB
        assert huge.status_code == 413
        assert huge.json()["detail"].startswith("The request body is larger than")
        deep = await client.post(path, content=DEEP_SMALL, headers=headers)
        assert deep.status_code == 422
        assert "nests deeper than 32 levels" in deep.json()["detail"]
        many = await client.post(path, content=b"[" + b"0," * 25_000 + b"0]", headers=headers)
        assert many.status_code == 422  # 50 kB: under both size caps, over the item cap
        assert "more than 20000 values" in many.json()["detail"]
        # an ordinary malformed request gets one sentence, not a list of errors
        plain = await client.post(path, json={})
        assert plain.status_code == 422
        detail = plain.json()["detail"]
        assert isinstance(detail, str) and detail.startswith("Invalid ")


def test_a_trickled_body_is_answered_408_and_the_service_keeps_serving() -> None:
    import socket

    from fastapi import FastAPI

    from comptoir.httpguard import guard
    from comptoir.testing.servers import serve_app

    app = FastAPI()
    guard(app, max_seconds=0.5)

    @app.post("/echo")
    async def echo(body: dict[str, int]) -> dict[str, int]:
        return body

    with serve_app(app) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(
                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 100\r\n\r\n{"a": '  # and never the rest
            )
            answer = sock.recv(4096).decode(errors="replace")
        assert answer.startswith("HTTP/1.1 408") and "longer than 0.5 s" in answer
        assert httpx.post(f"{url}/echo", json={"a": 1}).json() == {"a": 1}
