"""The account's tables: orders and records upserted on their ids, with the checkpoint of their
paging in the same transaction; positions, balances and short & call positions as snapshots
stored only when something changed.

"Changed" is decided against the latest stored row of each key, in the same transaction, under a
lock on the table (so two daemons cannot both add the same change):
positions by symbol on what the account holds (amount, availability, cost, type, exercise time and
price; the exchange's profit moves with the market, so it is stored as it was but does not make a
row by itself), balances by (section, asset) on free, locked and the flags, short & call positions
by symbol on every field. A key that was held and is gone gets one row of zeros, so the history
shows when it closed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, Table, func, insert, select, text, tuple_

from collector.domain import AccountInfo, AccountOrder, OptionRecord, Position, ShortCall
from collector.store import checkpoints, coverage
from collector.store.db import reading, transaction
from collector.store.models import (
    AccountBalanceRow,
    AccountOptionRecordRow,
    AccountOrderRow,
    AccountPositionRow,
    AccountShortCallRow,
    table_of,
)
from collector.store.upsert import upsert

ORDERS = table_of(AccountOrderRow)
RECORDS = table_of(AccountOptionRecordRow)
POSITIONS = table_of(AccountPositionRow)
BALANCES = table_of(AccountBalanceRow)
SHORT_CALL = table_of(AccountShortCallRow)

# An order's state only moves forward: an answer older than the stored one (a page fetched before a
# lookup committed) does not overwrite it, and a final order never becomes open again.
NEWER = ("update_time", "final")
POSITION_HOLDING = ("amount", "avail_amount", "cost", "type", "exec_time", "exec_price")
BALANCE_STATE = ("free", "locked", "can_trade", "can_deposit", "can_withdraw")
SHORT_CALL_STATE = (
    "asset_margin",
    "asset_base",
    "release_amount",
    "back_amount",
    "margin_amount",
    "base_amount",
    "available_margin",
    "available_base",
    "available_option",
)


def order_row(o: AccountOrder, account: str) -> dict[str, Any]:
    row = asdict(o)
    row.pop("working")
    return {**row, "final": o.final, "account": account}


def record_row(r: OptionRecord, account: str) -> dict[str, Any]:
    return {**asdict(r), "account": account}


def save_orders(
    engine: Engine,
    scope: str,
    symbol: str,
    orders: Sequence[AccountOrder],
    account: str,
    *,
    complete: bool = False,
    covers: tuple[datetime, datetime] | None = None,
) -> int:
    """Orders (sorted by id) and the orders checkpoint (its last id) of ``symbol`` in ``scope``;
    ``covers``: a time range now complete, added to the coverage in the same transaction."""
    with transaction(engine) as conn:
        if covers is not None:
            coverage.add(conn, (symbol, "orders", ""), *covers)
        changed = upsert(conn, ORDERS, [order_row(o, account) for o in orders], touch=("updated_at",), monotonic=NEWER)
        _checkpoint(
            conn,
            scope,
            symbol,
            "orders",
            orders[-1].order_id if orders else None,
            orders[-1].time if orders else None,
            len(orders),
            complete,
        )
    return changed


def push_orders(engine: Engine, orders: Sequence[AccountOrder], account: str) -> int:
    """Orders as the user data stream showed them (in event order): their state, never their placing
    time, type or time in force once known (the events lack them; REST fills them), and never an
    older state over a newer one (``update_time``, ``final``). No checkpoint moves: REST's history
    sweep stays the proof that every order was seen."""
    rows = []
    for o in orders:
        row = order_row(o, account)
        for unknown in ("type", "time_in_force"):
            row.pop(unknown)
        rows.append(row)
    state = [c for c in rows[0] if c not in ("symbol", "order_id", "time")] if rows else []
    with transaction(engine) as conn:
        return upsert(conn, ORDERS, rows, update=state, touch=("updated_at",), monotonic=NEWER)


def _checkpoint(
    conn: Connection,
    scope: str,
    symbol: str,
    stream: str,
    last_id: int | None,
    last_time: datetime | None,
    rows: int,
    complete: bool,
) -> None:
    """The id-paged streams keep their last id in ``last_trade_id``."""
    if rows or complete:
        checkpoints.save(
            conn, scope, symbol, stream, last_trade_id=last_id, last_time=last_time, added_rows=rows, complete=complete
        )


def refresh_orders(engine: Engine, orders: Sequence[AccountOrder], account: str) -> int:
    """Orders looked up one by one (those not yet final): no checkpoint moves."""
    with transaction(engine) as conn:
        return upsert(conn, ORDERS, [order_row(o, account) for o in orders], touch=("updated_at",), monotonic=NEWER)


def stop_following(engine: Engine, keys: Iterable[tuple[str, int]]) -> int:
    """Orders the exchange no longer answers for (their symbol delisted before they ended): marked
    final, so they are not asked again; their status stays the last one the exchange gave."""
    keys = list(keys)
    if not keys:
        return 0
    with transaction(engine) as conn:
        return conn.execute(
            ORDERS.update()
            .where(tuple_(ORDERS.c.symbol, ORDERS.c.order_id).in_(keys))
            .values(final=True, updated_at=func.now())
        ).rowcount


def unfinished_orders(engine: Engine) -> list[tuple[str, int]]:
    """(symbol, order id) of every stored order that is not final: they are looked up until they are."""
    with reading(engine) as conn:
        return [
            tuple(r)
            for r in conn.execute(
                select(ORDERS.c.symbol, ORDERS.c.order_id).where(ORDERS.c.final.is_(False)).order_by(ORDERS.c.order_id)
            )
        ]


def save_records(
    engine: Engine,
    scope: str,
    symbol: str,
    records: Sequence[OptionRecord],
    account: str,
    *,
    complete: bool = False,
    covers: tuple[datetime, datetime] | None = None,
) -> int:
    """Shorts and calls (sorted by id) and the records checkpoint (its last id) of ``symbol``;
    ``covers`` as for ``save_orders``."""
    with transaction(engine) as conn:
        if covers is not None:
            coverage.add(conn, (symbol, "records", ""), *covers)
        changed = upsert(conn, RECORDS, [record_row(r, account) for r in records])
        _checkpoint(
            conn,
            scope,
            symbol,
            "records",
            records[-1].record_id if records else None,
            records[-1].created_at if records else None,
            len(records),
            complete,
        )
    return changed


def shorted_symbols(engine: Engine) -> list[str]:
    """Symbols the account ever shorted (their short & call position is worth following)."""
    with reading(engine) as conn:
        return list(conn.execute(select(RECORDS.c.symbol).distinct().order_by(RECORDS.c.symbol)).scalars())


def save_positions(engine: Engine, positions: Iterable[Position], at: datetime, account: str) -> int:
    rows = {(p.symbol,): {**asdict(p), "account": account} for p in positions}
    for row in rows.values():
        row.pop("order_index")
    with transaction(engine) as conn:
        return _save_changed(
            conn,
            POSITIONS,
            ("symbol",),
            POSITION_HOLDING,
            rows,
            at,
            account,
            closed={"amount": Decimal(0), "avail_amount": Decimal(0)},
        )


def save_balances(engine: Engine, info: AccountInfo, at: datetime, account: str) -> int:
    """The balances of the sections the answer holds: a section it left out says nothing of its
    assets (they are not closed)."""
    rows = {(b.section, b.asset): {**asdict(b), "account": account} for b in info.balances}
    with transaction(engine) as conn:
        return _save_changed(
            conn,
            BALANCES,
            ("section", "asset"),
            BALANCE_STATE,
            rows,
            at,
            account,
            closed={"free": Decimal(0), "locked": Decimal(0)},
            answered=lambda k: k[0] in info.sections,
        )


def save_short_calls(engine: Engine, infos: Iterable[ShortCall], at: datetime, account: str) -> int:
    rows = {}
    for i in infos:
        row = asdict(i)
        row.pop("created_at")
        row["symbol"] = row.pop("asset_option")
        rows[(row["symbol"],)] = {**row, "account": account}
    with transaction(engine) as conn:
        return _save_changed(conn, SHORT_CALL, ("symbol",), SHORT_CALL_STATE, rows, at, account, closed=None)


def _save_changed(
    conn: Connection,
    table: Table,
    key: tuple[str, ...],
    state: tuple[str, ...],
    rows: dict[tuple, dict[str, Any]],
    at: datetime,
    account: str,
    closed: dict[str, Any] | None,
    answered: Callable[[tuple], bool] = lambda k: True,
) -> int:
    """Insert the rows whose state differs from the latest stored row of their key (and, with
    ``closed``, a closing row for each key held before, absent now, and ``answered`` for).
    Returns rows inserted. The table is locked for the compare: two writers (two daemons) never
    both find a key changed and both add its row."""
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:t))"), {"t": table.name})
    keys = ", ".join(key)
    latest = {
        tuple(r[k] for k in key): r
        for r in conn.execute(
            text(f"SELECT DISTINCT ON ({keys}) * FROM {table.name} ORDER BY {keys}, captured_at DESC")
        ).mappings()
    }
    new = []
    for k, row in rows.items():
        before = latest.get(k)
        if before is None or any(before[c] != row.get(c) for c in state):
            new.append({**row, "captured_at": at})
    if closed is not None:
        for k, before in latest.items():
            if k in rows or not answered(k) or all(before[c] == v for c, v in closed.items()):
                continue
            new.append(
                {
                    **{c.name: before[c.name] for c in table.columns if c.name != "captured_at"},
                    **closed,
                    "captured_at": at,
                    "account": account,
                }
            )
    if new:
        conn.execute(insert(table), new)
    return len(new)
