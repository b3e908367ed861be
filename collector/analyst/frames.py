"""pandas DataFrames of the stored market data, for analysts.

    from collector.analyst import frames as analysis
    k = analysis.klines("BTC0925CALL", "1m", "2026-01-01", "2026-01-02")    # float64 columns
    t = analysis.trades(["BTC0925CALL", "BTC0925PUT"], "2026-01-01T12:00Z", None, decimals=True)
    chain = analysis.option_chain()                                          # the chain now
    book = analysis.depth("BTC0925CALL", at="2026-01-01T12:00Z")            # one snapshot

**Which database.** Every function takes ``engine=``: an SQLAlchemy ``Engine`` (yours; you dispose
of it), or a URL string (``postgresql://...``; one engine per URL is kept for the process). Left
out, the collector's own settings decide, exactly as for the ``collector`` command
(``COLLECTOR_DATABASE_URL``, ``--config`` files, else the embedded server in the per-user data
directory); that database is opened once per process.

**Times.** ``start``/``end`` take a ``datetime``, ``pandas.Timestamp`` or ISO string; a time without
a zone is UTC. Windows are half-open, [start, end); ``None`` leaves that side open. Every index
and time column is ``datetime64[us, UTC]`` (PostgreSQL's own resolution; missing times are NaT).

**Numbers.** Prices and quantities are ``float64`` by default (PostgreSQL converts ``NUMERIC`` to
the nearest double). ``decimals=True`` keeps them exact as ``decimal.Decimal`` objects (``object``
dtype; missing values are ``None``). Counts are ``int64``, flags ``bool`` or nullable ``boolean``.

Filtering happens in the database, and rows are fetched through a server-side cursor in chunks of
``chunk_rows``, so only one chunk of Python objects exists at a time beside the growing frame.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Engine, text

from collector.store.columns import Column, columns
from collector.store.db import reading

CHUNK_ROWS = 100_000

__all__ = [
    "balances",
    "depth",
    "klines",
    "option_chain",
    "option_records",
    "orders",
    "position_marks",
    "positions",
    "resolve_engine",
    "tickers",
    "to_utc",
    "top_of_book",
    "trades",
]


# --- Where the data is -----------------------------------------------------------------------

_engines: dict[str | None, Any] = {}
_engines_lock = threading.Lock()


def resolve_engine(engine: Engine | str | None = None) -> Engine:
    """The Engine to read from: the one given, one for a URL, or the configured database."""
    if isinstance(engine, Engine):
        return engine
    with _engines_lock:
        held = _engines.get(engine)
        if held is None:
            if engine is None:
                from collector.config import load_settings
                from collector.store.migrate import open_for_reading

                settings = load_settings()
                # keeps an embedded server alive; creates none, and reads only the current schema
                held = open_for_reading(settings.database_url, settings.data_dir, pool_size=2)
            else:
                from collector.config import normalise_database_url
                from collector.store.db import make_engine

                held = make_engine(normalise_database_url(engine), pool_size=2)
            _engines[engine] = held
    return held if isinstance(held, Engine) else held.engine


def to_utc(value: datetime | pd.Timestamp | str | None) -> datetime | None:
    """An aware UTC datetime from a datetime, Timestamp or ISO string (naive means UTC)."""
    if value is None:
        return None
    ts = pd.Timestamp(value)
    ts = ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)
    return ts.to_pydatetime()


# --- Reading a query into a typed frame --------------------------------------------------------


def _select_list(cols: Sequence[Column], decimals: bool) -> str:
    parts = []
    for c in cols:
        expr = c.expr or c.name
        if c.kind == "time":  # exact integer microseconds: no per-row datetime objects
            expr = f"(extract(epoch FROM {expr}) * 1000000)::int8"
        elif c.kind == "num" and not decimals:
            expr = f"({expr})::float8"
        parts.append(f"{expr} AS {c.name}")
    return ", ".join(parts)


def _frame(rows: list[tuple], cols: Sequence[Column], decimals: bool) -> pd.DataFrame:
    raw = list(zip(*rows, strict=True)) if rows else [()] * len(cols)
    data: dict[str, Any] = {}
    for c, values in zip(cols, raw, strict=True):
        if c.kind == "time":
            data[c.name] = pd.to_datetime(pd.array(values, dtype="Int64"), unit="us", utc=True).as_unit("us")
        elif c.kind == "num":
            data[c.name] = pd.Series(values, dtype=object) if decimals else pd.Series(values, dtype="float64")
        elif c.kind == "int":
            data[c.name] = pd.Series(values, dtype="int64")
        elif c.kind == "bool":
            data[c.name] = pd.Series(values, dtype="boolean" if c.nullable else "bool")
        else:
            data[c.name] = pd.Series(values, dtype=object)
    return pd.DataFrame(
        {k: (v.array if isinstance(v, pd.Series) else v) for k, v in data.items()}, columns=[c.name for c in cols]
    )


def iter_frames(
    sql: str,
    params: dict[str, Any],
    cols: Sequence[Column],
    *,
    engine: Engine | str | None,
    decimals: bool,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[pd.DataFrame]:
    """Yield typed frames of at most chunk_rows rows, read through a server-side cursor."""
    eng = resolve_engine(engine)
    query = text(sql.format(columns=_select_list(cols, decimals)))
    with reading(eng) as conn:
        result = conn.execution_options(stream_results=True, yield_per=chunk_rows).execute(query, params)
        try:
            for part in result.partitions(chunk_rows):
                yield _frame([tuple(r) for r in part], cols, decimals)
        finally:
            result.close()  # also when the caller stops early: release the server-side cursor


def _read(
    sql: str,
    params: dict[str, Any],
    cols: Sequence[Column],
    index: str,
    *,
    engine: Engine | str | None,
    decimals: bool,
    chunk_rows: int,
) -> pd.DataFrame:
    chunks = list(iter_frames(sql, params, cols, engine=engine, decimals=decimals, chunk_rows=chunk_rows))
    df = (
        (chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True))
        if chunks
        else _frame([], cols, decimals)
    )
    return df.set_index(index)


def _symbols(symbol: str | Iterable[str]) -> list[str]:
    return [symbol] if isinstance(symbol, str) else list(symbol)


def _window(column: str, start: Any, end: Any, params: dict[str, Any]) -> str:
    clauses = []
    if (s := to_utc(start)) is not None:
        params["start"] = s
        clauses.append(f"{column} >= :start")
    if (e := to_utc(end)) is not None:
        params["end"] = e
        clauses.append(f"{column} < :end")
    return "".join(f" AND {c}" for c in clauses)


# --- The frames ---------------------------------------------------------------------------------

KLINE_COLS = columns("klines", first="open_time")


def klines(
    symbol: str | Iterable[str],
    interval: str = "1m",
    start: Any = None,
    end: Any = None,
    *,
    engine: Engine | str | None = None,
    decimals: bool = False,
    chunk_rows: int = CHUNK_ROWS,
) -> pd.DataFrame:
    """Klines with open_time in [start, end), indexed by open_time (partial ones: is_closed False)."""
    params: dict[str, Any] = {"symbols": _symbols(symbol), "interval": interval}
    where = _window("open_time", start, end, params)
    sql = (
        "SELECT {columns} FROM klines WHERE symbol = ANY(:symbols) AND interval = :interval"
        f"{where} ORDER BY symbol, open_time"
    )
    return _read(sql, params, KLINE_COLS, "open_time", engine=engine, decimals=decimals, chunk_rows=chunk_rows)


TRADE_COLS = columns("trades", first="time")


def trades(
    symbol: str | Iterable[str],
    start: Any = None,
    end: Any = None,
    *,
    engine: Engine | str | None = None,
    decimals: bool = False,
    chunk_rows: int = CHUNK_ROWS,
) -> pd.DataFrame:
    """Trades with time in [start, end), indexed by time (not unique: one taker can fill several)."""
    params: dict[str, Any] = {"symbols": _symbols(symbol)}
    where = _window("time", start, end, params)
    sql = f"SELECT {{columns}} FROM trades WHERE symbol = ANY(:symbols){where} ORDER BY time, trade_id"
    return _read(sql, params, TRADE_COLS, "time", engine=engine, decimals=decimals, chunk_rows=chunk_rows)


TICKER_COLS = columns("tickers_24hr", first="captured_at")


def tickers(
    symbol: str | Iterable[str],
    start: Any = None,
    end: Any = None,
    *,
    engine: Engine | str | None = None,
    decimals: bool = False,
    chunk_rows: int = CHUNK_ROWS,
) -> pd.DataFrame:
    """24hr tickers captured in [start, end), indexed by captured_at."""
    params: dict[str, Any] = {"symbols": _symbols(symbol)}
    where = _window("captured_at", start, end, params)
    sql = f"SELECT {{columns}} FROM tickers_24hr WHERE symbol = ANY(:symbols){where} ORDER BY captured_at, symbol"
    return _read(sql, params, TICKER_COLS, "captured_at", engine=engine, decimals=decimals, chunk_rows=chunk_rows)


TOP_COLS = (
    Column("captured_at", "time"),
    Column("symbol", "text"),
    Column("bid_price", "num"),
    Column("bid_qty", "num"),
    Column("ask_price", "num"),
    Column("ask_qty", "num"),
    Column("spread", "num"),
    Column("mid_price", "num"),
)


def top_of_book(
    symbol: str | Iterable[str],
    start: Any = None,
    end: Any = None,
    *,
    engine: Engine | str | None = None,
    decimals: bool = False,
    chunk_rows: int = CHUNK_ROWS,
) -> pd.DataFrame:
    """Best bid and ask of every depth snapshot in [start, end) (the top_of_book view)."""
    params: dict[str, Any] = {"symbols": _symbols(symbol)}
    where = _window("captured_at", start, end, params)
    sql = f"SELECT {{columns}} FROM top_of_book WHERE symbol = ANY(:symbols){where} ORDER BY captured_at, symbol"
    return _read(sql, params, TOP_COLS, "captured_at", engine=engine, decimals=decimals, chunk_rows=chunk_rows)


CHAIN_COLS = (
    Column("expiry_time", "time"),
    Column("symbol", "text"),
    Column("option_type", "text"),
    Column("strike_price", "num"),
    Column("days_to_expiry", "num"),
    Column("status", "text"),
    Column("ticker_at", "time"),
    Column("last_price", "num"),
    Column("bid_price", "num"),
    Column("ask_price", "num"),
    Column("volume_24h", "num"),
    Column("quote_volume_24h", "num"),
    Column("underlying_price", "num"),
    Column("depth_at", "time"),
    Column("best_bid", "num"),
    Column("best_bid_qty", "num"),
    Column("best_ask", "num"),
    Column("best_ask_qty", "num"),
    Column("spread", "num"),
    Column("mid_price", "num"),
)


def option_chain(at: Any = None, *, engine: Engine | str | None = None, decimals: bool = False) -> pd.DataFrame:
    """Options live at ``at`` (default now) with their latest ticker and top of book as of then.

    Indexed by expiry_time, ordered by expiry, type and strike (see option_chain_at in docs/sql.md).
    """
    params: dict[str, Any] = {"at": to_utc(at) or datetime.now(UTC)}
    sql = "SELECT {columns} FROM option_chain_at(:at) ORDER BY expiry_time, option_type, strike_price, symbol"
    return _read(sql, params, CHAIN_COLS, "expiry_time", engine=engine, decimals=decimals, chunk_rows=CHUNK_ROWS)


DEPTH_COLS = (
    Column("captured_at", "time", expr="s.captured_at"),
    Column("symbol", "text", expr="s.symbol"),
    Column("snapshot_id", "int", expr="s.id"),
    Column("side", "text", expr="l.side"),
    Column("level", "int", expr="l.level"),
    Column("price", "num", expr="l.price"),
    Column("qty", "num", expr="l.qty"),
)


def depth(symbol: str, at: Any = None, *, engine: Engine | str | None = None, decimals: bool = False) -> pd.DataFrame:
    """The order book of the latest snapshot captured at or before ``at`` (default: the latest).

    One row per level (bids, then asks, best first), indexed by captured_at; empty when none.
    """
    params: dict[str, Any] = {"symbol": symbol}
    cond = ""
    if (a := to_utc(at)) is not None:
        params["at"] = a
        cond = " AND captured_at <= :at"
    sql = (
        "SELECT {columns} FROM depth_snapshots s JOIN depth_levels l ON l.snapshot_id = s.id "
        "WHERE s.id = (SELECT id FROM depth_snapshots WHERE symbol = :symbol"
        f"{cond} ORDER BY captured_at DESC LIMIT 1) ORDER BY l.side DESC, l.level"
    )
    return _read(sql, params, DEPTH_COLS, "captured_at", engine=engine, decimals=decimals, chunk_rows=CHUNK_ROWS)


# --- The account's own (orders, shorts and calls, positions, balances) ---------------------------


def _maybe_symbols(symbol: str | Iterable[str] | None, params: dict[str, Any]) -> str:
    if symbol is None:
        return "true"
    params["symbols"] = _symbols(symbol)
    return "symbol = ANY(:symbols)"


ORDER_COLS = columns("account_orders", first="time")


def orders(
    symbol: str | Iterable[str] | None = None,
    start: Any = None,
    end: Any = None,
    *,
    open_only: bool = False,
    engine: Engine | str | None = None,
    decimals: bool = False,
) -> pd.DataFrame:
    """The account's orders placed in [start, end) (all symbols by default), indexed by the time they
    were placed; ``open_only`` keeps those still NEW or PARTIALLY_FILLED (the account_open_orders view)."""
    params: dict[str, Any] = {}
    cond = _maybe_symbols(symbol, params) + _window("time", start, end, params)
    if open_only:
        cond += " AND status IN ('NEW', 'PARTIALLY_FILLED')"
    sql = f"SELECT {{columns}} FROM account_orders WHERE {cond} ORDER BY time, order_id"
    return _read(sql, params, ORDER_COLS, "time", engine=engine, decimals=decimals, chunk_rows=CHUNK_ROWS)


RECORD_COLS = columns("account_option_records", first="created_at")


def option_records(
    symbol: str | Iterable[str] | None = None,
    start: Any = None,
    end: Any = None,
    *,
    engine: Engine | str | None = None,
    decimals: bool = False,
) -> pd.DataFrame:
    """The account's shorts (status '1') and calls ('2') made in [start, end), indexed by created_at."""
    params: dict[str, Any] = {}
    cond = _maybe_symbols(symbol, params) + _window("created_at", start, end, params)
    sql = f"SELECT {{columns}} FROM account_option_records WHERE {cond} ORDER BY created_at, record_id"
    return _read(sql, params, RECORD_COLS, "created_at", engine=engine, decimals=decimals, chunk_rows=CHUNK_ROWS)


