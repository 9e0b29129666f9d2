"""Gas per task on a real anvil chain, for the scenarios of SPEC section 4.

Gas per task = all gas of every transaction from the match to the last payment, divided
by the tasks of the deal. Every scenario uses fresh orders (new salts) on a protocol that
already ran one deal, so accounts hold balances as they do in steady use. The requester
sends the match itself (its own order needs no signature check); the scheduler settles
with worker-signed contributions in batches of up to 64 tasks.

    make gas        # or: .venv/bin/python bench/gas.py [--out bench/gas.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_utils import keccak

from comptoir import devnet
from comptoir.chain.client import ChainClient, TaskOutcome
from comptoir.chain.types import AppOrder, DatasetOrder, RequestOrder, WorkerpoolOrder
from comptoir.config import load_settings

BATCH = 32
# iExec PoCo v6.2 figures and Comptoir targets from SPEC section 4.
REFERENCE = {
    "match": ("matchOrders (app + workerpool + request)", 637_104, 200_000),
    "task_1w_v1": ("per task, volume 1, 1 worker", 1_330_546, 220_000),
    "task_3w_v1": ("per task, volume 1, 3 workers", 2_330_642, 450_000),
    "task_1w_bag100": ("per task, bag of 100, 1 worker", 700_000, 60_000),
    "task_3w_bag100": ("per task, bag of 100, 3 workers", 1_700_000, 150_000),
}


class Bench:
    def __init__(self, net: devnet.Devnet) -> None:
        names = ["requester", "app_dev", "scheduler", "w1", "w2", "w3"]
        accounts = dict(zip(names, net.accounts[1:], strict=False))
        self.c: dict[str, ChainClient] = {n: net.client(a) for n, a in accounts.items()}
        for name in ("requester", "scheduler", "w1", "w2", "w3"):
            self.c[name].deposit(10**24)
        for name in ("w1", "w2", "w3"):  # once per worker, as its agent does: not per task
            self.c[name].lock(self.c[name].timestamp() + 30 * 86_400)
        self.app = self.c["app_dev"].register_app("bench", "cas://bench", b"\x01" * 32, app_type=2)
        self.pool = self.c["scheduler"].register_workerpool("bench-pool", 10, 10)
        self.category = 0

    def fresh_orders(self) -> tuple[AppOrder, WorkerpoolOrder]:
        app_order = AppOrder(app=self.app, app_price=10**18, volume=10**6)
        pool_order = WorkerpoolOrder(
            workerpool=self.pool,
            workerpool_price=10**18,
            volume=10**6,
            category=self.category,
            trust=10,
        )
        return app_order, pool_order

    def match(
        self, volume: int, trust: int, orders: tuple[AppOrder, WorkerpoolOrder] | None = None
    ) -> tuple[Any, int]:
        requester = self.c["requester"]
        app_order, pool_order = orders or self.fresh_orders()
        request = RequestOrder(
            app=self.app,
            app_max_price=10**18,
            dataset=0,
            dataset_max_price=0,
            workerpool=0,
            workerpool_max_price=10**18,
            requester=requester.address,
            volume=volume,
            category=self.category,
            trust=trust,
            params='{"args": "bench"}',
        )
        deal = requester.match_orders(
            app_order,
            self.c["app_dev"].sign_order(app_order),
            DatasetOrder.none(),
            b"",
            pool_order,
            self.c["scheduler"].sign_order(pool_order),
            request,
            b"",
        )
        return deal, int(requester.last_receipt["gasUsed"])

    def settle(self, deal: Any, workers: list[str]) -> int:
        scheduler = self.c["scheduler"]
        gas = 0
        for start in range(0, deal.volume, BATCH):
            outcomes = []
            for index in range(start, min(start + BATCH, deal.volume)):
                digest = keccak(text=f"result-{index}")
                signed = [self.c[w].sign_contribution(deal, index, digest) for w in workers]
                outcomes.append(TaskOutcome(index, digest, signed))
            scheduler.finalize_tasks(deal, outcomes)
            gas += int(scheduler.last_receipt["gasUsed"])
        return gas

    def scenario(
        self,
        volume: int,
        workers: list[str],
        trust: int,
        orders: tuple[AppOrder, WorkerpoolOrder] | None = None,
    ) -> tuple[int, int]:
        deal, match_gas = self.match(volume, trust, orders)
        total = match_gas + self.settle(deal, workers)
        return match_gas, total // volume


def run(out: Path) -> dict[str, int]:
    home = tempfile.mkdtemp(prefix="comptoir-gas-")
    settings = load_settings({"COMPTOIR_HOME": home})
    net = devnet.up(settings, port=0)
    try:
        bench = Bench(net)
        one, three = ["w1"], ["w1", "w2", "w3"]
        bench.scenario(1, three, 5)  # warm-up: every account has held a balance once
        scenarios: dict[str, Callable[[], tuple[int, int]]] = {
            "task_1w_v1": lambda: bench.scenario(1, one, 1),
            "task_3w_v1": lambda: bench.scenario(1, three, 5),
            "task_1w_bag100": lambda: bench.scenario(100, one, 1),
            "task_3w_bag100": lambda: bench.scenario(100, three, 5),
        }
        figures: dict[str, int] = {}
        for key, fn in scenarios.items():
            match_gas, per_task = fn()
            figures.setdefault("match", match_gas)
            figures[key] = per_task
        # A live market reuses standing app and workerpool orders (partly consumed already):
        # only the request order is new. Reported beside the main figures, not instead.
        standing = bench.fresh_orders()
        bench.scenario(1, one, 1, standing)
        _, figures["standing_orders_1w_v1"] = bench.scenario(1, one, 1, standing)
    finally:
        devnet.down(settings)
    ordered = {k: figures[k] for k in REFERENCE}
    out.write_text(json.dumps(ordered, indent=2) + "\n")
    return ordered | {"standing_orders_1w_v1": figures["standing_orders_1w_v1"]}


def report(figures: dict[str, int]) -> str:
    lines = [
        f"{'figure':<42}{'Comptoir':>12}{'iExec v6.2':>14}{'target':>12}  met",
        "-" * 86,
    ]
    for key, (label, iexec, target) in REFERENCE.items():
        value = figures[key]
        met = "yes" if value <= target else "NO"
        lines.append(f"{label:<42}{value:>12,}{iexec:>14,}{target:>12,}  {met}")
    lines.append(
        f"{'  same, with standing app/workerpool orders':<42}"
        f"{figures['standing_orders_1w_v1']:>12,}"
    )
    lines.append("")
    lines.append(
        f"anvil 1.7.1, {platform.machine()}, Python {platform.python_version()}; "
        "reproduce with: make gas"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("gas.json"))
    args = parser.parse_args(argv)
    figures = run(args.out)
    print(report(figures))
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
