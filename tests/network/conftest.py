"""Bare anvil nodes (nothing deployed) and a private network of hosts (namespaces)."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from comptoir import stack
from comptoir.config import load_settings
from comptoir.devnet import ANVIL_MNEMONIC

from .hosts import Lan, NoNamespaces


def _start(args: list[str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    anvil = os.environ.get("COMPTOIR_ANVIL")
    if not anvil:
        pytest.skip("COMPTOIR_ANVIL is not set (make test sets it)")
    fh = open(log, "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [anvil, "--port", "0", "--mnemonic", ANVIL_MNEMONIC, *args], stdout=fh, stderr=fh
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = re.search(rb"Listening on 127\.0\.0\.1:(\d+)", log.read_bytes())
        if match:
            return proc, f"http://127.0.0.1:{int(match.group(1))}"
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"anvil did not start: {log.read_text()[-500:]}")


@pytest.fixture
def bare_anvil(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start anvil nodes with extra arguments (e.g. '--hardfork', 'shanghai'); URL returned."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> str:
        proc, url = _start(list(args), tmp_path / f"anvil-{len(procs)}.log")
        procs.append(proc)
        return url

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def pool_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.Stack]:
    """The pool manager's host: chain, storage, market, a pool's scheduler, one worker."""
    if not os.environ.get("COMPTOIR_ANVIL"):
        pytest.skip("COMPTOIR_ANVIL is not set (make test sets it)")
    home = tmp_path_factory.mktemp("pool-host")
    settings = load_settings({"COMPTOIR_HOME": str(home), "COMPTOIR_DEVNET_PORT": "0"})
    with stack.running(settings, workers=1) as running:
        yield running


@pytest.fixture
def lan(tmp_path: Path) -> Iterator[Lan]:
    """Hosts as network namespaces on one private bridge, removed however the test ends."""
    try:
        with Lan(tmp_path) as network:
            yield network
    except NoNamespaces as exc:
        pytest.skip(f"network namespaces need root and iproute2 ('ip netns add' failed: {exc})")
