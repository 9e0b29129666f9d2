"""Market (order book) API: signed orders, chain-synced status, the cloud price index.

Public API::

    create_market_app(settings) -> FastAPI      run_market(host, port, settings)
    MarketSettings                              OrderBook (the rules, without HTTP)
    ChainView (protocol), Web3ChainView, InMemoryChainView, DealEvent
    MarketSync                                  cancel_message / sign_cancel
"""

from comptoir.market.app import Market, create_market_app
from comptoir.market.chainview import ChainView, DealEvent, InMemoryChainView, Web3ChainView
from comptoir.market.orderbook import OrderBook, cancel_message, sign_cancel
from comptoir.market.server import run_market
from comptoir.market.settings import MarketSettings
from comptoir.market.sync import MarketSync

__all__ = [
    "ChainView",
    "DealEvent",
    "InMemoryChainView",
    "Market",
    "MarketSettings",
    "MarketSync",
    "OrderBook",
    "Web3ChainView",
    "cancel_message",
    "create_market_app",
    "run_market",
    "sign_cancel",
]
