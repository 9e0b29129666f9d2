"""A requester *contract* buys an off-chain computation and gets the answer by callback.

Needs a running local stack (``comptoir devnet up --workers 3``; the same COMPTOIR_HOME).

1. the app developer deploys the chess judge app (app/) and publishes an app order;
2. the requester deploys ChessOracle (src/comptoir/contracts/testing/ChessOracle.vy) and
   funds its escrow balance: the contract itself pays for its questions;
3. for each position, ``oracle.ask(fen)`` presigns a request order on the hub (requester,
   beneficiary and callback: the contract);
4. anyone (here the SDK, as a relayer paying only gas) matches it with the cheapest
   app and workerpool orders: ``Comptoir.fulfil``;
5. workers replicate the judgement; at settlement the hub calls
   ``oracle.receiveResult(task_id, abi_encode(verdict, sha256(fen)))``;
6. the verdicts are read back from the contract.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from web3.logs import DISCARD

from comptoir import stack
from comptoir.chain.build import artifact
from comptoir.chain.deploy import TEST_CATEGORY_ID, deploy_contract
from comptoir.chain.types import RequestOrder
from comptoir.sdk import Comptoir, Config, devnet_account

APP_DIR = Path(__file__).resolve().parent / "app"
APP_PRICE = 2
TRUST = 4  # two agreeing workers per question
POSITIONS = {
    "rnb1kbnr/pppp1ppp/8/4p3/6Pq/5P2/PPPPP2P/RNBQKBNR w KQkq - 1 3": "checkmate",  # fool's mate
    "7k/5Q2/6K1/8/8/8/8/8 b - - 0 1": "stalemate",
    "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1": "neither",
}
VERDICTS = {0: "unanswered", 1: "checkmate", 2: "stalemate", 3: "neither", 4: "invalid"}


async def main() -> int:
    config = Config.load()
    async with Comptoir(config, devnet_account(stack.APP_OWNER)) as dev:
        app = await dev.deploy_app(APP_DIR, "chess-judge")
        await dev.publish_app_order(app.app, APP_PRICE)
        print(f"chess app registered as {app.app} ({app.checksum[:16]}…)")

    async with Comptoir(config, devnet_account(stack.REQUESTER)) as c:
        chain = await c.chain()
        address, _ = deploy_contract(
            chain.tx,
            "ChessOracle",
            chain.deployment.hub,
            app.app,
            APP_PRICE,
            stack.POOL_PRICE,
            TEST_CATEGORY_ID,
            TRUST,
        )
        oracle = chain.w3.eth.contract(address, abi=artifact("ChessOracle").abi)
        chain.deposit((APP_PRICE + stack.POOL_PRICE) * len(POSITIONS), beneficiary=address)
        print(f"ChessOracle deployed at {address}, escrow funded")

        deals = []
        for fen in POSITIONS:
            receipt = chain.tx.send(address, oracle.encode_abi("ask", args=[fen]))
            (asked,) = oracle.events.Asked().process_receipt(receipt, errors=DISCARD)
            request = RequestOrder(
                app=app.app,
                app_max_price=APP_PRICE,
                dataset=0,
                dataset_max_price=0,
                workerpool=0,
                workerpool_max_price=stack.POOL_PRICE,
                requester=address,
                volume=1,
                category=TEST_CATEGORY_ID,
                trust=TRUST,
                beneficiary=address,
                callback=address,
                params=fen,
                salt=bytes(asked["args"]["salt"]),
            )
            deals += await c.fulfil(request)  # presigned by the contract: no signature
            print(f"asked: {fen}")

        async for task in c.watch(deals, timeout=300):
            print(f"task {task.deal_id[:10]}…: {task.status}  {task.preview}")

        wrong = 0
        for fen, expected in POSITIONS.items():
            verdict = VERDICTS[oracle.functions.verdict(fen).call()]
            mark = "ok" if verdict == expected else f"EXPECTED {expected}"
            wrong += verdict != expected
            print(f"on-chain verdict for {fen!r}: {verdict} ({mark})")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
