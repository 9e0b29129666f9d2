"""comptoir pool deploy|publish|serve: run a workerpool."""

from __future__ import annotations

from typing import Annotated

import typer

from comptoir.cli._common import JsonOpt, WalletOpt, parse_tag, sdk
from comptoir.cli.output import console, print_json, success

app = typer.Typer(
    help="Register a workerpool, sell its capacity, run its scheduler.", no_args_is_help=True
)


@app.command()
def deploy(
    name: Annotated[str, typer.Argument(help="Workerpool name.")],
    worker_stake: Annotated[int, typer.Option(help="Worker stake, % of the price.")] = 10,
    scheduler_reward: Annotated[int, typer.Option(help="Scheduler share, % of the price.")] = 10,
    wallet: WalletOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a workerpool on-chain; your wallet becomes its scheduler."""
    with sdk(wallet) as c:
        pool = c.deploy_pool(name, worker_stake, scheduler_reward)
    if as_json:
        print_json(pool.to_json())
        return
    success(f"Workerpool {pool.name!r} registered with id {pool.workerpool}.")


@app.command()
def publish(
    pool_ref: Annotated[str, typer.Argument(metavar="POOL", help="Workerpool id or name.")],
    price: Annotated[int, typer.Option(help="Price per task, token units.")],
    volume: Annotated[int, typer.Option(help="Tasks on offer.")] = 1_000_000,
    category: Annotated[
        str, typer.Option(help="Category id or name (XS, S, M, L, XL, TEST).")
    ] = "0",
    trust: Annotated[int, typer.Option(help="Highest trust offered.")] = 1,
    tag: Annotated[str | None, typer.Option(help="Features offered: gpu, tee.")] = None,
    app_restrict: Annotated[int, typer.Option(help="Only this app.")] = 0,
    dataset_restrict: Annotated[int, typer.Option(help="Only this dataset.")] = 0,
    requester_restrict: Annotated[str | None, typer.Option(help="Only this address.")] = None,
    wallet: WalletOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sign a workerpool order and list it on the market."""
    with sdk(wallet) as c:
        listed = c.publish_pool_order(
            pool_ref,
            price,
            volume,
            category=category,
            trust=trust,
            tag=parse_tag(tag),
            app_restrict=app_restrict,
            dataset_restrict=dataset_restrict,
            requester_restrict=requester_restrict,
        )
    if as_json:
        print_json({"hash": listed.hash, "order": listed.order.to_json()})
        return
    success(f"Workerpool order {listed.hash} listed at {listed.price} per task.")


@app.command()
def serve(
    pool_ref: Annotated[str, typer.Argument(metavar="POOL", help="Workerpool id or name.")],
    host: Annotated[str, typer.Option(help="Listen address for workers.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Listen port.")] = 8700,
    db: Annotated[str | None, typer.Option(help="SQLite file or PostgreSQL URL.")] = None,
    advertise: Annotated[
        str | None,
        typer.Option(
            help="Public URL of this scheduler, recorded on-chain: workers join with only "
            "the pool id, requesters fetch results there."
        ),
    ] = None,
    wallet: WalletOpt = None,
) -> None:
    """Run the pool's scheduler: watch deals, dispatch tasks, drive consensus, finalize."""
    from comptoir.sdk import serve_pool

    with sdk(wallet) as c:
        pool = c.resolve("workerpool", pool_ref)
        config, account = c.config, c.account
        if advertise:
            console.print(f"Endpoint {c.advertise_pool(pool, advertise)} recorded on-chain.")
    assert account is not None
    console.print(f"Scheduler of workerpool {pool} on http://{host}:{port} (Ctrl-C stops it).")
    serve_pool(config, account, pool, host=host, port=port, db=db)


@app.command()
def advertise(
    pool_ref: Annotated[str, typer.Argument(metavar="POOL", help="Workerpool id or name.")],
    url: Annotated[str, typer.Argument(help="Public URL of the pool's scheduler.")],
    wallet: WalletOpt = None,
) -> None:
    """Record on-chain where the pool's scheduler answers (owner only)."""
    with sdk(wallet) as c:
        pool = c.resolve("workerpool", pool_ref)
        recorded = c.advertise_pool(pool, url)
    success(f"Workerpool {pool} endpoint recorded on-chain: {recorded}.")
