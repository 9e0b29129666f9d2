"""The explorer's HTTP side: pages and htmx fragments under /explorer, its static files,
and the market's /docs served from local Swagger UI files."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import structlog
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Undefined
from starlette.routing import Route

from comptoir.exceptions import ComptoirError, OrderNotFound
from comptoir.explorer.chart import INTERVAL_NAMES, INTERVALS, candles_svg
from comptoir.explorer.feed import catch_up
from comptoir.explorer.index import ChainIndex, SchedulerUrls
from comptoir.explorer.views import HEX40, HEX64, TASKS_PER_PAGE, BookFilters, Views, tag_labels

if TYPE_CHECKING:
    from comptoir.chain.client import ChainClient
    from comptoir.market.app import Market

log = structlog.get_logger("comptoir.explorer")

HERE = Path(__file__).parent
PREFIX = "/explorer"
CONNECT_RETRY = 2.0
KINDS = ("workerpool", "app", "dataset", "request")
# a form field as typed (module level: FastAPI resolves postponed annotations here)
Str = Annotated[str | None, Query(max_length=100)]


@dataclass(frozen=True)
class RawBookForm:
    """The order book's filter form as typed; `BookFilters` is what it means."""

    category: str | None
    kind: str | None
    tag: str | None
    min_trust: str | None
    max_price: str | None


def _book_form(
    category: Str = None,
    kind: Str = None,
    tag: Str = None,
    min_trust: Str = None,
    max_price: Str = None,
) -> RawBookForm:
    return RawBookForm(category, kind, tag, min_trust, max_price)


BookForm = Annotated[RawBookForm, Depends(_book_form)]


def env_schedulers() -> Mapping[int, str]:
    """COMPTOIR_SCHEDULER_URLS (``<workerpool id>=<url>,...``), the SDK's convention."""
    from comptoir.sdk.config import parse_scheduler_urls

    try:
        return parse_scheduler_urls(os.environ.get("COMPTOIR_SCHEDULER_URLS", ""))
    except ComptoirError:
        return {}


class Explorer:
    """The explorer of one market: its chain index runs with the market app."""

    def __init__(self, market: Market, schedulers: SchedulerUrls | None = None) -> None:
        self.market = market
        self.schedulers: SchedulerUrls = schedulers or env_schedulers
        # a market whose network index catches this explorer up (its own URL, usually)
        self.index_url: str | None = None
        self.index: ChainIndex | None = None
        self.client: ChainClient | None = None
        self._boot: asyncio.Task[None] | None = None

    @property
    def views(self) -> Views:
        return Views(self.market.book, self.index, self.client)

    async def start(self) -> None:
        """Connects to the chain in the background (the market starts even if it is down)."""
        s = self.market.settings
        if s.rpc_url and s.registry and s.sync_interval and self._boot is None:
            self._boot = asyncio.create_task(self._connect(), name="explorer-connect")

    async def _connect(self) -> None:
        s = self.market.settings
        while self.index is None:
            try:
                self.client = await asyncio.to_thread(self._client)
            except Exception as e:  # node not up yet: try again
                log.info("explorer.chain.waiting", error=str(e))
                await asyncio.sleep(CONNECT_RETRY)
                continue
            d = self.client.deployment
            addresses = (d.hub, d.registry, d.contributions)
            feed = (
                None
                if self.index_url is None
                else functools.partial(catch_up, self.client, self.index_url, addresses)
            )
            self.index = ChainIndex(
                self.client.w3,
                d.hub,
                d.registry,
                d.contributions,
                s.start_block,
                self.market.events.publish,
                lambda: self.schedulers(),
                max_block_range=s.max_block_range,
                feed=feed,
            )
        self.index.start(s.sync_interval or 5.0)

    def _client(self) -> ChainClient:
        """A read-only ChainClient for the market's hub: token and Contributions addresses
        come from the hub's own views."""
        from comptoir.chain.build import artifact
        from comptoir.chain.client import ChainClient, connect
        from comptoir.chain.deploy import Deployment
        from comptoir.chain.types import ZERO_ADDRESS

        s = self.market.settings
        assert s.rpc_url and s.registry
        w3 = connect(s.rpc_url, timeout=10.0)
        hub = w3.eth.contract(address=w3.to_checksum_address(s.hub), abi=artifact("Hub").abi)
        deployment = Deployment(
            chain_id=int(w3.eth.chain_id),
            token=hub.functions.token().call(),
            registry=w3.to_checksum_address(s.registry),
            hub=w3.to_checksum_address(s.hub),
            contributions=hub.functions.onchain_path().call(),
            deployer=ZERO_ADDRESS,
            block=s.start_block,
        )
        return ChainClient(w3, deployment)

    async def stop(self) -> None:
        if self._boot is not None:
            self._boot.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._boot
            self._boot = None
        if self.index is not None:
            await self.index.stop()


