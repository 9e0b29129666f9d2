"""Shared rich consoles and small printing helpers for command modules."""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    # plain print: scripts parse it, so no rich wrapping or colouring
    print(json.dumps(data, indent=2, default=str))


def key_value_table(rows: list[tuple[str, Any]], title: str | None = None) -> Table:
    table = Table(title=title, show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, str(value))
    return table


def success(message: str) -> None:
    console.print(f"[green]{message}[/green]")


def print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    """A borderless table: one row per record, values already formatted."""
    table = Table(title=title, box=None)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _inert(text: str) -> str:
    """`text` with its control characters (but newlines and tabs) shown escaped: the
    tails are a stranger's bytes, whose escape sequences must not drive the terminal."""
    return "".join(
        ch
        if ch in "\n\t" or unicodedata.category(ch) != "Cc"
        else ch.encode("unicode_escape").decode()
        for ch in text
    )


def print_tails(stdout: str, stderr: str) -> None:
    """The app's stdout/stderr tails, verbatim (no markup, control characters escaped),
    each under its name."""
    for name, text in (("stdout", stdout), ("stderr", stderr)):
        console.print(f"[bold]{name}[/bold] (tail):")
        console.print(_inert(text.rstrip("\n")) or "(empty)", markup=False, highlight=False)
