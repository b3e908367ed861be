"""Writing domain records. Each function runs inside the caller's transaction, so a caller that
also moves a checkpoint (see checkpoints.py) commits rows and checkpoint together or not at all."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from operator import attrgetter

from sqlalchemy import Connection, Row, case, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from collector.domain import (
    AvgPrice,
    BookTicker,
    DepthSnapshot,
    Kline,
    ListedSymbol,
    OptionSymbol,
    StreamKline,
    Ticker24h,
    Trade,
)
from collector.store.columns import columns
from collector.store.models import (
    AvgPriceRow,
    BookTickerRow,
    DepthLevelRow,
    DepthSnapshotRow,
    JobErrorRow,
    KlineRow,
    OptionSymbolRow,
    Ticker24hRow,
    TradeRow,
    table_of,
)
from collector.store.upsert import upsert, upsert_tuples

TRADES = table_of(TradeRow)
KLINES = table_of(KlineRow)
TICKERS = table_of(Ticker24hRow)
SYMBOLS = table_of(OptionSymbolRow)


# The records' fields are named as the columns (store.columns describes them once).
_TRADE_COLUMNS = tuple(c.name for c in columns("trades"))
_KLINE_FIELDS = tuple(c.name for c in columns("klines") if c.name != "is_closed")
_kline_values = attrgetter(*_KLINE_FIELDS)


def trade_row(t: Trade) -> dict:
    return dict(zip(_TRADE_COLUMNS, _trade_values(t), strict=True))


def kline_row(k: Kline, *, closed: bool = True) -> dict:
    return {**dict(zip(_KLINE_FIELDS, _kline_values(k), strict=True)), "is_closed": closed}


_trade_values = attrgetter(*_TRADE_COLUMNS)  # field names match the columns


def write_trades(conn: Connection, trades: Iterable[Trade]) -> int:
    # Tuples straight from the records (attrgetter, in C): the backfill's hot path builds no dicts.
    return upsert_tuples(conn, TRADES, _TRADE_COLUMNS, map(_trade_values, trades))


def write_klines(conn: Connection, klines: Iterable[Kline], *, now: datetime | None = None) -> int:
    """Upsert klines; those whose close time is not yet past ``now`` are stored as partial."""
    rows = [kline_row(k, closed=now is None or k.close_time < now) for k in klines]
    return upsert(conn, KLINES, rows, touch=("updated_at",))


_STREAM_KLINE_FIELDS: tuple[str, ...] = StreamKline.__slots__  # named as the columns
# The SQL's fragments: the fields' own names (fixed in the code); every value is a bind parameter.
_SK_COLUMNS = ", ".join(f'"{c}"' for c in _STREAM_KLINE_FIELDS)
_SK_VALUES = ", ".join(f":{c}" for c in _STREAM_KLINE_FIELDS)
_SK_PRICES = _STREAM_KLINE_FIELDS[4:]  # open .. quote_volume: what the stream changes
_SK_SET = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in _SK_PRICES)
_SK_MINE = ", ".join(f'klines."{c}"' for c in _SK_PRICES)
_SK_THEIRS = ", ".join(f'EXCLUDED."{c}"' for c in _SK_PRICES)
_STREAM_KLINE_SQL = text(
    f"INSERT INTO klines ({_SK_COLUMNS}, trade_count, taker_buy_base_volume, taker_buy_quote_volume, is_closed) "
    f"VALUES ({_SK_VALUES}, NULL, NULL, NULL, false) "
    f"ON CONFLICT (symbol, interval, open_time) DO UPDATE SET {_SK_SET}, trade_count = NULL, "
    "taker_buy_base_volume = NULL, taker_buy_quote_volume = NULL, updated_at = now(), ingested_at = now() "
    f"WHERE NOT klines.is_closed AND ({_SK_MINE}) IS DISTINCT FROM ({_SK_THEIRS})"
)


def write_stream_klines(conn: Connection, klines: Iterable[StreamKline]) -> int:
    """The open klines as the push stream shows them: prices and volumes, with trade count and
    taker volumes unknown (NULL). A kline REST stored as closed is never touched: it is final."""
    rows = [{f: getattr(k, f) for f in _STREAM_KLINE_FIELDS} for k in klines]
    if not rows:
        return 0
    return max(conn.execute(_STREAM_KLINE_SQL, rows).rowcount, 0)


def write_tickers(conn: Connection, tickers: Iterable[Ticker24h]) -> int:
    rows = [
        {f: getattr(t, f) for f in Ticker24h.__slots__}  # field names match the columns
        for t in tickers
    ]
    return upsert(conn, TICKERS, rows)


def write_avg_prices(conn: Connection, prices: Iterable[AvgPrice]) -> int:
    rows = [{"symbol": p.symbol, "captured_at": p.captured_at, "mins": p.mins, "price": p.price} for p in prices]
    return upsert(conn, table_of(AvgPriceRow), rows)


def write_book_tickers(conn: Connection, tickers: Iterable[BookTicker]) -> int:
    rows = [{f: getattr(t, f) for f in BookTicker.__slots__} for t in tickers]
    return upsert(conn, table_of(BookTickerRow), rows)


def write_depth(conn: Connection, snapshot: DepthSnapshot, *, limit: int | None = None) -> int | None:
    """Store one snapshot and its levels; returns its id (None if that capture was stored before)."""
    stmt = (
        pg_insert(table_of(DepthSnapshotRow))
        .values(
            symbol=snapshot.symbol,
            captured_at=snapshot.captured_at,
            last_update_id=snapshot.last_update_id,
            depth_limit=limit,
        )
        .on_conflict_do_nothing(index_elements=["symbol", "captured_at"])
        .returning(table_of(DepthSnapshotRow).c.id)
    )
    snapshot_id = conn.execute(stmt).scalar()
    if snapshot_id is None:
        return None
    levels = [
        {"snapshot_id": snapshot_id, "side": side, "level": i, "price": lv.price, "qty": lv.qty}
        for side, book in (("bid", snapshot.bids), ("ask", snapshot.asks))
        for i, lv in enumerate(book)
    ]
    if levels:
        conn.execute(insert(table_of(DepthLevelRow)), levels)
    return snapshot_id


def write_symbols(
    conn: Connection,
    infos: Sequence[OptionSymbol],
    listed: Sequence[ListedSymbol],
    *,
    now: datetime,
    mark_delisted: bool = True,
    unreadable: Iterable[str] = (),
) -> dict[str, list[str]]:
    """Merge optionInfo and exchangeInfo into option_symbols.

    Symbols in either list are (re)marked listed; symbols no longer in either are marked delisted,
    never deleted. ``unreadable`` names symbols whose entries were malformed (left out by the
    parser): they are neither written nor delisted. An underlying read off the name never replaces
    one optionInfo gave. Returns the names that were new and that were delisted by this refresh.
    """
    by_symbol: dict[str, dict] = {}
    for s in listed:
        by_symbol.setdefault(s.symbol, {"symbol": s.symbol}).update(
            status=s.status, base_asset=s.base_asset, quote_asset=s.quote_asset, quote_precision=s.quote_precision
        )
    for o in infos:
        by_symbol.setdefault(o.symbol, {"symbol": o.symbol}).update(
            status=o.status,
            option_type=o.option_type,
            raw_type=o.raw_type,
            expiry_time=o.expiry_time,
            underlying=o.underlying,
            underlying_source=o.underlying_source,
            weekly=o.weekly,
            can_release=o.can_release,
        )
    known = set(conn.execute(select(SYMBOLS.c.symbol)).scalars())
    new = sorted(set(by_symbol) - known)
    columns = (
        "status",
        "base_asset",
        "quote_asset",
        "quote_precision",
        "option_type",
        "raw_type",
        "expiry_time",
        "weekly",
        "can_release",
    )
    for row in by_symbol.values():
        values = {c: row[c] for c in columns if c in row}
        terms = {c: row[c] for c in ("underlying", "underlying_source") if row.get("underlying")}
        stmt = pg_insert(SYMBOLS).values(
            symbol=row["symbol"], listed=True, first_seen=now, last_seen=now, delisted_at=None, **values, **terms
        )
        keep_exchange_terms = (SYMBOLS.c.underlying_source == "optionInfo") & (
            stmt.excluded.underlying_source != "optionInfo"
        )
        terms_set = {c: case((keep_exchange_terms, SYMBOLS.c[c]), else_=stmt.excluded[c]) for c in terms}
        stmt = stmt.on_conflict_do_update(
            index_elements=["symbol"],
            set_={
                **{c: stmt.excluded[c] for c in values},
                **terms_set,
                "listed": True,
                "last_seen": now,
                "delisted_at": None,
            },
        )
        conn.execute(stmt)
    if not mark_delisted:
        return {"new": new, "delisted": []}
    still = list(by_symbol) + [s for s in unreadable if s not in by_symbol]
    gone = (
        conn.execute(
            update(SYMBOLS)
            .where(SYMBOLS.c.listed.is_(True), SYMBOLS.c.symbol.not_in(still or [""]))
            .values(listed=False, delisted_at=now)
            .returning(SYMBOLS.c.symbol)
        )
        .scalars()
        .all()
    )
    return {"new": new, "delisted": sorted(gone)}


def write_job_error(conn: Connection, job: str, symbol: str | None, error_class: str, message: str) -> None:
    """One failed daemon job run (per symbol where the job is per symbol), for `collector status`."""
    conn.execute(
        insert(table_of(JobErrorRow)).values(job=job, symbol=symbol, error_class=error_class, message=message[:2000])
    )


def symbol_states(conn: Connection) -> Sequence[Row]:
    """Every symbol with what the daemon needs to know of it: expiry, listed, swept, first seen, refused."""
    return conn.execute(
        select(
            SYMBOLS.c.symbol,
            SYMBOLS.c.expiry_time,
            SYMBOLS.c.listed,
            SYMBOLS.c.final_sweep_at,
            SYMBOLS.c.first_seen,
            SYMBOLS.c.refused_at,
            SYMBOLS.c.can_release,
        )
    ).all()


def write_swept(conn: Connection, symbol: str, at: datetime) -> None:
    """The daemon's final collection of an expired symbol is done."""
    conn.execute(update(SYMBOLS).where(SYMBOLS.c.symbol == symbol).values(final_sweep_at=at))


