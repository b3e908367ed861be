"""What a daemon run must have stored: every trade once, closed klines equal to the exchange's, over
the symbols' lives (`test_daemon`, the scale-out, crash and fault tests share it)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from collector.config import load_settings
from collector.simulator import Simulator
from collector.store.models import KlineRow, OptionSymbolRow, TradeRow
from tests.helpers.truth import dt, ms

LISTING = 30  # seconds between listings; 4 symbols at once -> each lives 2 minutes
SIM = dict(
    seed=5,
    history_days=0.05,
    symbols=4,
    trades_per_minute=40,
    silent_share=0.0,
    listing_interval_s=LISTING,
    grace_s=600,
)
POLL = dict(
    trades_poll_seconds=2.0,
    # Every symbol's trades at least this often whatever the signals say: the catch-up bounds these
    # tests wait with (90-120 s) rest on the sweep, never on a signal seeing every trade.
    trades_sweep_seconds=30.0,
    klines_poll_seconds=4.0,
    depth_poll_seconds=5.0,
    tickers_poll_seconds=5.0,
    symbols_refresh_seconds=6.0,
    lookback_hours=0.05,
    kline_intervals=["1m"],
    metrics_port=0,
    http_read_timeout=2.0,
    max_retries=8,
    # REST alone, as these tests were written for; the daemon with push on is tests/integration/test_push.py
    push=[],
)
LOOKBACK = timedelta(hours=0.05)


def daemon_settings(sim: Simulator, db_url: str):
    return load_settings(
        None,
        {"exchange_url": sim.base_url, "api_key": "daemontest1", "database_url": db_url, **POLL},
        defaults_file=None,
    )


def check_up_to(engine, sim: Simulator, started: datetime, target: datetime) -> dict:
    """``check_against_truth`` with every trade before ``target`` required, and nothing stored at
    any time that the exchange does not hold."""
    now = datetime.now(UTC)
    return check_against_truth(engine, sim, started, now, settle=(now - target).total_seconds())


async def caught_up(
    engine, sim: Simulator, started: datetime, target: datetime, timeout: float, alive=lambda: True
) -> None:
    """Until ``check_up_to`` passes (bounded), while ``alive()`` holds. It runs on the event loop's
    thread: it reads the in-process simulator's market, whose caches are not shared across threads."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            check_up_to(engine, sim, started, target)
            return
        except AssertionError as exc:
            if loop.time() > deadline:
                raise AssertionError(
                    f"not caught up with {target:%H:%M:%S} in {timeout:g}s: {str(exc).splitlines()[0]}"
                ) from None
        assert alive(), "the collector stopped before catching up"
        await asyncio.sleep(0.5)


def check_against_truth(engine, sim: Simulator, started: datetime, stopped: datetime, settle: float = 6.0) -> dict:
    """Trades before ``stopped - settle`` (a poll interval and then some) must all be stored."""
    market = sim.market
    with engine.connect() as conn:
        symbols = conn.execute(select(OptionSymbolRow.__table__)).mappings().all()
        t = TradeRow.__table__
        stored = {}
        for r in conn.execute(select(t.c.symbol, t.c.trade_id, t.c.price, t.c.qty, t.c.time, t.c.buyer_maker)):
            stored[(r.symbol, r.trade_id)] = (r.price, r.qty, ms(r.time), r.buyer_maker)
        k = KlineRow.__table__
        klines = {(r.symbol, ms(r.open_time)): r for r in conn.execute(select(k).where(k.c.is_closed))}
    # whole milliseconds, as the exchange counts: a trade at the cutoff's millisecond is on one side
    cutoff = dt(ms(stopped - timedelta(seconds=settle)))
    expected_trades = 0
    for sym in symbols:
        name = sym["symbol"]
        since = dt(ms(sym["first_seen"] - LOOKBACK + timedelta(seconds=10)))
        truth = {
            (name, x["id"]): (Decimal(x["price"]), Decimal(x["qty"]), x["time"], x["buyerMaker"])
            for x in market.trades(name, ms(since), ms(cutoff))
        }
        mine = {key: v for key, v in stored.items() if key[0] == name and since <= dt(v[2]) < cutoff}
        if mine != truth:
            missing, extra = set(truth) - set(mine), set(mine) - set(truth)
            expiry = sym["expiry_time"]
            raise AssertionError(
                f"{name}: {len(missing)} missing, {len(extra)} extra, differ "
                f"{sum(1 for k in set(mine) & set(truth) if mine[k] != truth[k])}; missing at "
                f"{[dt(t).strftime('%H:%M:%S.%f')[:-3] for t in sorted(truth[k][2] for k in missing)[:3]]} "
                f"(expiry {f'{expiry:%H:%M:%S}' if expiry else 'none'} )"
            )
        expected_trades += len(truth)
        # Nothing stored that the exchange does not hold, whatever the time.
        all_truth = {x["id"] for x in market.trades(name, 0, ms(stopped) + 1)}
        assert {tid for (s, tid) in stored if s == name} <= all_truth
        for (s, open_ms), row in klines.items():
            if s != name:
                continue
            [truth_k] = market.klines(name, "1m", open_ms, open_ms + 1, ms(stopped))
            assert (row.open, row.high, row.low, row.close, row.volume, row.trade_count) == (
                Decimal(truth_k[1]),
                Decimal(truth_k[2]),
                Decimal(truth_k[3]),
                Decimal(truth_k[4]),
                Decimal(truth_k[5]),
                int(truth_k[8]),
            ), (name, open_ms)
        # Closed 1m klines are gap-free from the first stored one to shortly before the end.
        opens = sorted(o for (s, o) in klines if s == name)
        if opens:
            end = min(ms(cutoff) - 120_000, ms(sym["expiry_time"]) if sym["expiry_time"] else ms(cutoff))
            want = [o for o in range(opens[0], end, 60_000)]
            assert [o for o in opens if o < end] == want, name
    return {"symbols": symbols, "trades": expected_trades}
