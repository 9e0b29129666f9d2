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

from comptoir.chain.build import DEFAULT_EVM_VERSION, EIP170_LIMIT, EVM_VERSIONS, artifact
from comptoir.chain.client import ChainClient, Transactor
from comptoir.chain.sources import DEPLOYABLE
from comptoir.config import Settings
from comptoir.exceptions import BuildError, ChainError, ConfigError, NotDeployed

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


def deploy_contract(
    tx: Transactor, name: str, *args: Any, evm_version: str = DEFAULT_EVM_VERSION
) -> tuple[str, int]:
    """Deploy one compiled contract; returns (address, block)."""
    art = artifact(name, evm_version)
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
    evm_version: str = DEFAULT_EVM_VERSION,
) -> Deployment:
    """Deploy the four contracts from `account`, link them and create the categories.

    `score_stake_floor`: the smallest deal worker stake whose replicated wins raise scores
    (1 unit by default: price-0 deals never do; a network sets what a point should cost).
    """
    tx = Transactor(w3, account, tx_timeout)
    evm = {"evm_version": evm_version}
    token, first_block = deploy_contract(tx, "ComptoirToken", **evm)
    registry, _ = deploy_contract(tx, "Registry", **evm)
    hub, _ = deploy_contract(tx, "Hub", token, registry, score_stake_floor, **evm)
    contributions, _ = deploy_contract(tx, "Contributions", hub, **evm)
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
    """The recorded deployment for `chain_id`: COMPTOIR_DEPLOYMENT, else the selected
    network's record, else the files of Settings.deployment_candidates."""
    network = settings.network
    if settings.deployment_file is None and network is not None:
        if network.deployment is None:
            raise NotDeployed(
                f"The protocol is not deployed on network {network.name!r} as far as this "
                f"machine knows; deploy it ('comptoir protocol deploy --network {network.name}') "
                f"or re-add the network with its hub ('comptoir network add {network.name} "
                "--rpc-url URL --hub ADDRESS --replace')."
            )
        deployment = Deployment.from_json(network.deployment)
        if deployment.chain_id != chain_id:
            raise NotDeployed(
                f"Network {network.name!r} is recorded on chain {deployment.chain_id} but its "
                f"RPC endpoint serves chain {chain_id}; fix its rpc_url in networks.toml."
            )
        return deployment
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


# ---------------------------------------------------------------- deploying to any chain

# Init code that runs the opcodes an EVM version added: PUSH0 (shanghai); MCOPY and TSTORE
# (cancun). A node that lacks them fails the simulated creation.
OPCODE_PROBES = {
    "paris": "0x00",
    "shanghai": "0x5f5000",
    "cancun": "0x5f506000600060005e600160005d00",
}
EXTRA_DEPLOY_GAS = 600_000  # linking the Contributions contract and creating six categories


@dataclass(frozen=True)
class DeployPlan:
    """What a deployment will cost and whether the chain can take it (all pre-checked)."""

    chain_id: int
    deployer: str
    evm_version: str
    sizes: dict[str, int]
    gas: int
    fee_per_gas: int
    balance: int

    @property
    def cost(self) -> int:
        return self.gas * self.fee_per_gas


def supports_evm(w3: Web3, evm_version: str) -> bool:
    """Whether the node executes the opcodes `evm_version` introduced (a simulated creation)."""
    try:
        w3.eth.call({"data": OPCODE_PROBES[evm_version]})  # type: ignore[typeddict-item]
    except Exception:
        return False
    return True


def newest_supported_evm(w3: Web3) -> str | None:
    supported = [v for v in EVM_VERSIONS if supports_evm(w3, v)]
    return supported[-1] if supported else None


