"""The backfill against a misbehaving exchange: the data must still equal the exchange's.

1. Faults on (5xx JSON and HTML, answers slower than the read timeout, dropped connections,
   truncated JSON, representation variants): the real CLI, first with no retries (tasks fail and
   the run says so: exit 1, failed tasks named, `collector_runs` row 'failed' with the errors),
   then again with retries: complete and equal, row for row.
2. A 429 storm: another client on the same IP ignores the used-weight headers and overspends the
   budget every minute (it honours Retry-After, or the exchange would ban the IP for both of us).
   The storm is established before the backfill starts (the neighbour has been answered 429) and
   goes on while it runs; the backfill is still exact, once told to wait nothing of ours arrives
   until the wait is over (requests already on their way excepted), and the IP is never banned.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import aiohttp
import pytest
from sqlalchemy import text

from collector.backfill.plan import BackfillPlan
from collector.backfill.run import run_backfill
from collector.config import load_settings
from collector.exchange.session import connect_exchange
from collector.simulator import FaultConfig, SimConfig, Simulator
from tests.helpers.polling import until
from tests.helpers.truth import (
    API_KEY,
    INTERVALS,
    assert_equals_truth,
    backfill_cmd,
    cli_env,
    tail,
    window,
)

SIM = dict(
    seed=31,
    history_days=0.25,
    symbols=6,
    weight_limit=0,
    raw_limit=0,
    trades_per_minute=40,
    listing_interval_s=1800,
    silent_share=0.25,
    grace_s=6 * 3600,
)
FAULTS = "5xx=0.05,html=0.5,slow=0.03,delay=1.5,drop=0.03,truncate=0.04,variants,seed=4"
READ_TIMEOUT = "0.4"  # below the slow answers' delay: every slow answer is a read timeout


async def run_cli(cmd, env, log_path, timeout=120) -> int:
    with open(log_path, "wb") as log:
        proc = await asyncio.create_subprocess_exec(*cmd, env=env, stdout=log, stderr=log)
        try:
            return await asyncio.wait_for(proc.wait(), timeout=timeout)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def test_faults_fail_tasks_visibly_then_retries_make_it_exact(db_url, engine, tmp_path):
    async with Simulator(SimConfig(**SIM), port=0) as sim:
        sim.clock.freeze()
        now = sim.clock.now_ms()
        start, end = window(now)
        symbols = sim.market.listed_symbols(now)
        cmd = backfill_cmd(start, end, symbols)
        sim.faults = FaultConfig.parse(FAULTS)

        # No retries: some tasks must fail, and the run must say so.
        env = cli_env(
            db_url,
            sim,
            COLLECTOR_HTTP_READ_TIMEOUT=READ_TIMEOUT,
            COLLECTOR_MAX_RETRIES="0",
            COLLECTOR_BACKFILL_BATCH_ROWS="500",
        )
        rc = await run_cli(cmd, env, tmp_path / "first.log")
        out = (tmp_path / "first.log").read_text()
        assert rc == 1, tail(tmp_path / "first.log")
        assert "failed" in out and "ExchangeUnavailable" in out
        with engine.connect() as conn:
            run = conn.execute(text("SELECT status, error, counts FROM collector_runs WHERE kind = 'backfill'")).one()
            incomplete = conn.execute(text("SELECT count(*) FROM checkpoints WHERE NOT complete")).scalar()
        assert run.status == "failed" and run.counts["failed_tasks"] > 0
        assert "ExchangeUnavailable" in run.error
        total_tasks = len(symbols) * (1 + len(INTERVALS))
        assert run.counts["failed_tasks"] < total_tasks  # the others got through
        assert incomplete + run.counts["failed_tasks"] > 0

        # Same faults, retries allowed: resumes and ends exact.
        env["COLLECTOR_MAX_RETRIES"] = "12"
        rc = await run_cli(cmd, env, tmp_path / "second.log")
        assert rc == 0, tail(tmp_path / "second.log")
        faults = dict(sim.stats.faults)
        # Every kind of fault was actually served (or this test proves less than it says).
        assert {"5xx", "slow", "drop", "truncate"} <= faults.keys(), faults
        trades, klines = assert_equals_truth(engine, sim, symbols, start, end, now)
        assert trades > 10_000 and klines > 500
        with engine.connect() as conn:
            last = conn.execute(text("SELECT status, counts FROM collector_runs ORDER BY id DESC LIMIT 1")).one()
        assert last.status == "ok" and last.counts["failed_tasks"] == 0


# --- 429 storm ----------------------------------------------------------------------------------

# ban_after: requests already on their way when the IP is told to wait arrive during the wait and
# count towards a ban; 20 of them are far more than a collector that stops sending could cause.
STORM_SIM = dict(
    seed=37,
    history_days=0.25,
    symbols=6,
    # 600 a minute, in 20 s windows: the same pace, with the storm's waits a third as long
    weight_limit=200,
    weight_window_s=20,
    raw_limit=0,
    trades_per_minute=80,
    listing_interval_s=1800,
    silent_share=0.25,
    grace_s=6 * 3600,
    ban_base_s=3,
    ban_after=20,
)
IN_FLIGHT_S = 1.0  # how long after our 429 a request already sent may still arrive


class Spy:
    """Wraps the simulator's request handling: which of our requests arrived while the IP was told
    to wait or was banned (the limiter counts those in ``whileLimited`` before any await), and
    whether one of ours arrived during a wait we had already been told of (more than IN_FLIGHT_S
    after the 429 that told us: not a request already on its way)."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.ours = self.ours_limited = self.ours_429 = self.others = self.others_429 = 0
        self.late = 0  # ours that arrived during a wait we had been told of, after IN_FLIGHT_S
        self.violated = asyncio.Event()  # a late request of ours, or a ban
        told_at = told_until = 0.0  # our latest 429: when it was answered, and its Retry-After's end
        clock = asyncio.get_running_loop().time
        original = sim._serve

        async def serve(request, name, fn, weight):
            nonlocal told_at, told_until
            ours = request.headers.get("X-JEX-APIKEY") == API_KEY
            arrived = clock()
            before = sim.stats.while_limited
            response = await original(request, name, fn, weight)
            limited = sim.stats.while_limited > before  # no await between: this request's verdict
            if ours:
                self.ours += 1
                self.ours_limited += limited
                if limited and told_at + IN_FLIGHT_S < arrived < told_until:
                    self.late += 1
                    self.violated.set()
                if response.status == 429:
                    self.ours_429 += 1
                    if arrived >= told_until:  # a new wait (not one more answer within the last)
                        told_at = clock()
                        told_until = told_at + int(response.headers["Retry-After"])
            else:
                self.others += 1
                self.others_429 += response.status == 429
            if sim.stats.bans:
                self.violated.set()
            return response

        sim._serve = serve


