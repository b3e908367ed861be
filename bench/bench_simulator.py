"""Throughput of the JEX simulator against a bare aiohttp server measured in the same run.

    .venv/bin/python -m bench.bench_simulator [--seconds 5] [--connections 16] [--write]

Starts `python -m collector.simulator` (limits lifted) on a free loopback port, pinned to core 0,
and a bare aiohttp "hello" server (same runner options: no access log) pinned to the same core.
The load comes from wrk pinned to core 1 when wrk is installed (`apt-get install wrk`), else from
an aiohttp client in this process (much slower than the servers: its figures mostly measure the
client). Reports requests/s for small answers (ping, one-symbol tickers) and rows/s for full
historicalTrades (500) and klines (1000) pages, each beside the hello baseline of the same run.
Bounded: loopback only; each phase stops after --seconds or --max-requests, whichever first.
`--write` records the table in docs/benchmarks.md (section "simulator").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import aiohttp

KEY = {"X-JEX-APIKEY": "benchkey"}
SERVER_CORE, LOAD_CORE = "0", "1"

HELLO = textwrap.dedent("""
    import asyncio, sys
    from aiohttp import web

    async def ping(request):
        return web.Response(body=b"{}", content_type="application/json")

    async def main(port):
        app = web.Application()
        app.router.add_get("/api/v1/ping", ping)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    asyncio.run(main(int(sys.argv[1])))
