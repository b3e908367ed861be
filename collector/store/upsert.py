"""Idempotent bulk upserts on natural keys.

A batch is first deduplicated by key (the last occurrence wins): PostgreSQL refuses to update one
row twice in one statement. Small batches go through one pipelined
``executemany`` of ``INSERT ... VALUES ... ON CONFLICT DO UPDATE``; big ones are binary-COPYed into a temporary table and merged
with one ``INSERT ... SELECT ... ON CONFLICT``, about twice as fast (figures in docs/benchmarks.md).
Either way a row whose values did not change is not rewritten (``WHERE ... IS DISTINCT FROM``), so
re-running a backfill writes nothing and bloats nothing.

``upsert`` takes dicts; ``upsert_tuples`` takes rows as tuples in a given column order (the
backfill's hot path: no dict per row).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    DateTime,
    Integer,
    Numeric,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

from collector.store.db import driver_connection

COPY_THRESHOLD = 1000  # rows; below this the temp table costs more than it saves
_tmp_names = itertools.count()


def _getter(positions: Sequence[Any]) -> Callable[[Any], tuple[Any, ...]]:
    """``row -> tuple(row[p] for p in positions)``, done in C (itemgetter): this runs once per row."""
    if len(positions) == 1:
        get = itemgetter(positions[0])
        return lambda row: (get(row),)
    return itemgetter(*positions)


def dedupe(rows: Iterable[Any], key: Sequence[Any]) -> list[Any]:
    """Keep the last row for each key, in first-seen key order. ``key`` holds the key's column
    names for mapping rows, or its positions for tuple rows."""
    get_key = _getter(key)
    return list({get_key(row): row for row in rows}.values())


def upsert(
    conn: Connection,
    table: Table,
    rows: Iterable[Mapping[str, Any]],
    *,
    key: Sequence[str] | None = None,
    update: Sequence[str] | None = None,
    touch: Sequence[str] = (),
    method: str = "auto",
    monotonic: Sequence[str] = (),
) -> int:
    """Insert ``rows`` into ``table``, updating rows whose key exists and whose values differ.

    ``key`` defaults to the primary key; ``update`` to every other column present in the rows;
    ``touch`` names timestamp columns set to now() when a row is updated (``ingested_at``, where the
    table has it, always is); ``monotonic`` names columns that never go back: a row whose value of
    one is lower than the stored one is older news and does not update it. Returns the number of
    rows inserted or changed. ``method`` is 'auto', 'values' or 'copy'.
    """
    key = list(key or (c.name for c in table.primary_key.columns))
    batch = dedupe(rows, key)
    if not batch:
        return 0
    columns = list(batch[0].keys())
    return _upsert(conn, table, columns, list(map(_getter(columns), batch)), key, update, touch, method, monotonic)


def upsert_tuples(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    key: Sequence[str] | None = None,
    update: Sequence[str] | None = None,
    touch: Sequence[str] = (),
    method: str = "auto",
) -> int:
    """``upsert`` for rows given as sequences of values in ``columns`` order (no dict per row)."""
    columns = list(columns)
    key = list(key or (c.name for c in table.primary_key.columns))
    batch = dedupe(rows, [columns.index(k) for k in key])
    if not batch:
        return 0
    return _upsert(conn, table, columns, batch, key, update, touch, method)


def _upsert(
    conn: Connection,
    table: Table,
    columns: list[str],
    batch: list[Sequence[Any]],
    key: list[str],
    update: Sequence[str] | None,
    touch: Sequence[str],
    method: str,
    monotonic: Sequence[str] = (),
) -> int:
    update = [c for c in (update if update is not None else columns) if c not in key]
    if method == "auto":
        method = "copy" if len(batch) >= COPY_THRESHOLD else "values"
    if method == "copy":
        return _upsert_copy(conn, table, batch, columns, key, update, touch, monotonic)
    return _upsert_values(conn, table, batch, columns, key, update, touch, monotonic)


def _merge_sql(
    table: Table,
    columns: list[str],
    key: list[str],
    update: list[str],
    touch: Sequence[str],
    source: str,
    monotonic: Sequence[str] = (),
) -> str:
    """``INSERT ... <source> ON CONFLICT`` that rewrites a row only when its values differ (and,
    for ``monotonic`` columns, none of them would go back)."""
    cols = ", ".join(_q(c) for c in columns)
    if update:
        # A table with ``ingested_at`` has it touched too: a row that really changes is new to
        # incremental exports (collector export --since-last) again.
        auto = ["ingested_at"] if "ingested_at" in table.c and "ingested_at" not in (*columns, *touch) else []
        sets = [f"{_q(c)} = EXCLUDED.{_q(c)}" for c in update] + [f"{_q(c)} = now()" for c in (*touch, *auto)]
        # The trailing NULL makes a one-column list a row too; NULL is not distinct from NULL.
        mine = ", ".join(f"{_q(table.name)}.{_q(c)}" for c in update)
        theirs = ", ".join(f"EXCLUDED.{_q(c)}" for c in update)
        forward = "".join(
            f" AND ({_q(table.name)}.{_q(c)} IS NULL OR EXCLUDED.{_q(c)} >= {_q(table.name)}.{_q(c)})"
            for c in monotonic
        )
        conflict = f"DO UPDATE SET {', '.join(sets)} WHERE ({mine}, NULL) IS DISTINCT FROM ({theirs}, NULL){forward}"
    else:
        conflict = "DO NOTHING"
    return f"INSERT INTO {_q(table.name)} ({cols}) {source} ON CONFLICT ({', '.join(_q(k) for k in key)}) {conflict}"


def _upsert_values(
    conn: Connection,
    table: Table,
    batch: list[Sequence[Any]],
    columns: list[str],
    key: list[str],
    update: list[str],
    touch: Sequence[str],
    monotonic: Sequence[str] = (),
) -> int:
    placeholders = ", ".join(["%s"] * len(columns))
    sql = _merge_sql(table, columns, key, update, touch, f"VALUES ({placeholders})", monotonic)
    raw = driver_connection(conn)
    with raw.cursor() as cur:
        # psycopg pipelines executemany and sums the rowcounts of its statements.
        cur.executemany(sql, batch)
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


def _numeric_text(value: Any) -> str | None:
    """What psycopg's binary NUMERIC dumper accepted (Decimal, int), as text; None stays NULL."""
    if value is None:
        return None
    if type(value) is int:
        return str(value)
    if isinstance(value, Decimal):
        return "NaN" if value.is_nan() else _DECIMAL_STR(value)  # PostgreSQL has one NaN, so spelt
    raise TypeError(f"a NUMERIC column takes Decimal or int, not {type(value).__name__}")


