"""`collector backfill --dry-run`: what a backfill would fetch, without storing anything.

The tasks are the holes of the coverage (as a real run would make them); their cost is estimated:
klines exactly from the range (one kline per interval, ``ep.MAX_KLINES`` per page, one more page as
evidence of the end), trades from the symbol's last-24-hour trade count scaled to the hole, plus the
search for the first trade and one page of evidence. The time is the weight over the exchange's
announced per-minute limit less the margin: the weight limit is the only brake a backfill has.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from collector.backfill.plan import BackfillPlan, Task
from collector.domain import INTERVALS, Trade
from collector.errors import CollectorError
from collector.exchange import endpoints as ep
from collector.exchange.client import JexClient
from collector.exchange.ratelimit import Priority
from collector.store.db import reading

LOCATE_REQUESTS = 6  # a typical search for a window's first trade (a bisection guided by time)


@dataclass
class Estimate:
    task: Task
    rows: int  # klines: exact; trades: from the newest page (see the module docstring)
    requests: int
    weight: int


@dataclass
class DryRun:
    plan: BackfillPlan
    tasks: list[Task]  # the holes; wholly covered windows are marked skipped
    estimates: list[Estimate]
    unstored: list[tuple[str, str, str]]  # no --start and nothing stored: no task
    effective_limit: int | None  # weight per window, less the margin
    window_seconds: float | None

    @property
    def weight(self) -> int:
        return sum(e.weight for e in self.estimates)

    @property
    def requests(self) -> int:
        return sum(e.requests for e in self.estimates)

    @property
    def seconds(self) -> float | None:
        """The time the weight limit implies for the estimated weight."""
        if not self.effective_limit or not self.window_seconds:
            return None
        return self.weight / self.effective_limit * self.window_seconds


async def dry_run(client: JexClient, engine: Engine, plan: BackfillPlan) -> DryRun:
    """The plan's holes and their estimated cost (reads the store; writes nothing)."""
    from collector.backfill.run import plan_holes

    def holes() -> tuple[list[Task], list[tuple[str, str, str]]]:
        with reading(engine) as conn:
            return plan_holes(conn, plan)

    tasks, unstored = await asyncio.to_thread(holes)
    todo = [t for t in tasks if not t.skipped]
    recent = await _recent_trades(client, sorted({t.symbol for t in todo if t.stream == "trades"}))
    estimates = [_estimate(t, recent) for t in todo]
    stats = client.governor.stats()
    return DryRun(plan, tasks, estimates, unstored, stats.effective_limit, stats.weight_window_seconds)


def _trades_in(task: Task, recent: list[Trade]) -> int:
    """Trades in the task's range: counted when the newest page reaches back past its start, else
    the page's rate over the range."""
    if not recent:
        return 0
    if len(recent) < ep.MAX_HISTORICAL_TRADES or recent[0].time <= task.start:
        return sum(1 for t in recent if task.start <= t.time < task.end)
    span = max((recent[-1].time - recent[0].time).total_seconds(), 1.0)
    return round(len(recent) / span * (task.end - task.start).total_seconds())


def _estimate(task: Task, recent: dict[str, list[Trade]]) -> Estimate:
    seconds = (task.end - task.start).total_seconds()
    if task.stream == "klines":
        rows = math.ceil(seconds / INTERVALS[task.interval].total_seconds())
        requests = rows // ep.MAX_KLINES + 1
        return Estimate(task, rows, requests, requests * ep.KLINES.weight)
    if task.stream == "trades":
        rows = _trades_in(task, recent.get(task.symbol, []))
        requests = (0 if task.covered_until else LOCATE_REQUESTS) + rows // ep.MAX_HISTORICAL_TRADES + 1
        return Estimate(task, rows, requests, requests * ep.HISTORICAL_TRADES.weight)
    endpoint = ep.HISTORY_ORDERS if task.stream == "orders" else ep.RECORD
    return Estimate(task, 0, 1, endpoint.weight)  # the account's: at least one page each


async def _recent_trades(client: JexClient, symbols: Sequence[str]) -> dict[str, list[Trade]]:
    """Each symbol's newest page of trades (weight 5 each): its recent rate, and every trade of a
    window the page reaches back over."""

    async def one(symbol: str) -> list[Trade]:
        try:
            return await client.historical_trades(symbol, priority=Priority.BACKFILL)
        except CollectorError:
            return []  # the estimate then counts the search and the evidence only

    pages = await asyncio.gather(*(one(s) for s in symbols))
    return dict(zip(symbols, pages, strict=True))
