"""The committed contract artifacts: current with the sources, reproducible, complete."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from comptoir.chain import build
from comptoir.chain.sources import ARTIFACTS_DIR, CONTRACTS_DIR
from comptoir.exceptions import BuildError


def test_committed_artifacts_match_the_sources() -> None:
    shipped = build.committed()
    assert shipped is not None, f"no artifacts under {ARTIFACTS_DIR}: run 'make artifacts'"
    assert shipped.key == build.source_key(), (
        "the committed contract artifacts are stale: run 'make artifacts' and commit them"
    )
    assert shipped.evm_version == build.DEFAULT_EVM_VERSION
    assert list(shipped.artifacts) == build.contract_names()


def test_committed_artifacts_are_what_the_compiler_produces() -> None:
    # reproducible: compiling the sources gives byte for byte what is committed
    shipped = build.committed()
    assert shipped is not None
    assert build.build_all() == shipped.artifacts


def test_a_changed_source_makes_the_committed_artifacts_stale(tmp_path: Path) -> None:
    copy = tmp_path / "contracts"
    shutil.copytree(CONTRACTS_DIR, copy)
    module = copy / "modules" / "registry.vy"
    module.write_text(module.read_text() + "\n# a comment is a change\n")
    shipped = build.committed()
    assert shipped is not None
    assert build.source_key(copy) != shipped.key
    # the EVM version is part of the key too
    assert build.source_key(evm_version="shanghai") != shipped.key


def test_without_the_compiler_the_committed_artifacts_are_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(build, "compiler_available", lambda: False)
    shipped = build.committed()
    assert shipped is not None
    assert build.artifacts() is shipped.artifacts
    with pytest.raises(BuildError, match=r"comptoir\[dev\]"):
        build.artifacts("shanghai")


def test_damaged_artifacts_fail_with_one_sentence(tmp_path: Path) -> None:
    folder = tmp_path / "artifacts"
    shutil.copytree(ARTIFACTS_DIR, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / f"{manifest['contracts'][0]}.json").write_text("{not json")
    with pytest.raises(BuildError, match="damaged"):
        build.committed(folder)
    assert build.committed(tmp_path / "nothing") is None


def test_shanghai_build_is_pre_cancun_and_the_hub_does_not_fit() -> None:
    # MCOPY (0x5e) is what lets the hub fit EIP-170; built for shanghai it is too large,
    # which the deploy pre-check reports for a pre-Cancun chain.
    sizes = {name: (size, fits) for name, size, fits in build.size_report("shanghai")}
    assert sizes["Registry"][1] and sizes["ComptoirToken"][1] and sizes["Contributions"][1]
    assert not sizes["Hub"][1]
    assert sizes["Hub"][0] > build.artifact("Hub").runtime_size
