"""Bulk upserts and checkpoints against real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text

from collector.domain import Kline, Trade
from collector.store import checkpoints
from collector.store.models import KlineRow, TradeRow
from collector.store.upsert import upsert
from collector.store.write import write_klines, write_trades

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TRADES = TradeRow.__table__


def trade(i: int, price: str = "1.5", symbol: str = "BTC0925CALL") -> Trade:
    return Trade(symbol, i, Decimal(price), Decimal("0.000123456789012345678"), T0 + timedelta(seconds=i), i % 2 == 0)


def stored(engine) -> dict[int, tuple]:
    with engine.connect() as conn:
        rows = conn.execute(select(TRADES.c.trade_id, TRADES.c.price, TRADES.c.qty, TRADES.c.time)).all()
    return {r[0]: tuple(r[1:]) for r in rows}


@pytest.mark.parametrize("method", ["values", "copy"])
def test_batch_with_duplicate_keys_keeps_last(engine, method):
    rows = [
        {"symbol": "S", "trade_id": 1, "price": Decimal("1"), "qty": Decimal("1"), "time": T0, "buyer_maker": True},
        {"symbol": "S", "trade_id": 2, "price": Decimal("2"), "qty": Decimal("1"), "time": T0, "buyer_maker": None},
        {"symbol": "S", "trade_id": 1, "price": Decimal("3"), "qty": Decimal("1"), "time": T0, "buyer_maker": False},
    ]
    with engine.begin() as conn:
        assert upsert(conn, TRADES, rows, method=method) == 2
    assert stored(engine)[1][0] == Decimal("3")


@pytest.mark.parametrize("method", ["values", "copy"])
def test_reupsert_changes_values_and_skips_unchanged(engine, method):
    batch = [trade(i) for i in range(1, 2001)]
    with engine.begin() as conn:
        assert upsert(conn, TRADES, [vars_(t) for t in batch], method=method) == 2000
    with engine.begin() as conn:  # same data again: nothing rewritten
        assert upsert(conn, TRADES, [vars_(t) for t in batch], method=method) == 0
    changed = [trade(i, price="2.25") if i % 100 == 0 else trade(i) for i in range(1, 2001)]
    with engine.begin() as conn:
        assert upsert(conn, TRADES, [vars_(t) for t in changed], method=method) == 20
    got = stored(engine)
    assert len(got) == 2000
    assert got[100][0] == Decimal("2.25") and got[101][0] == Decimal("1.5")
    assert got[7][1] == Decimal("0.000123456789012345678")  # exact, no float on the way
    assert got[7][2] == T0 + timedelta(seconds=7) and got[7][2].tzinfo is not None


def vars_(t: Trade) -> dict:
    from collector.store.write import trade_row

    return trade_row(t)


def test_copy_and_values_store_identical_rows(engine):
    a = [vars_(trade(i, symbol="A")) for i in range(1500)]
    b = [vars_(trade(i, symbol="B")) for i in range(1500)]
    with engine.begin() as conn:
        upsert(conn, TRADES, a, method="copy")
        upsert(conn, TRADES, b, method="values")
        diff = conn.execute(
            text(
                "SELECT count(*) FROM (SELECT trade_id, price, qty, time, buyer_maker FROM trades WHERE symbol='A' "
                "EXCEPT SELECT trade_id, price, qty, time, buyer_maker FROM trades WHERE symbol='B') d"
            )
        ).scalar()
    assert diff == 0


def test_rows_and_checkpoint_commit_together_or_not_at_all(engine):
    scope = "live"
    with pytest.raises(RuntimeError), engine.begin() as conn:
        write_trades(conn, [trade(1), trade(2)])
        checkpoints.save(conn, scope, "BTC0925CALL", "trades", last_trade_id=2, last_time=T0)
        raise RuntimeError("crash before commit")
    with engine.connect() as conn:
        assert checkpoints.load(conn, scope, "BTC0925CALL", "trades") is None
        assert conn.execute(select(func.count()).select_from(TRADES)).scalar() == 0
    with engine.begin() as conn:
        write_trades(conn, [trade(1), trade(2)])
        checkpoints.save(conn, scope, "BTC0925CALL", "trades", last_trade_id=2, last_time=T0, added_rows=2)
    with engine.begin() as conn:  # a stale writer cannot move it back
        checkpoints.save(conn, scope, "BTC0925CALL", "trades", last_trade_id=1, last_time=T0)
    with engine.connect() as conn:
        cp = checkpoints.load(conn, scope, "BTC0925CALL", "trades")
    assert cp.last_trade_id == 2 and cp.rows == 2


def test_partial_kline_is_marked_and_later_closed(engine):
    def kline(close: str, volume: str) -> Kline:
        return Kline(
            "S",
            "1m",
            T0,
            T0 + timedelta(minutes=1, milliseconds=-1),
            Decimal("1"),
            Decimal("2"),
            Decimal("1"),
            Decimal(close),
            Decimal(volume),
            Decimal("1"),
            1,
            Decimal("0"),
            Decimal("0"),
        )

    with engine.begin() as conn:
        write_klines(conn, [kline("1.5", "3")], now=T0 + timedelta(seconds=30))
    with engine.begin() as conn:
        write_klines(conn, [kline("1.7", "4")], now=T0 + timedelta(minutes=2))
    with engine.connect() as conn:
        row = conn.execute(select(KlineRow.__table__)).mappings().one()
    assert row["is_closed"] is True and row["close"] == Decimal("1.7") and row["volume"] == Decimal("4")
