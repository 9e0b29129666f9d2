"""Where the Vyper sources are and which search paths compile them."""

from __future__ import annotations

from pathlib import Path

import snekmate

CONTRACTS_DIR = Path(__file__).resolve().parent.parent / "contracts"
# snekmate is a namespace package (no __init__): its parent folder is the search path
SNEKMATE_ROOT = Path(next(iter(snekmate.__path__))).resolve().parent

# The deployable contracts, in deployment order.
DEPLOYABLE = ("ComptoirToken", "Registry", "Hub", "Contributions")
# Contracts only tests and examples deploy (callback receivers, ERC-1271 wallets...).
TESTING_DIR = CONTRACTS_DIR / "testing"


def search_paths() -> list[str]:
    return [str(CONTRACTS_DIR), str(SNEKMATE_ROOT)]


def source_path(name: str) -> Path:
    path = CONTRACTS_DIR / f"{name}.vy"
    return path if path.exists() else TESTING_DIR / f"{name}.vy"
