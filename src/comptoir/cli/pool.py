"""comptoir pool deploy|publish|serve|status|list|show|unpublish: run a workerpool."""

from __future__ import annotations

from typing import Annotated

import typer

from comptoir.cli._assets import add_asset_commands
from comptoir.cli._common import (
    JsonOpt,
    PriceOpt,
    Ref,
    WalletOpt,
    parse_amount,
    parse_tag,
    print_rows,
    print_transactions,
    sdk,
    units,
)
from comptoir.cli.output import console, print_json, success

app = typer.Typer(
    help="Register a workerpool, sell its capacity, run its scheduler.", no_args_is_help=True
)
PoolArg = Annotated[str, typer.Argument(metavar="POOL", help="Workerpool: " + Ref + ".")]


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
        hashes = list(c.transactions)
    if as_json:
        print_json(pool.to_json())
        return
    success(f"Workerpool {pool.name!r} registered with id {pool.workerpool}.")
    print_transactions(hashes)


@app.command()
def publish(
    pool_ref: PoolArg,
    price: PriceOpt,
    volume: Annotated[int, typer.Option(help="Tasks on offer.")] = 1_000_000,
    category: Annotated[
        str, typer.Option(help="Category id or name (XS, S, M, L, XL, TEST).")
    ] = "0",
    trust: Annotated[int, typer.Option(help="Highest trust offered.")] = 1,
    tag: Annotated[str | None, typer.Option(help="Features offered: gpu, tee.")] = None,
    app_restrict: Annotated[str, typer.Option(help="Only this app (" + Ref + ").")] = "0",
    dataset_restrict: Annotated[str, typer.Option(help="Only this dataset (" + Ref + ").")] = "0",
    requester_restrict: Annotated[str | None, typer.Option(help="Only this address.")] = None,
    wallet: WalletOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sign a workerpool order and list it on the market."""
    with sdk(wallet) as c:
        listed = c.publish_pool_order(
            pool_ref,
            parse_amount(price, "price"),
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
    success(f"Workerpool order {listed.hash} listed at {units(listed.price)} per task.")


@app.command()
def serve(
    pool_ref: PoolArg,
    host: Annotated[
        str,
        typer.Option(
            envvar="COMPTOIR_SCHEDULER_HOST",
            help="Listen address: this host's address workers reach, or 0.0.0.0 for all.",
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(envvar="COMPTOIR_SCHEDULER_PORT", help="Listen port.")
    ] = 8700,
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
def status(pool_ref: PoolArg, as_json: JsonOpt = False) -> None:
    """The pool's scheduler view: tasks by status, workers online, active deals."""
    with sdk(need_account=False) as c:
        st = c.pool_status(pool_ref)
    if as_json:
        print_json(st)
        return
    tasks = ", ".join(f"{k} {v}" for k, v in sorted(dict(st.get("tasks") or {}).items()))
    print_rows(
        [
            ("workerpool", st.get("workerpool")),
            ("scheduler", st.get("scheduler")),
            ("workers online", st.get("workers_online")),
            ("deals active", st.get("deals_active")),
            ("assignments running", st.get("assignments_running")),
            ("tasks", tasks or "none yet"),
            ("chain block seen", st.get("block")),
        ],
        title="Workerpool scheduler",
    )


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


add_asset_commands(app, "workerpool", "workerpool")
