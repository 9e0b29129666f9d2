"""Settings from the environment: where Comptoir keeps its files and which chain it talks to.

Any EVM JSON-RPC endpoint works by configuration alone: name a network added with
``comptoir network add`` (its RPC URL, deployment record and services live in
``networks.toml``, see :mod:`comptoir.network`), or point ``COMPTOIR_RPC_URL`` at a node
and ``COMPTOIR_DEPLOYMENT`` at the deployment record (or keep one per chain id under
``<home>/deployments/<chain id>.json``).

| variable | default | meaning |
|---|---|---|
| COMPTOIR_HOME | ~/.local/share/comptoir | state (devnet, wallets) and, when set, networks.toml |
| COMPTOIR_NETWORK | `current` in networks.toml | network to use, by name (`devnet`: local) |
| COMPTOIR_RPC_URL | the network's or devnet's | JSON-RPC endpoint |
| COMPTOIR_DEPLOYMENT | the network's record | deployment record JSON |
| COMPTOIR_ANVIL | .tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil | anvil binary |
| COMPTOIR_DEVNET_PORT | 8545 | devnet port (0 = any free port) |
| COMPTOIR_DEVNET_CHAIN_ID | 31337 | devnet chain id |
| COMPTOIR_DEVNET_BLOCK_TIME | 5 | seconds between idle devnet blocks (0: only on transactions) |
| COMPTOIR_DEVNET_HOST | 127.0.0.1 | address the stack's services listen on and advertise |
| COMPTOIR_RPC_TIMEOUT | 30 | seconds per JSON-RPC request |
| COMPTOIR_TX_TIMEOUT | 120 | seconds to wait for a receipt |
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from comptoir.exceptions import ConfigError
from comptoir.network import Network, selected_network

DEFAULT_RPC_URL = "http://127.0.0.1:8545"
DEFAULT_DEVNET_PORT = 8545
DEFAULT_DEVNET_CHAIN_ID = 31337
DEFAULT_DEVNET_BLOCK_TIME = 5
DEFAULT_DEVNET_HOST = "127.0.0.1"
_PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ANVIL = _PROJECT_ROOT / ".tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"


@dataclass(frozen=True)
class Settings:
    home: Path
    rpc_url: str = DEFAULT_RPC_URL
    deployment_file: Path | None = None
    anvil: Path = DEFAULT_ANVIL
    devnet_port: int = DEFAULT_DEVNET_PORT
    devnet_chain_id: int = DEFAULT_DEVNET_CHAIN_ID
    devnet_block_time: int = DEFAULT_DEVNET_BLOCK_TIME
    devnet_host: str = DEFAULT_DEVNET_HOST
    rpc_timeout: float = 30.0
    tx_timeout: float = 120.0
    rpc_url_explicit: bool = False  # set by COMPTOIR_RPC_URL: the devnet must not override it
    network: Network | None = None  # a named network (None: the local devnet)

    @property
    def devnet_dir(self) -> Path:
        return self.home / "devnet"

    @property
    def deployments_dir(self) -> Path:
        return self.home / "deployments"

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    def resolved_rpc_url(self) -> str:
        """COMPTOIR_RPC_URL when set; else the devnet recorded under this home; else the default."""
        if self.rpc_url_explicit:
            return self.rpc_url
        try:
            info = json.loads((self.devnet_dir / "devnet.json").read_text())
            return str(info["rpc_url"])
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return self.rpc_url

    def deployment_candidates(self, chain_id: int) -> list[Path]:
        """Where a deployment record for `chain_id` may be, first match wins."""
        if self.deployment_file is not None:
            return [self.deployment_file]
        return [self.deployments_dir / f"{chain_id}.json", self.devnet_dir / "deployment.json"]

    def deployment_path(self, chain_id: int) -> Path:
        """Where the deployment record for `chain_id` is read from and written to.

        COMPTOIR_DEPLOYMENT wins; then <home>/deployments/<chain id>.json.
        """
        if self.deployment_file is not None:
            return self.deployment_file
        return self.deployments_dir / f"{chain_id}.json"


def env_int(env: Mapping[str, str], name: str, default: int) -> int:
    """An integer setting; `default` when unset or empty."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {raw!r}.") from None


def env_float(env: Mapping[str, str], name: str, default: float) -> float:
    """A number setting; `default` when unset or empty."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}.") from None


def env_required(env: Mapping[str, str], name: str, who: str) -> str:
    """A setting `who` (e.g. "the scheduler") cannot start without."""
    value = env.get(name)
    if not value:
        raise ConfigError(f"{name} is not set; {who} needs it.")
    return value


def env_flag(env: Mapping[str, str], name: str) -> bool:
    """A yes/no setting: unset, empty, "0" and "false" mean no."""
    return env.get(name, "") not in ("", "0", "false")


def advertised_host(host: str) -> str:
    """A listen address that is also the one others connect to: a wildcard cannot be."""
    if host in ("0.0.0.0", "::", "[::]", "*"):
        raise ConfigError(
            f"COMPTOIR_DEVNET_HOST {host!r} is a wildcard, not an address other hosts can "
            "reach; give this host's own address (e.g. its LAN IP)."
        )
    return host


def default_home() -> Path:
    import platformdirs

    return platformdirs.user_data_path("comptoir")


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from `env` (default: the process environment)."""
    env = os.environ if env is None else env
    network = selected_network(env)
    home = Path(env.get("COMPTOIR_HOME") or default_home()).expanduser().absolute()
    rpc_url = env.get("COMPTOIR_RPC_URL") or (network.rpc_url if network else "")
    if rpc_url and not rpc_url.startswith(("http://", "https://")):
        raise ConfigError(f"COMPTOIR_RPC_URL must be an http(s) URL, not {rpc_url!r}.")
    deployment = env.get("COMPTOIR_DEPLOYMENT")
    anvil = env.get("COMPTOIR_ANVIL")
    return Settings(
        home=home,
        rpc_url=rpc_url or DEFAULT_RPC_URL,
        rpc_url_explicit=bool(rpc_url),
        network=network,
        deployment_file=Path(deployment).expanduser().absolute() if deployment else None,
        anvil=Path(anvil).expanduser() if anvil else DEFAULT_ANVIL,
        devnet_port=env_int(env, "COMPTOIR_DEVNET_PORT", DEFAULT_DEVNET_PORT),
        devnet_chain_id=env_int(env, "COMPTOIR_DEVNET_CHAIN_ID", DEFAULT_DEVNET_CHAIN_ID),
        devnet_block_time=env_int(env, "COMPTOIR_DEVNET_BLOCK_TIME", DEFAULT_DEVNET_BLOCK_TIME),
        devnet_host=advertised_host(env.get("COMPTOIR_DEVNET_HOST") or DEFAULT_DEVNET_HOST),
        rpc_timeout=env_float(env, "COMPTOIR_RPC_TIMEOUT", 30.0),
        tx_timeout=env_float(env, "COMPTOIR_TX_TIMEOUT", 120.0),
    )
