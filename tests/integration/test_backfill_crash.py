"""`kill -9` the real `collector backfill` at random points of its progress, then run it to the end:
the database must equal the exchange's data row for row, with nothing stored twice.

The simulator runs in this process (frozen clock, so its truth is static; limits lifted, so the
backfill is busy fetching and committing most of the time and kills land mid-batch, not in a wait
for the next weight window). The CLI is a subprocess talking to it over loopback. Kill points come
from a seeded RNG and are drawn in progress (trades stored), not time: a quiet machine finishes
the window in fewer seconds than a loaded one, and time-drawn kills either bunch before the first
commit or run out before the window does.
"""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import pytest
from sqlalchemy import text

from collector.simulator import SimConfig, Simulator
from tests.helpers.kills import kill_backfill_in_progress
from tests.helpers.truth import assert_equals_truth, backfill_cmd, cli_env, ms, window

# ~390k trades over the window on 18 listed symbols (some expired inside it, a quarter silent).
SIM = dict(
    seed=23,
    history_days=0.25,
    symbols=6,
    weight_limit=0,
    raw_limit=0,
    trades_per_minute=500,
    listing_interval_s=1800,
    silent_share=0.25,
    grace_s=6 * 3600,
)
KILLS = 8
STEP = (0.03, 0.09)  # share of the window's trades stored between two kills


@pytest.fixture
async def frozen_sim():
    async with Simulator(SimConfig(**SIM), port=0) as sim:
        sim.clock.freeze()
        yield sim


@pytest.mark.slow
async def test_kill_9_at_random_moments_then_resume_is_exact(frozen_sim, db_url, engine, tmp_path):
    sim = frozen_sim
    now = sim.clock.now_ms()
    start, end = window(now)
    start -= timedelta(minutes=40)  # a longer window: more to kill
    symbols = sim.market.listed_symbols(now)
    expected = sum(len(sim.market.trades(s, ms(start), ms(end))) for s in symbols)
    # The precondition, whatever the hour: which symbols trade in the window, and how much, follows
    # the listing cycle of the clock, so the window grows until it holds enough to kill (it passed
    # 200k at 02:00 UTC and held 183k at 04:20).
    while expected < 220_000 and end - start < timedelta(hours=4, minutes=30):  # within the 6 h of history
        start -= timedelta(minutes=10)
        expected = sum(len(sim.market.trades(s, ms(start), ms(end))) for s in symbols)
    cmd = backfill_cmd(start, end, symbols)
    env = cli_env(db_url, sim, COLLECTOR_BACKFILL_BATCH_ROWS="1000")
    rng = random.Random(5_0_9)

    kills = await kill_backfill_in_progress(cmd, env, tmp_path, engine, rng, KILLS, expected, STEP)
    progress = [n for _, n in kills]  # trades stored when each kill struck

    trades, klines = assert_equals_truth(engine, sim, symbols, start, end, now)
    assert trades > 200_000 and klines > 500
    # The kills must have struck across the run, not all before the first row or after the last.
    print(f"kills at {progress} of {trades} trades")
    assert len(progress) >= KILLS, progress
    assert all(0 < p < trades for p in progress), progress  # every kill struck inside the run
    assert progress == sorted(progress), "a resumed run lost committed rows"

    # Once complete, the same command again costs no trade or kline request and changes nothing.
    with engine.connect() as conn:
        before = conn.execute(text("SELECT count(*), max(xmin::text::bigint) FROM trades")).one()
    requests = dict(sim.stats.by_endpoint)
    proc = await asyncio.create_subprocess_exec(
        *cmd, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    assert await asyncio.wait_for(proc.wait(), timeout=60) == 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*), max(xmin::text::bigint) FROM trades")).one() == before
    data = ("/api/v1/option/klines",)
    assert all(sim.stats.by_endpoint[e] == requests.get(e, 0) for e in data)
    # historicalTrades: only validate's one key check (limit=1), no paging.
    assert (
        sim.stats.by_endpoint["/api/v1/option/historicalTrades"] - requests.get("/api/v1/option/historicalTrades", 0)
        <= 1
    )
