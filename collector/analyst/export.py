"""`collector export`: a table or view (or a slice of it) to Parquet, CSV or JSON, streamed, with
exact decimals; optionally as a Hive-partitioned Parquet dataset, optionally only what is new.

Memory stays flat whatever the size: rows come through a server-side cursor (Parquet, JSON) or the
COPY protocol (CSV) and go out as they come; Parquet row groups are assembled from Arrow batches.

The format comes from the output's extension (``.parquet``/``.pq``, ``.csv``, ``.csv.gz``,
``.jsonl``/``.ndjson``, ``.json``) unless ``fmt`` names one; an unknown extension is refused before
anything is read or written.

Exactness:
- **Parquet** stores prices and quantities as ``decimal128(p, s)``. The columns are unconstrained
  ``NUMERIC``, so p and s are chosen per column from the exported rows themselves (largest scale and
  largest integer part, read in the same snapshot as the rows): every stored digit fits, none is
  invented beyond the largest scale. Above 38 digits the column becomes ``decimal256``. pyarrow
  refuses any value that would lose a digit, so an export is exact or it fails. Times are
  ``timestamp[us, UTC]``, dates ``date32``, intervals ``duration[us]``.
- **CSV** carries PostgreSQL's own text of each number (``0.26220000`` stays as stored, never
  ``2.622E-1``), times as ISO 8601 with ``Z`` and microseconds, booleans as ``true``/``false``,
  NULL as an empty field. ``.csv.gz`` is the same, gzipped.
- **JSON** (one object per line, or one array) writes numbers as JSON numbers in that same exact
  text, times as ISO 8601 strings.

**Partitioned** (``partition_by``: ``symbol``, ``day`` and/or ``month``, in directory order): a
directory ``symbol=S/day=YYYY-MM-DD/part-*.parquet`` (pyarrow's Hive layout) that pyarrow datasets
and pandas read as one table, the partition columns coming back from the directory names. Rows are
read in partition order, so each partition's file is written whole before the next begins.

**Incremental** (``since_last``): only rows ingested since the previous export under the same cursor
(``collector.store.exports``); each run's rows carry ``ingested_at``. See docs/analysis.md.

A file is written under a temporary name in the target directory and renamed at the end, so a
failure leaves the previous file (or nothing), never half an export. A partitioned export is built
in a temporary directory and swapped in; an incremental one adds its files to the directory at the
end, before its cursor moves.
"""

from __future__ import annotations

import gzip
import itertools
import json
import operator
import os
import shutil
import tempfile
from collections.abc import Generator, Sequence
from contextlib import closing
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Connection, Engine

from collector.domain import INTERVALS
from collector.errors import ConfigError
from collector.store import exports as cursors
from collector.store.columns import Column, columns
from collector.store.db import driver_connection, reading

# Rows fetched per round trip: Python objects exist for this many rows at a time. Row groups are
# assembled from the Arrow batches (~60 bytes a trade). Peak RSS of a whole `collector export`
# (about 100 MB of it imports) measured on 1M trades: 10k/100k ~210 MB, 10k/250k ~260 MB,
# 50k/50k ~270 MB; see docs/benchmarks.md.
CHUNK_ROWS = 10_000
ROW_GROUP_ROWS = 100_000
FORMATS = ("parquet", "csv", "csv.gz", "jsonl", "json")
# Longest first: ".csv.gz" before ".gz"-less ".csv" would never be reached otherwise.
EXTENSIONS = {
    ".csv.gz": "csv.gz",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
}
PARTITION_KEYS = ("symbol", "day", "month")
MARKER = "_collector_export.json"  # in a partitioned directory; readers skip names starting with _


@dataclass(frozen=True)
class TableSpec:
    source: str  # FROM clause
    time_col: str | None  # what --start/--end (and day/month partitions) go by; None: no such time
    symbol_col: str | None
    order: str
    columns: tuple[Column, ...] = ()  # () for a view: read from the database when exporting
    interval_col: str | None = None
    ingested_col: str | None = None  # tables with an ingestion time can be exported incrementally
    view: bool = False


