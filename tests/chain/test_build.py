"""Contract build cache and EIP-170 sizes (compiled and as deployed on anvil)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from comptoir.chain import build
from comptoir.chain.sources import CONTRACTS_DIR, DEPLOYABLE
from comptoir.devnet import Devnet


def test_source_key_follows_the_sources(tmp_path: Path) -> None:
    copy = tmp_path / "contracts"
    shutil.copytree(CONTRACTS_DIR, copy)
    assert build.source_key(copy) == build.source_key(CONTRACTS_DIR)
    module = copy / "modules" / "escrow.vy"
    module.write_text(module.read_text() + "\n# a comment is a change\n")
    assert build.source_key(copy) != build.source_key(CONTRACTS_DIR)


def test_second_build_comes_from_the_cache() -> None:
    first = build.build_all()
    folder = build.build_dir() / build.source_key()[:16]
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.json")}
    assert set(stamps) == {f"{n}.json" for n in build.contract_names()}
    started = time.perf_counter()
    second = build.build_all()
    elapsed = time.perf_counter() - started
    assert second == first
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("*.json")} == stamps
    assert elapsed < 2.0  # no compiler run (one takes several seconds)


def test_every_contract_fits_eip170_when_compiled() -> None:
    for name, size, fits in build.size_report():
        assert fits, f"{name} runtime is {size} bytes"
        assert 0 < size < build.EIP170_LIMIT


def test_every_deployed_contract_fits_eip170_on_anvil(devnet: Devnet) -> None:
    d = devnet.deployment
    addresses = dict(zip(DEPLOYABLE, (d.token, d.registry, d.hub, d.contributions), strict=True))
    for name, address in addresses.items():
        code = devnet.w3.eth.get_code(address)
        # deployed code includes the immutables appended by the constructor
        assert len(code) >= build.artifact(name).runtime_size
        assert len(code) < build.EIP170_LIMIT, f"{name} deploys {len(code)} bytes"
