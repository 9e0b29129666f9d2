"""Joining and deploying networks: the SDK half of 'comptoir network' and 'comptoir protocol'.

A network is joined by its RPC URL and, when the protocol already runs there, its hub's
address: the rest of the deployment record is read from the chain. Deploying writes the
record into the network's entry, so every later command finds it by the network's name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from comptoir.chain.build import DEFAULT_EVM_VERSION
from comptoir.chain.client import connect
from comptoir.chain.deploy import (
    DEFAULT_CATEGORIES,
    DEVNET_CATEGORIES,
    Deployment,
    DeployPlan,
    deploy_protocol,
    discover_deployment,
    plan_deployment,
)
from comptoir.config import load_settings
from comptoir.exceptions import ChainUnreachable, ConfigError, NotDeployed
from comptoir.network import DEVNET, Network, NetworkBook, config_dir

Notify = Callable[[str], None]


def network_book(env: Mapping[str, str] | None = None) -> NetworkBook:
    return NetworkBook.load(config_dir(env))


def add_network(
    name: str,
    rpc_url: str,
    *,
    hub: str | None = None,
    from_block: int | None = None,
    market_url: str | None = None,
    storage_url: str | None = None,
    confirmations: int = 0,
    log_range: int = 10_000,
    replace: bool = False,
    timeout: float = 10.0,
    env: Mapping[str, str] | None = None,
) -> Network:
    """Record a network after checking its node answers (and, with `hub`, that the protocol
    runs there: its whole deployment record is read from the chain)."""
    book = network_book(env)
    network = Network(
        name=name,
        rpc_url=rpc_url.rstrip("/"),
        market_url=market_url.rstrip("/") if market_url else None,
        storage_url=storage_url.rstrip("/") if storage_url else None,
        confirmations=confirmations,
        log_range=log_range,
    )
    if name in book.networks and not replace:
        book.add(network)  # raises the clear "exists already" error
    try:
        w3 = connect(network.rpc_url, timeout)
    except ChainUnreachable:
        raise ChainUnreachable(network.rpc_url) from None
    network = network.with_(chain_id=int(w3.eth.chain_id))
    if hub is not None:
        deployment = discover_deployment(w3, hub, from_block)
        network = network.with_(deployment=deployment.to_json())
    book.add(network, replace_existing=replace)
    book.save()
    return network


def use_network(name: str, env: Mapping[str, str] | None = None) -> str:
    book = network_book(env)
    book.use(name)
    book.save()
    return name


def remove_network(name: str, env: Mapping[str, str] | None = None) -> None:
    book = network_book(env)
    book.remove(name)
    book.save()


@dataclass(frozen=True)
class DeployResult:
    network: Network
    deployment: Deployment
    plan: DeployPlan


def deploy_to_network(
    name: str,
    account: LocalAccount,
    *,
    evm_version: str | None = None,
    test_category: bool = False,
    force: bool = False,
    notify: Notify | None = None,
    env: Mapping[str, str] | None = None,
) -> DeployResult:
    """Pre-check, then deploy the protocol on network `name` and record where it lives."""
    say = notify or (lambda _m: None)
    if name == DEVNET:
        raise ConfigError("The devnet deploys itself: run 'comptoir devnet up'.")
    book = network_book(env)
    network = book.get(name)
    settings = load_settings(env)
    w3 = connect(network.rpc_url, settings.rpc_timeout)
    chain_id = int(w3.eth.chain_id)
    if network.chain_id is not None and network.chain_id != chain_id:
        raise ConfigError(
            f"Network {name!r} was recorded as chain {network.chain_id} but {network.rpc_url} "
            f"serves chain {chain_id}; re-add it with --replace if that is intended."
        )
    if network.deployment is not None and not force:
        existing = Deployment.from_json(network.deployment)
        try:
            existing.verify(w3)
        except NotDeployed:
            pass  # recorded but gone (a reset test chain): deploy afresh
        else:
            raise ConfigError(
                f"The protocol already runs on {name!r} (hub {existing.hub}); pass --force to "
                "deploy a second, separate copy."
            )
    evm = evm_version or network.evm_version or DEFAULT_EVM_VERSION
    say(f"Pre-checking chain {chain_id} for an {evm} deployment...")
    plan = plan_deployment(w3, account, evm)
    say(f"Deploying ({plan.gas:,} gas, about {plan.cost / 1e18:.6f} ether)...")
    categories = DEVNET_CATEGORIES if test_category else DEFAULT_CATEGORIES
    deployment = deploy_protocol(w3, account, categories, settings.tx_timeout, evm_version=evm)
    network = network.with_(
        chain_id=chain_id,
        deployment=deployment.to_json(),
        evm_version=None if evm == DEFAULT_EVM_VERSION else evm,
    )
    book.add(network, replace_existing=True)
    book.save()
    return DeployResult(network, deployment, plan)
