"""The daemon against the simulator: trade freshness, and weight used per minute vs the plan.

    python -m bench.bench_daemon [--steady-minutes 3] [--scenarios 28x15,28x5,200x15] [--database-url URL]

Each scenario (SYMBOLSxTRADES_POLL_SECONDS) runs `run_daemon` in-process against its own
`Simulator` on loopback (1200 weight/min, 7 trades/min per symbol, default schedule otherwise:
klines 1m+1h every 60 s, depth and tickers every 60 s, symbols every 300 s, 1 h lookback) into a
fresh database. It runs until the start-up catch-up is over (every symbol's trades and klines
caught up once), then ``--steady-minutes`` more full minutes.

Freshness: the bench database only (it owns it; models and migrations are untouched) gets
``trades.committed_at timestamptz DEFAULT clock_timestamp()``: the database clock when the row was
inserted, a few ms before its transaction commits (rows and checkpoint commit together). Lag =
committed_at - the trade's time at the simulator (same host clock). Measured over every trade
the simulator made between the end of start-up and (stop - trades interval - 3 s), checked
against the simulator's ground truth so a trade never stored would count as missing.

Weight: the simulator's own counter per IP and per fixed one-minute window
(``sim.stats.weight[ip][window_ms]``), full windows only, split into start-up windows (begun
before the catch-up ended) and steady-state windows; against the plan's ``need_per_minute``
(also the ``jex_planned_weight_per_minute`` gauge).
Without a URL it starts a throw-away embedded PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import time
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench.report import database, write_section
from collector import metrics
from collector.config import load_settings
from collector.daemon.run import run_daemon
from collector.simulator import SimConfig, Simulator
from collector.store.db import make_engine
from collector.store.migrate import upgrade

WINDOW_MS = 60_000
SETTLE_S = 3.0  # trades newer than stop - interval - this may legitimately not be stored yet


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def fresh_database(admin_url: str, name: str) -> str:
    admin = make_engine(admin_url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def loadavg() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


async def scenario(admin_url: str, n_symbols: int, poll: float, steady_minutes: int, max_startup_s: float) -> dict:
    url = fresh_database(admin_url, f"bench_daemon_{n_symbols}_{int(poll)}")
    engine = make_engine(url)
    await asyncio.to_thread(upgrade, engine)
    with engine.begin() as conn:  # bench database only: when each trade row was written
        conn.execute(text("ALTER TABLE trades ADD COLUMN committed_at timestamptz DEFAULT clock_timestamp()"))
    cfg = SimConfig(seed=11, history_days=0.1, symbols=n_symbols, trades_per_minute=7.0)
    out: dict = {"symbols": n_symbols, "poll": poll, "load_before": loadavg()}
    async with Simulator(cfg, host="127.0.0.1", port=0) as sim:
        settings = load_settings(
            None,
            {
                "exchange_url": sim.base_url,
                "api_key": "benchdaemon1",
                "database_url": url,
                "trades_poll_seconds": poll,
                "metrics_port": 0,
            },
            defaults_file=None,
        )
        stop = asyncio.Event()
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        begun = time.time()
        daemon = asyncio.create_task(run_daemon(settings, stop=stop, started=fut, announce=lambda m: None))
        running = await asyncio.wait_for(fut, 120)
        ctx, schedule = running.ctx, running.schedule
        streams = ["trades"] + [f"klines {iv}" for iv in settings.kline_intervals]
        ready_at = None
        plans: list[tuple[float, float, float]] = []
        while True:
            await asyncio.sleep(1.0)
            now = time.time()
            plans.append(
                (
                    now,
                    schedule.plan.need_per_minute,
                    metrics.REGISTRY.get_sample_value("jex_planned_weight_per_minute") or 0.0,
                )
            )
            if ready_at is None:
                syms = ctx.with_history()
                if syms and all(ctx.caught_up.get((st, s), 0) >= begun for s in syms for st in streams):
                    ready_at = now
                    print(f"  {n_symbols}x{poll:g}: start-up done after {now - begun:.0f}s", flush=True)
                elif now - begun > max_startup_s:
                    print(f"  {n_symbols}x{poll:g}: start-up not done after {max_startup_s:.0f}s", flush=True)
                    ready_at = now
            if ready_at is not None:
                # steady_minutes full windows that begin after ready_at, then a little more
                first_full = (int(ready_at * 1000) // WINDOW_MS + 1) * WINDOW_MS
                if now * 1000 >= first_full + steady_minutes * WINDOW_MS + 1000:
                    break
        stop.set()
        assert await asyncio.wait_for(daemon, 30) == 0
        stopped = time.time()
        out["load_after"] = loadavg()
        out["startup_s"] = ready_at - begun
        out["plan"] = schedule.plan
        out["plan_need"] = schedule.plan.need_per_minute
        out["plan_metric"] = plans[-1][2]
        out["plan_need_range"] = (min(p[1] for p in plans), max(p[1] for p in plans))
        out["trades_interval"] = schedule.plan.seconds["trades"]
        out["status_429"] = sim.stats.status_429
        out["status_418"] = sim.stats.status_418
        # Weight per full minute window, summed over IPs (one: loopback).
        per_window: dict[int, int] = {}
        for w in sim.stats.weight.values():
            for start, used in w.items():
                per_window[start] = per_window.get(start, 0) + used
        full = sorted(s for s in per_window if s >= begun * 1000 and s + WINDOW_MS <= stopped * 1000)
        out["startup_windows"] = [per_window[s] for s in full if s < ready_at * 1000]
        out["steady_windows"] = [per_window[s] for s in full if s >= ready_at * 1000]
        steady_from = min((s for s in full if s >= ready_at * 1000), default=stopped * 1000)
        # Freshness: every trade the simulator made in the steady windows, until shortly before the
        # stop; and separately those made between the catch-up's end and the first steady window
        # (that minute's weight is shared with the catch-up).
        hi_ms = int((stopped - out["trades_interval"] - SETTLE_S) * 1000)
        out["lags"], out["trades_missing"] = lags(engine, sim, int(steady_from), hi_ms)
        out["early_lags"], out["early_missing"] = lags(engine, sim, int(ready_at * 1000), int(steady_from))
    engine.dispose()
    return out


def lags(engine, sim: Simulator, lo_ms: int, hi_ms: int) -> tuple[list[float], int]:
    """Lag of every trade the simulator made in [lo, hi), and how many of them are not stored."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT symbol, trade_id, extract(epoch FROM committed_at - time) AS lag FROM trades "
                "WHERE time >= to_timestamp(:lo / 1000.0) AND time < to_timestamp(:hi / 1000.0)"
            ),
            {"lo": lo_ms, "hi": hi_ms},
        ).all()
        names = [r[0] for r in conn.execute(text("SELECT symbol FROM option_symbols"))]
    stored = {(r.symbol, r.trade_id): float(r.lag) for r in rows}
    truth = {(s, t["id"]) for s in names for t in sim.market.trades(s, lo_ms, hi_ms)}
    return [stored[k] for k in truth if k in stored], len(truth - set(stored))


