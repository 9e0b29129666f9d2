"""Who besides the requester a request's result is sealed to, each key pre-checked
against the chain before anything is signed (the worker checks them again,
comptoir.apps.sealed).

- The app's owner reads the logs (or, when asked, the result too). Its key is recovered
  from the app order's EIP-712 signature the SDK already holds, or given by the
  requester (the owner prints it with ``comptoir wallet show --public-key``) when the
  owner signs through a contract (ERC-1271) or presigned on-chain.
- The owner of the callback contract reads the result when the requester passes its key:
  the key's address must be what the callback's ``owner()`` returns.
"""

from __future__ import annotations

from collections.abc import Callable

from eth_utils import to_checksum_address

from comptoir.apps import sealed
from comptoir.chain import eip712
from comptoir.chain.client import ChainClient
from comptoir.exceptions import ConfigError
from comptoir.sdk.market import ListedOrder

APP_OWNER_READS = ("none", "logs", "all")
_ASK_FOR_KEY = "'comptoir wallet show --public-key' prints it"


def parse_key(text: str | bytes, whose: str) -> bytes:
    """A public key given by a user, as 64 bytes; one sentence when it is not one."""
    try:
        return sealed.parse_public_key(text)
    except ValueError:
        raise ConfigError(
            f"{str(text)[:20]!r} is not a public key for {whose}; give the 66 or 128 hex digits "
            "'comptoir wallet show --public-key' prints."
        ) from None


def precheck(
    app_owner_reads: str | None,
    app_owner_key: str | bytes | None,
    callback: str | None,
    callback_owner_key: str | bytes | None,
) -> None:
    """What can be refused before any order is searched: the settings and keys' form."""
    if app_owner_reads is not None and app_owner_reads not in APP_OWNER_READS:
        raise ConfigError(
            f"{app_owner_reads!r} is not what the app's owner may read; give none, logs or all."
        )
    if app_owner_key is not None:
        parse_key(app_owner_key, "the app's owner")
    if callback_owner_key is not None:
        if not callback:
            raise ConfigError(
                "A result can be sealed to a callback's owner only with a callback; add "
                "--callback ADDRESS or drop --seal-to-callback-owner."
            )
        parse_key(callback_owner_key, "the callback's owner")


def default_app_owner_reads(has_dataset: bool, seal: bool) -> str:
    """The app's owner reads the logs unless the requester asked for confidentiality
    (a dataset or --seal): an app can copy its inputs into what it prints."""
    return "none" if has_dataset or seal else "logs"


def app_owner(
    c: ChainClient,
    order: ListedOrder,
    requester: str,
    reads: str,
    key: str | bytes | None,
    *,
    explicit: bool,
    note: Callable[[str], None],
) -> sealed.Recipient | None:
    """The app's owner as a recipient reading `reads`; None when it reads nothing, is
    the requester, or (not `explicit`) its key cannot be known (told through `note`)."""
    if reads not in APP_OWNER_READS:
        raise ConfigError(
            f"{reads!r} is not what the app's owner may read; give none, logs or all."
        )
    if reads == "none":
        return None
    owner = c.owner_of(order.order.app)
    if owner == to_checksum_address(requester):
        return None  # it reads everything already
    scope = sealed.SCOPES[reads]
    if key is not None:
        given = parse_key(key, "the app's owner")
        address = sealed.Recipient(sealed.APP_OWNER, given, scope).address
        if address != owner:
            raise ConfigError(
                f"The key given for the app's owner belongs to {address}, but app "
                f"{order.order.app} is owned by {owner}; ask that owner for its key "
                f"({_ASK_FOR_KEY})."
            )
        return sealed.Recipient(sealed.APP_OWNER, given, scope)
    try:
        recovered = eip712.recover_digest_public_key(c.order_hash(order.order), order.signature)
    except ValueError:
        recovered = None
    found = sealed.Recipient(sealed.APP_OWNER, recovered, scope) if recovered else None
    if found is not None and found.address == owner:
        return found
    if explicit:
        raise ConfigError(
            f"The app's owner {owner} signs its orders through a contract, so its public "
            f"key cannot be read from them; pass it with --app-owner-key ({_ASK_FOR_KEY}) "
            "or drop --app-owner-reads."
        )
    note(
        f"the app's owner {owner} signs through a contract, so its key is unknown: its "
        "logs go to you only (pass --app-owner-key to share them)"
    )
    return None


def callback_owner(c: ChainClient, callback: str | None, key: str | bytes) -> sealed.Recipient:
    """The callback contract's owner as a recipient of the result, its key checked
    against the contract's ``owner()``."""
    if not callback:
        raise ConfigError(
            "A result can be sealed to a callback's owner only with a callback; add "
            "--callback ADDRESS or drop --seal-to-callback-owner."
        )
    given = parse_key(key, "the callback's owner")
    recipient = sealed.Recipient(sealed.CALLBACK_OWNER, given, sealed.SCOPES["result"])
    target = to_checksum_address(callback)
    owner = c.contract_owner(target)
    if owner is None:
        raise ConfigError(
            f"The callback {target} has no owner() a worker can check the key against; "
            "drop --seal-to-callback-owner (the result is then sealed to you)."
        )
    if recipient.address != owner:
        raise ConfigError(
            f"The key given for the callback's owner belongs to {recipient.address}, but "
            f"the callback {target} is owned by {owner}; ask that owner for its key "
            f"({_ASK_FOR_KEY})."
        )
    return recipient
