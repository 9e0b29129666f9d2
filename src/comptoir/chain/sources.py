"""Where the Vyper sources are and which search paths compile them."""

from __future__ import annotations

from pathlib import Path

from comptoir.exceptions import BuildError

CONTRACTS_DIR = Path(__file__).resolve().parent.parent / "contracts"
# Compiled artifacts committed with the sources and shipped in the wheel.
ARTIFACTS_DIR = CONTRACTS_DIR / "artifacts"

# The deployable contracts, in deployment order.
DEPLOYABLE = ("ComptoirToken", "Registry", "Hub", "Contributions")
# Contracts only tests and examples deploy (callback receivers, ERC-1271 wallets...).
TESTING_DIR = CONTRACTS_DIR / "testing"


def snekmate_root() -> Path:
    """The folder that holds snekmate (a namespace package: its parent is the search path).

    snekmate is only needed to compile, so it is imported here and not at module load:
    an installed wheel without the [dev] extra never compiles."""
    try:
        import snekmate
    except ImportError:
        raise BuildError(
            "Compiling the contracts needs vyper and snekmate; install 'comptoir[dev]'."
        ) from None
    return Path(next(iter(snekmate.__path__))).resolve().parent


def search_paths() -> list[str]:
    return [str(CONTRACTS_DIR), str(snekmate_root())]


def source_path(name: str) -> Path:
    path = CONTRACTS_DIR / f"{name}.vy"
    return path if path.exists() else TESTING_DIR / f"{name}.vy"
