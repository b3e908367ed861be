"""Throughput of the JEX simulator: a load generator in this process, the simulator in another.

    .venv/bin/python bench/bench_simulator.py [--seconds 5] [--concurrency 16]

Starts `python -m collector.simulator` (limits lifted) on a free loopback port, pinned to one core
when possible, and reports requests/s for small answers and rows/s for full historicalTrades (500)
and klines (1000) pages. Bounded: each phase stops after --seconds or --max-requests.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time

import aiohttp

KEY = {"X-JEX-APIKEY": "benchkey"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_up(base: str, deadline: float) -> None:
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            try:
                async with s.get(base + "/api/v1/ping") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("simulator did not come up")


async def phase(session, base, make_request, seconds, max_requests, concurrency):
    """Run requests until time or count is spent; returns (requests, rows, elapsed)."""
    done = rows = 0
    end = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal done, rows
        i = w
        while time.perf_counter() < end and done < max_requests:
            path, params = make_request(i)
            async with session.get(base + path, params=params, headers=KEY) as r:
                body = await r.json()
                assert r.status == 200, body
            done += 1
            rows += len(body) if isinstance(body, list) else 0
            i += concurrency

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return done, rows, time.perf_counter() - t0


async def run(args) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "collector.simulator", "--port", str(port), "--weight-limit", "0",
           "--history-days", str(args.history_days), "--trades-per-minute", str(args.trades_per_minute)]
    if sys.platform.startswith("linux"):
        cmd = ["taskset", "-c", "0", *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await wait_up(base, time.monotonic() + 30)
        t_warm = time.monotonic()
        async with aiohttp.ClientSession() as s:  # let the server fold its history first
            while time.monotonic() < t_warm + 300:
                async with s.get(base + "/_sim/stats") as r:
                    if (await r.json())["warm"]:
                        break
                await asyncio.sleep(0.5)
        warm_s = time.monotonic() - t_warm
        conn = aiohttp.TCPConnector(limit=args.concurrency)
        async with aiohttp.ClientSession(connector=conn) as s:
            async with s.get(base + "/api/v1/optionInfo") as r:
                info = await r.json()
            syms = [o["symbol"] for o in info if o["status"] == "TRADING"]
            old = syms[:8]  # oldest: the longest histories
            async with s.get(base + "/api/v1/option/historicalTrades",
                             params={"symbol": old[0], "fromId": 0, "limit": 1}, headers=KEY) as r:
                first_id = int((await r.json())[0]["id"])
            async with s.get(base + "/api/v1/option/historicalTrades",
                             params={"symbol": old[0], "limit": 1}, headers=KEY) as r:
                last_id = int((await r.json())[0]["id"])
            span = last_id - first_id
            results = []
            small = [
                ("ping", lambda i: ("/api/v1/ping", {})),
                ("ticker/price 1 symbol", lambda i: ("/api/v1/option/ticker/price", {"symbol": syms[i % len(syms)]})),
                ("ticker/24hr 1 symbol", lambda i: ("/api/v1/option/ticker/24hr", {"symbol": syms[i % len(syms)]})),
                ("bookTicker 1 symbol", lambda i: ("/api/v1/option/ticker/bookTicker", {"symbol": syms[i % len(syms)]})),
            ]
            for name, mk in small:
                n, _, dt = await phase(s, base, mk, args.seconds, args.max_requests, args.concurrency)
                results.append((name, n, n / dt, None))

            def hist(i):  # pages spread over the whole history: mostly cold buckets
                return ("/api/v1/option/historicalTrades",
                        {"symbol": old[i % len(old)], "fromId": first_id + (i * 7919 * 500) % span, "limit": 500})

            def kl(i):
                return ("/api/v1/option/klines",
                    {"symbol": old[i % len(old)], "interval": ("1m", "3m", "5m")[i % 3], "limit": 1000})

            for name, mk in (("historicalTrades limit=500", hist), ("klines limit=1000", kl)):
                n, rows, dt = await phase(s, base, mk, args.seconds, args.max_requests, args.concurrency)
                results.append((name, n, n / dt, rows / dt))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"# simulator throughput (server pinned to 1 core, {args.concurrency} concurrent, "
          f"{args.seconds}s per phase, history {args.history_days} d, {args.trades_per_minute} trades/min/symbol)")
    print(f"(history folded in {warm_s:.1f} s after start)")
    print("| request | requests | requests/s | rows/s |")
    print("|---|---:|---:|---:|")
    for name, n, rps, rows in results:
        print(f"| {name} | {n} | {rps:,.0f} | {'' if rows is None else f'{rows:,.0f}'} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--max-requests", type=int, default=100_000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--history-days", type=float, default=7.0)
    p.add_argument("--trades-per-minute", type=float, default=7.0)
    args = p.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
