"""pytest plugin: one real anvil devnet per test session, protocol deployed and funded.

Enabled for the whole suite by ``pytest_plugins = ["comptoir.testing.fixtures"]`` in
tests/conftest.py. Fixtures:

- ``devnet`` (session): a :class:`comptoir.devnet.Devnet` on a free port, in a temporary
  home; stopped at the end of the session.
- ``chain`` (function): the same devnet, rolled back (evm_snapshot / evm_revert) after the
  test, so tests never see each other's transactions.
- ``accounts`` (function): role name -> funded LocalAccount (1 000 000 CPT in the wallet,
  nothing deposited): deployer, requester, app_dev, dataset_owner, scheduler, w1..w4,
  stranger.
- ``clients`` (function): role name -> ChainClient signing as that account.

And a report hook: a test that fails while a :class:`comptoir.stack.Stack` is among its
fixtures gets the last lines of each of the stack's service logs in its report, so a
failure on a CI machine (whose temporary homes are gone) can still be read.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest
from eth_account.signers.local import LocalAccount

from comptoir import devnet as devnet_mod
from comptoir.chain.client import ChainClient
from comptoir.config import load_settings
from comptoir.stack import Stack, log_tail

LOG_TAIL_LINES = 40

ROLES = (
    "deployer",
    "requester",
    "app_dev",
    "dataset_owner",
    "scheduler",
    "w1",
    "w2",
    "w3",
    "w4",
    "stranger",
)


@pytest.fixture(scope="session")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devnet_mod.Devnet]:
    home = tmp_path_factory.mktemp("comptoir-home")
    settings = load_settings({"COMPTOIR_HOME": str(home)})
    net = devnet_mod.up(settings, port=0)
    try:
        yield net
    finally:
        devnet_mod.down(settings)


@pytest.fixture
def chain(devnet: devnet_mod.Devnet) -> Iterator[devnet_mod.Devnet]:
    snap = devnet_mod.snapshot(devnet.w3)
    try:
        yield devnet
    finally:
        devnet_mod.revert(devnet.w3, snap)


@pytest.fixture
def accounts(chain: devnet_mod.Devnet) -> dict[str, LocalAccount]:
    return dict(zip(ROLES, chain.accounts, strict=True))


@pytest.fixture
def clients(chain: devnet_mod.Devnet, accounts: dict[str, LocalAccount]) -> dict[str, ChainClient]:
    return {role: chain.client(account) for role, account in accounts.items()}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        funcargs = getattr(item, "funcargs", {})
        for running in {id(v): v for v in funcargs.values() if isinstance(v, Stack)}.values():
            for service in running.services:
                report.sections.append(
                    (f"{service.name} log (last lines)", log_tail(service, LOG_TAIL_LINES))
                )
    return report
