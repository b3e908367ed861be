"""Coverage-aware backfill: a window overlapping stored data asks the exchange only for its holes,
a window inside stored data asks nothing, and the summary's counts are the rows (fetched, new,
already stored). The dry run stores nothing; relative windows end now."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from sqlalchemy import text

from collector.backfill.plan import BackfillPlan
from collector.backfill.run import run_backfill
from collector.exchange.session import connect_exchange
from collector.simulator import SimConfig, Simulator
from tests.helpers.truth import (
    cli_env,
    ms,
    settings_for,
    stored_klines,
    stored_trades,
    truth_klines,
    truth_trades,
    window,
)

SIM = dict(
    seed=13,
    history_days=0.25,
    symbols=4,
    weight_limit=0,
    raw_limit=0,
    trades_per_minute=20,
    listing_interval_s=1800,
    silent_share=0.0,
    grace_s=6 * 3600,
)
INTERVALS = ("1m",)
KLINES, TRADES = "/api/v1/option/klines", "/api/v1/option/historicalTrades"


@pytest.fixture
async def frozen_sim():
    async with Simulator(SimConfig(**SIM), port=0) as sim:
        sim.clock.freeze()
        yield sim


def counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()  # noqa: S608 - fixed names
            for t in ("trades", "klines", "checkpoints", "backfill_coverage", "collector_runs", "option_symbols")
        }


async def backfill(sim, engine, plan):
    asked = len(sim.stats.queries)
    async with connect_exchange(settings_for(sim)) as client:
        summary = await run_backfill(client, engine, plan)
    assert not summary.failed and not summary.incomplete
    return summary, list(sim.stats.queries)[asked:]


async def test_an_overlapping_window_fetches_only_its_holes_and_counts_what_was_new(frozen_sim, engine):
    sim = frozen_sim
    now = sim.clock.now_ms()
    start, end = window(now)
    mid = start + (end - start) / 2
    symbols = sorted(sim.market.listed_symbols(now))

    first, _ = await backfill(sim, engine, BackfillPlan(start, mid, symbols, intervals=INTERVALS))
    in_first = truth_trades(sim.market, symbols, start, mid)
    assert first.rows["trades"] == first.written["trades"] == len(in_first) > 200

    # Inside what is stored: no market data asked for (the one-trade probe proves the key).
    inner, asked = await backfill(
        sim,
        engine,
        BackfillPlan(start + timedelta(minutes=7), mid - timedelta(minutes=9), symbols, intervals=INTERVALS),
    )
    assert all(t.skipped for t in inner.tasks) and inner.weight == 0
    assert not [q for q in asked if q[0] == KLINES or (q[0] == TRADES and q[1] != {"symbol": symbols[0], "limit": "1"})]

    # Overlapping: only [mid, end) is fetched; the rows counted are the hole's rows.
    wider, asked = await backfill(sim, engine, BackfillPlan(start, end, symbols, intervals=INTERVALS))
    hole_trades = truth_trades(sim.market, symbols, mid, end)
    hole_klines = truth_klines(sim.market, symbols, INTERVALS, mid, end, now)
    assert {(t.start, t.end) for t in wider.tasks} == {(mid, end)}
    assert wider.rows == {"trades": len(hole_trades), "klines": len(hole_klines)}
    assert wider.written == wider.rows  # all new: none of them was stored before
    kline_starts = [int(q["startTime"]) for name, q in asked if name == KLINES]
    assert kline_starts and min(kline_starts) >= ms(mid), (min(kline_starts), ms(mid))
    # The trades' requests: the search for the hole's first trade and the pages from it.
    first_ids = {s: min(t[1] for t in hole_trades if t[0] == s) for s in symbols if any(t[0] == s for t in hole_trades)}
    paging = [q for name, q in asked if name == TRADES and "fromId" in q]
    before_hole = [q for q in paging if int(q["fromId"]) < first_ids.get(q["symbol"], 1 << 62)]
    assert len(before_hole) <= 8 * len(symbols), before_hole  # the search's probes, no more

    # The database equals the exchange over the whole window, and the coverage says so.
    assert stored_trades(engine) == truth_trades(sim.market, symbols, start, end)
    assert stored_klines(engine) == truth_klines(sim.market, symbols, INTERVALS, start, end, now)
    with engine.connect() as conn:
        covered = conn.execute(
            text("SELECT bool_and(covered @> tstzrange(:s, :e)) FROM backfill_coverage"), {"s": start, "e": end}
        ).scalar()
    assert covered

    # --refetch asks for everything again; nothing is new, everything is counted as already stored.
    again, _ = await backfill(sim, engine, BackfillPlan(start, end, symbols, intervals=INTERVALS, refetch=True))
    total = len(truth_trades(sim.market, symbols, start, end))
    assert again.rows["trades"] == total and again.written["trades"] == 0


async def test_dry_run_prints_the_plan_and_writes_nothing_and_days_fetches_to_now(db_url, engine):
    async with Simulator(SimConfig(**SIM), port=0) as sim:  # its clock runs: "now" is the wall clock's
        await dry_run_then_days(sim, db_url, engine)


async def run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """The command in a thread: the simulator answers on this test's event loop."""
    return await asyncio.to_thread(subprocess.run, cmd, env=env, capture_output=True, text=True, timeout=120)


