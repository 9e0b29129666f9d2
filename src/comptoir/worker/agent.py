"""The worker agent: register, heartbeat, pull, verify, run, commit, reveal.

Trust nothing the scheduler says that the chain can say: every assignment is checked
against its DealCreated event (deal, app, dataset, params), the scheduler's signed
authorization, the registry's checksums and the category's time reference. App and
dataset bytes are used only when their sha256 equals the on-chain checksum.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import structlog
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from comptoir.apps.contract import result_archive
from comptoir.apps.prepare import AppKind, prepare_app
from comptoir.apps.sealed import ResultTerms, check_callback_owner, read_terms
from comptoir.backoff import Backoff
from comptoir.chain import eip712
from comptoir.chain import events as ev
from comptoir.chain.client import (
    APP_TYPE_BUNDLE,
    AssetInfo,
    ChainClient,
    SignedContribution,
    connect,
    sign_contribution,
)
from comptoir.chain.types import TAG_GPU, Deal
from comptoir.exceptions import (
    AppPackageError,
    AssignmentRefused,
    BlobNotFound,
    ChainError,
    ChainUnreachable,
    ChecksumMismatch,
    ComptoirError,
    PackageLimitExceeded,
    SchedulerError,
    SchedulerUnreachable,
    StorageError,
    StorageUnavailable,
)
from comptoir.sandbox import BwrapExecutor, Outcome, SandboxJob, SandboxLimits, detect_gpu_devices
from comptoir.sandbox.executor import SandboxResult
from comptoir.storage.client import StorageClient
from comptoir.storage.crypto import decrypt_dataset
from comptoir.storage.grants import Network, task_purpose
from comptoir.storage.keys import KeyServiceClient
from comptoir.worker.cache import BlobCache
from comptoir.worker.client import SchedulerClient
from comptoir.worker.failure import APP_INVALID, DETERMINISTIC, PACKAGE_LIMIT, failure_record
from comptoir.worker.journal import COMMITTED, Journal
from comptoir.worker.packaging import seal_file
from comptoir.worker.settings import WorkerSettings
from comptoir.worker.stakelock import StakeLocker

log = structlog.get_logger("comptoir.worker")

COMMITTING = "committing"  # journal phase: digest chosen, commit not yet acknowledged
CALLBACK_FILE = "callback"  # for deals with a callback: the data delivered on-chain
MAX_CALLBACK_DATA = 1024
LIE_PREFIX = b"comptoir-test-lie"
RETRY_BASE_S = 0.5  # first back-off delay after a transient fault (chain, storage)
RETRY_CAP_S = 8.0  # longest delay between two attempts (bounds the recovery latency)
SCHEDULER_CAP_S = 4.0  # longest pause between pulls while the scheduler is unreachable
TRANSIENT = (ChainUnreachable, StorageUnavailable)  # wait and retry, never report a failure


class NonDeterministic(ComptoirError):
    """This worker could not compute the task (download, key, sandbox): another may."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


@dataclass(frozen=True)
class Verified:
    """What the chain says about an assignment."""

    created: ev.DealCreated
    app: AssetInfo
    dataset: AssetInfo | None
    time_ref: int


@dataclass(frozen=True)
class Computed:
    digest: bytes
    result_path: Path
    failure: str | None = None
    callback_data: bytes | None = None


