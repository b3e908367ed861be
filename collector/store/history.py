"""History with its proof: rows and their checkpoint in one transaction, shared by the daemon and
the backfill (their scopes differ: ``live``, or ``backfill <start>/<end>``).

A crash before the commit loses both the rows and the checkpoint's advance, a crash after keeps
both, so whoever resumes from the checkpoint neither misses nor repeats a row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Engine

from collector.domain import Kline, StreamKline, Trade
from collector.store import checkpoints, coverage
from collector.store.checkpoints import Checkpoint
from collector.store.db import reading, transaction
from collector.store.write import write_klines, write_stream_klines, write_trades

ONE_MS = timedelta(milliseconds=1)


def load_checkpoint(engine: Engine, scope: str, symbol: str, stream: str, interval: str = "") -> Checkpoint | None:
    with reading(engine) as conn:
        return checkpoints.load(conn, scope, symbol, stream, interval)


def save_trades(
    engine: Engine,
    scope: str,
    symbol: str,
    trades: Sequence[Trade],
    *,
    anchor: datetime | None = None,
    complete: bool = False,
    covers: tuple[datetime, datetime] | None = None,
) -> int:
    """Trades (sorted by id) and the checkpoint after the last of them. With no trades, ``anchor``
    is where the next search for a first trade starts (nothing before it is missing). ``covers``:
    a time range these trades complete, added to the coverage in the same transaction. Returns the
    rows written (new or changed)."""
    written = 0
    with transaction(engine) as conn:
        if trades:
            written = write_trades(conn, trades)
        if covers is not None:
            coverage.add(conn, (symbol, "trades", ""), *covers)
        checkpoints.save(
            conn,
            scope,
            symbol,
            "trades",
            last_trade_id=trades[-1].trade_id if trades else None,
            last_time=trades[-1].time if trades else anchor,
            complete=complete,
            added_rows=len(trades),
        )
    return written


def save_pushed_trades(engine: Engine, trades: Sequence[Trade]) -> int:
    """Trades as the push stream delivered them, upserted on (symbol, trade_id) beside REST's: no
    checkpoint moves (only REST's pages prove a range complete). Returns the rows new or changed."""
    if not trades:
        return 0
    with transaction(engine) as conn:
        return write_trades(conn, trades)


def save_stream_klines(engine: Engine, klines: Sequence[StreamKline]) -> int:
    """Open klines from the push stream (no checkpoint: a closed kline is final only from REST)."""
    with transaction(engine) as conn:
        return write_stream_klines(conn, klines)


def save_klines(
    engine: Engine,
    scope: str,
    symbol: str,
    interval: str,
    klines: Sequence[Kline],
    *,
    now: datetime | None = None,
    covered: datetime | None = None,
    complete: bool = False,
    covers_from: datetime | None = None,
    covers_to: datetime | None = None,
) -> tuple[datetime | None, int]:
    """Klines (sorted by open time) and the checkpoint after the last closed one. A kline whose close
    time is not before ``now`` is stored as partial and moves no checkpoint (no ``now``: all are
    closed). ``covered`` is the checkpoint when none is closed. ``covers_from``: the coverage grows
    by [covers_from, where the checkpoint stands) (``covers_to`` instead, when given), in the same
    transaction. Returns where the checkpoint stands and the rows written (new or changed)."""
    closed = [k for k in klines if now is None or k.close_time < now]
    last_time = closed[-1].close_time + ONE_MS if closed else covered
    written = 0
    with transaction(engine) as conn:
        if klines:
            written = write_klines(conn, klines, now=now)
        until = covers_to or last_time
        if covers_from is not None and until is not None:
            coverage.add(conn, (symbol, "klines", interval), covers_from, until)
        checkpoints.save(
            conn, scope, symbol, "klines", interval, last_time=last_time, complete=complete, added_rows=len(closed)
        )
    return last_time, written
