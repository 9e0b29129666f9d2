"""Lazily opened httpx clients, one sync and one async, shared by our HTTP API clients."""

from __future__ import annotations

from typing import Any, Self

import httpx


class LazyHttpClients:
    """Opens `http` / `ahttp` on first use (a caller using only one never pays for the
    other); `close` / `aclose` release them, and a later use opens fresh ones."""

    def __init__(self, **client_options: Any) -> None:
        self._client_options = client_options
        self._sync: httpx.Client | None = None
        self._async: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.Client:
        if self._sync is None:
            self._sync = httpx.Client(**self._client_options)
        return self._sync

    @property
    def ahttp(self) -> httpx.AsyncClient:
        if self._async is None:
            self._async = httpx.AsyncClient(**self._client_options)
        return self._async

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    async def aclose(self) -> None:
        if self._async is not None:
            await self._async.aclose()
            self._async = None
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
