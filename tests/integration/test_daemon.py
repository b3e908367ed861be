"""The daemon against a live simulator, with symbols listed and expiring during the run.

After the run, the database must hold every trade up to shortly before the end exactly once,
closed klines equal to the exchange's, depth and tickers at the configured cadence, and the
exchange must have seen no 429. The second case restarts PostgreSQL mid-run with faults on.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from collector.daemon.run import SHUTDOWN_GRACE
from collector.daemon.scheduler import Schedule
from collector.simulator import FaultConfig, SimConfig, Simulator
from collector.store.db import make_engine
from tests.helpers.daemon_truth import (
    POLL,
    SIM,
    caught_up,
    check_up_to,
    daemon_settings,
)
from tests.helpers.daemons import running_daemon
from tests.helpers.polling import count, until, wait_until

# Snapshot tables, the job filling each and its interval setting; and how long one symbol trades at
# those intervals before their cadence is judged.
SNAPSHOTS = {"depth_snapshots": ("depth", "depth_poll_seconds"), "tickers_24hr": ("tickers", "tickers_poll_seconds")}
CADENCE_SPAN = timedelta(seconds=90)


Plans = list[tuple[datetime, dict[str, float]]]


def record_plans(monkeypatch) -> Plans:
    """Every plan a daemon's schedule starts with or changes to, with when: the budget planner
    stretches intervals while there are many symbols to poll, so a cadence is judged only where
    the plan kept it as configured."""
    plans: Plans = []

    def recording(method):
        def wrapper(self: Schedule) -> None:
            method(self)
            plans.append((datetime.now(UTC), dict(self.plan.seconds)))

        return wrapper

    monkeypatch.setattr(Schedule, "start", recording(Schedule.start))
    monkeypatch.setattr(Schedule, "replan", recording(Schedule.replan))
    return plans


def planned_spans(plans: Plans, job: str, seconds: float, end: datetime) -> list[tuple[datetime, datetime]]:
    """The spans up to ``end`` during which the plan ran ``job`` every ``seconds``."""
    plans = list(plans)  # a copy: the daemon may re-plan meanwhile
    spans: list[tuple[datetime, datetime]] = []
    for (at, plan), (following, _) in zip(plans, [*plans[1:], (end, {})], strict=True):
        if plan.get(job) != seconds or at >= end:
            continue
        if spans and spans[-1][1] == at:  # a re-plan that kept the interval does not reschedule
            spans[-1] = (spans[-1][0], min(following, end))
        else:
            spans.append((at, min(following, end)))
    return spans


def longest_trading(engine, spans: list[tuple[datetime, datetime]], end: datetime) -> tuple[str, datetime, datetime]:
    """(symbol, start, stop): the longest stretch of one symbol's trading within ``spans``."""
    with engine.connect() as conn:
        symbols = conn.execute(text("SELECT symbol, first_seen, expiry_time FROM option_symbols")).all()
    stretches = [(s.symbol, max(a, s.first_seen), min(b, s.expiry_time or end)) for s in symbols for a, b in spans]
    return max(stretches, key=lambda x: x[2] - x[1], default=("", end, end))


def snapshots(engine, table: str, symbol: str, start: datetime, stop: datetime) -> int:
    """Rows of ``symbol`` in a snapshot table captured from ``start`` until ``stop``."""
    with engine.connect() as conn:
        return conn.execute(
            text(f"SELECT count(*) FROM {table} WHERE symbol = :s AND captured_at >= :a AND captured_at < :b"),
            {"s": symbol, "a": start, "b": stop},
        ).scalar()


