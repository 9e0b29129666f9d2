"""A real local stack (anvil, storage, the market serving the explorer, a pool's scheduler,
3 workers, the sample app) and a real browser: Playwright driving Debian's Chromium."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from comptoir import stack
from comptoir.config import load_settings
from comptoir.sdk import Config

CHROMIUM = os.environ.get("COMPTOIR_CHROMIUM", "/usr/bin/chromium")
# screenshots are test artifacts, kept out of git (build/ is ignored)
ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "explorer"
DESKTOP = {"width": 1366, "height": 900}
# generous waits: other suites may load the 2 CPUs while a page waits for its update
WAIT_MS = 120_000
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="package")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.Stack]:
    home = tmp_path_factory.mktemp("explorer-stack")
    settings = load_settings({"COMPTOIR_HOME": str(home), "COMPTOIR_DEVNET_PORT": "0"})
    with stack.running(settings, workers=3) as running:
        yield running


@pytest.fixture
def config(local_stack: stack.Stack) -> Config:
    return Config.load(local_stack.settings, env={})


@pytest.fixture
def explorer_url(local_stack: stack.Stack) -> str:
    return local_stack.urls["explorer"]


@pytest.fixture(scope="module")
def browser(local_stack: stack.Stack) -> Iterator[Any]:
    # after the stack: Playwright's sync API holds an event loop in this thread, so the
    # SDK (which runs its own) is only used before it starts or from another thread; and
    # per module, so the loop is gone before another module's async tests run here
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"no Chromium at {CHROMIUM}: 'make sysdeps' installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # the container has no user namespaces for Chromium's own sandbox
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


class Page:
    """A browser tab that records console errors and uncaught exceptions."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def tab(browser: Any) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(WAIT_MS)
    page = Page(context.new_page())
    yield page
    context.close()
    assert page.errors == [], f"console errors: {page.errors}"


@pytest.fixture
def phone(browser: Any) -> Iterator[Page]:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    context.set_default_timeout(WAIT_MS)
    page = Page(context.new_page())
    yield page
    context.close()
    assert page.errors == [], f"console errors: {page.errors}"
