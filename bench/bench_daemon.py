"""The daemon against the realistic simulated market: trade freshness, staleness of the other
streams, weight, the fixed schedule beside the adaptive one.

    python -m bench.bench_daemon [--steady-minutes 5] [--scenarios 28:fixed,28:adaptive,200:fixed,200:adaptive,28:adaptive:burst]

Each scenario (SYMBOLS:SCHEDULE[:burst]) runs `run_daemon` in-process against its own `Simulator`
on loopback (the chain market: calls and puts at 3 strikes per expiry, 7 trades/min at the money,
activity concentrated near the money and near expiry and bursty; 1200 weight/min) into a fresh
database, with the default settings otherwise (klines 1m + 1h, depth and tickers every 60 s,
symbols every 300 s, 1 h lookback; fixed: trades every 15 s). It runs until the start-up catch-up
is over (every symbol's trades and klines caught up once), then ``--steady-minutes`` full minutes.
``burst``: from the first steady minute on, 4 of the busiest symbols trade 10 times as much for a
minute.

Freshness: the bench database only (it owns it; models and migrations are untouched) gets
``committed_at timestamptz DEFAULT clock_timestamp()`` on trades, klines, depth_snapshots and
tickers_24hr: the database clock when the row was written, a few ms before its transaction commits.
Trade lag = committed_at - the trade's time at the simulator (same host clock), over every trade the
simulator made in the steady windows until shortly before the stop, checked against its ground
truth (a trade never stored counts as missing). Activity classes, by the symbol's trades per
minute over the measured span: busy (>= 5), normal (0.5-5), quiet (< 0.5). Closed 1m klines: lag =
committed_at - close time. Depth and tickers: the gaps between a symbol's snapshots.

Weight: the simulator's own counter per IP and per fixed one-minute window, full steady windows;
requests per stored trade = the simulator's requests in those windows / trades stored in them.
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
from collector.config import load_settings
from collector.daemon.run import run_daemon
from collector.simulator import Market, SimConfig, Simulator
from collector.store.db import make_engine
from collector.store.migrate import upgrade

WINDOW_MS = 60_000
SETTLE_S = 20.0  # trades newer than stop - this may legitimately not be stored yet (fixed: 15 s polls)
TIMED = ("trades", "klines", "depth_snapshots", "tickers_24hr")
CLASSES = (("busy", 5.0, float("inf")), ("normal", 0.5, 5.0), ("quiet", 0.0, 0.5))


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
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def loadavg() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def market(n_symbols: int, boosts=()) -> SimConfig:
    return SimConfig(
        seed=11, history_days=0.1, symbols=n_symbols, trades_per_minute=7.0, market="chain", strikes=3, boosts=boosts
    )


async def scenario(admin_url: str, spec: str, steady_minutes: int, max_startup_s: float) -> dict:
    parts = spec.split(":")
    n_symbols, schedule, burst = int(parts[0]), parts[1], "burst" in parts[2:]
    url = fresh_database(admin_url, f"bench_daemon_{n_symbols}_{schedule}{'_burst' if burst else ''}")
    engine = make_engine(url)
    await asyncio.to_thread(upgrade, engine)
    with engine.begin() as conn:  # bench database only: when each row was written (or last rewritten)
        conn.execute(
            text(
                "CREATE FUNCTION bench_touch() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN NEW.committed_at := clock_timestamp(); RETURN NEW; END $$"
            )
        )
        for table in TIMED:
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN committed_at timestamptz DEFAULT clock_timestamp()"))
        conn.execute(
            text("CREATE TRIGGER bench_touch BEFORE UPDATE ON klines FOR EACH ROW EXECUTE FUNCTION bench_touch()")
        )
    out: dict = {"symbols": n_symbols, "schedule": schedule, "burst": burst, "load_before": loadavg()}
    now = int(time.time() * 1000)
    boosts: tuple = ()
    if burst:
        # the busiest symbols of the same market, boosted for a minute a few minutes in (after the
        # start-up): their trades in that minute are measured on their own
        m = Market(market(n_symbols))
        busiest = sorted(
            (o for o in m.listed(now) if o.expiry > now + 3_600_000),
            key=lambda o: -len(m._trades_range(o, now - 600_000, now)),
        )[:4]
        out["burst_symbols"] = [o.name for o in busiest]
        boosts = tuple((o.name, now + 240_000, now + 300_000, 10.0) for o in busiest)
        out["burst_span"] = (now + 240_000, now + 300_000)
    async with Simulator(market(n_symbols, boosts), host="127.0.0.1", port=0) as sim:
        settings = load_settings(
            None,
            {"exchange_url": sim.base_url, "api_key": "benchdaemon1", "database_url": url, "metrics_port": 0},
            defaults_file=None,
        )
        settings = settings.model_copy(update={"schedule": schedule})
        stop = asyncio.Event()
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        begun = time.time()
        daemon = asyncio.create_task(run_daemon(settings, stop=stop, started=fut, announce=lambda m: None))
        running = await asyncio.wait_for(fut, 120)
        ctx, schedule_ = running.ctx, running.schedule
        streams = ["trades"] + [f"klines {iv}" for iv in settings.kline_intervals]
        ready_at = None
        requests_at_lo = None
        while True:
            await asyncio.sleep(1.0)
            now_s = time.time()
            if ready_at is None:
                syms = ctx.with_history()
                if syms and all(ctx.caught_up.get((st, s), 0) >= begun for s in syms for st in streams):
                    ready_at = now_s
                    print(f"  {spec}: start-up done after {now_s - begun:.0f}s", flush=True)
                elif now_s - begun > max_startup_s:
                    print(f"  {spec}: start-up not done after {max_startup_s:.0f}s", flush=True)
                    ready_at = now_s
            if ready_at is not None:
                first_full = (int(ready_at * 1000) // WINDOW_MS + 1) * WINDOW_MS
                if requests_at_lo is None and now_s * 1000 >= first_full:
                    requests_at_lo = sim.stats.requests
                done_at = first_full + steady_minutes * WINDOW_MS + 1000
                if burst:
                    done_at = max(done_at, out["burst_span"][1] + 2 * WINDOW_MS)
                if now_s * 1000 >= done_at:
                    break
        stop.set()
        assert await asyncio.wait_for(daemon, 30) == 0
        stopped = time.time()
        out["load_after"] = loadavg()
        out["startup_s"] = ready_at - begun
        out["plan"] = schedule_.plan
        out["status_429"] = sim.stats.status_429
        out["status_418"] = sim.stats.status_418
        per_window: dict[int, int] = {}
        for w in sim.stats.weight.values():
            for start, used in w.items():
                per_window[start] = per_window.get(start, 0) + used
        full = sorted(s for s in per_window if s >= ready_at * 1000 and s + WINDOW_MS <= stopped * 1000)
        out["steady_windows"] = [per_window[s] for s in full]
        lo_ms = full[0] if full else int(ready_at * 1000)
        # trades newer than the slowest poll interval (+ 5 s for the poll itself) may rightly be unstored
        plan = schedule_.plan
        settle = max(SETTLE_S, min(plan.seconds["trades"], 300.0) + 5.0) if schedule == "fixed" else SETTLE_S
        hi_ms = int((stopped - settle) * 1000)
        out["span_s"] = (hi_ms - lo_ms) / 1000
        out["lags"], out["missing"] = trade_lags(engine, sim, lo_ms, hi_ms)
        if burst:
            a, b = out["burst_span"]
            out["burst_lags"], out["burst_missing"] = trade_lags(engine, sim, a, b)
            out["burst_lags"] = {s: v for s, v in out["burst_lags"].items() if s in out["burst_symbols"]}
        out["kline_lags"] = kline_lags(engine, lo_ms, hi_ms - 60_000)
        out["depth_gaps"] = snapshot_gaps(engine, "depth_snapshots", lo_ms, hi_ms)
        out["ticker_gaps"] = snapshot_gaps(engine, "tickers_24hr", lo_ms, hi_ms)
        with engine.connect() as conn:
            out["stored_in_span"] = conn.execute(
                text("SELECT count(*) FROM trades WHERE committed_at >= to_timestamp(:a / 1000.0)"), {"a": lo_ms}
            ).scalar()
        out["requests_in_span"] = sim.stats.requests - (requests_at_lo or 0)
    engine.dispose()
    return out


def trade_lags(engine, sim: Simulator, lo_ms: int, hi_ms: int) -> tuple[dict[str, list[float]], int]:
    """Per symbol: the lag of every trade the simulator made in [lo, hi); trades missing."""
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
    lags: dict[str, list[float]] = {}
    missing = 0
    for s in names:
        for t in sim.market.trades(s, lo_ms, hi_ms):
            lag = stored.get((s, t["id"]))
            if lag is None:
                missing += 1
            else:
                lags.setdefault(s, []).append(lag)
    return lags, missing


def kline_lags(engine, lo_ms: int, hi_ms: int) -> list[float]:
    with engine.connect() as conn:
        return [
            float(r[0])
            for r in conn.execute(
                text(
                    "SELECT extract(epoch FROM committed_at - (close_time + interval '1 millisecond')) FROM klines "
                    "WHERE interval = '1m' AND is_closed AND open_time >= to_timestamp(:lo / 1000.0) "
                    "AND open_time < to_timestamp(:hi / 1000.0) AND committed_at > close_time"
                ),
                {"lo": lo_ms, "hi": hi_ms},
            )
        ]


def snapshot_gaps(engine, table: str, lo_ms: int, hi_ms: int) -> list[float]:
    with engine.connect() as conn:
        return [
            float(r[0])
            for r in conn.execute(
                text(
                    f"SELECT extract(epoch FROM captured_at - lag(captured_at) OVER (PARTITION BY symbol ORDER BY "
                    f"captured_at)) AS gap FROM {table} WHERE captured_at >= to_timestamp(:lo / 1000.0) "
                    f"AND captured_at < to_timestamp(:hi / 1000.0)"
                ),
                {"lo": lo_ms, "hi": hi_ms},
            )
            if r[0] is not None
        ]


def classes(r: dict) -> dict[str, list[float]]:
    minutes = r["span_s"] / 60
    out: dict[str, list[float]] = {name: [] for name, _, _ in CLASSES}
    for lags in r["lags"].values():
        rate = len(lags) / minutes
        for name, lo, hi in CLASSES:
            if lo <= rate < hi:
                out[name] += lags
    return out


def seconds(values: list[float], digits: int = 0) -> str:
    """p99 of ``values`` in seconds, or a word when the steady window held none (a job stretched past it)."""
    return f"{pct(values, 0.99):.{digits}f} s" if values else "none in the window"


def row(r: dict) -> tuple[str, str]:
    every = [x for v in r["lags"].values() for x in v]
    by_class = classes(r)
    cls = "; ".join(f"{name} {len(v):,}: p99 {pct(v, 0.99):.1f} s" for name, v in by_class.items() if v)
    fresh = (
        f"| {r['symbols']} | {r['schedule']}{' + burst' if r['burst'] else ''} | {len(every):,} ({r['missing']} missing) "
        f"| {pct(every, 0.5):.2f} | {pct(every, 0.9):.2f} | **{pct(every, 0.99):.2f}** | {max(every, default=float('nan')):.2f} "
        f"| {cls} |"
    )
    st = r["steady_windows"]
    mean = statistics.fmean(st) if st else float("nan")
    per_trade = r["requests_in_span"] / r["stored_in_span"] if r["stored_in_span"] else float("nan")
    other = (
        f"| {r['symbols']} | {r['schedule']}{' + burst' if r['burst'] else ''} | {seconds(r['kline_lags'], 1)} "
        f"| {seconds(r['depth_gaps'])} | {seconds(r['ticker_gaps'])} | {mean:.0f} / 1200 "
        f"({min(st) if st else '-'}–{max(st) if st else '-'}) | {per_trade:.3f} | {r['status_429']} / {r['status_418']} "
        f"| {r['startup_s']:.0f} s | {r['load_before']} → {r['load_after']} |"
    )
    return fresh, other


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steady-minutes", type=int, default=5)
    default = "28:fixed,28:adaptive,200:fixed,200:adaptive,28:adaptive:burst"
    ap.add_argument("--scenarios", default=default)
    ap.add_argument("--max-startup", type=float, default=900.0, help="seconds")
    ap.add_argument("--database-url")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with database(args.database_url) as url:
        results = []
        for spec in args.scenarios.split(","):
            print(f"scenario {spec} (load {loadavg()}) at {datetime.now(UTC):%H:%M:%S}", flush=True)
            r = asyncio.run(scenario(url, spec, args.steady_minutes, args.max_startup))
            results.append(r)
            print("  " + "\n  ".join(row(r)), flush=True)
            if r["burst"]:
                b = [x for v in r["burst_lags"].values() for x in v]
                print(f"  burst: {len(b)} trades of {r['burst_symbols']}: p99 {pct(b, 0.99):.2f} s", flush=True)
        fresh = [
            "| symbols | schedule | trades measured | p50 s | p90 s | p99 s | max s | by activity class |",
            "|---:|---|---:|---:|---:|---:|---:|---|",
        ]
        other = [
            "| symbols | schedule | closed 1m klines: lag p99 | depth: gap p99 | tickers: gap p99 "
            "| weight/min used (min–max) | requests per stored trade | 429 / 418 | start-up | load avg before → after |",
            "|---:|---|---:|---:|---:|---|---:|---|---:|---|",
        ]
        notes = []
        for r in results:
            f, o = row(r)
            fresh.append(f)
            other.append(o)
            plan = r["plan"]
            if getattr(plan, "trades", None):
                iv = sorted(plan.trades.values())
                notes.append(
                    f"- {r['symbols']} symbols, adaptive: trades polls every {iv[0]:.1f}–{iv[-1]:.0f} s "
                    f"(median {iv[len(iv) // 2]:.1f} s; {len(plan.on_signals)} of {len(iv)} on signals); jobs: "
                    + ", ".join(f"{k} {v:.0f} s" for k, v in plan.seconds.items() if k not in ("partitions",))
                    + (f"; behind: {'; '.join(plan.changes)}" if plan.behind else "; every job at its target")
                )
            elif plan.changes:
                notes.append(f"- {r['symbols']} symbols, fixed: stretched " + "; ".join(plan.changes))
            if r["burst"]:
                b = [x for v in r["burst_lags"].values() for x in v]
                notes.append(
                    f"- burst ({', '.join(r['burst_symbols'])} at 10x for a minute): {len(b):,} of their trades, "
                    f"p50 {pct(b, 0.5):.2f} s, p99 {pct(b, 0.99):.2f} s, max {max(b, default=float('nan')):.2f} s, "
                    f"{r['burst_missing']} missing"
                )
        body = (
            "The daemon (`run_daemon`, default settings: klines 1m + 1h, depth and tickers every 60 s, "
            "1 h lookback) in-process against the simulator's chain market on loopback (1200 weight/min; "
            "calls and puts at 3 strikes per expiry, activity near the money and near expiry, bursty), one "
            "fresh database per row: the fixed schedule (every symbol's trades every 15 s, least urgent "
            "jobs stretched first) beside the adaptive one (weight allocated by rate of trades; each symbol "
            "polled on signals or at its interval, whichever costs less; last prices every 1.5 s, 24h "
            f"volumes as often as the trades they alone show are worth). Each run lasts until the start-up catch-up is over, then {args.steady_minutes} "
            "full minutes.\n\n"
            "**Trade freshness** — lag = when the row was written in PostgreSQL (a bench-only column "
            "`committed_at DEFAULT clock_timestamp()`) minus the trade's time at the simulator, over every "
            "trade made in the steady windows until 20 s before the stop, checked against the simulator's "
            "ground truth (missing trades are counted). Classes by the symbol's trades per minute: busy ≥ 5, "
            "normal 0.5–5, quiet < 0.5.\n\n"
            + "\n".join(fresh)
            + "\n\n**The other streams and the weight** — closed 1m klines: row written − kline close; depth "
            "and tickers: gaps between a symbol's snapshots; weight: the simulator's per-minute counter, "
            "full steady windows.\n\n" + "\n".join(other) + "\n\n" + "\n".join(notes) + "\n"
        )
        print(body)
        cmd = "python -m bench.bench_daemon"
        if args.steady_minutes != 5 or args.scenarios != default:
            cmd += f" --steady-minutes {args.steady_minutes} --scenarios {args.scenarios}"
        write_section("daemon", "Daemon: trade freshness, the other streams and weight, fixed vs adaptive", body, cmd)


if __name__ == "__main__":
    main()
