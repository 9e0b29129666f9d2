"""Asset names that cannot be squatted: how an app, dataset or workerpool name resolves.

The registry lets anyone register any name, so a name alone proves nothing. A reference
is one of:

- an id (``12``): exactly that asset;
- ``NAME@0xOWNER``: the newest asset of that name owned by that address;
- ``NAME``: the newest asset of that name, **only** when every asset of that name has the
  same owner (or when the caller owns one of them: then the caller's). When several
  owners registered the name, the reference is refused with a sentence listing the
  candidates (id and owner), so a newcomer can never take over a name silently and the
  original stays reachable by id or ``NAME@OWNER``.

Unknown names raise :class:`UnknownNameError` with the close matches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from eth_utils import to_checksum_address

from comptoir.chain.client import APP_TYPE_BUNDLE, APP_TYPE_OCI, ChainClient
from comptoir.exceptions import AmbiguousName, ConfigError, UnknownNameError
from comptoir.sdk import chainscan

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
APP_KINDS = {APP_TYPE_OCI: "oci", APP_TYPE_BUNDLE: "bundle"}


def short(address: str) -> str:
    """0x1234ab…cdef: enough to tell owners apart in a sentence (ids stay exact)."""
    return f"{address[:8]}…{address[-4:]}"


@dataclass(frozen=True)
class AssetRef:
    """A parsed reference: an id, or a name with an optional owner."""

    asset: int | None = None
    name: str = ""
    owner: str | None = None


def parse_ref(ref: int | str) -> AssetRef:
    if isinstance(ref, int):
        return AssetRef(asset=ref)
    text = str(ref).strip()
    if text.isdigit():
        return AssetRef(asset=int(text))
    name, at, owner = text.rpartition("@")
    if at and _ADDRESS.match(owner) and name:
        return AssetRef(name=name, owner=to_checksum_address(owner))
    if at and name and owner.startswith("0x"):
        raise ConfigError(
            f"{owner!r} is not an address; write NAME@0x followed by the owner's 40 hex digits."
        )
    return AssetRef(name=text)


@dataclass(frozen=True)
class AssetCandidate:
    asset: int
    name: str
    owner: str  # current owner (assets are transferable)


def candidates(client: ChainClient, kind: str, name: str) -> list[AssetCandidate]:
    """Every asset of `kind` registered under `name`, oldest first, with its current owner."""
    found = chainscan.registered_assets(client, chainscan.KIND_IDS[kind])
    return [
        AssetCandidate(int(a.asset), a.name, client.owner_of(int(a.asset)))
        for a in found
        if a.name == name
    ]


def check_id(client: ChainClient, kind: str, asset: int) -> int:
    info = client.asset(asset)
    if info.kind == 0:
        raise ConfigError(
            f"No asset has id {asset}; list them with 'comptoir {_group(kind)} list'."
        )
    if info.kind != chainscan.KIND_IDS[kind]:
        raise ConfigError(
            f"Asset {asset} is a {chainscan.KIND_NAMES.get(info.kind, 'thing')}, not a {kind}; "
            f"give the id or the name of a {kind}."
        )
    return asset


def _group(kind: str) -> str:
    return "pool" if kind == "workerpool" else kind


def resolve_asset(client: ChainClient, kind: str, ref: int | str, me: str | None = None) -> int:
    """The asset id a reference names (see the module docstring for the rules)."""
    parsed = parse_ref(ref)
    if parsed.asset is not None:
        return check_id(client, kind, parsed.asset)
    named = candidates(client, kind, parsed.name)
    if not named:
        known = {a.name for a in chainscan.registered_assets(client, chainscan.KIND_IDS[kind])}
        raise UnknownNameError(kind, parsed.name, sorted(known))
    if parsed.owner is not None:
        owned = [a for a in named if a.owner == parsed.owner]
        if not owned:
            raise ConfigError(
                f"No {kind} named {parsed.name!r} is owned by {parsed.owner}; its owners are "
                f"{_listing(named)}: give one of those ids."
            )
        return owned[-1].asset
    owners = {a.owner for a in named}
    if len(owners) > 1:
        mine = [a for a in named if me is not None and a.owner == to_checksum_address(me)]
        if not mine:
            raise AmbiguousName(kind, parsed.name, _listing(named))
        named = mine
    return named[-1].asset


def _listing(named: list[AssetCandidate], at_most: int = 4) -> str:
    parts = [f"id {a.asset} owned by {short(a.owner)}" for a in named[:at_most]]
    if len(named) > at_most:
        parts.append(f"{len(named) - at_most} more")
    return ", ".join(parts)
