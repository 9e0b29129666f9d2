"""Bounded fuzzing of every service's OpenAPI document (schemathesis, positive and negative
data): whatever a stranger sends, no answer is a 5xx and no process dies.

Each operation gets at most `EXAMPLES` generated requests, each with a generous deadline
(the machine is shared; the bound is on work, not on time). Valid-looking requests may
still be refused for what a schema cannot say (signatures by the right key), so only the
server-error, status-code and content-type checks run.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from comptoir.chain.deploy import Deployment
from comptoir.market import InMemoryChainView, MarketSettings, create_market_app
from comptoir.scheduler import create_scheduler_app
from comptoir.scheduler.settings import SchedulerSettings
from comptoir.storage import LocalBlobStore
from comptoir.storage.keys import KeyVault, NonceBook, SignedNoncePolicy, create_key_router
from comptoir.storage.server import create_storage_app

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

CHAIN_ID, HUB, APP, NOW = 31337, "0x" + "4b" * 20, 1, 1_000_000
DEPLOYMENT = Deployment(
    CHAIN_ID, "0x" + "01" * 20, "0x" + "02" * 20, HUB, "0x" + "03" * 20, "0x" + "04" * 20, 1
)
EXAMPLES = 30
DEADLINE_MS = 20_000
_TMP = Path(tempfile.mkdtemp(prefix="comptoir-fuzz-"))
atexit.register(shutil.rmtree, _TMP, True)


def _market() -> Any:
    chain = InMemoryChainView()
    chain.register(APP, Account.create().address, "app")
    return create_market_app(
        MarketSettings(
            chain_id=CHAIN_ID,
            hub=HUB,
            database=_TMP / "market.db",
            chain=chain,
            sync_interval=None,
            admin_token="fuzz-admin",
        )
    )


class _NoLifespan:
    """The scheduler's lifespan closes its database; the ASGI test client would run it
    around every call, so the fuzz run answers lifespan events itself."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})


def _scheduler() -> Any:
    app = create_scheduler_app(
        SchedulerSettings(
            rpc_url="http://127.0.0.1:1",  # no chain: the API must still answer
            deployment=DEPLOYMENT,
            private_key=Account.create().key.hex(),
            workerpool=7,
            db_url=str(_TMP / "scheduler.db"),
        ),
        run_loops=False,
    )
    app.state.scheduler.clock.observe(1, NOW)
    return _NoLifespan(app)


def _storage() -> Any:
    app = create_storage_app(LocalBlobStore(_TMP / "blobs"), max_upload_bytes=1 << 20)

    async def no_deal(worker: str, checksum: str, evidence: dict[str, Any]) -> bool:
        return False

    policy = SignedNoncePolicy(NonceBook(), no_deal)
    app.include_router(create_key_router(KeyVault(_TMP / "keys.db"), policy, nonces=policy.nonces))
    return app


market = schemathesis.openapi.from_asgi("/openapi.json", _market()).exclude(path="/v1/stream")
scheduler = schemathesis.openapi.from_asgi("/openapi.json", _scheduler())
storage = schemathesis.openapi.from_asgi("/openapi.json", _storage())
_SETTINGS = settings(
    max_examples=EXAMPLES, deadline=DEADLINE_MS, suppress_health_check=list(HealthCheck)
)


def _check(case: Any) -> None:
    response = case.call()
    case.validate_response(response, checks=[not_a_server_error])


@market.parametrize()
@_SETTINGS
def test_market_never_answers_5xx(case: Any) -> None:
    _check(case)


@scheduler.parametrize()
@_SETTINGS
def test_scheduler_never_answers_5xx(case: Any) -> None:
    _check(case)


@storage.parametrize()
@_SETTINGS
def test_storage_and_keys_never_answer_5xx(case: Any) -> None:
    _check(case)
