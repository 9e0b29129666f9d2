"""HTTP API of the scheduler (documented in docs/scheduler-api.md)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Annotated, Any, TypeVar

import structlog
from eth_utils import is_address, to_checksum_address
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from comptoir.chain.client import SignedContribution
from comptoir.exceptions import SchedulerError, StorageError
from comptoir.scheduler import stakelock, state, trustpolicy
from comptoir.scheduler.db import Database
from comptoir.scheduler.hotpath import CoalescedReads, TaskSignals, TokenCache
from comptoir.scheduler.hotroutes import SchedulerApp
from comptoir.scheduler.metrics import SchedulerMetrics
from comptoir.scheduler.service import Scheduler, contribution_signer
from comptoir.scheduler.settings import SchedulerSettings
from comptoir.storage.client import StorageClient
from comptoir.storage.keys import recover_signer

log = structlog.get_logger("comptoir.scheduler")

HEX32 = r"^0x[0-9a-fA-F]{64}$"
MAX_ID = 2**53  # assignment ids are SQL integers
AssignmentId = Annotated[int, Path(ge=0, le=MAX_ID)]
Hash32 = Annotated[str, Path(pattern=HEX32, description="0x + 64 hex digits.")]
WORK_WAIT_S = 2.0  # longest a work/next request is held while there is nothing to hand out
MAX_SLOTS = 1024  # replicas one worker may hold running at once
# long polls held at once: per worker (one token must not pin many connections and
# coroutines), and in all; past either, a work/next answers at once as without `wait`
MAX_HELD_PER_WORKER = 2
MAX_HELD = 10_000
HEALTH_MEMORY_S = 30.0  # a database failure keeps /healthz at 503 this long


class Capabilities(BaseModel):
    gpu: bool = False
    cpus: int = Field(default=1, ge=1, le=1_000_000)
    memory: int = Field(default=0, ge=0, le=2**62, description="bytes of memory")
    slots: int = Field(
        default=1, ge=1, le=MAX_SLOTS, description="replicas the worker runs at once"
    )


class RegisterRequest(BaseModel):
    address: str = Field(max_length=42)
    nonce: str = Field(max_length=128)
    signature: str = Field(max_length=132)
    capabilities: Capabilities = Field(default_factory=lambda: Capabilities())


class HeartbeatRequest(BaseModel):
    cached: list[Annotated[str, Field(max_length=66)]] = Field(
        default_factory=list, max_length=10_000
    )
    # the assignments the worker is computing (None: it does not say, nothing is assumed)
    running: list[Annotated[int, Field(ge=0, le=2**53)]] | None = Field(
        default=None, max_length=10_000
    )


class CommitRequest(BaseModel):
    result_hash: str = Field(pattern=HEX32)
    result_seal: str = Field(pattern=HEX32)
    r: str = Field(pattern=HEX32)
    vs: str = Field(pattern=HEX32)


class RevealRequest(BaseModel):
    digest: str = Field(pattern=HEX32)
    result_blob: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    failure: str | None = Field(
        default=None, max_length=4096, description="canonical failure record"
    )
    callback_data: str | None = Field(default=None, pattern=r"^0x([0-9a-fA-F]{2}){0,1024}$")


class FailRequest(BaseModel):
    kind: str = Field(max_length=64)
    message: str = Field(default="", max_length=2000)


async def authenticate(request: Request) -> str:
    """The worker a bearer token belongs to (tokens are stored hashed)."""
    authorization = request.headers.get("authorization")
    if not authorization or not authorization.startswith("Bearer "):
        raise HTTPException(401, "Register first and send 'Authorization: Bearer <token>'.")
    token = authorization.removeprefix("Bearer ").strip()
    tokens: TokenCache = request.app.state.tokens
    address = tokens.get(token)
    if address is not None:
        return address
    db: Database = request.app.state.db
    address = await db.run(lambda c: state.worker_by_token(c, token))
    if address is None:
        raise HTTPException(401, "Unknown or superseded token; register again.")
    tokens.put(token, address)
    return address


async def current_worker(request: Request) -> str:
    """FastAPI dependency of the worker routes that are not hot (fail, release)."""
    return await authenticate(request)


M = TypeVar("M", bound=BaseModel)


async def body_of(request: Request, model: type[M]) -> M:
    """The request body validated as `model`, refused as FastAPI would (422, one sentence),
    a body not sent as JSON included."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    main, _, sub = kind.partition("/")
    if main != "application" or not (sub == "json" or sub.endswith("+json")):
        raise RequestValidationError(
            [{"loc": ("body",), "msg": "send the body as JSON (Content-Type: application/json)"}]
        )
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False)
        raise RequestValidationError(
            [{**e, "loc": ("body", *e.get("loc", ()))} for e in errors]
        ) from None


