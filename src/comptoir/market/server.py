"""Running the market API under uvicorn (for `comptoir market serve`)."""

from __future__ import annotations

import uvicorn

from comptoir.httpguard import sane_recursion_limit
from comptoir.market.app import create_market_app
from comptoir.market.settings import MarketSettings


def run_market(host: str, port: int, settings: MarketSettings, log_level: str = "info") -> None:
    """Serves the API until interrupted (blocking)."""
    sane_recursion_limit()  # web3 imports raise it past what the C stack holds
    uvicorn.run(create_market_app(settings), host=host, port=port, log_level=log_level)
