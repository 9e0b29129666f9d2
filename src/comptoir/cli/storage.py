"""comptoir storage serve: run a network's blob storage and dataset key service."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from comptoir.cli._common import ListenHelp, serving

app = typer.Typer(
    help="Run the network's content-addressed blob storage and dataset key service.",
    no_args_is_help=True,
)
RootHelp = "Folder of blobs and keys (default <home>/storage)."


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(envvar="COMPTOIR_STORAGE_HOST", help=ListenHelp)
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="COMPTOIR_STORAGE_PORT", help="Listen port.")] = 8100,
    root: Annotated[
        Path | None, typer.Option(envvar="COMPTOIR_STORAGE_ROOT", help=RootHelp)
    ] = None,
) -> None:
    """Serve blobs (apps, datasets, results) and release dataset keys per the chain."""
    from comptoir.stack import serve_storage

    settings = serving("Storage", host, port)
    folder = (root or settings.home / "storage").absolute()
    folder.mkdir(parents=True, exist_ok=True)
    serve_storage(folder, port, host=host)
