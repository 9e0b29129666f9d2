"""comptoir app init|build|deploy|publish|list|show|unpublish: package, register and sell
an app."""

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

NAME = "app"  # module is not app.py: that name is the root CLI's
app = typer.Typer(help="Package, register and sell apps.", no_args_is_help=True)


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create.")],
    name: Annotated[str, typer.Option(help="App name.")] = "primes",
) -> None:
    """Write a sample bundle app (Python, deterministic result) to start from."""
    from comptoir.sdk import init_app

    path = init_app(directory, name)
    success(f"Sample app written to {path}.")
    console.print(f"Next: 'comptoir app build {path}' then 'comptoir app deploy {path}'.")


@app.command()
def build(
    directory: Annotated[Path, typer.Argument(help="App folder (comptoir.json or oci.json).")],
    output: Annotated[Path | None, typer.Option(help="Archive to write.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Pack the app reproducibly: a bundle (.tgz) or an OCI image archive (.oci.tar)."""
    from comptoir.sdk import build_app

    built = build_app(directory, output)
    if as_json:
        print_json({"path": built.path, "checksum": built.checksum, "kind": built.kind})
        return
    print_rows(
        [
            ("archive", built.path),
            ("kind", built.kind),
            ("sha256", built.checksum),
            ("determinism", built.determinism or "(outputs manifest)"),
        ]
    )


@app.command()
def deploy(
    source: Annotated[Path, typer.Argument(help="App folder or built archive.")],
    name: Annotated[str | None, typer.Option(help="On-chain name (default: the app's).")] = None,
    wallet: WalletOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Upload the app to storage and register it on-chain (owner, location, checksum)."""
    with sdk(wallet) as c, console.status("Uploading and registering..."):
        deployed = c.deploy_app(source, name)
        hashes = list(c.transactions)
    if as_json:
        print_json(deployed.to_json())
        return
    success(f"App {deployed.name!r} registered with id {deployed.app}.")
    print_rows([("checksum", deployed.checksum), ("location", deployed.location)])
    print_transactions(hashes)


@app.command()
def upload(
    app_id: Annotated[int, typer.Argument(metavar="APP", help="The registered app's id.")],
    source: Annotated[Path, typer.Argument(help="App folder or built archive.")],
    wallet: WalletOpt = None,
) -> None:
    """Upload a registered app's package to storage again (storage checks on-chain that
    you own the app and that the package hashes to its checksum)."""
    from comptoir.sdk import build_app, read_app

    built = build_app(source) if source.is_dir() else read_app(source)
    with sdk(wallet) as c, console.status("Uploading..."):
        checksum = c.upload_package(app_id, built.path)
    success(f"App {app_id}'s package {checksum} is in storage.")


@app.command()
def publish(
    app_ref: Annotated[str, typer.Argument(metavar="APP", help="App: " + Ref + ".")],
    price: PriceOpt,
    volume: Annotated[int, typer.Option(help="Tasks on offer.")] = 1_000_000,
    tag: Annotated[str | None, typer.Option(help="Required features: gpu, tee.")] = None,
    dataset_restrict: Annotated[
        str, typer.Option(help="Only with this dataset (" + Ref + ").")
    ] = "0",
    workerpool_restrict: Annotated[
        str, typer.Option(help="Only on this workerpool (" + Ref + ").")
    ] = "0",
    requester_restrict: Annotated[str | None, typer.Option(help="Only for this address.")] = None,
    wallet: WalletOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sign an app order and list it on the market."""
    with sdk(wallet) as c:
        listed = c.publish_app_order(
            app_ref,
            parse_amount(price, "price"),
            volume,
            tag=parse_tag(tag),
            dataset_restrict=dataset_restrict,
            workerpool_restrict=workerpool_restrict,
            requester_restrict=requester_restrict,
        )
    if as_json:
        print_json({"hash": listed.hash, "order": listed.order.to_json()})
        return
    success(
        f"App order {listed.hash} listed: app {listed.asset} at {units(listed.price)} per task."
    )


@app.command("test")
def test_(
    source: Annotated[Path, typer.Argument(help="App folder or built archive.")],
    args: Annotated[str, typer.Option(help="Arguments, as a requester gives them.")] = "",
    dataset: Annotated[
        Path | None, typer.Option(help="A plain dataset file (at /comptoir/in/dataset).")
    ] = None,
    index: Annotated[int, typer.Option(help="COMPTOIR_TASK_INDEX of the run.")] = 0,
    wall_time: Annotated[float, typer.Option(help="Seconds before it is stopped.")] = 60.0,
    output: Annotated[Path | None, typer.Option(help="Empty folder for the outputs.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the app here in the same sandbox a worker uses; print its outcome, the tails of
    its stdout and stderr, its outputs and the result digest a worker would commit to."""
    from comptoir.sdk.apptest import try_app

    with console.status("Building and running the app in the sandbox..."):
        r = try_app(
            source, args=args, dataset=dataset, index=index, wall_time_s=wall_time, output=output
        )
    if as_json:
        print_json(r.to_json())
    else:
        colour = "green" if r.ok else "red"
        console.print(f"[{colour}]{r.outcome}[/{colour}]: {r.message}")
        print_rows(
            [
                ("exit code", r.exit_code),
                ("result digest", r.digest or "(none: the run failed)"),
                ("package sha256", r.checksum),
                ("outputs", f"{r.output_dir}: {', '.join(r.files) or '(none)'}"),
                ("seconds", r.duration_s),
            ]
        )
        for label, text in (("stdout", r.stdout_tail), ("stderr", r.stderr_tail)):
            if text.strip():
                console.rule(f"{label} (tail)")
                console.print(text.rstrip(), markup=False, highlight=False)
    if not r.ok:
        raise typer.Exit(4)


add_asset_commands(app, "app", "app")
