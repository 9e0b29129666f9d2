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
from comptoir.chain.client import ChainClient
from comptoir.chain.types import Deal
from comptoir.exceptions import ChainUnreachable

log = structlog.get_logger("comptoir.keys")


def check_release(
    client: ChainClient, worker: str, checksum: str, evidence: dict[str, Any]
) -> bool:
    """Synchronous check (chain reads); any malformed evidence is a refusal."""
    try:
        deal = Deal.from_json(evidence["deal"])
        index = int(evidence["index"])
        block = int(evidence["block"])
        authorization = bytes.fromhex(str(evidence["authorization"]).removeprefix("0x"))
    except (KeyError, TypeError, ValueError):
        return False
    if not 0 <= index < deal.volume:
        return False
    task = deal.task_id(index)
    try:
        signer = eip712.recover_authorization_signer(
            worker, task, authorization, client.chain_id, client.deployment.contributions
        )
    except ValueError:  # a malformed signature names nobody
        return False
    if signer.lower() != deal.scheduler.lower():
        return False
    created = client.deal_created_at(deal.deal_id, block)
    if created is None or created.deal != deal or created.dataset == 0:
        return False
    if client.asset(created.dataset).checksum.hex() != checksum.lower().removeprefix("0x"):
        return False
    # nothing left to compute once the task is settled or its deadline passed
    return not (client.is_settled(deal.deal_id, index) or client.timestamp() >= deal.final_deadline)


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
