"""A populated database for the analyst-side tests, written straight from the simulator's market.

The market is the ground truth the simulator serves; writing it through the collector's parsers and
store writers gives exactly the rows a complete backfill would, without HTTP, in well under a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine, text

from collector.domain import DepthLevel, DepthSnapshot
from collector.exchange.parsers import (
    parse_historical_trades,
    parse_klines,
    parse_option_info,
    parse_ticker_24hr,
)
from collector.simulator import Market, SimConfig
from collector.simulator.wire import fmt_ticks
from collector.store import checkpoints
from collector.store.write import (
    set_strike_prices,
    write_depth,
    write_klines,
    write_symbols,
    write_tickers,
    write_trades,
)

# The window [T0, T1): BTC0105CALLW expires at 12:00 inside it, BNB0106CALLW is listed at 12:00.
T0 = datetime(2026, 1, 5, 11, tzinfo=UTC)
T1 = datetime(2026, 1, 5, 13, tzinfo=UTC)
SNAP_EVERY = timedelta(minutes=10)


def ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def at(ms_: int) -> datetime:
    return datetime.fromtimestamp(ms_ / 1000, UTC)


def market() -> Market:
    return Market(SimConfig(seed=1, history_days=0.2, symbols=4, start_ms=ms(T1)))


def symbols_between(m: Market, start: datetime, end: datetime) -> list[str]:
    """Symbols trading at some instant of [start, end)."""
    names = {o.name for t in range(ms(start), ms(end), 600_000) for o in m.listed(t) if t < o.expiry}
    return sorted(names)


def populate(
    engine: Engine,
    *,
    start: datetime = T0,
    end: datetime = T1,
    m: Market | None = None,
    symbols: Sequence[str] | None = None,
    snapshots: bool = True,
) -> list[str]:
    """Symbols, closed 1m klines and trades of [start, end) with their (complete) backfill
    checkpoints, and a ticker and a depth snapshot per symbol every 10 minutes."""
    m = m or market()
    names = list(symbols or symbols_between(m, start, end))
    scope = checkpoints.backfill_scope(start, end)
    with engine.begin() as conn:
        write_symbols(conn, parse_option_info(m.option_info(ms(start))), [], now=start)
        write_symbols(conn, parse_option_info(m.option_info(ms(end) - 1)), [], now=end)
        for name in names:
            klines = parse_klines(m.klines(name, "1m", ms(start), ms(end), ms(end)), name, "1m")
            write_klines(conn, klines, now=end)
            trades = parse_historical_trades(m.trades(name, ms(start), ms(end)), name)
            write_trades(conn, trades)
            checkpoints.save(
                conn,
                scope,
                name,
                "klines",
                "1m",
                complete=True,
                last_time=klines[-1].close_time if klines else None,
                added_rows=len(klines),
            )
            checkpoints.save(
                conn,
                scope,
                name,
                "trades",
                complete=True,
                last_trade_id=trades[-1].trade_id if trades else None,
                last_time=trades[-1].time if trades else None,
                added_rows=len(trades),
            )
        if snapshots:
            for t in range(ms(start), ms(end), int(SNAP_EVERY.total_seconds() * 1000)):
                for name in names:
                    opt = m.option(name)
                    if not opt.listing <= t < opt.expiry:
                        continue
                    tickers = parse_ticker_24hr(m.ticker_24hr(opt, t), at(t))
                    write_tickers(conn, tickers)
                    set_strike_prices(conn, tickers)
                    uid, bids, asks = m.depth(opt, t)
                    write_depth(
                        conn,
                        DepthSnapshot(
                            name,
                            at(t),
                            uid,
                            tuple(DepthLevel(Decimal(fmt_ticks(p)), Decimal(q)) for p, q in bids),
                            tuple(DepthLevel(Decimal(fmt_ticks(p)), Decimal(q)) for p, q in asks),
                        ),
                    )
    return names


def execute(engine: Engine, sql: str, **params) -> int:
    with engine.begin() as conn:
        return conn.execute(text(sql), params).rowcount


def populate_account(engine: Engine, m: Market, at: datetime) -> dict[str, int]:
    """The demo account's history up to ``at`` (the simulator's own, so exact), written as the
    collector would: orders and records with their checkpoints, and one snapshot of positions and
    balances taken at ``at``. Returns the rows written per table."""
    from collector.exchange.parsers import parse_account, parse_orders, parse_positions, parse_records
    from collector.simulator.accounts import DEMO_KEY, Accounts
    from collector.store import account as store

    accounts = Accounts(m, None, m.cfg.seed)
    account = accounts.get(DEMO_KEY, ms(at))
    resting = m.listed(ms(at))[-1]  # and one order still open: a bid far below the market
    accounts.place(account, resting, "BUY", 1, 1, ms(at))
    orders = parse_orders([o.json() for o in account.orders.values()], "historyOrders")
    records = parse_records([r.json() for r in account.records])
    for symbol in sorted({o.symbol for o in orders}):
        store.save_orders(engine, checkpoints.LIVE, symbol, [o for o in orders if o.symbol == symbol], "demo")
    for symbol in sorted({r.symbol for r in records}):
        store.save_records(engine, checkpoints.LIVE, symbol, [r for r in records if r.symbol == symbol], "demo")
    positions = parse_positions(accounts.positions(account, ms(at)))
    store.save_positions(engine, positions, at, "demo")
    store.save_balances(engine, parse_account(accounts.account_json(account)), at, "demo")
    return {"orders": len(orders), "records": len(records), "positions": len(positions)}
