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
import contextlib
import os
import random
import signal
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from collector.simulator import SimConfig, Simulator
from collector.store.db import make_engine
from tests.integration.backfill_truth import assert_equals_truth, backfill_cmd, cli_env, tail
from tests.integration.test_backfill import window
from tests.integration.test_daemon import SIM as DAEMON_SIM
from tests.integration.test_daemon import caught_up, check_up_to, ms

BACKFILL_KILLS = 10
DAEMON_KILLS = 10


def checkpoint_state(engine) -> tuple:
    with engine.connect() as conn:
        return tuple(conn.execute(text("SELECT coalesce(sum(rows), 0), max(updated_at) FROM checkpoints")).one())


def checkpoints_never_ahead(engine) -> None:
    """Every trades checkpoint's last_trade_id is a stored row: never ahead of committed data."""
    with engine.connect() as conn:
        ahead = conn.execute(text(
            "SELECT c.scope, c.symbol, c.last_trade_id FROM checkpoints c WHERE c.stream = 'trades' "
            "AND c.last_trade_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM trades t WHERE t.symbol = c.symbol "
            "AND t.trade_id = c.last_trade_id)")).all()
    assert not ahead, ahead


def runs_begun(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM collector_runs")).scalar_one()


async def kill_at_random(proc, engine, rng: random.Random, delay: tuple[float, float] | None, on_commit: bool,
                         runs_before: int, at_trades: int | None = None) -> str:
    """SIGKILL a random delay after the process began its run (or once ``at_trades`` trades are
    stored), or (on_commit) the moment a checkpoint row changes after that."""
    deadline = time.monotonic() + 120
    while await asyncio.to_thread(runs_begun, engine) <= runs_before:
        if proc.returncode is not None:
            return "finished"
        assert time.monotonic() < deadline, "the process did not begin its run in 120 s"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 0.05)
    if at_trades is not None:
        while await asyncio.to_thread(trade_count, engine) < at_trades:
            if proc.returncode is not None:
                return "finished"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 0.05)
    else:
        try:
            await asyncio.wait_for(proc.wait(), timeout=rng.uniform(*delay))
            return "finished"
        except TimeoutError:
            pass
    if on_commit:
        before = await asyncio.to_thread(checkpoint_state, engine)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.returncode is None:
            if await asyncio.to_thread(checkpoint_state, engine) != before:
                break
    if proc.returncode is not None:
        return "finished"
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    return "after-commit" if on_commit else "random"


