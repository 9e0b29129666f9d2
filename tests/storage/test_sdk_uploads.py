"""The SDK against a storage service that takes packages only from their registered owner:
register first, then upload; a failed upload says what to run, and that works.

Real anvil with the protocol, a gated storage service with the chain-backed key service
(uvicorn, real HTTP), the SDK as a user runs it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from comptoir import devnet as devnet_mod
from comptoir.exceptions import StorageError
from comptoir.scheduler.keypolicy import chain_deal_check, chain_upload_check
from comptoir.sdk import ComptoirSync, Config, build_app, init_app
from comptoir.stack import dataset_owner_resolver
from comptoir.storage import LocalBlobStore
from comptoir.storage.grants import Network, SpentGrants, UploadGate
from comptoir.storage.keys import KeyVault, NonceBook, SignedNoncePolicy, create_key_router
from comptoir.storage.quota import StorageLimits, UploadLedger
from comptoir.storage.server import create_storage_app


@pytest.fixture
def storage(
    tmp_path: Path, chain: devnet_mod.Devnet, serve: Callable[[Any], Any]
) -> Iterator[tuple[str, UploadLedger]]:
    client = chain.client()
    gate = UploadGate(
        Network(client.chain_id, client.deployment.hub), chain_upload_check(client), SpentGrants()
    )
    # no room at first: every upload is refused until the test gives some
    ledger = UploadLedger(StorageLimits(quota_bytes=0, min_free_bytes=0), tmp_path / "u.db")
    app = create_storage_app(LocalBlobStore(tmp_path / "blobs"), gate=gate, ledger=ledger)
    policy = SignedNoncePolicy(NonceBook(), chain_deal_check(client))
    owner_of = dataset_owner_resolver(client, scan_every_s=0)
    app.include_router(
        create_key_router(KeyVault(), policy, nonces=policy.nonces, owner_of=owner_of)
    )
    with serve(app) as url:
        yield url, ledger


def test_a_refused_upload_names_the_command_that_completes_the_deploy(
    tmp_path: Path,
    chain: devnet_mod.Devnet,
    accounts: dict[str, LocalAccount],
    storage: tuple[str, UploadLedger],
) -> None:
    url, ledger = storage
    config = Config(chain.settings, storage_url=url)
    source = init_app(tmp_path / "app", "quota-app")
    with ComptoirSync(config, accounts["app_dev"]) as dev:
        with pytest.raises(StorageError) as refused:
            dev.deploy_app(source)
        message = str(refused.value)
        assert "is registered but storage did not take its package" in message
        assert "quota" in message and "comptoir app upload" in message
        app = int(message.split()[1])  # "App N is registered ..."
        ledger.limits = StorageLimits(min_free_bytes=0)  # the operator grants room
        built = build_app(source)
        checksum = dev.upload_package(app, built.path)
        assert checksum == hashlib.sha256(built.path.read_bytes()).hexdigest()
        assert httpx.get(f"{url}/blobs/{checksum}").content == built.path.read_bytes()
        # another wallet cannot upload for that app
        with (
            ComptoirSync(config, accounts["stranger"]) as stranger,
            pytest.raises(StorageError, match="owner"),
        ):
            stranger.upload_package(app, built.path)


def test_a_dataset_whose_upload_failed_keeps_its_ciphertext_and_key_for_the_retry(
    tmp_path: Path,
    chain: devnet_mod.Devnet,
    accounts: dict[str, LocalAccount],
    storage: tuple[str, UploadLedger],
) -> None:
    url, ledger = storage
    config = Config(chain.settings, storage_url=url)
    data = tmp_path / "rows.csv"
    data.write_text("a,b\n1,2\n")
    with ComptoirSync(config, accounts["dataset_owner"]) as owner:
        with pytest.raises(StorageError, match="comptoir dataset upload") as refused:
            owner.deploy_dataset(data)
        words = str(refused.value).split()
        dataset, kept = int(words[1]), Path(words[-1].rstrip("'.").strip("'"))
        assert kept.is_file() and kept.suffix == ".blob"
        ledger.limits = StorageLimits(min_free_bytes=0)
        checksum = owner.upload_package(dataset, kept)
        assert checksum == kept.stem
        assert httpx.head(f"{url}/blobs/{checksum}").status_code == 200
