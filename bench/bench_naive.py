"""A naive baseline beside our backfill, on the same simulator and window, measured in one run.

    python -m bench.bench_naive [--database-url URL] [--minutes 60] [--time-budget 600]

The naive collector is written the way many users write one: a loop of synchronous HTTP calls
(``urllib.request``, standing in for ``requests``) with a fixed sleep between them, floats from
``json.loads``, trades found by paging ``historicalTrades`` from the first id, a fixed back-off
on 429 (ignoring Retry-After) and ``pandas.DataFrame.to_sql`` into its own tables. Our backfill
(`collector backfill`, a subprocess) runs first on a fresh database; then the naive loop runs
against the same simulator process (same IP budget, same window). Both results are compared with
the simulator's truth (its ``/_sim`` endpoints): rows missing, extra, or with different values.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from decimal import Decimal

from sqlalchemy import text

from bench.bench_backfill import API_KEY, fresh_db, start_sim, stats, window
from bench.report import database, write_section

INTERVALS = ("1m", "1h")
SIM_FLAGS = dict(
    weight_limit=1200,
    raw_limit=0,
    symbols=6,
    history_days=0.1,
    trades_per_minute=100,
    listing_interval_s=1800,
    grace_s=6 * 3600,
)
NAIVE_SLEEP = 0.1  # seconds between calls: "be nice to the API"
NAIVE_429_SLEEP = 1.0


def ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.load(r)


# --- truth ------------------------------------------------------------------------------------


def truth(url: str, symbols, start: datetime, end: datetime):
    trades, klines = {}, {}
    for s in symbols:
        for t in get_json(f"{url}/_sim/trades?symbol={s}&startTime={ms(start)}&endTime={ms(end)}"):
            trades[(s, t["id"])] = (Decimal(t["price"]), Decimal(t["qty"]), t["time"], t["buyerMaker"])
        for iv in INTERVALS:
            for k in get_json(f"{url}/_sim/klines?symbol={s}&interval={iv}&startTime={ms(start)}&endTime={ms(end)}"):
                klines[(s, iv, k[0])] = (*tuple(Decimal(str(x)) for x in (*k[1:6], k[7], k[9], k[10])), int(k[8]))
    return trades, klines


def compare(truth_rows: dict, got: dict) -> dict:
    missing = len(truth_rows.keys() - got.keys())
    extra = len(got.keys() - truth_rows.keys())
    differ = sum(1 for k in truth_rows.keys() & got.keys() if truth_rows[k] != got[k])
    return dict(missing=missing, extra=extra, differ=differ, total=missing + extra + differ)


def ours_rows(engine):
    with engine.connect() as conn:
        trades = {
            (r.symbol, r.trade_id): (r.price, r.qty, ms(r.time), r.buyer_maker)
            for r in conn.execute(text("SELECT symbol, trade_id, price, qty, time, buyer_maker FROM trades"))
        }
        klines = {
            (r.symbol, r.interval, ms(r.open_time)): (
                r.open,
                r.high,
                r.low,
                r.close,
                r.volume,
                r.quote_volume,
                r.taker_buy_base_volume,
                r.taker_buy_quote_volume,
                r.trade_count,
            )
            for r in conn.execute(text("SELECT * FROM klines"))
        }
    return trades, klines


def naive_rows(engine):
    with engine.connect() as conn:
        trades = {}
        for r in conn.execute(text("SELECT * FROM naive_trades")).mappings():
            maker = r.get("isBuyerMaker", r.get("buyerMaker"))
            trades[(r["symbol"], int(r["id"]))] = (
                Decimal(str(r["price"])),
                Decimal(str(r["qty"])),
                int(r["time"]),
                None if maker is None else bool(maker),
            )
        klines = {
            (r.symbol, r.interval, int(r.open_time)): (
                *tuple(
                    Decimal(str(x))
                    for x in (r.open, r.high, r.low, r.close, r.volume, r.quote_volume, r.taker_base, r.taker_quote)
                ),
                int(r.trades),
            )
            for r in conn.execute(text("SELECT * FROM naive_klines"))
        }
    return trades, klines


# --- ours -------------------------------------------------------------------------------------


def run_ours(db_url: str, url: str, symbols, start: datetime, end: datetime) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    env.update(COLLECTOR_DATABASE_URL=db_url, COLLECTOR_EXCHANGE_URL=url, COLLECTOR_API_KEY=API_KEY)
    cmd = [sys.executable, "-m", "collector", "backfill", "--start", start.isoformat(), "--end", end.isoformat()]
    for s in symbols:
        cmd += ["--symbol", s]
    for iv in INTERVALS:
        cmd += ["--interval", iv]
    before = stats(url)
    t0 = time.monotonic()
    rc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    wall = time.monotonic() - t0
    after = stats(url)
    return dict(
        wall=wall,
        rc=rc,
        s429=after["status429"] - before["status429"],
        s418=after["status418"] - before["status418"],
        requests=after["requests"] - before["requests"],
    )


# --- naive --------------------------------------------------------------------------------------


class NaiveGaveUp(Exception):
    """What ended the naive run, with the exchange's answer."""


