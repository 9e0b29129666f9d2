"""One database setting for every component: a SQLite file path or a SQLAlchemy URL."""

from __future__ import annotations

from pathlib import Path


def database_url(database: str | Path) -> str:
    """A synchronous SQLAlchemy URL from a URL or a SQLite file path (":memory:" allowed).

    Async driver names (sqlite+aiosqlite, postgresql+asyncpg) are accepted and mapped to
    their synchronous counterparts: the market and the scheduler run a synchronous engine
    on dedicated threads, so one configured URL serves both."""
    text = str(database)
    if "://" not in text:
        if text == ":memory:":
            return "sqlite:///:memory:"
        return "sqlite:///" + str(Path(text).expanduser().resolve())
    scheme, rest = text.split("://", 1)
    if scheme in ("sqlite", "sqlite+aiosqlite", "sqlite+pysqlite"):
        return "sqlite://" + rest
    if scheme in ("postgresql", "postgres", "postgresql+asyncpg", "postgresql+psycopg_async"):
        _need_psycopg()
        return "postgresql+psycopg://" + rest
    return text


def _need_psycopg() -> None:
    import importlib.util

    if importlib.util.find_spec("psycopg") is None:
        from comptoir.exceptions import ConfigError

        raise ConfigError("A PostgreSQL database needs psycopg; install 'comptoir[postgres]'.")