def refuse_symbol(conn: Connection, symbol: str, reason: str, *, at: datetime) -> bool:
    """Record that the exchange refused ``symbol``'s market data for good; True if newly refused."""
    return (
        conn.execute(
            update(SYMBOLS)
            .where(SYMBOLS.c.symbol == symbol, SYMBOLS.c.refused_at.is_(None))
            .values(refused_at=at, refusal=reason[:500])
            .returning(SYMBOLS.c.symbol)
        ).scalar()
        is not None
    )


def symbols_without_strike(conn: Connection, symbols: Iterable[str]) -> list[str]:
    """Of ``symbols``, those option_symbols has no strike for (and that the exchange has not refused)."""
    return sorted(
        conn.execute(
            select(SYMBOLS.c.symbol).where(
                SYMBOLS.c.symbol.in_(list(symbols)), SYMBOLS.c.strike_price.is_(None), SYMBOLS.c.refused_at.is_(None)
            )
        ).scalars()
    )


def set_strike_prices(conn: Connection, tickers: Iterable[Ticker24h]) -> None:
    """The strike (exertionPrice) is only in the 24hr ticker; copy it onto option_symbols."""
    for t in tickers:
        if t.strike_price is None:
            continue
        conn.execute(
            update(SYMBOLS)
            .where(SYMBOLS.c.symbol == t.symbol, SYMBOLS.c.strike_price.is_distinct_from(t.strike_price))
            .values(strike_price=t.strike_price, expiry_time=func.coalesce(SYMBOLS.c.expiry_time, t.expiry_time))
        )
