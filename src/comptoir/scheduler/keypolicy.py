"""Chain-backed dataset key release: a worker gets a dataset's key only for a live deal
that includes that dataset, on a task its scheduler authorized it to compute.

Plug it into the key service (comptoir.storage.keys) as the ``deal_check`` of a
:class:`SignedNoncePolicy` (which proves the worker holds its key first)::

    policy = SignedNoncePolicy(nonces, chain_deal_check(ChainClient(w3, deployment)))

Evidence the worker presents (what the assignment carries): ``deal`` (the Deal as JSON),
``index``, ``authorization`` (the scheduler's EIP-712 signature, the same one that lets
the worker contribute on-chain) and ``block`` (where DealCreated was emitted).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from comptoir.chain import eip712
from comptoir.chain.client import KIND_APP, KIND_DATASET, ChainClient
from comptoir.chain.events import DealCreated
from comptoir.chain.types import Deal
from comptoir.exceptions import ChainUnreachable
from comptoir.storage.grants import GrantCheck, GrantRefused, UploadGrant

log = structlog.get_logger("comptoir.keys")


def authorized_task(
    client: ChainClient, worker: str, evidence: dict[str, Any]
) -> tuple[Deal, int, DealCreated] | None:
    """The deal, task index and creation event an assignment's evidence proves `worker`
    was authorized for by the deal's scheduler (chain reads); None for anything else."""
    try:
        deal = Deal.from_json(evidence["deal"])
        index = int(evidence["index"])
        block = int(evidence["block"])
        authorization = bytes.fromhex(str(evidence["authorization"]).removeprefix("0x"))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    if not 0 <= index < deal.volume:
        return None
    task = deal.task_id(index)
    try:
        signer = eip712.recover_authorization_signer(
            worker, task, authorization, client.chain_id, client.deployment.contributions
        )
    except ValueError:  # a malformed signature names nobody
        return None
    if signer.lower() != deal.scheduler.lower():
        return None
    created = client.deal_created_at(deal.deal_id, block)
    if created is None or created.deal != deal:
        return None
    return deal, index, created


def _task_open(client: ChainClient, deal: Deal, index: int) -> bool:
    # nothing left to compute (nor upload) once the task is settled or its deadline passed
    return not (client.is_settled(deal.deal_id, index) or client.timestamp() >= deal.final_deadline)


def check_release(
    client: ChainClient, worker: str, checksum: str, evidence: dict[str, Any]
) -> bool:
    """Synchronous check (chain reads); any malformed evidence is a refusal."""
    found = authorized_task(client, worker, evidence)
    if found is None:
        return False
    deal, index, created = found
    if created.dataset == 0:
        return False
    if client.asset(created.dataset).checksum.hex() != checksum.lower().removeprefix("0x"):
        return False
    return _task_open(client, deal, index)


def check_upload(client: ChainClient, grant: UploadGrant) -> list[str]:
    """The identities an upload grant charges, or GrantRefused (403) when the chain does
    not know the uploader for its purpose (chain reads; ChainUnreachable passes through)."""
    kind, _, ref = grant.purpose.partition(":")
    if kind == "asset":
        asset = int(ref)
        info = client.asset(asset)
        if info.kind not in (KIND_APP, KIND_DATASET):  # kind 0: unknown
            raise GrantRefused(403, f"No app or dataset {asset} is registered on this network.")
        if info.checksum.hex() != grant.sha256:
            raise GrantRefused(403, f"Asset {asset}'s on-chain checksum is not this blob's.")
        if info.owner.lower() != grant.uploader.lower():
            raise GrantRefused(403, f"Only asset {asset}'s owner may upload its package.")
        return [info.owner]
    found = authorized_task(client, grant.uploader, grant.evidence)
    if found is None or "0x" + found[0].task_id(found[1]).hex() != ref:
        raise GrantRefused(
            403,
            "The grant's evidence is not a scheduler's authorization of this uploader "
            "for this task.",
        )
    deal, index, _ = found
    if not _task_open(client, deal, index):
        raise GrantRefused(403, "This task is settled or past its deadline; nothing to upload.")
    return [grant.uploader, deal.scheduler]


def chain_deal_check(
    client: ChainClient,
) -> Callable[[str, str, dict[str, Any]], Awaitable[bool]]:
    """The async ``deal_check`` for SignedNoncePolicy (chain reads run in a thread)."""

    async def deal_check(worker: str, checksum: str, evidence: dict[str, Any]) -> bool:
        try:
            allowed = await asyncio.to_thread(check_release, client, worker, checksum, evidence)
        except ChainUnreachable:
            raise  # not a refusal: the key service answers 503 and the worker waits
        except Exception as exc:  # a broken node answer: refuse
            log.warning("keys.check_failed", error=str(exc))
            return False
        log.info("keys.release", worker=worker, dataset=checksum, allowed=allowed)
        return allowed

    return deal_check


def chain_upload_check(client: ChainClient) -> GrantCheck:
    """The storage service's upload check (chain reads run in a thread)."""

    async def check(grant: UploadGrant) -> list[str]:
        try:
            return await asyncio.to_thread(check_upload, client, grant)
        except (GrantRefused, ChainUnreachable):
            raise
        except Exception as exc:  # a broken node answer: refuse
            log.warning("storage.grant_check_failed", error=str(exc))
            raise GrantRefused(403, "The chain's answer about this grant was unreadable.") from None

    return check
