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
- wallets: ``create_wallet``, ``import_wallet``, ``list_wallets``, ``show_wallet``,
  ``load_wallet``, ``resolve_account``, ``devnet_account``
- apps: ``init_app``, ``build_app``, ``read_app``
- services: ``serve_pool``, ``run_worker``
- results and records: ``Balance``, ``AppDeployment``, ``DatasetDeployment``,
  ``PoolDeployment``, ``ListedOrder``, ``OrderSelection``, ``PreparedRequest``,
  ``DealHandle``, ``DealStatus``, ``TaskStatus``, ``TaskResult``, ``Progress``, ``MarketClient``
"""

from comptoir.sdk.apps import BuiltApp, build_app, init_app, read_app
from comptoir.sdk.client import Comptoir, ProgressCallback
from comptoir.sdk.config import Config
from comptoir.sdk.market import ListedOrder, MarketClient
from comptoir.sdk.services import run_worker, serve_pool
from comptoir.sdk.sync import ComptoirSync
from comptoir.sdk.types import (
    AppDeployment,
    Balance,
    DatasetDeployment,
    DealHandle,
    DealStatus,
    OrderSelection,
    PoolDeployment,
    PreparedRequest,
    Progress,
    TaskResult,
    TaskStatus,
)
from comptoir.sdk.wallet import (
    WalletInfo,
    create_wallet,
    devnet_account,
    import_wallet,
    list_wallets,
    load_wallet,
    resolve_account,
    show_wallet,
)

__all__ = [
    "AppDeployment",
    "Balance",
    "BuiltApp",
    "Comptoir",
    "ComptoirSync",
    "Config",
    "DatasetDeployment",
    "DealHandle",
    "DealStatus",
    "ListedOrder",
    "MarketClient",
    "OrderSelection",
    "PoolDeployment",
    "PreparedRequest",
    "Progress",
    "ProgressCallback",
    "TaskResult",
    "TaskStatus",
    "WalletInfo",
    "build_app",
    "create_wallet",
    "devnet_account",
    "import_wallet",
    "init_app",
    "list_wallets",
    "load_wallet",
    "read_app",
    "resolve_account",
    "run_worker",
    "serve_pool",
    "show_wallet",
]
