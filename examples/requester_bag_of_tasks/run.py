"""Requester: a bag of tasks in a few lines of the async SDK, results verified on-chain.

Needs a running local stack (``comptoir devnet up --workers 3``; the same COMPTOIR_HOME).
Usage: python run.py [VOLUME] [TRUST]
"""

from __future__ import annotations

import asyncio
import sys

from comptoir.sdk import Comptoir, Progress, devnet_account


async def main(volume: int, trust: int) -> int:
    def progress(p: Progress) -> None:
        if p.stage != "task":
            print(f"[{p.stage}] {p.message}")

    # devnet:1 is the local stack's funded requester; use a wallet name on a real network
    async with Comptoir(account=devnet_account(1)) as c:
        await c.deposit(volume * 200)
        verified = 0
        async for task in c.run(
            "primes",
            volume=volume,
            trust=trust,
            category="TEST",
            args="10000",
            on_progress=progress,
            timeout=300,
        ):
            verified += task.verified
            print(f"task {task.index}: {task.status}  {task.preview}  -> {task.path}")
        balance = await c.balance()
    print(f"{verified}/{volume} verified; free balance now {balance.free}")
    return 0 if verified == volume else 1


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    sys.exit(asyncio.run(main(*(args + [4, 2][len(args) :]))))
