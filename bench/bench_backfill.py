"""Backfill: weight utilisation, request efficiency, memory on 2M+ trades, ingest vs raw COPY.

    python -m bench.bench_backfill [--database-url URL] [--limit 1200] [--big-trades-per-minute 600]

Both phases run `collector simulate` in its own process. Phase 1 (limits on): a backfill lasting
several weight windows, once against the default simulator and once against its live-2019 profile
(the used-weight header pair that disagrees, depth and numbers as the live exchange sent them), in
the same run; utilisation = the simulator's own per-window weight for our IP over the full windows
only ÷ the announced limit; request efficiency = requests ÷ the minimum (full pages); wall time ÷
the theoretical minimum (the weight those minimum pages need ÷ the announced limit).
Phase 2 (limits lifted): `collector backfill` as a subprocess on 2M+ trades, its RSS sampled with
psutil against progress, trades/s to committed rows, then a raw binary COPY of the same rows into
the same table in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import psutil
from sqlalchemy import text

from bench.report import database, write_section
from collector.exchange.endpoints import HISTORICAL_TRADES, KLINES
from collector.store.db import make_engine
from collector.store.migrate import upgrade

API_KEY = "benchkey123456"
TRADE_PAGE, KLINE_PAGE = 500, 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sim(**flags) -> tuple[subprocess.Popen, str]:
    port = free_port()
    args = [sys.executable, "-m", "collector", "simulate", "--port", str(port)]
    for k, v in flags.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            stats(url)
            return proc, url
        except OSError:
            time.sleep(0.1)  # waiting for the port to open
    raise RuntimeError("simulator did not start")


def stats(url: str) -> dict:
    with urllib.request.urlopen(url + "/_sim/stats", timeout=30) as r:
        return json.load(r)


def window(sim_url: str, minutes: int) -> tuple[datetime, datetime, list[str]]:
    s = stats(sim_url)
    end = datetime.fromtimestamp(s["now"] / 1000 - 70 * 60, UTC).replace(second=13, microsecond=0)
    return end - timedelta(minutes=minutes, seconds=31), end, s["symbols"]


def fresh_db(url: str):
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE trades, klines, checkpoints, collector_runs"))
    return engine


def minimum_requests(engine, intervals) -> tuple[int, int, int, int]:
    """Full pages the stored rows need: (pages, their weight, trades, klines)."""
    with engine.connect() as conn:
        trades = dict(conn.execute(text("SELECT symbol, count(*) FROM trades GROUP BY symbol")).all())
        klines = conn.execute(text("SELECT symbol, interval, count(*) FROM klines GROUP BY 1, 2")).all()
    trade_pages = sum(math.ceil(n / TRADE_PAGE) for n in trades.values())
    kline_pages = sum(math.ceil(n / KLINE_PAGE) for *_, n in klines)
    weight = trade_pages * HISTORICAL_TRADES.weight + kline_pages * KLINES.weight
    return trade_pages + kline_pages, weight, sum(trades.values()), sum(n for *_, n in klines)


async def phase_limited(db_url: str, limit: int, minutes: int, tpm: float, profile: str = "default") -> dict:
    from collector.backfill.plan import BackfillPlan
    from collector.backfill.run import run_backfill
    from collector.config import load_settings
    from collector.exchange.session import connect_exchange

    sim, url = start_sim(
        weight_limit=limit,
        raw_limit=0,
        symbols=6,
        history_days=0.3,
        trades_per_minute=tpm,
        listing_interval_s=1800,
        grace_s=6 * 3600,
        profile=profile,
    )
    try:
        start, end, symbols = window(url, minutes)
        engine = fresh_db(db_url)
        settings = load_settings(None, {"exchange_url": url, "api_key": API_KEY}, defaults_file=None)
        intervals = ("1m", "1h")
        async with connect_exchange(settings) as client:
            t0 = time.monotonic()
            summary = await run_backfill(client, engine, BackfillPlan(start, end, symbols, intervals=intervals))
            wall = time.monotonic() - t0
            margin = client.governor.margin
            source = client.governor.stats().weight_source
        s = stats(url)
        windows = sorted((int(k), v) for k, v in s["weight"]["127.0.0.1"].items())
        full = windows[1:-1]  # the first and last windows are partial (startup, the tail)
        used = sum(v for _, v in full)
        pages, needed, trades, klines = minimum_requests(engine, intervals)
        probes = sum(t.cost.probes for t in summary.tasks)
        data_requests = sum(t.cost.requests for t in summary.tasks)
        return dict(
            profile=profile,
            source=source,
            limit=limit,
            margin=margin,
            wall=wall,
            windows=len(full),
            used=used,
            per_window=[v for _, v in full],
            util=used / (limit * len(full)) if full else float("nan"),
            spent=sum(v for _, v in windows),
            needed=needed,
            s429=s["status429"],
            s418=s["status418"],
            trades=trades,
            klines=klines,
            pages=pages,
            probes=probes,
            data_requests=data_requests,
            all_requests=summary.requests,
            tasks=len(summary.tasks),
            failed=len(summary.failed),
        )
    finally:
        sim.terminate()
        sim.wait()


def phase_big(db_url: str, tpm: float, minutes: int) -> dict:
    sim, url = start_sim(
        weight_limit=0,
        raw_limit=0,
        symbols=6,
        history_days=0.25,
        trades_per_minute=tpm,
        listing_interval_s=1800,
        grace_s=6 * 3600,
    )
    try:
        start, end, symbols = window(url, minutes)
        engine = fresh_db(db_url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
        env.update(COLLECTOR_DATABASE_URL=db_url, COLLECTOR_EXCHANGE_URL=url, COLLECTOR_API_KEY=API_KEY)
        cmd = [
            sys.executable,
            "-m",
            "collector",
            "backfill",
            "--start",
            start.isoformat(),
            "--end",
            end.isoformat(),
            "--streams",
            "trades",
        ]
        for s in symbols:
            cmd += ["--symbol", s]
        t0 = time.monotonic()
        proc = psutil.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples = []  # (seconds, rss bytes, trades committed)
        with engine.connect() as conn:
            while proc.poll() is None:
                try:
                    rss = proc.memory_info().rss
                except psutil.NoSuchProcess:
                    break
                n = conn.execute(text("SELECT coalesce(sum(rows), 0) FROM checkpoints")).scalar_one()
                conn.commit()
                samples.append((time.monotonic() - t0, rss, int(n)))
                time.sleep(0.25)  # sampling period
        wall = time.monotonic() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"backfill exited {proc.returncode}")
        with engine.connect() as conn:
            total = conn.execute(text("SELECT count(*) FROM trades")).scalar_one()
        peak = max(r for _, r, _ in samples)
        at = {}
        for q in (25, 50, 75, 100):
            reached = [r for _, r, n in samples if n >= total * q / 100]
            at[q] = reached[0] if reached else samples[-1][1]
        at[100] = max(r for _, r, n in samples if n >= total * 0.99) if samples else 0
        copy_s = raw_copy_same_rows(engine)
        return dict(
            trades=total, wall=wall, rate=total / wall, peak=peak, at=at, copy_s=copy_s, copy_rate=total / copy_s
        )
    finally:
        sim.terminate()
        sim.wait()


def raw_copy_same_rows(engine) -> float:
    """COPY the stored trades out (binary), TRUNCATE, COPY them back in: the raw rate into the same table."""
    raw = engine.raw_connection()
    try:
        cols = "symbol, trade_id, price, qty, time, buyer_maker"
        with tempfile.TemporaryFile() as buf:
            with raw.driver_connection.cursor() as cur:
                with cur.copy(f"COPY (SELECT {cols} FROM trades) TO STDOUT (FORMAT BINARY)") as cp:
                    for chunk in cp:
                        buf.write(chunk)
                cur.execute("TRUNCATE trades")
            raw.driver_connection.commit()
            buf.seek(0)
            t0 = time.perf_counter()
            with (
                raw.driver_connection.cursor() as cur,
                cur.copy(f"COPY trades ({cols}) FROM STDIN (FORMAT BINARY)") as cp,
            ):
                while chunk := buf.read(1 << 20):
                    cp.write(chunk)
            raw.driver_connection.commit()
            return time.perf_counter() - t0
    finally:
        raw.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--limit", type=int, default=1200)
    ap.add_argument("--minutes", type=int, default=280, help="window length, phase 1")
    ap.add_argument("--trades-per-minute", type=float, default=300, help="phase 1")
    ap.add_argument("--big-trades-per-minute", type=float, default=1600, help="phase 2 (~2.1M trades)")
    ap.add_argument("--big-minutes", type=int, default=260, help="window length, phase 2")
    args = ap.parse_args()
    with database(args.database_url) as url:
        lim = asyncio.run(phase_limited(url, args.limit, args.minutes, args.trades_per_minute))
        print(lim)
        live = asyncio.run(phase_limited(url, args.limit, args.minutes, args.trades_per_minute, "live-2019"))
        print(live)
        big = phase_big(url, args.big_trades_per_minute, args.big_minutes)
        print(big)
    eff = lim["data_requests"] - lim["probes"]
    floor_s = lim["needed"] / lim["limit"] * 60  # the weight the minimum pages need, at the announced limit
    floor_margin_s = floor_s / (1 - lim["margin"])
    mb = 2**20
    body = f"""
