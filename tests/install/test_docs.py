"""docs/configuration.md is generated from the settings code and documents every variable."""

from __future__ import annotations

from pathlib import Path

from comptoir import settings_doc

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_configuration_page_is_current() -> None:
    assert PAGE.read_text() == settings_doc.render(), (
        "docs/configuration.md is stale: run 'make docs' and commit it"
    )


def test_every_variable_the_code_reads_is_documented() -> None:
    assert settings_doc.undocumented() == set()
    # the scan does find what the code reads (else the check above would be empty talk)
    read = settings_doc.read_variables()
    assert {"COMPTOIR_NETWORK", "COMPTOIR_WORKER_KEY", "COMPTOIR_SCHEDULER_LEASE"} <= read
    assert "COMPTOIR_TASK_INDEX" not in read  # an app input, not a setting


def test_an_undocumented_variable_is_caught(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text('import os\nX = os.environ.get("COMPTOIR_SECRET_KNOB")\n')
    found = settings_doc.read_variables(tmp_path)
    assert found == {"COMPTOIR_SECRET_KNOB"}
    assert "COMPTOIR_SECRET_KNOB" not in settings_doc.documented()


def test_table_rows_with_shared_prefixes_expand() -> None:
    assert settings_doc._expand("COMPTOIR_WORKER_POLL / _HEARTBEAT") == {
        "COMPTOIR_WORKER_POLL",
        "COMPTOIR_WORKER_HEARTBEAT",
    }
    assert settings_doc._expand("COMPTOIR_RPC_URL / COMPTOIR_DEPLOYMENT") == {
        "COMPTOIR_RPC_URL",
        "COMPTOIR_DEPLOYMENT",
    }
