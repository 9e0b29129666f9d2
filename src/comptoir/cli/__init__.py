"""The ``comptoir`` command line: one typer app, one module per command group.

Adding a group: create ``comptoir/cli/<group>.py`` defining ``app = typer.Typer(help=...)``
(and optionally ``NAME`` when the command name differs from the module name); it is
picked up automatically. Commands stay thin: parse options, call one SDK function,
print with :mod:`comptoir.cli.output`. Errors: raise :class:`ComptoirError` subclasses;
``main`` prints their one sentence in red and exits 1, never a traceback.
"""

from __future__ import annotations

from comptoir.cli.app import app, main

__all__ = ["app", "main"]