def _numeric_texts(values: Sequence[Any]) -> Sequence[str | None]:
    """str() of each Decimal: exact (PostgreSQL reads it back digit for digit, scale included)."""
    try:
        texts: list[str] = list(map(_DECIMAL_STR, values))  # all Decimals: the common case, in C
    except TypeError:  # None, int, or a type refused here
        return [_numeric_text(v) for v in values]
    if "NaN" in "".join(texts):  # sNaN, -NaN, NaN123: not numeric input
        return [_numeric_text(v) for v in values]
    return texts


_DECIMAL_STR = Decimal.__str__


def _upsert_copy(
    conn: Connection,
    table: Table,
    batch: list[Sequence[Any]],
    columns: list[str],
    key: list[str],
    update: list[str],
    touch: Sequence[str],
    monotonic: Sequence[str] = (),
) -> int:
    """Binary COPY into a temporary table, then one merge.

    NUMERIC columns travel as text (``str(Decimal)``) and are cast back in the merge: exact, and
    several times cheaper for us than psycopg's binary NUMERIC dumper, which takes each Decimal
    apart through ``as_tuple()`` (it was most of the writer's CPU in a trades backfill).
    """
    tmp = f"_upsert_{table.name}_{next(_tmp_names)}"
    cols = ", ".join(_q(c) for c in columns)
    types = [_pg_type(table, c) for c in columns]
    numeric = [i for i, t in enumerate(types) if t == "numeric"]
    as_text = ", ".join(
        f"{_q(c)}::text AS {_q(c)}" if t == "numeric" else _q(c) for c, t in zip(columns, types, strict=False)
    )
    as_stored = ", ".join(
        f"{_q(c)}::numeric" if t == "numeric" else _q(c) for c, t in zip(columns, types, strict=False)
    )
    if numeric:  # column by column: one map() over each numeric column
        by_column: list[Sequence[Any]] = list(zip(*batch, strict=False))
        for i in numeric:
            by_column[i] = _numeric_texts(by_column[i])
        rows: Iterable[Sequence[Any]] = zip(*by_column, strict=False)
    else:
        rows = batch
    raw = driver_connection(conn)
    with raw.cursor() as cur:
        cur.execute(
            f"CREATE TEMP TABLE {_q(tmp)} ON COMMIT DROP AS SELECT {as_text} FROM {_q(table.name)} WITH NO DATA"
        )
        with cur.copy(f"COPY {_q(tmp)} ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["text" if t == "numeric" else t for t in types])
            write_row = copy.write_row
            for row in rows:
                write_row(row)
        cur.execute(_merge_sql(table, columns, key, update, touch, f"SELECT {as_stored} FROM {_q(tmp)}", monotonic))
        changed = cur.rowcount
        cur.execute(f"DROP TABLE {_q(tmp)}")
    return max(changed, 0)
