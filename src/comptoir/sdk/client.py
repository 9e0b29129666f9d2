"""The async SDK: :class:`Comptoir`, one object per account and network.

Every method does one thing and is what one CLI command calls. Chain calls are
blocking web3 calls run in worker threads; HTTP calls are native async.

Requester flow::

    async with Comptoir(config, "devnet:1") as c:
        async for task in c.run("primes", volume=5, trust=5, category="TEST"):
            print(task.index, task.status)   # "verified" when the digest matches the chain
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from comptoir.apps import sealed
from comptoir.chain import events as ev
from comptoir.chain.client import ChainClient
from comptoir.chain.types import (
    ZERO_ADDRESS,
    AppOrder,
    DatasetOrder,
    RequestOrder,
    WorkerpoolOrder,
    tag_bytes,
)
from comptoir.config import Settings
from comptoir.exceptions import (
    ChainError,
    ComptoirError,
    ConfigError,
    MarketError,
    NoMatchingOrder,
    ResultError,
    SchedulerError,
    StorageError,
    TransactionRejected,
)
from comptoir.sdk import chainscan, lifecycle, names, recipients
from comptoir.sdk.amounts import parse_amount
from comptoir.sdk.apps import app_determinism, build_app, read_app
from comptoir.sdk.config import Config, as_config
from comptoir.sdk.journal import RequestJournal
from comptoir.sdk.liveness import Liveness, LivenessCache
from comptoir.sdk.market import ListedOrder, MarketClient
from comptoir.sdk.results import MAX_PARAMS_BYTES, check_result, log_tails, write_logs
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
from comptoir.sdk.wallet import PasswordSource, resolve_account
from comptoir.storage.client import StorageClient
from comptoir.storage.digest import sha256_bytes, sha256_file
from comptoir.storage.grants import Network, asset_purpose

T = TypeVar("T")
ProgressCallback = Callable[[Progress], None]
POLL_S = 0.5
# the local devnet: a loopback node answers in a millisecond, and a look that finds no new
# block is one request
LOCAL_POLL_S = 0.05
RESULT_WAIT_S = 30.0  # how long a settled task's result may take to be listed
CANDIDATES = 100  # orders of each kind considered per search


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _unhex(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


def _norm_id(value: str) -> str:
    raw = value.lower().removeprefix("0x")
    if len(raw) != 64 or any(c not in "0123456789abcdef" for c in raw):
        raise ConfigError(f"{value!r} is not an id; give 0x followed by 64 hex digits.")
    return "0x" + raw


class Comptoir:
    """The async SDK for one account (None: read-only) on one network.

    ``config``: a :class:`Config`, chain :class:`Settings`, a home folder, or None (the
    environment and the local stack). ``account``: a LocalAccount, an account spec
    (wallet name or ``devnet:N``) or None.
    """

    def __init__(
        self,
        config: Config | Settings | str | Path | None = None,
        account: LocalAccount | str | None = None,
        *,
        password: PasswordSource = None,
    ) -> None:
        self.config = as_config(config)
        if isinstance(account, str):
            account = resolve_account(self.config.settings, account, password)
        self.account: LocalAccount | None = account
        self._chain: ChainClient | None = None
        self._endpoints: dict[int, str | None] = {}  # workerpool -> on-chain scheduler URL
        self._market: MarketClient | None = None
        self._storage: StorageClient | None = None
        self._http: httpx.AsyncClient | None = None
        self._determinism: dict[int, str | None] = {}
        self._liveness = LivenessCache()
        self.transactions: list[str] = []  # hashes of the transactions this client sent
        self.journal = RequestJournal(self.config.settings.home / "requests")

    # ------------------------------------------------------------ plumbing

    async def __aenter__(self) -> Comptoir:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._market is not None:
            await self._market.aclose()
        if self._storage is not None:
            await self._storage.aclose()
        if self._http is not None:
            await self._http.aclose()
        self._market = self._storage = self._http = None

    @property
    def address(self) -> str:
        if self.account is None:
            raise ConfigError("This needs an account; pass --wallet (or a wallet to the SDK).")
        return str(self.account.address)

    async def _call(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        return await asyncio.to_thread(fn, *args, **kw)

    async def scheduler_url(self, workerpool: int) -> str | None:
        """Where a workerpool's scheduler answers: the configured URL, else the endpoint its
        owner recorded on-chain (so any pool's results are found from the chain alone)."""
        url = self.config.scheduler_url(workerpool)
        if url is not None:
            return url
        if workerpool not in self._endpoints:
            c = await self.chain()
            self._endpoints[workerpool] = await self._call(c.workerpool_endpoint, workerpool)
        return self._endpoints[workerpool]

    async def chain(self) -> ChainClient:
        """The chain client (connects on first use; ChainUnreachable/NotDeployed otherwise)."""
        if self._chain is None:
            chain = await self._call(ChainClient.from_settings, self.config.settings, self.account)
            # the market's index answers deal, task and asset listings (the chain decides)
            chain.scan_policy = dataclasses.replace(
                chain.scan_policy, index_url=self.config.market_url
            )
            self._chain = chain
            lifecycle.record_transactions(self._chain, self.transactions)
        return self._chain

    @property
    def market(self) -> MarketClient:
        if self._market is None:
            self._market = MarketClient(self.config.need_market())
        return self._market

    @property
    def storage(self) -> StorageClient:
        if self._storage is None:
            self._storage = StorageClient(self.config.need_storage())
        return self._storage

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=15.0)
        return self._http

    # ------------------------------------------------------------ accounts

    async def balance(self, address: str | None = None) -> Balance:
        """Wallet tokens, free escrow balance, and what is locked in unsettled deals."""
        c = await self.chain()
        who = to_checksum_address(address) if address else self.address

        def read() -> Balance:
            paid, staked = chainscan.locked_in_deals(c, who)
            return Balance(
                who, c.token_balance(who), c.balance(who), paid, staked, c.eth_balance(who)
            )

        return await self._call(read)

    async def deposit(self, amount: int | str) -> Balance:
        """Move `amount` tokens from the wallet into the escrow (approving the hub if needed)."""
        c = await self.chain()
        await self._call(c.deposit, parse_amount(amount))
        return await self.balance()

    async def withdraw(self, amount: int | str) -> Balance:
        """Move `amount` free tokens from the escrow back to the wallet."""
        c = await self.chain()
        await self._call(c.withdraw, parse_amount(amount))
        return await self.balance()

    # ------------------------------------------------------------ names

    async def resolve(self, kind: str, ref: int | str) -> int:
        """Asset id of an app, dataset or workerpool given by id or by registered name."""
        c = await self.chain()
        me = self.account.address if self.account is not None else None
        return await self._call(names.resolve_asset, c, kind, ref, me)

    async def _optional(self, kind: str, ref: int | str | None) -> int:
        """0 for "none", else the id of an asset given by id or name (restrictions)."""
        if ref in (None, 0, "", "0"):
            return 0
        return await self.resolve(kind, ref)  # type: ignore[arg-type]

    async def resolve_category(self, ref: int | str) -> int:
        c = await self.chain()
        return await self._call(chainscan.resolve_category, c, ref)

    # ------------------------------------------------------------ order book

    async def orderbook(self, kind: str | None = None, **filters: Any) -> list[ListedOrder]:
        """Orders listed by the market, cheapest first (filters: see the market API)."""
        return await self.market.aorders(kind=kind, **filters)

    async def pools_alive(self, workerpools: Sequence[int]) -> dict[int, Liveness]:
        """Whether each pool's scheduler answers at its endpoint (probes cached 30 s)."""
        return await self._liveness.check_all(set(workerpools), self.scheduler_url, self.http)

    async def _live_pools(self, pools: list[ListedOrder]) -> list[ListedOrder]:
        live = await self.pools_alive([int(o.order.workerpool) for o in pools])
        kept = [o for o in pools if live[int(o.order.workerpool)].alive]
        if not kept:
            dead = live[int(pools[0].order.workerpool)]
            raise NoMatchingOrder(
                f"No workerpool offering these terms has a scheduler that answers (workerpool "
                f"{dead.workerpool}: {dead.reason}); try again later or another workerpool."
            )
        return kept

    async def _publish(self, order: Any) -> ListedOrder:
        c = await self.chain()
        await self._call(lifecycle.check_order_owner, c, order, self.address)
        signature = c.sign_order(order)
        return await self.market.apublish(order, signature)

    # ------------------------------------------------------------ app developers

    async def deploy_app(self, source: str | Path, name: str | None = None) -> AppDeployment:
        """Build (a folder) or read (an archive), upload to storage, register on-chain."""
        path = Path(source)
        built = await self._call(build_app if path.is_dir() else read_app, path)
        checksum = await self._call(sha256_file, built.path)
        location = self.storage.url(checksum)
        c = await self.chain()
        name = name or built.name
        # registered first: storage takes a package only from its registered owner
        app = await self._call(c.register_app, name, location, _unhex(checksum), built.app_type)
        await self._upload_registered("App", app, built.path, str(source))
        return AppDeployment(app, name, checksum, location, built.kind)

    async def upload_package(self, asset: int, source: bytes | str | Path) -> str:
        """Upload a registered app's or dataset's package to storage, with a grant signed
        by this account: storage checks on-chain that it owns `asset` and that the
        package hashes to the asset's checksum. Returns the package's sha256."""
        if self.account is None:
            raise ConfigError("Uploading a package needs its owner's wallet.")
        c = await self.chain()
        storage = self.storage
        storage.signer, storage.network = self.account, Network(c.chain_id, c.deployment.hub)
        return await storage.aupload(source, purpose=asset_purpose(asset))

    async def _upload_registered(
        self, kind: str, asset: int, package: bytes | Path, source: str
    ) -> None:
        try:
            await self.upload_package(asset, package)
        except StorageError as exc:
            raise StorageError(
                f"{kind} {asset} is registered but storage did not take its package ({exc}); "
                f"upload it again with 'comptoir {kind.lower()} upload {asset} {source}'."
            ) from exc

    async def publish_app_order(
        self,
        app: int | str,
        price: int | str,
        volume: int = 1_000_000,
        *,
        tag: int = 0,
        dataset_restrict: int | str = 0,
        workerpool_restrict: int | str = 0,
        requester_restrict: str | None = None,
    ) -> ListedOrder:
        """Sign and list an offer to run `app` at `price` per task, `volume` times."""
        order = AppOrder(
            app=await self.resolve("app", app),
            app_price=parse_amount(price, "price"),
            volume=volume,
            tag=tag_bytes(tag),
            dataset_restrict=await self._optional("dataset", dataset_restrict),
            workerpool_restrict=await self._optional("workerpool", workerpool_restrict),
            requester_restrict=requester_restrict or ZERO_ADDRESS,
        )
        return await self._publish(order)

    # ------------------------------------------------------------ dataset owners

    async def deploy_dataset(
        self, source: str | Path, name: str | None = None
    ) -> DatasetDeployment:
        """Encrypt a file, upload the ciphertext, register it, and deposit its key with the
        key service (released only to workers of deals that use it)."""
        from comptoir.storage.crypto import encrypt_dataset
        from comptoir.storage.keys import KeyServiceClient

        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"{path} is not a file; give the dataset file to encrypt.")
        account = self.account
        if account is None:
            raise ConfigError("Deploying a dataset needs the owner's wallet.")
        blob, key = await self._call(encrypt_dataset, path.read_bytes())
        checksum = sha256_bytes(blob)
        location = self.storage.url(checksum)
        c = await self.chain()
        name = name or path.name
        # the owner's copy of the key: without it the dataset cannot be re-registered
        key_dir = self.config.settings.home / "dataset-keys"
        key_dir.mkdir(parents=True, exist_ok=True)
        key_file = key_dir / f"{checksum}.key"
        key_file.write_text(key.hex() + "\n")
        os.chmod(key_file, 0o600)
        # the ciphertext is kept until storage holds it: a failed upload can be retried
        pending = key_dir / f"{checksum}.blob"
        pending.write_bytes(blob)
        dataset = await self._call(c.register_dataset, name, location, _unhex(checksum))
        keys = KeyServiceClient(self.config.need_keys())
        try:  # the key first: a failed upload is then retried alone
            await self._call(keys.register_key, checksum, key, account.key)
        finally:
            keys.close()
        await self._upload_registered("Dataset", dataset, pending, str(pending))
        pending.unlink()
        return DatasetDeployment(dataset, name, checksum, location, True, key_file)

    async def publish_dataset_order(
        self,
        dataset: int | str,
        price: int | str,
        volume: int = 1_000_000,
        *,
        tag: int = 0,
        app_restrict: int | str | None = None,
        workerpool_restrict: int | str = 0,
        requester_restrict: str | None = None,
    ) -> ListedOrder:
        """Sign and list an offer of `dataset` to one app (`app_restrict`; 0 says any app
        may read it, on purpose), optionally only on one pool or for one requester."""
        if app_restrict is None:
            # an app receives the plaintext and its results are public: left open, any
            # stranger's app could publish the dataset as its result
            raise ConfigError(
                "Name the app that may read this dataset (app_restrict / --app-restrict); "
                "give 0 only if any app, including a stranger's, may read its plaintext."
            )
        order = DatasetOrder(
            dataset=await self.resolve("dataset", dataset),
            dataset_price=parse_amount(price, "price"),
            volume=volume,
            tag=tag_bytes(tag),
            app_restrict=await self._optional("app", app_restrict),
            workerpool_restrict=await self._optional("workerpool", workerpool_restrict),
            requester_restrict=requester_restrict or ZERO_ADDRESS,
        )
        return await self._publish(order)

    # ------------------------------------------------------------ workerpool managers

    async def deploy_pool(
        self, name: str, worker_stake_ratio: int = 10, scheduler_reward_ratio: int = 10
    ) -> PoolDeployment:
        """Register a workerpool (this account is its scheduler)."""
        c = await self.chain()
        pool = await self._call(
            c.register_workerpool, name, worker_stake_ratio, scheduler_reward_ratio
        )
        return PoolDeployment(pool, name, worker_stake_ratio, scheduler_reward_ratio)

    async def advertise_pool(self, workerpool: int | str, url: str) -> str:
        """Record on-chain where the pool's scheduler answers (workers join there, requesters
        fetch results there); a no-op when already recorded. Returns the URL."""
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"A scheduler endpoint is an http(s) URL, not {url!r}.")
        url = url.rstrip("/")
        pool = await self.resolve("workerpool", workerpool)
        c = await self.chain()
        if await self._call(c.workerpool_endpoint, pool) != url:
            await self._call(c.set_location, pool, url)
        self._endpoints[pool] = url
        return url

    async def publish_pool_order(
        self,
        workerpool: int | str,
        price: int | str,
        volume: int = 1_000_000,
        *,
        category: int | str = 0,
        trust: int = 1,
        tag: int = 0,
        app_restrict: int | str = 0,
        dataset_restrict: int | str = 0,
        requester_restrict: str | None = None,
    ) -> ListedOrder:
        """Sign and list an offer of `volume` tasks in `category` at up to `trust`."""
        order = WorkerpoolOrder(
            workerpool=await self.resolve("workerpool", workerpool),
            workerpool_price=parse_amount(price, "price"),
            volume=volume,
            tag=tag_bytes(tag),
            category=await self.resolve_category(category),
            trust=trust,
            app_restrict=await self._optional("app", app_restrict),
            dataset_restrict=await self._optional("dataset", dataset_restrict),
            requester_restrict=requester_restrict or ZERO_ADDRESS,
        )
        return await self._publish(order)

    # ------------------------------------------------------------ requesters: finding orders

    async def find_orders(
        self,
        app: int | str,
        *,
        dataset: int | str = 0,
        category: int | str = 0,
        trust: int = 1,
        tag: int = 0,
        workerpool: int | str = 0,
        max_price: int | None = None,
        exclude: Sequence[str] = (),
        requester: str | None = None,
        min_worker_stake: int = 0,
    ) -> OrderSelection:
        """The cheapest set of listed orders a request with these terms can be matched with
        (for `requester`, default this account).

        `min_worker_stake`: only workerpools whose policy stakes at least that much per
        contribution, so that every key deciding one of the tasks (a pool's own Sybils
        included) risks at least that much; set it to the task's price to make a pool's
        keys stake what they decide."""
        app_id, dataset_id, pool_id, cat = await self._resolve_terms(
            app, dataset, workerpool, category
        )
        return await self._select_orders(
            app_id,
            dataset_id,
            pool_id,
            cat,
            trust=trust,
            tag=tag,
            max_price=max_price,
            exclude=exclude,
            requester=requester,
            min_worker_stake=min_worker_stake,
        )

    async def _resolve_terms(
        self, app: int | str, dataset: int | str, workerpool: int | str, category: int | str
    ) -> tuple[int, int, int, int]:
        """The ids of a request's app, dataset (0: none), workerpool (0: any) and category,
        each from a name or an id."""
        app_id = await self.resolve("app", app)
        dataset_id = await self.resolve("dataset", dataset) if dataset else 0
        pool_id = await self.resolve("workerpool", workerpool) if workerpool else 0
        return app_id, dataset_id, pool_id, await self.resolve_category(category)

    async def _select_orders(
        self,
        app_id: int,
        dataset_id: int,
        pool_id: int,
        cat: int,
        *,
        trust: int = 1,
        tag: int = 0,
        max_price: int | None = None,
        exclude: Sequence[str] = (),
        requester: str | None = None,
        min_worker_stake: int = 0,
    ) -> OrderSelection:
        """find_orders with the asset ids and the category already resolved (and checked
        on the chain) by the caller."""
        me = to_checksum_address(requester) if requester else self.address
        common = {"usable_by_requester": me, "min_remaining": 1, "limit": CANDIDATES}
        apps, pools = await asyncio.gather(
            self.market.aorders(kind="app", app=app_id, **common),
            self.market.aorders(
                kind="workerpool",
                category=cat,
                min_trust=trust,
                usable_with_app=app_id,
                usable_with_dataset=dataset_id,
                workerpool=pool_id or None,
                **common,
            ),
        )
        datasets: list[ListedOrder | None] = [None]
        if dataset_id:
            datasets = list(
                await self.market.aorders(
                    kind="dataset", dataset=dataset_id, usable_with_app=app_id, **common
                )
            )
        skip = set(exclude)
        apps = [o for o in apps if o.hash not in skip]
        pools = [o for o in pools if o.hash not in skip]
        if min_worker_stake > 0 and pools:
            staked = await self._worker_stakes(pools)
            pools = [o for o in pools if staked[o.hash] >= min_worker_stake]
            if not pools:
                raise NoMatchingOrder(
                    f"No workerpool offering these terms stakes {min_worker_stake} or more per "
                    "worker contribution; lower --min-worker-stake or wait for such an offer."
                )
        if pools:  # a pool whose scheduler is down would only let the deal expire
            pools = await self._live_pools(pools)
        datasets = [o for o in datasets if o is None or o.hash not in skip]
        if not apps:
            raise NoMatchingOrder(
                f"No open app order for app {app_id} is usable by {me}; ask the app's owner "
                "to publish one ('comptoir app publish')."
            )
        if not datasets:
            raise NoMatchingOrder(
                f"No open order of dataset {dataset_id} allows app {app_id} for {me}; ask the "
                "dataset's owner to publish one ('comptoir dataset publish')."
            )
        if not pools:
            raise NoMatchingOrder(
                f"No workerpool offers category {cat} at trust {trust} or more for app "
                f"{app_id}; try another --category or a lower --trust (see 'comptoir orderbook "
                "--kind workerpool')."
            )
        best: OrderSelection | None = None
        for a in apps:
            for d in datasets:
                for p in pools:
                    if _compatible(a, d, p, tag) and (best is None or _price(a, d, p) < best.price):
                        best = OrderSelection(a, p, d)
        if best is None:
            raise NoMatchingOrder(
                "The listed app, dataset and workerpool orders restrict each other or lack "
                f"the tag {tag:#x}; no set of them can be matched together."
            )
        if max_price is not None and best.price > max_price:
            raise NoMatchingOrder(
                f"The cheapest compatible orders cost {best.price} per task, above your max "
                f"price of {max_price}; raise --max-price to at least {best.price}."
            )
        return best

    async def _worker_stakes(self, pools: Sequence[ListedOrder]) -> dict[str, int]:
        """Order hash -> the worker stake a deal with it would hold (the pool's on-chain
        policy, as match_orders computes it)."""
        c = await self.chain()
        ratios: dict[int, int] = {}
        out = {}
        for o in pools:
            pool = int(o.order.workerpool)
            if pool not in ratios:
                ratios[pool] = (await self._call(c.workerpool_policy, pool))[0]
            out[o.hash] = o.price * ratios[pool] // 100
        return out

    # ------------------------------------------------------------ requesters: buying

    async def request(
        self, app: int | str, *, on_progress: ProgressCallback | None = None, **terms: Any
    ) -> list[DealHandle]:
        """Find the best orders, sign a request for `volume` tasks, pre-check the balance
        and match it on-chain (several deals when one set of orders cannot hold the bag);
        `terms` are those of `prepare_request`."""
        prepared = await self.prepare_request(app, on_progress=on_progress, **terms)
        return await self.match_request(prepared, on_progress=on_progress)

    async def prepare_request(
        self,
        app: int | str,
        *,
        dataset: int | str = 0,
        args: str = "",
        volume: int = 1,
        trust: int = 1,
        category: int | str = 0,
        max_price: int | None = None,
        tag: int = 0,
        workerpool: int | str = 0,
        callback: str | None = None,
        beneficiary: str | None = None,
        on_progress: ProgressCallback | None = None,
        min_worker_stake: int = 0,
        seal: bool = False,
        app_owner_reads: str | None = None,
        app_owner_key: str | bytes | None = None,
        callback_owner_key: str | bytes | None = None,
    ) -> PreparedRequest:
        """Find the best orders, pre-check the balance and sign a request for `volume`
        tasks bound to the workerpool chosen (recorded in the journal); nothing is sent.
        `min_worker_stake`: see find_orders. The params carry this wallet's public key, so
        workers seal the logs (and, with a dataset or `seal`, the result) to it.

        `app_owner_reads` (none, logs, all; by default logs unless a dataset or `seal` is
        asked) shares the logs (all: and the result) with the app's owner, whose key is
        read from its order's signature or given as `app_owner_key`.
        `callback_owner_key` seals the result to the owner of `callback` too (the key
        must be that of the callback's ``owner()``); it implies `seal`."""
        if volume < 1:
            raise ConfigError("The volume must be at least 1 task.")
        if trust < 1:
            raise ConfigError("The trust must be at least 1.")
        notify = on_progress or (lambda p: None)
        c = await self.chain()
        await self._call(lifecycle.precheck_request, c, max_price, callback)
        recipients.precheck(app_owner_reads, app_owner_key, callback, callback_owner_key)
        app_id, dataset_id, pool_id, cat = await self._resolve_terms(
            app, dataset, workerpool, category
        )
        notify(Progress("searching", "looking for the cheapest compatible orders", 0, volume))
        # resolved and checked just above: not read again
        sel = await self._select_orders(
            app_id,
            dataset_id,
            pool_id,
            cat,
            trust=trust,
            tag=tag,
            max_price=max_price,
            min_worker_stake=min_worker_stake,
        )
        dataset_price = sel.dataset.price if sel.dataset else 0
        free = await self._call(c.balance, self.address)
        needed = sel.price * volume
        if free < needed:
            raise TransactionRejected(
                f"Your free balance ({free}) cannot pay {volume} task(s) at {sel.price} "
                f"= {needed}; deposit at least {needed - free} more with "
                f"'comptoir account deposit {needed - free}'.",
                reason="poco: requester balance too low",
            )
        others = await self._call(
            self._other_recipients,
            c,
            sel.app,
            app_owner_reads
            or recipients.default_app_owner_reads(
                bool(dataset_id), seal or callback_owner_key is not None
            ),
            app_owner_key,
            callback,
            callback_owner_key,
            explicit=app_owner_reads is not None or app_owner_key is not None,
            note=lambda text: notify(Progress("note", text)),
        )
        # the pool price may rise up to max_price for later partial fills of the same request
        pool_max = max_price - sel.app.price - dataset_price if max_price else sel.workerpool.price
        # bound to the pool it chose: with workerpool 0 anyone who saw the signed request
        # could match it with their own pool and settle it with their own keys
        pool_id = pool_id or sel.workerpool.order.workerpool
        request = RequestOrder(
            app=app_id,
            app_max_price=sel.app.price,
            dataset=dataset_id,
            dataset_max_price=dataset_price,
            workerpool=pool_id,
            workerpool_max_price=pool_max,
            requester=self.address,
            volume=volume,
            tag=tag_bytes(tag),
            category=cat,
            trust=trust,
            # the hub checks the pool's stake policy at match time: a pool that lowers it
            # after this choice cannot take the request
            min_worker_stake=min_worker_stake,
            beneficiary=to_checksum_address(beneficiary) if beneficiary else self.address,
            callback=to_checksum_address(callback) if callback else ZERO_ADDRESS,
            params=self._sealed_params(args, seal, others),
        )
        signature = c.sign_order(request)
        self.journal.record(c.order_hash(request), request)
        return PreparedRequest(sel, request, signature, min_worker_stake)

    async def match_request(
        self, prepared: PreparedRequest, on_progress: ProgressCallback | None = None
    ) -> list[DealHandle]:
        """Match a prepared request on-chain, again with the next cheapest orders of its
        workerpool while volume is left and its signed maxima allow."""
        notify = on_progress or (lambda p: None)
        c = await self.chain()
        sel, request, signature = prepared.selection, prepared.order, prepared.signature
        volume, app_id = request.volume, request.app
        dataset_price, pool_max = request.dataset_max_price, request.workerpool_max_price
        search = {
            "dataset": request.dataset,
            "category": request.category,
            "trust": request.trust,
            "tag": int.from_bytes(request.tag, "big"),
            "workerpool": request.workerpool,
            "min_worker_stake": prepared.min_worker_stake,
        }
        deals: list[DealHandle] = []
        matched = 0
        tried: list[str] = []
        while matched < volume:
            try:
                deal = await self._call(self._match, c, sel, request, signature)
            except TransactionRejected as exc:
                # the market may still list an order consumed or cancelled on-chain
                if not (exc.reason and "cancelled or fully consumed" in exc.reason):
                    raise
                tried += [o.hash for o in (sel.app, sel.workerpool, sel.dataset) if o]
            else:
                _check_deal(deal, sel, request)
                deals.append(deal)
                matched += deal.volume
                notify(
                    Progress(
                        "matched",
                        f"deal {deal.deal_id} of {deal.volume} task(s) at "
                        f"{deal.deal.task_price} per task with workerpool {deal.workerpool}",
                        matched,
                        volume,
                    )
                )
                if matched >= volume:
                    break
                tried += [
                    o.hash
                    for o in (sel.app, sel.workerpool, sel.dataset)
                    if o and o.remaining <= deal.volume
                ]
            try:
                nxt = await self.find_orders(
                    app_id,
                    max_price=sel.app.price + dataset_price + pool_max,
                    exclude=tried,
                    **search,  # type: ignore[arg-type]
                )
            except NoMatchingOrder:
                if not deals:
                    raise
                notify(
                    Progress(
                        "matched",
                        f"only {matched} of {volume} task(s) found orders",
                        matched,
                        volume,
                    )
                )
                break
            if (
                nxt.app.price > sel.app.price
                or (nxt.dataset.price if nxt.dataset else 0) > dataset_price
            ):
                break  # the request's signed maxima no longer fit: keep what was matched
            sel = nxt
        return deals

    async def fulfil(
        self,
        request: RequestOrder,
        signature: bytes = b"",
        on_progress: ProgressCallback | None = None,
    ) -> list[DealHandle]:
        """Match someone else's request (signed, or presigned on-chain, e.g. by a requester
        contract) with the cheapest compatible orders; this account only pays the gas."""
        notify = on_progress or (lambda p: None)
        c = await self.chain()
        deals: list[DealHandle] = []
        remaining = request.volume - await self._call(c.consumed, request)
        while remaining > 0:
            sel = await self.find_orders(
                request.app,
                dataset=request.dataset,
                category=request.category,
                trust=request.trust,
                tag=int.from_bytes(request.tag, "big"),
                workerpool=request.workerpool,
                requester=request.requester,
            )
            if (
                sel.app.price > request.app_max_price
                or sel.workerpool.price > request.workerpool_max_price
                or (sel.dataset.price if sel.dataset else 0) > request.dataset_max_price
            ):
                raise NoMatchingOrder(
                    f"The cheapest compatible orders cost {sel.price} per task, above what "
                    f"the request allows; publish cheaper orders or ask with higher maxima."
                )
            deal = await self._call(self._match, c, sel, request, signature)
            deals.append(deal)
            remaining -= deal.volume
            notify(Progress("matched", f"deal {deal.deal_id} of {deal.volume} task(s)"))
        return deals

    def _match(
        self, c: ChainClient, sel: OrderSelection, request: RequestOrder, sig: bytes
    ) -> DealHandle:
        c.match_orders(
            sel.app.order,
            sel.app.signature,
            sel.dataset.order if sel.dataset else None,
            sel.dataset.signature if sel.dataset else b"",
            sel.workerpool.order,
            sel.workerpool.signature,
            request,
            sig,
        )
        created = c.deal_created(c.last_receipt)
        handle = _handle(created)
        self.journal.record_deal(handle.deal_id, handle.workerpool)
        return handle

    async def run(
        self,
        app: int | str,
        *,
        dataset: int | str = 0,
        args: str = "",
        volume: int = 1,
        trust: int = 1,
        category: int | str = 0,
        max_price: int | None = None,
        tag: int = 0,
        workerpool: int | str = 0,
        callback: str | None = None,
        output: str | Path | None = None,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        min_worker_stake: int = 0,
        seal: bool = False,
        app_owner_reads: str | None = None,
        app_owner_key: str | bytes | None = None,
        callback_owner_key: str | bytes | None = None,
    ) -> AsyncIterator[TaskResult]:
        """Request, match, then yield each task as it settles, its result downloaded and
        checked against the on-chain digest (``status == "verified"``). Who else reads
        the logs or result: see `prepare_request`."""
        deals = await self.request(
            app,
            dataset=dataset,
            args=args,
            volume=volume,
            trust=trust,
            category=category,
            max_price=max_price,
            tag=tag,
            workerpool=workerpool,
            callback=callback,
            on_progress=on_progress,
            min_worker_stake=min_worker_stake,
            seal=seal,
            app_owner_reads=app_owner_reads,
            app_owner_key=app_owner_key,
            callback_owner_key=callback_owner_key,
        )
        async for task in self.watch(
            deals, output=output, timeout=timeout, on_progress=on_progress
        ):
            yield task

    async def watch(
        self,
        deals: Sequence[DealHandle],
        *,
        output: str | Path | None = None,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> AsyncIterator[TaskResult]:
        """Yield the tasks of `deals` as they settle (TaskFinalized / TaskClaimed), each
        result fetched and verified; claims refunds for tasks past their final deadline."""
        notify = on_progress or (lambda p: None)
        c = await self.chain()
        out = Path(output) if output else self.config.settings.home / "results"
        by_id = {d.deal_id: d for d in deals}
        pending = {(d.deal_id, i) for d in deals for i in range(d.volume)}
        total, done = len(pending), 0
        first_block = min((d.block for d in deals), default=0)
        cursor = first_block
        started = time.monotonic()
        notify(Progress("waiting", f"waiting for {total} task(s) to settle", 0, total))
        while pending:
            # one read per look: the head block's number and time (a look that finds no
            # new block costs nothing more; the claim check reads the same block's time)
            number, chain_now = await self._call(c.head)
            # only what is final at the network's depth is reported (verified, refunded)
            head = number - c.scan_policy.confirmations
            if head < cursor - 1:  # the chain went back (rollback, reorg): look again
                cursor = first_block
            found: list[ev.TaskFinalized | ev.TaskClaimed] = []
            if head >= cursor:
                found = await self._call(chainscan.settlements, c, list(by_id), cursor, head)
            cursor = max(cursor, head + 1)
            for e in found:
                key = (_hex(e.deal_id), int(e.index))
                if key not in pending:
                    continue
                notify(Progress("settled", f"task {key[1]} settled on-chain", done, total))
                task = await self._settled(by_id[key[0]], e, out)
                if not await self._call(chainscan.still_settled, c, e):
                    cursor = first_block  # undone while we fetched it: wait for it again
                    continue
                pending.discard(key)
                done += 1
                notify(Progress("task", f"task {task.index}: {task.status}", done, total, task))
                yield task
            if not pending:
                break
            if timeout is not None and time.monotonic() - started > timeout:
                raise ResultError(
                    f"{len(pending)} task(s) still running after {timeout:.0f} s; follow them "
                    f"with 'comptoir deal show {next(iter(pending))[0]}'."
                )
            await self._claim_expired(c, by_id, pending, chain_now)
            await asyncio.sleep(self._poll_s)
        notify(Progress("done", f"{done} task(s) settled", done, total))

    @property
    def _poll_s(self) -> float:
        """Pause between two looks at the chain: short on the local devnet, gentler on a
        named network's provider."""
        return LOCAL_POLL_S if self.config.settings.network is None else POLL_S

    async def _claim_expired(
        self,
        c: ChainClient,
        deals: dict[str, DealHandle],
        pending: set[tuple[str, int]],
        now: int,
    ) -> None:
        """Claim the refund of pending tasks past their deal's final deadline at the chain's
        time `now` (the head block's)."""
        for deal_id, d in deals.items():
            if now < d.deal.final_deadline:
                continue
            indices = sorted(i for did, i in pending if did == deal_id)
            if indices:
                with contextlib.suppress(ChainError):  # someone else may have claimed first
                    await self._call(c.claim, d.deal, indices)

    async def _settled(
        self, deal: DealHandle, e: ev.TaskFinalized | ev.TaskClaimed, out: Path
    ) -> TaskResult:
        task_id = _hex(e.task_id)
        if isinstance(e, ev.TaskClaimed):
            return TaskResult(
                deal.deal_id,
                task_id,
                e.index,
                "claimed",
                None,
                message="not computed before the deadline; the price was refunded",
            )
        dest = out / deal.deal_id[:18] / str(e.index)
        return await self._fetch_result(deal, task_id, int(e.index), e.digest, dest)

    async def _fetch_result(
        self, deal: DealHandle, task_id: str, index: int, digest: bytes, dest: Path
    ) -> TaskResult:
        base = TaskResult(deal.deal_id, task_id, index, "unavailable", _hex(digest))
        url = await self.scheduler_url(deal.workerpool)
        if url is None:
            return dataclasses.replace(
                base,
                message=f"workerpool {deal.workerpool} records no endpoint on-chain (its owner "
                f"sets one with 'comptoir pool serve --advertise URL'); or set "
                f"COMPTOIR_SCHEDULER_URLS={deal.workerpool}=<url>",
            )
        blob = await self._result_blob(url, task_id)
        if blob is None:
            return TaskResult(
                deal.deal_id,
                task_id,
                index,
                "unavailable",
                _hex(digest),
                message=f"the scheduler at {url} lists no result for this task",
            )
        try:
            data = await self.storage.adownload(blob)
        except StorageError as exc:
            return TaskResult(
                deal.deal_id, task_id, index, "unavailable", _hex(digest), message=str(exc)
            )
        logs: sealed.Logs | None = None
        if sealed.is_envelope(data):
            try:
                opened = self._open_envelope(data)
            except ResultError as exc:  # altered or malformed: never unpacked
                return dataclasses.replace(base, status="mismatch", message=str(exc).rstrip("."))
            if opened.result is None:
                return dataclasses.replace(base, status="sealed", message=_sealed_away(opened))
            data, logs = opened.result, opened.logs
        determinism = await self._app_determinism(deal.app)
        has_callback = int(deal.deal.callback, 16) != 0
        checked = await self._call(check_result, data, digest, dest, determinism, has_callback)
        status, message = checked.status, checked.message
        if logs is not None:
            write_logs(dest, logs)
        unbound = self._unbound(deal)
        if unbound is not None and status in ("verified", "failed"):
            status, message = "unbound", unbound
        return TaskResult(
            deal.deal_id,
            task_id,
            index,
            status,
            _hex(digest),
            dest,
            checked.files,
            message,
            checked.preview,
            *log_tails(logs),
        )

    def _open_envelope(self, data: bytes) -> sealed.Opened:
        """The envelope, decrypted when this wallet is its recipient."""
        public = sealed.open_envelope(data)
        if self.account is None or public.reader_of(self.account.address) is None:
            return public
        return sealed.open_envelope(data, bytes(self.account.key))

    def _other_recipients(
        self,
        c: ChainClient,
        app_order: ListedOrder,
        app_owner_reads: str,
        app_owner_key: str | bytes | None,
        callback: str | None,
        callback_owner_key: str | bytes | None,
        *,
        explicit: bool,
        note: Callable[[str], None],
    ) -> list[sealed.Recipient]:
        """The app's and the callback's owners the result is also sealed to, pre-checked."""
        found = []
        owner = recipients.app_owner(
            c, app_order, self.address, app_owner_reads, app_owner_key, explicit=explicit, note=note
        )
        if owner is not None:
            found.append(owner)
        if callback_owner_key is not None:
            found.append(recipients.callback_owner(c, callback, callback_owner_key))
        return found

    def _sealed_params(self, args: str, seal: bool, others: Sequence[sealed.Recipient]) -> str:
        """The request's params: the result terms naming this wallet's key (and the other
        recipients'), then `args`."""
        key = sealed.public_key_of(bytes(self._signer().key))
        params = sealed.request_params(args, key, seal, others)
        if len(params.encode()) > MAX_PARAMS_BYTES:
            room = MAX_PARAMS_BYTES - (len(params.encode()) - len(args.encode()))
            raise ConfigError(
                f"The task arguments are {len(args.encode())} bytes but at most {room} fit "
                "beside the result keys in a request; shorten them, pass a dataset, or "
                "share less (--app-owner-reads none)."
            )
        return params

    def _unbound(self, deal: DealHandle) -> str | None:
        """Why this deal's result cannot be called verified, or None when this SDK made the
        deal, or signed its request bound to that pool (this home's journal)."""
        if self.journal.made_here(deal.deal_id, deal.workerpool):
            return None
        signed = self.journal.find(deal.deal.request_hash)
        if (
            signed is not None
            and signed.requester == to_checksum_address(deal.deal.requester)
            and signed.workerpool != 0
            and signed.workerpool == deal.workerpool
        ):
            return None
        return (
            f"deal {deal.deal_id} was not made here nor from a request signed here for "
            f"workerpool {deal.workerpool}, so whoever matched it chose who computed it; "
            "the digest matches the chain but the result is not verified as yours"
        )

    async def _result_blob(self, scheduler_url: str, task_id: str) -> str | None:
        deadline = time.monotonic() + RESULT_WAIT_S
        while True:
            try:
                resp = await self.http.get(f"{scheduler_url}/v1/tasks/{task_id}")
                if resp.status_code == 200 and resp.json().get("result_blob"):
                    return str(resp.json()["result_blob"])
            except (httpx.HTTPError, ValueError):
                pass
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(self._poll_s)

    async def _app_determinism(self, app: int) -> str | None:
        if app not in self._determinism:
            c = await self.chain()
            info = await self._call(c.asset, app)
            package = await self.storage.adownload(info.checksum.hex())
            self._determinism[app] = await self._call(app_determinism, package, info.app_type)
        return self._determinism[app]

    # ------------------------------------------------------------ deals, tasks, results

    async def deal(self, deal_id: str) -> DealStatus:
        """A deal's terms and the state of each of its tasks (chain, plus the scheduler's view)."""
        c = await self.chain()
        did = _norm_id(deal_id)
        created = await self._call(chainscan.find_deal, c, did)
        if created is None:
            raise ConfigError(f"No deal {did} exists on this chain; check the id.")
        settled = {int(e.index): e for e in await self._call(chainscan.settlements, c, [did])}
        sched = await self._scheduler_deal(created.workerpool, did)
        expired = await self._call(c.timestamp) >= created.deal.final_deadline
        tasks = []
        for i in range(created.deal.volume):
            tid = _hex(created.deal.task_id(i))
            s = settled.get(i)
            if isinstance(s, ev.TaskFinalized):
                tasks.append(TaskStatus(tid, did, i, "finalized", _hex(s.digest)))
            elif isinstance(s, ev.TaskClaimed):
                tasks.append(TaskStatus(tid, did, i, "claimed"))
            elif expired:  # nobody may settle it any more; anyone may claim its refund
                tasks.append(TaskStatus(tid, did, i, lifecycle.EXPIRED))
            else:
                tasks.append(TaskStatus(tid, did, i, sched.get(tid, "pending")))
        d = created.deal
        return DealStatus(
            did,
            d.requester,
            created.app,
            created.dataset,
            created.workerpool,
            created.category,
            d.trust,
            d.volume,
            d.task_price,
            d.scheduler,
            d.final_deadline,
            created.block_number,
            created.params,
            tuple(tasks),
        )

    async def _scheduler_deal(self, workerpool: int, deal_id: str) -> dict[str, str]:
        url = await self.scheduler_url(workerpool)
        if url is None:
            return {}
        try:
            resp = await self.http.get(f"{url}/v1/deals/{deal_id}")
            if resp.status_code != 200:
                return {}
            return {t["task_id"].lower(): str(t["status"]) for t in resp.json().get("tasks", [])}
        except (httpx.HTTPError, ValueError, KeyError):
            return {}

    async def task(self, task_id: str) -> TaskStatus:
        """One task: settled on-chain (digest), else what its scheduler says."""
        c = await self.chain()
        tid = _norm_id(task_id)
        s = await self._call(chainscan.task_settlement, c, tid)
        view: dict[str, Any] = {}
        for url in self.config.schedulers.values():
            try:
                resp = await self.http.get(f"{url}/v1/tasks/{tid}")
            except httpx.HTTPError:
                continue
            if resp.status_code == 200:
                view = resp.json()
                break
        replicas = tuple(view.get("replicas") or ())
        blob = view.get("result_blob")
        if isinstance(s, ev.TaskFinalized):
            reason = lifecycle.failure_reason(view.get("failure"))
            return TaskStatus(
                tid,
                _hex(s.deal_id),
                s.index,
                "failed" if reason else "finalized",
                _hex(s.digest),
                blob,
                replicas,
                reason,
                _hex(s.tx_hash) if s.tx_hash else None,
            )
        if isinstance(s, ev.TaskClaimed):
            return TaskStatus(tid, _hex(s.deal_id), s.index, "claimed", None, blob, replicas)
        if view:
            return TaskStatus(
                tid,
                str(view["deal_id"]),
                int(view["index"]),
                str(view["status"]),
                view.get("digest"),
                blob,
                replicas,
            )
        found = await self._call(self._find_task, c, tid)
        if found is None:
            raise ConfigError(f"No task {tid} is known on this chain or to the known schedulers.")
        created = await self._call(chainscan.find_deal, c, found[0])
        now = await self._call(c.timestamp)
        expired = created is not None and now >= created.deal.final_deadline
        return TaskStatus(tid, found[0], found[1], lifecycle.EXPIRED if expired else "pending")

    @staticmethod
    def _find_task(c: ChainClient, tid: str) -> tuple[str, int] | None:
        for created in chainscan.all_deals(c):
            for i in range(min(created.deal.volume, 100_000)):
                if _hex(created.deal.task_id(i)) == tid:
                    return _hex(created.deal_id), i
        return None

    async def logs(self, task_id: str) -> TaskLogs:
        """The app's stdout/stderr tails for a task whose result a worker revealed; they
        are sealed to the requester (and to the app's owner when the request shares
        them), so this wallet must be one of theirs."""
        st = await self.task(task_id)
        if not st.result_blob:
            raise ResultError(
                f"No worker has revealed a result of task {st.task_id} yet, so there are no "
                f"logs; follow it with 'comptoir task show {st.task_id} --watch'."
            )
        data = await self.storage.adownload(st.result_blob)
        if not sealed.is_envelope(data):
            raise ResultError(
                f"Task {st.task_id} was requested without a result key, so its workers kept "
                "no logs; requests made with 'comptoir run' or the SDK always carry one."
            )
        opened = self._open_envelope(data)
        if opened.logs is None:
            which = (
                "that wallet" if _reader_count(opened, sealed.LOGS) == 1 else "one of those wallets"
            )
            raise ResultError(
                f"The logs of task {st.task_id} are sealed to "
                f"{opened.who_reads(sealed.LOGS)}; pass {which} with --wallet."
            )
        out, err = log_tails(opened.logs)
        return TaskLogs(st.task_id, st.result_blob, out, err)

    async def watch_task(self, task_id: str, interval: float = 1.0) -> AsyncIterator[TaskStatus]:
        """Yield the task's status each time it changes, until it is settled."""
        last: tuple[str, int] | None = None
        while True:
            st = await self.task(task_id)
            key = (st.status, len([r for r in st.replicas if r.get("status")]))
            if key != last:
                last = key
                yield st
            if st.status in ("finalized", "failed", "claimed"):
                return
            await asyncio.sleep(interval)

    async def result(self, task_id: str, output: str | Path | None = None) -> TaskResult:
        """Download a settled task's result and verify it against the on-chain digest."""
        c = await self.chain()
        tid = _norm_id(task_id)
        s = await self._call(chainscan.task_settlement, c, tid)
        if s is None:
            raise ResultError(
                f"Task {tid} is not settled yet; follow it with 'comptoir task show {tid} --watch'."
            )
        created = await self._call(chainscan.find_deal, c, s.deal_id)
        if created is None:  # pragma: no cover - a settled task always has its deal
            raise ResultError(f"The deal of task {tid} cannot be found.")
        handle = _handle(created)
        if isinstance(s, ev.TaskClaimed):
            return TaskResult(
                handle.deal_id,
                tid,
                s.index,
                "claimed",
                None,
                message="the task expired and was refunded; it has no result",
            )
        out = Path(output) if output else self.config.settings.home / "results"
        result = await self._fetch_result(
            handle, tid, s.index, s.digest, out / handle.deal_id[:18] / str(s.index)
        )
        if result.status in ("unavailable", "sealed"):
            raise ResultError(f"The result of task {tid} cannot be read: {result.message}.")
        if not await self._call(chainscan.still_settled, c, s):
            raise ResultError(
                f"Task {tid} is no longer settled on the chain (it went back while the result "
                f"was fetched); follow it with 'comptoir task show {tid} --watch'."
            )
        return result

    # ------------------------------------------------------------ lifecycle verbs

    async def assets(self, kind: str, owner: str | None = None) -> list[AssetView]:
        """Every registered app, dataset or workerpool (of `owner` when given), with its
        owner and open orders (orders None when the market is unreachable)."""
        c = await self.chain()
        ids = await self._call(lifecycle.asset_ids, c, _kind(kind), owner)
        by_asset: dict[int, list[ListedOrder]] | None = {}
        try:
            listed = await self.market.aorders(kind=_kind(kind), status="open", limit=500)
        except (MarketError, ConfigError):
            by_asset = None
        else:
            for o in listed:
                by_asset.setdefault(o.asset, []).append(o)  # type: ignore[union-attr]
        return [
            await self._call(
                lifecycle.asset_view,
                c,
                _kind(kind),
                a,
                by_asset.get(a, []) if by_asset is not None else None,
            )
            for a in ids
        ]

    async def show_asset(self, kind: str, ref: int | str) -> AssetView:
        """One asset by id or name: owner, checksum, location, open orders and prices."""
        c = await self.chain()
        asset = await self.resolve(_kind(kind), ref)
        orders: list[ListedOrder] | None
        try:
            filters = {_kind(kind): asset}
            orders = await self.market.aorders(kind=_kind(kind), status="open", **filters)
        except (MarketError, ConfigError):
            orders = None
        return await self._call(lifecycle.asset_view, c, _kind(kind), asset, orders)

    async def cancel_order(self, order_hash: str) -> CancelledOrder:
        """Cancel one of your orders on the hub (it can never match again) and delist it."""
        c = await self.chain()
        digest = _norm_id(order_hash)
        listed = await self.market.aget(digest)
        if to_checksum_address(listed.owner) != self.address:
            raise ConfigError(
                f"Order {digest[:12]}… was signed by {listed.owner}, not by you; only its "
                "signer can cancel it."
            )
        consumed = await self._call(c.consumed, listed.order)
        onchain, tx = False, None
        if consumed < int(listed.order.volume):  # not yet cancelled nor filled
            await self._call(c.cancel_order, listed.order)
            onchain, tx = True, self.transactions[-1] if self.transactions else None
        if listed.status == "open":
            with contextlib.suppress(MarketError):  # the market's chain sync may be first
                await self.market.acancel(digest, self._signer(), c.chain_id, c.deployment.hub)
        return CancelledOrder(digest, listed.kind, listed.asset, onchain, tx)

    async def unpublish(self, kind: str, ref: int | str) -> list[CancelledOrder]:
        """Cancel every open order of one of your assets (market and hub)."""
        c = await self.chain()
        asset = await self.resolve(_kind(kind), ref)
        await self._call(lifecycle.check_owner, c, _kind(kind), asset, self.address)
        filters = {_kind(kind): asset}
        listed = await self.market.aorders(
            kind=_kind(kind), status="open", owner=self.address, limit=500, **filters
        )
        return [await self.cancel_order(o.hash) for o in listed]

    async def deals(self, role: str = "requester", address: str | None = None) -> list[DealSummary]:
        """Your deals as requester, as a pool's scheduler, or as a worker, newest first."""
        c = await self.chain()
        return await self._call(lifecycle.list_deals, c, address or self.address, role)

    async def claim_deal(self, deal_id: str) -> Claimed:
        """Refund a deal's unsettled tasks after its final deadline (anyone may claim)."""
        c = await self.chain()
        return await self._call(lifecycle.claim, c, _norm_id(deal_id))

    async def claim_task(self, task_id: str) -> Claimed:
        """Refund one unsettled task after its deal's final deadline."""
        c = await self.chain()
        st = await self.task(task_id)
        return await self._call(lifecycle.claim, c, st.deal_id, [st.index])

    async def send(self, to: str, amount: int | str) -> Sent:
        """Send tokens (``1000``, ``5CPT``) or ether (``0.1ETH``) from this wallet."""
        from comptoir.sdk.amounts import parse_value

        units, currency = parse_value(amount)
        c = await self.chain()
        return await self._call(lifecycle.send, c, to, units, currency)

    async def pool_status(self, workerpool: int | str) -> dict[str, Any]:
        """The pool's scheduler view: tasks by status, workers online, active deals."""
        return await self._scheduler_get(workerpool, "/v1/status")

    async def pool_workers(self, workerpool: int | str) -> list[dict[str, Any]]:
        """The workers registered with a pool's scheduler (online, score, capabilities)."""
        return list(await self._scheduler_get(workerpool, "/v1/workers"))

    async def _scheduler_get(self, workerpool: int | str, path: str) -> Any:
        pool = await self.resolve("workerpool", workerpool)
        url = await self.scheduler_url(pool)  # configured, else its on-chain endpoint
        if url is None:
            raise ConfigError(
                f"Workerpool {pool} records no endpoint on-chain; ask its owner to run "
                f"'comptoir pool advertise', or set COMPTOIR_SCHEDULER_URLS={pool}=<url>."
            )
        try:
            resp = await self.http.get(f"{url}{path}")
            resp.raise_for_status()
            return resp.json()
        except (httpx.HTTPError, ValueError):
            raise SchedulerError(
                f"The scheduler of workerpool {pool} at {url} does not answer; check that "
                "'comptoir pool serve' runs there."
            ) from None

    def _signer(self) -> LocalAccount:
        if self.account is None:
            raise ConfigError("This needs an account; pass --wallet (or a wallet to the SDK).")
        return self.account


def _kind(kind: str) -> str:
    """'pool' is what the CLI calls a workerpool."""
    found = {"app": "app", "dataset": "dataset", "pool": "workerpool", "workerpool": "workerpool"}
    if kind not in found:
        raise ConfigError(f"{kind!r} is not an asset kind; use app, dataset or workerpool.")
    return found[kind]


def _handle(created: ev.DealCreated) -> DealHandle:
    return DealHandle(
        _hex(created.deal_id),
        created.deal,
        created.block_number,
        created.app,
        created.dataset,
        created.workerpool,
        created.category,
        created.params,
        _hex(created.tx_hash) if created.tx_hash else "",
    )


def _check_deal(deal: DealHandle, sel: OrderSelection, request: RequestOrder) -> None:
    """The deal the hub made is the one chosen: its pool, its scheduler and the owners the
    listed orders were signed by (an asset transferred in between would pay someone else)."""
    expected = {
        "workerpool": (deal.workerpool, request.workerpool),
        "scheduler": (deal.deal.scheduler, sel.workerpool.owner),
        "app owner": (deal.deal.app_owner, sel.app.owner),
    }
    if sel.dataset is not None:
        expected["dataset owner"] = (deal.deal.dataset_owner, sel.dataset.owner)
    for what, (got, want) in expected.items():
        if str(got).lower() != str(want).lower():
            raise ResultError(
                f"Deal {deal.deal_id} was made with {what} {got}, not the {want} this request "
                "chose; its results will not be reported as verified."
            )


def _price(a: ListedOrder, d: ListedOrder | None, p: ListedOrder) -> int:
    return a.price + p.price + (d.price if d else 0)


def _compatible(a: ListedOrder, d: ListedOrder | None, p: ListedOrder, tag: int) -> bool:
    """The hub's cross-restrictions and tag rule (poco.vy match_orders)."""
    app, pool = a.order, p.order
    dataset_id = d.order.dataset if d else 0
    required = (
        tag | int.from_bytes(app.tag, "big") | (int.from_bytes(d.order.tag, "big") if d else 0)
    )
    if required & ~int.from_bytes(pool.tag, "big"):
        return False
    if app.dataset_restrict not in (0, dataset_id) or app.workerpool_restrict not in (
        0,
        pool.workerpool,
    ):
        return False
    if pool.app_restrict not in (0, app.app) or pool.dataset_restrict not in (0, dataset_id):
        return False
    return not (
        d is not None
        and (
            d.order.app_restrict not in (0, app.app)
            or d.order.workerpool_restrict not in (0, pool.workerpool)
        )
    )


__all__ = ["Comptoir", "ComptoirError", "ProgressCallback"]


def _sealed_away(opened: sealed.Opened) -> str:
    """Why this wallet cannot read a sealed result (it is no recipient, or reads only the
    logs)."""
    readers = opened.who_reads(sealed.RESULT)
    if opened.reader is not None:
        return (
            f"the result is sealed to {readers}; your wallet ({opened.reader.describe()}) "
            "reads only the logs, with 'comptoir task show TASK --logs'"
        )
    which = "that wallet" if _reader_count(opened, sealed.RESULT) == 1 else "those wallets"
    return f"the result is sealed to {readers}; only {which} can read it (pass one with --wallet)"


def _reader_count(opened: sealed.Opened, section: str) -> int:
    return sum(section in r.reads for r in opened.readers)