POSITION_COLS = columns("account_positions", first="captured_at")


def positions(
    at: Any = None, *, history: bool = False, engine: Engine | str | None = None, decimals: bool = False
) -> pd.DataFrame:
    """The positions held at ``at`` (default: now), one row per symbol from its latest snapshot, indexed
    by when that was captured; ``history=True`` gives every snapshot up to ``at`` instead (a row is
    stored only when the holding changed, and a row of zeros when it closed)."""
    params: dict[str, Any] = {"at": to_utc(at) or datetime.now(UTC)}
    if history:
        sql = "SELECT {columns} FROM account_positions WHERE captured_at <= :at ORDER BY captured_at, symbol"
    else:
        sql = (
            "SELECT {columns} FROM (SELECT DISTINCT ON (symbol) * FROM account_positions WHERE captured_at <= :at "
            "ORDER BY symbol, captured_at DESC) p WHERE amount <> 0 ORDER BY symbol"
        )
    return _read(sql, params, POSITION_COLS, "captured_at", engine=engine, decimals=decimals, chunk_rows=CHUNK_ROWS)


MARK_COLS = (
    Column("symbol", "text"),
    Column("position_at", "time"),
    Column("amount", "num"),
    Column("cost", "num"),
    Column("type", "text"),
    Column("exec_time", "time"),
    Column("exec_price", "num"),
    Column("mark_price", "num"),
    Column("market_value", "num"),
    Column("unrealised_pnl", "num"),
    Column("ticker_at", "time"),
    Column("book_at", "time"),
)


