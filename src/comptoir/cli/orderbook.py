"""comptoir orderbook: list and filter the market's orders; orderbook prices."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from comptoir.cli._common import JsonOpt, parse_amount, parse_tag, sdk
from comptoir.cli.output import console, print_json

if TYPE_CHECKING:
    from comptoir.sdk.liveness import Liveness

app = typer.Typer(help="Browse the order book (cheapest first) and the cloud price index.")


@app.callback(invoke_without_command=True)
def orderbook(
    ctx: typer.Context,
    kind: Annotated[
        str | None, typer.Option(help="app, dataset, workerpool or request (default: all).")
    ] = None,
    app_: Annotated[
        str | None, typer.Option("--app", help="Orders naming this app (id or name).")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(help="Orders of this dataset (id or name).")
    ] = None,
    workerpool: Annotated[
        str | None, typer.Option(help="Orders of this workerpool (id or name).")
    ] = None,
    category: Annotated[
        str | None, typer.Option(help="Workerpool category (id or name: XS ... TEST).")
    ] = None,
    min_trust: Annotated[int | None, typer.Option(help="Workerpools offering this trust.")] = None,
    max_price: Annotated[
        str | None, typer.Option(help="Price per task at most this (1000, 1.5CPT).")
    ] = None,
    tag: Annotated[str | None, typer.Option(help="gpu, tee or a bitmask.")] = None,
    status: Annotated[str, typer.Option(help="open, filled, cancelled, dead or any.")] = "open",
    limit: Annotated[int, typer.Option(help="At most this many orders.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List open orders, cheapest first; filters narrow the list."""
    if ctx.invoked_subcommand is not None:
        return
    from comptoir.exceptions import UnknownNameError

    kinds = ("app", "dataset", "workerpool", "request")
    if kind is not None and kind not in kinds:
        raise UnknownNameError("order kind", kind, kinds)
    with sdk(need_account=False) as c:
        orders = c.orderbook(
            kind,
            app=c.resolve("app", app_) if app_ else None,
            dataset=c.resolve("dataset", dataset) if dataset else None,
            workerpool=c.resolve("workerpool", workerpool) if workerpool else None,
            category=c.resolve_category(category) if category else None,
            min_trust=min_trust,
            max_price=parse_amount(max_price, "max price") if max_price else None,
            tag=hex(parse_tag(tag)) if tag else None,
            status=status,
            limit=limit,
        )
        # liveness of each listed pool's scheduler: what `run` checks before matching
        live = c.pools_alive([o.asset for o in orders if o.kind == "workerpool"])
    if as_json:
        print_json(
            [
                {
                    "hash": o.hash,
                    "kind": o.kind,
                    "asset": o.asset,
                    "price": o.price,
                    "remaining": o.remaining,
                    "volume": o.volume,
                    "status": o.status,
                    "owner": o.owner,
                    "order": o.order.to_json(),
                    **(
                        {"scheduler_alive": live[o.asset].alive, "scheduler": live[o.asset].reason}
                        if o.asset in live and o.kind == "workerpool"
                        else {}
                    ),
                }
                for o in orders
            ]
        )
        return
    if not orders:
        console.print("No order matches; widen the filters or publish one.")
        return
    from rich.table import Table

    table = Table(title="Order book")
    for col in (
        "kind",
        "asset",
        "price",
        "left/volume",
        "category",
        "trust",
        "tag",
        "owner",
        "hash",
        "scheduler",
    ):
        table.add_column(col)
    for o in orders:
        order = o.order
        table.add_row(
            o.kind,
            str(o.asset),
            str(o.price),
            f"{o.remaining}/{o.volume}",
            str(getattr(order, "category", "")),
            str(getattr(order, "trust", "")),
            hex(int.from_bytes(order.tag, "big")),
            o.owner[:10] + "…",
            o.hash[:12] + "…",
            _scheduler_cell(live, o.asset) if o.kind == "workerpool" else "",
        )
    console.print(table)


def _scheduler_cell(live: dict[int, Liveness], pool: int) -> str:
    state = live.get(pool)
    if state is None:
        return ""
    return "alive" if state.alive else "DOWN: " + state.reason


@app.command()
def prices(as_json: JsonOpt = False) -> None:
    """Latest workerpool price per category (the cloud price index)."""
    with sdk(need_account=False) as c:
        found = c.market.prices()
    if as_json:
        print_json(found)
        return
    if not found:
        console.print("No deal has been made yet.")
    for p in found:
        console.print(f"category {p['category']}: {p['price']} per task ({p['deals']} deals)")
