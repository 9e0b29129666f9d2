"""`list`, `show` and `unpublish`, the same for apps, datasets and workerpools: one
definition added to each group (a leading underscore: not a command group itself)."""

# no "from __future__ import annotations": typer reads these closures' annotations,
# which name the local `word` and `ref_help`

from typing import TYPE_CHECKING, Annotated

import typer

from comptoir.cli._common import (
    JsonOpt,
    WalletOpt,
    print_rows,
    print_transactions,
    sdk,
    units,
    wallet_address,
)
from comptoir.cli.output import console, print_json, print_table, success

if TYPE_CHECKING:
    from comptoir.sdk import AssetView


def add_asset_commands(group: typer.Typer, kind: str, word: str) -> None:
    """Register list/show/unpublish on `group` for assets of `kind` (app, dataset,
    workerpool); `word` is how the help calls them."""
    ref_help = f"The {word}: id, NAME, or NAME@0xOWNER."

    @group.command("list")
    def list_(
        owner: Annotated[str | None, typer.Option(help="Only this owner's (an address).")] = None,
        mine: Annotated[bool, typer.Option(help="Only your wallet's.")] = False,
        wallet: WalletOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Every registered one, with its owner, checksum, open orders and cheapest price."""
        who = wallet_address(wallet) if mine else owner
        with sdk(need_account=False) as c:
            found = c.assets(kind, owner=who)
        if as_json:
            print_json([a.to_json() for a in found])
            return
        if not found:
            console.print(f"No {word} is registered yet.")
            return
        columns = ["id", "name", "owner", *(["kind"] if kind == "app" else []), "orders", "from"]
        rows = []
        for a in found:
            orders = "?" if a.orders is None else str(len(a.orders))
            cheapest = "" if a.cheapest is None else units(a.cheapest)
            app_kind = [a.app_kind or ""] if kind == "app" else []
            rows.append([str(a.asset), a.name, a.owner, *app_kind, orders, cheapest])
        print_table(f"{word.capitalize()}s", columns, rows)

    @group.command()
    def show(
        ref: Annotated[str, typer.Argument(metavar=word.upper(), help=ref_help)],
        as_json: JsonOpt = False,
    ) -> None:
        """Owner, checksum, location, and the open orders with their prices."""
        with sdk(need_account=False) as c:
            a = c.show_asset(kind, ref)
        if as_json:
            print_json(a.to_json())
            return
        _print_asset(a, word)

    @group.command()
    def unpublish(
        ref: Annotated[str, typer.Argument(metavar=word.upper(), help=ref_help)],
        wallet: WalletOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Cancel every open order of yours for it, on the hub and on the market."""
        with sdk(wallet) as c:
            cancelled = c.unpublish(kind, ref)
            hashes = list(c.transactions)
        if as_json:
            print_json([x.to_json() for x in cancelled])
            return
        if not cancelled:
            console.print(f"No open order of yours lists this {word}; nothing to cancel.")
            return
        success(f"Cancelled {len(cancelled)} order(s) on the hub and the market.")
        print_transactions(hashes)


def _print_asset(a: "AssetView", word: str) -> None:
    rows: list[tuple[str, object]] = [
        ("id", a.asset),
        ("name", a.name),
        ("owner", a.owner),
    ]
    if a.kind != "workerpool":
        rows += [("checksum", a.checksum), ("location", a.location)]
    if a.app_kind:
        rows.append(("kind", a.app_kind))
    if a.policy:
        rows += [
            ("worker stake", f"{a.policy['worker_stake_ratio']} % of the price"),
            ("scheduler reward", f"{a.policy['scheduler_reward_ratio']} % of the price"),
        ]
    if a.orders is None:
        rows.append(("orders", "unknown (the market is unreachable)"))
    else:
        rows.append(("open orders", len(a.orders)))
        if a.cheapest is not None:
            rows.append(("cheapest", f"{units(a.cheapest)} per task"))
    print_rows(rows, title=word.capitalize())
    for o in a.orders or ():
        console.print(
            f"  {o['hash']}  {units(o['price'])} per task  {o['remaining']}/{o['volume']} left"
        )