def describe(r: dict) -> tuple[str, str]:
    lags = r["lags"]
    goal = r["trades_interval"] + 2.0
    p99 = pct(lags, 0.99)
    fresh = (
        f"| {r['symbols']} | {r['poll']:g} s | {r['trades_interval']:.1f} s | {len(lags):,} "
        f"({r['trades_missing']} missing) | {pct(lags, 0.5):.2f} s | {pct(lags, 0.9):.2f} s | "
        f"{p99:.2f} s | {max(lags) if lags else float('nan'):.2f} s | ≤ {goal:.1f} s: "
        f"{'met' if p99 <= goal and not r['trades_missing'] else 'MISSED'} | "
        f"{len(r['early_lags'])} ({r['early_missing']} missing): p50 {pct(r['early_lags'], 0.5):.2f} s, "
        f"p99 {pct(r['early_lags'], 0.99):.2f} s, max {max(r['early_lags'], default=float('nan')):.2f} s |"
    )
    st, su = r["steady_windows"], r["startup_windows"]
    mean = statistics.fmean(st) if st else float("nan")
    weight = (
        f"| {r['symbols']} | {r['poll']:g} s → {r['trades_interval']:.1f} s | {r['plan_need']:.0f} "
        f"(gauge {r['plan_metric']:.0f}) | {mean:.0f} ({min(st) if st else '-'}–{max(st) if st else '-'}, "
        f"{len(st)} min) | {mean / r['plan_need']:.2f} | {r['startup_s']:.0f} s: "
        f"{', '.join(map(str, su)) or '-'} | {r['status_429']} / {r['status_418']} | "
        f"{r['load_before']} → {r['load_after']} |"
    )
    return fresh, weight


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steady-minutes", type=int, default=3)
    ap.add_argument("--scenarios", default="28x15,28x5,200x15")
    ap.add_argument("--max-startup", type=float, default=900.0, help="seconds")
    ap.add_argument("--database-url")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with database(args.database_url) as url:
        results = []
        for spec in args.scenarios.split(","):
            n, poll = spec.split("x")
            print(f"scenario {spec} (load {loadavg()}) at {datetime.now(UTC):%H:%M:%S}", flush=True)
            r = asyncio.run(scenario(url, int(n), float(poll), args.steady_minutes, args.max_startup))
            results.append(r)
            print("  " + "\n  ".join(describe(r)), flush=True)
            for change in r["plan"].changes:
                print(f"    stretched {change}", flush=True)
        fresh = [
            "| symbols | trades poll | scheduled (after planning) | trades measured | p50 | p90 | p99 | max "
            "| goal p99 ≤ scheduled + 2 s | start-up minute (trades after the catch-up, before the first steady "
            "window) |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
        ]
        weight = [
            "| symbols | trades poll → scheduled | plan weight/min | used weight/min, steady (min–max, windows) "
            "| used / plan | start-up: catch-up time: weight per full minute | 429 / 418 | load avg 1/5/15 "
            "before → after |",
            "|---:|---|---:|---|---:|---|---|---|",
        ]
        stretched = []
        for r in results:
            f, w = describe(r)
            fresh.append(f)
            weight.append(w)
            if r["plan"].changes:
                stretched.append(
                    f"- {r['symbols']} symbols, trades every {r['poll']:g} s: " + "; ".join(r["plan"].changes)
                )
        body = (
            "The daemon (`run_daemon`, default schedule: klines 1m + 1h, depth and tickers every 60 s, "
            "1 h lookback) in-process against the simulator on loopback (1200 weight/min, 7 trades/min "
            "per symbol), one fresh database per row. Each run lasts until the start-up catch-up is "
            f"over, then {args.steady_minutes} full minutes.\n\n"
            "**Freshness** — lag = when the row was written in PostgreSQL (a bench-only column "
            "`committed_at DEFAULT clock_timestamp()`, a few ms before the commit) minus the trade's time "
            "at the simulator, over every trade made in the steady windows (below) until stop − interval − 3 s "
            "(checked against the simulator's ground truth: missing trades are counted). A trade waits "
            "for the next poll, so the lag is roughly uniform on [0, interval] plus the poll's own time.\n\n"
            + "\n".join(fresh)
            + "\n\n**Weight per minute vs the plan** — the simulator's own per-IP counter per fixed "
            "one-minute window, full windows only; steady state = windows begun after every symbol's "
            "trades and klines had caught up once. Plan = `need_per_minute` of the schedule in force "
            "(the `jex_planned_weight_per_minute` gauge), one page per symbol per poll; the budget is "
            "90 % of the announced 1200 less the 5 % margin (1026/min).\n\n"
            + "\n".join(weight)
            + "\n\n"
            + ("Stretched by the planner:\n" + "\n".join(stretched) + "\n" if stretched else "")
        )
        print(body)
        cmd = "python -m bench.bench_daemon"
        if args.steady_minutes != 3 or args.scenarios != "28x15,28x5,200x15":
            cmd += f" --steady-minutes {args.steady_minutes} --scenarios {args.scenarios}"
        write_section("daemon", "Daemon: trade freshness and weight vs plan", body, cmd)


if __name__ == "__main__":
    main()
