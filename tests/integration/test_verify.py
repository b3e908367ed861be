"""verify: each check finds exactly what was broken, and nothing in complete data."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from collector.analyst.claims import Problem
from collector.analyst.verify import slot_ceil, slot_floor, verify
from collector.errors import ConfigError
from collector.store import checkpoints
from tests.helpers.analyst_data import T0, T1, execute, populate

M = timedelta(minutes=1)


@pytest.fixture
def data(engine):
    return populate(engine)


def kline_minute(engine, symbol: str, trades: int, skip: int):
    """Open time of the symbol's kline after ``skip`` others, counting only klines of ``trades`` or more trades."""
    with engine.connect() as conn:
        return conn.exec_driver_sql(
            "SELECT open_time FROM klines WHERE symbol = %s AND trade_count >= %s ORDER BY open_time OFFSET %s LIMIT 1",
            (symbol, trades, skip),
        ).scalar_one()


def test_complete_data_is_clean(engine, data):
    report = verify(engine, now=T1)
    assert report.ok, report.problems
    assert report.checked["kline_slots"] > 400 and report.checked["trade_minutes"] > 400
    assert report.checked["depth_snapshots"] > 40


def test_listing_and_expiry_bound_the_grid(engine, data):
    # BNB0106CALLW is listed at 12:00 and BTC0105CALLW expires at 12:00: neither misses anything
    # outside its life, and the window restricts every check.
    assert "BNB0106CALLW" in data and "BTC0105CALLW" in data
    assert verify(engine, ["BNB0106CALLW", "BTC0105CALLW"], now=T1).ok
    assert verify(engine, start=T0 + 30 * M, end=T0 + 90 * M, now=T1).ok


def test_deleted_klines_are_gaps_with_exact_ranges(engine, data):
    sym = "ETH0105CALLW"
    assert (
        execute(
            engine,
            "DELETE FROM klines WHERE symbol = :s AND open_time >= :a AND open_time < :b",
            s=sym,
            a=T0 + 10 * M,
            b=T0 + 13 * M,
        )
        == 3
    )
    execute(engine, "DELETE FROM klines WHERE symbol = :s AND open_time = :a", s=sym, a=T0)  # the first
    execute(engine, "DELETE FROM klines WHERE symbol = :s AND open_time = :a", s=sym, a=T1 - M)  # the last
    gaps = [p for p in verify(engine, [sym], now=T1).problems if p.kind == "kline_gap"]
    assert [(p.start, p.end, p.interval) for p in gaps] == [
        (T0, T0 + M, "1m"),
        (T0 + 10 * M, T0 + 13 * M, "1m"),
        (T1 - M, T1, "1m"),
    ]


def test_deleted_trades_are_holes_not_mismatches(engine, data):
    sym = "EOS0106CALLW"
    minute = kline_minute(engine, sym, trades=2, skip=5)
    deleted = execute(
        engine, "DELETE FROM trades WHERE symbol = :s AND time >= :a AND time < :b", s=sym, a=minute, b=minute + 2 * M
    )
    assert deleted >= 2
    problems = verify(engine, now=T1).problems
    assert [(p.kind, p.symbol, p.start, p.end) for p in problems] == [("trade_hole", sym, minute, minute + 2 * M)]


def test_id_gaps_alone_are_not_holes(engine, data):
    # Ids are numbered across all symbols, so every symbol's ids are full of gaps already:
    with engine.connect() as conn:
        ids = (
            conn.exec_driver_sql("SELECT trade_id FROM trades WHERE symbol = 'EOS0106CALLW' ORDER BY trade_id LIMIT 50")
            .scalars()
            .all()
        )
    assert any(b - a > 1 for a, b in itertools.pairwise(ids))
    assert verify(engine, now=T1).ok


def test_changed_kline_is_a_mismatch(engine, data):
    sym = "LTC0106CALLW"
    minute = kline_minute(engine, sym, trades=1, skip=3)
    execute(
        engine,
        "UPDATE klines SET volume = volume + 1 WHERE symbol = :s AND interval = '1m' AND open_time = :m",
        s=sym,
        m=minute,
    )
    assert [(p.kind, p.start) for p in verify(engine, now=T1).problems] == [("kline_mismatch", minute)]


def test_unclaimed_minutes_are_not_compared(engine, data):
    sym = "LTC0106CALLW"
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM checkpoints WHERE symbol = %s AND stream = 'trades'", (sym,))
    execute(engine, "DELETE FROM trades WHERE symbol = :s", s=sym)
    assert verify(engine, now=T1).ok  # nothing claims LTC's trades: nothing is missing from a claim
    with engine.begin() as conn:  # an unfinished backfill claims up to its last trade
        checkpoints.save(
            conn,
            checkpoints.backfill_scope(T0, T1),
            sym,
            "trades",
            last_trade_id=1,
            last_time=T0 + 5 * M + timedelta(seconds=30),
        )
    problems = verify(engine, now=T1).problems
    assert {p.kind for p in problems} == {"trade_hole"}
    assert problems[0].start == T0 and max(p.end for p in problems if p.interval) <= T0 + 5 * M
    assert any("ends at trade 1" in p.detail for p in problems)


def test_live_checkpoint_vouches_for_its_last_trade(engine, data):
    sym = "EOS0106CALLW"
    with engine.connect() as conn:
        tid, t = conn.exec_driver_sql(
            "SELECT trade_id, time FROM trades WHERE symbol = %s ORDER BY trade_id DESC LIMIT 1", (sym,)
        ).one()
    with engine.begin() as conn:
        checkpoints.save(conn, checkpoints.LIVE, sym, "trades", last_trade_id=tid, last_time=t)
    assert verify(engine, now=T1).ok
    execute(engine, "DELETE FROM trades WHERE symbol = :s AND trade_id = :i", s=sym, i=tid)
    kinds = sorted(p.kind for p in verify(engine, now=T1).problems)
    assert "trade_hole" in kinds
    assert all(p.symbol == sym for p in verify(engine, now=T1).problems)


def test_crossed_book(engine, data):
    with engine.connect() as conn:
        snap, sym = conn.exec_driver_sql("SELECT id, symbol FROM depth_snapshots ORDER BY id LIMIT 1").one()
    execute(
        engine,
        "UPDATE depth_levels SET price = price + 1000 WHERE snapshot_id = :i AND side = 'bid' AND level = 3",
        i=snap,
    )
    problems = verify(engine, now=T1).problems
    assert [(p.kind, p.symbol, p.repairable) for p in problems] == [("crossed_book", sym, False)]


def test_unknown_symbol_is_bad_input(engine, data):
    with pytest.raises(ConfigError, match="NOPE"):
        verify(engine, ["NOPE"], now=T1)


def test_grid_alignment():
    t = T0 + timedelta(seconds=61)
    assert slot_floor(t, "1m") == T0 + M and slot_ceil(t, "1m") == T0 + 2 * M
    assert slot_ceil(T0, "1h") == T0
    assert slot_floor(T0, "1w").weekday() == 0  # weeks open on Monday
    assert Problem("kline_gap", "S", T0, T1).repairable