def position_marks(*, engine: Engine | str | None = None, decimals: bool = False) -> pd.DataFrame:
    """Every open position valued at the latest mid price (else the last ticker price), with its
    unrealised P&L (the position_marks view), indexed by symbol."""
    sql = "SELECT {columns} FROM position_marks ORDER BY symbol"
    return _read(sql, {}, MARK_COLS, "symbol", engine=engine, decimals=decimals, chunk_rows=CHUNK_ROWS)


BALANCE_COLS = columns("account_balances", first="captured_at")
DAILY_BALANCE_COLS = (
    Column("day", "time", expr="day::timestamp AT TIME ZONE 'UTC'"),
    Column("section", "text"),
    Column("asset", "text"),
    Column("free", "num"),
    Column("locked", "num"),
    Column("total", "num"),
    Column("as_of", "time"),
)


def balances(
    start: Any = None,
    end: Any = None,
    *,
    daily: bool = False,
    engine: Engine | str | None = None,
    decimals: bool = False,
) -> pd.DataFrame:
    """The account's balances: every change captured in [start, end), indexed by captured_at; or with
    ``daily=True`` each (section, asset) at the end of every UTC day (the account_balance_daily view),
    indexed by the day's midnight."""
    params: dict[str, Any] = {}
    if daily:
        where = _window("day", start, end, params)
        sql = f"SELECT {{columns}} FROM account_balance_daily WHERE true{where} ORDER BY day, section, asset"
        return _read(sql, params, DAILY_BALANCE_COLS, "day", engine=engine, decimals=decimals, chunk_rows=CHUNK_ROWS)
    where = _window("captured_at", start, end, params)
    sql = f"SELECT {{columns}} FROM account_balances WHERE true{where} ORDER BY captured_at, section, asset"
    return _read(sql, params, BALANCE_COLS, "captured_at", engine=engine, decimals=decimals, chunk_rows=CHUNK_ROWS)
