"""Cost of sealing a result to its requester and of opening it (comptoir.apps.sealed), per
result size: what the worker adds before upload and the requester before verifying.

Run: .venv/bin/python bench/sealed.py
"""

from __future__ import annotations

import os
import time

from comptoir.apps import sealed

PRIVATE = b"\x11" * 32
KEY = sealed.public_key_of(PRIVATE)
LOGS = sealed.Logs(b"o" * (64 << 10), b"e" * (64 << 10), True, True)


def main(rounds: int = 5) -> None:
    for size in (1 << 10, 1 << 20, 16 << 20):
        result = os.urandom(size)
        started = time.perf_counter()
        for _ in range(rounds):
            blob = sealed.seal(result, LOGS, KEY, sealed=True)
        seal_ms = (time.perf_counter() - started) / rounds * 1000
        started = time.perf_counter()
        for _ in range(rounds):
            opened = sealed.open_envelope(blob, PRIVATE)
        open_ms = (time.perf_counter() - started) / rounds * 1000
        assert opened.result == result
        overhead = len(blob) - size - 2 * (64 << 10)
        print(
            f"{size / (1 << 20):8.3f} MiB result: seal {seal_ms:7.2f} ms, open {open_ms:7.2f} ms, "
            f"envelope overhead {overhead} bytes"
        )


if __name__ == "__main__":
    main()