class Naive:
    def __init__(self, url: str, budget_s: float) -> None:
        self.url = url
        self.calls = self.s429 = self.s418 = 0
        self.deadline = time.monotonic() + budget_s
        self.gave_up = ""

    def call(self, path: str):
        while True:
            if time.monotonic() > self.deadline:
                raise TimeoutError("time budget exhausted")
            req = urllib.request.Request(self.url + path, headers={"X-JEX-APIKEY": API_KEY})
            self.calls += 1
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    data = json.load(r)  # floats, as json.loads gives them
                time.sleep(NAIVE_SLEEP)
                return data
            except urllib.error.HTTPError as exc:
                if exc.code == 429:
                    self.s429 += 1
                    time.sleep(NAIVE_429_SLEEP)
                    continue
                if exc.code == 418:
                    self.s418 += 1
                body = exc.read()[:200].decode(errors="replace")
                raise NaiveGaveUp(f"HTTP {exc.code} {body} for {path.split('?')[0]}") from exc


def run_naive(db_url: str, url: str, symbols, start: datetime, end: datetime, budget_s: float) -> dict:
    import pandas as pd
    from sqlalchemy import create_engine

    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS naive_trades, naive_klines"))
    naive = Naive(url, budget_s)
    t0 = time.monotonic()
    s0, e0 = ms(start), ms(end)
    try:
        for symbol in symbols:
            rows, from_id = [], 0
            while True:  # page from the first trade until past the window
                page = naive.call(f"/api/v1/option/historicalTrades?symbol={symbol}&fromId={from_id}&limit=500")
                if not page:
                    break
                rows += [dict(symbol=symbol, **t) for t in page if s0 <= t["time"] < e0]
                if page[-1]["time"] >= e0 or len(page) < 500:
                    break
                from_id = int(page[-1]["id"]) + 1
            if rows:
                pd.DataFrame(rows).to_sql("naive_trades", engine, if_exists="append", index=False)
            for iv in INTERVALS:
                got, cursor = [], s0
                while cursor < e0:
                    page = naive.call(
                        f"/api/v1/option/klines?symbol={symbol}&interval={iv}&startTime={cursor}"
                        f"&endTime={e0}&limit=1000"
                    )
                    if not page:
                        break
                    got += page
                    cursor = page[-1][0] + 1
                cols = [
                    "open_time",
                    "open",
                    "high",
                    "low",
                    "close",
                    "volume",
                    "close_time",
                    "quote_volume",
                    "trades",
                    "taker_base",
                    "taker_quote",
                    "ignore",
                ]
                if got:
                    df = pd.DataFrame([r[:12] for r in got], columns=cols[: len(got[0][:12])])
                    for c in ("open", "high", "low", "close", "volume", "quote_volume", "taker_base", "taker_quote"):
                        df[c] = df[c].astype(float)
                    df.insert(0, "interval", iv)
                    df.insert(0, "symbol", symbol)
                    df.to_sql("naive_klines", engine, if_exists="append", index=False)
    except (TimeoutError, NaiveGaveUp) as exc:
        naive.gave_up = f"{type(exc).__name__}: {exc}"
    wall = time.monotonic() - t0
    with engine.begin() as conn:  # an empty run still has tables to compare
        conn.execute(
            text(
                "CREATE TABLE IF NOT EXISTS naive_trades (symbol text, id bigint, price float8, "
                'qty float8, time bigint, "isBuyerMaker" boolean)'
            )
        )
        conn.execute(
            text(
                "CREATE TABLE IF NOT EXISTS naive_klines (symbol text, interval text, open_time bigint, "
                "open float8, high float8, low float8, close float8, volume float8, quote_volume float8, "
                "trades bigint, taker_base float8, taker_quote float8)"
            )
        )
    engine.dispose()
    return dict(wall=wall, calls=naive.calls, s429=naive.s429, s418=naive.s418, gave_up=naive.gave_up)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--minutes", type=int, default=60, help="window length")
    ap.add_argument("--time-budget", type=float, default=600.0, help="seconds the naive loop may take")
    ap.add_argument("--no-report", action="store_true")
    args = ap.parse_args()
    with database(args.database_url) as db_url:
        sim, url = start_sim(**SIM_FLAGS)
        try:
            start, end, symbols = window(url, args.minutes)
            engine = fresh_db(db_url)
            t_trades, t_klines = truth(url, symbols, start, end)
            ours = run_ours(db_url, url, symbols, start, end)
            o_trades, o_klines = ours_rows(engine)
            time.sleep(61)  # let the IP's weight window turn, so the naive run starts with a full budget
            naive = run_naive(db_url, url, symbols, start, end, args.time_budget)
            n_trades, n_klines = naive_rows(engine)
            engine.dispose()
        finally:
            sim.terminate()
            sim.wait()
    ours_cmp = {k: compare(t, g) for k, t, g in (("trades", t_trades, o_trades), ("klines", t_klines, o_klines))}
    naive_cmp = {k: compare(t, g) for k, t, g in (("trades", t_trades, n_trades), ("klines", t_klines, n_klines))}
    result = dict(
        window_minutes=args.minutes,
        symbols=len(symbols),
        truth_trades=len(t_trades),
        truth_klines=len(t_klines),
        ours=ours,
        ours_mismatches=ours_cmp,
        naive=naive,
        naive_mismatches=naive_cmp,
    )
    print(json.dumps(result, indent=2, default=str))

    def mism(c):
        return (
            f"{c['trades']['total'] + c['klines']['total']:,} ({c['trades']['missing']:,} trades missing, "
            f"{c['trades']['differ']:,} differing; {c['klines']['missing']:,} klines missing, "
            f"{c['klines']['differ']:,} differing)"
        )

    body = f"""Same simulator process (weight limit 1200/min, {len(symbols)} symbols, {SIM_FLAGS["trades_per_minute"]:g}
trades/min/symbol), same {args.minutes}-minute window ({len(t_trades):,} trades, {len(t_klines):,} 1m+1h klines),
same run. The naive loop: synchronous `urllib` calls with a fixed {NAIVE_SLEEP:g} s sleep, paging
`historicalTrades` from the first id, a fixed {NAIVE_429_SLEEP:g} s back-off on 429 (Retry-After ignored), floats,
`pandas.DataFrame.to_sql`; given {args.time_budget:g} s at most.

| | wall time | requests | 429s | 418 (ban) | mismatches vs truth |
|---|---|---|---|---|---|
| `collector backfill` | {ours["wall"]:.1f} s | {ours["requests"]:,} | {ours["s429"]} | {ours["s418"]} | {mism(ours_cmp)} |
| naive loop | {naive["wall"]:.1f} s | {naive["calls"]:,} | {naive["s429"]} | {naive["s418"]} | {mism(naive_cmp)} |

Naive run ended: {naive["gave_up"] or "completed"}. Speed-up: {naive["wall"] / ours["wall"]:.1f}x wall time.
"""
    if not args.no_report:
        write_section("naive", "Naive baseline vs our backfill", body, "python -m bench.bench_naive")
    print(body)


if __name__ == "__main__":
    main()