async def dry_run_then_days(sim, db_url, engine):
    now = sim.clock.now_ms()
    symbol = sorted(sim.market.listed_symbols(now))[0]
    start, end = window(now)
    env = cli_env(db_url, sim)
    base = [sys.executable, "-m", "collector", "backfill", "--symbol", symbol, "--interval", "1m"]
    stored = await run([*base, "--start", start.isoformat(), "--end", end.isoformat()], env)
    assert stored.returncode == 0, stored.stderr[-2000:]
    before, asked = counts(engine), len(sim.stats.queries)

    dry = await run([*base, "--days", "0.25", "--dry-run"], env)
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert counts(engine) == before  # nothing written: no rows, checkpoints, coverage, runs or symbols
    plan = dry.stdout
    assert "dry run" in plan and "trades" in plan and "klines 1m" in plan and "min at the weight limit" in plan
    assert not [q for q in list(sim.stats.queries)[asked:] if q[0] == KLINES]  # klines are counted, not asked

    # The same window for real: the holes around the stored window, up to now.
    real = await run([*base, "--days", "0.25"], env)
    assert real.returncode == 0, real.stderr[-2000:]
    assert "rows already stored" in real.stdout + real.stderr
    with engine.connect() as conn:
        ids = set(conn.execute(text("SELECT trade_id FROM trades WHERE symbol = :s"), {"s": symbol}).scalars())
    truth = {t["id"] for t in sim.market.trades(symbol, now - 6 * 3_600_000 + 60_000, now - 15_000)}
    assert truth and truth <= ids, sorted(truth - ids)[:5]


async def test_sigint_says_how_to_resume_and_exits_130_and_an_empty_window_warns(db_url, engine):
    # A tight weight limit keeps the backfill busy long enough to be interrupted mid-way.
    async with Simulator(SimConfig(**{**SIM, "weight_limit": 120}), port=0) as sim:
        now = sim.clock.now_ms()
        symbols = sorted(sim.market.listed_symbols(now))
        start, end = window(now)
        env = cli_env(db_url, sim)
        cmd = [sys.executable, "-m", "collector", "backfill", "--start", start.isoformat(), "--end", end.isoformat()]
        proc = await asyncio.create_subprocess_exec(
            *cmd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        assert proc.stderr is not None
        seen = b""
        while b" tasks (" not in seen:  # the tasks are planned: it is fetching now
            line = await asyncio.wait_for(proc.stderr.readline(), 60)
            assert line, seen.decode()[-2000:]
            seen += line
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        said = (seen + out + err).decode()
        assert proc.returncode == 130, said[-2000:]
        assert "interrupted after" in said and "run the same command to resume" in said, said[-2000:]
        assert "Traceback" not in said

        # A window the exchange holds nothing of: one warning line naming the symbol; exit 0.
        old = [
            *cmd[:4],
            "--start",
            (start - timedelta(days=3)).isoformat(),
            "--end",
            (start - timedelta(days=2)).isoformat(),
            "--symbol",
            symbols[0],
        ]
        began = time.monotonic()
        quiet = await run(old, env)
        took = time.monotonic() - began
        assert quiet.returncode == 0, quiet.stderr[-2000:]
        # its wall time counts from the process's start (interpreter and imports), up to its summary
        wall = float(re.search(r"wall time\D*([\d.,]+) s", quiet.stdout + quiet.stderr)[1].replace(",", ""))
        assert took - 2.0 <= wall <= took, (wall, took)
        warned = [line for line in (quiet.stdout + quiet.stderr).splitlines() if "warning" in line]
        assert len(warned) == 1 and symbols[0] in warned[0] and "no klines or trades" in warned[0], warned
