"""Checkpoints: where each (scope, symbol, stream, interval) stands.

``save`` runs in the caller's transaction, beside the rows it vouches for: a crash before the
commit loses both, a crash after keeps both. Nothing is acknowledged before it is committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert

from collector.store.models import CheckpointRow, table_of

CHECKPOINTS = table_of(CheckpointRow)
LIVE = "live"


def backfill_scope(start: datetime, end: datetime) -> str:
    return f"backfill {start.isoformat()}/{end.isoformat()}"


def backfill_window(scope: str) -> tuple[datetime, datetime] | None:
    """The [start, end) of a ``backfill <start>/<end>`` scope; None for any other scope."""
    if not scope.startswith("backfill "):
        return None
    try:
        a, b = scope.removeprefix("backfill ").split("/")
        return datetime.fromisoformat(a), datetime.fromisoformat(b)
    except ValueError:
        return None


@dataclass(frozen=True)
class Checkpoint:
    scope: str
    symbol: str
    stream: str
    interval: str
    last_trade_id: int | None
    last_time: datetime | None
    complete: bool
    rows: int


def _of(row) -> Checkpoint:
    return Checkpoint(
        row["scope"],
        row["symbol"],
        row["stream"],
        row["interval"],
        row["last_trade_id"],
        row["last_time"],
        row["complete"],
        row["rows"],
    )


def load(conn: Connection, scope: str, symbol: str, stream: str, interval: str = "") -> Checkpoint | None:
    row = (
        conn.execute(
            select(CHECKPOINTS).where(
                CHECKPOINTS.c.scope == scope,
                CHECKPOINTS.c.symbol == symbol,
                CHECKPOINTS.c.stream == stream,
                CHECKPOINTS.c.interval == interval,
            )
        )
        .mappings()
        .first()
    )
    return None if row is None else _of(row)


def unfinished_backfills(conn: Connection, keys: Sequence[tuple[str, str, str]]) -> list[Checkpoint]:
    """The backfill checkpoints of these (symbol, stream, interval) keys that are not complete: runs
    that stopped half-way, which a run over the same window may continue."""
    if not keys:
        return []
    rows = conn.execute(
        select(CHECKPOINTS).where(
            CHECKPOINTS.c.scope.like("backfill %"),
            ~CHECKPOINTS.c.complete,
            tuple_(CHECKPOINTS.c.symbol, CHECKPOINTS.c.stream, CHECKPOINTS.c.interval).in_(list(keys)),
        )
    ).mappings()
    return [_of(r) for r in rows]


def save(
    conn: Connection,
    scope: str,
    symbol: str,
    stream: str,
    interval: str = "",
    *,
    last_trade_id: int | None = None,
    last_time: datetime | None = None,
    complete: bool = False,
    added_rows: int = 0,
) -> None:
    """Move a checkpoint forward (never back: a stale writer cannot rewind it)."""
    values = dict(
        scope=scope,
        symbol=symbol,
        stream=stream,
        interval=interval,
        last_trade_id=last_trade_id,
        last_time=last_time,
        complete=complete,
        rows=added_rows,
        last_error=None,
    )
    stmt = insert(CHECKPOINTS).values(**values)
    c = CHECKPOINTS.c
    stmt = stmt.on_conflict_do_update(
        index_elements=["scope", "symbol", "stream", "interval"],
        set_={
            "last_trade_id": func.greatest(c.last_trade_id, stmt.excluded.last_trade_id),
            "last_time": func.greatest(c.last_time, stmt.excluded.last_time),
            "complete": c.complete | stmt.excluded.complete,
            "rows": c.rows + stmt.excluded.rows,
            "updated_at": func.now(),
            "last_error": None,
        },
    )
    conn.execute(stmt)


def record_error(conn: Connection, scope: str, symbol: str, stream: str, interval: str, message: str) -> None:
    stmt = insert(CHECKPOINTS).values(
        scope=scope, symbol=symbol, stream=stream, interval=interval, last_error=message[:500], last_error_at=func.now()
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["scope", "symbol", "stream", "interval"],
        set_={"last_error": stmt.excluded.last_error, "last_error_at": func.now()},
    )
    conn.execute(stmt)


def forget(conn: Connection, scope: str, symbols: Sequence[str]) -> int:
    """Drop these symbols' checkpoints in ``scope``: their next run starts the window afresh."""
    return conn.execute(
        delete(CHECKPOINTS).where(CHECKPOINTS.c.scope == scope, CHECKPOINTS.c.symbol.in_(list(symbols)))
    ).rowcount
