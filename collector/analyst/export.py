"""`collector export`: a table (or a slice of it) to Parquet or CSV, streamed, with exact decimals.

Memory stays flat whatever the size: rows come through a server-side cursor (Parquet) or the COPY
protocol (CSV) and go out as they come; Parquet row groups are assembled from Arrow batches.

Exactness:
- **Parquet** stores prices and quantities as ``decimal128(p, s)``. The columns are unconstrained
  ``NUMERIC``, so p and s are chosen per column from the exported rows themselves (largest scale and
  largest integer part, read in the same snapshot as the rows): every stored digit fits, none is
  invented beyond the largest scale. Above 38 digits the column becomes ``decimal256``. pyarrow
  refuses any value that would lose a digit, so an export is exact or it fails. Times are
  ``timestamp[us, UTC]``.
- **CSV** carries PostgreSQL's own text of each number (``0.26220000`` stays as stored, never
  ``2.622E-1``), times as ISO 8601 with ``Z`` and microseconds, booleans as ``true``/``false``,
  NULL as an empty field.

The file is written under a temporary name in the target directory and renamed at the end, so a
failure leaves the previous file (or nothing), never half an export.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Connection, Engine

from collector.domain import INTERVALS
from collector.errors import ConfigError
from collector.store.columns import Column, columns
from collector.store.db import driver_connection, reading

# Rows fetched per round trip: Python objects exist for this many rows at a time. Row groups are
# assembled from the Arrow batches (~60 bytes a trade). Peak RSS of a whole `collector export`
# (about 100 MB of it imports) measured on 1M trades: 10k/100k ~210 MB, 10k/250k ~260 MB,
# 50k/50k ~270 MB; see docs/benchmarks.md.
CHUNK_ROWS = 10_000
ROW_GROUP_ROWS = 100_000
FORMATS = ("parquet", "csv")


@dataclass(frozen=True)
class TableSpec:
    source: str  # FROM clause
    time_col: str  # what --start/--end filter on
    symbol_col: str
    order: str
    columns: tuple[Column, ...]
    interval_col: str | None = None


def _joined(alias: str, table: str, names: tuple[str, ...]) -> tuple[Column, ...]:
    """Some columns of a joined table, as ``alias.name``."""
    by_name = {c.name: c for c in columns(table)}
    return tuple(Column(n, by_name[n].kind, by_name[n].nullable, f"{alias}.{n}") for n in names)


TABLES: dict[str, TableSpec] = {
    "klines": TableSpec(
        "klines", "open_time", "symbol", "symbol, interval, open_time", columns("klines"), interval_col="interval"
    ),
    "trades": TableSpec("trades", "time", "symbol", "symbol, time, trade_id", columns("trades")),
    "tickers_24hr": TableSpec("tickers_24hr", "captured_at", "symbol", "symbol, captured_at", columns("tickers_24hr")),
    "depth": TableSpec(
        "depth_snapshots s JOIN depth_levels l ON l.snapshot_id = s.id",
        "s.captured_at",
        "s.symbol",
        "s.symbol, s.captured_at, l.side DESC, l.level",
        _joined("s", "depth_snapshots", ("symbol", "captured_at", "last_update_id"))
        + _joined("l", "depth_levels", ("side", "level", "price", "qty")),
    ),
}


@dataclass(frozen=True)
class ExportResult:
    path: Path
    rows: int
    bytes: int
    schema: dict[str, str]


def _filters(
    spec: TableSpec, symbols: Sequence[str] | None, start: datetime | None, end: datetime | None, interval: str | None
) -> tuple[str, dict[str, Any]]:
    clauses: list[str] = ["true"]
    params: dict[str, Any] = {}
    if symbols:
        clauses.append(f"{spec.symbol_col} = ANY(%(symbols)s)")
        params["symbols"] = list(symbols)
    if start is not None:
        clauses.append(f"{spec.time_col} >= %(start)s")
        params["start"] = start
    if end is not None:
        clauses.append(f"{spec.time_col} < %(end)s")
        params["end"] = end
    if interval is not None:
        if spec.interval_col is None:
            raise ConfigError("--interval applies to --table klines only")
        clauses.append(f"{spec.interval_col} = %(interval)s")
        params["interval"] = interval
    return " AND ".join(clauses), params


def export(
    engine: Engine,
    table: str,
    path: str | os.PathLike,
    fmt: str = "parquet",
    *,
    symbols: Sequence[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    interval: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
    row_group_rows: int = ROW_GROUP_ROWS,
) -> ExportResult:
    """Write the rows of ``table`` matching the filters to ``path``; see the module docstring."""
    if table not in TABLES:
        raise ConfigError(f"unknown table {table!r}; choose from {', '.join(TABLES)}")
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if start is not None and end is not None and start >= end:
        raise ConfigError("--start must be before --end")
    if interval is not None and interval not in INTERVALS:
        raise ConfigError(f"unknown interval {interval!r}; choose from {', '.join(INTERVALS)}")
    target = Path(path)
    if not target.parent.is_dir():
        raise ConfigError(f"output directory {target.parent} does not exist")
    spec = TABLES[table]
    where, params = _filters(spec, symbols, start, end, interval)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        # One snapshot: the decimal scales measured first hold for the rows read after.
        with reading(engine, isolation="REPEATABLE READ") as conn:
            if fmt == "csv":
                rows, schema = _write_csv(conn, spec, where, params, tmp)
            else:
                rows, schema = _write_parquet(conn, spec, where, params, tmp, chunk_rows, row_group_rows)
            conn.rollback()
        tmp.chmod(0o644)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return ExportResult(target, rows, target.stat().st_size, schema)


# --- CSV: PostgreSQL formats every value, COPY streams it -------------------------------------


def _csv_expr(c: Column) -> str:
    if c.kind == "time":
        return f"to_char({c.sql} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS {c.name}"
    if c.kind == "bool":  # COPY itself would write t/f
        return f"{c.sql}::text AS {c.name}"
    return f"{c.sql} AS {c.name}"  # COPY writes numerics in their exact stored text


def _write_csv(conn: Connection, spec: TableSpec, where: str, params: dict, tmp: Path) -> tuple[int, dict]:
    select = (
        f"SELECT {', '.join(_csv_expr(c) for c in spec.columns)} FROM {spec.source} WHERE {where} ORDER BY {spec.order}"
    )
    raw = driver_connection(conn)
    rows = 0
    with raw.cursor() as cur, tmp.open("wb") as out:
        with cur.copy(f"COPY ({select}) TO STDOUT (FORMAT csv, HEADER true)", params) as copy:
            for block in copy:
                out.write(block)
        rows = cur.rowcount
    return rows, {c.name: c.kind for c in spec.columns}


# --- Parquet: a server-side cursor, a row group per chunk ---------------------------------------


def _decimal_type(scale: int | None, int_digits: int | None) -> pa.DataType:
    if scale is None or int_digits is None:  # no values at all: any exact type will do
        return pa.decimal128(38, 18)
    precision = max(1, int_digits + scale)
    if precision <= 38:
        return pa.decimal128(precision, scale)
    if precision <= 76:
        return pa.decimal256(precision, scale)
    raise ConfigError(f"a value needs {precision} digits, more than Parquet decimals hold; use --format csv")


def _arrow_schema(conn: Connection, spec: TableSpec, where: str, params: dict) -> pa.Schema:
    nums = [c for c in spec.columns if c.kind == "num"]
    measures = ", ".join(f"max(scale({c.sql})), max(length(trunc(abs({c.sql}))::text))" for c in nums)
    got = conn.exec_driver_sql(f"SELECT {measures} FROM {spec.source} WHERE {where}", params).one() if nums else ()
    numeric = {c.name: _decimal_type(got[2 * i], got[2 * i + 1]) for i, c in enumerate(nums)}
    kinds = {"text": pa.string(), "time": pa.timestamp("us", tz="UTC"), "int": pa.int64(), "bool": pa.bool_()}
    return pa.schema([pa.field(c.name, numeric[c.name] if c.kind == "num" else kinds[c.kind]) for c in spec.columns])


def _parquet_expr(c: Column) -> str:
    if c.kind == "time":  # integer microseconds: no datetime object per value
        return f"(extract(epoch FROM {c.sql}) * 1000000)::int8 AS {c.name}"
    return f"{c.sql} AS {c.name}"


def _write_parquet(
    conn: Connection, spec: TableSpec, where: str, params: dict, tmp: Path, chunk_rows: int, row_group_rows: int
) -> tuple[int, dict]:
    schema = _arrow_schema(conn, spec, where, params)
    select = (
        f"SELECT {', '.join(_parquet_expr(c) for c in spec.columns)} FROM {spec.source} "
        f"WHERE {where} ORDER BY {spec.order}"
    )
    result = conn.execution_options(stream_results=True, yield_per=chunk_rows).exec_driver_sql(select, params)
    rows = 0
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    try:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for part in result.partitions(chunk_rows):
                pending.append(_batch(part, schema))
                pending_rows += len(part)
                rows += len(part)
                if pending_rows >= row_group_rows:
                    writer.write_table(pa.Table.from_batches(pending, schema), row_group_size=pending_rows)
                    pending, pending_rows = [], 0
            if pending_rows or rows == 0:
                writer.write_table(pa.Table.from_batches(pending, schema), row_group_size=max(pending_rows, 1))
    finally:
        result.close()  # a failed export must not leave the server-side cursor behind
    return rows, {f.name: str(f.type) for f in schema}


def _batch(part: Sequence[Sequence[Any]], schema: pa.Schema) -> pa.RecordBatch:
    arrays = []
    for field, values in zip(schema, zip(*part, strict=True), strict=True):
        if pa.types.is_timestamp(field.type):
            arrays.append(pa.array(values, pa.int64()).cast(field.type))
        else:
            arrays.append(pa.array(values, field.type))  # raises rather than drop a digit
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