def plan_deployment(
    w3: Web3, account: LocalAccount, evm_version: str = DEFAULT_EVM_VERSION
) -> DeployPlan:
    """Pre-check a deployment: opcodes the node supports, EIP-170 sizes, gas and balance."""
    if evm_version not in EVM_VERSIONS:
        raise ConfigError(f"Unknown EVM version {evm_version!r}; choose one of {EVM_VERSIONS}.")
    chain_id = int(w3.eth.chain_id)
    if not supports_evm(w3, evm_version):
        newest = newest_supported_evm(w3)
        hint = f"build for {newest!r} with --evm-version {newest}" if newest else "use another"
        raise ChainError(
            f"Chain {chain_id} does not run {evm_version} opcodes (the contracts built for it "
            f"would be refused); {hint}."
        )
    try:
        sizes = {name: artifact(name, evm_version).runtime_size for name in DEPLOYABLE}
    except BuildError as exc:
        raise ConfigError(str(exc)) from None
    too_big = {n: b for n, b in sizes.items() if b > EIP170_LIMIT}
    if too_big:
        listed = ", ".join(f"{n} ({b:,} bytes)" for n, b in too_big.items())
        verb = "exceeds" if len(too_big) == 1 else "exceed"
        raise ConfigError(
            f"Built for {evm_version}, {listed} {verb} the EIP-170 limit of {EIP170_LIMIT:,} "
            "bytes; deploy to a chain that runs cancun (the hub fits only with MCOPY)."
        )
    me = str(account.address)
    gas = EXTRA_DEPLOY_GAS
    for name in DEPLOYABLE:
        art = artifact(name, evm_version)
        ctor = next((i for i in art.abi if i.get("type") == "constructor"), None)
        data = art.bytecode
        if ctor is not None and ctor["inputs"]:
            # placeholders (our address, 1): constructors only store them
            types = [i["type"] for i in ctor["inputs"]]
            data += abi_encode(types, [me if t == "address" else 1 for t in types])
        try:
            gas += int(w3.eth.estimate_gas({"from": me, "data": "0x" + data.hex()}))  # type: ignore[typeddict-item]
        except Exception as exc:
            raise ChainError(
                f"Chain {chain_id} refuses to create {name} ({exc}); check that it accepts "
                "contract creation from this account."
            ) from None
    fee = int(w3.eth.gas_price)
    balance = int(w3.eth.get_balance(to_checksum_address(me)))
    plan = DeployPlan(chain_id, me, evm_version, sizes, gas, fee, balance)
    if balance < plan.cost:
        raise ChainError(
            f"The deployer {me} holds {balance / 1e18:.6f} ether but the deployment needs about "
            f"{plan.cost / 1e18:.6f} ({gas:,} gas at {fee / 1e9:.2f} gwei); fund it first."
        )
    return plan


def _first_code_block(w3: Web3, address: str, head: int) -> int:
    """The block that created `address` (binary search on historical code)."""
    low, high = 0, head
    while low < high:
        mid = (low + high) // 2
        if len(w3.eth.get_code(to_checksum_address(address), block_identifier=mid)) > 0:
            high = mid
        else:
            low = mid + 1
    return low


def discover_deployment(w3: Web3, hub: str, from_block: int | None = None) -> Deployment:
    """The deployment record of a running protocol, read from the chain given only its hub."""
    hub = to_checksum_address(hub)
    if len(w3.eth.get_code(hub)) == 0:
        raise NotDeployed(f"No contract at {hub} on chain {int(w3.eth.chain_id)}; check the hub.")
    contract = w3.eth.contract(hub, abi=artifact("Hub").abi)
    try:
        token = to_checksum_address(contract.functions.token().call())
        registry = to_checksum_address(contract.functions.registry().call())
        contributions = to_checksum_address(contract.functions.onchain_path().call())
        owner = w3.eth.contract(registry, abi=artifact("Registry").abi).functions.owner().call()
    except Exception:
        raise NotDeployed(
            f"The contract at {hub} is not a Comptoir hub; check the address."
        ) from None
    if from_block is None:
        try:
            from_block = _first_code_block(w3, token, int(w3.eth.block_number))
        except Exception:
            raise ChainError(
                "The node does not serve historical state, so the deployment block is unknown; "
                "give it with --from-block."
            ) from None
    return Deployment(
        chain_id=int(w3.eth.chain_id),
        token=token,
        registry=registry,
        hub=hub,
        contributions=contributions,
        deployer=to_checksum_address(owner),
        block=int(from_block),
    )