async def run_and_kill(cmd: list[str], env: dict, log_path, engine, rng: random.Random,
                       delay: tuple[float, float] | None, on_commit: bool, at_trades: int | None = None):
    """One run of ``cmd`` logging to ``log_path``, killed as ``kill_at_random`` says: (process, how it ended)."""
    runs_before = await asyncio.to_thread(runs_begun, engine)
    with open(log_path, "wb") as log:
        proc = await asyncio.create_subprocess_exec(*cmd, env=env, stdout=log, stderr=log)
        return proc, await kill_at_random(proc, engine, rng, delay, on_commit, runs_before, at_trades)


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_backfill_killed_anywhere_resumes_exact(db_url, engine, tmp_path):
    cfg = SimConfig(seed=41, history_days=0.25, symbols=5, weight_limit=0, raw_limit=0, trades_per_minute=300,
                    listing_interval_s=1800, silent_share=0.2, grace_s=6 * 3600)
    async with Simulator(cfg, port=0) as sim:
        sim.clock.freeze()
        now = sim.clock.now_ms()
        start, end = window(now)
        symbols = sim.market.listed_symbols(now)
        cmd = backfill_cmd(start, end, symbols)
        env = cli_env(db_url, sim, COLLECTOR_BACKFILL_BATCH_ROWS="500")
        rng = random.Random(9001)
        # Kill points are drawn in progress, not time (a quiet machine finishes the window in fewer
        # seconds than a loaded one): 3-8% of the window's trades after the last kill, so all kills
        # land inside the run.
        expected = sum(len(sim.market.trades(s, ms(start), ms(end))) for s in symbols)
        kills: list[tuple[str, int]] = []
        run = 0
        while len(kills) < BACKFILL_KILLS:
            target = await asyncio.to_thread(trade_count, engine) + int(rng.uniform(0.03, 0.08) * expected)
            proc, how = await run_and_kill(cmd, env, tmp_path / f"bf{run}.log", engine, rng, None,
                                           on_commit=run % 3 == 1, at_trades=target)
            run += 1
            if how == "finished":
                assert proc.returncode == 0, tail(tmp_path / f"bf{run - 1}.log")
                break
            kills.append((how, await asyncio.to_thread(trade_count, engine)))
            await asyncio.to_thread(checkpoints_never_ahead, engine)
        with open(tmp_path / "final.log", "wb") as log:
            proc = await asyncio.create_subprocess_exec(*cmd, env=env, stdout=log, stderr=log)
            assert await asyncio.wait_for(proc.wait(), 150) == 0, tail(tmp_path / "final.log")
        trades, _ = assert_equals_truth(engine, sim, symbols, start, end, now)
        print(f"backfill kills (how, trades stored): {kills}; {trades} trades")
        assert len(kills) >= BACKFILL_KILLS, kills
        assert sum(how == "after-commit" for how, _ in kills) >= 2, kills
        assert len({n for _, n in kills if 0 < n < trades}) >= 3, kills  # struck across the run
        assert [n for _, n in kills] == sorted(n for _, n in kills), "a resumed run lost committed rows"


def trade_count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM trades")).scalar_one()


@pytest.mark.slow
@pytest.mark.timeout(360)
async def test_daemon_killed_anywhere_loses_nothing(db_url, tmp_path):
    engine = make_engine(db_url)
    async with Simulator(SimConfig(**DAEMON_SIM), port=0) as sim:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
        env.update(COLLECTOR_DATABASE_URL=db_url, COLLECTOR_EXCHANGE_URL=sim.base_url,
                   COLLECTOR_API_KEY="crashtest1", COLLECTOR_METRICS_PORT="0",
                   COLLECTOR_TRADES_POLL_SECONDS="2", COLLECTOR_KLINES_POLL_SECONDS="4",
                   COLLECTOR_DEPTH_POLL_SECONDS="5", COLLECTOR_TICKERS_POLL_SECONDS="5",
                   COLLECTOR_SYMBOLS_REFRESH_SECONDS="6", COLLECTOR_LOOKBACK_HOURS="0.05",
                   COLLECTOR_KLINE_INTERVALS="1m", COLLECTOR_HTTP_READ_TIMEOUT="2",
                   COLLECTOR_LEASE_TTL_SECONDS="3", COLLECTOR_DATA_DIR=str(tmp_path))
        cmd = [sys.executable, "-m", "collector", "run"]
        rng = random.Random(4242)
        begun = datetime.now(UTC)
        kills: list[tuple[str, int]] = []
        run = 0
        while len(kills) < DAEMON_KILLS:
            _, how = await run_and_kill(cmd, env, tmp_path / f"run{run}.log", engine, rng, (0.5, 6.0),
                                        on_commit=run % 3 == 1)
            assert how != "finished", tail(tmp_path / f"run{run}.log")
            run += 1
            kills.append((how, await asyncio.to_thread(trade_count, engine)))
            await asyncio.to_thread(checkpoints_never_ahead, engine)
        # A last run that is left alone to catch up, then stopped cleanly.
        # Everything the exchange had when the chaos ended must arrive, whatever the machine's load.
        chaos_over = datetime.now(UTC)
        with open(tmp_path / "final.log", "wb") as log:
            proc = await asyncio.create_subprocess_exec(*cmd, env=env, stdout=log, stderr=log)
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
    engine.dispose()
