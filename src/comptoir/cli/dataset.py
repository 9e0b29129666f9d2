"""comptoir dataset deploy|publish|list|show|unpublish: encrypt, register and sell a
dataset."""

from __future__ import annotations

from pathlib import Path
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

app = typer.Typer(help="Encrypt, register and sell datasets.", no_args_is_help=True)


@app.command()
def deploy(
    source: Annotated[Path, typer.Argument(help="The dataset file.")],
    name: Annotated[
        str | None, typer.Option(help="On-chain name (default: the file name).")
    ] = None,
    wallet: WalletOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Encrypt the file (AES-256-GCM), upload it, register it, and deposit its key with
    the key service (released only to workers of deals that include it)."""
    with sdk(wallet) as c, console.status("Encrypting, uploading and registering..."):
        deployed = c.deploy_dataset(source, name)
        hashes = list(c.transactions)
    if as_json:
        print_json(deployed.to_json())
        return
    success(f"Dataset {deployed.name!r} registered with id {deployed.dataset}.")
    print_rows(
        [
            ("checksum (encrypted)", deployed.checksum),
            ("location", deployed.location),
            ("key", f"registered with the key service; your copy: {deployed.key_file}"),
        ]
    )
    print_transactions(hashes)


@app.command()
def upload(
    dataset_id: Annotated[
        int, typer.Argument(metavar="DATASET", help="The registered dataset's id.")
    ],
    blob: Annotated[Path, typer.Argument(help="Its encrypted file (kept by a failed deploy).")],
    wallet: WalletOpt = None,
) -> None:
    """Upload a registered dataset's encrypted file to storage again (storage checks
    on-chain that you own the dataset and that the file hashes to its checksum)."""
    with sdk(wallet) as c, console.status("Uploading..."):
        checksum = c.upload_package(dataset_id, blob)
    success(f"Dataset {dataset_id}'s encrypted file {checksum} is in storage.")


@app.command()
def publish(
    dataset_ref: Annotated[str, typer.Argument(metavar="DATASET", help="Dataset: " + Ref + ".")],
    price: PriceOpt,
    volume: Annotated[int, typer.Option(help="Tasks on offer.")] = 1_000_000,
    app_restrict: Annotated[
        str | None,
        typer.Option(help="The app that may read it (" + Ref + "; 0: any app, on purpose)."),
    ] = None,
    workerpool_restrict: Annotated[
        str, typer.Option(help="Only on this workerpool (" + Ref + ").")
    ] = "0",
    requester_restrict: Annotated[str | None, typer.Option(help="Only for this address.")] = None,
    tag: Annotated[str | None, typer.Option(help="Required features: gpu, tee.")] = None,
    wallet: WalletOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sign a dataset order (with its restrictions) and list it on the market."""
    with sdk(wallet) as c:
        listed = c.publish_dataset_order(
            dataset_ref,
            parse_amount(price, "price"),
            volume,
            tag=parse_tag(tag),
            app_restrict=app_restrict,
            workerpool_restrict=workerpool_restrict,
            requester_restrict=requester_restrict,
        )
    if as_json:
        print_json({"hash": listed.hash, "order": listed.order.to_json()})
        return
    success(f"Dataset order {listed.hash} listed at {units(listed.price)} per task.")


add_asset_commands(app, "dataset", "dataset")