def assignment_id(request: Request) -> int:
    """The `{aid}` path parameter: a decimal SQL integer id."""
    raw = request.path_params["aid"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 16 or int(raw) > MAX_ID:
        raise RequestValidationError(
            [{"loc": ("path", "aid"), "msg": f"an assignment id is 0 to {MAX_ID}"}]
        )
    return int(raw)


def wait_seconds(request: Request) -> float:
    """The `?wait=S` long-poll parameter (0 when absent), at most WORK_WAIT_S."""
    raw = request.query_params.get("wait")
    if raw is None:
        return 0.0
    try:
        # ASCII only: float() also reads other scripts' digits, which pydantic refused
        wait = float(raw) if raw.isascii() else math.nan
    except ValueError:
        wait = math.nan
    if not math.isfinite(wait) or not 0 <= wait <= WORK_WAIT_S:
        raise RequestValidationError(
            [{"loc": ("query", "wait"), "msg": f"wait is 0 to {WORK_WAIT_S:g} seconds"}]
        )
    return wait


def wants_next(request: Request) -> bool:
    """The `?next=1` parameter of a commitment: also hand out the worker's next
    assignment in its answer (0 or absent: do not)."""
    raw = request.query_params.get("next")
    if raw is None or raw == "0":
        return False
    if raw == "1":
        return True
    raise RequestValidationError([{"loc": ("query", "next"), "msg": "next is 0 or 1"}])


def answer(body: dict[str, Any]) -> Response:
    """A JSON answer of the worker API's hot routes, serialized at once: their bodies are
    plain JSON values already, and FastAPI's response validation and jsonable_encoder walk
    cost more than the database work of a request."""
    return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")


# module level: with postponed annotations FastAPI resolves `Worker` in module globals
Worker = Annotated[str, Depends(current_worker)]


def create_scheduler_app(
    settings: SchedulerSettings, *, run_loops: bool = True, scheduler: Scheduler | None = None
) -> FastAPI:
    """The scheduler as an ASGI app; its background loop runs with the app's lifespan."""
    if scheduler is not None:
        db, metrics, sched = scheduler.db, scheduler.metrics, scheduler
    else:
        db, metrics = Database(settings.db_url, settings.db_on_loop), SchedulerMetrics()
        sched = Scheduler(settings, db, metrics)
    # the reveal check must answer fast even when storage hangs: one try, a short timeout
    storage = (
        StorageClient(settings.storage_url, timeout=5.0, retries=0)
        if settings.storage_url
        else None
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await db.run(lambda c: trustpolicy.store(c, settings.lone_score, settings.audit_rate))
        task = asyncio.create_task(sched.run()) if run_loops else None
        try:
            yield
        finally:
            sched.stop()
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if storage is not None:
                await storage.aclose()
            db.close()

    app = SchedulerApp(
        title="Comptoir scheduler",
        version="1",
        description="Workerpool scheduler: worker registration, dispatch, commit-reveal.",
        lifespan=lifespan,
        body_limits={"max_bytes": 1024 * 1024},  # a heartbeat lists up to 10 000 checksums
    )
    app.state.scheduler = sched
    app.state.db = db
    app.state.tokens = tokens = TokenCache()
    chain_reads = CoalescedReads(sched.client.worker_standings)
    held: dict[tuple[str, str], int] = {}  # (worker, kind) -> its long polls held now
    held_total = [0]  # all of them
    app.state.verdicts = verdicts = TaskSignals()  # long polls of committed replicas
    app.state.metrics = metrics

    @app.exception_handler(SchedulerError)
    async def _scheduler_error(_request: Request, exc: SchedulerError) -> JSONResponse:
        code = 400
        if isinstance(exc, state.NotFound):
            code = 404
        elif isinstance(exc, state.Conflict):
            code = 409
        return JSONResponse({"detail": str(exc)}, status_code=code)

    @app.exception_handler(OperationalError)
    async def _database_error(_request: Request, exc: OperationalError) -> JSONResponse:
        log.error("scheduler.database_error", error=str(exc).splitlines()[0][:300])
        return JSONResponse({"detail": state.DATABASE_DOWN}, status_code=503)

    def checksummed(address: str) -> str:
        if not is_address(address):
            raise HTTPException(400, f"{address!r} is not an Ethereum address.")
        return to_checksum_address(address)

    # ---------------------------------------------------------------- registration

    @app.get("/v1/workers/challenge")
    async def challenge(address: Annotated[str, Query(max_length=42)]) -> dict[str, Any]:
        addr = checksummed(address)
        nonce = await db.run(lambda c: state.issue_challenge(c, addr, time.time()))
        return {
            "nonce": nonce,
            "message": state.registration_message(settings.workerpool, addr, nonce),
            "expires_in": settings.challenge_ttl_s,
        }

    @app.post("/v1/workers/register")
    async def register(req: RegisterRequest) -> dict[str, Any]:
        addr = checksummed(req.address)
        message = state.registration_message(settings.workerpool, addr, req.nonce)
        signer = recover_signer(message, req.signature)
        if signer is None or signer.lower() != addr.lower():
            # nothing is recorded for it: a stranger's forged attempts write no row
            raise HTTPException(401, "The signature is not this worker's over the challenge.")
        balance: int | None
        try:
            # concurrent registrations share one batched chain read
            read = await chain_reads.get(addr)
            score, balance, locked_until = read.score, read.balance, read.locked_until
        except Exception:
            # the chain is down: all three are refreshed at the next reconciliation
            score, balance, locked_until = 0, None, 0
        caps = req.capabilities

        def consume_and_register(c: Connection) -> str | None:
            # one transaction: the challenge is spent exactly when the worker is recorded
            if not state.consume_challenge(
                c, addr, req.nonce, time.time(), settings.challenge_ttl_s
            ):
                return None
            return state.register_worker(
                c,
                addr,
                caps.gpu,
                caps.cpus,
                caps.memory,
                score,
                time.time(),
                balance,
                slots=caps.slots,
                locked_until=locked_until,
            )

        token = await db.run(consume_and_register)
        if token is None:
            raise HTTPException(401, "Unknown or expired challenge; ask for a new one.")
        tokens.forget(addr)
        log.info("worker.registered", worker=addr, gpu=caps.gpu, slots=caps.slots, score=score)
        return {
            "token": token,
            "worker": addr,
            "workerpool": settings.workerpool,
            "lease_s": settings.heartbeat_lease_s,
            "poll_interval_s": settings.poll_interval_s,
            "work_wait_s": WORK_WAIT_S,
            "chain_id": settings.deployment.chain_id,
            "hub": settings.deployment.hub,
            "contributions": settings.deployment.contributions,
        }

    # ---------------------------------------------------------------- hot routes
    # The routes every worker calls for every task are plain endpoints, not FastAPI's:
    # its dependency solving, body parsing and response handling cost more CPU than their
    # database work (0.31 ms against 0.07 ms a request, measured in-process). They check
    # the same things the FastAPI models did, and answer errors the same way. The app
    # serves them before Starlette's middleware stack (hotroutes.SchedulerApp); they are
    # in the router too, for the other methods (405) and HEAD.

    def hot(path: str, method: str) -> Callable[[Callable[[Request], Awaitable[Response]]], Any]:
        def register_route(endpoint: Callable[[Request], Awaitable[Response]]) -> Any:
            app.hot(path, method, endpoint)
            return endpoint

        return register_route

    @contextlib.contextmanager
    def holding(me: str, wait: float, kind: str) -> Iterator[float]:
        """A long poll of `me` is held at most `wait` s; 0 past the per-worker count of
        held requests of its `kind` (work, verdict) or the total (the request answers at
        once, as without `wait`). A verdict poll the worker gave up stays held until it
        expires: it does not take the place of the worker's work/next."""
        key = (me, kind)
        if wait > 0 and (held.get(key, 0) >= MAX_HELD_PER_WORKER or held_total[0] >= MAX_HELD):
            wait = 0.0
        if wait <= 0:
            yield 0.0
            return
        held[key] = held.get(key, 0) + 1
        held_total[0] += 1
        try:
            yield wait
        finally:
            held_total[0] -= 1
            held[key] -= 1
            if held[key] <= 0:
                del held[key]

    @hot("/v1/workers/heartbeat", "POST")
    async def heartbeat(request: Request) -> Response:
        me = await authenticate(request)
        req = await body_of(request, HeartbeatRequest)
        cached = [c.lower().removeprefix("0x") for c in req.cached]
        released = await db.run(
            lambda c: state.heartbeat(c, me, cached, time.time(), running=req.running)
        )
        if released:
            log.info("assignments.unreached", worker=me, ids=released)
            sched.work_appeared()  # their tasks want those replicas again
        return answer({"ok": True, "lease_s": settings.heartbeat_lease_s})

    @hot("/v1/work/next", "POST")
    async def next_work(request: Request) -> Response:
        me = await authenticate(request)
        # long poll: with nothing to hand out, wait for new work (a deal seen, replicas
        # lost or given back) up to `wait` seconds instead of making the worker poll
        with holding(me, wait_seconds(request), "work") as wait:
            deadline = time.monotonic() + wait
            while True:
                generation = sched.work_generation
                found = await db.run(
                    lambda c: state.next_work(
                        c, settings, me, sched.clock.now(), time.time(), sched.authorize
                    )
                )
                left = deadline - time.monotonic()
                if found is not None or left <= 0:
                    break
                if generation == sched.work_generation:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(sched.new_work.wait(), timeout=left)
        if found is None:
            retried = await stake_checked_retry(me, sched.clock.now())
            if isinstance(retried, Response):
                return retried
            found = retried
        metrics.assignments_dispatched.inc()
        log.info("assignment.new", id=found["id"], worker=me, task=found["task_id"])
        return answer(found)

    async def stake_checked_retry(me: str, chain_now: int) -> Response | dict[str, Any]:
        """No work for `me`: when its stake or lock is what keeps it from open deals, read
        them again from the chain (at most every standing_ttl_s: it may just have locked)
        and retry once; otherwise say in the 204's headers what it lacks."""

        def standing(c: Connection) -> tuple[stakelock.Shortfall | None, float | None]:
            # one transaction: what it lacks, and how old the reading of it is
            short = stakelock.shortfall(c, me, chain_now)
            return short, None if short is None else stakelock.standing_age(c, me, time.time())

        short, age = await db.run(standing)
        if short is None:
            return Response(status_code=204)
        if age is not None and age >= settings.standing_ttl_s:
            try:
                await sched.refresh_workers({me})
            except Exception as exc:  # chain down: keep what was read (a lock only grows)
                log.warning("worker.standing_unread", worker=me, error=str(exc)[:300])
                now = time.time()  # and try again a TTL later, not at every poll
                await db.run(lambda c: stakelock.mark_read(c, me, now))
            else:
                found = await db.run(
                    lambda c: state.next_work(
                        c, settings, me, chain_now, time.time(), sched.authorize
                    )
                )
                if found is not None:
                    return found
                short = await db.run(lambda c: stakelock.shortfall(c, me, chain_now))
                if short is not None:  # logged once per read, not at every poll
                    log.info("worker.not_dispatched", worker=me, reason=short.reason)
        if short is None:
            return Response(status_code=204)
        return Response(
            status_code=204,
            headers={
                stakelock.LOCK_HEADER: str(short.lock_until),
                stakelock.STAKE_HEADER: str(short.stake),
                stakelock.WAIT_HEADER: short.reason,
            },
        )

    @hot("/v1/assignments/{aid}", "GET")
    async def assignment(request: Request) -> Response:
        me = await authenticate(request)
        aid = assignment_id(request)
        asked = wait_seconds(request)
        view = await db.run(lambda c: state.assignment_state(c, aid, me))
        if view["action"] != "wait" or asked <= 0:
            return answer(view)
        # long poll: a committed replica waits for its task's verdict (the other replicas'
        # commitments) up to `wait` seconds instead of polling for it
        with holding(me, asked, "verdict") as wait:
            deadline = time.monotonic() + wait
            while view["action"] == "wait" and (left := deadline - time.monotonic()) > 0:
                with verdicts.watch(view["task_id"]) as changed:
                    # read again once watching: a change made meanwhile is not missed (on
                    # SQLite the read ran on this thread without yielding: nothing could)
                    if not db.inline:
                        view = await db.run(lambda c: state.assignment_state(c, aid, me))
                        if view["action"] != "wait":
                            break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), timeout=left)
                view = await db.run(lambda c: state.assignment_state(c, aid, me))
        return answer(view)

    @hot("/v1/assignments/{aid}/commit", "POST")
    async def commit(request: Request) -> Response:
        me = await authenticate(request)
        aid = assignment_id(request)
        req = await body_of(request, CommitRequest)

        def contribution(task_id: bytes) -> SignedContribution:
            c = SignedContribution(
                me,
                task_id,
                state.unhx(req.result_hash),
                state.unhx(req.result_seal),
                state.unhx(req.r),
                state.unhx(req.vs),
            )
            signer = contribution_signer(c, settings.deployment.chain_id, settings.deployment.hub)
            if signer is None or signer != me:
                raise state.Invalid("The contribution is not signed by this worker's key.")
            return c

        take_next = wants_next(request)

        def verified_commit(conn: Connection) -> tuple[dict[str, Any], bool]:
            # one transaction: the task the assignment is for, the signature over it, the
            # commitment stored, and what the worker is to do next (reveal at once when
            # its commitment made the task's consensus: no poll for it); with ?next=1 also
            # the replica its freed slot takes (BOINC's scheduler RPC reports a result and
            # asks for work in one request: here that saves a pull per replica)
            out, stored = state.commit_verified(conn, aid, me, contribution, time.time())
            if take_next:
                out["next"] = state.next_work(
                    conn, settings, me, sched.clock.now(), time.time(), sched.authorize
                )
            return out, stored

        out, stored = await db.run(verified_commit)
        if stored:  # a repeat changes nothing: it wakes nobody
            log.info("assignment.committed", id=aid, worker=me)
            verdicts.notify(out["task_id"])  # its other replicas may be asked to reveal now
            sched.work_appeared()  # a disagreement asks for more replicas
        handed = out.get("next")
        if handed is not None:
            metrics.assignments_dispatched.inc()
            log.info("assignment.new", id=handed["id"], worker=me, task=handed["task_id"])
        return answer(out)

    @hot("/v1/assignments/{aid}/reveal", "POST")
    async def reveal(request: Request) -> Response:
        me = await authenticate(request)
        aid = assignment_id(request)
        req = await body_of(request, RevealRequest)
        if storage is not None and req.result_blob:
            try:
                present = await storage.aexists(req.result_blob)
            except StorageError:
                present = True  # storage down: do not punish the worker for it
            if not present:
                raise HTTPException(400, "Upload the result to storage before revealing it.")
        digest = state.unhx(req.digest)
        out = await db.run(
            lambda c: state.reveal(
                c, aid, me, digest, req.result_blob, req.failure, req.callback_data, time.time()
            )
        )
        sched.wake.set()
        log.info("assignment.revealed", id=aid, worker=me)
        return answer(out)

    @app.post("/v1/assignments/{aid}/fail")
    async def fail(aid: AssignmentId, req: FailRequest, me: Worker) -> dict[str, Any]:
        out = await db.run(
            lambda c: state.fail(
                c, aid, me, req.kind, req.message, time.time(), settings.max_attempts
            )
        )
        log.info("assignment.failed", id=aid, worker=me, kind=req.kind, message=req.message)
        sched.work_appeared()  # the task may want another replica
        return out

    @app.post("/v1/assignments/{aid}/release")
    async def release(aid: AssignmentId, me: Worker) -> dict[str, Any]:
        out = await db.run(lambda c: state.release(c, aid, me, time.time()))
        sched.work_appeared()
        return out

    # ---------------------------------------------------------------- public views

    @app.get("/v1/status")
    async def status() -> dict[str, Any]:
        counts = await db.run(state.counts)
        cursor = await db.run(state.get_cursor)
        return {
            "scheduler": sched.address,
            "workerpool": settings.workerpool,
            "chain_id": settings.deployment.chain_id,
            "block": cursor,
            "chain_time": sched.clock.now(),
            **counts,
        }

    @app.get("/v1/deals")
    async def deals(
        status: Annotated[str | None, Query(max_length=32)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        return await db.run(lambda c: state.deal_list(c, status, limit))

    @app.get("/v1/deals/{deal_id}")
    async def deal(deal_id: Hash32) -> dict[str, Any]:
        return await db.run(lambda c: state.deal_view(c, deal_id))

    @app.get("/v1/tasks/{task_id}")
    async def task(task_id: Hash32) -> dict[str, Any]:
        return await db.run(lambda c: state.task_view(c, task_id))

    @app.get("/v1/workers")
    async def workers() -> list[dict[str, Any]]:
        return await db.run(state.worker_list)

    @app.get("/metrics")
    async def prometheus() -> Response:
        await sched.update_metrics()
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", response_model=None)
    async def healthz() -> JSONResponse | dict[str, str]:
        # a write, not a read: a full disk or a read-only database fails only on writes
        await db.run(state.health_probe)
        if db.failed_at is not None and time.time() - db.failed_at < HEALTH_MEMORY_S:
            return JSONResponse({"detail": state.DATABASE_DOWN}, status_code=503)
        return {"status": "ok"}

    return app
