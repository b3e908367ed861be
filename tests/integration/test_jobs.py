"""Daemon jobs in isolation, against the simulator and real PostgreSQL."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text

from collector.config import load_settings
from collector.daemon.context import LiveContext, Symbol
from collector.daemon.trades import poll_symbol_trades
from collector.exchange.session import connect_exchange
from collector.simulator import SimConfig, Simulator
from collector.store import checkpoints


@asynccontextmanager
async def live_on_busiest_symbol(
    engine, *, seed: int, history_days: float, lookback_hours: float, busiest_over_ms: int
):
    """A frozen simulator and a LiveContext connected to it, clocked at the simulator's now, and the
    symbol with the most trades over the last ``busiest_over_ms``: (sim, now_ms, symbol, ctx)."""
    sim_cfg = SimConfig(
        seed=seed,
        history_days=history_days,
        symbols=3,
        trades_per_minute=60,
        silent_share=0.0,
        weight_limit=0,
        raw_limit=0,
    )
    async with Simulator(sim_cfg, port=0) as sim:
        sim.clock.freeze()
        now = sim.clock.now_ms()
        settings = load_settings(
            None,
            {"exchange_url": sim.base_url, "api_key": "jobtest1", "lookback_hours": lookback_hours},
            defaults_file=None,
        )
        symbol = max(
            sim.market.listed_symbols(now), key=lambda s: len(sim.market.trades(s, now - busiest_over_ms, now))
        )
        async with connect_exchange(settings) as client:
            yield sim, now, symbol, LiveContext(client, engine, settings, clock=lambda: now / 1000)


async def test_cut_short_catch_up_keeps_committed_pages_and_resumes_exactly(engine, monkeypatch):
    from collector.daemon import trades as trades_job

    commits = 0
    store = trades_job._store

    def counting_store(*args):
        nonlocal commits
        commits += 1
        return store(*args)

    monkeypatch.setattr(trades_job, "_store", counting_store)

    async with live_on_busiest_symbol(
        engine, seed=2, history_days=0.2, lookback_hours=2.0, busiest_over_ms=2 * 3_600_000
    ) as (sim, now, symbol, ctx):
        client = ctx.client
        ctx.symbols = {symbol: Symbol(symbol, None)}
        fetch = client.historical_trades

        async def cut_short(*args, **kwargs):
            if commits >= 2:  # two pages committed: the job is cut short here (timeout, SIGTERM)
                raise asyncio.CancelledError
            return await fetch(*args, **kwargs)

        client.historical_trades = cut_short
        with pytest.raises(asyncio.CancelledError):
            await poll_symbol_trades(ctx, symbol)
        with engine.connect() as conn:
            cp = checkpoints.load(conn, checkpoints.LIVE, symbol, "trades")
            stored = conn.execute(text("SELECT count(*), max(trade_id) FROM trades")).one()
        assert cp is not None and cp.rows >= 2 * 500 - 499  # the pages fetched before the cut are kept
        assert stored == (cp.rows, cp.last_trade_id)

        client.historical_trades = fetch
        await poll_symbol_trades(ctx, symbol)  # continues from the checkpoint

    since = datetime.fromtimestamp(now / 1000, UTC) - timedelta(hours=2)
    truth = {
        (t["id"], Decimal(t["price"]), Decimal(t["qty"]))
        for t in sim.market.trades(symbol, int(since.timestamp() * 1000), now + 1)
    }
    with engine.connect() as conn:
        rows = {tuple(r) for r in conn.execute(text("SELECT trade_id, price, qty FROM trades"))}
    assert rows == truth and len(truth) > 5000


async def test_a_late_first_poll_starts_lookback_before_the_symbol_was_first_seen(engine):
    """The first poll of a new symbol may fail or come late (database down, polls stretched): its
    history still starts ``lookback_hours`` before the refresh first saw it, not before the poll."""
    async with live_on_busiest_symbol(
        engine, seed=4, history_days=0.1, lookback_hours=0.25, busiest_over_ms=3_600_000
    ) as (sim, now, symbol, ctx):
        first_seen = datetime.fromtimestamp(now / 1000, UTC) - timedelta(minutes=10)  # seen, then no poll for 10 min
        ctx.symbols = {symbol: Symbol(symbol, None, first_seen=first_seen)}
        assert ctx.history_start(symbol) == first_seen - timedelta(minutes=15)
        await poll_symbol_trades(ctx, symbol)
        # Seen longer ago than the lookback and never polled: only the last lookback_hours.
        ctx.symbols[symbol].first_seen = first_seen - timedelta(hours=1)
        assert ctx.history_start(symbol) == datetime.fromtimestamp(now / 1000, UTC) - timedelta(minutes=15)

    start = first_seen - timedelta(minutes=15)
    truth = {t["id"] for t in sim.market.trades(symbol, int(start.timestamp() * 1000), now + 1)}
    with engine.connect() as conn:
        rows = set(conn.execute(text("SELECT trade_id FROM trades")).scalars())
    assert rows == truth and len(truth) > 10


def series_of(symbol: str) -> list[str]:
    """Every metric series that names ``symbol``."""
    from collector import metrics

    return [
        f"{s.name}{s.labels}"
        for family in metrics.REGISTRY.collect()
        for s in family.samples
        if s.labels.get("symbol") == symbol
    ]


async def test_a_symbols_series_are_removed_when_it_is_swept_refused_or_handed_over(engine):
    """Staleness of a symbol nobody polls here must not grow for ever: after its final sweep, a
    refusal, or a handover to another collector, no series names it."""
    from collector.daemon import leases as lease_job
    from collector.daemon.health import refresh_gauges
    from collector.daemon.sweep import history_streams, note_final
    from collector.errors import SymbolRefused

    async with live_on_busiest_symbol(
        engine, seed=3, history_days=0.1, lookback_hours=0.05, busiest_over_ms=600_000
    ) as (sim, now, _, ctx):
        names = sim.market.listed_symbols(now)[:3]
        expired = datetime.fromtimestamp(now / 1000, UTC) - timedelta(minutes=5)
        for name in names:
            ctx.symbols[name] = Symbol(name, listed=True, expiry=expired if name == names[0] else None)
        await asyncio.gather(*(poll_symbol_trades(ctx, n) for n in names))
        refresh_gauges(ctx)
        assert all(series_of(n) for n in names)  # polled: staleness, lag, newest row, rate
        # 1. the final sweep of the expired one
        swept = names[0]
        for stream in history_streams(ctx, swept):
            await note_final(ctx, swept, stream, ctx.clock())
        assert ctx.symbols[swept].swept
        refresh_gauges(ctx)
        assert series_of(swept) == []
        # 2. a refusal
        await ctx.refuse(SymbolRefused("gone", symbol=names[1], code=-7012, status=400, endpoint="historicalTrades"))
        refresh_gauges(ctx)
        assert series_of(names[1]) == []
        # 3. a handover: the lease of the last one goes to another collector

        class Leases:
            ttl = 4.0

            def balance(self, candidates):
                return {names[0]}, set()  # ours now: not names[2]

            def release(self, symbols):
                return None

        ctx.owned, ctx.leases = set(names), Leases()
        await lease_job.balance_leases(ctx)
        refresh_gauges(ctx)
        assert series_of(names[2]) == []