# ---------------------------------------------------------------- templating


def short(value: Any, keep: int = 6) -> str:
    text = str(value)
    return text if len(text) <= 2 * keep + 3 else f"{text[: keep + 2]}…{text[-keep + 2 :]}"


def ago(ts: float | None) -> str:
    if not ts:
        return "—"
    delta = max(time.time() - ts, 0)
    if delta < 60:
        return f"{int(delta)} s ago"
    if delta < 3600:
        return f"{int(delta // 60)} min ago"
    if delta < 86400:
        return f"{int(delta // 3600)} h ago"
    return f"{int(delta // 86400)} d ago"


def utc(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts)) if ts else "—"


def num(value: Any) -> str:
    """Digits grouped by thousands (thin spaces read well in any locale); "—" when unknown."""
    if value is None or isinstance(value, Undefined):
        return "—"
    return f"{int(value):,}".replace(",", "\u202f")


def _templates() -> Jinja2Templates:
    t = Jinja2Templates(directory=str(HERE / "templates"))
    t.env.filters.update(short=short, ago=ago, utc=utc, num=num, tags=tag_labels)
    t.env.globals.update(prefix=PREFIX, interval_names=INTERVAL_NAMES, intervals=INTERVALS)
    return t


# ---------------------------------------------------------------- routes


def _int(raw: str | None, upper: int = 2**256 - 1) -> int | None:
    """A query field as typed in a form: blank means no filter, garbage is ignored."""
    if raw is None or not raw.strip().isdigit() or len(raw.strip()) > 78:
        return None
    value = int(raw.strip())
    return value if value <= upper else None