Phase 1, limits on (announced {lim["limit"]}/min, margin {lim["margin"]}): {lim["tasks"]} tasks, {lim["trades"]:,} trades
and {lim["klines"]:,} klines (1m, 1h), {lim["wall"]:.0f} s wall, {lim["failed"]} failed tasks.

| figure | value | goal |
|---|---|---|
| weight utilisation (simulator's count, {lim["windows"]} full windows: {lim["per_window"]}) | **{lim["util"]:.3f}** of the announced limit | ≥ 0.95 (ceiling at margin {lim["margin"]}: {1 - lim["margin"]:.2f}) |
| 429 / 418 answers | {lim["s429"]} / {lim["s418"]} | 0 |
| paging requests ÷ minimum (ceil(trades/500) per symbol + ceil(klines/1000) per symbol and interval = {lim["pages"]}) | {eff} / {lim["pages"]} = **{eff / lim["pages"]:.3f}** | ≤ 1.05 |
| bisection probes (separate) | {lim["probes"]} ({lim["probes"] / max(1, lim["tasks"] // 3):.1f} per symbol) | few |
| all HTTP requests of the run (after startup) | {lim["all_requests"]} | |
| wall time ÷ theoretical minimum (minimum pages' weight {lim["needed"]:,} ÷ {lim["limit"]}/min = {floor_s:.0f} s; at margin {lim["margin"]}: {floor_margin_s:.0f} s) | {lim["wall"]:.0f} s ÷ {floor_s:.0f} s = **{lim["wall"] / floor_s:.2f}** ({lim["wall"] / floor_margin_s:.2f} of the minimum at the margin) | as close to 1 as the margin allows |
| weight the simulator counted for the run (all windows, startup included) ÷ minimum pages' weight | {lim["spent"]:,} ÷ {lim["needed"]:,} = {lim["spent"] / lim["needed"]:.3f} | |

The same backfill against `collector simulate --profile live-2019`, right after, in the same run:
its responses carry `X-Mbx-Used-Weight: <used>` beside `X-Mbx-Used-Weight-1m: {live["limit"]}` (the
pair recorded from the live exchange), depth without `lastUpdateId`, ids and quantities as JSON
numbers, swapped ticker times.

| figure | default simulator | live-2019 profile | live ÷ default |
|---|---|---|---|
| weight utilisation (full windows) | {lim["util"]:.3f} ({lim["per_window"]}) | **{live["util"]:.3f}** ({live["per_window"]}) | {live["util"] / lim["util"]:.3f} |
| 429 / 418 answers | {lim["s429"]} / {lim["s418"]} | {live["s429"]} / {live["s418"]} | |
| wall time | {lim["wall"]:.0f} s | {live["wall"]:.0f} s | {live["wall"] / lim["wall"]:.2f} |
| rows | {lim["trades"]:,} trades, {lim["klines"]:,} klines | {live["trades"]:,} trades, {live["klines"]:,} klines | |
| what the weight count was reconciled with at the end | {lim["source"]} | {live["source"]} | |

With margin 0.05 the governor never plans past 95% of the announced limit, so 0.95 is the
ceiling of this ratio by construction; the figure above is measured at the configured margin.
Completeness is claimed only on evidence (an empty page after a window's last trade or kline, or
one at or past its end), so a task may make one request beyond its full pages: that is most of
the paging ratio's excess over 1.
The exchange counts weight per fixed clock minute, so a run also spends the budgets of the partial
minutes it begins and ends in: its wall time can come in under the minimum at the margin (the
minimum assumes whole windows).

Phase 2, limits lifted: `collector backfill --streams trades` as its own process, {big["trades"]:,} trades.

| figure | value |
|---|---|
| end-to-end, simulator → committed rows | **{big["rate"]:,.0f} trades/s** ({big["wall"]:.0f} s, process start included) |
| raw binary COPY of the same rows into the same table, same run | {big["copy_rate"]:,.0f} trades/s ({big["copy_s"]:.1f} s) |
| ratio end-to-end ÷ raw COPY | {big["rate"] / big["copy_rate"]:.2f} |
| peak RSS of the backfill process | **{big["peak"] / mb:.0f} MB** (goal < 200 MB) |
| RSS at 25 / 50 / 75 / 100% of the trades | {" / ".join(f"{big['at'][q] / mb:.0f}" for q in (25, 50, 75, 100))} MB |
"""
    write_section("backfill", "Backfill", body, "python -m bench.bench_backfill")


if __name__ == "__main__":
    main()
