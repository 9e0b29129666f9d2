"""One real local stack (anvil, storage + keys, market, a pool's scheduler, 3 workers and
the sample app) for the SDK tests of this package, in a temporary home."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from comptoir import stack
from comptoir.config import Settings, load_settings
from comptoir.sdk import Config


@pytest.fixture(scope="package")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.Stack]:
    home = tmp_path_factory.mktemp("sdk-stack")
    settings = load_settings({"COMPTOIR_HOME": str(home), "COMPTOIR_DEVNET_PORT": "0"})
    with stack.running(settings, workers=3) as running:
        yield running


@pytest.fixture
def settings(local_stack: stack.Stack) -> Settings:
    return local_stack.settings


@pytest.fixture
def config(local_stack: stack.Stack) -> Config:
    # the stack's record only: the test runner's environment must not redirect the SDK
    return Config.load(local_stack.settings, env={})
