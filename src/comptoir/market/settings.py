"""Configuration of a market server."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from comptoir.exceptions import ConfigError
from comptoir.market.chainview import ChainView, DealSource, Web3ChainView

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from comptoir.chain.deploy import Deployment
    from comptoir.market.indexer import ChainIndexer


@dataclass
class MarketSettings:
    """`chain_id` and `hub` fix the EIP-712 domain orders are checked against.

    The chain is read through `chain` when given, else through `rpc_url` + `registry`.
    `database` is a SQLite file path, ":memory:", or a SQLAlchemy URL
    (``postgresql+psycopg://user:pass@host/db``).
    """

    chain_id: int
    hub: str
    database: str | Path = "market.db"
    chain: ChainView | None = None
    rpc_url: str | None = None
    registry: str | None = None
    # None: the chain view's own `deal_source` if it has one; False: no price feed from events
    deal_source: DealSource | bool | None = None
    sync_interval: float | None = 5.0  # None: no background loop (POST /v1/sync only)
    start_block: int = 0
    admin_token: str | None = None  # POST /v1/sync needs it; without one it is closed
    max_open_per_owner: int = 200  # open orders one signer may have listed
    min_request_balance: int = 1  # free balance a requester needs on the hub to list
    max_block_range: int = 2000  # blocks per eth_getLogs call (providers cap the range)
    confirmations: int = 0  # read DealCreated this many blocks behind the head (reorgs)
    # the network index (deals, tasks, assets, order fills from final events); None: on
    # when the chain is read over rpc_url, off for a ChainView passed in
    index: bool | None = None
    contributions: str | None = None  # None: read from the hub (onchain_path)
    # seconds an asset owner or balance read for a publish may serve later publishes
    chain_cache_seconds: float = 2.0

    def __post_init__(self) -> None:
        self._chain_given = self.chain is not None  # chain_view() fills `chain` in later

    def chain_view(self) -> ChainView:
        if self.chain is not None:
            return self.chain
        if not (self.rpc_url and self.registry):
            raise ConfigError(
                "The market needs a chain: set COMPTOIR_RPC_URL and COMPTOIR_REGISTRY "
                "(or pass a ChainView)."
            )
        self.chain = Web3ChainView(self.rpc_url, self.registry, self.hub)
        return self.chain

    def indexer(self, engine: Engine) -> ChainIndexer | None:
        """The network index over the market's database, when enabled."""
        enabled = self.index if self.index is not None else not self._chain_given
        if not enabled:
            return None
        if not (self.rpc_url and self.registry):
            raise ConfigError(
                "The market's index needs COMPTOIR_RPC_URL and COMPTOIR_REGISTRY set."
            )
        from comptoir.chain.client import connect
        from comptoir.market.indexer import ChainIndexer, contributions_of

        w3 = connect(self.rpc_url, timeout=30.0, check=False)
        return ChainIndexer(
            engine,
            w3,
            self.hub,
            self.registry,
            self.contributions or contributions_of(w3, self.hub),
            start_block=self.start_block,
            confirmations=self.confirmations,
            max_range=self.max_block_range,
        )

    def deals(self) -> DealSource | None:
        if self.deal_source is False:
            return None
        if self.deal_source is None or self.deal_source is True:
            return getattr(self.chain_view(), "deal_source", None)
        return self.deal_source

    @classmethod
    def from_deployment(cls, deployment: Deployment, rpc_url: str, **kw: Any) -> MarketSettings:
        """Settings for a recorded deployment (comptoir.chain.deploy.Deployment): its chain,
        hub and registry; DealCreated events are scanned from its first block."""
        kw.setdefault("start_block", deployment.block)
        kw.setdefault("contributions", deployment.contributions)
        return cls(
            chain_id=deployment.chain_id,
            hub=deployment.hub,
            registry=deployment.registry,
            rpc_url=rpc_url,
            **kw,
        )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> MarketSettings:
        """COMPTOIR_CHAIN_ID, COMPTOIR_HUB, COMPTOIR_REGISTRY, COMPTOIR_RPC_URL,
        COMPTOIR_MARKET_DB, COMPTOIR_MARKET_SYNC_INTERVAL, COMPTOIR_MARKET_ADMIN_TOKEN,
        COMPTOIR_MARKET_START_BLOCK, COMPTOIR_MARKET_MAX_OPEN_PER_OWNER,
        COMPTOIR_MARKET_MIN_REQUEST_BALANCE, COMPTOIR_MARKET_CONFIRMATIONS,
        COMPTOIR_MARKET_LOG_RANGE, COMPTOIR_MARKET_CHAIN_CACHE_SECONDS."""
        env = os.environ if environ is None else environ
        missing = [k for k in ("COMPTOIR_CHAIN_ID", "COMPTOIR_HUB") if not env.get(k)]
        if missing:
            raise ConfigError(f"Set {' and '.join(missing)} to run the market.")
        try:
            chain_id = int(env["COMPTOIR_CHAIN_ID"])
            interval = float(env.get("COMPTOIR_MARKET_SYNC_INTERVAL", "5"))
            start_block = int(env.get("COMPTOIR_MARKET_START_BLOCK", "0") or 0)
            max_open = int(env.get("COMPTOIR_MARKET_MAX_OPEN_PER_OWNER", "200") or 200)
            min_balance = int(env.get("COMPTOIR_MARKET_MIN_REQUEST_BALANCE", "1") or 0)
            confirmations = int(env.get("COMPTOIR_MARKET_CONFIRMATIONS", "0") or 0)
            log_range = int(env.get("COMPTOIR_MARKET_LOG_RANGE", "2000") or 2000)
            cache_seconds = float(env.get("COMPTOIR_MARKET_CHAIN_CACHE_SECONDS", "2") or 0)
        except ValueError as e:
            raise ConfigError(
                "COMPTOIR_CHAIN_ID, COMPTOIR_MARKET_START_BLOCK, "
                "COMPTOIR_MARKET_MAX_OPEN_PER_OWNER, COMPTOIR_MARKET_MIN_REQUEST_BALANCE, "
                "COMPTOIR_MARKET_CONFIRMATIONS and COMPTOIR_MARKET_LOG_RANGE must be integers "
                "and COMPTOIR_MARKET_SYNC_INTERVAL and COMPTOIR_MARKET_CHAIN_CACHE_SECONDS "
                "numbers."
            ) from e
        if not 0 <= cache_seconds <= 60:
            raise ConfigError(
                "COMPTOIR_MARKET_CHAIN_CACHE_SECONDS must be between 0 and 60 seconds: "
                "longer would let a listing through long after its deposit left."
            )
        return cls(
            chain_id=chain_id,
            hub=env["COMPTOIR_HUB"],
            database=env.get("COMPTOIR_MARKET_DB", "market.db"),
            rpc_url=env.get("COMPTOIR_RPC_URL", "http://127.0.0.1:8545"),
            registry=env.get("COMPTOIR_REGISTRY"),
            sync_interval=interval if interval > 0 else None,
            admin_token=env.get("COMPTOIR_MARKET_ADMIN_TOKEN") or None,
            start_block=start_block,
            max_open_per_owner=max_open,
            min_request_balance=min_balance,
            confirmations=max(confirmations, 0),
            max_block_range=max(log_range, 1),
            chain_cache_seconds=cache_seconds,
        )
