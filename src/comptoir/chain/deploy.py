"""Deploy the protocol and record where it lives.

Order: token, registry, hub(token, registry), contributions(hub); the hub's deployer
links the Contributions contract; the registry's owner (the deployer) creates the
categories. The record (:class:`Deployment`) is a small JSON file; every other component
finds the contracts through it.

Categories (time reference = maximum run time of one task; the contribution deadline
is 7x and the final deadline 10x that, counted from the match):

- ``DEFAULT_CATEGORIES``: iExec's five, same ids 0-4: XS 5 min, S 20 min, M 1 h,
  L 3 h, XL 10 h.
- ``DEVNET_CATEGORIES``: the same plus ``TEST`` (id 5, 60 s), so scripts on a devnet
  can reach deadlines in minutes without touching the clock.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3 import Web3

from comptoir.chain.build import artifact
from comptoir.chain.client import ChainClient, Transactor
from comptoir.config import Settings
from comptoir.exceptions import ConfigError, NotDeployed

DEFAULT_CATEGORIES: tuple[tuple[str, int], ...] = (
    ("XS", 300),
    ("S", 1200),
    ("M", 3600),
    ("L", 10800),
    ("XL", 36000),
)
TEST_CATEGORY = ("TEST", 60)
DEVNET_CATEGORIES = (*DEFAULT_CATEGORIES, TEST_CATEGORY)
TEST_CATEGORY_ID = len(DEFAULT_CATEGORIES)


@dataclass(frozen=True)
class Deployment:
    chain_id: int
    token: str
    registry: str
    hub: str
    contributions: str
    deployer: str
    block: int  # block of the first deployment transaction: where log scans start

    @property
    def addresses(self) -> dict[str, str]:
        return {
            "ComptoirToken": self.token,
            "Registry": self.registry,
            "Hub": self.hub,
            "Contributions": self.contributions,
        }

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Deployment:
        try:
            return cls(
                chain_id=int(data["chain_id"]),
                token=to_checksum_address(data["token"]),
                registry=to_checksum_address(data["registry"]),
                hub=to_checksum_address(data["hub"]),
                contributions=to_checksum_address(data["contributions"]),
                deployer=to_checksum_address(data["deployer"]),
                block=int(data["block"]),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise ConfigError(f"The deployment record is malformed ({exc}); redeploy.") from None

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(self.to_json(), fh, indent=2)
            fh.write("\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Deployment:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise NotDeployed(
                f"No deployment record at {path}; run 'comptoir devnet up' or set "
                "COMPTOIR_DEPLOYMENT to the record of your chain."
            ) from None
        except json.JSONDecodeError:
            raise ConfigError(
                f"The deployment record {path} is not valid JSON; redeploy."
            ) from None
        return cls.from_json(data)

    def missing_code(self, w3: Web3) -> list[str]:
        """Names of the contracts with no code at their recorded address."""
        return [
            name
            for name, address in self.addresses.items()
            if len(w3.eth.get_code(to_checksum_address(address))) == 0
        ]

    def verify(self, w3: Web3) -> None:
        """Raise NotDeployed unless the chain is the recorded one and every contract has code."""
        chain_id = int(w3.eth.chain_id)
        if chain_id != self.chain_id:
            raise NotDeployed(
                f"The deployment record is for chain {self.chain_id} but the node is chain "
                f"{chain_id}; point COMPTOIR_RPC_URL or COMPTOIR_DEPLOYMENT at matching ones."
            )
        missing = self.missing_code(w3)
        if missing:
            raise NotDeployed(
                f"No contract code for {', '.join(missing)} at the recorded addresses on chain "
                f"{chain_id}; the chain was reset: redeploy (on a devnet: 'comptoir devnet up')."
            )


def deploy_contract(tx: Transactor, name: str, *args: Any) -> tuple[str, int]:
    """Deploy one compiled contract; returns (address, block)."""
    art = artifact(name)
    ctor = next((item for item in art.abi if item.get("type") == "constructor"), None)
    data = art.bytecode
    if ctor is not None and ctor["inputs"]:
        data += abi_encode([i["type"] for i in ctor["inputs"]], list(args))
    receipt = tx.send(None, data)
    return to_checksum_address(receipt["contractAddress"]), int(receipt["blockNumber"])


def deploy_protocol(
    w3: Web3,
    account: LocalAccount,
    categories: tuple[tuple[str, int], ...] | list[tuple[str, int]] = DEFAULT_CATEGORIES,
    tx_timeout: float = 120.0,
    score_stake_floor: int = 1,
) -> Deployment:
    """Deploy the four contracts from `account`, link them and create the categories.

    `score_stake_floor`: the smallest deal worker stake whose replicated wins raise scores
    (1 unit by default: price-0 deals never do; a network sets what a point should cost).
    """
    tx = Transactor(w3, account, tx_timeout)
    token, first_block = deploy_contract(tx, "ComptoirToken")
    registry, _ = deploy_contract(tx, "Registry")
    hub, _ = deploy_contract(tx, "Hub", token, registry, score_stake_floor)
    contributions, _ = deploy_contract(tx, "Contributions", hub)
    deployment = Deployment(
        chain_id=int(w3.eth.chain_id),
        token=token,
        registry=registry,
        hub=hub,
        contributions=contributions,
        deployer=str(account.address),
        block=first_block,
    )
    client = ChainClient(w3, deployment, account, tx_timeout)
    client._send(client.hub, "set_onchain_path", contributions)
    for name, time_ref in categories:
        client.create_category(name, time_ref)
    return deployment


def find_deployment(settings: Settings, chain_id: int) -> Deployment:
    """The recorded deployment for `chain_id` (see Settings.deployment_candidates)."""
    candidates = settings.deployment_candidates(chain_id)
    for path in candidates:
        if path.exists():
            deployment = Deployment.load(path)
            if deployment.chain_id == chain_id or settings.deployment_file is not None:
                return deployment
    raise NotDeployed(
        f"No Comptoir deployment is recorded for chain {chain_id} (looked in "
        f"{', '.join(str(p) for p in candidates)}); run 'comptoir devnet up' for a local chain, "
        "or set COMPTOIR_DEPLOYMENT to your chain's deployment record."
    )
