"""Crash anywhere: `kill -9` the real backfill and the real daemon (`python -m collector ...`
subprocesses against an in-test simulator and the test database) at seeded random moments, some
of them right after a checkpoint row changed (i.e. while the next commit is being prepared or is
in flight), restart them, and check the database against the simulator's truth.

Kill points come from a seeded RNG: chaos, not synchronisation. The daemon's are delays counted
from the moment the process has begun its run (its ``collector_runs`` row exists), not from its
start: on a loaded machine starting Python and connecting can take longer than the whole delay.
The backfill's are drawn in progress (trades stored), so that however fast the machine, every kill
lands inside the run. Together the two tests kill at least 20 times.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from datetime import UTC, datetime

import pytest

from collector.simulator import SimConfig, Simulator
from tests.helpers.daemon_truth import SIM as DAEMON_SIM
from tests.helpers.daemon_truth import caught_up, check_up_to
from tests.helpers.kills import (
    checkpoints_never_ahead,
    kill_backfill_in_progress,
    run_and_kill,
    runs_begun,
    trade_count,
)
from tests.helpers.polling import until
from tests.helpers.truth import (
    assert_equals_truth,
    backfill_cmd,
    cli_env,
    ms,
    tail,
    window,
)

BACKFILL_KILLS = 10
DAEMON_KILLS = 10


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_backfill_killed_anywhere_resumes_exact(db_url, engine, tmp_path):
    cfg = SimConfig(
        seed=41,
        history_days=0.25,
        symbols=5,
        weight_limit=0,
        raw_limit=0,
        trades_per_minute=300,
        listing_interval_s=1800,
        silent_share=0.2,
        grace_s=6 * 3600,
    )
    async with Simulator(cfg, port=0) as sim:
        sim.clock.freeze()
        now = sim.clock.now_ms()
        start, end = window(now)
        symbols = sim.market.listed_symbols(now)
        cmd = backfill_cmd(start, end, symbols)
        env = cli_env(db_url, sim, COLLECTOR_BACKFILL_BATCH_ROWS="500")
        rng = random.Random(9001)
        # 3-8% of the window's trades after the last kill, so all kills land inside the run.
        expected = sum(len(sim.market.trades(s, ms(start), ms(end))) for s in symbols)
        kills = await kill_backfill_in_progress(
            cmd,
            env,
            tmp_path,
            engine,
            rng,
            BACKFILL_KILLS,
            expected,
            (0.03, 0.08),
            on_commit=lambda run: run % 3 == 1,
            after_kill=checkpoints_never_ahead,
        )
        trades, _ = assert_equals_truth(engine, sim, symbols, start, end, now)
        print(f"backfill kills (how, trades stored): {kills}; {trades} trades")
        assert len(kills) >= BACKFILL_KILLS, kills
        assert sum(how == "after-commit" for how, _ in kills) >= 2, kills
        assert len({n for _, n in kills if 0 < n < trades}) >= 3, kills  # struck across the run
        assert [n for _, n in kills] == sorted(n for _, n in kills), "a resumed run lost committed rows"


@pytest.mark.slow
@pytest.mark.timeout(360)
async def test_daemon_killed_anywhere_loses_nothing(db_url, engine, tmp_path):
    async with Simulator(SimConfig(**DAEMON_SIM), port=0) as sim:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
        env.update(
            COLLECTOR_DATABASE_URL=db_url,
            COLLECTOR_EXCHANGE_URL=sim.base_url,
            COLLECTOR_API_KEY="crashtest1",
            COLLECTOR_METRICS_PORT="0",
            COLLECTOR_TRADES_POLL_SECONDS="2",
            COLLECTOR_KLINES_POLL_SECONDS="4",
            COLLECTOR_DEPTH_POLL_SECONDS="5",
            COLLECTOR_TICKERS_POLL_SECONDS="5",
            COLLECTOR_SYMBOLS_REFRESH_SECONDS="6",
            COLLECTOR_LOOKBACK_HOURS="0.05",
            COLLECTOR_KLINE_INTERVALS="1m",
            COLLECTOR_HTTP_READ_TIMEOUT="2",
            COLLECTOR_LEASE_TTL_SECONDS="3",
            COLLECTOR_DATA_DIR=str(tmp_path),
        )
        cmd = [sys.executable, "-m", "collector", "run"]
        rng = random.Random(4242)
        begun = datetime.now(UTC)
        kills: list[tuple[str, int]] = []
        run = 0
        while len(kills) < DAEMON_KILLS:
            _, how = await run_and_kill(
                cmd, env, tmp_path / f"run{run}.log", engine, rng, (0.5, 6.0), on_commit=run % 3 == 1
            )
            assert how != "finished", tail(tmp_path / f"run{run}.log")
            run += 1
            kills.append((how, await asyncio.to_thread(trade_count, engine)))
            await asyncio.to_thread(checkpoints_never_ahead, engine)
        # A last run that is left alone to catch up, then stopped cleanly.
        # Everything the exchange had when the chaos ended must arrive, whatever the machine's load.
        chaos_over = datetime.now(UTC)
        runs_before = await asyncio.to_thread(runs_begun, engine)
        with open(tmp_path / "final.log", "wb") as log:
            proc = await asyncio.create_subprocess_exec(*cmd, env=env, stdout=log, stderr=log)
            # running (its stop handled) before it is judged: with push, the killed runs may have
            # stored everything already, and a SIGTERM before start-up would find no handler
            await until(lambda: runs_begun(engine) > runs_before, 60, "the last run to begin")
            await caught_up(engine, sim, begun, chaos_over, 150, alive=lambda: proc.returncode is None)
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 20) == 0, tail(tmp_path / "final.log")
        result = check_up_to(engine, sim, begun, chaos_over)
        await asyncio.to_thread(checkpoints_never_ahead, engine)
        print(f"daemon kills (how, trades stored): {kills}; {result['trades']} trades checked")
        assert result["trades"] > 100
        assert sum(how == "after-commit" for how, _ in kills) >= 2, kills
        assert len({n for _, n in kills}) >= 3, kills
        assert sim.stats.status_418 == 0