def create_router(explorer: Explorer) -> APIRouter:
    def stream_position(request: Request) -> None:
        # taken before the handler reads anything: an event published while it renders
        # is after this position, so the page's stream sends it (see market.events)
        request.state.stream_after = explorer.market.events.position

    router = APIRouter(
        prefix=PREFIX, include_in_schema=False, dependencies=[Depends(stream_position)]
    )
    templates = _templates()

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        index = explorer.index
        after = getattr(request.state, "stream_after", explorer.market.events.position)
        context.update(
            chain_ready=index is not None,
            head=index.head if index else None,
            stream_url=f"{request.app.url_path_for('stream')}?after={after}",
        )
        return templates.TemplateResponse(request, name, context, status_code=status)

    def not_found(request: Request, what: str) -> HTMLResponse:
        return page(request, "not_found.html", 404, what=what)

    async def book_context(form: RawBookForm) -> dict[str, Any]:
        views = explorer.views
        filters = BookFilters(
            category=_int(form.category),
            kind=form.kind if form.kind in KINDS else None,
            tag=(form.tag or "")[:100],
            min_trust=_int(form.min_trust),
            max_price=_int(form.max_price),
        )
        orders, total = await views.orders(filters)
        return {
            "filters": filters,
            "tag_invalid": bool(filters.tag.strip()) and filters.tag_value is None,
            "orders": orders,
            "total": total,
            "views": views,
            "categories": views.categories(),
            "kinds": KINDS,
        }

    async def chart_context(category: str | None, interval: str | None) -> dict[str, Any]:
        views = explorer.views
        cat = _int(category)
        if cat is None:
            cat = await views.default_category()
        wanted = _int(interval)
        bars, chosen = await views.chart(cat, wanted if wanted in INTERVALS else None)
        label = views.category_name(cat)
        return {
            "chart": candles_svg(bars, chosen, label),
            "chart_narrow": candles_svg(
                bars, chosen, label, width=400, height=300, shown=24, variant="narrow"
            ),
            "bars": bars,
            "category": cat,
            "category_label": label,
            "interval": chosen,
            "categories": views.categories(),
            "prices": await views.prices(),
        }

    def stats() -> dict[str, Any]:
        index = explorer.index
        if index is None:
            return {}
        settled = sum(d.settled for d in index.deals.values())
        return {
            "deals": len(index.deals),
            "tasks": sum(d.volume for d in index.deals.values()),
            "settled": settled,
            "workers": len(index.workers),
            "pools": sum(1 for a in index.assets.values() if a.kind == "workerpool"),
            "apps": sum(1 for a in index.assets.values() if a.kind == "app"),
            "datasets": sum(1 for a in index.assets.values() if a.kind == "dataset"),
            "block": index.head,
        }

    @router.get("", response_class=RedirectResponse)
    async def root() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=307)

    @router.get("/", response_class=HTMLResponse)
    async def home(request: Request, form: BookForm, interval: Str = None) -> HTMLResponse:
        index = explorer.index
        context = {
            **await book_context(form),
            **await chart_context(form.category, interval),
            "stats": stats(),
            "deals": index.deals_newest(10) if index else [],
            "deals_live": True,
        }
        return page(request, "home.html", **context)

    @router.get("/fragments/book", response_class=HTMLResponse)
    async def book_fragment(request: Request, form: BookForm) -> HTMLResponse:
        return page(request, "_book_results.html", **await book_context(form))

    @router.get("/fragments/chart", response_class=HTMLResponse)
    async def chart_fragment(
        request: Request, category: Str = None, interval: Str = None
    ) -> HTMLResponse:
        return page(request, "_chart.html", **await chart_context(category, interval))

    @router.get("/fragments/stats", response_class=HTMLResponse)
    async def stats_fragment(request: Request) -> HTMLResponse:
        return page(request, "_stats.html", stats=stats())

    @router.get("/fragments/deals", response_class=HTMLResponse)
    async def deals_fragment(request: Request, limit: int = Query(10, ge=1, le=200)) -> Any:
        index = explorer.index
        deals = index.deals_newest(limit) if index else []
        return page(
            request,
            "_deals.html",
            deals=deals,
            views=explorer.views,
            deals_live=True,
            deals_limit=limit,
        )

    @router.get("/deals", response_class=HTMLResponse)
    async def deals(request: Request) -> HTMLResponse:
        index = explorer.index
        deals = index.deals_newest(200) if index else []
        return page(
            request,
            "deals.html",
            deals=deals,
            views=explorer.views,
            deals_live=True,
            deals_limit=200,
        )

    async def deal_context(deal_id: str, page_no: int) -> dict[str, Any] | None:
        index = explorer.index
        deal = index.deals.get(deal_id.lower()) if index else None
        if deal is None:
            return None
        pages = max((deal.volume + TASKS_PER_PAGE - 1) // TASKS_PER_PAGE, 1)
        page_no = min(page_no, pages - 1)
        return {
            "deal": deal,
            "rows": await explorer.views.task_rows(deal, page_no),
            "page_no": page_no,
            "pages": pages,
            "views": explorer.views,
        }

    @router.get("/deals/{deal_id}", response_class=HTMLResponse)
    async def deal(request: Request, deal_id: str, p: int = Query(0, ge=0)) -> HTMLResponse:
        context = await deal_context(deal_id, p) if HEX64.match(deal_id) else None
        if context is None:
            return not_found(request, f"deal {deal_id[:80]}")
        return page(request, "deal.html", **context)

    @router.get("/fragments/deals/{deal_id}", response_class=HTMLResponse)
    async def deal_fragment(request: Request, deal_id: str, p: int = Query(0, ge=0)) -> Any:
        context = await deal_context(deal_id, p) if HEX64.match(deal_id) else None
        if context is None:
            return Response(status_code=404)
        return page(request, "_deal_live.html", **context)

    async def task_context(task_id: str) -> dict[str, Any] | None:
        index = explorer.index
        found = index.deal_of_task(task_id) if index and HEX64.match(task_id) else None
        if found is None:
            return None
        deal, task = found
        rows = await explorer.views.task_rows(deal, task.index // TASKS_PER_PAGE)
        row = next(r for r in rows if r.record.index == task.index)
        return {"deal": deal, "row": row, "views": explorer.views}

    @router.get("/tasks/{task_id}", response_class=HTMLResponse)
    async def task(request: Request, task_id: str) -> HTMLResponse:
        context = await task_context(task_id)
        if context is None:
            return not_found(request, f"task {task_id[:80]}")
        return page(request, "task.html", **context)

    @router.get("/fragments/tasks/{task_id}", response_class=HTMLResponse)
    async def task_fragment(request: Request, task_id: str) -> Any:
        context = await task_context(task_id)
        if context is None:
            return Response(status_code=404)
        return page(request, "_task_live.html", **context)

    @router.get("/orders/{order_hash}", response_class=HTMLResponse)
    async def order(request: Request, order_hash: str) -> HTMLResponse:
        if not HEX64.match(order_hash):
            return not_found(request, f"order {order_hash[:80]}")
        try:
            record = await explorer.market.book.get(order_hash.lower())
        except OrderNotFound:
            return not_found(request, f"order {order_hash[:80]}")
        return page(request, "order.html", order=record, views=explorer.views)

    @router.get("/pools", response_class=HTMLResponse)
    async def pools(request: Request) -> HTMLResponse:
        views = explorer.views
        return page(request, "pools.html", pools=await views.pools(), views=views)

    @router.get("/workers", response_class=HTMLResponse)
    async def workers(request: Request) -> HTMLResponse:
        return page(request, "workers.html", workers=await explorer.views.workers())

    @router.get("/assets", response_class=HTMLResponse)
    async def assets(request: Request) -> HTMLResponse:
        views = explorer.views
        return page(
            request,
            "assets.html",
            apps=await views.catalogue("app"),
            datasets=await views.catalogue("dataset"),
            views=views,
        )

    @router.get("/assets/{asset}", response_class=HTMLResponse)
    async def asset(request: Request, asset: str) -> HTMLResponse:
        index = explorer.index
        found = index.assets.get(int(asset)) if index and asset.isdigit() else None
        if found is None:
            return not_found(request, f"asset {asset[:80]}")
        views = explorer.views
        deals = (
            [
                d
                for d in index.deals_newest(len(index.deals))
                if found.asset in (d.app, d.dataset, d.workerpool)
            ]
            if index
            else []
        )
        return page(
            request, "asset.html", info=await views.asset(found), deals=deals[:50], views=views
        )

    @router.get("/address/{address}", response_class=HTMLResponse)
    async def address(request: Request, address: str) -> HTMLResponse:
        if not HEX40.match(address):
            return not_found(request, f"address {address[:80]}")
        return page(
            request, "address.html", views=explorer.views, **await explorer.views.address(address)
        )

    @router.get("/search", response_class=HTMLResponse)
    async def search(request: Request, q: Annotated[str, Query(max_length=200)] = "") -> Any:
        target, hits = await explorer.views.search(q)
        if target is not None:
            return RedirectResponse(target, status_code=303)
        # a results page, even an empty one (the ids themselves 404 on their own pages)
        return page(request, "search.html", q=q, hits=hits)

    return router


def _replace_docs(app: FastAPI) -> None:
    """Swagger UI from the swagger-ui-py package's files, so /docs works offline."""
    try:
        import swagger_ui
    except ImportError:  # the CDN page FastAPI ships stays in place
        return
    static = Path(swagger_ui.__file__).parent / "static"
    app.router.routes[:] = [
        r for r in app.router.routes if not (isinstance(r, Route) and r.path == app.docs_url)
    ]
    app.mount(
        "/docs/static",
        StaticFiles(directory=static),
        name="swagger-static",
    )

    @app.get(app.docs_url or "/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — docs",
            swagger_js_url="/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/docs/static/swagger-ui.css",
            swagger_favicon_url=f"{PREFIX}/static/favicon.svg",
        )


def mount_explorer(app: FastAPI, market: Market) -> Explorer:
    """Serves the explorer from the market app and runs its index with the app's lifespan."""
    explorer = Explorer(market)
    app.state.explorer = explorer
    app.include_router(create_router(explorer))
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="explorer-static")
    if app.docs_url:
        _replace_docs(app)

    @app.get("/", include_in_schema=False)
    async def _home() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=307)

    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as state:
            await explorer.start()
            try:
                yield state
            finally:
                await explorer.stop()

    app.router.lifespan_context = lifespan
    return explorer