def _joined(alias: str, table: str, names: tuple[str, ...]) -> tuple[Column, ...]:
    """Some columns of a joined table, as ``alias.name``."""
    by_name = {c.name: c for c in columns(table)}
    return tuple(Column(n, by_name[n].kind, by_name[n].nullable, f"{alias}.{n}") for n in names)


def _market(table: str, time_col: str, order: str, **kw: Any) -> TableSpec:
    return TableSpec(table, time_col, "symbol", order, columns(table), ingested_col="ingested_at", **kw)


def _view(name: str, time_col: str | None, symbol_col: str | None, order: str) -> TableSpec:
    return TableSpec(name, time_col, symbol_col, order, view=True)


TABLES: dict[str, TableSpec] = {
    # market data (incremental exports possible)
    "klines": _market("klines", "open_time", "symbol, interval, open_time", interval_col="interval"),
    "trades": _market("trades", "time", "symbol, time, trade_id"),
    "tickers_24hr": _market("tickers_24hr", "captured_at", "symbol, captured_at"),
    "depth": TableSpec(
        "depth_snapshots s JOIN depth_levels l ON l.snapshot_id = s.id",
        "s.captured_at",
        "s.symbol",
        "s.symbol, s.captured_at, l.side DESC, l.level",
        _joined("s", "depth_snapshots", ("symbol", "captured_at", "last_update_id"))
        + _joined("l", "depth_levels", ("side", "level", "price", "qty")),
        ingested_col="s.ingested_at",
    ),
    "avg_prices": _market("avg_prices", "captured_at", "symbol, captured_at"),
    "book_tickers": _market("book_tickers", "captured_at", "symbol, captured_at"),
    "option_symbols": TableSpec("option_symbols", None, "symbol", "symbol", columns("option_symbols")),
    # the analyst views
    "option_chain": _view("option_chain", None, "symbol", "expiry_time, option_type, strike_price, symbol"),
    "top_of_book": _view("top_of_book", "captured_at", "symbol", "symbol, captured_at"),
    "trades_enriched": _view("trades_enriched", "time", "symbol", "symbol, time, trade_id"),
    # the account's tables and views
    "account_orders": TableSpec("account_orders", "time", "symbol", "symbol, order_id", columns("account_orders")),
    "account_option_records": TableSpec(
        "account_option_records", "created_at", "symbol", "created_at, record_id", columns("account_option_records")
    ),
    "account_positions": TableSpec(
        "account_positions", "captured_at", "symbol", "symbol, captured_at", columns("account_positions")
    ),
    "account_balances": TableSpec(
        "account_balances", "captured_at", None, "section, asset, captured_at", columns("account_balances")
    ),
    "account_short_call": TableSpec(
        "account_short_call", "captured_at", "symbol", "symbol, captured_at", columns("account_short_call")
    ),
    "account_open_orders": _view("account_open_orders", "time", "symbol", "symbol, order_id"),
    "position_marks": _view("position_marks", None, "symbol", "symbol"),
    "account_balance_daily": _view("account_balance_daily", None, None, "day, section, asset"),
}


@dataclass(frozen=True)
class ExportResult:
    path: Path
    rows: int
    bytes: int
    schema: dict[str, str]
    format: str = "parquet"
    files: int = 1
    cursor: str | None = None  # incremental: the cursor's name and the ingestion window exported
    since: datetime | None = None
    until: datetime | None = None
    held_by: str | None = None  # incremental: the transaction that held the horizon back, if one did


# --- the format and the target --------------------------------------------------------------------


