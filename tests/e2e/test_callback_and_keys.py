"""A requester contract gets its result through the callback; dataset keys go only to
workers a deal's scheduler authorized."""

from __future__ import annotations

import pytest
from eth_utils import keccak

from comptoir.chain.build import artifact
from comptoir.chain.client import Transactor
from comptoir.chain.deploy import deploy_contract
from comptoir.exceptions import KeyReleaseDenied
from comptoir.storage.keys import KeyServiceClient

from .conftest import Pool

CHESS = """
import os
# a (very) small chess oracle: the position arrives in the request params
verdict = b"checkmate" if os.environ["COMPTOIR_ARGS"].endswith("#") else b"playing"
open("/comptoir/out/callback", "wb").write(verdict)
open("/comptoir/out/analysis.txt", "w").write("deep thoughts")
"""


def test_callback_deal_delivers_the_result_to_the_requester_contract(pool: Pool) -> None:
    hub = pool.devnet.deployment.hub
    address, _ = deploy_contract(
        Transactor(pool.devnet.w3, pool.accounts["requester"]), "CallbackReceiver", hub, 0
    )
    receiver = pool.devnet.w3.eth.contract(address, abi=artifact("CallbackReceiver").abi)
    app = pool.register_app({"main.py": CHESS})
    pool.start_scheduler()
    pool.start_worker("w1")
    pool.wait_workers(("w1",))
    deal = pool.deal(app, callback=address, params="Qxf7#")
    pool.wait_settled(deal)
    assert receiver.functions.last_result().call() == b"checkmate"
    assert receiver.functions.last_task().call() == deal.task_id(0)
    view = pool.task(deal)
    assert view is not None and view["digest"] == "0x" + keccak(b"checkmate").hex()


def test_dataset_keys_only_for_authorized_workers(pool: Pool) -> None:
    app = pool.register_app({"main.py": "pass"})
    dataset = pool.register_dataset(b"private rows")
    checksum = pool["stranger"].asset(dataset).checksum.hex()
    deal = pool.deal(app, dataset=dataset)
    worker = pool.accounts["w1"]
    task = deal.task_id(0)
    evidence = {
        "deal": deal.to_json(),
        "index": 0,
        "block": pool["stranger"].block_number(),
        "authorization": "0x" + pool["scheduler"].authorize(worker.address, task).hex(),
    }
    keys = KeyServiceClient(pool.storage.url)
    try:
        assert len(keys.request_key(checksum, worker.key, evidence)) == 32
        # another worker cannot reuse w1's authorization
        with pytest.raises(KeyReleaseDenied):
            keys.request_key(checksum, pool.accounts["w2"].key, evidence)
        # an authorization not signed by the deal's scheduler is worthless
        forged = pool["stranger"].authorize(worker.address, task)
        with pytest.raises(KeyReleaseDenied):
            keys.request_key(checksum, worker.key, {**evidence, "authorization": forged.hex()})
        # the key of another dataset is not reachable through this deal
        other = pool.register_dataset(b"someone else's rows")
        other_checksum = pool["stranger"].asset(other).checksum.hex()
        with pytest.raises(KeyReleaseDenied):
            keys.request_key(other_checksum, worker.key, evidence)
        # a deal without that dataset at the claimed block: refused
        with pytest.raises(KeyReleaseDenied):
            keys.request_key(checksum, worker.key, {**evidence, "block": evidence["block"] - 1})
    finally:
        keys.close()
