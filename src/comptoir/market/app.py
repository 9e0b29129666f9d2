"""The Market HTTP API (FastAPI), version /v1; OpenAPI at /openapi.json, docs at /docs."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Body, FastAPI, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from comptoir.exceptions import (
    ChainError,
    ForgedSignature,
    InvalidOrder,
    ListingRefused,
    MarketError,
    OrderNotFound,
)
from comptoir.httpguard import guard
from comptoir.market import listing
from comptoir.market.events import MAX_POSITION_CHARS, Broadcaster
from comptoir.market.orderbook import OrderBook
from comptoir.market.schemas import (
    MAX_UINT256,
    BatchResult,
    CancelBody,
    Candle,
    CandleSeries,
    ErrorBody,
    LatestPrice,
    MarketInfo,
    OrderKind,
    OrderPage,
    OrderRecord,
    PublishBody,
    SyncReport,
    parse_address,
    parse_bytes32,
    parse_signature,
)
from comptoir.market.settings import MarketSettings
from comptoir.market.store import MarketStore, OrderQuery, parse_cursor
from comptoir.market.sync import MarketSync

T = TypeVar("T")

API_VERSION = "v1"
MAX_PAGE = 500
MAX_BATCH = 100  # orders per POST /v1/batch/orders (not under /v1/orders/: {order_hash})
MAX_BODY = 256 * 1024  # a batch of 100 request orders with 512-byte params is ~170 KiB
MAX_CANDLES = 10_000
MAX_OFFSET = 1_000_000  # deeper pages: narrow the filters instead
MAX_EVENTS = 1_000_000
MAX_TIME = 2.0**40  # Unix seconds, far past any deal

_ERRORS: dict[type[Exception], int] = {
    InvalidOrder: 422,
    ForgedSignature: 400,
    OrderNotFound: 404,
    ListingRefused: 403,
    MarketError: 400,
    ChainError: 503,
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Forged signature or refused request."},
    403: {"model": ErrorBody, "description": "Too many open orders, or too little deposited."},
    422: {"model": ErrorBody, "description": "Malformed request; `detail` says which field."},
}


class Market:
    """What one app instance holds; `app.state.market`."""

    def __init__(self, settings: MarketSettings) -> None:
        self.settings = settings
        self.store = MarketStore(settings.database)
        self.events = Broadcaster()
        self.book = OrderBook(
            self.store,
            settings.chain_view(),
            settings.chain_id,
            settings.hub,
            self.events,
            max_open_per_owner=settings.max_open_per_owner,
            min_request_balance=settings.min_request_balance,
            chain_cache_ttl=settings.chain_cache_seconds,
        )
        self.indexer = settings.indexer(self.store.engine)
        self.sync = MarketSync(
            self.book,
            settings.deals(),
            interval=settings.sync_interval or 5.0,
            start_block=settings.start_block,
            max_block_range=settings.max_block_range,
            confirmations=settings.confirmations,
            indexer=self.indexer,
        )

    async def close_chain(self) -> None:
        close = getattr(self.book.chain, "close", None)
        if close is not None:
            await close()

    async def record_deal(self, category: int, price: int, volume: int, timestamp: float) -> bool:
        return await self.book.record_deal(category, price, volume, timestamp)


Uint = Annotated[int | None, Query(ge=0, le=MAX_UINT256)]
ADDRESS = r"^0x[0-9a-fA-F]{40}$"
UnixTime = Annotated[float | None, Query(ge=-MAX_TIME, le=MAX_TIME, allow_inf_nan=False)]
HashPath = Annotated[
    str, Path(pattern=r"^0x[0-9a-fA-F]{64}$", description="EIP-712 order hash, 0x + 64 hex.")
]


def _parsed(name: str, parse: Callable[[str], T], value: str | None) -> T | None:
    """A query parameter through its parser; its ValueError as one sentence."""
    if value is None:
        return None
    try:
        return parse(value)
    except ValueError as e:
        raise InvalidOrder(f"Query parameter {name} {e}.") from e


def _address(name: str, value: str | None) -> str | None:
    return _parsed(name, parse_address, value)


def _tag(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        tag = int(value, 16) if value.lower().startswith("0x") else int(value)
    except ValueError as e:
        raise InvalidOrder("Query parameter tag must be a 0x-hex or decimal bitmask.") from e
    if not 0 <= tag <= MAX_UINT256:
        raise InvalidOrder("Query parameter tag must fit in 256 bits.")
    return tag


def _status(error: Exception) -> int:
    for cls, code in _ERRORS.items():
        if isinstance(error, cls):
            return code
    return 400


def _hash(value: str) -> str:
    try:
        return parse_bytes32(value)
    except ValueError as e:
        raise InvalidOrder(f"The order hash {e}.") from e


def _validation_sentence(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "Invalid request."
    err = errors[0]
    if err.get("type") == "union_tag_invalid":
        tag = (err.get("ctx") or {}).get("tag", "")
        return f"Unknown order kind {tag!r}: use app, dataset, workerpool or request."
    if err.get("type") == "union_tag_not_found":
        return "Missing field kind: use app, dataset, workerpool or request."
    if err.get("type") == "json_invalid":
        return "The request body is not valid JSON."
    if err.get("type") == "missing" and tuple(err.get("loc", ())) == ("body",):
        return "The request needs a JSON body."
    if err.get("type") == "less_than_equal" and (err.get("ctx") or {}).get("le") == MAX_UINT256:
        err = {**err, "msg": "must be at most 2**256 - 1"}
    loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
    if len(loc) > 1 and loc[0] in ("app", "dataset", "workerpool", "request"):
        loc = loc[1:]  # the discriminator tag pydantic inserts
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    where = ".".join(loc) or "body"
    return f"Invalid {where}: {msg[0].lower() + msg[1:] if msg else 'invalid'}."


def create_market_app(settings: MarketSettings) -> FastAPI:
    market = Market(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await market.store.ready()
        if market.indexer is not None:
            await market.store._run(market.indexer.create_tables)
        if settings.sync_interval:
            market.sync.start()
        try:
            yield
        finally:
            await market.sync.stop()
            market.events.close()
            await market.store.close()
            await market.close_chain()

    app = FastAPI(
        title="Comptoir Market API",
        version=API_VERSION,
        description=(
            "Order book of the Comptoir decentralized cloud: signed EIP-712 orders for apps, "
            "datasets, workerpools and requests, kept in step with the chain, and the cloud "
            "price index (OHLC of workerpool prices of matched deals). uint256 values are "
            "accepted as integers or decimal strings."
        ),
        lifespan=lifespan,
    )
    guard(app, max_bytes=MAX_BODY)
    app.state.market = market
    book = market.book

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_sentence(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette lists only the first route of the path; list every method it has
            methods: set[str] = set()
            for route in app.router.routes:
                if route.matches(request.scope)[0] != Match.NONE:
                    methods |= getattr(route, "methods", None) or set()
            headers["Allow"] = ", ".join(sorted(methods))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    for cls, code in _ERRORS.items():

        async def handler(request: Request, exc: Exception, code: int = code) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=code)

        app.add_exception_handler(cls, handler)

    @app.get("/v1/info", response_model=MarketInfo, tags=["market"])
    async def info() -> MarketInfo:
        """The EIP-712 domain this market checks signatures against."""
        return MarketInfo(chain_id=settings.chain_id, hub=book.hub)

    @app.post(
        "/v1/orders",
        response_model=OrderRecord,
        status_code=201,
        tags=["orders"],
        responses={
            200: {"model": OrderRecord, "description": "Already listed (idempotent)."},
            **_RESPONSES,
        },
    )
    async def publish(body: Annotated[PublishBody, Body()]) -> Response:
        """Publishes a signed order. The signer must own the asset (app, dataset and
        workerpool orders) or be the requester (request orders)."""
        found = (await book.publish_many([(body.order, body.signature)]))[0]
        if found.error is not None:
            raise found.error
        assert found.text is not None
        # the record as listings render it (market/listing.py), in OrderRecord's shape
        status = 201 if found.created else 200
        return Response(found.text, status_code=status, media_type="application/json")

    @app.post(
        "/v1/batch/orders",
        response_model=BatchResult,
        tags=["orders"],
        responses=_RESPONSES,
    )
    async def publish_batch(
        body: Annotated[list[PublishBody], Body(max_length=MAX_BATCH)],
    ) -> Response:
        """Publishes up to 100 signed orders at once, each checked as `POST /v1/orders`
        checks one; one result per order, in order (`status` 201 listed, 200 already
        listed, else the error status and its `detail`). A malformed body refuses all."""
        found = await book.publish_many([(b.order, b.signature) for b in body])
        results = [
            (
                (201 if p.created else 200) if p.error is None else _status(p.error),
                p.text,
                None if p.error is None else str(p.error),
            )
            for p in found
        ]
        return Response(listing.batch_json(results), media_type="application/json")

    @app.get("/v1/orders", response_model=OrderPage, tags=["orders"], responses=_RESPONSES)
    async def list_orders(
        kind: OrderKind | None = None,
        status: Annotated[
            Literal["open", "filled", "cancelled", "dead", "any"],
            Query(description="Order status; `any` for all."),
        ] = "open",
        category: Uint = None,
        tag: Annotated[
            str | None,
            Query(
                pattern=r"^(0[xX][0-9a-fA-F]{1,64}|[0-9]{1,78})$",
                description=(
                    "Bitmask (0x-hex or decimal). Workerpool orders match when they offer "
                    "every bit of it; other orders match when they require only bits of it."
                ),
            ),
        ] = None,
        min_trust: Uint = None,
        min_remaining: Annotated[
            int | None,
            Query(ge=0, le=MAX_UINT256, description=("Orders with at least this volume left.")),
        ] = None,
        max_price: Annotated[
            int | None,
            Query(
                ge=0,
                le=MAX_UINT256,
                description=(
                    "Price per task at most this (for requests: the sum of their maxima)."
                ),
            ),
        ] = None,
        app: Annotated[
            int | None,
            Query(
                ge=0,
                le=MAX_UINT256,
                description=("Orders naming this app (app orders and requests)."),
            ),
        ] = None,
        dataset: Uint = None,
        workerpool: Uint = None,
        requester: Annotated[
            str | None, Query(pattern=ADDRESS, description="Request orders of this requester.")
        ] = None,
        owner: Annotated[
            str | None, Query(pattern=ADDRESS, description="Orders signed by this address.")
        ] = None,
        usable_by_requester: Annotated[
            str | None,
            Query(
                pattern=ADDRESS,
                description="Orders whose requester restriction is none or this address.",
            ),
        ] = None,
        usable_with_app: Annotated[
            int | None,
            Query(
                ge=0,
                le=MAX_UINT256,
                description=("Orders whose app restriction is none or this app."),
            ),
        ] = None,
        usable_with_dataset: Uint = None,
        usable_with_workerpool: Annotated[
            int | None,
            Query(
                ge=0,
                le=MAX_UINT256,
                description=(
                    "Orders whose workerpool restriction (for requests: workerpool) "
                    "is none or this."
                ),
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
        after: Annotated[
            str | None,
            Query(
                max_length=200,
                description="The `next` of the previous page: the page after it, however "
                "deep (cheaper than a large offset).",
            ),
        ] = None,
    ) -> Response:
        """Lists orders, cheapest first (then oldest first)."""
        query = OrderQuery(
            kind=kind,
            status=None if status == "any" else status,
            category=category,
            tag=_tag(tag),
            min_trust=min_trust,
            min_remaining=min_remaining,
            max_price=max_price,
            app=app,
            dataset=dataset,
            workerpool=workerpool,
            requester=_address("requester", requester),
            owner=_address("owner", owner),
            usable_by_requester=_address("usable_by_requester", usable_by_requester),
            usable_with_app=usable_with_app,
            usable_with_dataset=usable_with_dataset,
            usable_with_workerpool=usable_with_workerpool,
            limit=limit,
            offset=offset,
            after=_parsed("after", parse_cursor, after),
        )
        # rendered from the stored rows (market/listing.py), in OrderPage's shape
        return Response(await book.list_page_json(query), media_type="application/json")

    @app.get(
        "/v1/orders/{order_hash}",
        response_model=OrderRecord,
        tags=["orders"],
        responses={404: {"model": ErrorBody, "description": "Not listed."}, **_RESPONSES},
    )
    async def get_order(
        order_hash: HashPath,
    ) -> OrderRecord:
        return await book.get(_hash(order_hash))

    @app.delete(
        "/v1/orders/{order_hash}",
        response_model=OrderRecord,
        tags=["orders"],
        responses={404: {"model": ErrorBody, "description": "Not listed."}, **_RESPONSES},
    )
    async def cancel_order(
        order_hash: HashPath,
        body: Annotated[CancelBody | None, Body()] = None,
        signature: Annotated[
            str | None,
            Query(pattern=r"^0x[0-9a-fA-F]{130}$", description="Alternative to the JSON body."),
        ] = None,
    ) -> OrderRecord:
        """Withdraws a listing. Sign with personal_sign (EIP-191) the text
        `Comptoir market: cancel order <hash> (chain <chain id>, hub <checksummed hub>)`.
        The order remains valid on-chain: cancel it on the hub to be sure it never matches."""
        if body is not None:
            sig = body.signature
        elif signature is not None:
            try:
                sig = parse_signature(signature)
            except ValueError as e:
                raise InvalidOrder(f"The signature {e}.") from e
        else:
            raise InvalidOrder("A cancel needs the owner's signature, in the body or ?signature=.")
        return await book.cancel(_hash(order_hash), sig)

    @app.post(
        "/v1/sync",
        response_model=SyncReport,
        tags=["admin"],
        responses={
            401: {"model": ErrorBody, "description": "Wrong or missing admin token."},
            403: {"model": ErrorBody, "description": "No admin token is configured."},
            422: _RESPONSES[422],
        },
    )
    async def sync(
        authorization: Annotated[str | None, Header(max_length=1024)] = None,
    ) -> Response | SyncReport:
        """Runs one synchronization pass with the chain now (needs `Authorization: Bearer
        <admin token>`; closed when the server has no admin token)."""
        if settings.admin_token is None:
            return JSONResponse(
                {
                    "detail": "POST /v1/sync is closed on this market: start it with "
                    "COMPTOIR_MARKET_ADMIN_TOKEN set to open it to who holds the token."
                },
                status_code=403,
            )
        expected = f"Bearer {settings.admin_token}"
        if authorization is None or not hmac.compare_digest(
            authorization.encode(), expected.encode()
        ):
            return JSONResponse({"detail": "This endpoint needs the admin token."}, status_code=401)
        return await market.sync.run_once()

    @app.get("/v1/prices", response_model=list[LatestPrice], tags=["prices"])
    async def latest_prices() -> list[LatestPrice]:
        """Latest workerpool price per category."""
        return [
            LatestPrice(category=d.category, price=d.price, timestamp=d.timestamp, deals=n)
            for d, n in await book.latest_prices()
        ]

    @app.get(
        "/v1/prices/{category}", response_model=CandleSeries, tags=["prices"], responses=_RESPONSES
    )
    async def price_candles(
        category: Annotated[int, Path(ge=0, le=MAX_UINT256)],
        interval: Annotated[
            int, Query(ge=1, le=366 * 86400, description="Candle length, seconds.")
        ] = 3600,
        start: Annotated[
            float | None,
            Query(
                ge=-MAX_TIME, le=MAX_TIME, allow_inf_nan=False, description="Unix time, inclusive."
            ),
        ] = None,
        end: Annotated[
            float | None,
            Query(
                ge=-MAX_TIME, le=MAX_TIME, allow_inf_nan=False, description="Unix time, exclusive."
            ),
        ] = None,
    ) -> CandleSeries:
        """OHLC candles of the workerpool price per task of the deals matched in a category
        (the cloud price index); intervals without deals are omitted."""
        found = await book.candles(category, interval, start, end)
        return CandleSeries(
            category=category,
            interval=interval,
            candles=[
                Candle(
                    start=c.start,
                    open=c.open,
                    high=c.high,
                    low=c.low,
                    close=c.close,
                    volume=c.volume,
                    deals=c.deals,
                )
                for c in found[-MAX_CANDLES:]
            ],
        )

    @app.get(
        "/v1/stream",
        tags=["stream"],
        responses={
            200: {
                "content": {"text/event-stream": {}},
                "description": (
                    "Server-Sent Events: order.published, order.updated, order.cancelled (data: "
                    "an OrderRecord), deal.recorded, and the explorer's deal.updated and "
                    "task.updated. Each has an id; stream.resync (no id) says events a "
                    "subscriber asked for are gone and it should re-read what it shows."
                ),
            }
        },
    )
    async def stream(
        max_events: Annotated[
            int | None, Query(ge=1, le=MAX_EVENTS, description="Close after this many events.")
        ] = None,
        after: Annotated[
            str | None,
            Query(
                max_length=MAX_POSITION_CHARS,
                pattern=r"^[0-9a-f]+-[0-9]+$",
                description="Send the events after this event id first (a page's position).",
            ),
        ] = None,
        last_event_id: Annotated[
            str | None, Header(alias="Last-Event-ID", max_length=MAX_POSITION_CHARS)
        ] = None,
    ) -> StreamingResponse:
        """Live feed of the order book and the explorer's deals and tasks."""
        # a reconnecting browser's Last-Event-ID is newer than the page's ?after=
        return StreamingResponse(
            market.events.subscribe(max_events=max_events, after=last_event_id or after),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    from comptoir.market.indexapi import mount_index_routes

    mount_index_routes(app, market)  # /v1/index, /v1/deals, /v1/tasks, /v1/assets

    from comptoir.explorer import mount_explorer  # here: the explorer reads market modules

    mount_explorer(app, market)  # the web explorer under /explorer
    return app
