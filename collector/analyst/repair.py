"""`collector verify --repair`: re-fetch what `collector.analyst.verify` found missing or inconsistent.

Each kline gap, trade hole and mismatch becomes its own backfill window (klines, or klines 1m and
trades) over exactly its time range. Crossed books are evidence and are left as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from sqlalchemy import Engine

from collector.analyst.claims import Problem
from collector.domain import INTERVALS


def repair_plans(problems: Iterable[Problem]):
    """One backfill plan per repairable range: exactly its time range, exactly its streams."""
    from collector.backfill.plan import BackfillPlan

    wanted: dict[tuple[str, datetime, datetime], tuple[set[str], set[str]]] = {}
    for p in problems:
        if not p.repairable:
            continue
        streams, intervals = wanted.setdefault((p.symbol, p.start, p.end), (set(), set()))
        streams.add("klines")
        if p.kind == "kline_gap":
            intervals.add(p.interval)
        else:  # trades and their 1m klines disagree or are missing: fetch both again
            streams.add("trades")
            intervals.add("1m")
    return [
        BackfillPlan(
            start,
            end,
            [symbol],
            streams=tuple(sorted(streams)),
            intervals=tuple(sorted(intervals, key=INTERVALS.__getitem__)),
        )
        for (symbol, start, end), (streams, intervals) in sorted(wanted.items())
    ]


async def repair(client, engine: Engine, problems: Iterable[Problem], *, concurrency: int = 8) -> list:
    """Re-fetch every repairable problem's range through the backfill; returns its summaries."""
    import asyncio

    from collector.backfill.run import run_backfill

    plans = repair_plans(problems)
    gate = asyncio.Semaphore(concurrency)

    async def one(plan):
        # A window stored before is covered: refetch forgets that, or the backfill would skip it.
        async with gate:
            return await run_backfill(client, engine, replace(plan, refetch=True))

    return list(await asyncio.gather(*(one(p) for p in plans)))
