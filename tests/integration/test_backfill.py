"""Backfill against the simulator: the database must equal the exchange's truth, row for row."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from collector.backfill.plan import BackfillPlan
from collector.backfill.run import run_backfill
from collector.exchange.session import connect_exchange
from collector.simulator import SimConfig, Simulator
from tests.helpers.truth import (
    ms,
    settings_for,
    stored_klines,
    stored_trades,
    truth_klines,
    truth_trades,
    window,
)

HOUR = 3_600_000
# Six symbols trading at once, a new one every 30 min (so one expires every 30 min), 25% silent.
SIM = dict(
    seed=11,
    history_days=0.25,
    symbols=6,
    weight_limit=0,
    raw_limit=0,
    trades_per_minute=12,
    listing_interval_s=1800,
    silent_share=0.25,
    grace_s=6 * 3600,
)


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
