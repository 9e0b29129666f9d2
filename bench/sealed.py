"""Cost of sealing a result and of opening it (comptoir.apps.sealed), per result size and
number of recipients (the requester alone; with the app's owner reading the logs and a
callback's owner reading the result): what the worker adds before upload and a reader
before verifying. CPU time per operation is the figure to compare on a loaded machine.

Run: .venv/bin/python bench/sealed.py
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from comptoir.apps import sealed

PRIVATE, DEV, CALLBACK = b"\x11" * 32, b"\x33" * 32, b"\x44" * 32
LOGS = sealed.Logs(b"o" * (64 << 10), b"e" * (64 << 10), True, True)
ALONE = [sealed.Recipient(sealed.REQUESTER, sealed.public_key_of(PRIVATE), sealed.SCOPES["all"])]
SHARED = [
    *ALONE,
    sealed.Recipient(sealed.APP_OWNER, sealed.public_key_of(DEV), sealed.SCOPES["logs"]),
    sealed.Recipient(
        sealed.CALLBACK_OWNER, sealed.public_key_of(CALLBACK), sealed.SCOPES["result"]
    ),
]


def _ms(fn: Callable[[], object], rounds: int) -> tuple[float, float]:
    """(wall ms, process CPU ms) per call of `fn`."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(rounds):
        fn()
    return (
        (time.perf_counter() - wall) / rounds * 1000,
        (time.process_time() - cpu) / rounds * 1000,
    )


def main(rounds: int = 20) -> None:
    print(f"load average {os.getloadavg()[0]:.2f}; ms per operation, wall / process CPU")
    for size in (1 << 10, 1 << 20, 16 << 20):
        result = os.urandom(size)
        for name, recipients in (("1 recipient", ALONE), ("3 recipients", SHARED)):
            blob = sealed.seal(result, LOGS, recipients, sealed=True)
            seal_ms = _ms(
                lambda x=result, r=recipients: sealed.seal(x, LOGS, r, sealed=True), rounds
            )
            open_ms = _ms(lambda b=blob: sealed.open_envelope(b, PRIVATE), rounds)
            assert sealed.open_envelope(blob, PRIVATE).result == result
            overhead = len(blob) - size - 2 * (64 << 10)
            print(
                f"{size / (1 << 20):8.3f} MiB, {name:12}: seal {seal_ms[0]:7.2f} / "
                f"{seal_ms[1]:7.2f}, open {open_ms[0]:7.2f} / {open_ms[1]:7.2f}, "
                f"envelope overhead {overhead} bytes"
            )


if __name__ == "__main__":
    main()
