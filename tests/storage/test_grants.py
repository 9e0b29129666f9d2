"""Uploads from strangers: a grant the chain backs, per-identity quotas, a global cap.

Real anvil with the protocol, real HTTP (uvicorn), the chain-backed check of the storage
service (`scheduler.keypolicy.chain_upload_check`); the last test runs `storage serve`'s
own process."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from tests.chain.conftest import Market
from tests.chain.conftest import market as market

from comptoir import devnet as devnet_mod
from comptoir.chain.client import ChainClient
from comptoir.chain.types import Deal
from comptoir.exceptions import StorageError
from comptoir.scheduler.keypolicy import chain_upload_check
from comptoir.stack import free_port
from comptoir.storage import LocalBlobStore, StorageClient
from comptoir.storage.grants import (
    GRANT_HEADER,
    MAX_GRANT_TTL_S,
    GrantRefused,
    Network,
    SpentGrants,
    UploadGate,
    asset_purpose,
    sign_grant,
    task_purpose,
)
from comptoir.storage.quota import StorageLimits, UploadLedger
from comptoir.storage.server import create_storage_app

PACKAGE = b"an app package " * 100
DIGEST = hashlib.sha256(PACKAGE).hexdigest()


def network_of(client: ChainClient) -> Network:
    return Network(client.chain_id, client.deployment.hub)


def storage_app(tmp_path: Path, client: ChainClient, limits: StorageLimits | None = None) -> Any:
    gate = UploadGate(network_of(client), chain_upload_check(client), SpentGrants())
    ledger = UploadLedger(limits or StorageLimits(min_free_bytes=0), tmp_path / "uploads.db")
    return create_storage_app(LocalBlobStore(tmp_path / "blobs"), gate=gate, ledger=ledger)


@pytest.fixture
def served(tmp_path: Path, chain: devnet_mod.Devnet, serve: Callable[[Any], Any]) -> Iterator[str]:
    with serve(storage_app(tmp_path, chain.client())) as url:
        yield url


def put(url: str, body: bytes, grant: str | None, expected: str | None = None) -> httpx.Response:
    headers = {GRANT_HEADER: grant} if grant is not None else {}
    params = {"expected": expected or hashlib.sha256(body).hexdigest()}
    return httpx.put(f"{url}/blobs", params=params, content=body, headers=headers, timeout=30)


def uploader(url: str, account: LocalAccount, client: ChainClient) -> StorageClient:
    return StorageClient(url, signer=account, network=network_of(client), retries=0)


# -- assets: the registered owner uploads the package the registry names ----------------


def test_asset_owner_uploads_its_package_and_nobody_else_can(
    served: str, clients: dict[str, ChainClient], accounts: dict[str, LocalAccount]
) -> None:
    app = clients["app_dev"].register_app("pkg", "http://x", bytes.fromhex(DIGEST))
    net = network_of(clients["app_dev"])
    # no grant at all: refused before a byte is stored
    refused = put(served, PACKAGE, None)
    assert refused.status_code == 401 and "upload grant" in refused.json()["detail"]
    assert httpx.head(f"{served}/blobs/{DIGEST}").status_code == 404
    # the owner's grant for the asset: stored
    with uploader(served, accounts["app_dev"], clients["app_dev"]) as owner:
        assert owner.upload(PACKAGE, purpose=asset_purpose(app)) == DIGEST
    assert httpx.get(f"{served}/blobs/{DIGEST}").content == PACKAGE
    # a stranger's grant for the same asset: not its owner
    other = b"not the package"
    app2 = clients["app_dev"].register_app("pkg2", "http://x", hashlib.sha256(other).digest())
    grant = sign_grant(
        accounts["stranger"], hashlib.sha256(other).hexdigest(), 15, net, f"asset:{app2}"
    )
    response = put(served, other, grant)
    assert response.status_code == 403 and "owner" in response.json()["detail"]
    # the owner, but a blob the registry does not name for that asset
    grant = sign_grant(
        accounts["app_dev"], hashlib.sha256(other).hexdigest(), 15, net, f"asset:{app}"
    )
    response = put(served, other, grant)
    assert response.status_code == 403 and "checksum" in response.json()["detail"]
    # an asset that does not exist
    grant = sign_grant(accounts["app_dev"], DIGEST, len(PACKAGE), net, "asset:999999")
    assert put(served, PACKAGE, grant).status_code == 403


def test_forged_expired_replayed_and_foreign_grants_are_refused(
    served: str, clients: dict[str, ChainClient], accounts: dict[str, LocalAccount]
) -> None:
    body = b"forged or not"
    digest = hashlib.sha256(body).hexdigest()
    app = clients["app_dev"].register_app("f", "http://x", bytes.fromhex(digest))
    net, purpose = network_of(clients["app_dev"]), asset_purpose(app)
    owner = accounts["app_dev"]

    def refused(grant: str, status: int, words: str, data: bytes = body) -> None:
        response = put(served, data, grant, digest)
        assert response.status_code == status, response.text
        assert words in response.json()["detail"]

    # signed by a stranger while naming the owner as its uploader
    doc = json.loads(
        base64.urlsafe_b64decode(sign_grant(accounts["stranger"], digest, 13, net, purpose))
    )
    doc["uploader"] = owner.address
    refused(base64.urlsafe_b64encode(json.dumps(doc).encode()).decode(), 401, "not signed")
    # the owner's grant, with a size changed after signing
    doc = json.loads(base64.urlsafe_b64decode(sign_grant(owner, digest, 13, net, purpose)))
    doc["size"] = 10**9
    refused(base64.urlsafe_b64encode(json.dumps(doc).encode()).decode(), 401, "not signed")
    refused(sign_grant(owner, digest, 13, net, purpose, now=time.time() - 400), 401, "expired")
    refused(sign_grant(owner, digest, 13, net, purpose, ttl_s=MAX_GRANT_TTL_S * 10), 401, "at most")
    refused(
        sign_grant(owner, digest, 13, Network(net.chain_id + 1, net.hub), purpose),
        403,
        "another network",
    )
    refused(
        sign_grant(owner, digest, 13, Network(net.chain_id, "0x" + "11" * 20), purpose),
        403,
        "another network",
    )
    # a grant is for one body: a longer one is cut, a different one does not hash right
    refused(sign_grant(owner, digest, 5, net, purpose), 413, "at most 5 bytes")
    # garbage
    refused("!!not base64!!", 400, "base64url")
    refused(base64.urlsafe_b64encode(b"[1,2]").decode(), 400, "object")
    refused("A" * 9000, 400, "larger than")
    # a grant for a blob is presented with that blob's digest as 'expected'
    grant = sign_grant(owner, digest, len(body), net, purpose)
    missing = httpx.put(f"{served}/blobs", content=body, headers={GRANT_HEADER: grant})
    assert missing.status_code == 400 and "expected" in missing.json()["detail"]
    other = put(served, b"other", grant)  # with another blob's digest
    assert other.status_code == 400 and "expected" in other.json()["detail"]
    # malformed purposes and nonces
    for field, value in (("for", "task:0x12"), ("for", "asset:-1"), ("nonce", "zz"), ("size", -1)):
        doc = json.loads(base64.urlsafe_b64decode(grant))
        doc[field] = value
        refused(base64.urlsafe_b64encode(json.dumps(doc).encode()).decode(), 400, "grant")
    # the genuine grant works once; its replay is refused
    grant = sign_grant(owner, digest, len(body), net, purpose)
    assert put(served, body, grant).status_code == 201
    refused(grant, 409, "used already")


# -- results: the worker its deal's scheduler authorized for the task -------------------


def evidence_for(market: Market, worker: str, index: int = 0) -> tuple[bytes, dict[str, Any]]:
    deal = market.deal(volume=2)
    block = market["scheduler"].block_number()
    task = deal.task_id(index)
    authorization = market["scheduler"].authorize(worker, task)
    evidence = {
        "deal": deal.to_json(),
        "index": index,
        "block": block,
        "authorization": "0x" + authorization.hex(),
    }
    return task, evidence


def test_worker_uploads_a_result_for_its_authorized_task_only(
    served: str, market: Market, accounts: dict[str, LocalAccount]
) -> None:
    w1 = accounts["w1"]
    task, evidence = evidence_for(market, w1.address)
    with uploader(served, w1, market["w1"]) as worker:
        assert worker.upload(b"result one", purpose=task_purpose(task), evidence=evidence)
    net = network_of(market["w1"])
    # another worker presenting w1's authorization
    body = b"result two"
    digest = hashlib.sha256(body).hexdigest()
    grant = sign_grant(accounts["w2"], digest, len(body), net, task_purpose(task), evidence)
    response = put(served, body, grant)
    assert response.status_code == 403 and "authorization" in response.json()["detail"]
    # w1's evidence for task 0 used for task 1 of the same deal
    task1 = Deal.from_json(evidence["deal"]).task_id(1)
    grant = sign_grant(w1, digest, len(body), net, task_purpose(task1), evidence)
    assert put(served, body, grant).status_code == 403
    # an authorization signed by someone other than the deal's scheduler
    forged = dict(evidence)
    forged["authorization"] = "0x" + market["stranger"].authorize(w1.address, task).hex()
    grant = sign_grant(w1, digest, len(body), net, task_purpose(task), forged)
    assert put(served, body, grant).status_code == 403
    # evidence that is not a deal at all
    grant = sign_grant(w1, digest, len(body), net, task_purpose(task), {"deal": "x"})
    assert put(served, body, grant).status_code == 403


# -- quotas and the global cap ---------------------------------------------------------


def test_quota_per_identity_and_global_cap(
    tmp_path: Path,
    serve: Callable[[Any], Any],
    clients: dict[str, ChainClient],
    accounts: dict[str, LocalAccount],
) -> None:
    owner = clients["app_dev"]
    bodies = [bytes([i]) * 1000 for i in range(4)]
    apps = [
        owner.register_app(f"q{i}", "x", hashlib.sha256(b).digest()) for i, b in enumerate(bodies)
    ]
    limits = StorageLimits(quota_bytes=2500, quota_blobs=100, min_free_bytes=0)
    with serve(storage_app(tmp_path, owner, limits)) as url:
        with uploader(url, accounts["app_dev"], owner) as c:
            c.upload(bodies[0], purpose=asset_purpose(apps[0]))
            c.upload(bodies[1], purpose=asset_purpose(apps[1]))
            with pytest.raises(StorageError, match=r"413.*upload quota"):
                c.upload(bodies[2], purpose=asset_purpose(apps[2]))
            # a blob already stored costs nothing: the full quota does not refuse it
            assert c.upload(bodies[0], purpose=asset_purpose(apps[0]))
        assert httpx.head(f"{url}/blobs/{hashlib.sha256(bodies[2]).hexdigest()}").status_code == 404
    # the global cap: 507, whoever asks
    limits = StorageLimits(max_total_bytes=1500, min_free_bytes=0)
    with (
        serve(storage_app(tmp_path / "g", owner, limits)) as url,
        uploader(url, accounts["app_dev"], owner) as c,
    ):
        c.upload(bodies[0], purpose=asset_purpose(apps[0]))
        with pytest.raises(StorageError, match=r"507.*full"):
            c.upload(bodies[1], purpose=asset_purpose(apps[1]))
    # the disk's free space: 507 when an upload would leave less than the reserve
    limits = StorageLimits(min_free_bytes=1 << 62)
    gate = UploadGate(network_of(owner), chain_upload_check(owner), SpentGrants())
    app = create_storage_app(
        LocalBlobStore(tmp_path / "d"),
        gate=gate,
        ledger=UploadLedger(limits, tmp_path / "d.db", disk=tmp_path),
    )
    with (
        serve(app) as url,
        uploader(url, accounts["app_dev"], owner) as c,
        pytest.raises(StorageError, match=r"507.*disk is full"),
    ):
        c.upload(bodies[3], purpose=asset_purpose(apps[3]))


def test_ledger_holds_uploads_in_flight_and_survives_a_restart(tmp_path: Path) -> None:
    limits = StorageLimits(quota_bytes=1000, min_free_bytes=0)
    ledger = UploadLedger(limits, tmp_path / "u.db")
    with ledger.reserve(["0xA"], "a" * 64, 600):
        # a second upload while the first streams cannot take the same room
        with pytest.raises(GrantRefused, match="quota"), ledger.reserve(["0xa"], "b" * 64, 600):
            pass
        with ledger.reserve(["0xB"], "c" * 64, 600):  # another identity can
            pass
    # a failed upload charges nothing
    with pytest.raises(RuntimeError), ledger.reserve(["0xc"], "d" * 64, 900):
        raise RuntimeError("cut")
    with ledger.reserve(["0xc"], "d" * 64, 900):
        pass
    again = UploadLedger(limits, tmp_path / "u.db")  # what was stored is remembered
    assert again.total_bytes == 600 + 600 + 900
    with pytest.raises(GrantRefused), again.reserve(["0xa"], "e" * 64, 600):
        pass


# -- the service's own process --------------------------------------------------------


def test_storage_serve_process_requires_grants(
    tmp_path: Path,
    chain: devnet_mod.Devnet,
    clients: dict[str, ChainClient],
    accounts: dict[str, LocalAccount],
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "COMPTOIR_HOME": str(tmp_path / "home"),
        "COMPTOIR_RPC_URL": chain.rpc_url,
        "COMPTOIR_DEPLOYMENT": str(chain.settings.devnet_dir / "deployment.json"),
        "COMPTOIR_STORAGE_MIN_FREE_BYTES": "0",
        "COMPTOIR_STORAGE_QUOTA_BLOBS": "1",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "comptoir.stack",
            "storage",
            "--root",
            str(tmp_path / "s"),
            "--port",
            str(port),
        ],
        env=env,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
            time.sleep(0.2)
        assert put(url, PACKAGE, None).status_code == 401
        one, two = b"first package", b"second package"
        a1 = clients["app_dev"].register_app("p1", "x", hashlib.sha256(one).digest())
        a2 = clients["app_dev"].register_app("p2", "x", hashlib.sha256(two).digest())
        with uploader(url, accounts["app_dev"], clients["app_dev"]) as c:
            assert c.upload(one, purpose=asset_purpose(a1)) == hashlib.sha256(one).hexdigest()
            with pytest.raises(StorageError, match="quota"):  # COMPTOIR_STORAGE_QUOTA_BLOBS=1
                c.upload(two, purpose=asset_purpose(a2))
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_replayed_grant_costs_no_chain_read(
    tmp_path: Path,
    serve: Callable[[Any], Any],
    clients: dict[str, ChainClient],
    accounts: dict[str, LocalAccount],
) -> None:
    owner = clients["app_dev"]
    body = b"read once"
    app = owner.register_app("once", "x", hashlib.sha256(body).digest())
    check = chain_upload_check(owner)
    calls: list[str] = []

    async def counted(grant: Any) -> list[str]:
        calls.append(grant.purpose)
        return await check(grant)

    gate = UploadGate(network_of(owner), counted, SpentGrants())
    ledger = UploadLedger(StorageLimits(min_free_bytes=0), tmp_path / "u.db")
    grant = sign_grant(
        accounts["app_dev"],
        hashlib.sha256(body).hexdigest(),
        len(body),
        network_of(owner),
        asset_purpose(app),
    )
    with serve(create_storage_app(LocalBlobStore(tmp_path / "b"), gate=gate, ledger=ledger)) as url:
        assert put(url, body, grant).status_code == 201
        for _ in range(5):
            assert put(url, body, grant).status_code == 409
    assert calls == [asset_purpose(app)]
