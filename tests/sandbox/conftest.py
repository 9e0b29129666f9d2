from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from comptoir.apps import PreparedApp, build_bundle, prepare_app
from comptoir.sandbox import BwrapExecutor
from comptoir.testing.hostile import shell_layer

MakeApp = Callable[..., PreparedApp]


@pytest.fixture(scope="session")
def executor() -> BwrapExecutor:
    return BwrapExecutor()


@pytest.fixture
def make_app(tmp_path: Path) -> MakeApp:
    """A bundle app whose command runs ``code`` with the host's python3."""
    counter = iter(range(1000))

    def make(
        code: str,
        *,
        determinism: str | None = None,
        command: list[str] | None = None,
        files: dict[str, str] | None = None,
    ) -> PreparedApp:
        src = tmp_path / f"src{next(counter)}"
        src.mkdir()
        manifest: dict[str, object] = {
            "name": "test-app",
            "command": command or ["python3", "main.py"],
        }
        if determinism:
            manifest["determinism"] = determinism
        (src / "comptoir.json").write_text(json.dumps(manifest))
        (src / "main.py").write_text(textwrap.dedent(code))
        for name, text in (files or {}).items():
            (src / name).write_text(text)
        return prepare_app("bundle", build_bundle(src), tmp_path / "cache")

    return make


@pytest.fixture(scope="session")
def shell_image_layer(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """An OCI layer with the host's /bin/sh (and libraries), owned by root."""
    return shell_layer(tmp_path_factory.mktemp("shell"))