""")

# wrk script: cycles through PATHS (one per request), counts rows of 200 answers, stops a thread
# after MAX requests; done() prints totals for the caller to parse.
LUA = textwrap.dedent("""
    local paths = {PATHS}
    local kind = "{KIND}"
    local max_requests = {MAX}
    local threads = {{}}
    function setup(thread)
      thread:set("offset", #threads)
      table.insert(threads, thread)
    end
    function init(args)
      i = offset
      rows = 0
      n = 0
      bad = 0
    end
    function request()
      i = i + 1
      return wrk.format("GET", paths[(i % #paths) + 1], {{["X-JEX-APIKEY"] = "benchkey"}})
    end
    function response(status, headers, body)
      n = n + 1
      if status ~= 200 then
        bad = bad + 1
      elseif kind == "trades" then
        local _, c = body:gsub('"id":', "")
        rows = rows + c
      elseif kind == "klines" then
        if #body > 2 then
          local _, c = body:gsub("%],%[", "")
          rows = rows + c + 1
        end
      end
      if n >= max_requests then
        wrk.thread:stop()
      end
    end
    function done(summary, latency, requests)
      local r, b = 0, 0
      for _, t in ipairs(threads) do
        r = r + t:get("rows")
        b = b + t:get("bad")
      end
      io.write(string.format("RESULT %d %d %d %.0f\\n", summary.requests, r, b, summary.duration))
    end
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cmd: list[str], core: str) -> list[str]:
    if sys.platform.startswith("linux") and shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", core, *cmd]
    return cmd


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
    raise SystemExit(f"{base} did not come up")


# ---- load generators: each returns (requests, rows, non-200, elapsed seconds) -------------------
def wrk_phase(base: str, paths: list[str], kind: str, args) -> tuple[int, int, int, float]:
    lua = (
        LUA.replace("{PATHS}", "{" + ",".join(json.dumps(p) for p in paths) + "}")
        .replace("{KIND}", kind)
        .replace("{MAX}", str(max(1, args.max_requests // args.threads)))
    )
    lua = lua.replace("{{", "{").replace("}}", "}")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua)
    try:
        cmd = pinned(
            [
                "wrk",
                f"-t{args.threads}",
                f"-c{args.connections}",
                f"-d{max(1, round(args.seconds))}s",
                "--timeout",
                "10s",
                "-s",
                f.name,
                base + paths[0],
            ],
            LOAD_CORE,
        )
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds + 30)
    finally:
        os.unlink(f.name)
    m = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+)", out.stdout)
    if not m:
        raise SystemExit(f"wrk failed: {out.stdout}\n{out.stderr}")
    n, rows, bad, us = (int(x) for x in m.groups())
    return n, rows, bad, us / 1e6


async def py_phase(base: str, paths: list[str], kind: str, args) -> tuple[int, int, int, float]:
    done = rows = bad = 0
    end = time.perf_counter() + args.seconds
    conn = aiohttp.TCPConnector(limit=args.connections)

    async def worker(session, w: int) -> None:
        nonlocal done, rows, bad
        i = w
        while time.perf_counter() < end and done < args.max_requests:
            async with session.get(base + paths[i % len(paths)], headers=KEY) as r:
                body = await r.json()
                if r.status != 200:
                    bad += 1
            done += 1
            rows += len(body) if kind != "small" and isinstance(body, list) else 0
            i += args.connections

    t0 = time.perf_counter()
    async with aiohttp.ClientSession(connector=conn) as s:
        await asyncio.gather(*(worker(s, w) for w in range(args.connections)))
    return done, rows, bad, time.perf_counter() - t0


async def phase(base: str, paths: list[str], kind: str, args) -> tuple[int, int, int, float]:
    if args.use_wrk:
        return await asyncio.to_thread(wrk_phase, base, paths, kind, args)
    return await py_phase(base, paths, kind, args)


# ---- the run ------------------------------------------------------------------------------------
async def simulator_phases(args) -> tuple[list[tuple[str, int, float, float | None, float]], float]:
    """(name, requests, requests/s, rows/s or None, hello requests/s measured just before) per phase."""
    port, hello_port = free_port(), free_port()
    base, hello_base = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{hello_port}"
    cmd = [
        sys.executable,
        "-m",
        "collector.simulator",
        "--port",
        str(port),
        "--weight-limit",
        "0",
        "--history-days",
        str(args.history_days),
        "--trades-per-minute",
        str(args.trades_per_minute),
    ]
    proc = subprocess.Popen(pinned(cmd, SERVER_CORE), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    hello = subprocess.Popen(
        pinned([sys.executable, "-c", HELLO, str(hello_port)], SERVER_CORE),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results: list[tuple[str, int, float, float | None, float]] = []

    async def baseline() -> float:  # the machine is shared: measure the yardstick next to each phase
        n, _, bad, dt = await phase(hello_base, ["/api/v1/ping"], "small", args)
        assert bad == 0, "hello server answered non-200"
        return n / dt

    try:
        await wait_up(base, time.monotonic() + 30)
        await wait_up(hello_base, time.monotonic() + 30)
        t_warm = time.monotonic()
        async with aiohttp.ClientSession() as s:  # let the server fold its history first
            while time.monotonic() < t_warm + 300:
                async with s.get(base + "/_sim/stats") as r:
                    if (await r.json())["warm"]:
                        break
                await asyncio.sleep(0.5)
            warm_s = time.monotonic() - t_warm
            async with s.get(base + "/api/v1/optionInfo") as r:
                info = await r.json()
            syms = [o["symbol"] for o in info if o["status"] == "TRADING"]
            old = []  # the oldest symbols that trade (some never do): the longest histories
            bounds = []
            for sym in syms:
                if len(old) == 8:
                    break
                async with s.get(
                    base + "/api/v1/option/historicalTrades",
                    params={"symbol": sym, "fromId": 0, "limit": 1},
                    headers=KEY,
                ) as r:
                    first = await r.json()
                if not first:
                    continue
                old.append(sym)
                first_id = int(first[0]["id"])
                async with s.get(
                    base + "/api/v1/option/historicalTrades", params={"symbol": sym, "limit": 500}, headers=KEY
                ) as r:
                    safe_last = int((await r.json())[-1]["id"])  # 500 trades before the newest
                bounds.append((sym, first_id, safe_last))
        small = [
            ("ping", ["/api/v1/ping"]),
            ("ticker/price, 1 symbol", [f"/api/v1/option/ticker/price?symbol={x}" for x in syms]),
            ("ticker/24hr, 1 symbol", [f"/api/v1/option/ticker/24hr?symbol={x}" for x in syms]),
            ("bookTicker, 1 symbol", [f"/api/v1/option/ticker/bookTicker?symbol={x}" for x in syms]),
        ]
        for name, paths in small:
            h = await baseline()
            n, _, bad, dt = await phase(base, paths, "small", args)
            assert bad == 0, f"{name}: {bad} non-200 answers"
            results.append((name, n, n / dt, None, h))
        # Full pages spread over the whole history (mostly cold minutes), 2000 distinct requests.
        hist = []
        for i in range(2000):
            sym, lo, hi = bounds[i % len(bounds)]
            hist.append(
                f"/api/v1/option/historicalTrades?symbol={sym}&fromId={lo + (i * 7919 * 500) % (hi - lo)}&limit=500"
            )
        kl = [
            f"/api/v1/option/klines?symbol={old[i % len(old)]}&interval={('1m', '3m', '5m')[i % 3]}&limit=1000"
            for i in range(24)
        ]
        for name, paths, kind in (
            ("historicalTrades limit=500", hist, "trades"),
            ("klines limit=1000 (1m/3m/5m)", kl, "klines"),
        ):
            h = await baseline()
            n, rows, bad, dt = await phase(base, paths, kind, args)
            assert bad == 0, f"{name}: {bad} non-200 answers"
            results.append((name, n, n / dt, rows / dt, h))
    finally:
        for p in (proc, hello):
            p.terminate()
            p.wait(timeout=10)
    return results, warm_s


async def run(args) -> str:
    results, warm_s = await simulator_phases(args)
    tool = (
        f"wrk ({args.threads} thread, {args.connections} connections) pinned to core {LOAD_CORE}"
        if args.use_wrk
        else f"aiohttp client in the benchmark process ({args.connections} concurrent)"
    )
    lines = [
        f"Servers pinned to core {SERVER_CORE}, load from {tool}, {args.seconds:g} s per phase, loopback, "
        f"limits lifted; history {args.history_days:g} d at {args.trades_per_minute:g} trades/min/symbol "
        f"(folded in {warm_s:.1f} s before measuring). Baseline: a bare aiohttp server answering `{{}}` "
        "(same core, same runner options), measured with the same load just before each phase.",
        "",
        "| request | requests | requests/s | bare aiohttp req/s (just before) | vs bare | rows/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, n, rps, rows, hello in results:
        lines.append(
            f"| {name} | {n} | {rps:,.0f} | {hello:,.0f} | {rps / hello:.2f} | "
            f"{'' if rows is None else f'{rows:,.0f}'} |"
        )
    lines += [
        "",
        "historicalTrades pages start at ids spread over all history (2000 distinct pages, mostly "
        "cold minutes); klines pages are the most recent 1000 rows of the 8 oldest symbols.",
        "Issue 3's goal: ≥ 2000 req/s for small answers, ≥ 100k rows/s for full pages.",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--max-requests", type=int, default=200_000)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--threads", type=int, default=1, help="wrk threads")
    p.add_argument("--history-days", type=float, default=7.0)
    p.add_argument("--trades-per-minute", type=float, default=7.0)
    p.add_argument("--python-client", action="store_true", help="use the aiohttp client even if wrk exists")
    p.add_argument("--write", action="store_true", help="record the figures in docs/benchmarks.md")
    args = p.parse_args()
    args.use_wrk = bool(shutil.which("wrk")) and not args.python_client
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    body = asyncio.run(run(args))
    print(body)
    if args.write:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from bench.report import write_section

        flags = " --python-client" if not args.use_wrk else ""
        write_section(
            "simulator",
            "Simulator throughput (issue 3)",
            body,
            f".venv/bin/python -m bench.bench_simulator --seconds {args.seconds:g}{flags} --write",
        )


if __name__ == "__main__":
    main()
