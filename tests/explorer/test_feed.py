"""The explorer caught up from a market's network index, checked against the node.

Real anvil with the protocol, a real market app keeping its index (uvicorn, real HTTP),
and a lying proxy in front of it for the negative cases."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from tests.chain.conftest import Market
from tests.chain.conftest import market as market

from comptoir import devnet as devnet_mod
from comptoir.chain import events as ev
from comptoir.explorer import index as explorer_index
from comptoir.explorer.feed import catch_up
from comptoir.explorer.index import ChainIndex
from comptoir.market import MarketSettings, create_market_app
from comptoir.testing.servers import serve_app

DIGEST = b"\x42" * 32


def settle_one(market: Market) -> str:
    """A deal of two tasks: task 0 contributed, revealed and finalized on chain."""
    deal = market.deal(volume=2, trust=1)
    auth = market["scheduler"].authorize(market["w1"].address, deal.task_id(0))
    market["w1"].contribute(deal, 0, DIGEST, auth)
    market["w1"].reveal(deal, 0, DIGEST)
    market["scheduler"].finalize_onchain(deal, 0)
    return "0x" + deal.deal_id.hex()


@pytest.fixture
def market_url(tmp_path: Path, chain: devnet_mod.Devnet, market: Market) -> Iterator[str]:
    settings = MarketSettings.from_deployment(
        chain.deployment, chain.rpc_url, database=tmp_path / "market.db", sync_interval=0.2
    )
    with serve_app(create_market_app(settings), lifespan="on") as url:
        yield url


def wait_indexed(url: str, block: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        final = httpx.get(f"{url}/v1/index").json().get("final")
        if final is not None and final >= block:
            return
        time.sleep(0.2)
    raise AssertionError(f"the market's index did not reach block {block}")


class LogReads:
    """The first block of every log range the explorer asks the node for."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.starts: list[int] = []
        real = ev.get_events

        def counted(w3: Any, addresses: Any, start: int, *a: Any, **kw: Any) -> Any:
            self.starts.append(start)
            return real(w3, addresses, start, *a, **kw)

        monkeypatch.setattr(explorer_index.ev, "get_events", counted)


def explorer(
    chain: devnet_mod.Devnet, feed: Callable[[], Any] | None, patience: float = 0.0
) -> ChainIndex:
    d = chain.deployment
    return ChainIndex(
        chain.w3,
        d.hub,
        d.registry,
        d.contributions,
        d.block,
        lambda *_: None,
        dict,
        feed=feed,
        feed_patience_s=patience,
    )


def summary(index: ChainIndex) -> dict[str, Any]:
    return {
        "deals": {k: (d.volume, d.requester, d.scheduler) for k, d in index.deals.items()},
        "tasks": {
            k: {i: (t.status, t.digest, dict(t.rewards)) for i, t in d.tasks.items() if t.settled}
            for k, d in index.deals.items()
        },
        "assets": {a: (x.kind, x.owner, x.name, x.checksum) for a, x in index.assets.items()},
        "workers": {w: (r.correct, r.rewards) for w, r in index.workers.items()},
        "categories": sorted(index.categories),
    }


def test_the_explorer_catches_up_from_the_index_and_reads_only_newer_logs(
    chain: devnet_mod.Devnet, market: Market, market_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    deal_id = settle_one(market)
    wait_indexed(market_url, market["stranger"].block_number())
    d = chain.deployment
    reads = LogReads(monkeypatch)
    fed = explorer(
        chain, lambda: catch_up(chain.client(), market_url, (d.hub, d.registry, d.contributions))
    )
    asyncio.run(fed.run_once())
    assert fed.fed_to is not None and deal_id in fed.deals
    assert all(start > fed.fed_to for start in reads.starts)  # no log below the index's final
    # a newer deal arrives through the explorer's own log reads, as before
    newer = "0x" + market.deal(volume=1).deal_id.hex()
    asyncio.run(fed.run_once())
    assert newer in fed.deals and min(reads.starts) == fed.fed_to + 1
    # what it shows is what a full scan from the deployment block shows
    reads.starts.clear()
    scanned = explorer(chain, None)
    asyncio.run(scanned.run_once())
    assert min(reads.starts) == d.block
    assert summary(fed) == summary(scanned)
    task = fed.deals[deal_id].tasks[0]
    assert task.status == "settled" and task.digest == "0x" + DIGEST.hex()
    assert task.rewards and fed.deals[deal_id].gas > 0  # rewards and gas from the receipts


def lying_proxy(upstream: str, lie: Callable[[str, Any], Any]) -> FastAPI:
    """Forwards GETs to the market, rewriting each JSON answer with `lie(path, body)`."""
    app = FastAPI()

    @app.get("/{path:path}")
    async def forward(path: str, request: Request) -> JSONResponse:
        async with httpx.AsyncClient() as client:
            resp = await client.get(f"{upstream}/{path}", params=dict(request.query_params))
        return JSONResponse(lie("/" + path, resp.json()), status_code=resp.status_code)

    return app


def forged_terms(path: str, body: Any) -> Any:
    for row in body.get("deals", []) if path == "/v1/deals" else []:
        row["deal"]["volume"] = int(row["deal"]["volume"]) + 1  # no longer hashes to its id
    return body


def forged_settlement(path: str, body: Any) -> Any:
    if path.endswith("/tasks"):
        for row in body.get("tasks", []):
            row["digest"] = "0x" + "66" * 32  # a result the chain never settled
    return body


@pytest.mark.parametrize("lie", [forged_terms, forged_settlement])
def test_a_lying_index_is_caught_and_the_explorer_scans_the_chain_itself(
    chain: devnet_mod.Devnet,
    market: Market,
    market_url: str,
    monkeypatch: pytest.MonkeyPatch,
    lie: Callable[[str, Any], Any],
) -> None:
    deal_id = settle_one(market)
    wait_indexed(market_url, market["stranger"].block_number())
    d = chain.deployment
    addresses = (d.hub, d.registry, d.contributions)
    with serve_app(lying_proxy(market_url, lie)) as liar:
        from comptoir.exceptions import IndexUnavailable

        with pytest.raises(IndexUnavailable):
            catch_up(chain.client(), liar, addresses)
        reads = LogReads(monkeypatch)
        fed = explorer(chain, lambda: catch_up(chain.client(), liar, addresses))
        asyncio.run(fed.run_once())
    assert fed.fed_to is None and min(reads.starts) == d.block  # scanned from the start
    task = fed.deals[deal_id].tasks[0]
    assert task.status == "settled" and task.digest == "0x" + DIGEST.hex()


def test_an_index_far_behind_is_waited_for_then_left_for_the_logs(
    chain: devnet_mod.Devnet, market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    settle_one(market)
    reads = LogReads(monkeypatch)

    def down() -> Any:
        raise httpx.ConnectError("no market")

    waiting = explorer(chain, down, patience=60)
    asyncio.run(waiting.run_once())
    assert reads.starts == [] and waiting.deals == {}  # waits: no scan yet
    giving_up = explorer(chain, down, patience=0)
    asyncio.run(giving_up.run_once())
    assert min(reads.starts) == chain.deployment.block and giving_up.deals
