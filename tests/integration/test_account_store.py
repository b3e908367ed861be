"""The account's writers: snapshots only when something changed, a closing row when a holding went
away, nothing closed by an answer that left its section out; an order's state never goes back."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import text

from collector.domain import AccountInfo, AccountOrder, Balance, Position
from collector.store import account as store
from collector.store import checkpoints

T = datetime(2026, 3, 1, 12, tzinfo=UTC)
S = timedelta(seconds=1)


def balance(asset: str, free: str, locked: str = "0", section: str = "option") -> Balance:
    return Balance(section, asset, Decimal(free), Decimal(locked), True, False, False)


def position(symbol: str, amount: str, profit: str = "1") -> Position:
    return Position(
        symbol,
        Decimal(amount),
        Decimal(amount),
        Decimal(profit),
        Decimal("0.1"),
        Decimal("2.5"),
        "CALL",
        T,
        Decimal(9000),
    )


def rows(engine, sql: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def test_balances_are_stored_when_they_change_and_closed_when_they_go(engine):
    info = AccountInfo(T, (balance("USDT", "100"), balance("BTC", "1", section="spot")))
    assert store.save_balances(engine, info, T, "a") == 2
    assert store.save_balances(engine, info, T + S, "a") == 0  # nothing changed: no row
    moved = AccountInfo(T, (balance("USDT", "90", "10"), balance("BTC", "1", section="spot")))
    assert store.save_balances(engine, moved, T + 2 * S, "a") == 1  # only what changed
    gone = AccountInfo(T, (balance("BTC", "1", section="spot"),))
    assert store.save_balances(engine, gone, T + 3 * S, "a") == 1  # a row of zeros: it went away
    assert store.save_balances(engine, gone, T + 4 * S, "a") == 0
    assert rows(
        engine, "SELECT asset, free, locked FROM account_balances WHERE asset = 'USDT' ORDER BY captured_at"
    ) == [
        ("USDT", Decimal(100), Decimal(0)),
        ("USDT", Decimal(90), Decimal(10)),
        ("USDT", Decimal(0), Decimal(0)),
    ]
    # an answer without its spot section says nothing of spot: BTC is not closed
    no_spot = AccountInfo(T, (balance("USDT", "5"),), sections=("contract", "option"))
    assert store.save_balances(engine, no_spot, T + 5 * S, "a") == 1
    assert rows(engine, "SELECT count(*) FROM account_balances WHERE asset = 'BTC'") == [(1,)]


def test_positions_change_on_what_is_held_not_on_the_exchanges_profit(engine):
    assert store.save_positions(engine, [position("X", "5")], T, "a") == 1
    assert store.save_positions(engine, [position("X", "5", profit="7")], T + S, "a") == 0  # the market moved
    assert store.save_positions(engine, [position("X", "6")], T + 2 * S, "a") == 1
    assert store.save_positions(engine, [], T + 3 * S, "a") == 1  # closed: a row of zeros
    assert rows(engine, "SELECT amount FROM account_positions ORDER BY captured_at") == [
        (Decimal(5),),
        (Decimal(6),),
        (Decimal(0),),
    ]


def test_two_writers_never_both_add_the_same_change(engine):
    """Two daemons saving the same new balance at once: one row, whichever came first."""
    info = AccountInfo(T, (balance("USDT", "100"),))
    results: list[int] = []
    start = threading.Barrier(4)

    def save(i: int) -> None:
        start.wait()
        results.append(store.save_balances(engine, info, T + i * timedelta(milliseconds=1), "a"))

    threads = [threading.Thread(target=save, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 0, 0, 1]
    assert rows(engine, "SELECT count(*) FROM account_balances") == [(1,)]


def order(status: str, executed: str, at: datetime) -> AccountOrder:
    return AccountOrder(
        "X",
        7,
        Decimal("2"),
        Decimal("5"),
        Decimal(executed),
        Decimal(executed) * 2,
        status,
        "GTC",
        "LIMIT",
        "BUY",
        T,
        at,
    )


def test_an_orders_state_never_goes_back(engine):
    partly, filled = order("PARTIALLY_FILLED", "2", T + S), order("FILLED", "5", T + 2 * S)
    store.save_orders(engine, checkpoints.LIVE, "X", [partly], "a")
    store.refresh_orders(engine, [filled], "a")
    store.save_orders(engine, checkpoints.LIVE, "X", [partly], "a")  # a page fetched before the lookup
    assert rows(engine, "SELECT status, executed_qty, final FROM account_orders") == [("FILLED", Decimal(5), True)]
    # and an order the exchange stopped answering for is no longer followed, its state kept
    store.save_orders(engine, checkpoints.LIVE, "X", [replace(partly, order_id=8)], "a")
    assert store.unfinished_orders(engine) == [("X", 8)]
    assert store.stop_following(engine, [("X", 8)]) == 1
    assert store.unfinished_orders(engine) == []
    assert rows(engine, "SELECT status FROM account_orders WHERE order_id = 8") == [("PARTIALLY_FILLED",)]
