"""Compile the Vyper contracts into cached JSON artifacts.

Artifacts live in ``build/contracts/<key>/`` under the project root (or
``$COMPTOIR_BUILD_DIR``), where ``key`` is the sha256 of every ``.vy``/``.vyi`` source,
the vyper version and the snekmate version: a source change yields a new key, hence a
recompile; an unchanged tree is served from disk without starting the compiler.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

from comptoir.chain.sources import (
    CONTRACTS_DIR,
    DEPLOYABLE,
    SNEKMATE_ROOT,
    TESTING_DIR,
    search_paths,
    source_path,
)
from comptoir.exceptions import BuildError

EIP170_LIMIT = 24576


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
        return self.runtime_size < EIP170_LIMIT

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


def vyper_executable() -> str:
    # the compiler that belongs to this interpreter's environment, not whatever is on PATH
    candidate = Path(sys.executable).parent / "vyper"
    return str(candidate) if candidate.exists() else "vyper"


def source_key(contracts_dir: Path = CONTRACTS_DIR) -> str:
    """sha256 over every Vyper source (path and bytes) plus compiler and library versions."""
    h = hashlib.sha256()
    for path in sorted(p for p in contracts_dir.rglob("*") if p.suffix in (".vy", ".vyi")):
        h.update(path.relative_to(contracts_dir).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    h.update(f"vyper={version('vyper')};snekmate={version('snekmate')}".encode())
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


def compile_contract(name: str) -> Artifact:
    """Run the vyper CLI on one contract (uncached)."""
    path = source_path(name)
    if not path.exists():
        raise BuildError(f"No contract named {name!r} under {CONTRACTS_DIR}.")
    cmd = [vyper_executable(), "-f", "abi,bytecode,bytecode_runtime"]
    for p in search_paths():
        cmd += ["-p", p]
    cmd.append(str(path))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
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


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    # parallel test workers may build at once: never expose a half-written artifact
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def build_all(force: bool = False) -> dict[str, Artifact]:
    """Every contract's artifact, compiling (in parallel) only what the cache lacks."""
    key = source_key()
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
            for artifact in pool.map(compile_contract, missing):
                _write_atomic(folder / f"{artifact.name}.json", {**artifact.to_json(), "key": key})
                out[artifact.name] = artifact
    return {name: out[name] for name in names}


@cache
def _cached(key: str) -> dict[str, Artifact]:
    return build_all()


def artifacts() -> dict[str, Artifact]:
    """Artifacts for the current sources, memoized per process (keyed by source hash)."""
    return _cached(source_key())


def artifact(name: str) -> Artifact:
    try:
        return artifacts()[name]
    except KeyError:
        raise BuildError(f"No contract named {name!r}; known: {', '.join(artifacts())}.") from None


def size_report() -> list[tuple[str, int, bool]]:
    """(name, runtime bytes, fits EIP-170) for every deployable contract."""
    arts = artifacts()
    return [(n, arts[n].runtime_size, arts[n].fits_eip170) for n in DEPLOYABLE]


def main() -> None:
    """python -m comptoir.chain.build: compile (if needed) and print the EIP-170 report."""
    for name, size, fits in size_report():
        status = "ok" if fits else "TOO LARGE"
        print(f"{name:<15} {size:>6} bytes  {size * 100 / EIP170_LIMIT:5.1f}% of EIP-170  {status}")


if __name__ == "__main__":
    main()


__all__ = [
    "EIP170_LIMIT",
    "SNEKMATE_ROOT",
    "Artifact",
    "BuildError",
    "artifact",
    "artifacts",
    "build_all",
    "build_dir",
    "compile_contract",
    "contract_names",
    "size_report",
    "source_key",
]
