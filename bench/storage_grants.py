"""What the storage service's stranger defences cost per request, on the CPU alone.

- an upload grant: signing it (the uploader), parsing and verifying it (the service:
  base64, bounded JSON, EIP-191 recovery) before any chain read;
- the quota ledger: one reservation and its record in SQLite;
- the key service's nonces: issuing one (no state) and spending it.

Prints process CPU per operation, the wall-clock rate and the load average (the shared
dev machine's other work shows in the wall figures, not in the CPU ones).

Run: .venv/bin/python bench/storage_grants.py [--ops 500]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from eth_account import Account

from comptoir.storage.grants import Network, asset_purpose, parse_grant, sign_grant, verify_grant
from comptoir.storage.keys import NonceBook
from comptoir.storage.quota import StorageLimits, UploadLedger


def measure(name: str, ops: int, step: Callable[[int], None]) -> dict[str, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(ops):
        step(i)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    figures = {"cpu_ms_per_op": cpu / ops * 1000, "ops_per_s_wall": ops / wall}
    print(
        f"{name:>34}: {figures['cpu_ms_per_op']:8.3f} ms CPU/op, "
        f"{figures['ops_per_s_wall']:9.0f} ops/s wall"
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=500)
    ops = parser.parse_args().ops
    account = Account.create()
    net = Network(31337, "0x" + "12" * 20)
    digest = hashlib.sha256(b"blob").hexdigest()
    evidence = {"deal": {"deal_id": "0x" + "ab" * 32, "volume": 1}, "index": 0, "block": 1}
    grants = [sign_grant(account, digest, 4, net, asset_purpose(7), evidence) for _ in range(ops)]
    print(f"{ops} operations each; load average before: {os.getloadavg()[0]:.2f}")
    sign = measure(
        "sign a grant (uploader)",
        ops,
        lambda i: sign_grant(account, digest, 4, net, asset_purpose(7), evidence),
    )
    check = measure(
        "parse + verify a grant (service)",
        ops,
        lambda i: verify_grant(parse_grant(grants[i]), net, digest),
    )
    with tempfile.TemporaryDirectory() as tmp:
        ledger = UploadLedger(StorageLimits(min_free_bytes=0), Path(tmp) / "u.db", disk=tmp)

        def reserve(i: int) -> None:
            with ledger.reserve([account.address, "0x" + "34" * 20], f"{i:064x}", 1000):
                pass

        quota = measure("quota reserve + record (SQLite)", ops, reserve)
    nonces = NonceBook()
    issued = [nonces.issue(account.address)[0] for _ in range(ops)]
    issue = measure("issue a nonce", ops, lambda i: nonces.issue(account.address))
    spend = measure("spend a nonce", ops, lambda i: nonces.consume(account.address, issued[i]))
    print(
        f"ratios: verify/sign {check['cpu_ms_per_op'] / sign['cpu_ms_per_op']:.2f}, "
        f"quota/verify {quota['cpu_ms_per_op'] / check['cpu_ms_per_op']:.2f}, "
        f"nonce issue/spend {issue['cpu_ms_per_op'] / spend['cpu_ms_per_op']:.2f}"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