async def careless_neighbour(base_url: str, stop: asyncio.Event) -> int:
    """Another client on our IP, written the careless way: all-symbol 24hr tickers (weight 40)
    every 0.5 s whatever the used-weight headers say, so it spends a limit of 200 within the first
    3 s of every window and overspends it. It does honour Retry-After. Returns the requests it sent."""
    sent = 0
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            async with session.get(f"{base_url}/api/v1/option/ticker/24hr") as resp:
                await resp.read()
                pause = int(resp.headers["Retry-After"]) if resp.status == 429 else 0.5
            sent += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)  # its own pace, not synchronisation
    return sent


@pytest.mark.slow
async def test_429_storm_from_a_careless_neighbour_backfill_exact_never_sends_while_told_to_wait(engine):
    async with Simulator(SimConfig(**STORM_SIM), port=0) as sim:
        # Running clock (the limiter's windows must turn); the window ends over an hour ago, so
        # its truth does not change while we run.
        now = sim.clock.now_ms()
        start, end = window(now)
        # ~330 weight of ours: more than the pacing line lets out in the few seconds the neighbour
        # takes to overspend the next window (at most half our budget at a window's start), so the
        # storm comes again while we run.
        start = end - timedelta(minutes=50)
        symbols = sim.market.listed_symbols(now)
        spy = Spy(sim)
        stop = asyncio.Event()
        other = asyncio.create_task(careless_neighbour(sim.base_url, stop))
        # The precondition first: the storm is on (the neighbour has been told to wait) before ours starts.
        await until(lambda: spy.others_429 >= 1 or other.done(), 120, "the neighbour's first 429")
        assert not other.done()
        storm_before = spy.others_429
        settings = load_settings(None, {"exchange_url": sim.base_url, "api_key": API_KEY}, defaults_file=None)
        async with connect_exchange(settings) as client:
            plan = BackfillPlan(start, end, symbols, intervals=INTERVALS, batch_rows=500)
            backfill = asyncio.create_task(run_backfill(client, engine, plan))
            violated = asyncio.create_task(spy.violated.wait())
            try:
                # Fail at the first request of ours inside a wait (or a ban), not minutes later.
                await asyncio.wait({backfill, violated}, timeout=240, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.set()
                for t in (backfill, violated):
                    t.cancel()
                await asyncio.gather(backfill, violated, return_exceptions=True)
                other_requests = await other
        counts = {k: v for k, v in vars(spy).items() if k not in ("sim", "violated")}
        assert not spy.violated.is_set(), (counts, sim.stats.status_429, sim.stats.status_418, sim.stats.bans)
        summary = backfill.result()
        assert not summary.failed and not summary.incomplete
        assert_equals_truth(engine, sim, symbols, start, end, sim.clock.now_ms())
        # The storm went on while we ran: we started while the IP was told to wait, so we work from
        # the next window on, which the neighbour overspends within seconds, before we can be done.
        print(f"storm: {counts}")
        assert other_requests >= 15 and spy.others_429 > storm_before, counts
        assert sim.stats.status_418 == 0 and spy.late == 0, counts
