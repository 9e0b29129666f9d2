"""Known networks: which chain, where the protocol is deployed on it, which services serve it.

One TOML file, ``networks.toml``, in the platform's config folder (platformdirs; e.g.
``~/.config/comptoir`` on Linux), or in ``COMPTOIR_HOME`` / ``--home`` when given::

    current = "sepolia"

    [networks.sepolia]
    rpc_url = "https://rpc.example"
    chain_id = 11155111
    market_url = "https://market.example"
    confirmations = 12        # blocks before a result counts as final
    log_range = 2000          # most blocks per eth_getLogs (provider limits)

    [networks.sepolia.deployment]   # written by 'comptoir protocol deploy'
    hub = "0x..."
    ...

``devnet`` is the built-in name of the local devnet under the home (no entry needed).
This module reads and writes the file; it imports nothing heavy (no web3).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from comptoir.exceptions import ConfigError

NETWORKS_FILE = "networks.toml"
DEVNET = "devnet"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
MAX_FILE_BYTES = 1 << 20  # the file is hand-editable: bound it before parsing
DEFAULT_CONFIRMATIONS = 0
DEFAULT_LOG_RANGE = 10_000
DEPLOYMENT_KEYS = ("chain_id", "token", "registry", "hub", "contributions", "deployer", "block")


# What each networks.toml setting means (docs/configuration.md is generated from this).
NETWORK_FIELDS: dict[str, str] = {
    "rpc_url": "JSON-RPC endpoint of a node of the chain (required)",
    "chain_id": "the chain's id, recorded when added; a node serving another chain is refused",
    "market_url": "the network's market (order book) API",
    "storage_url": "the network's blob storage, where apps, datasets and results are uploaded",
    "confirmations": "blocks behind the head before an event counts as final (reorg margin)",
    "log_range": "most blocks asked per eth_getLogs request (providers cap the range)",
    "evm_version": "EVM version the contracts were built for (default cancun)",
    "deployment": "table written by 'comptoir protocol deploy' or 'network add --hub': "
    "chain_id, token, registry, hub, contributions, deployer, block",
}


@dataclass(frozen=True)
class Network:
    """One chain Comptoir runs on, and what a party needs to join it."""

    name: str
    rpc_url: str
    chain_id: int | None = None
    market_url: str | None = None
    storage_url: str | None = None
    confirmations: int = DEFAULT_CONFIRMATIONS
    log_range: int = DEFAULT_LOG_RANGE
    evm_version: str | None = None  # None: the default build
    deployment: dict[str, Any] | None = None  # a Deployment record (comptoir.chain.deploy)

    def __post_init__(self) -> None:
        check_name(self.name)
        for label, url in (
            ("rpc_url", self.rpc_url),
            ("market_url", self.market_url),
            ("storage_url", self.storage_url),
        ):
            if url is not None and not url.startswith(("http://", "https://")):
                raise ConfigError(
                    f"Network {self.name!r}: {label} must be an http(s) URL, not {url!r}."
                )
        if self.confirmations < 0 or self.confirmations > 1000:
            raise ConfigError(f"Network {self.name!r}: confirmations must be within 0..1000.")
        if self.log_range < 1:
            raise ConfigError(f"Network {self.name!r}: log_range must be at least 1 block.")

    def with_(self, **changes: Any) -> Network:
        return replace(self, **changes)

    def to_toml_table(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "name" and v is not None}

    @classmethod
    def from_table(cls, name: str, table: Mapping[str, Any]) -> Network:
        known = {f for f in cls.__dataclass_fields__ if f != "name"}
        unknown = set(table) - known
        if unknown:
            raise ConfigError(
                f"Network {name!r} has unknown settings {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(known))}."
            )
        deployment = table.get("deployment")
        if deployment is not None and (
            not isinstance(deployment, dict) or set(deployment) != set(DEPLOYMENT_KEYS)
        ):
            raise ConfigError(
                f"Network {name!r}: its deployment record is malformed; redeploy or re-add it."
            )
        try:
            return cls(
                name=name,
                rpc_url=str(table["rpc_url"]),
                chain_id=_opt_int(table.get("chain_id")),
                market_url=_opt_str(table.get("market_url")),
                storage_url=_opt_str(table.get("storage_url")),
                confirmations=int(table.get("confirmations", DEFAULT_CONFIRMATIONS)),
                log_range=int(table.get("log_range", DEFAULT_LOG_RANGE)),
                evm_version=_opt_str(table.get("evm_version")),
                deployment=dict(deployment) if deployment is not None else None,
            )
        except KeyError:
            raise ConfigError(f"Network {name!r} has no rpc_url.") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"Network {name!r} has a malformed setting ({exc}).") from None


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise ConfigError(
            f"{name!r} is not a network name; use up to 32 lowercase letters, digits, - and _."
        )
    return name


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    """COMPTOIR_HOME when set (one folder for everything), else the platform's config folder."""
    env = os.environ if env is None else env
    if env.get("COMPTOIR_HOME"):
        return Path(env["COMPTOIR_HOME"]).expanduser().absolute()
    import platformdirs

    return platformdirs.user_config_path("comptoir")


