"""Cost of the request-body pre-scan (comptoir.httpguard.check_json_shape) per body shape.

Run: .venv/bin/python bench/httpguard.py
"""

from __future__ import annotations

import time

from comptoir.httpguard import BodyRefused, check_json_shape

SHAPES = {
    "signed order (300 B)": b'{"kind":"app","order":{"app":1,"app_price":5},"signature":"0x00"}',
    "deep 1 MiB": b"[" * (1 << 19) + b"]" * (1 << 19),
    "flat 1 MiB": b"[" + b"[]," * 349_525 + b"[]]",
    "19 999 values": b"[" + b"1," * 19_998 + b"1]",
    "64 KiB of strings": b'["' + b"a" * 65_000 + b'"]',
}


def main(rounds: int = 20) -> None:
    for name, body in SHAPES.items():
        started = time.perf_counter()
        verdict = "accepted"
        for _ in range(rounds):
            try:
                check_json_shape(body)
            except BodyRefused as refused:
                verdict = f"refused {refused.status}"
        per_call = (time.perf_counter() - started) / rounds * 1000
        print(f"{name:>22}: {per_call:8.3f} ms per body ({verdict})")


if __name__ == "__main__":
    main()
