"""Compiled contracts: the committed artifacts, and the compiler that rebuilds them.

The artifacts (ABI, init code, runtime code) of every contract are committed under
``src/comptoir/contracts/artifacts/`` and shipped in the wheel, with a ``manifest.json``
naming the sources' key and the EVM version they target: an installed Comptoir deploys
and talks to the contracts without the Vyper compiler (an extra: ``comptoir[dev]``).

``key`` is the sha256 of every ``.vy``/``.vyi`` source, the EVM version and the vyper and
snekmate versions. Where the compiler is installed and the sources no longer match the
committed key (a contract being edited), the artifacts are compiled and cached in
``build/contracts/<key>/`` (or ``$COMPTOIR_BUILD_DIR``); ``make artifacts`` rewrites the
committed ones and ``tests/packaging/test_artifacts.py`` fails while they are stale.

``--evm-version`` builds for an older chain (``shanghai`` has no MCOPY or transient
storage, ``paris`` no PUSH0 either), into the cache only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from comptoir.chain.sources import (
    ARTIFACTS_DIR,
    CONTRACTS_DIR,
    DEPLOYABLE,
    TESTING_DIR,
    search_paths,
    source_path,
)
from comptoir.exceptions import BuildError

EIP170_LIMIT = 24576
# Oldest first; the default is the newest, whose MCOPY makes the hub fit EIP-170.
EVM_VERSIONS = ("paris", "shanghai", "cancun")
DEFAULT_EVM_VERSION = "cancun"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes  # init code
    runtime: bytes  # deployed code without immutables (those are appended at deploy time)

    @property
    def runtime_size(self) -> int:
        return len(self.runtime)

    @property
    def fits_eip170(self) -> bool:
        return self.runtime_size <= EIP170_LIMIT

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "abi": self.abi,
            "bytecode": "0x" + self.bytecode.hex(),
            "runtime": "0x" + self.runtime.hex(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Artifact:
        return cls(
            name=data["name"],
            abi=data["abi"],
            bytecode=bytes.fromhex(data["bytecode"].removeprefix("0x")),
            runtime=bytes.fromhex(data["runtime"].removeprefix("0x")),
        )


def contract_names() -> list[str]:
    """Deployable contracts first (deployment order), then the testing ones."""
    testing = sorted(p.stem for p in TESTING_DIR.glob("*.vy")) if TESTING_DIR.is_dir() else []
    return [*DEPLOYABLE, *testing]


def compiler_available() -> bool:
    try:
        version("vyper")
        version("snekmate")
    except PackageNotFoundError:
        return False
    return True


def vyper_executable() -> str:
    # the compiler that belongs to this interpreter's environment, not whatever is on PATH
    candidate = Path(sys.executable).parent / "vyper"
    return str(candidate) if candidate.exists() else "vyper"


def _check_evm(evm_version: str) -> str:
    if evm_version not in EVM_VERSIONS:
        raise BuildError(
            f"Unknown EVM version {evm_version!r}; choose one of {', '.join(EVM_VERSIONS)}."
        )
    return evm_version


def source_key(contracts_dir: Path = CONTRACTS_DIR, evm_version: str = DEFAULT_EVM_VERSION) -> str:
    """sha256 over every Vyper source (path and bytes), the EVM version and the compiler and
    library versions."""
    if not compiler_available():
        raise BuildError("Compiling the contracts needs vyper; install 'comptoir[dev]'.")
    h = hashlib.sha256()
    for path in sorted(p for p in contracts_dir.rglob("*") if p.suffix in (".vy", ".vyi")):
        h.update(path.relative_to(contracts_dir).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    h.update(f"vyper={version('vyper')};snekmate={version('snekmate')}".encode())
    if evm_version != DEFAULT_EVM_VERSION:  # keeps the default's key as it always was
        h.update(f";evm={_check_evm(evm_version)}".encode())
    return h.hexdigest()


def build_dir() -> Path:
    env = os.environ.get("COMPTOIR_BUILD_DIR")
    if env:
        return Path(env) / "contracts"
    root = CONTRACTS_DIR.parents[2]  # src/comptoir/contracts -> project root
    if (root / "pyproject.toml").exists():
        return root / "build" / "contracts"
    # installed as a wheel: no project root to write into
    return Path.home() / ".cache" / "comptoir" / "contracts"


def compile_contract(name: str, evm_version: str = DEFAULT_EVM_VERSION) -> Artifact:
    """Run the vyper CLI on one contract (uncached)."""
    path = source_path(name)
    if not path.exists():
        raise BuildError(f"No contract named {name!r} under {CONTRACTS_DIR}.")
    cmd = [vyper_executable(), "-f", "abi,bytecode,bytecode_runtime"]
    cmd += ["--evm-version", _check_evm(evm_version)]
    for p in search_paths():
        cmd += ["-p", p]
    cmd.append(str(path))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise BuildError("The vyper compiler is not installed; install 'comptoir[dev]'.") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BuildError(f"Vyper could not compile {name}: {last}")
    abi_line, bytecode, runtime = proc.stdout.strip().splitlines()[-3:]
    return Artifact(
        name=name,
        abi=json.loads(abi_line),
        bytecode=bytes.fromhex(bytecode.removeprefix("0x")),
        runtime=bytes.fromhex(runtime.removeprefix("0x")),
    )


def _write_atomic(path: Path, data: dict[str, Any], indent: int | None = None) -> None:
    # parallel test workers may build at once: never expose a half-written artifact
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=indent, sort_keys=indent is not None)
        if indent is not None:
            fh.write("\n")
    os.chmod(tmp, 0o644)  # mkstemp makes it private; artifacts are for every reader
    os.replace(tmp, path)


def build_all(force: bool = False, evm_version: str = DEFAULT_EVM_VERSION) -> dict[str, Artifact]:
    """Every contract's artifact, compiling (in parallel) only what the cache lacks."""
    key = source_key(evm_version=evm_version)
    folder = build_dir() / key[:16]
    names = contract_names()
    out: dict[str, Artifact] = {}
    missing: list[str] = []
    for name in names:
        path = folder / f"{name}.json"
        if not force and path.exists():
            data = json.loads(path.read_text())
            if data.get("key") == key:
                out[name] = Artifact.from_json(data)
                continue
        missing.append(name)
    if missing:
        with ThreadPoolExecutor(max_workers=min(len(missing), os.cpu_count() or 2)) as pool:
            for artifact in pool.map(lambda n: compile_contract(n, evm_version), missing):
                _write_atomic(folder / f"{artifact.name}.json", {**artifact.to_json(), "key": key})
                out[artifact.name] = artifact
    return {name: out[name] for name in names}


