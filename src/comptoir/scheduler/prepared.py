"""Statements of the request path, compiled once per dialect and run on the DBAPI cursor.

A SQLAlchemy Core ``execute`` of even a pre-built statement costs tens of microseconds of
Python (cache key, parameter processing, result wrapping) before the database does
anything; a worker request issues a dozen statements, so that was most of the scheduler's
CPU per dispatch. A :class:`Prepared` statement is still written in Core (the dialect
renders it: quoting, ``FOR UPDATE SKIP LOCKED``, bind casts), compiled once, then executed
on the connection's own cursor, inside the same transaction as everything else the
request does. Its rows are plain named tuples.

Only fixed-shape statements qualify: every parameter is a named ``bindparam`` or a
literal known at build time (``in_()`` of a constant tuple is rendered at compile time).
Database errors are re-raised as SQLAlchemy's (``OperationalError`` and so on), so the
callers' handling (``/healthz``, the 503 answer) is the same as for Core statements.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement


@dataclass
class _Compiled:
    sql: str
    names: tuple[str, ...] | None  # positional paramstyles: the parameters in order
    defaults: dict[str, Any]  # literals bound at build time
    processors: Mapping[str, Callable[[Any], Any]]
    row: Any = field(default=None)  # the row class, made at the first result


class Prepared:
    """One statement of the request path (see the module docstring)."""

    __slots__ = ("_by_dialect", "statement")

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._by_dialect: dict[str, _Compiled] = {}

    def _compiled(self, conn: Connection) -> _Compiled:
        dialect = conn.dialect
        key = f"{dialect.name}:{dialect.paramstyle}"
        found = self._by_dialect.get(key)
        if found is not None:
            return found
        compiled: Any = self.statement.compile(dialect=dialect)
        # the parameters the caller must give; the others are literals of the statement,
        # and its constant IN lists are expanded now (placeholders for the given ones)
        required = {n for n, b in compiled.binds.items() if b.required}
        bound = compiled.construct_params(_check=False)
        sql, names = compiled.string, compiled.positiontup if compiled.positional else None
        if compiled.post_compile_params:
            expanded = compiled.construct_expanded_state(bound)
            sql, bound = expanded.statement, expanded.parameters
            names = tuple(expanded.positiontup) if compiled.positional else None
        defaults = {k: v for k, v in bound.items() if k not in required}
        # columns whose Python-side default SQLAlchemy would fill in at each execution
        for column in [*compiled.insert_prefetch, *compiled.update_prefetch]:
            default = column.default if column in compiled.insert_prefetch else column.onupdate
            if default is None or not default.is_scalar:
                raise TypeError(f"{column} needs a default computed per row: not prepared")
            defaults[column.key] = default.arg
        processors = dict(getattr(compiled, "_bind_processors", {}) or {})
        found = _Compiled(sql, tuple(names) if names is not None else None, defaults, processors)
        self._by_dialect[key] = found
        return found

    def cursor(self, conn: Connection, params: Mapping[str, Any] | None = None) -> Any:
        """Execute; returns the DBAPI cursor (rows not fetched yet)."""
        c = self._compiled(conn)
        values = {**c.defaults, **params} if params else dict(c.defaults)
        for name, process in c.processors.items():
            if name in values:
                values[name] = process(values[name])
        args: Any = values if c.names is None else tuple(values[n] for n in c.names)
        cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cur.execute(c.sql, args)
        except conn.dialect.loaded_dbapi.Error as exc:
            cur.close()
            raise DBAPIError.instance(
                c.sql, args, exc, conn.dialect.loaded_dbapi.Error, dialect=conn.dialect
            ) from exc
        return cur

    def _row(self, conn: Connection, cur: Any) -> Any:
        c = self._by_dialect[f"{conn.dialect.name}:{conn.dialect.paramstyle}"]
        if c.row is None:
            c.row = namedtuple("Row", [d[0] for d in cur.description], rename=True)  # type: ignore[misc]
        return c.row

    def all(self, conn: Connection, params: Mapping[str, Any] | None = None) -> list[Any]:
        cur = self.cursor(conn, params)
        try:
            rows = cur.fetchall()
            if not rows:
                return []
            make = self._row(conn, cur)._make
            return [make(r) for r in rows]
        finally:
            cur.close()

    def first(self, conn: Connection, params: Mapping[str, Any] | None = None) -> Any:
        """The first row (a named tuple), or None."""
        cur = self.cursor(conn, params)
        try:
            row = cur.fetchone()
            return None if row is None else self._row(conn, cur)._make(row)
        finally:
            cur.close()

    def scalar(self, conn: Connection, params: Mapping[str, Any] | None = None) -> Any:
        """The first column of the first row, or None."""
        row = self.first(conn, params)
        return None if row is None else row[0]

    def rowcount(self, conn: Connection, params: Mapping[str, Any] | None = None) -> int:
        """Execute a write; the rows it matched."""
        cur = self.cursor(conn, params)
        try:
            return int(cur.rowcount)
        finally:
            cur.close()


_writes: dict[tuple[str, str, str, tuple[str, ...]], Prepared] = {}


def update_row(
    conn: Connection, table: Table, key: str, value: Any, values: Mapping[str, Any]
) -> int:
    """``UPDATE table SET values WHERE key = value`` (one statement prepared per set of
    columns); the rows matched."""
    columns = tuple(sorted(values))
    found = _writes.get(("update", table.name, key, columns))
    if found is None:
        found = Prepared(
            update(table)
            .where(table.c[key] == bindparam("key_"))
            .values({c: bindparam(f"set_{c}") for c in columns})
        )
        _writes[("update", table.name, key, columns)] = found
    return found.rowcount(conn, {"key_": value, **{f"set_{c}": values[c] for c in columns}})


def insert_row(conn: Connection, table: Table, values: Mapping[str, Any]) -> None:
    """``INSERT INTO table (values)`` (one statement prepared per set of columns)."""
    columns = tuple(sorted(values))
    found = _writes.get(("insert", table.name, "", columns))
    if found is None:
        found = Prepared(insert(table).values({c: bindparam(f"set_{c}") for c in columns}))
        _writes[("insert", table.name, "", columns)] = found
    found.rowcount(conn, {f"set_{c}": values[c] for c in columns})
