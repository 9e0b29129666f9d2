"""Comptoir SDK: everything a requester, app developer, dataset owner, workerpool manager
or worker does, from Python, sync or async.

Requester, async::

    from comptoir.sdk import Comptoir

    async with Comptoir(account="devnet:1") as c:
        await c.deposit(10_000)
        async for task in c.run("primes", volume=5, trust=5, category="TEST"):
            print(task.index, task.status, task.path)      # status "verified"

The same, blocking: ``ComptoirSync`` has the same methods (iterators instead of async
iterators). Services come from the environment or the local stack (see ``Config``).

Public API
----------
- clients: ``Comptoir`` (async), ``ComptoirSync``, ``Config``
- wallets: ``create_wallet``, ``import_wallet``, ``import_keystore``, ``list_wallets``,
  ``show_wallet``, ``load_wallet``, ``resolve_account``, ``devnet_account``
- amounts: ``parse_amount`` (``"1.1CPT"`` is exactly 1.1 x 10**18 units), ``parse_value``
- names: an asset is given by id, ``NAME`` (refused when several owners registered it)
  or ``NAME@0xOWNER`` (see :mod:`comptoir.sdk.names`)
- apps: ``init_app``, ``build_app``, ``read_app``
- services: ``serve_pool``, ``run_worker``
- results and records: ``Balance``, ``AppDeployment``, ``DatasetDeployment``,
  ``PoolDeployment``, ``ListedOrder``, ``OrderSelection``, ``PreparedRequest``,
  ``DealHandle``, ``DealStatus``, ``TaskStatus``, ``TaskResult``, ``Progress``,
  ``MarketClient``, ``AssetView``, ``CancelledOrder``, ``DealSummary``, ``Claimed``, ``Sent``
"""

from comptoir.sdk.amounts import parse_amount, parse_value
from comptoir.sdk.apps import BuiltApp, build_app, init_app, read_app
from comptoir.sdk.client import Comptoir, ProgressCallback
from comptoir.sdk.config import Config
from comptoir.sdk.market import ListedOrder, MarketClient
from comptoir.sdk.services import run_worker, serve_pool
from comptoir.sdk.sync import ComptoirSync
from comptoir.sdk.types import (
    AppDeployment,
    AssetView,
    Balance,
    CancelledOrder,
    Claimed,
    DatasetDeployment,
    DealHandle,
    DealStatus,
    DealSummary,
    OrderSelection,
    PoolDeployment,
    PreparedRequest,
    Progress,
    Sent,
    TaskLogs,
    TaskResult,
    TaskStatus,
)
from comptoir.sdk.wallet import (
    WalletInfo,
    create_wallet,
    devnet_account,
    import_keystore,
    import_wallet,
    list_wallets,
    load_wallet,
    resolve_account,
    show_wallet,
)

__all__ = [
    "AppDeployment",
    "AssetView",
    "Balance",
    "BuiltApp",
    "CancelledOrder",
    "Claimed",
    "Comptoir",
    "ComptoirSync",
    "Config",
    "DatasetDeployment",
    "DealHandle",
    "DealStatus",
    "DealSummary",
    "ListedOrder",
    "MarketClient",
    "OrderSelection",
    "PoolDeployment",
    "PreparedRequest",
    "Progress",
    "ProgressCallback",
    "Sent",
    "TaskLogs",
    "TaskResult",
    "TaskStatus",
    "WalletInfo",
    "build_app",
    "create_wallet",
    "devnet_account",
    "import_keystore",
    "import_wallet",
    "init_app",
    "list_wallets",
    "load_wallet",
    "parse_amount",
    "parse_value",
    "read_app",
    "resolve_account",
    "run_worker",
    "serve_pool",
    "show_wallet",
]
