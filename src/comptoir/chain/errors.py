# ruff: noqa: E501 - one message per line reads better than wrapped strings
"""Turn contract revert strings into one sentence a user can act on.

Every ``assert ..., "module: reason"`` of the contracts (and of snekmate's token and
ownable modules) that a user can trigger has an entry here; an unknown reason falls back
to the raw revert string so nothing is hidden.
"""

from __future__ import annotations

from typing import Any

from eth_abi import decode as abi_decode

from comptoir.exceptions import TransactionRejected

ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)
PANIC_SELECTOR = bytes.fromhex("4e487b71")  # Panic(uint256)

MESSAGES: dict[str, str] = {
    # escrow
    "escrow: insufficient balance": "Your free balance is too low for this withdrawal; check it with 'comptoir account balance'.",
    "escrow: zero amount": "The amount must be greater than zero.",
    "escrow: zero account": "The beneficiary address must not be the zero address.",
    "escrow: zero recipient": "The recipient address must not be the zero address.",
    "escrow: transfer failed": "The token transfer failed; check your token balance and allowance.",
    "escrow: balance locked": "Your free balance is locked to back your work until the time you chose; withdraw or pay after it.",
    "escrow: lock too long": "A balance can be locked for at most a year; choose an earlier time.",
    # token
    "erc20: insufficient allowance": "The hub is not allowed to move that many of your tokens; approve it first (the deposit command does this for you).",
    "erc20: transfer amount exceeds balance": "Your wallet holds fewer tokens than that; get tokens first (on a devnet, 'comptoir devnet up' funds the test accounts).",
    "erc20: access is denied": "Only a minter of the token may mint; use the deployer account.",
    "erc20: mint to the zero address": "Cannot mint to the zero address.",
    "erc20: expired deadline": "The permit has expired; sign a new one.",
    "erc20: invalid signature": "The permit signature is invalid; sign it again with the depositing account.",
    # ownership
    "ownable: caller is not the owner": "Only the protocol owner may do this; use the account that deployed the contracts.",
    # registry and categories
    "registry: caller is not the owner": "You do not own this asset; use the owner's account.",
    "registry: unknown asset": "No asset has this id; check it with the registry listing.",
    "registry: unknown asset or wrong kind": "No asset of that kind has this id; check the app, dataset or workerpool id.",
    "registry: unknown app type": "The app type must be 1 (OCI image) or 2 (bundle).",
    "registry: zero owner": "The new owner must not be the zero address.",
    "registry: worker stake ratio above 100": "The worker stake ratio is a percentage: give a value from 0 to 100.",
    "registry: scheduler reward ratio above 100": "The scheduler reward ratio is a percentage: give a value from 0 to 100.",
    "categories: unknown category": "No category has this id; list the categories and pick an existing one.",
    "categories: zero time reference": "A category needs a time reference above zero seconds.",
    "categories: time reference above one year": "A category's time reference must not exceed one year.",
    # orders
    "orders: caller is not the order owner": "Only the owner of the order may cancel or presign it; use that account.",
    # matching
    "poco: requester balance too low": "Your free balance is too low for this deal; deposit more with 'comptoir account deposit'.",
    "poco: scheduler stake too low": "The workerpool's scheduler has too little free balance to stake on this deal; it must deposit more with 'comptoir account deposit'.",
    "poco: an order is cancelled or fully consumed": "One of the orders is cancelled or its volume is used up; fetch fresh orders from the order book.",
    "poco: app order for another app": "The request and the app order name different apps; pick an app order for the requested app.",
    "poco: order for another dataset": "The request and the dataset order name different datasets; pick a dataset order for the requested dataset.",
    "poco: request for another pool": "The request only accepts another workerpool; pick an order from that workerpool.",
    "poco: category mismatch": "The workerpool order is for another category than the request; pick an order in the requested category.",
    "poco: trust above workerpool's": "The workerpool order offers less trust than requested; lower the trust or pick another workerpool.",
    "poco: winner stake too low": "A winning worker no longer holds the stake the deal asks; settle without it, or ask it to deposit with 'comptoir account deposit'.",
    "poco: winner stake not locked": "A winning worker's stake is not locked until the deal's final deadline; it must lock it (the worker agent does) before its result can count.",
    "poco: pool stakes below request": "The workerpool now stakes less per contribution than the request's minimum worker stake; choose another pool or lower the minimum.",
    "poco: trust too high": "The requested trust is above the protocol maximum (1 000 000); lower it.",
    "poco: app price above maximum": "The app costs more than the request's maximum app price; raise the maximum or pick a cheaper order.",
    "poco: dataset price above max": "The dataset costs more than the request's maximum dataset price; raise the maximum or pick a cheaper order.",
    "poco: pool price above maximum": "The workerpool costs more than the request's maximum workerpool price; raise the maximum or pick a cheaper order.",
    "poco: price too large": "A price is above the protocol maximum (2^128); use a smaller price.",
    "poco: pool lacks a required tag": "The workerpool does not offer every tag (TEE, GPU...) the request, app or dataset requires; pick a workerpool that does.",
    "poco: request without requester": "The request order has no requester address; set it.",
    "poco: app restricts datasets": "The app order is restricted to another dataset.",
    "poco: app restricts pools": "The app order is restricted to another workerpool.",
    "poco: app restricts requesters": "The app order is restricted to another requester.",
    "poco: dataset restricts apps": "The dataset order is restricted to another app.",
    "poco: dataset restricts pools": "The dataset order is restricted to another workerpool.",
    "poco: dataset limits requesters": "The dataset order is restricted to another requester; its owner does not sell to you.",
    "poco: pool restricts apps": "The workerpool order is restricted to another app.",
    "poco: pool restricts datasets": "The workerpool order is restricted to another dataset.",
    "poco: pool restricts requesters": "The workerpool order is restricted to another requester.",
    "poco: price without dataset": "A request without a dataset must use an all-zero dataset order.",
    "poco: invalid app order signature": "The app order's signature is not the app owner's for this chain and hub; sign it again for this deployment.",
    "poco: bad dataset signature": "The dataset order's signature is not the dataset owner's for this chain and hub; sign it again for this deployment.",
    "poco: bad pool order signature": "The workerpool order's signature is not the scheduler's for this chain and hub; sign it again for this deployment.",
    "poco: bad request signature": "The request order's signature is not the requester's for this chain and hub; sign it again for this deployment.",
    "poco: deal exists": "This deal already exists.",
    # settlement
    "poco: unknown deal": "The hub knows no such deal; pass the deal exactly as emitted in DealCreated.",
    "poco: caller is not the scheduler": "Only the deal's scheduler (the workerpool owner) may do this; use its account.",
    "poco: final deadline passed": "The deal's final deadline has passed; the task can only be claimed now.",
    "poco: final deadline not reached": "The task cannot be claimed before the deal's final deadline.",
    "poco: past contribution deadline": "The contribution deadline of this deal has passed.",
    "poco: empty batch": "Give at least one task to finalize.",
    "poco: nothing to claim": "Give at least one task index to claim.",
    "poco: task index out of range": "The task index is beyond the deal's volume.",
    "poco: task already settled": "This task is already finalized or claimed.",
    "poco: task is on the chain path": "This task has on-chain contributions; finalize it through the Contributions contract.",
    "poco: task without winners": "A task needs at least one winning contribution to be finalized.",
    "poco: too many contributions": "At most 16 contributions per task are allowed.",
    "poco: winners unsorted": "Winner signatures must be sorted by ascending worker address, without duplicates.",
    "poco: losers unsorted": "Loser signatures must be sorted by ascending worker address, without duplicates.",
    "poco: loser agrees with winners": "A worker listed as loser committed to the consensus result; list it as a winner.",
    "poco: worker is winner and loser": "A worker cannot be both a winner and a loser of one task.",
    "poco: bad contribution signature": "A contribution signature does not match its worker, task and result for this chain and hub.",
    "poco: consensus not reached": "The winners' credibility does not reach the deal's trust level; gather more agreeing contributions.",
    "poco: unused signatures": "Some signatures were not used by any task; pass exactly the winners and losers the tasks count.",
    "poco: one callback task a call": "A deal with a callback settles one task per finalize call.",
    "poco: callback data not result": "The callback data's keccak256 must equal the task's result digest.",
    "poco: gas too low for callback": "Not enough gas for the callback; send the transaction with a higher gas limit.",
    "poco: worker stake too low": "Your free balance cannot cover the worker stake; deposit more with 'comptoir account deposit'.",
    "poco: caller is not the deployer": "Only the hub's deployer may link the Contributions contract.",
    "poco: already linked": "The hub is already linked to a Contributions contract.",
    "poco: caller not Contributions": "Only the Contributions contract may call this.",
    # on-chain contribution path
    "contributions: worker not authorized by the scheduler": "The scheduler's authorization does not cover this worker and task; ask the scheduler for a new one.",
    "contributions: empty result hash": "The result hash must not be empty.",
    "contributions: already contributed": "You already contributed to this task.",
    "contributions: too many contributions": "This task already has the maximum of 16 on-chain contributions.",
    "contributions: task is not accepting contributions": "This task reached consensus and no longer accepts contributions; reveal instead.",
    "contributions: task is not revealing": "This task has not reached consensus yet, so nothing can be revealed or finalized.",
    "contributions: reveal deadline passed": "The reveal deadline has passed.",
    "contributions: reveal deadline not reached": "The task cannot be reopened before its reveal deadline.",
    "contributions: nothing to reveal": "You have no contribution to reveal on this task.",
    "contributions: contribution is not the consensus": "Your contribution is not the consensus result, so there is nothing to reveal.",
    "contributions: digest does not match the result hash": "This digest does not match your committed result hash.",
    "contributions: digest does not match the seal": "This digest does not match your committed result seal.",
    "contributions: no on-chain contribution for this task": "This task has no on-chain contribution.",
    "contributions: task already settled": "This task is already finalized or claimed.",
    "contributions: caller is not the scheduler": "Only the deal's scheduler may do this; use its account.",
    "contributions: a winner revealed; finalize instead": "A winner already revealed; finalize the task instead of reopening it.",
    "contributions: no revealed result": "No contributor has revealed yet; wait for a reveal or reopen after the reveal deadline.",
    "contributions: waiting for reveals": "Consensus members have not all revealed yet; wait for them or for the reveal deadline.",
}