# ---------------------------------------------------------------- committed artifacts


@dataclass(frozen=True)
class Committed:
    key: str
    evm_version: str
    compiler: str
    artifacts: dict[str, Artifact]


@cache
def committed(folder: Path = ARTIFACTS_DIR) -> Committed | None:
    """The artifacts shipped with the sources (None when the folder has none)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        arts = {
            name: Artifact.from_json(json.loads((folder / f"{name}.json").read_text()))
            for name in manifest["contracts"]
        }
        return Committed(manifest["key"], manifest["evm_version"], manifest["vyper"], arts)
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, KeyError, ValueError) as exc:
        raise BuildError(
            f"The compiled contracts under {folder} are damaged ({exc}); reinstall Comptoir."
        ) from None


def write_artifacts(folder: Path = ARTIFACTS_DIR) -> Committed:
    """Compile (cached) and write the committed artifacts and their manifest."""
    arts = build_all()
    for name, art in arts.items():
        _write_atomic(folder / f"{name}.json", art.to_json(), indent=1)
    manifest = {
        "key": source_key(),
        "evm_version": DEFAULT_EVM_VERSION,
        "vyper": version("vyper"),
        "snekmate": version("snekmate"),
        "contracts": list(arts),
    }
    _write_atomic(folder / MANIFEST, manifest, indent=1)
    committed.cache_clear()
    result = committed(folder)
    assert result is not None
    return result


@cache
def _compiled(key: str, evm_version: str) -> dict[str, Artifact]:
    return build_all(evm_version=evm_version)


def artifacts(evm_version: str = DEFAULT_EVM_VERSION) -> dict[str, Artifact]:
    """Artifacts for the current sources: the committed ones unless the compiler is installed
    and the sources changed since (or another EVM version is asked for)."""
    shipped = committed()
    if (
        shipped is not None
        and shipped.evm_version == evm_version
        and (not compiler_available() or shipped.key == source_key())
    ):
        return shipped.artifacts
    if not compiler_available():
        raise BuildError(
            f"No compiled contracts for EVM version {evm_version!r} are shipped; building "
            "them needs the compiler: install 'comptoir[dev]'."
        )
    return _compiled(source_key(evm_version=evm_version), evm_version)


def artifact(name: str, evm_version: str = DEFAULT_EVM_VERSION) -> Artifact:
    try:
        return artifacts(evm_version)[name]
    except KeyError:
        known = ", ".join(artifacts(evm_version))
        raise BuildError(f"No contract named {name!r}; known: {known}.") from None


def size_report(evm_version: str = DEFAULT_EVM_VERSION) -> list[tuple[str, int, bool]]:
    """(name, runtime bytes, fits EIP-170) for every deployable contract."""
    arts = artifacts(evm_version)
    return [(n, arts[n].runtime_size, arts[n].fits_eip170) for n in DEPLOYABLE]


def main(argv: list[str] | None = None) -> None:
    """python -m comptoir.chain.build: compile (if needed) and print the EIP-170 report."""
    parser = argparse.ArgumentParser(prog="python -m comptoir.chain.build")
    parser.add_argument("--evm-version", default=DEFAULT_EVM_VERSION, choices=EVM_VERSIONS)
    parser.add_argument(
        "--write", action="store_true", help="rewrite the committed artifacts (default EVM)"
    )
    args = parser.parse_args(argv)
    if args.write:
        written = write_artifacts()
        count, key = len(written.artifacts), written.key[:16]
        print(f"wrote {count} artifacts to {ARTIFACTS_DIR} (key {key})")
    for name, size, fits in size_report(args.evm_version):
        status = "ok" if fits else "TOO LARGE"
        print(f"{name:<15} {size:>6} bytes  {size * 100 / EIP170_LIMIT:5.1f}% of EIP-170  {status}")


if __name__ == "__main__":
    main()


__all__ = [
    "DEFAULT_EVM_VERSION",
    "EIP170_LIMIT",
    "EVM_VERSIONS",
    "Artifact",
    "BuildError",
    "artifact",
    "artifacts",
    "build_all",
    "build_dir",
    "committed",
    "compile_contract",
    "compiler_available",
    "contract_names",
    "size_report",
    "source_key",
    "write_artifacts",
]
