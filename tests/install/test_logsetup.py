"""The log line of the long-running processes (comptoir.logsetup): ConsoleRenderer's
layout, values that cannot forge a field or a line, tracebacks kept."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator

import pytest
import structlog

from comptoir.logsetup import LineRenderer, configure_logging

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z \[(\w+) *\] (\S+) +(.*)$")


@pytest.fixture
def stderr(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], str]]:
    """What the test wrote to stderr (configure_logging binds the sys.stderr of its call)."""
    yield lambda: capsys.readouterr().err
    structlog.reset_defaults()


def test_a_line_has_the_time_level_event_and_sorted_fields(stderr: Callable[[], str]) -> None:
    configure_logging()
    structlog.get_logger("t").info("assignment.new", worker="0xAb", id=7, task=None, ok=True)
    line = stderr()
    assert line.endswith("\n") and line.count("\n") == 1
    found = LINE.match(line.rstrip("\n"))
    assert found is not None, line
    assert found.groups() == ("info", "assignment.new", "id=7 ok=True task=None worker=0xAb")


def test_below_the_level_nothing_is_written(stderr: Callable[[], str]) -> None:
    configure_logging()
    structlog.get_logger("t").debug("noise", n=1)
    structlog.get_logger("t").warning("loud", n=1)
    assert [LINE.match(x).group(1) for x in stderr().splitlines()] == ["warning"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "hostile",
    ["a b=c", "x\n2026-01-01T00:00:00.000000Z [error] forged", 'q"', "", "\x1b[2K\r", "é" * 3000],
)
def test_a_value_cannot_forge_a_field_or_a_line(hostile: str) -> None:
    line = LineRenderer()(None, "info", {"event": "worker.not_dispatched", "reason": hostile})
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and line.isascii()
    fields = LINE.match(line).group(3)  # type: ignore[union-attr]
    assert fields.startswith("reason=") and json.loads(fields.removeprefix("reason=")) == hostile


def test_an_exception_keeps_its_traceback_after_the_line(stderr: Callable[[], str]) -> None:
    configure_logging()
    try:
        raise ValueError("boom")
    except ValueError:
        structlog.get_logger("t").exception("assignment.internal_error", id=3)
    first, *rest = stderr().splitlines()
    assert LINE.match(first).groups()[:2] == ("error", "assignment.internal_error")  # type: ignore[union-attr]
    assert rest[0].startswith("Traceback") and rest[-1] == "ValueError: boom"


def test_json_lines_for_collectors(stderr: Callable[[], str]) -> None:
    configure_logging(json_logs=True)
    structlog.get_logger("t").info("assignment.revealed", id=9)
    record = json.loads(stderr())
    assert (record["event"], record["level"], record["id"]) == ("assignment.revealed", "info", 9)
    assert record["timestamp"].endswith("Z")