@dataclass
class NetworkBook:
    """The networks file: known networks and the current one."""

    path: Path
    networks: dict[str, Network] = field(default_factory=dict)
    current: str | None = None

    @classmethod
    def load(cls, folder: Path) -> NetworkBook:
        path = folder / NETWORKS_FILE
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise ConfigError(f"{path} is larger than 1 MiB; it cannot be a networks file.")
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            return cls(path)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path} is not valid TOML ({exc}); fix or delete it.") from None
        tables = data.get("networks", {})
        if not isinstance(tables, dict) or not all(isinstance(t, dict) for t in tables.values()):
            raise ConfigError(f"{path}: 'networks' must hold one table per network.")
        current = data.get("current")
        book = cls(path, {n: Network.from_table(n, t) for n, t in tables.items()})
        book.current = str(current) if current else None
        return book

    def get(self, name: str) -> Network:
        try:
            return self.networks[check_name(name)]
        except KeyError:
            known = ", ".join([DEVNET, *sorted(self.networks)])
            raise ConfigError(
                f"No network named {name!r} (known: {known}); add it with "
                f"'comptoir network add {name} --rpc-url URL'."
            ) from None

    def add(self, network: Network, replace_existing: bool = False) -> None:
        if network.name == DEVNET:
            raise ConfigError("'devnet' is the built-in local devnet; choose another name.")
        if network.name in self.networks and not replace_existing:
            raise ConfigError(
                f"A network named {network.name!r} exists already; pass --replace to overwrite it."
            )
        self.networks[network.name] = network

    def remove(self, name: str) -> None:
        self.get(name)
        del self.networks[name]
        if self.current == name:
            self.current = None

    def use(self, name: str) -> None:
        if name != DEVNET:
            self.get(name)
        self.current = name

    def save(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            fh.write(dumps_toml(self))
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.path)
        return self.path


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    # a JSON string is a valid TOML basic string (same escapes; non-ASCII as \\uXXXX)
    return json.dumps(str(value))


def dumps_toml(book: NetworkBook) -> str:
    lines = ["# Comptoir networks: 'comptoir network list|add|use', 'comptoir protocol deploy'."]
    if book.current:
        lines.append(f"current = {_toml_value(book.current)}")
    for name in sorted(book.networks):
        table = book.networks[name].to_toml_table()
        deployment = table.pop("deployment", None)
        lines += ["", f"[networks.{name}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
        if deployment:
            lines += ["", f"[networks.{name}.deployment]"]
            lines += [f"{k} = {_toml_value(deployment[k])}" for k in DEPLOYMENT_KEYS]
    return "\n".join(lines) + "\n"


def selected_network(env: Mapping[str, str] | None = None) -> Network | None:
    """The network chosen by COMPTOIR_NETWORK (or --network), else the file's current one;
    None for the local devnet."""
    env = os.environ if env is None else env
    book = NetworkBook.load(config_dir(env))
    name = env.get("COMPTOIR_NETWORK") or book.current
    if not name or name == DEVNET:
        return None
    return book.get(name)
