"""How long a command's log reads take on a long chain: a full scan from the deployment
block every time (before) vs the on-disk cache of final logs (after).

Mines BLOCKS empty blocks on a devnet, registers assets among them, then times resolving
an app by name (the registry's AssetRegistered scan every command does) cold and warm.

    .venv/bin/python bench/logscan.py [--blocks 3000] [--range 100] [--range 2000]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from comptoir import devnet
from comptoir.chain.logscan import ScanPolicy
from comptoir.config import load_settings
from comptoir.sdk import chainscan


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--blocks", type=int, default=3_000)
    parser.add_argument("--range", type=int, default=100, help="blocks per eth_getLogs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {"COMPTOIR_HOME": home, "COMPTOIR_DEVNET_BLOCK_TIME": "0"}
        settings = load_settings(env)
        net = devnet.up(settings, port=0)
        try:
            client = net.client(2)
            client.register_app("early", "oci://x", b"\x01" * 32)
            for _ in range(0, args.blocks, 100):  # in batches: one call must answer in time
                net.w3.provider.make_request("anvil_mine", [hex(100)])  # type: ignore[arg-type]
            client.register_app("late", "oci://y", b"\x02" * 32)
            cold = dataclasses.replace(client.scan_policy, max_range=args.range)
            cached = ScanPolicy(args.range, 0, Path(home) / "index")
            timings = {}
            runs = (("full scan", cold), ("cache, first", cached), ("cache, next", cached))
            for label, policy in runs:
                client.scan_policy = policy
                started = time.perf_counter()
                asset = chainscan.resolve_asset(client, "app", "late")
                timings[label] = time.perf_counter() - started
            blocks = client.block_number()
            print(f"chain of {blocks:,} blocks, {args.range:,} blocks per eth_getLogs")
            for label, seconds in timings.items():
                print(f"  resolve app 'late' (id {asset}), {label:<13} {seconds * 1000:8.1f} ms")
        finally:
            devnet.down(settings)


if __name__ == "__main__":
    main()