def detect_gpu() -> bool:
    if detect_gpu_devices():
        return True
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        return subprocess.run([smi, "-L"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def machine_idle(threshold_percent: float, sample_s: float = 1.0) -> bool:
    """Volunteer mode: the host's CPU load (all processes) is under the threshold."""
    return psutil.cpu_percent(interval=sample_s) < threshold_percent


class WorkerAgent:
    def __init__(self, settings: WorkerSettings) -> None:
        self.s = settings
        self.account: LocalAccount = Account.from_key(settings.private_key)
        self.address = str(self.account.address)
        self.chain = ChainClient(
            connect(settings.rpc_url, settings.rpc_timeout, check=False),
            settings.deployment,
            self.account,  # its own key: the stake lock is its only transaction
        )
        self.locker = StakeLocker(self.chain, settings.lock_horizon_s, settings.lock_margin_s)
        self._lock_checks: dict[int, asyncio.Task[None]] = {}  # assignment -> lock check
        settings.work_dir.mkdir(parents=True, exist_ok=True)
        self.cache = BlobCache(settings.cache_path, settings.cache_bytes)
        self.journal = Journal(settings.work_dir / "journal.json")
        self.results = settings.work_dir / "results"
        self.jobs = settings.work_dir / "jobs"
        for d in (self.results, self.jobs):
            d.mkdir(parents=True, exist_ok=True)
        self.storage = StorageClient(
            settings.storage_url,
            token=settings.storage_token,
            timeout=settings.http_timeout_s,
            signer=self.account,  # results go up with a grant the chain backs
            network=Network(settings.deployment.chain_id, settings.deployment.hub),
        )
        self.keys = KeyServiceClient(settings.key_url, timeout=settings.http_timeout_s)
        self.gpu = detect_gpu() if settings.gpu is None else settings.gpu
        cpus = settings.cpus or os.cpu_count() or 1
        memory = settings.memory or psutil.virtual_memory().total
        # tasks computed at once, each in its own sandbox job with its own limits
        self.slots = settings.slot_count(cpus, memory)
        capabilities = {"gpu": self.gpu, "cpus": cpus, "memory": memory, "slots": self.slots}
        self.scheduler = SchedulerClient(
            settings.scheduler_url, self.account, capabilities, settings.http_timeout_s
        )
        self._executor: BwrapExecutor | None = None
        self._stop = asyncio.Event()
        # set after a commit: its task may already want the reveal (trust reached)
        self._reveal_wake = asyncio.Event()
        # what the commit's answer said to do next (reveal at once, or wait): one poll less
        self._verdicts: dict[int, dict[str, Any]] = {}
        self.running: set[int] = set()  # assignments being computed, one per busy slot
        self._reveal_backoff: dict[int, tuple[Backoff, float]] = {}  # aid -> (backoff, next try)

    @property
    def executor(self) -> BwrapExecutor:
        if self._executor is None:
            self._executor = BwrapExecutor(work_root=self.s.sandbox_root)
        return self._executor

    def stop(self) -> None:
        self._stop.set()
        self._reveal_wake.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        # No bubblewrap, or walls weaker than the pool requires: refuse now, in one
        # sentence, rather than run strangers' code less isolated than advertised.
        isolation = self.executor.require_isolation(self.s.isolation)
        log.info(
            "worker.start",
            worker=self.address,
            gpu=self.gpu,
            slots=self.slots,
            isolation=isolation.level,
            required=self.s.isolation,
            lacks=list(isolation.missing),
        )
        # told to the pool on registration, for a scheduler that sorts workers by it
        self.scheduler.capabilities["isolation"] = isolation.level
        # locked before registering, so the registration's chain read already sees it
        await self._lock_stake()
        backoff = self._scheduler_backoff()
        while not self._stop.is_set():
            try:
                await self.scheduler.register()
                break
            except SchedulerUnreachable as exc:
                await self._retry_after(backoff, "worker.register_retry", exc)
        await self.resume()
        background = [
            asyncio.create_task(self._heartbeat_loop()),
            asyncio.create_task(self._reveal_loop()),
        ]
        try:
            await self._work_loop()
        finally:
            for t in background:
                t.cancel()
            for t in background:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            await self._release_running()
            await self.scheduler.aclose()
            await self.storage.aclose()
            self.keys.close()
            log.info("worker.stop", worker=self.address)

    async def _lock_stake(self, needed: int = 0, confirm: bool = False) -> None:
        """Keep the escrow balance locked as far as the pool needs (worker/stakelock.py;
        `confirm`: read the lock from the chain first); a failure is logged and retried
        at the next empty pull."""
        try:
            await asyncio.to_thread(self.locker.confirm if confirm else self.locker.ensure, needed)
        except ComptoirError as exc:
            log.warning("worker.stake_lock_failed", error=str(exc), needed=needed or None)

    async def _confirm_lock(self, aid: int, deal: Deal) -> None:
        """The stake locked on-chain past a verified deal's final deadline (see
        StakeLocker.confirm); a failure is logged: the commitment goes anyway (the
        scheduler's own check decides whether it can be paid)."""
        if deal.worker_stake == 0:
            return  # nothing at stake: the hub does not look at the lock
        try:
            await asyncio.to_thread(self.locker.confirm, int(deal.final_deadline))
        except ComptoirError as exc:
            log.warning("worker.stake_lock_failed", error=str(exc), id=aid)

    async def resume(self) -> None:
        """After a restart: release what was running, keep what was committed."""
        for aid, entry in self.journal.entries().items():
            if entry.get("phase") in (COMMITTED, COMMITTING):
                log.info("worker.resume_committed", id=aid)
                continue
            with contextlib.suppress(ComptoirError):
                await self.scheduler.release(aid)
            self._forget(aid)
            log.info("worker.released_after_restart", id=aid)

    async def _release_running(self) -> None:
        for aid, entry in self.journal.entries().items():
            if entry.get("phase") not in (COMMITTED, COMMITTING):
                with contextlib.suppress(ComptoirError, httpx.HTTPError):
                    await self.scheduler.release(aid)
                self._forget(aid)

    def _forget(self, aid: int) -> None:
        self._reveal_backoff.pop(aid, None)
        self._verdicts.pop(aid, None)
        entry = self.journal.entries().get(aid, {})
        if entry.get("result_path"):
            Path(entry["result_path"]).unlink(missing_ok=True)
        shutil.rmtree(self.jobs / str(aid), ignore_errors=True)
        self.journal.drop(aid)

    async def _heartbeat_loop(self) -> None:
        while not self._stop.is_set():
            try:
                await self.scheduler.heartbeat(self.cache.checksums(), self._holding())
            except ComptoirError as exc:
                log.warning("worker.heartbeat_failed", error=str(exc))
            await self._sleep(self.s.heartbeat_interval_s)

    def _holding(self) -> list[int]:
        """The replicas the scheduler should count as this worker's: being computed, or
        computed and not yet committed (the commitment is being retried). The scheduler
        takes back, as never received, running replicas its heartbeat does not list."""
        uncommitted = {
            aid
            for aid, entry in self.journal.entries().items()
            if entry.get("phase") in ("running", COMMITTING)
        }
        return sorted(self.running | uncommitted)

    def _scheduler_backoff(self) -> Backoff:
        """Pacing of retries while the scheduler is unreachable: from the poll interval up
        to a few seconds, jittered so restarted schedulers are not hit in lockstep."""
        return Backoff(self.s.poll_interval_s, cap_s=max(self.s.poll_interval_s, SCHEDULER_CAP_S))

    async def _retry_after(self, backoff: Backoff, event: str, exc: Exception) -> None:
        """Log a failed attempt with its number, then wait out the back-off's next delay."""
        delay = backoff.next_delay()
        log.warning(event, attempt=backoff.attempt, delay=round(delay, 2), error=str(exc))
        await self._sleep(delay)

    async def _work_loop(self) -> None:
        """Pull while a slot is free; each assignment runs as its own task. On stop, the
        ones in flight finish (commit included) before the loop returns."""
        backoff = self._scheduler_backoff()
        in_flight: set[asyncio.Task[None]] = set()
        try:
            while not self._stop.is_set():
                if len(in_flight) >= self.slots:
                    await self._until_one_done(in_flight)
                    continue
                if self.s.idle_only and not await asyncio.to_thread(
                    machine_idle, self.s.idle_cpu_percent
                ):
                    await self._until_one_done(in_flight, self.s.poll_interval_s)
                    continue
                wait = min(self.scheduler.work_wait_s, self.s.http_timeout_s / 2)
                asked = time.monotonic()
                try:
                    assignment = await self.scheduler.next_work(wait)
                except ComptoirError as exc:
                    await self._retry_after(backoff, "worker.pull_failed", exc)
                    continue
                backoff.reset()
                needed = self.scheduler.lock_needed
                if assignment is None and needed:
                    # the scheduler names a longer lock than ours: extend, then ask again;
                    # one our cache says we hold: the chain decides (a rollback may have
                    # dropped our lock transaction)
                    log.info("worker.no_work", reason=self.scheduler.wait_reason)
                    await self._lock_stake(needed, confirm=needed <= self.locker.locked_until)
                if assignment is None and wait > 0 and time.monotonic() - asked >= wait / 2:
                    continue  # the scheduler held the request: ask again at once
                # an empty answer at once (it holds no more of this worker's requests):
                # paced as without a long poll, never a tight loop
                if assignment is None:
                    # nothing now: ask again after the poll interval, or as soon as a
                    # running task ends (the scheduler may have held work for a free slot)
                    await self._until_one_done(in_flight, self.s.poll_interval_s)
                    continue
                in_flight.add(asyncio.create_task(self._slot(assignment)))
        finally:
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)

    async def _until_one_done(
        self, in_flight: set[asyncio.Task[None]], timeout: float | None = None
    ) -> None:
        """Wait until an assignment task ends (dropped from `in_flight`), stop is asked,
        or `timeout` passes."""
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            done, _ = await asyncio.wait(
                {*in_flight, stop}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stop.cancel()
        for task in done & in_flight:
            if not task.cancelled() and task.exception() is not None:
                log.error("assignment.crashed", error=repr(task.exception()))
        in_flight.difference_update(done)

    # ------------------------------------------------------------ one assignment

    async def _slot(self, a: dict[str, Any] | None) -> None:
        """One slot's work: the assignment pulled, then each one the scheduler handed out
        with the commitment that freed the slot (no pull between them)."""
        while a is not None:
            a = await self.process(a)

    async def process(self, a: dict[str, Any]) -> dict[str, Any] | None:
        """Run one assignment to its commitment; the next assignment for this slot when
        the scheduler handed one out with the commitment's answer."""
        aid = int(a["id"])
        self.running.add(aid)
        self.journal.put(aid, phase="running", assignment=a)
        log.info("assignment.start", id=aid, task=a["task_id"], index=a["index"])
        try:
            computed = await self._compute_patiently(a)
            lock = self._lock_checks.pop(aid, None)
            if lock is not None:
                await lock
            if computed is None:
                return None  # the scheduler took it back while the fault lasted
        except AssignmentRefused as exc:
            await self._report(aid, "refused", str(exc))
            return None
        except NonDeterministic as exc:
            await self._report(aid, exc.kind, str(exc))
            return None
        except (ChainError, StorageError) as exc:
            await self._report(aid, type(exc).__name__, str(exc))
            return None
        except Exception as exc:  # a bug or a full disk here must not kill the worker
            log.exception("assignment.internal_error", id=aid)
            await self._report(aid, "internal", f"{type(exc).__name__}: {exc}")
            return None
        finally:
            unchecked = self._lock_checks.pop(aid, None)
            if unchecked is not None:
                unchecked.cancel()
            self.running.discard(aid)
            shutil.rmtree(self.jobs / str(aid), ignore_errors=True)
        digest = computed.digest
        if self.s.fault == "lie":  # TEST ONLY: commit to a wrong result
            digest = hashlib.sha256(LIE_PREFIX + digest).digest()
        deal = Deal.from_json(a["deal"])
        c = sign_contribution(
            self.account,
            deal.task_id(int(a["index"])),
            digest,
            self.s.deployment.chain_id,
            self.s.deployment.hub,
        )
        # journaled before the scheduler sees it: a restart can still reveal
        self.journal.put(
            aid,
            phase=COMMITTING,
            digest="0x" + digest.hex(),
            result_path=str(computed.result_path),
            failure=computed.failure,
            callback_data=computed.callback_data.hex() if computed.callback_data else None,
            contribution=_contribution_json(c),
            task_id="0x" + deal.task_id(int(a["index"])).hex(),
            evidence=assignment_evidence(a),  # what storage checks the result's upload by
        )
        return await self._commit(aid, c, take_next=True)

    async def _compute_patiently(self, a: dict[str, Any]) -> Computed | None:
        """compute(), retried with back-off while the chain or storage is unreachable and
        the scheduler still wants this replica; None once it does not (then forgotten)."""
        aid = int(a["id"])
        backoff = Backoff(RETRY_BASE_S, RETRY_CAP_S)
        while True:
            try:
                return await self.compute(a)
            except TRANSIENT as exc:
                delay = backoff.next_delay()
                log.warning(
                    "assignment.retry",
                    id=aid,
                    attempt=backoff.attempt,
                    delay=round(delay, 2),
                    kind=type(exc).__name__,
                    error=str(exc),
                )
                await self._sleep(delay)
                if self._stop.is_set() or not await self._still_running(aid):
                    log.info("assignment.dropped_during_fault", id=aid)
                    if self._stop.is_set():
                        with contextlib.suppress(ComptoirError):
                            await self.scheduler.release(aid)
                    self._forget(aid)
                    return None

    async def _still_running(self, aid: int) -> bool:
        """Whether the scheduler still counts on this replica (an unreachable scheduler is
        given the benefit of the doubt: its lease decides)."""
        try:
            st = await self.scheduler.assignment(aid)
        except SchedulerUnreachable:
            return True
        return st is not None and st["action"] == "run"

    async def _commit(
        self, aid: int, c: SignedContribution, take_next: bool = False
    ) -> dict[str, Any] | None:
        """Send the commitment; with `take_next` (its slot is free now) ask for the next
        assignment in the same request, which is answered (None: none handed out)."""
        # not while stopping, nor when only an idle machine takes work (checked first)
        take_next = take_next and not self._stop.is_set() and not self.s.idle_only
        try:
            answer = await self.scheduler.commit(aid, c, take_next=take_next)
        except SchedulerUnreachable as exc:
            log.warning("assignment.commit_retry", id=aid, error=str(exc))
            return None  # the reveal loop sends it again
        except SchedulerError as exc:
            log.warning("assignment.commit_refused", id=aid, error=str(exc))
            self._forget(aid)
            return None
        handed = answer.pop("next", None)
        self.journal.put(aid, phase=COMMITTED)
        if isinstance(answer.get("action"), str):  # an older scheduler answers the status
            self._verdicts[aid] = answer
        log.info("assignment.committed", id=aid)
        self._reveal_wake.set()
        return handed if take_next and isinstance(handed, dict) else None

    async def _report(self, aid: int, kind: str, message: str) -> None:
        log.warning("assignment.failed", id=aid, kind=kind, error=message)
        with contextlib.suppress(ComptoirError):
            await self.scheduler.fail(aid, kind, message)
        self._forget(aid)

    async def _reveal_loop(self) -> None:
        while not self._stop.is_set():
            # cleared before the entries are read: a commitment made while they are
            # advanced wakes the next round at once
            self._reveal_wake.clear()
            loop_now = asyncio.get_running_loop().time()
            entries = self.journal.entries()
            # one replica waiting for its verdict long-polls it (see _verdict)
            alone = sum(e.get("phase") == COMMITTED for e in entries.values()) == 1
            for aid, entry in entries.items():
                _, next_try = self._reveal_backoff.get(aid, (None, 0.0))
                if loop_now < next_try:
                    continue
                try:
                    await self._advance(aid, entry, alone=alone)
                except SchedulerUnreachable as exc:
                    log.warning("assignment.poll_failed", id=aid, error=str(exc))
                except (StorageError, SchedulerError) as exc:
                    # the committed result stays in the journal: the upload (then the
                    # reveal) is tried again until the scheduler says it is not needed
                    # (done or abort: the next poll forgets it then)
                    self._retry_reveal_later(aid, exc)
                else:
                    self._reveal_backoff.pop(aid, None)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._reveal_wake.wait(), timeout=min(self.s.poll_interval_s, 1.0)
                )

    def _retry_reveal_later(self, aid: int, exc: ComptoirError) -> None:
        backoff, _ = self._reveal_backoff.get(aid, (Backoff(RETRY_BASE_S, RETRY_CAP_S), 0.0))
        delay = backoff.next_delay()
        self._reveal_backoff[aid] = (backoff, asyncio.get_running_loop().time() + delay)
        event = "upload_retry" if isinstance(exc, StorageError) else "reveal_retry"
        log.warning(
            f"assignment.{event}",
            id=aid,
            attempt=backoff.attempt,
            delay=round(delay, 2),
            error=str(exc),
        )

    async def _advance(self, aid: int, entry: dict[str, Any], alone: bool = False) -> None:
        phase = entry.get("phase")
        if phase == COMMITTING:
            await self._commit(aid, _contribution_from_json(entry["contribution"]))
            return
        if phase != COMMITTED:
            return
        st = self._verdicts.pop(aid, None)
        if st is None or st["action"] == "wait":
            st = await self._verdict(aid, long_poll=alone)
        if st is None or st["action"] in ("done", "abort"):
            self._forget(aid)
            return
        if st["action"] != "reveal":
            return
        blob = None
        path = Path(entry["result_path"])
        if path.exists():
            started = time.monotonic()
            blob = await self.storage.aupload(
                path,
                purpose=task_purpose(bytes.fromhex(entry["task_id"][2:]))
                if entry.get("task_id")
                else None,
                evidence=entry.get("evidence"),
            )
            log.info("assignment.uploaded", id=aid, seconds=round(time.monotonic() - started, 3))
        callback = bytes.fromhex(entry["callback_data"]) if entry.get("callback_data") else None
        await self.scheduler.reveal(
            aid, bytes.fromhex(entry["digest"][2:]), blob, entry.get("failure"), callback
        )
        log.info("assignment.revealed", id=aid, blob=blob)
        self._forget(aid)

    async def _verdict(self, aid: int, long_poll: bool) -> dict[str, Any] | None:
        """The assignment's state. The only replica waiting for a verdict long-polls it (the
        scheduler answers as soon as the other replicas' commitments decide), given up as
        soon as another commitment wakes the reveal loop."""
        wait = min(self.scheduler.work_wait_s, self.s.http_timeout_s / 2) if long_poll else 0.0
        if wait <= 0 or self._reveal_wake.is_set():
            return await self.scheduler.assignment(aid)
        poll = asyncio.ensure_future(self.scheduler.assignment(aid, wait=wait))
        woken = asyncio.ensure_future(self._reveal_wake.wait())
        try:
            await asyncio.wait({poll, woken}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # the loop itself is cancelled (shutdown): nothing outlives it
            poll.cancel()
            raise
        finally:
            woken.cancel()
        if not poll.done():  # another replica committed meanwhile: its reveal comes first
            poll.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poll
            self._reveal_wake.set()  # the loop goes round again at once
            return {"action": "wait"}
        return poll.result()

    # ------------------------------------------------------------ computing

    async def compute(self, a: dict[str, Any]) -> Computed:
        aid = int(a["id"])
        deal = Deal.from_json(a["deal"])
        index = int(a["index"])
        task = deal.task_id(index)
        if (
            "0x" + deal.deal_id.hex() != a["deal_id"].lower()
            or "0x" + task.hex() != a["task_id"].lower()
        ):
            raise AssignmentRefused("The assignment's ids do not match its deal.")
        facts = await asyncio.to_thread(self.verify, a, deal, task)
        # the deal is the chain's: its lock is read while the task computes, and awaited
        # before the commitment (process)
        if aid not in self._lock_checks:
            self._lock_checks[aid] = asyncio.create_task(self._confirm_lock(aid, deal))
        terms = await asyncio.to_thread(self._result_terms, facts, deal)
        if terms.failure is not None:  # the same on-chain params for every replica
            return self._failure(aid, terms.failure, None, deal)
        job_dir = self.jobs / str(aid)
        shutil.rmtree(job_dir, ignore_errors=True)
        in_dir, out_dir = job_dir / "in", job_dir / "out"
        in_dir.mkdir(parents=True)
        app_digest = facts.app.checksum.hex()
        self.cache.pin(app_digest)  # before the fetch: eviction must never take it
        try:
            app_path = await self.fetch(app_digest, facts.app.location)
            kind = AppKind.BUNDLE if facts.app.app_type == APP_TYPE_BUNDLE else AppKind.OCI
            try:
                prepared = await asyncio.to_thread(
                    prepare_app,
                    kind,
                    app_path,
                    self.cache.apps,
                    expected_digest=app_digest,
                    limits=self.s.unpack_limits,
                )
            except ChecksumMismatch as exc:
                raise AssignmentRefused(str(exc)) from None
            except PackageLimitExceeded as exc:
                log.warning("assignment.package_limit", id=aid, error=str(exc))
                return self._package(self._failure(aid, PACKAGE_LIMIT, None, deal), terms, None)
            except AppPackageError:
                # same verified bytes everywhere: every honest worker fails the same way
                return self._package(self._failure(aid, APP_INVALID, None, deal), terms, None)
            if facts.dataset is not None:
                await self._stage_dataset(a, facts.dataset, in_dir)
            limits = SandboxLimits(
                wall_time_s=float(facts.time_ref),
                memory_bytes=self.s.memory_limit_bytes,
                output_bytes=self.s.output_limit_bytes,
                max_processes=self.s.max_processes,
                tmp_bytes=self.s.tmp_bytes,
            )
            job = SandboxJob(
                app=prepared,
                output_dir=out_dir,
                input_dir=in_dir,
                task_id="0x" + task.hex(),
                task_index=index,
                args=terms.args,
                limits=limits,
                gpu=bool(int.from_bytes(facts.created.tag, "big") & TAG_GPU),
            )
            result = await self.executor.run(job)
        finally:
            self.cache.unpin(app_digest)
        log.info(
            "assignment.ran",
            id=aid,
            outcome=result.outcome.value,
            seconds=round(result.duration_s, 2),
            message=result.message,
        )
        if result.outcome is Outcome.SANDBOX_ERROR:
            raise NonDeterministic("sandbox", result.message)
        if result.outcome in DETERMINISTIC:
            failed = self._failure(aid, result.outcome.value.upper(), result.exit_code, deal)
            return self._package(failed, terms, result)
        done = await asyncio.to_thread(self._success, aid, out_dir, result.result_digest, deal)
        return await asyncio.to_thread(self._package, done, terms, result)

    def _success(self, aid: int, out_dir: Path, digest_hex: str | None, deal: Deal) -> Computed:
        path = self.results / f"{aid}.tar.gz"
        path.write_bytes(result_archive(out_dir))
        if _has_callback(deal):
            data = _callback_data(out_dir)
            if data is None:
                return self._failure(aid, "CALLBACK_MISSING", None, deal)
            return Computed(keccak(data), path, callback_data=data)
        assert digest_hex is not None
        return Computed(bytes.fromhex(digest_hex), path)

    def _failure(self, aid: int, status: str, exit_code: int | None, deal: Deal) -> Computed:
        record = failure_record(status, exit_code)
        path = self.results / f"{aid}.json"
        path.write_text(record)
        if _has_callback(deal):  # the hub checks keccak256(callback data) == digest
            data = record.encode()
            return Computed(keccak(data), path, failure=record, callback_data=data)
        return Computed(hashlib.sha256(record.encode()).digest(), path, failure=record)

    def _package(
        self, computed: Computed, terms: ResultTerms, run: SandboxResult | None
    ) -> Computed:
        """`computed` with the file to upload sealed to the requester when it named a key."""
        tamper = self.s.fault == "tamper_seal"  # TEST ONLY: upload an altered envelope
        path = seal_file(computed.result_path, terms, run, tamper=tamper)
        return dataclasses.replace(computed, result_path=path)

    def _result_terms(self, facts: Verified, deal: Deal) -> ResultTerms:
        """Who the result is sealed to, each key checked against the chain: the deal's
        requester and app owner, and the callback's ``owner()`` at the deal's block (the
        same answer for every replica, whatever happens to the contract later)."""
        terms = read_terms(
            facts.created.params,
            deal.requester,
            facts.dataset is not None,
            deal.app_owner,
            _has_callback(deal),
        )
        if terms.callback_owner is None:
            return terms
        owner = self.chain.contract_owner(deal.callback, facts.created.block_number)
        checked = check_callback_owner(terms, owner)
        if checked.failure is not None:
            log.warning("assignment.callback_owner_refused", callback=deal.callback, owner=owner)
        return checked

    def verify(self, a: dict[str, Any], deal: Deal, task: bytes) -> Verified:
        """Check the assignment against the chain (runs in a thread)."""
        try:
            block = int(a["block"])
        except (ValueError, KeyError) as exc:
            raise AssignmentRefused(f"The assignment is malformed ({exc}).") from None
        created = self.chain.deal_created_at(deal.deal_id, block)
        if created is None or created.deal != deal:
            raise AssignmentRefused(
                f"No deal {a['deal_id']} was created at block {a['block']}; refusing the task."
            )
        try:
            signer = eip712.recover_authorization_signer(
                self.address,
                task,
                bytes.fromhex(str(a["authorization"]).removeprefix("0x")),
                self.s.deployment.chain_id,
                self.s.deployment.contributions,
            )
        except ValueError:
            raise AssignmentRefused("The assignment's authorization is malformed.") from None
        if signer != deal.scheduler:
            raise AssignmentRefused("The assignment is not authorized by the deal's scheduler.")
        app = self.chain.asset(created.app)
        dataset = self.chain.asset(created.dataset) if created.dataset else None
        time_ref = self.chain.category(created.category).time_ref
        return Verified(created, app, dataset, time_ref)

    async def fetch(self, checksum: str, location: str) -> Path:
        """The blob whose sha256 is `checksum` (the on-chain one), from the cache, the
        storage server, or the asset's location URL, verified in every case."""
        cached = self.cache.get(checksum)
        if cached is not None:
            return cached
        tmp = self.cache.temp_file()
        try:
            try:
                await self.storage.adownload_to(checksum, tmp)
            except (BlobNotFound, StorageUnavailable) as exc:
                if not location.startswith(("http://", "https://")):
                    if isinstance(exc, StorageUnavailable):
                        raise  # transient: the caller waits and retries
                    raise NonDeterministic(
                        "download", f"No copy of blob {checksum} could be found."
                    ) from None
                try:
                    await self._download_url(location, tmp, checksum)
                except NonDeterministic:
                    if isinstance(exc, StorageUnavailable):
                        raise exc from None
                    raise
            return self.cache.add(checksum, tmp)
        except ChecksumMismatch as exc:
            raise AssignmentRefused(
                f"The bytes of {location or checksum} do not match the on-chain checksum "
                f"{checksum}; refusing to run them ({exc})."
            ) from None
        except StorageUnavailable:
            raise
        except StorageError as exc:
            raise NonDeterministic("download", str(exc)) from None
        finally:
            tmp.unlink(missing_ok=True)

    async def _download_url(self, url: str, dest: Path, checksum: str) -> None:
        h = hashlib.sha256()
        try:
            async with (
                httpx.AsyncClient(timeout=self.s.http_timeout_s) as http,
                http.stream("GET", url) as resp,
            ):
                if resp.status_code >= 400:
                    raise NonDeterministic("download", f"{url} answered {resp.status_code}.")
                with open(dest, "wb") as f:
                    async for chunk in resp.aiter_bytes(1 << 20):
                        h.update(chunk)
                        f.write(chunk)
        except httpx.HTTPError as exc:
            raise NonDeterministic("download", f"{url} could not be fetched ({exc!r}).") from None
        if h.hexdigest() != checksum:
            raise ChecksumMismatch(f"{url} has sha256 {h.hexdigest()}")

    async def _stage_dataset(self, a: dict[str, Any], dataset: AssetInfo, in_dir: Path) -> None:
        checksum = dataset.checksum.hex()
        self.cache.pin(checksum)
        try:
            await self._stage_pinned(a, checksum, dataset.location, in_dir)
        finally:
            self.cache.unpin(checksum)

    async def _stage_pinned(
        self, a: dict[str, Any], checksum: str, location: str, in_dir: Path
    ) -> None:
        encrypted = await self.fetch(checksum, location)
        evidence = assignment_evidence(a)
        try:
            key = await asyncio.to_thread(
                self.keys.request_key, checksum, self.account.key, evidence
            )
            await asyncio.to_thread(_decrypt_to, encrypted, key, in_dir / "dataset")
        except StorageUnavailable:
            raise  # key service or chain down: waited out and retried by the caller
        except StorageError as exc:  # key refused, wrong key
            raise NonDeterministic("dataset_key", str(exc)) from None


def _decrypt_to(encrypted: Path, key: bytes, dest: Path) -> None:
    dest.write_bytes(decrypt_dataset(encrypted.read_bytes(), key))


def _has_callback(deal: Deal) -> bool:
    return int(deal.callback, 16) != 0


def _callback_data(out_dir: Path) -> bytes | None:
    path = out_dir / CALLBACK_FILE
    if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_CALLBACK_DATA:
        return None
    return path.read_bytes()


def assignment_evidence(a: dict[str, Any]) -> dict[str, Any]:
    """What proves on-chain that the deal's scheduler gave this worker the task (the key
    service and storage check it)."""
    return {
        "deal": a["deal"],
        "index": int(a["index"]),
        "block": int(a["block"]),
        "authorization": a["authorization"],
    }


def _contribution_json(c: SignedContribution) -> dict[str, str]:
    return {
        "worker": c.worker,
        "task_id": c.task_id.hex(),
        "result_hash": c.result_hash.hex(),
        "result_seal": c.result_seal.hex(),
        "r": c.r.hex(),
        "vs": c.vs.hex(),
    }


def _contribution_from_json(d: dict[str, str]) -> SignedContribution:
    return SignedContribution(
        d["worker"],
        bytes.fromhex(d["task_id"]),
        bytes.fromhex(d["result_hash"]),
        bytes.fromhex(d["result_seal"]),
        bytes.fromhex(d["r"]),
        bytes.fromhex(d["vs"]),
    )


async def run_worker_async(settings: WorkerSettings) -> None:
    agent = WorkerAgent(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, agent.stop)
    await agent.run()


def run_worker(settings: WorkerSettings) -> None:
    """Run the worker until SIGTERM/SIGINT (blocking)."""
    asyncio.run(run_worker_async(settings))
