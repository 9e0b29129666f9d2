"""comptoir protocol deploy: put the contracts on any JSON-RPC chain, pre-checked."""

from __future__ import annotations

from typing import Annotated

import typer

from comptoir.cli._common import JsonOpt, WalletOpt, print_rows
from comptoir.cli.output import console, print_json, success

app = typer.Typer(help="Deploy the protocol's contracts to a network.", no_args_is_help=True)


@app.command()
def deploy(
    network: Annotated[str, typer.Option(help="Network name (see 'comptoir network add').")],
    evm_version: Annotated[
        str | None, typer.Option(help="EVM version to build for: paris, shanghai, cancun.")
    ] = None,
    test_category: Annotated[
        bool, typer.Option(help="Also create the 60 s TEST category (test chains).")
    ] = False,
    force: Annotated[bool, typer.Option(help="Deploy again where it already runs.")] = False,
    wallet: WalletOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the chain (id, opcodes, EIP-170 sizes, gas balance), deploy, record the result."""
    from comptoir.cli._common import prompt_password
    from comptoir.config import load_settings
    from comptoir.sdk import resolve_account
    from comptoir.sdk.networks import deploy_to_network

    account = resolve_account(load_settings(), wallet, prompt_password)
    with console.status("Deploying...") as spinner:
        result = deploy_to_network(
            network,
            account,
            evm_version=evm_version,
            test_category=test_category,
            force=force,
            notify=lambda m: spinner.update(m),
        )
    d = result.deployment
    if as_json:
        print_json(d.to_json())
        return
    print_rows(
        [
            ("chain id", d.chain_id),
            ("token", d.token),
            ("registry", d.registry),
            ("hub", d.hub),
            ("contributions", d.contributions),
            ("block", d.block),
            ("EVM version", result.plan.evm_version),
        ],
        title=f"Comptoir on {network}",
    )
    success(
        f"Protocol deployed on {network!r}; others join with: comptoir network add "
        f"{network} --rpc-url {result.network.rpc_url} --hub {d.hub}"
    )
