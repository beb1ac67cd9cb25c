"""Statements that write many rows in one step: multi-row INSERT and UPDATE by id with CASE.

Why: on SQLite a group commit runs in a worker thread (``Database.write_sync``), and every
SQLite step of an ``executemany`` (one per row) releases the interpreter lock, which the thread
must then wait to get back from the busy event loop. One statement for all the rows is one
step. The statements are plain SQL (SQL-92 row value lists and CASE), so PostgreSQL runs them
too. Each shape (table, row count) is built once and then only bound; a batch larger than
``ROWS_PER_STATEMENT`` is cut into several statements (SQLite allows 32,766 bound values).

On SQLite, ``execute`` also skips SQLAlchemy's per-execution work (cache key, compiled-cache
lookup, result metadata): the statement is rendered once, and each execution binds its values
through the same type processors SQLAlchemy would use.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BindParameter, Table, bindparam, case, insert, update
from sqlalchemy.engine import Connection, CursorResult, Dialect
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert, Update

ROWS_PER_STATEMENT = 128


@dataclass(frozen=True)
class _Rendered:
    sql: str
    names: tuple[str, ...]  # the parameters, in the order of their placeholders
    processors: tuple[Callable[[Any], Any] | None, ...]
    constants: dict[str, Any]  # the values the statement binds itself (literals)


@functools.cache
def _render(statement: Executable, dialect: Dialect) -> _Rendered:
    compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    assert isinstance(compiled, SQLCompiler) and compiled.positiontup is not None
    names = tuple(compiled.positiontup)
    processors = tuple(
        compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
    )
    constants = {
        name: compiled.binds[name].effective_value
        for name in names
        if not compiled.binds[name].required and compiled.binds[name].value is not None
    }
    return _Rendered(str(compiled), names, processors, constants)


def execute(
    conn: Connection, statement: Executable, params: Mapping[str, Any]
) -> CursorResult[Any]:
    """``conn.execute(statement, params)``; on SQLite, without SQLAlchemy's per-call work.

    ``statement`` must be built once and kept (it is the cache key), without expanding
    parameters.
    """
    if conn.dialect.name != "sqlite":
        return conn.execute(statement, params)
    rendered = _render(statement, conn.dialect)
    given = {**rendered.constants, **params} if rendered.constants else params
    values = tuple(
        given[name] if process is None else process(given[name])
        for name, process in zip(rendered.names, rendered.processors, strict=True)
    )
    return conn.exec_driver_sql(rendered.sql, values)


@functools.cache
def _insert_statement(table: Table, columns: tuple[str, ...], count: int) -> Insert:
    return insert(table).values(
        [
            {name: bindparam(f"{name}_{i}", type_=table.c[name].type) for name in columns}
            for i in range(count)
        ]
    )


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT ``rows`` (all with the same keys) in one statement per ``ROWS_PER_STATEMENT``."""
    if not rows:
        return
    columns = tuple(rows[0])
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start : start + ROWS_PER_STATEMENT]
        params: dict[str, Any] = {}
        for i, row in enumerate(chunk):
            if tuple(row) != columns:
                raise ValueError("insert_rows: every row must have the same columns")
            for name in columns:
                params[f"{name}_{i}"] = row[name]
        execute(conn, _insert_statement(table, columns, len(chunk)), params)


@functools.cache
def _update_statement(
    table: Table, key: str, columns: tuple[str, ...], count: int, add: bool
) -> Update:
    key_column = table.c[key]
    values: dict[str, Any] = {}
    for name in columns:
        column = table.c[name]
        chosen = case(
            *[
                (key_column == bindparam(f"k_{i}"), bindparam(f"{name}_{i}", type_=column.type))
                for i in range(count)
            ],
            else_=0 if add else column,  # never taken: the WHERE keeps only these rows
        )
        values[name] = column + chosen if add else chosen
    keys: list[BindParameter[Any]] = [bindparam(f"k_{i}") for i in range(count)]
    return update(table).where(key_column.in_(keys)).values(values)


def update_rows(
    conn: Connection,
    table: Table,
    key: str,
    changes: Mapping[Any, Mapping[str, Any]],
    *,
    add: bool = False,
) -> None:
    """Per row (found by its ``key`` column): set its columns to the given values, or with
    ``add``, add the values to them. Every row changes the same columns."""
    if not changes:
        return
    items = sorted(changes.items())  # rows in key order: the same lock order everywhere
    columns = tuple(items[0][1])
    for start in range(0, len(items), ROWS_PER_STATEMENT):
        chunk = items[start : start + ROWS_PER_STATEMENT]
        params: dict[str, Any] = {}
        for i, (row_key, values) in enumerate(chunk):
            if tuple(values) != columns:
                raise ValueError("update_rows: every row must change the same columns")
            params[f"k_{i}"] = row_key
            for name in columns:
                params[f"{name}_{i}"] = values[name]
        execute(conn, _update_statement(table, key, columns, len(chunk), add), params)
