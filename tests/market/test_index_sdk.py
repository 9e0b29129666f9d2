"""The SDK reads deals, settlements and assets from the market's index (over real HTTP)
and gets what the chain's logs say; a lying index is caught where money or verification
depends on it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from comptoir.chain import events as ev
from comptoir.chain.client import ChainClient
from comptoir.devnet import Devnet
from comptoir.market import create_market_app
from comptoir.sdk import chainscan, lifecycle
from comptoir.testing.servers import serve_app

from .test_index import claimed_deal, index_settings, match, request_for

pytestmark = pytest.mark.devnet


def with_index(client: ChainClient, url: str | None) -> ChainClient:
    copy = client.with_account(client.tx.account)  # type: ignore[attr-defined]
    copy.scan_policy = dataclasses.replace(client.scan_policy, index_url=url)
    return copy


@pytest.fixture
def served_market(chain: Devnet, tmp_path: Path) -> Iterator[str]:
    settings = index_settings(chain, tmp_path / "m.db", chain.deployment.block)
    with serve_app(create_market_app(settings), lifespan="on") as url:
        yield url


def sync(url: str) -> None:
    r = httpx.post(f"{url}/v1/sync", headers={"Authorization": "Bearer anvil-admin"}, timeout=60)
    assert r.status_code == 200, r.text


def key(e: ev.ChainEvent) -> tuple[Any, ...]:
    if isinstance(e, ev.DealCreated):
        return (e.deal_id, e.deal, e.app, e.workerpool, e.block_number, e.tx_hash, e.params)
    if isinstance(e, ev.TaskFinalized | ev.TaskClaimed):
        return (type(e), e.task_id, e.deal_id, e.index, e.block_number, e.tx_hash)
    assert isinstance(e, ev.AssetRegistered)
    return (e.asset, e.name, e.location, e.checksum, e.block_number)


def test_sdk_reads_through_the_index_what_the_chain_holds(
    chain: Devnet, clients: dict[str, ChainClient], served_market: str
) -> None:
    requester = clients["requester"]
    first, app_order, pool_order = claimed_deal(chain, clients)
    second = match(clients, app_order, pool_order, request_for(clients, app_order.app, 1))
    sync(served_market)
    # made after the pass: only the log tail above the index's final block has it
    late = match(clients, app_order, pool_order, request_for(clients, app_order.app, 1))

    indexed, plain = with_index(requester, served_market), with_index(requester, None)
    me = requester.address
    index = chainscan.network_index(indexed)
    assert index is not None
    rows, final = index.deals(me)  # straight from the index: final rows only
    assert [r.deal_id for r in rows] == [first.deal_id, second.deal_id]
    assert final < chain.w3.eth.block_number
    got = [key(e) for e in chainscan.all_deals(indexed, requester=me)]
    assert got == [key(e) for e in chainscan.all_deals(plain, requester=me)]
    assert [g[0] for g in got] == [first.deal_id, second.deal_id, late.deal_id]
    assert lifecycle.list_deals(indexed, me) == lifecycle.list_deals(plain, me)
    for kind in (1, 3):
        assert [key(a) for a in chainscan.registered_assets(indexed, kind)] == [
            key(a) for a in chainscan.registered_assets(plain, kind)
        ]
    ids = [first.deal_id, second.deal_id]
    assert sorted(map(key, chainscan.settlements(indexed, ids)), key=str) == sorted(
        map(key, chainscan.settlements(plain, ids)), key=str
    )
    for deal in (first, late):
        found = chainscan.find_deal(indexed, deal.deal_id)
        assert found is not None and found.deal == deal
    claimed = chainscan.task_settlement(indexed, first.task_id(0))
    assert isinstance(claimed, ev.TaskClaimed) and chainscan.still_settled(indexed, claimed)
    assert chainscan.task_settlement(indexed, first.task_id(1)) is None


def lying_index(deal_json: dict[str, Any], task: dict[str, Any], final: int) -> FastAPI:
    app = FastAPI()
    head = {"enabled": True, "final": final, "head": final, "confirmations": 0}

    @app.get("/v1/index")
    def index() -> dict[str, Any]:
        return head

    @app.get("/v1/deals")
    def deals() -> dict[str, Any]:
        return {"deals": [deal_json], "next_cursor": None, "index": head}

    @app.get("/v1/tasks/{task_id}")
    def one_task(task_id: str) -> dict[str, Any]:
        return task

    return app


def test_a_lying_index_is_caught_against_the_chain(
    chain: Devnet, clients: dict[str, ChainClient], served_market: str
) -> None:
    requester = clients["requester"]
    deal, _, _ = claimed_deal(chain, clients)
    sync(served_market)
    honest = with_index(requester, served_market)
    true_row = httpx.get(f"{served_market}/v1/deals/0x{deal.deal_id.hex()}").json()
    true_task = httpx.get(f"{served_market}/v1/tasks/0x{deal.task_id(0).hex()}").json()
    real = chainscan.all_deals(honest, requester=requester.address)

    # terms that do not hash to the deal id: refused, the SDK reads the logs instead
    cheaper = {**true_row, "deal": {**true_row["deal"], "app_price": 0}}
    # a claim relabelled as a finalized task with a digest of the liar's choosing
    forged = {**true_task, "status": "finalized", "digest": "0x" + "66" * 32}
    final = chain.w3.eth.block_number
    with serve_app(lying_index(cheaper, forged, final)) as url:
        liar = with_index(requester, url)
        assert [key(e) for e in chainscan.all_deals(liar, requester=requester.address)] == [
            key(e) for e in real
        ]
        settled = chainscan.task_settlement(liar, deal.task_id(0))
        assert isinstance(settled, ev.TaskFinalized)  # what the liar said...
        assert not chainscan.still_settled(liar, settled)  # ...does not hold on the chain
        honest_claim = chainscan.task_settlement(honest, deal.task_id(0))
        assert honest_claim is not None and chainscan.still_settled(liar, honest_claim)


def test_a_hostile_index_cannot_page_forever_or_send_an_endless_body() -> None:
    """A market that always names a next page with no rows, or answers with a body far
    larger than any page, makes the SDK give up (IndexUnavailable: it scans logs instead),
    in bounded time and memory."""
    import time

    from fastapi.responses import Response

    from comptoir.exceptions import IndexUnavailable
    from comptoir.sdk.netindex import NetworkIndex

    hostile = FastAPI()
    pages: list[int] = []

    @hostile.get("/v1/deals")
    def endless(cursor: str | None = None) -> dict[str, Any]:
        pages.append(1)
        return {"deals": [], "next_cursor": str(len(pages)), "index": {"final": 1}}

    @hostile.get("/v1/index")
    def huge() -> Response:
        return Response(b'{"pad": "' + b"x" * (80 << 20) + b'"}', media_type="application/json")

    with serve_app(hostile) as url:
        index = NetworkIndex(url, "0x" + "11" * 20, timeout=5)
        started = time.monotonic()
        with pytest.raises(IndexUnavailable):
            index.deals()
        assert len(pages) <= 1000 and time.monotonic() - started < 60
        with pytest.raises(IndexUnavailable):
            index.final()
