"""A real local stack (3 workers) for the examples, in a temporary home."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from comptoir import stack
from comptoir.config import load_settings


@pytest.fixture(scope="package")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.Stack]:
    home = tmp_path_factory.mktemp("examples-stack")
    settings = load_settings({"COMPTOIR_HOME": str(home), "COMPTOIR_DEVNET_PORT": "0"})
    with stack.running(settings, workers=3) as running:
        yield running
