"""comptoir network list|add|use|remove: the networks this machine knows, by name."""

from __future__ import annotations

from typing import Annotated

import typer

from comptoir.cli._common import JsonOpt
from comptoir.cli.output import console, print_json, success

app = typer.Typer(
    help="Known networks (networks.toml): add one by its RPC URL, choose the current one.",
    no_args_is_help=True,
)


@app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """List the known networks; the current one is starred."""
    from comptoir.network import DEVNET
    from comptoir.sdk.networks import network_book

    book = network_book()
    current = book.current or DEVNET
    if as_json:
        print_json(
            {
                "file": str(book.path),
                "current": current,
                "networks": {n: net.to_toml_table() for n, net in book.networks.items()},
            }
        )
        return
    from rich.table import Table

    table = Table(title=f"Networks ({book.path})", box=None)
    for col in ("", "name", "chain id", "RPC URL", "hub", "market", "confirmations"):
        table.add_column(col)
    table.add_row("*" if current == DEVNET else "", DEVNET, "", "local devnet", "", "", "")
    for name in sorted(book.networks):
        net = book.networks[name]
        hub = (net.deployment or {}).get("hub", "not deployed")
        table.add_row(
            "*" if current == name else "",
            name,
            str(net.chain_id or ""),
            net.rpc_url,
            hub,
            net.market_url or "",
            str(net.confirmations),
        )
    console.print(table)


@app.command()
def add(
    name: Annotated[str, typer.Argument(help="Network name (lowercase, digits, - and _).")],
    rpc_url: Annotated[str, typer.Option(help="JSON-RPC endpoint of a node of the chain.")],
    hub: Annotated[
        str | None,
        typer.Option(help="Hub address of a protocol already deployed there (rest read on-chain)."),
    ] = None,
    from_block: Annotated[
        int | None, typer.Option(help="Deployment block, for nodes without historical state.")
    ] = None,
    market_url: Annotated[str | None, typer.Option(help="The network's market API.")] = None,
    storage_url: Annotated[str | None, typer.Option(help="The network's blob storage.")] = None,
    confirmations: Annotated[
        int, typer.Option(help="Blocks before an event counts as final (reorg margin).")
    ] = 0,
    log_range: Annotated[
        int, typer.Option(help="Most blocks per eth_getLogs request (provider limit).")
    ] = 10_000,
    replace: Annotated[bool, typer.Option(help="Overwrite a network of that name.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Add a network after checking its node answers; with --hub, join its deployment."""
    from comptoir.sdk.networks import add_network

    net = add_network(
        name,
        rpc_url,
        hub=hub,
        from_block=from_block,
        market_url=market_url,
        storage_url=storage_url,
        confirmations=confirmations,
        log_range=log_range,
        replace=replace,
    )
    if as_json:
        print_json(net.to_toml_table())
        return
    state = f"protocol at hub {net.deployment['hub']}" if net.deployment else "not deployed yet"
    success(f"Network {name!r} added (chain {net.chain_id}, {state}).")


@app.command()
def use(name: Annotated[str, typer.Argument(help="Network name, or devnet.")]) -> None:
    """Make a network the current one (every command then uses it)."""
    from comptoir.sdk.networks import use_network

    use_network(name)
    success(f"Now using network {name!r}.")


@app.command()
def remove(name: Annotated[str, typer.Argument(help="Network name.")]) -> None:
    """Forget a network (the chain and its contracts are not touched)."""
    from comptoir.sdk.networks import remove_network

    remove_network(name)
    success(f"Network {name!r} removed.")
