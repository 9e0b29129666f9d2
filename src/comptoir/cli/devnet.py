"""comptoir devnet up|down|status|faucet: a local anvil chain with the protocol deployed."""

from __future__ import annotations

from typing import Annotated

import typer

from comptoir.cli.output import console, key_value_table, print_json, success
from comptoir.config import load_settings

# the SDK (web3, eth-account) is imported inside commands: 'comptoir --help' stays fast

app = typer.Typer(
    help="Run a local chain (anvil) with the protocol deployed.", no_args_is_help=True
)


@app.command()
def up(
    port: Annotated[
        int | None, typer.Option(help="Port (default $COMPTOIR_DEVNET_PORT or 8545; 0 = any).")
    ] = None,
    chain_id: Annotated[int | None, typer.Option(help="Chain id (default 31337).")] = None,
    workers: Annotated[
        int,
        typer.Option(
            help="Also start the full local stack (storage, market, a workerpool and its "
            "scheduler, a sample app) with this many workers; 0: the chain only."
        ),
    ] = 0,
) -> None:
    """Start the devnet (or reuse it), deploy the protocol if needed, fund the test accounts."""
    settings = load_settings()  # bad configuration fails before the slow imports
    from comptoir import devnet as sdk

    if workers > 0:
        from comptoir import stack

        if _stack_runs(settings, workers):
            console.print("The local stack already runs; nothing was restarted.")
        else:
            with console.status("Starting the local stack...") as spinner:
                stack.up(settings, workers, port=port, notify=lambda m: spinner.update(m))
    with console.status("Starting the devnet..."):
        net = sdk.up(settings, port=port, chain_id=chain_id)
    d = net.deployment
    rows = [
        ("RPC URL", net.rpc_url),
        ("chain id", net.chain_id),
        ("pid", net.pid),
        ("token", d.token),
        ("registry", d.registry),
        ("hub", d.hub),
        ("contributions", d.contributions),
        ("state", settings.devnet_dir),
    ]
    console.print(key_value_table(rows, title="Comptoir devnet"))
    console.print(f"Test accounts (mnemonic: [bold]{sdk.ANVIL_MNEMONIC}[/bold]):")
    for i, account in enumerate(net.accounts):
        console.print(f"  {i}: {account.address}")
    if workers > 0:
        _print_services(settings)
        console.print(
            "Try: comptoir run primes --volume 3 --trust 4 --category TEST --wallet devnet:1"
        )
    success("Devnet ready.")


def _stack_runs(settings: object, workers: int) -> bool:
    """Every service of a stack with `workers` workers is up: 'up' again changes nothing."""
    from comptoir import devnet as sdk
    from comptoir import stack
    from comptoir.config import Settings

    assert isinstance(settings, Settings)
    states = stack.status(settings)
    names = [s.name for s in states if s.running]
    worker_count = sum(n.startswith("worker-") for n in names)
    core = {"storage", "market", "scheduler"} <= set(names)
    return (
        bool(states)
        and len(names) == len(states)
        and core
        and worker_count == workers
        and (sdk.running_rpc_url(settings) is not None)
    )


def _print_services(settings: object) -> None:
    from comptoir import stack
    from comptoir.config import Settings

    assert isinstance(settings, Settings)
    states = stack.status(settings)
    if not states:
        return
    from rich.table import Table

    table = Table(title="Local stack", box=None)
    for col in ("service", "status", "pid", "url / account", "log"):
        table.add_column(col)
    for s in states:
        if s.running:
            shown = "[green]running[/green]"
        elif s.supervisor == "backoff":
            shown = f"[yellow]restarting[/yellow] ({s.note})"
        else:
            shown = "[red]stopped[/red]" + (f" ({s.note})" if s.note else "")
        if s.restarts:
            shown += f" [yellow]restarted {s.restarts}x[/yellow]"
        table.add_row(
            s.name,
            shown,
            str(s.pid),
            s.url or s.address or "",
            s.log,
        )
    console.print(table)
    record = stack.Stack.load(settings)
    market = record.service("market")
    if record.urls.get("explorer") and market is not None and market.running:
        console.print(f"Explorer: [bold]{record.urls['explorer']}[/bold]")


@app.command()
def down() -> None:
    """Stop the local stack's services and the devnet; its chain state is kept for the next
    'up'."""
    settings = load_settings()  # bad configuration fails before the slow imports
    from comptoir import stack

    stopped = stack.down(settings)
    services = [s for s in stopped if s != "chain"]
    if services:
        success(f"Stopped {len(services)} service(s): {', '.join(services)}.")
    if "chain" in stopped:
        success(f"Devnet stopped; state kept in {settings.devnet_dir}.")
    elif not services:
        console.print("No devnet is running.")


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Say whether the devnet runs, at which block, and where the protocol is deployed."""
    settings = load_settings()
    from comptoir import devnet as sdk

    st = sdk.status(settings)
    from comptoir import stack

    services = stack.status(settings)
    if as_json:
        print_json(
            {
                "running": st.running,
                "pid": st.pid,
                "rpc_url": st.rpc_url,
                "chain_id": st.chain_id,
                "block": st.block,
                "deployed": st.deployed,
                "deployment": st.deployment.to_json() if st.deployment else None,
                "home": str(st.home),
                "services": [s.__dict__ for s in services],
                "explorer_url": stack.Stack.load(settings).urls.get("explorer"),
            }
        )
        return
    if not st.running:
        console.print("Devnet: [yellow]not running[/yellow] (start it with 'comptoir devnet up').")
        return
    rows = [
        ("status", "running"),
        ("pid", st.pid),
        ("RPC URL", st.rpc_url),
        ("chain id", st.chain_id),
        ("block", st.block),
    ]
    if st.deployment is not None:
        rows += [
            ("hub", st.deployment.hub),
            ("deployed", "yes" if st.deployed else "no (code missing)"),
        ]
    else:
        rows.append(("deployed", "no"))
    console.print(key_value_table(rows, title="Comptoir devnet"))
    _print_services(settings)


@app.command()
def faucet(
    to: Annotated[str, typer.Argument(help="Address, wallet name or devnet:N to fund.")],
    tokens: Annotated[
        str, typer.Option(help="Test tokens to mint (5CPT, 1000 units).")
    ] = "1000CPT",
    ether: Annotated[str, typer.Option(help="Test ether for gas (e.g. 1ETH; 0: none).")] = "1ETH",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Fund an account on the local devnet: mint test tokens and send ether for gas."""
    settings = load_settings()
    from comptoir.cli._common import parse_amount, wallet_address
    from comptoir.exceptions import InvalidAmount
    from comptoir.sdk import parse_value
    from comptoir.sdk.lifecycle import describe_sent, devnet_faucet

    wei, currency = parse_value(ether if ether.strip() != "0" else "0ETH", "ether")
    if currency != "ETH":
        raise InvalidAmount(f"--ether takes ether, e.g. 1ETH or 0.5ETH, not {ether!r}.")
    dest = to if to.lower().startswith("0x") else wallet_address(to)
    sent = devnet_faucet(settings, dest, parse_amount(tokens, "token amount"), wei)
    if as_json:
        print_json([s.to_json() for s in sent])
        return
    for s in sent:
        success(describe_sent(s))
