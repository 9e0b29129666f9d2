"""Root typer app, automatic registration of command groups, and the error boundary."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from comptoir.cli.output import err_console
from comptoir.exceptions import ComptoirError

# modules of this package that are plumbing, not command groups
_NOT_GROUPS = {"app", "output", "context"}

app = typer.Typer(
    name="comptoir",
    help="Comptoir: a decentralized cloud marketplace (requesters, apps, datasets, workerpools).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # main() turns errors into one sentence
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
)


def _print_version(value: bool) -> None:
    if value:
        from comptoir.chain.build import committed

        shipped = committed()
        contracts = f", contracts {shipped.key[:12]} ({shipped.evm_version})" if shipped else ""
        typer.echo(f"comptoir {package_version()}{contracts}")
        raise typer.Exit()


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("comptoir")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


@app.callback()
def _root(
    home: Annotated[
        Path | None, typer.Option(help="State and config folder (default $COMPTOIR_HOME).")
    ] = None,
    rpc_url: Annotated[
        str | None, typer.Option(help="JSON-RPC endpoint (default $COMPTOIR_RPC_URL).")
    ] = None,
    network: Annotated[
        str | None,
        typer.Option(help="Network by name (default $COMPTOIR_NETWORK or 'network use')."),
    ] = None,
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    # global options travel as environment so every module reads one source: load_settings()
    if home is not None:
        os.environ["COMPTOIR_HOME"] = str(home)
    if rpc_url is not None:
        os.environ["COMPTOIR_RPC_URL"] = rpc_url
    if network is not None:
        os.environ["COMPTOIR_NETWORK"] = network


def _register_groups() -> None:
    package = Path(__file__).parent
    for info in sorted(pkgutil.iter_modules([str(package)]), key=lambda i: i.name):
        if info.name.startswith("_") or info.name in _NOT_GROUPS:
            continue
        module = importlib.import_module(f"comptoir.cli.{info.name}")
        group = getattr(module, "app", None)
        if isinstance(group, typer.Typer):
            name = getattr(module, "NAME", info.name.replace("_", "-"))
            app.add_typer(group, name=name)


_register_groups()


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI; errors become one red sentence (one JSON line with --json)
    and exit status 1; Ctrl-C exits 130. See docs/cli.md for every exit status."""
    args = sys.argv[1:] if argv is None else argv
    as_json = "--json" in args
    try:
        app(args=args, prog_name="comptoir")
    except ComptoirError as exc:
        _fail(str(exc), type(exc).__name__, as_json)
    except KeyboardInterrupt:
        _fail("Interrupted.", "Interrupted", as_json, EXIT_INTERRUPTED)
    except Exception as exc:  # a bug: still no traceback unless asked for
        if os.environ.get("COMPTOIR_DEBUG"):
            raise
        _fail(
            f"Unexpected error ({type(exc).__name__}: {exc}); "
            "rerun with COMPTOIR_DEBUG=1 to see the traceback.",
            "UnexpectedError",
            as_json,
        )


EXIT_INTERRUPTED = 130


def _fail(message: str, kind: str, as_json: bool, code: int = 1) -> None:
    if as_json:
        # scripts read stdout line by line: the error is one more JSON event
        print(json.dumps({"event": "error", "error": kind, "message": message, "exit": code}))
    else:
        err_console.print(f"[red]{_escape(message)}[/red]")
    sys.exit(code)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
