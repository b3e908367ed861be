"""Idempotent bulk upserts on natural keys.

A batch is first deduplicated by key (the last occurrence wins): PostgreSQL refuses to update one
row twice in one statement. Small batches go through one pipelined
``executemany`` of ``INSERT ... VALUES ... ON CONFLICT DO UPDATE``; big ones are binary-COPYed into a temporary table and merged
with one ``INSERT ... SELECT ... ON CONFLICT``, about twice as fast (figures in docs/benchmarks.md).
Either way a row whose values did not change is not rewritten (``WHERE ... IS DISTINCT FROM``), so
re-running a backfill writes nothing and bloats nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import BigInteger, Boolean, Connection, DateTime, Integer, Numeric, Table, Text
from sqlalchemy.dialects.postgresql import JSONB

COPY_THRESHOLD = 1000  # rows; below this the temp table costs more than it saves
_tmp_names = itertools.count()


def dedupe(rows: Iterable[Mapping[str, Any]], key: Sequence[str]) -> list[Mapping[str, Any]]:
    """Keep the last row for each key, in first-seen key order."""
    by_key: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    for row in rows:
        by_key[tuple(row[k] for k in key)] = row
    return list(by_key.values())


def upsert(
    conn: Connection,
    table: Table,
    rows: Iterable[Mapping[str, Any]],
    *,
    key: Sequence[str] | None = None,
    update: Sequence[str] | None = None,
    touch: Sequence[str] = (),
    method: str = "auto",
) -> int:
    """Insert ``rows`` into ``table``, updating rows whose key exists and whose values differ.

    ``key`` defaults to the primary key; ``update`` to every other column present in the rows;
    ``touch`` names timestamp columns set to now() when a row is updated. Returns the number of
    rows inserted or changed. ``method`` is 'auto', 'values' or 'copy'.
    """
    key = list(key or (c.name for c in table.primary_key.columns))
    batch = dedupe(rows, key)
    if not batch:
        return 0
    columns = list(batch[0].keys())
    update = [c for c in (update if update is not None else columns) if c not in key]
    if method == "auto":
        method = "copy" if len(batch) >= COPY_THRESHOLD else "values"
    if method == "copy":
        return _upsert_copy(conn, table, batch, columns, key, update, touch)
    return _upsert_values(conn, table, batch, columns, key, update, touch)


def _merge_sql(table: Table, columns: list[str], key: list[str], update: list[str],
               touch: Sequence[str], source: str) -> str:
    """``INSERT ... <source> ON CONFLICT`` that rewrites a row only when its values differ."""
    cols = ", ".join(_q(c) for c in columns)
    if update:
        sets = [f"{_q(c)} = EXCLUDED.{_q(c)}" for c in update] + [f"{_q(c)} = now()" for c in touch]
        # The trailing NULL makes a one-column list a row too; NULL is not distinct from NULL.
        mine = ", ".join(f"{_q(table.name)}.{_q(c)}" for c in update)
        theirs = ", ".join(f"EXCLUDED.{_q(c)}" for c in update)
        conflict = (f"DO UPDATE SET {', '.join(sets)} "
                    f"WHERE ({mine}, NULL) IS DISTINCT FROM ({theirs}, NULL)")
    else:
        conflict = "DO NOTHING"
    return (f"INSERT INTO {_q(table.name)} ({cols}) {source} "
            f"ON CONFLICT ({', '.join(_q(k) for k in key)}) {conflict}")


def _upsert_values(conn: Connection, table: Table, batch: list[Mapping[str, Any]], columns: list[str],
                   key: list[str], update: list[str], touch: Sequence[str]) -> int:
    placeholders = ", ".join(["%s"] * len(columns))
    sql = _merge_sql(table, columns, key, update, touch, f"VALUES ({placeholders})")
    raw = conn.connection.driver_connection
    with raw.cursor() as cur:
        # psycopg pipelines executemany and sums the rowcounts of its statements.
        cur.executemany(sql, [[row[c] for c in columns] for row in batch])
        return max(cur.rowcount, 0)


def _pg_type(table: Table, column: str) -> str:
    col_type = table.c[column].type
    for sa_type, name in (
        (Boolean, "bool"),
        (BigInteger, "int8"),
        (Integer, "int4"),
        (Numeric, "numeric"),
        (Text, "text"),
        (JSONB, "jsonb"),
    ):
        if isinstance(col_type, sa_type):
            return name
    if isinstance(col_type, DateTime):
        return "timestamptz" if col_type.timezone else "timestamp"
    raise TypeError(f"no COPY type for {table.name}.{column} ({col_type!r})")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _upsert_copy(conn: Connection, table: Table, batch: list[Mapping[str, Any]], columns: list[str],
                 key: list[str], update: list[str], touch: Sequence[str]) -> int:
    tmp = f"_upsert_{table.name}_{next(_tmp_names)}"
    cols = ", ".join(_q(c) for c in columns)
    raw = conn.connection.driver_connection  # the psycopg connection inside this transaction
    with raw.cursor() as cur:
        cur.execute(f"CREATE TEMP TABLE {_q(tmp)} ON COMMIT DROP AS "
                    f"SELECT {cols} FROM {_q(table.name)} WITH NO DATA")
        with cur.copy(f"COPY {_q(tmp)} ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([_pg_type(table, c) for c in columns])
            for row in batch:
                copy.write_row([row[c] for c in columns])
        cur.execute(_merge_sql(table, columns, key, update, touch, f"SELECT {cols} FROM {_q(tmp)}"))
        changed = cur.rowcount
        cur.execute(f"DROP TABLE {_q(tmp)}")
    return max(changed, 0)
