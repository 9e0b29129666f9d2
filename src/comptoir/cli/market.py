"""comptoir market serve: run a network's market (order book, price index, explorer)."""

from __future__ import annotations

from typing import Annotated

import typer

from comptoir.cli._common import ListenHelp, serving

app = typer.Typer(
    help="Run the network's market API: order book, price index, explorer.", no_args_is_help=True
)
DbHelp = "SQLite file or PostgreSQL URL (default <home>/market.db)."


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(envvar="COMPTOIR_MARKET_HOST", help=ListenHelp)
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="COMPTOIR_MARKET_PORT", help="Listen port.")] = 8000,
    db: Annotated[str | None, typer.Option(envvar="COMPTOIR_MARKET_DB", help=DbHelp)] = None,
) -> None:
    """Serve the market of the selected network (give its URL to 'network add --market-url')."""
    from comptoir.stack import serve_market

    settings = serving("Market", host, port)
    serve_market(db or str(settings.home / "market.db"), port, host=host)
