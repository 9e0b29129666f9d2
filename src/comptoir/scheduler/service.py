"""The scheduler's chain side: watcher, reconciliation, lease expiry, finalizer, claimer.

One loop runs the steps in order every poll interval; each step catches its own errors
(an unreachable node, a rejected transaction) so one failure never stops the others.
Chain calls are synchronous web3 calls run in threads; state changes go through
:mod:`comptoir.scheduler.state` on the database thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import structlog
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from comptoir.backoff import Backoff
from comptoir.chain import eip712
from comptoir.chain import events as ev
from comptoir.chain.client import AssetInfo, ChainClient, SignedContribution, connect
from comptoir.chain.types import Deal, result_hash
from comptoir.exceptions import ChainError, TransactionRejected
from comptoir.scheduler import consensus, stakelock, state
from comptoir.scheduler.db import ABANDONED, CLAIMED, FINALIZED, SETTLED, Database
from comptoir.scheduler.metrics import SchedulerMetrics
from comptoir.scheduler.settings import SchedulerSettings

log = structlog.get_logger("comptoir.scheduler")

MAX_CLAIM = 256  # hub: indices per claim
RECONCILE_TASKS = 500  # is_settled checks per reconciliation pass
# online workers whose standing (score, balance, lock) a pass reads again, stalest first:
# a pass costs the same with 10 000 workers as with 1 000 (three calls each); standings
# are also read at registration, after each finalize and, for a worker a stake or lock
# keeps from work, at its empty pulls (standing_ttl_s)
RECONCILE_WORKERS = 1000
MAX_SCAN_CHUNKS = 20  # log ranges the watcher queries per loop iteration
LOOP_BACKOFF_CAP_S = 5.0  # longest pause between loop iterations while steps fail
METRICS_EVERY_S = 10.0  # the loop's own refresh of the task gauges
ROLLBACK_HORIZON_S = 3600  # settlements of deals this long past their final deadline are final


def contribution_signer(c: SignedContribution, chain_id: int, hub: str) -> str | None:
    """The address that signed a contribution (EIP-712, compact r/vs), or None."""
    return eip712.recover_contribution_signer(
        c.task_id, c.result_hash, c.result_seal, c.r, c.vs, chain_id, hub
    )


class ChainClock:
    """Chain time estimate: the latest block's timestamp, moved forward by wall time since
    a new block was last seen (an idle anvil mines no block, and its clock may be shifted
    by evm_increaseTime, so neither alone is right)."""

    def __init__(self) -> None:
        self.block = -1
        self.offset = 0.0
        self.latest_ts = 0

    def observe(self, block: int, timestamp: int) -> None:
        if block != self.block:
            self.block = block
            self.offset = timestamp - time.time()
        self.latest_ts = timestamp

    def now(self) -> int:
        return max(self.latest_ts, int(time.time() + self.offset))


class Scheduler:
    """Background work of one workerpool's scheduler."""

    def __init__(
        self,
        settings: SchedulerSettings,
        db: Database,
        metrics: SchedulerMetrics,
        client: ChainClient | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.metrics = metrics
        if client is None:
            w3 = connect(settings.rpc_url, settings.rpc_timeout, check=False)
            account: LocalAccount = Account.from_key(settings.private_key)
            client = ChainClient(w3, settings.deployment, account, settings.tx_timeout)
        self.client = client
        self.address = to_checksum_address(client.address)
        self.clock = ChainClock()
        self._categories: dict[int, int] = {}
        self._last_reconcile = 0.0
        self._last_metrics = 0.0
        self._reconcile_after = ""
        self._settled_after = ""
        self._chain_went_back = False
        self._failing: dict[str, int] = {}  # step -> consecutive failures (for the logs)
        self._stop = asyncio.Event()
        self.wake = asyncio.Event()  # set by the API when there is work for the finalizer
        # pulsed when replicas may be wanted (a new deal, lost or given-back replicas):
        # workers long-polling work/next ask again at once
        self.new_work = asyncio.Event()
        self.work_generation = 0

    # ------------------------------------------------------------ helpers

    def work_appeared(self) -> None:
        """Wake every long-polling work/next (set wakes the current waiters; clear makes
        the next ones wait again); the generation tells a request that checked the
        database just before the pulse to look again."""
        self.work_generation += 1
        self.new_work.set()
        self.new_work.clear()

    async def chain(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    def authorize(self, worker: str, task_id: bytes) -> bytes:
        return self.client.authorize(worker, task_id)

    async def refresh_clock(self) -> int:
        block = await self.chain(self.client.w3.eth.get_block, "latest")
        self.clock.observe(int(block["number"]), int(block["timestamp"]))
        return int(block["number"])

    async def refresh_workers(self, addresses: set[str]) -> dict[str, int]:
        """Read scores, free balances and locks from the chain (batched calls) into the
        database; returns scores."""
        read = await self.chain(self.client.worker_standings, sorted(addresses))
        # the database keys workers by the address they registered with
        by_lower = {a.lower(): a for a in addresses}
        standings = {by_lower[a.lower()]: s for a, s in read.items()}
        now = time.time()
        await self.db.run(lambda c: stakelock.store_standings(c, standings, now))
        return {a: s.score for a, s in standings.items()}

    async def settled(self, deal_id: bytes, indices: list[int]) -> set[int]:
        """Which of the deal's task `indices` are settled on-chain (batched calls)."""
        if not indices:
            return set()
        return set(await self.chain(self.client.settled_indices, deal_id, indices))

    # ------------------------------------------------------------ loop

    def stop(self) -> None:
        self._stop.set()
        self.wake.set()

    async def run(self) -> None:
        log.info("scheduler.start", scheduler=self.address, workerpool=self.settings.workerpool)
        # the time we were down must not count as the workers' silence or slowness
        restarted = await self.db.run(lambda c: state.restart_clocks(c, time.time()))
        if restarted:
            log.info("scheduler.reveals_restarted", tasks=restarted)
        poll = self.settings.poll_interval_s
        # while something keeps failing (node down, say), iterations space out with jitter
        backoff = Backoff(poll, cap_s=max(poll, LOOP_BACKOFF_CAP_S))
        while not self._stop.is_set():
            # cleared before the step: a reveal that wakes us mid-step (after the
            # finalizer ran) starts the next step at once instead of after `poll`
            self.wake.clear()
            healthy = await self.step()
            if healthy:
                backoff.reset()
            delay = poll if healthy else backoff.next_delay()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=delay)
        log.info("scheduler.stop")

    async def step(self) -> bool:
        """One pass of every step; False when one of them failed (it is retried)."""
        healthy = True
        for name, fn in (
            # first: a reveal (it makes its task ready) wakes the loop for the finalizer
            ("finalize", self.finalize),
            ("watch", self.watch),
            ("leases", self.expire_leases),
            ("reveal", self.reveal_tick),
            ("onchain", self.drive_onchain),
            ("claim", self.claim),
            ("reconcile", self.maybe_reconcile),
            ("metrics", self.refresh_metrics),
        ):
            try:
                await fn()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the other steps going whatever happens
                # retried at the next iteration (backed off, sooner when woken)
                healthy = False
                failures = self._failing.get(name, 0) + 1
                self._failing[name] = failures
                self.metrics.step_retries.labels(step=name).inc()
                log.warning(
                    f"scheduler.{name}_failed",
                    error=str(exc),
                    kind=type(exc).__name__,
                    attempt=failures,
                )
            else:
                if self._failing.pop(name, 0):
                    log.info(f"scheduler.{name}_recovered")
        return healthy

    # ------------------------------------------------------------ watcher

    async def watch(self) -> None:
        head = await self.refresh_clock() - self.settings.confirmations
        start = await self.db.run(state.get_cursor)
        if start is None:
            first = self.settings.start_block
            start = (first if first is not None else self.settings.deployment.block) - 1
        if head < start:
            # the node went back (restarted from an older state, reorg): rescan from a
            # window behind its head rather than wait for it to pass our cursor again
            back = max(head - self.settings.reconcile_window_blocks, self.settings.deployment.block)
            log.warning("watch.chain_went_back", cursor=start, head=head, rescan_from=back)
            start = back - 1
            await self.db.run(lambda c: state.set_cursor(c, start))
            self._chain_went_back = True  # what we saw settled may be undone: check now
            self._settled_after = ""
            self._last_reconcile = 0.0
        if head <= start:
            return
        # far behind (fresh database on a long chain): catch up a bounded range per step
        end = min(head, start + MAX_SCAN_CHUNKS * self.settings.log_chunk_blocks)
        await self.ingest(start + 1, end)
        await self.db.run(lambda c: state.set_cursor(c, end))

    async def ingest(self, start: int, end: int) -> int:
        """Record our workerpool's DealCreated events of blocks [start, end]; returns how many
        deals were new."""
        found = await self.chain(self._scan, start, end)
        new = 0
        for created in found:
            new += int(await self._add(created))
        contributed = await self.chain(self._scan_contributed, start, end)
        if contributed:
            moved = await self.db.run(lambda c: state.mark_onchain(c, contributed, time.time()))
            if moved:
                log.info("onchain.tasks", tasks=moved)
        return new

    def _scan_contributed(self, start: int, end: int) -> list[str]:
        """Task ids that got an on-chain contribution in blocks [start, end]."""
        topic0 = "0x" + ev.event_topic("Contributed").hex()
        out: set[str] = set()
        step = self.settings.log_chunk_blocks
        for a in range(start, end + 1, step):
            logs = self.client.w3.eth.get_logs(
                {
                    "address": self.client.contributions.address,
                    "fromBlock": a,
                    "toBlock": min(a + step - 1, end),
                    "topics": [topic0],  # type: ignore[list-item]
                }
            )
            out |= {
                state.hx(e.task_id) for e in ev.decode_logs(logs) if isinstance(e, ev.Contributed)
            }
        return sorted(out)

    def _scan(self, start: int, end: int) -> list[ev.DealCreated]:
        topic0 = "0x" + ev.event_topic("DealCreated").hex()
        pool = "0x" + self.settings.workerpool.to_bytes(32, "big").hex()
        out: list[ev.DealCreated] = []
        step = self.settings.log_chunk_blocks
        for a in range(start, end + 1, step):
            logs = self.client.w3.eth.get_logs(
                {
                    "address": self.client.hub.address,
                    "fromBlock": a,
                    "toBlock": min(a + step - 1, end),
                    "topics": [topic0, None, pool],  # type: ignore[list-item]
                }
            )
            out += [e for e in ev.decode_logs(logs) if isinstance(e, ev.DealCreated)]
        return out

    async def _add(self, created: ev.DealCreated) -> bool:
        deal_id = state.hx(created.deal_id)
        known = await self.db.run(lambda c: state.deal_known(c, deal_id))
        if known:
            return False
        if created.deal.scheduler != self.address:
            log.warning("scheduler.foreign_deal", deal=deal_id, scheduler=created.deal.scheduler)
            return False
        time_ref = self._categories.get(created.category)
        if time_ref is None:
            time_ref = (await self.chain(self.client.category, created.category)).time_ref
            self._categories[created.category] = time_ref
        app: AssetInfo = await self.chain(self.client.asset, created.app)
        dataset = await self.chain(self.client.asset, created.dataset) if created.dataset else None
        info = state.DealInfo(created, time_ref, app, dataset)
        added = await self.db.run(lambda c: state.add_deal(c, info, time.time()))
        if added:
            log.info("deal.new", deal=deal_id, volume=created.deal.volume, trust=created.deal.trust)
            self.work_appeared()
        return added

    # ------------------------------------------------------------ leases and reveals

    async def expire_leases(self) -> None:
        s = self.settings
        lost = await self.db.run(
            lambda c: state.expire_leases(c, time.time(), s.heartbeat_lease_s, s.assignment_grace_s)
        )
        if lost:
            self.metrics.assignments_lost.inc(len(lost))
            log.info("assignments.lost", ids=lost)
            self.work_appeared()

    async def reveal_tick(self) -> None:
        s, chain_now = self.settings, self.clock.now()
        await self.db.run(
            lambda c: state.reveal_tick(
                c, time.time(), s.reveal_wait_s, s.heartbeat_lease_s, chain_now
            )
        )

    # ------------------------------------------------------------ finalizer

    async def finalize(self) -> None:
        now = self.clock.now()
        window = self.settings.finalize_window_s
        batches = await self.db.run(lambda c: state.ready_batches(c, now, time.time(), window))
        if batches and await self._still_in_flight("finalize"):
            return
        for batch in batches:
            await self._finalize_batch(batch)

    async def _still_in_flight(self, what: str) -> bool:
        """A transaction of ours not mined yet (its receipt wait timed out, the node is
        slow) may be settling these very tasks: never send a second one beside it."""
        waiting = int(await self.chain(self.client.tx.in_flight))
        if waiting:
            log.info(f"{what}.waiting_for_pending", transactions=waiting)
        return waiting > 0

    async def _finalize_batch(self, batch: state.Batch) -> None:
        deal = batch.deal
        # idempotence: a task settled on-chain (by our own transaction before a crash,
        # by a claim, by the on-chain path) is recorded, never sent again
        # credibility with fresh scores: a group weakened by other deals goes back to open
        # (both reads at once: independent, and each a round trip before the finalize)
        done, scores = await asyncio.gather(
            self.settled(deal.deal_id, [o.index for o in batch.outcomes]),
            self.refresh_workers(batch.workers),
        )
        keep = [k for k, o in enumerate(batch.outcomes) if o.index not in done]
        settled = [batch.task_ids[k] for k, o in enumerate(batch.outcomes) if o.index in done]
        if settled:
            await self.db.run(lambda c: state.mark_tasks(c, settled, SETTLED, time.time()))
        weights = {a: consensus.weight(s) for a, s in scores.items()}
        weak = [k for k in keep if not _credible(batch, k, deal, weights)]
        if weak:
            ids = [batch.task_ids[k] for k in weak]
            await self.db.run(lambda c: state.reopen(c, ids, time.time()))
            log.warning("finalize.reopened", tasks=ids)
        keep = [k for k in keep if k not in weak]
        if not keep:
            return
        rejected = await self._send(batch, keep)
        if rejected is None or len(keep) == 1:
            if rejected is not None:
                await self._rejected(batch, keep[0], rejected)
            return
        # one bad task must not hold the others back: settle them one by one
        for k in keep:
            alone = await self._send(batch, [k])
            if alone is not None:
                await self._rejected(batch, k, alone)

    async def _send(self, batch: state.Batch, keep: list[int]) -> TransactionRejected | None:
        """One finalize transaction for tasks `keep` of `batch`; the rejection, if any."""
        outcomes = [batch.outcomes[k] for k in keep]
        ids = [batch.task_ids[k] for k in keep]
        try:
            await self.chain(self.client.finalize_tasks, batch.deal, outcomes, batch.callback_data)
        except TransactionRejected as exc:
            log.warning("finalize.rejected", deal=batch.deal_id, tasks=len(ids), error=str(exc))
            return exc
        receipt = self.client.last_receipt
        gas = int(receipt["gasUsed"])
        tx = "0x" + bytes(receipt["transactionHash"]).hex()
        await self.db.run(lambda c: state.mark_tasks(c, ids, FINALIZED, time.time(), tx))
        self.metrics.finalize_gas.observe(gas)
        self.metrics.finalize_tx.inc()
        self.metrics.tasks_finalized.inc(len(ids))
        log.info("finalize.sent", deal=batch.deal_id, tasks=len(ids), gas=gas, tx=tx)
        await self.refresh_workers(batch.workers)
        return None

    async def _rejected(self, batch: state.Batch, k: int, exc: TransactionRejected) -> None:
        """What to do with a task the hub refused to finalize on its own."""
        task_id = batch.task_ids[k]
        reason = exc.reason or ""
        if "consensus not reached" in reason:
            await self.db.run(lambda c: state.reopen(c, [task_id], time.time()))
        elif "final deadline" in reason:
            pass  # the claimer refunds it
        elif "already settled" in reason:
            await self.db.run(lambda c: state.mark_tasks(c, [task_id], SETTLED, time.time()))
        else:
            # e.g. workers took the on-chain path: that path (or the claim) settles it;
            # reconciliation records the outcome, the finalizer stops retrying
            await self.db.run(lambda c: state.mark_tasks(c, [task_id], ABANDONED, time.time()))
            log.warning("finalize.gave_up", task=task_id, reason=reason)

    # ------------------------------------------------------------ on-chain path

    async def drive_onchain(self) -> None:
        """Tasks whose workers contributed on-chain: only the scheduler may finalize (or
        reopen) them there, so it does, on the Contributions contract's own rules."""
        found = await self.db.run(state.onchain_tasks)
        for task_id, deal, index in found:
            await self._drive_task(task_id, deal, index)

    def _onchain_view(self, task: bytes) -> tuple[int, int, int, int]:
        """(status, reveal deadline, revealed, consensus members still to reveal)."""
        c = self.client
        status = c.task_status(task)
        if status != 2:  # not revealing
            return status, 0, 0, 0
        consensus_hash = bytes(c.contributions.functions.task_consensus(task).call())
        revealed = pending = 0
        for worker in c.contributors(task):
            st, rh, _seal, _w = c.onchain_contribution(task, worker)
            revealed += int(st == 2)
            pending += int(st == 1 and rh == consensus_hash)
        return status, c.reveal_deadline(task), revealed, pending

    async def _drive_task(self, task_id: str, deal: Deal, index: int) -> None:
        if await self.chain(self.client.is_settled, deal.deal_id, index):
            await self.db.run(lambda c: state.mark_tasks(c, [task_id], SETTLED, time.time()))
            return
        status, deadline, revealed, pending = await self.chain(
            self._onchain_view, state.unhx(task_id)
        )
        if status != 2 or self.clock.latest_ts >= deal.final_deadline:
            return  # still collecting contributions, or for the claimer
        past = self.clock.latest_ts >= deadline
        try:
            if revealed and (pending == 0 or past):
                await self.chain(self.client.finalize_onchain, deal, index, b"")
                await self.db.run(lambda c: state.mark_tasks(c, [task_id], FINALIZED, time.time()))
                self.metrics.tasks_finalized.inc()
                log.info("onchain.finalized", task=task_id)
            elif not revealed and past:
                await self.chain(self.client.reopen, deal, index)
                log.info("onchain.reopened", task=task_id)
        except TransactionRejected as exc:
            log.warning("onchain.rejected", task=task_id, error=str(exc))

    # ------------------------------------------------------------ claimer

    async def claim(self) -> None:
        now = self.clock.now()
        found = await self.db.run(lambda c: state.claimable(c, now))
        if found and await self._still_in_flight("claim"):
            return
        for deal_id, deal, items in found:
            if self.clock.latest_ts < deal.final_deadline:
                continue  # the next block must be past the deadline: wait for one
            await self._claim_deal(deal_id, deal, items)

    async def _claim_deal(self, deal_id: str, deal: Deal, items: list[tuple[int, str]]) -> None:
        done = await self.settled(deal.deal_id, [i for i, _ in items])
        open_items = [(i, t) for i, t in items if i not in done]
        settled = [t for i, t in items if i in done]
        if settled:
            await self.db.run(lambda c: state.mark_tasks(c, settled, SETTLED, time.time()))
        for k in range(0, len(open_items), MAX_CLAIM):
            chunk = open_items[k : k + MAX_CLAIM]
            try:
                await self.chain(self.client.claim, deal, [i for i, _ in chunk])
            except ChainError as exc:
                log.warning("claim.rejected", deal=deal_id, error=str(exc))
                return
            await self._mark(chunk, CLAIMED)
            self.metrics.claims.inc(len(chunk))
            log.info("claim.sent", deal=deal_id, tasks=len(chunk))

    async def _mark(self, items: list[tuple[int, str]], status: str) -> None:
        ids = [t for _, t in items]
        await self.db.run(lambda c: state.mark_tasks(c, ids, status, time.time()))

    # ------------------------------------------------------------ reconciliation

    async def maybe_reconcile(self) -> None:
        if time.time() - self._last_reconcile < self.settings.reconcile_interval_s:
            return
        self._last_reconcile = time.time()
        await self.reconcile()

    async def reconcile(self) -> None:
        """Events get missed (node restarts, dropped subscriptions, reorgs): rescan a
        window behind the cursor, and ask the chain which open tasks were settled."""
        s = self.settings
        head = await self.db.run(state.get_cursor)
        if head is not None:
            first = max(head - s.reconcile_window_blocks, s.deployment.block)
            new = await self.ingest(first, head)
            if new:
                log.info("reconcile.recovered_deals", count=new)
        after = self._reconcile_after
        page = await self.db.run(lambda c: state.unsettled_tasks(c, after, RECONCILE_TASKS))
        self._reconcile_after = page[-1][0] if len(page) == RECONCILE_TASKS else ""
        by_deal: dict[str, list[tuple[str, int]]] = {}
        for task_id, deal_id, index in page:
            by_deal.setdefault(deal_id, []).append((task_id, index))
        settled = []
        for deal_id, entries in by_deal.items():
            done = await self.settled(state.unhx(deal_id), [i for _, i in entries])
            settled += [t for t, i in entries if i in done]
        if settled:
            await self.db.run(lambda c: state.mark_tasks(c, settled, SETTLED, time.time()))
            log.info("reconcile.settled", count=len(settled))
        await self.reconcile_settled()
        stalest = await self.db.run(lambda c: state.worker_addresses(c, stalest=RECONCILE_WORKERS))
        await self.refresh_workers(set(stalest))

    async def reconcile_settled(self) -> None:
        """The chain wins: a settlement we recorded that the chain no longer holds (it was
        rolled back: node restarted from older state, reorg) is driven again, and a deal
        the chain no longer knows is dropped."""
        since = self.clock.now() - ROLLBACK_HORIZON_S
        if self._chain_went_back:
            self._chain_went_back = False
            for deal_id in await self.db.run(lambda c: state.active_deals(c, since)):
                if not await self.chain(self.client.deal_exists, state.unhx(deal_id)):
                    await self._forget_deal(deal_id)
        after = self._settled_after
        page = await self.db.run(lambda c: state.settled_recently(c, since, after, RECONCILE_TASKS))
        self._settled_after = page[-1][0] if len(page) == RECONCILE_TASKS else ""
        undone: list[str] = []
        gone: set[str] = set()
        by_deal: dict[str, list[tuple[str, int]]] = {}
        for task_id, deal_id, index in page:
            by_deal.setdefault(deal_id, []).append((task_id, index))
        # one batched read per deal, not one call per settled task: this pass runs while
        # thousands of finished tasks are still inside the rollback horizon
        for deal_id, entries in by_deal.items():
            did = state.unhx(deal_id)
            done = await self.settled(did, [i for _, i in entries])
            missing = [t for t, i in entries if i not in done]
            if not missing:
                continue
            if not await self.chain(self.client.deal_exists, did):
                gone.add(deal_id)
                continue
            undone += missing
        for deal_id in gone:
            await self._forget_deal(deal_id)
        if undone:
            await self.db.run(lambda c: state.unsettle(c, undone, time.time()))
            self.metrics.rollbacks.labels(kind="settlement").inc(len(undone))
            log.warning("reconcile.settlement_undone", tasks=undone)
            self.wake.set()

    async def _forget_deal(self, deal_id: str) -> None:
        await self.db.run(lambda c: state.forget_deal(c, deal_id))
        self.metrics.rollbacks.labels(kind="deal").inc()
        log.warning("reconcile.deal_vanished", deal=deal_id)

    # ------------------------------------------------------------ metrics

    async def refresh_metrics(self) -> None:
        """The loop's gauges, at most every METRICS_EVERY_S: counting tasks by status reads
        the whole task table, and /metrics refreshes them itself when scraped."""
        if time.time() - self._last_metrics < METRICS_EVERY_S:
            return
        self._last_metrics = time.time()
        await self.update_metrics()

    async def update_metrics(self) -> None:
        counts = await self.db.run(state.counts)
        self.metrics.update(counts)


def _credible(batch: state.Batch, k: int, deal: Deal, weights: dict[str, int]) -> bool:
    outcome = batch.outcomes[k]
    consensus_hash = result_hash(deal.task_id(outcome.index), outcome.digest)
    groups = consensus.group_weights(
        ((c.result_hash, c.worker) for c in outcome.contributions), weights
    )
    g = groups.get(consensus_hash)
    if g is None:
        return False
    return consensus.reached(g, sum(groups.values()) - g, deal.trust)