def format_for(path: str | os.PathLike, fmt: str | None = None, *, partitioned: bool = False) -> str:
    """The format to write ``path`` in: ``fmt`` when given, else the one its extension names."""
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    name = Path(path).name.lower()
    by_name = next((f for ext, f in EXTENSIONS.items() if name.endswith(ext)), None)
    if partitioned:
        if (fmt or by_name or "parquet") != "parquet":
            raise ConfigError(f"--partition-by writes a Parquet directory, not {fmt or by_name}")
        return "parquet"
    if fmt is not None:
        return fmt
    if by_name is None:
        known = ", ".join(EXTENSIONS)
        raise ConfigError(f"cannot tell the format of {Path(path).name!r} from its extension ({known}); say --format")
    return by_name


def parse_partition_by(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"symbol,day"`` (or a sequence) -> ("symbol", "day"), checked."""
    if not value:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    keys = tuple(k.strip() for k in items if k.strip())
    unknown = [k for k in keys if k not in PARTITION_KEYS]
    if unknown or not keys:
        raise ConfigError(
            f"cannot partition by {', '.join(unknown) or repr(value)}; choose from {', '.join(PARTITION_KEYS)}"
        )
    if len(set(keys)) != len(keys):
        raise ConfigError(f"--partition-by names a key twice: {','.join(keys)}")
    if {"day", "month"} <= set(keys):
        raise ConfigError("--partition-by takes day or month, not both")
    return keys


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
        clauses.append(f"{spec.interval_col} = %(interval)s")
        params["interval"] = interval
    return " AND ".join(clauses), params


def _check(
    table: str,
    spec: TableSpec,
    symbols: Sequence[str] | None,
    start: datetime | None,
    end: datetime | None,
    interval: str | None,
    keys: tuple[str, ...],
    since_last: bool,
) -> None:
    if start is not None and end is not None and start >= end:
        raise ConfigError("--start must be before --end")
    if interval is not None:
        if spec.interval_col is None:
            raise ConfigError("--interval applies to --table klines only")
        if interval not in INTERVALS:
            raise ConfigError(f"unknown interval {interval!r}; choose from {', '.join(INTERVALS)}")
    if symbols and spec.symbol_col is None:
        raise ConfigError(f"--symbol does not apply to {table}: it has no symbol")
    if (start is not None or end is not None) and spec.time_col is None:
        raise ConfigError(f"--start/--end do not apply to {table}: it has no time of its own")
    if "symbol" in keys and spec.symbol_col is None:
        raise ConfigError(f"cannot partition {table} by symbol: it has none")
    if {"day", "month"} & set(keys) and spec.time_col is None:
        raise ConfigError(f"cannot partition {table} by day or month: it has no time of its own")
    if since_last and spec.ingested_col is None:
        incremental = ", ".join(k for k, s in TABLES.items() if s.ingested_col)
        raise ConfigError(f"--since-last applies to tables with an ingestion time ({incremental}), not {table}")


def export(
    engine: Engine,
    table: str,
    path: str | os.PathLike,
    fmt: str | None = None,
    *,
    symbols: Sequence[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    interval: str | None = None,
    partition_by: str | Sequence[str] | None = None,
    since_last: bool = False,
    cursor: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
    row_group_rows: int = ROW_GROUP_ROWS,
    settle: timedelta = cursors.SETTLE,
) -> ExportResult:
    """Write the rows of ``table`` matching the filters to ``path``; see the module docstring.

    ``fmt`` None: from the extension. ``partition_by``: a Parquet directory. ``since_last``: only
    rows ingested since the last export under ``cursor`` (default: the table and the absolute path).
    """
    if table not in TABLES:
        raise ConfigError(f"unknown table {table!r}; choose from {', '.join(TABLES)}")
    spec = TABLES[table]
    keys = parse_partition_by(partition_by)
    _check(table, spec, symbols, start, end, interval, keys, since_last)
    if cursor is not None and not since_last:
        raise ConfigError("--cursor goes with --since-last")
    target = Path(path)
    if not target.parent.is_dir():
        raise ConfigError(f"output directory {target.parent} does not exist")
    fmt = format_for(target, fmt, partitioned=bool(keys))
    if keys:
        _check_directory(target)
    elif target.is_dir():
        raise ConfigError(f"{target} is a directory; a directory is written with --partition-by")
    where, params = _filters(spec, symbols, start, end, interval)
    job = _Job(table, spec, where, params, fmt, keys, chunk_rows, row_group_rows)
    if not since_last:
        # One snapshot: the decimal scales measured first hold for the rows read after.
        with reading(engine, isolation="REPEATABLE READ") as conn:
            job = job.resolved(conn)
            out = _write_directory(conn, job, target) if keys else _write_file(conn, job, target)
        return out
    name = cursor or f"{table} -> {target.resolve()}"
    with cursors.incremental(engine, name, table, settle=settle) as inc:
        window = " AND ".join(
            [
                where,
                *([f"{spec.ingested_col} >= %(since)s"] if inc.since is not None else []),
                f"{spec.ingested_col} < %(until)s",
            ]
        )
        ingested = Column("ingested_at", "time", False, spec.ingested_col)
        job = replace(job, where=window, params={**params, "since": inc.since, "until": inc.until}, extra=(ingested,))
        job = job.resolved(inc.conn)
        if keys:
            out = _append_directory(inc.conn, job, target, name, table, inc.since)
        else:
            out = _write_file(inc.conn, job, target)
        inc.advance(out.rows)  # only now, with the output in place
    return replace(out, cursor=name, since=inc.since, until=inc.until, held_by=inc.held_by)


@dataclass(frozen=True)
class _Job:
    table: str
    spec: TableSpec
    where: str
    params: dict[str, Any]
    fmt: str
    keys: tuple[str, ...]
    chunk_rows: int
    row_group_rows: int
    extra: tuple[Column, ...] = ()  # after the table's own columns (ingested_at, incrementally)
    cols: tuple[Column, ...] = field(default=())

    def resolved(self, conn: Connection) -> _Job:
        """With the columns known (a view's are read from the database)."""
        own = cursors.view_columns(conn, self.spec.source) if self.spec.view else self.spec.columns
        return replace(self, cols=own + self.extra)

    @property
    def order(self) -> str:
        """Partition keys first, so that each partition's rows come together."""
        lead = [
            self.spec.symbol_col if k == "symbol" else _PARTITION_EXPR[k].format(t=self.spec.time_col)
            for k in self.keys
        ]
        return ", ".join([*(c for c in lead if c), self.spec.order])

    def select(self, exprs: Sequence[str]) -> str:
        return f"SELECT {', '.join(exprs)} FROM {self.spec.source} WHERE {self.where} ORDER BY {self.order}"


# --- one file -------------------------------------------------------------------------------------


def _write_file(conn: Connection, job: _Job, target: Path) -> ExportResult:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if job.fmt in ("csv", "csv.gz"):
            rows, schema = _write_csv(conn, job, tmp)
        elif job.fmt in ("jsonl", "json"):
            rows, schema = _write_json(conn, job, tmp)
        else:
            rows, schema = _write_parquet(conn, job, tmp, _arrow_schema(conn, job))
        tmp.chmod(0o644)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return ExportResult(target, rows, target.stat().st_size, schema, job.fmt)


# --- CSV: PostgreSQL formats every value, COPY streams it -------------------------------------


def _text_expr(c: Column) -> str:
    if c.kind == "time":
        return f"to_char({c.sql} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS {c.name}"
    if c.kind == "date":  # whatever the session's DateStyle
        return f"to_char({c.sql}, 'YYYY-MM-DD') AS {c.name}"
    return f"{c.sql} AS {c.name}"


def _csv_expr(c: Column) -> str:
    if c.kind == "bool":  # COPY itself would write t/f
        return f"{c.sql}::text AS {c.name}"
    return _text_expr(c)  # COPY writes numerics in their exact stored text


def _write_csv(conn: Connection, job: _Job, tmp: Path) -> tuple[int, dict]:
    select = job.select([_csv_expr(c) for c in job.cols])
    raw = driver_connection(conn)
    opener: Any = gzip.open if job.fmt == "csv.gz" else open
    with raw.cursor() as cur, opener(tmp, "wb") as out:
        with cur.copy(f"COPY ({select}) TO STDOUT (FORMAT csv, HEADER true)", job.params) as copy:
            for block in copy:
                out.write(block)
        rows = cur.rowcount
    return rows, {c.name: c.kind for c in job.cols}


# --- JSON: PostgreSQL renders each row, exact numbers included --------------------------------


def _write_json(conn: Connection, job: _Job, tmp: Path) -> tuple[int, dict]:
    inner = job.select([_text_expr(c) for c in job.cols])
    select = f"SELECT row_to_json(r)::text FROM ({inner}) r"
    streamed = {"stream_results": True, "yield_per": job.chunk_rows}  # this statement only
    result = conn.exec_driver_sql(select, job.params, execution_options=streamed)
    rows = 0
    array = job.fmt == "json"
    try:
        with tmp.open("w", encoding="utf-8") as out:
            if array:
                out.write("[")
            for part in result.partitions(job.chunk_rows):
                if array:  # [\n{...},\n{...}\n]
                    out.write(("," if rows else "") + "\n" + ",\n".join(r[0] for r in part))
                else:  # one object a line
                    out.write("\n".join(r[0] for r in part) + "\n")
                rows += len(part)
            if array:
                out.write("\n]\n" if rows else "]\n")
    finally:
        result.close()
    return rows, {c.name: c.kind for c in job.cols}


# --- Parquet: a server-side cursor, a row group per chunk ---------------------------------------


def _decimal_type(scale: int | None, int_digits: int | None, *, room: bool = False) -> pa.DataType:
    """Exactly the room the values need; ``room``: as much integer and scale room as decimal128
    gives beyond that (scale 18 at least), for a dataset later exports will add to."""
    if scale is None or int_digits is None:  # no values at all: any exact type will do
        return pa.decimal128(38, 18)
    if room and int_digits + max(scale, 18) <= 38:
        return pa.decimal128(38, max(scale, 18))
    precision = max(1, int_digits + scale)
    if precision <= 38:
        return pa.decimal128(precision, scale)
    if precision <= 76:
        return pa.decimal256(precision, scale)
    raise ConfigError(f"a value needs {precision} digits, more than Parquet decimals hold; use --format csv")


_ARROW = {
    "text": pa.string(),
    "time": pa.timestamp("us", tz="UTC"),
    "int": pa.int64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "interval": pa.duration("us"),
    "float": pa.float64(),
}


def _measure(conn: Connection, job: _Job) -> dict[str, tuple[int | None, int | None]]:
    """Per numeric column: the largest scale and the largest number of integer digits exported."""
    nums = [c for c in job.cols if c.kind == "num"]
    if not nums:
        return {}
    measures = ", ".join(f"max(scale({c.sql})), max(length(trunc(abs({c.sql}))::text))" for c in nums)
    spec, where = job.spec, job.where
    got = conn.exec_driver_sql(f"SELECT {measures} FROM {spec.source} WHERE {where}", job.params).one()
    return {c.name: (got[2 * i], got[2 * i + 1]) for i, c in enumerate(nums)}


def _arrow_schema(
    conn: Connection, job: _Job, *, room: bool = False, keep: dict[str, pa.DataType] | None = None
) -> pa.Schema:
    """The file schema. ``keep``: the decimal types a dataset already has, kept when the new values
    fit them (else ConfigError: a dataset's files must agree)."""
    measured = _measure(conn, job)
    numeric = {name: _decimal_type(s, d, room=room) for name, (s, d) in measured.items()}
    for name, want in (keep or {}).items():
        if name not in measured:
            continue
        scale, digits = measured[name]
        if scale is not None and digits is not None and (scale > want.scale or digits > want.precision - want.scale):
            raise ConfigError(
                f"column {name} now needs {numeric[name]}, more than the dataset's {want}: export into a new "
                "directory (with a new --cursor)"
            )
        numeric[name] = want
    return pa.schema([pa.field(c.name, numeric[c.name] if c.kind == "num" else _ARROW[c.kind]) for c in job.cols])


def _parquet_expr(c: Column) -> str:
    if c.kind == "time":  # integer microseconds: no datetime object per value
        return f"(extract(epoch FROM {c.sql}) * 1000000)::int8 AS {c.name}"
    if c.kind == "interval":
        return f"(extract(epoch FROM {c.sql}) * 1000000)::int8 AS {c.name}"
    if c.kind == "date":  # days since the epoch
        return f"({c.sql} - DATE '1970-01-01') AS {c.name}"
    return f"{c.sql} AS {c.name}"


def _batches(
    conn: Connection, job: _Job, schema: pa.Schema, exprs: Sequence[str]
) -> Generator[pa.RecordBatch, None, None]:
    """The selected rows as record batches of ``schema``, ``chunk_rows`` at a time."""
    select = job.select(exprs)
    streamed = {"stream_results": True, "yield_per": job.chunk_rows}  # this statement only
    result = conn.exec_driver_sql(select, job.params, execution_options=streamed)
    try:
        for part in result.partitions(job.chunk_rows):
            yield _batch(part, schema)
    finally:
        result.close()  # a failed export must not leave the server-side cursor behind


def _write_parquet(conn: Connection, job: _Job, tmp: Path, schema: pa.Schema) -> tuple[int, dict]:
    rows = 0
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    batches = _batches(conn, job, schema, [_parquet_expr(c) for c in job.cols])
    with closing(batches), pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for batch in batches:
            pending.append(batch)
            pending_rows += batch.num_rows
            rows += batch.num_rows
            if pending_rows >= job.row_group_rows:
                writer.write_table(pa.Table.from_batches(pending, schema), row_group_size=pending_rows)
                pending, pending_rows = [], 0
        if pending_rows or rows == 0:
            writer.write_table(pa.Table.from_batches(pending, schema), row_group_size=max(pending_rows, 1))
    return rows, {f.name: str(f.type) for f in schema}


def _batch(part: Sequence[Sequence[Any]], schema: pa.Schema, only: Sequence[int] | None = None) -> pa.RecordBatch:
    """Rows as a batch of ``schema``; ``only``: the positions of the row's values it takes."""
    by_column = list(zip(*part, strict=True))
    if only is not None:
        by_column = [by_column[i] for i in only]
    arrays = []
    for f, values in zip(schema, by_column, strict=True):
        if pa.types.is_timestamp(f.type) or pa.types.is_duration(f.type):
            arrays.append(pa.array(values, pa.int64()).cast(f.type))
        elif pa.types.is_date32(f.type):
            arrays.append(pa.array(values, pa.int32()).cast(f.type))
        else:
            arrays.append(pa.array(values, f.type))  # raises rather than drop a digit
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


# --- a partitioned Parquet dataset ----------------------------------------------------------------

_PARTITION_EXPR = {
    "day": "(({t}) AT TIME ZONE 'UTC')::date - DATE '1970-01-01'",
    "month": "to_char(({t}) AT TIME ZONE 'UTC', 'YYYY-MM')",
}
_PARTITION_TYPE = {"symbol": pa.string(), "day": pa.date32(), "month": pa.string()}


def _check_directory(target: Path) -> None:
    """A partitioned export writes into a new or empty directory, or one it wrote before."""
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{target} is a file; --partition-by writes a directory")
    if target.is_dir() and any(target.iterdir()) and not (target / MARKER).is_file():
        raise ConfigError(f"{target} is not empty and not a partitioned export: choose a new or empty directory")


def _write_dataset(conn: Connection, job: _Job, base: Path, schema: pa.Schema, basename: str) -> tuple[int, int]:
    """Write the rows under ``base`` as a Hive-partitioned dataset (directories named as pyarrow's
    ``partitioning(flavor="hive")`` names them); (rows, files).

    The rows come in partition order, so one file is open at a time and holds at most a row group
    unwritten: memory does not grow with the number of partitions or rows.
    """
    exprs = [_parquet_expr(c) for c in job.cols]
    key_at: list[int] = []
    for name in job.keys:
        if name == "symbol":
            key_at.append(next(i for i, c in enumerate(job.cols) if c.name == "symbol"))
        else:
            key_at.append(len(exprs))
            exprs.append(f"{_PARTITION_EXPR[name].format(t=job.spec.time_col)} AS {name}")
    dropped = set(key_at)
    keep = [i for i in range(len(job.cols)) if i not in dropped]
    file_schema = pa.schema([schema.field(i) for i in keep])  # the keys live in the directory names
    import pyarrow.dataset as ds  # here: a plain file export need not load it

    naming = ds.partitioning(pa.schema([pa.field(k, _PARTITION_TYPE[k]) for k in job.keys]), flavor="hive")
    # Rows are fetched as they are selected, partition columns included; each group is cut to the
    # file's columns before it becomes a batch.
    select = job.select(exprs)
    streamed = {"stream_results": True, "yield_per": job.chunk_rows}  # this statement only
    result = conn.exec_driver_sql(select, job.params, execution_options=streamed)
    key_of = operator.itemgetter(*key_at)  # in C: this runs once per row
    rows = files = 0
    writer: pq.ParquetWriter | None = None
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    current: tuple | None = None
    seen: dict[tuple, int] = {}

    def flush() -> None:
        nonlocal pending, pending_rows
        if writer is not None and pending_rows:
            writer.write_table(pa.Table.from_batches(pending, file_schema), row_group_size=pending_rows)
        pending, pending_rows = [], 0

    try:
        for part in result.partitions(job.chunk_rows):
            at = 0
            for found, group in itertools.groupby(part, key=key_of):
                size = sum(1 for _ in group)
                key: tuple = found if len(key_at) > 1 else (found,)
                if key != current:
                    flush()
                    if writer is not None:
                        writer.close()
                    # Never twice in one export if the rows come in order; a new file if not.
                    n = seen[key] = seen.get(key, -1) + 1
                    directory = base / naming.format(_partition_expression(job.keys, key))[0]
                    directory.mkdir(parents=True, exist_ok=True)
                    writer = pq.ParquetWriter(directory / basename.format(i=n), file_schema, compression="zstd")
                    files += 1
                    current = key
                pending.append(_batch(part[at : at + size], file_schema, keep))
                at += size
                pending_rows += size
                rows += size
                if pending_rows >= job.row_group_rows:
                    flush()
        flush()
    finally:
        result.close()  # a failed export must not leave the server-side cursor behind
        if writer is not None:
            writer.close()
    return rows, files


def _partition_expression(keys: tuple[str, ...], values: tuple) -> Any:
    """``key == value and ...``, the dataset expression a directory name is made from."""
    import pyarrow.dataset as ds

    expr = None
    for key, value in zip(keys, values, strict=True):
        if value is None:
            term = ds.field(key).is_null()
        elif key == "day":
            term = ds.field(key) == pa.scalar(value, pa.int32()).cast(pa.date32())
        else:
            term = ds.field(key) == value
        expr = term if expr is None else expr & term
    assert expr is not None
    return expr


def _marker(table: str, keys: tuple[str, ...], cursor: str | None, schema: pa.Schema) -> dict:
    return {
        "table": table,
        "partition_by": list(keys),
        "cursor": cursor,
        "decimals": {f.name: [f.type.precision, f.type.scale] for f in schema if pa.types.is_decimal(f.type)},
        "columns": [f.name for f in schema] + [k for k in keys if k != "symbol"],
    }


def _size(base: Path) -> tuple[int, int]:
    files = [p for p in base.rglob("*.parquet") if not any(part.startswith(".") for part in p.relative_to(base).parts)]
    return len(files), sum(p.stat().st_size for p in files)


def _write_directory(conn: Connection, job: _Job, target: Path) -> ExportResult:
    """A whole export: built in a temporary directory beside ``target``, then swapped in."""
    if (target / MARKER).is_file() and json.loads((target / MARKER).read_text()).get("cursor"):
        raise ConfigError(f"{target} is fed by --since-last; export the whole table into another directory")
    schema = _arrow_schema(conn, job)
    rows = _whole_dataset(conn, job, target, schema, "part-{i}.parquet", _marker(job.table, job.keys, None, schema))
    files, size = _size(target)
    return ExportResult(target, rows, size, {f.name: str(f.type) for f in schema}, "parquet", files)


def _whole_dataset(conn: Connection, job: _Job, target: Path, schema: pa.Schema, basename: str, marker: dict) -> int:
    """Write the dataset into a hidden directory beside ``target``, with its marker, then swap it in
    (nothing half-written is ever at ``target``). Returns the rows written."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        rows, _ = _write_dataset(conn, job, tmp, schema, basename)
        (tmp / MARKER).write_text(json.dumps(marker, indent=1) + "\n")
        _open_up(tmp)
        _swap(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return rows


def _append_directory(
    conn: Connection, job: _Job, target: Path, cursor: str, table: str, since: datetime | None
) -> ExportResult:
    """An incremental export: its files are added to the dataset (made on the first run).

    Files are named after the cursor position the run started from. A run that placed its files
    but failed before its cursor moved is followed by one starting from the same position, which
    first removes those files: the dataset holds each row version once either way.
    """
    token = "start" if since is None else since.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    basename = f"part-{token}-{{i}}.parquet"
    marker_path = target / MARKER
    if marker_path.is_file():
        marker = json.loads(marker_path.read_text())
        if (
            marker.get("cursor") != cursor
            or marker.get("table") != table
            or marker.get("partition_by") != list(job.keys)
        ):
            raise ConfigError(
                f"{target} holds exports of {marker.get('table')} by {','.join(marker.get('partition_by', []))} "
                f"under cursor {marker.get('cursor')!r}: choose another directory"
            )
        keep = {
            name: pa.decimal128(p, s) if p <= 38 else pa.decimal256(p, s) for name, (p, s) in marker["decimals"].items()
        }
        schema = _arrow_schema(conn, job, keep=keep)
        for stale in target.glob(".staging-*"):  # a failed run's; we hold the cursor, so no run's now
            shutil.rmtree(stale, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target))
        try:
            rows, _ = _write_dataset(conn, job, staging, schema, basename)
            for leftover in target.rglob(f"part-{token}-*.parquet"):
                if staging not in leftover.parents:
                    leftover.unlink()
            _open_up(staging)
            for made in sorted(staging.rglob("*.parquet")):
                place = target / made.relative_to(staging)
                place.parent.mkdir(parents=True, exist_ok=True)
                os.replace(made, place)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    else:  # the first run into this directory: made whole, then put in place
        schema = _arrow_schema(conn, job, room=True)
        rows = _whole_dataset(conn, job, target, schema, basename, _marker(table, job.keys, cursor, schema))
    files, size = _size(target)
    return ExportResult(target, rows, size, {f.name: str(f.type) for f in schema}, "parquet", files)


def _open_up(base: Path) -> None:
    """Readable by others like any file the collector writes (mkdtemp makes 0700)."""
    base.chmod(0o755)
    for p in base.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)


def _swap(tmp: Path, target: Path) -> None:
    """Put the directory ``tmp`` where ``target`` is (replacing an empty one or an earlier export)."""
    if not target.exists():
        os.replace(tmp, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    old.rmdir()
    os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)
