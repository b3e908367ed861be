"""Where the collector's own CPU goes in a trades backfill, and its CPU cost per trade.

    python -m bench.profile_ingest [--database-url URL] [--minutes 60] [--repeat 3]
        [--tree DIR ...] [--profile FILE.prof]

One simulator process (limits lifted, as in bench_backfill's phase 2) and one database serve every
run. Each run is a fresh child process doing ``run_backfill`` (trades only, same window, table
emptied first) and reporting its own CPU time (``time.process_time``: every thread of the child,
the simulator and PostgreSQL excluded) and the part of it spent in the cyclic garbage collector.
``--tree`` names source trees to compare, e.g. ``git archive`` snapshots of the commit before a
change and of the change (snapshots: the shared checkout may be mid-edit): runs alternate tree by
tree for ``--repeat`` rounds, then the medians of trades per CPU-second are printed with their
ratio to the first tree. On a busy machine compare those ratios, not absolute figures.

``--profile`` runs one child under cProfile instead, timed by CPU time (waits on the network or
the database are not ours), with ``asyncio.to_thread`` run inline so the writer's work (normally in
worker threads, which cProfile does not see) is in the same profile. Profiling inflates code that
makes many small calls; use the shares to rank, the unprofiled runs to measure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "benchkey123456"


async def _backfill(sim_url: str, db_url: str, start: datetime, end: datetime, symbols: list[str]) -> dict:
    from sqlalchemy import text

    from collector.backfill.plan import BackfillPlan
    from collector.backfill.run import run_backfill
    from collector.config import load_settings
    from collector.exchange.session import connect_exchange
    from collector.store.db import make_engine

    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE trades, klines, checkpoints, collector_runs"))
    settings = load_settings(None, {"exchange_url": sim_url, "api_key": API_KEY}, defaults_file=None)
    async with connect_exchange(settings) as client:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        summary = await run_backfill(client, engine, BackfillPlan(start, end, symbols, streams=("trades",)))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM trades")).scalar_one()
    engine.dispose()
    return dict(trades=summary.rows.get("trades", 0), stored=stored, failed=len(summary.failed), wall=wall, cpu=cpu)


def _gc_clock() -> dict:
    """CPU seconds spent in the cyclic garbage collector, and its full collections, from now on."""
    import gc

    spent = {"gc_cpu": 0.0, "gc_full": 0}
    began = [0.0]

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            began[0] = time.process_time()
        else:
            spent["gc_cpu"] += time.process_time() - began[0]
            spent["gc_full"] += info["generation"] == 2

    gc.callbacks.append(callback)
    return spent


def child(args: argparse.Namespace) -> None:
    start, end = datetime.fromisoformat(args.start), datetime.fromisoformat(args.end)
    symbols = args.symbols.split(",")
    if not args.profile:
        spent = _gc_clock()
        result = asyncio.run(_backfill(args.sim_url, args.db_url, start, end, symbols))
        print(json.dumps({**result, **spent}))
        return
    import cProfile
    import pstats

    async def inline(func, /, *a, **kw):  # the writer's work in this thread, where cProfile sees it
        return func(*a, **kw)

    asyncio.to_thread = inline
    prof = cProfile.Profile(time.process_time)  # CPU time: waits on the database or the network are not ours
    prof.enable()
    result = asyncio.run(_backfill(args.sim_url, args.db_url, start, end, symbols))
    prof.disable()
    prof.dump_stats(args.profile)
    total = pstats.Stats(prof).total_tt
    print(json.dumps(result), file=sys.stderr)
    stats = pstats.Stats(prof, stream=sys.stdout)
    print(f"total profiled CPU {total:.2f} s for {result['trades']:,} trades")
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)


def run_child(
    tree: Path,
    sim_url: str,
    db_url: str,
    start: datetime,
    end: datetime,
    symbols: list[str],
    profile: str | None = None,
    top: int = 40,
) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "bench.profile_ingest",
        "--child",
        "--sim-url",
        sim_url,
        "--db-url",
        db_url,
        "--start",
        start.isoformat(),
        "--end",
        end.isoformat(),
        "--symbols",
        ",".join(symbols),
    ]
    if profile:
        cmd += ["--profile", profile, "--top", str(top)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    env["PYTHONPATH"] = str(tree)
    out = subprocess.run(
        cmd, cwd=tree, env=env, check=True, text=True, stdout=None if profile else subprocess.PIPE
    )  # stderr: shown as it comes
    return json.loads(out.stdout.strip().splitlines()[-1]) if not profile else {}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--minutes", type=int, default=60, help="backfill window")
    ap.add_argument("--trades-per-minute", type=float, default=1600, help="per symbol")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tree", action="append", type=Path, help="source tree(s) to compare; default: this one")
    ap.add_argument("--profile", default=None, help="write a cProfile of one run here (first tree)")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--write", action="store_true", help="write the comparison into docs/benchmarks.md")
    # child mode (internal)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--sim-url", help=argparse.SUPPRESS)
    ap.add_argument("--db-url", help=argparse.SUPPRESS)
    ap.add_argument("--start", help=argparse.SUPPRESS)
    ap.add_argument("--end", help=argparse.SUPPRESS)
    ap.add_argument("--symbols", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    from bench.bench_backfill import fresh_db, start_sim, window
    from bench.report import database

    trees = [t.resolve() for t in (args.tree or [ROOT])]
    with database(args.database_url) as db_url:
        fresh_db(db_url).dispose()
        sim, url = start_sim(
            weight_limit=0,
            raw_limit=0,
            symbols=6,
            history_days=0.25,
            trades_per_minute=args.trades_per_minute,
            listing_interval_s=1800,
            grace_s=6 * 3600,
        )
        try:
            start, end, symbols = window(url, args.minutes)
            if args.profile:
                run_child(trees[0], url, db_url, start, end, symbols, args.profile, args.top)
                return
            rates: dict[Path, list[float]] = {t: [] for t in trees}
            walls: dict[Path, list[float]] = {t: [] for t in trees}
            for r in range(args.repeat):
                for tree in trees:
                    res = run_child(tree, url, db_url, start, end, symbols)
                    if res["failed"] or res["stored"] != res["trades"]:
                        raise RuntimeError(f"bad run: {res}")
                    rates[tree].append(res["trades"] / res["cpu"])
                    walls[tree].append(res["trades"] / res["wall"])
                    print(
                        f"round {r + 1} {tree}: {res['trades']:,} trades, cpu {res['cpu']:.2f} s "
                        f"({res['trades'] / res['cpu']:,.0f}/cpu-s; gc {res['gc_cpu']:.2f} s, "
                        f"{res['gc_full']} full), wall {res['wall']:.2f} s "
                        f"({res['trades'] / res['wall']:,.0f}/s)",
                        flush=True,
                    )
        finally:
            sim.terminate()
            sim.wait()
    base = statistics.median(rates[trees[0]])
    rows = []
    for tree in trees:
        med = statistics.median(rates[tree])
        print(
            f"{tree}: median {med:,.0f} trades per CPU-second of ours "
            f"(wall median {statistics.median(walls[tree]):,.0f}/s), x{med / base:.2f} vs {trees[0].name}"
        )
        rows.append(f"| `{tree.name}` | {med:,.0f} | x{med / base:.2f} | {statistics.median(walls[tree]):,.0f} |")
    if args.write:
        from bench.report import write_section

        body = f"""
A trades backfill of one {args.minutes}-minute window (6 symbols, {args.trades_per_minute:g} trades/min each,
limits lifted) in a fresh child process per run; CPU time of that process only (simulator and
PostgreSQL excluded), medians of {args.repeat} rounds, trees run alternately in the same session.
Trees are snapshots (`git archive REV | tar -x -C /tmp/NAME`); a tree older than this script needs
`bench/profile_ingest.py` copied in. CPU time per trade is what is compared: wall time also moves
with the simulator and PostgreSQL sharing the two cores.

| source tree | trades per CPU-second of ours | vs first | wall trades/s |
|---|---|---|---|
{chr(10).join(rows)}
"""
        command = (
            "python -m bench.profile_ingest "
            + " ".join(f"--tree {t}" for t in (args.tree or []))
            + f" --minutes {args.minutes} --repeat {args.repeat} --write"
        )
        write_section("ingest", "Backfill ingest: our CPU per trade", body, command)


if __name__ == "__main__":
    main()
