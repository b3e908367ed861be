"""Backfill against the simulator: the database must equal the exchange's truth, row for row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select, text

from collector.backfill.plan import BackfillPlan
from collector.backfill.run import run_backfill
from collector.config import load_settings
from collector.exchange.session import connect_exchange
from collector.simulator import Market, SimConfig, Simulator
from collector.store.models import KlineRow, TradeRow

HOUR = 3_600_000
# Six symbols trading at once, a new one every 30 min (so one expires every 30 min), 25% silent.
SIM = dict(seed=11, history_days=0.25, symbols=6, weight_limit=0, raw_limit=0, trades_per_minute=12,
           listing_interval_s=1800, silent_share=0.25, grace_s=6 * 3600)


def ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def dt(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


def settings_for(sim: Simulator):
    return load_settings(None, {"exchange_url": sim.base_url, "api_key": "testkey123456"}, defaults_file=None)


def window(now_ms: int) -> tuple[datetime, datetime]:
    """Off the minute grid; ends more than an hour before now, so every 1h kline in it is closed."""
    end = dt(now_ms - 70 * 60_000).replace(second=43, microsecond=0)
    return end - timedelta(hours=2, seconds=26, microseconds=250_000), end


def truth_trades(market: Market, symbols, start: datetime, end: datetime) -> set[tuple]:
    return {(s, t["id"], Decimal(t["price"]), Decimal(t["qty"]), t["time"], t["buyerMaker"])
            for s in symbols for t in market.trades(s, ms(start), ms(end))}


def stored_trades(engine: Engine) -> set[tuple]:
    t = TradeRow.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.symbol, t.c.trade_id, t.c.price, t.c.qty, t.c.time, t.c.buyer_maker))
        return {(r[0], r[1], r[2], r[3], ms(r[4]), r[5]) for r in rows}


def truth_klines(market: Market, symbols, intervals, start: datetime, end: datetime, now_ms: int) -> set[tuple]:
    out = set()
    for s in symbols:
        for iv in intervals:
            for k in market.klines(s, iv, ms(start), ms(end), now_ms):
                out.add((s, iv, k[0], *(Decimal(str(x)) for x in k[1:6]), k[6],
                         *(Decimal(str(x)) for x in (k[7],)), int(k[8]), Decimal(str(k[9])), Decimal(str(k[10]))))
    return out


def stored_klines(engine: Engine) -> set[tuple]:
    k = KlineRow.__table__
    cols = [k.c.symbol, k.c.interval, k.c.open_time, k.c.open, k.c.high, k.c.low, k.c.close, k.c.volume,
            k.c.close_time, k.c.quote_volume, k.c.trade_count, k.c.taker_buy_base_volume,
            k.c.taker_buy_quote_volume]
    with engine.connect() as conn:
        assert conn.execute(select(k.c.symbol).where(k.c.is_closed.is_(False))).first() is None
        return {(r[0], r[1], ms(r[2]), *r[3:8], ms(r[8]), *r[9:]) for r in conn.execute(select(*cols))}


@pytest.fixture
async def frozen_sim():
    async with Simulator(SimConfig(**SIM), port=0) as sim:
        sim.clock.freeze()
        yield sim


async def test_backfill_equals_exchange_row_for_row(frozen_sim, engine):
    sim = frozen_sim
    now = sim.clock.now_ms()
    start, end = window(now)
    async with connect_exchange(settings_for(sim)) as client:
        served = dict(sim.stats.by_endpoint)
        plan = BackfillPlan(start, end, intervals=("1m", "1h"), batch_rows=700)  # no symbols: all listed
        summary = await run_backfill(client, engine, plan)
    assert not summary.failed and not summary.incomplete
    symbols = sorted({t.symbol for t in summary.tasks})
    assert symbols == sorted(sim.market.listed_symbols(now))
    for listing in ("/api/v1/exchangeInfo", "/api/v1/optionInfo"):  # the listing is fetched once
        assert sim.stats.by_endpoint[listing] - served.get(listing, 0) == 1, listing

    market = sim.market
    options = [market.option(s) for s in symbols]
    # The window must hold the awkward cases, or this test proves less than it claims.
    assert any(ms(start) < o.expiry <= ms(end) for o in options), "no symbol expires inside the window"
    assert any(o.silent for o in options), "no symbol without trades"

    expected_trades = truth_trades(market, symbols, start, end)
    assert len(expected_trades) > 1000
    assert stored_trades(engine) == expected_trades
    expected_klines = truth_klines(market, symbols, ("1m", "1h"), start, end, now)
    assert stored_klines(engine) == expected_klines
    assert summary.rows == {"trades": len(expected_trades), "klines": len(expected_klines)}

    # Request efficiency: pages of the maximum size plus a few probes per symbol.
    trade_tasks = [t for t in summary.tasks if t.stream == "trades"]
    probes = sum(t.cost.probes for t in trade_tasks)
    assert probes <= 4 * len(trade_tasks)

    # The same backfill again: nothing changes and it costs no request at all.
    with engine.connect() as conn:
        before = conn.execute(text("SELECT count(*), max(xmin::text::bigint) FROM trades")).one()
    async with connect_exchange(settings_for(sim)) as client:
        again = await run_backfill(client, engine, plan)
    assert all(t.skipped for t in again.tasks) and again.weight == 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*), max(xmin::text::bigint) FROM trades")).one() == before


async def test_unknown_symbol_interval_and_stream_write_nothing(frozen_sim, engine):
    from collector.errors import ConfigError

    start, end = window(frozen_sim.clock.now_ms())
    async with connect_exchange(settings_for(frozen_sim)) as client:
        for plan, match in (
            (BackfillPlan(start, end, ["NOPE0101CALL"]), "unknown symbol 'NOPE0101CALL'"),
            (BackfillPlan(start, end, [], intervals=("7m",)), "unknown interval '7m'"),
            (BackfillPlan(start, end, [], streams=("depth",)), "unknown stream 'depth'"),
            (BackfillPlan(end, start, []), "before"),
        ):
            with pytest.raises(ConfigError, match=match):
                await run_backfill(client, engine, plan)
    with engine.connect() as conn:
        for table in ("trades", "klines", "checkpoints", "option_symbols", "collector_runs"):
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 0, table
