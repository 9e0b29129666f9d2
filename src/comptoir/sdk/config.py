"""Where the SDK finds the chain and the off-chain services.

The chain comes from :class:`comptoir.config.Settings` (``COMPTOIR_RPC_URL``, the devnet
recorded under ``COMPTOIR_HOME``...). The services come, first match wins, from explicit
arguments, then the environment, then the selected network's record (``networks.toml``,
see :mod:`comptoir.network`), then the local stack record ``<home>/devnet/stack.json``
written by ``comptoir devnet up``. A workerpool's scheduler is found on-chain (its
registered location) when no URL is configured for it:

| variable | meaning |
|---|---|
| COMPTOIR_MARKET_URL | market (order book) API |
| COMPTOIR_STORAGE_URL | blob storage server |
| COMPTOIR_KEY_SERVICE_URL | dataset key service (default: the storage server) |
| COMPTOIR_SCHEDULER_URLS | ``<pool id>=<url>,...``: schedulers (default: on-chain endpoints) |
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from comptoir.config import Settings, load_settings
from comptoir.exceptions import ConfigError

STACK_FILE = "stack.json"


def stack_file(settings: Settings) -> Path:
    return settings.devnet_dir / STACK_FILE


def read_stack(settings: Settings) -> dict[str, Any]:
    """The local stack record (empty when no stack was started under this home)."""
    try:
        data = json.loads(stack_file(settings).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def parse_scheduler_urls(raw: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for item in filter(None, (p.strip() for p in raw.split(","))):
        pool, sep, url = item.partition("=")
        if not sep or not pool.strip().isdigit() or not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"COMPTOIR_SCHEDULER_URLS entry {item!r} is malformed; write "
                "'<workerpool id>=http://host:port', comma-separated."
            )
        out[int(pool)] = url.strip().rstrip("/")
    return out


@dataclass(frozen=True)
class Config:
    """Chain settings plus the URLs of the market, storage, key service and schedulers."""

    settings: Settings
    market_url: str | None = None
    storage_url: str | None = None
    key_service_url: str | None = None
    schedulers: Mapping[int, str] = field(default_factory=dict)

    @property
    def key_url(self) -> str | None:
        return self.key_service_url or self.storage_url

    def with_(self, **changes: Any) -> Config:
        return replace(self, **changes)

    @classmethod
    def load(
        cls,
        settings: Settings | None = None,
        env: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Config:
        env = os.environ if env is None else env
        settings = settings or load_settings(env)
        stack = read_stack(settings) if settings.network is None else {}
        urls = stack.get("urls", {}) if isinstance(stack.get("urls"), dict) else {}
        if settings.network is not None:
            urls = {"market": settings.network.market_url, "storage": settings.network.storage_url}
        schedulers: dict[int, str] = {
            int(k): str(v) for k, v in (stack.get("schedulers") or {}).items()
        }
        if env.get("COMPTOIR_SCHEDULER_URLS"):
            schedulers.update(parse_scheduler_urls(env["COMPTOIR_SCHEDULER_URLS"]))
        values: dict[str, Any] = {
            "market_url": env.get("COMPTOIR_MARKET_URL") or urls.get("market"),
            "storage_url": env.get("COMPTOIR_STORAGE_URL") or urls.get("storage"),
            "key_service_url": env.get("COMPTOIR_KEY_SERVICE_URL") or urls.get("keys"),
            "schedulers": schedulers,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(settings=settings, **values)

    # --------------------------------------------------------------- required services

    def need_market(self) -> str:
        if not self.market_url:
            raise ConfigError(
                "No market API is configured; start the local stack with "
                "'comptoir devnet up --workers 3' or set COMPTOIR_MARKET_URL."
            )
        return self.market_url

    def need_storage(self) -> str:
        if not self.storage_url:
            raise ConfigError(
                "No storage server is configured; start the local stack with "
                "'comptoir devnet up --workers 3' or set COMPTOIR_STORAGE_URL."
            )
        return self.storage_url

    def need_keys(self) -> str:
        url = self.key_url
        if not url:
            raise ConfigError(
                "No dataset key service is configured; start the local stack with "
                "'comptoir devnet up --workers 3' or set COMPTOIR_KEY_SERVICE_URL."
            )
        return url

    def scheduler_url(self, workerpool: int) -> str | None:
        return self.schedulers.get(int(workerpool))


def as_config(source: Config | Settings | str | Path | None) -> Config:
    """Accept what a user has at hand: a Config, chain Settings, a home folder, or nothing."""
    if isinstance(source, Config):
        return source
    if isinstance(source, Settings):
        return Config.load(source)
    if isinstance(source, str | Path):
        env = dict(os.environ)
        env["COMPTOIR_HOME"] = str(source)
        return Config.load(load_settings(env), env)
    return Config.load()