def explain(reason: str | None) -> str:
    """One sentence for a revert reason; unknown reasons are shown as they are."""
    if not reason:
        return "The transaction was reverted without a reason."
    reason = reason.strip()
    if reason in MESSAGES:
        return MESSAGES[reason]
    return f"The transaction was rejected: {reason}."


def rejected(reason: str | None) -> TransactionRejected:
    return TransactionRejected(explain(reason), reason=reason)


def decode_revert_data(data: Any) -> str | None:
    """The reason string inside ABI-encoded revert data (Error(string) or Panic(uint256))."""
    if isinstance(data, dict):  # some nodes nest it: {"data": "0x..."}
        data = data.get("data")
    if isinstance(data, str):
        try:
            data = bytes.fromhex(data.removeprefix("0x"))
        except ValueError:
            return None
    if not isinstance(data, bytes | bytearray) or len(data) < 4:
        return None
    selector, body = bytes(data[:4]), bytes(data[4:])
    try:
        if selector == ERROR_SELECTOR:
            return str(abi_decode(["string"], body)[0])
        if selector == PANIC_SELECTOR:
            return f"panic 0x{abi_decode(['uint256'], body)[0]:02x}"
    except Exception:
        return None
    return None


def reason_from_message(message: str) -> str | None:
    """Node error messages look like 'execution reverted: poco: ...'."""
    marker = "execution reverted"
    if marker not in message:
        return None
    rest = message.split(marker, 1)[1].lstrip(":").strip()
    return rest or None