@pytest.mark.slow
@pytest.mark.timeout(400)
@pytest.mark.parametrize("trouble", ["calm", "db-restart-and-faults"])
async def test_daemon_keeps_everything_current(db_url, engine, pg_server, trouble, monkeypatch):
    if trouble != "calm" and not pg_server.can_restart:
        pytest.skip("restarting the database needs the embedded test server")
    plans = record_plans(monkeypatch)
    async with Simulator(SimConfig(**SIM), port=0) as sim:
        begun = datetime.now(UTC)
        async with running_daemon(daemon_settings(sim, db_url), stop_timeout=15) as daemon:
            first_symbols = set(daemon.running.ctx.symbols)

            if trouble != "calm":
                sim.faults = FaultConfig(
                    server_error_rate=0.05,
                    drop_rate=0.02,
                    truncate_rate=0.02,
                    slow_rate=0.02,
                    slow_delay_s=3.0,
                    ids_as_numbers_rate=0.3,
                    numbers_as_json_rate=0.3,
                    depth_legacy_rate=0.3,
                )
                await until(lambda: count(engine, "SELECT count(*) FROM trades") > 0, 60, "first trades")
                await asyncio.to_thread(pg_server.restart)
                restarted_at = datetime.now(UTC)

            # Run until symbols were both listed and swept after expiry during the run, and one traded
            # long enough at the configured snapshot intervals to judge their cadence (below).
            def lifecycle_seen() -> bool:
                with engine.connect() as conn:
                    new = conn.execute(
                        text("SELECT count(*) FROM option_symbols WHERE first_seen > :t"),
                        {"t": begun + timedelta(seconds=5)},
                    ).scalar()
                    swept = conn.execute(
                        text("SELECT count(*) FROM option_symbols WHERE final_sweep_at > :t AND expiry_time > :t"),
                        {"t": begun},
                    ).scalar()
                now = datetime.now(UTC)
                return (
                    new >= 2
                    and swept >= 2
                    and all(
                        stop - start >= CADENCE_SPAN
                        for _, start, stop in (
                            longest_trading(engine, planned_spans(plans, job, POLL[key], now), now)
                            for job, key in SNAPSHOTS.values()
                        )
                    )
                )

            await until(lifecycle_seen, 240, "symbols listed and swept during the run")
            # Everything the exchange had by now must arrive before the daemon is stopped; how long
            # that takes depends on the faults and the machine's load, not on a fixed settle time.
            target = datetime.now(UTC)
            await caught_up(engine, sim, begun, target, 90)
            stopping = datetime.now(UTC)  # leaving the block stops the daemon
        stopped = datetime.now(UTC)  # the daemon has exited 0

        result = check_up_to(engine, sim, begun, target)
        assert result["trades"] > 200
        with engine.connect() as conn:  # the run is logged with its counts
            run = conn.execute(text("SELECT status, counts FROM collector_runs WHERE kind = 'run'")).one()
        assert run.status == "ok" and run.counts["jex_rows_upserted:trades"] >= result["trades"]
        assert {s["symbol"] for s in result["symbols"]} > first_symbols
        assert sim.stats.status_429 == 0 and sim.stats.status_418 == 0
        if trouble != "calm":
            assert restarted_at < stopped
            assert sum(sim.stats.faults.values()) > 0  # the faults did happen

        # Depth snapshots and tickers at the configured cadence, judged where the plan kept it: at the
        # start some 20 expired symbols await their final sweep, and the planner stretches the
        # intervals to fit the weight budget until they are swept. In the longest stretch of one
        # symbol trading at the configured interval, until the stop was asked for: no more snapshots
        # than the interval allows, and most of those (APScheduler skips a run that would overlap
        # the last one or start an interval late, which a loaded machine, a restart or a fault causes).
        slack = 0.6 if trouble == "calm" else 0.4  # a restart or a fault costs some snapshots
        for table, (job, key) in SNAPSHOTS.items():
            symbol, start, stop = longest_trading(engine, planned_spans(plans, job, POLL[key], stopping), stopping)
            assert stop - start >= CADENCE_SPAN, (job, start, stop)
            rows = snapshots(engine, table, symbol, start, stop)
            expected = (stop - start).total_seconds() / POLL[key]
            assert expected * slack <= rows <= expected + 2, (table, symbol, rows, expected)


def test_the_demo_collects_the_market_and_the_demo_account_and_sigterm_exits_zero_within_seconds(db_url, tmp_path):
    """The real command, the demo: the chain market and the demo account arrive, status shows both;
    SIGTERM while it works, exit code 0 within a few seconds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    env.update(COLLECTOR_DATABASE_URL=db_url, COLLECTOR_METRICS_PORT="0", COLLECTOR_TRADES_POLL_SECONDS="1")
    with subprocess.Popen(
        [sys.executable, "-m", "collector", "run", "--simulate", "--sim-symbols", "6"],
        env=env,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        _sigterm_while_working(proc, db_url, also=("account_orders", "account_balances", "account_positions"))
    shown = subprocess.run(
        [sys.executable, "-m", "collector", "status", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    streams = {row["stream"] for row in json.loads(shown.stdout)}
    assert {"trades", "orders", "balances", "positions"} <= streams, shown.stdout[-2000:]


def _sigterm_while_working(proc: subprocess.Popen, db_url: str, also: tuple[str, ...] = ()) -> None:
    try:
        for line in proc.stderr:  # wait for the daemon to say it is collecting
            if line.startswith("collecting "):
                break
        engine = make_engine(db_url)
        for table in ("trades", *also):
            wait_until(lambda t=table: count(engine, f"SELECT count(*) FROM {t}") > 0, 60, f"first rows of {table}")
        engine.dispose()
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        assert proc.wait(timeout=20) == 0
        # Running jobs get SHUTDOWN_GRACE to finish; the rest is closing connections and the
        # interpreter, which a loaded machine slows down.
        assert time.monotonic() - sent < SHUTDOWN_GRACE + 8
    finally:
        if proc.poll() is None:
            proc.kill()


def test_metrics_port_in_use_is_one_line_and_exit_2(db_url, tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
        env.update(COLLECTOR_DATABASE_URL=db_url)
        done = subprocess.run(
            [sys.executable, "-m", "collector", "run", "--simulate", "--metrics-port", str(port)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("collector: error:")]
    assert len(errors) == 1 and f"127.0.0.1:{port}" in errors[0] and "Traceback" not in done.stderr
