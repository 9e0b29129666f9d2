"""The explorer: web pages where anyone browses the market, deals, tasks, pools and reputations.

Served by the market app under ``/explorer`` (server-rendered Jinja templates, htmx and a
few lines of script that follow the market's SSE feed; every asset is served locally).
It reads the order book and the price index from the market's store and everything else
from the chain (:class:`~comptoir.explorer.index.ChainIndex`) and the schedulers' public
read API. ``mount_explorer(app, market)`` is all the market does to serve it.
"""

from comptoir.explorer.web import Explorer, mount_explorer

__all__ = ["Explorer", "mount_explorer"]
