"""Many hosts on one machine: network namespaces on one private bridge, each party with its
own address and home, nothing shared but the network. Chain; market; storage; an app
developer; two pools, each with workers on hosts of their own; a requester. A bag of tasks
on each pool completes, verified, every party configured by network name only."""

from __future__ import annotations

import os

import pytest

from .hosts import Lan, Parties, Pool, run_network, wait_rpc
from .support import failure

pytestmark = pytest.mark.devnet


def test_two_pools_on_many_hosts(lan: Lan) -> None:
    anvil = os.environ.get("COMPTOIR_ANVIL")
    if not anvil:
        pytest.skip("COMPTOIR_ANVIL is not set (make test sets it)")
    chain = lan.host("chain")
    chain.spawn("anvil", [anvil, "--host", chain.address, "--port", "8545", "--silent"])
    chain_url = f"http://{chain.address}:8545"
    wait_rpc(chain_url)
    parties = Parties(
        chain_url=chain_url,
        operator=chain,
        market=lan.host("market"),
        storage=lan.host("storage"),
        developer=lan.host("developer"),
        requester=lan.host("requester"),
        pools=[
            Pool(owner=4, workers=[5, 6]),
            Pool(owner=3, workers=[7]),
        ],
    )
    for n, pool in enumerate(parties.pools):
        pool.host = lan.host(f"pool-{n}")
        pool.worker_hosts = [lan.host(f"worker-{i}") for i in pool.workers]
    assert len({h.address for h in lan.hosts}) == len(lan.hosts) == 10
    assert len({h.home for h in lan.hosts}) == 10

    outputs = run_network(parties, volume=3)
    for pool in parties.pools:
        assert "3/3 task(s) verified against the chain" in outputs[pool.id], outputs[pool.id]
        # its workers, on their own hosts, did it: the scheduler lists them with work done
        assert pool.host is not None
        status = pool.host.json("pool", "status", str(pool.id))
        assert status["workers_online"] == len(pool.workers), status

    # a host that only knows loopback addresses reaches nothing of the network
    stranger = lan.host("stranger")
    lost = stranger.cli("--rpc-url", "http://127.0.0.1:8545", "account", "show", "-w", "devnet:1")
    assert "127.0.0.1:8545" in failure(lost)
