"""`collector backfill`: history for [start, end), exactly once, resumable, at the weight limit.

One task per (symbol, stream, interval), all running concurrently; the client's weight governor
decides who sends when, so the exchange's budget is the only brake. Each task fetches into a
bounded queue and a writer drains it in batches; every batch commits its rows and the task's
checkpoint (scope ``backfill <start>/<end>``) in one transaction. After a crash the same command
resumes from the checkpoints; a finished window is skipped without a request.

What is stored: klines whose open time lies in the window and which are closed (close time before
the exchange's clock when fetched); trades whose time lies in the window.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import Engine, insert, update

from collector.domain import INTERVALS, Kline, Trade
from collector.errors import ConfigError, ExchangeRejected
from collector.exchange.client import JexClient
from collector.exchange.ratelimit import Priority
from collector.store import checkpoints
from collector.store.db import transaction
from collector.store.models import RunRow
from collector.store.write import write_klines, write_symbols, write_trades
from collector.sync import ONE_MS, Cost, kline_pages, locate_first_trade, trade_pages

log = logging.getLogger(__name__)

BACKFILL_STREAMS = ("klines", "trades")
# Rejections that no task can get past (the key is bad for all of them): stop the whole run.
FATAL_CODES = frozenset({-1002, -1022, -2014, -2015})
QUEUE_BATCHES = 2  # batches fetched ahead of the writer, per task: bounds memory
# A window counts as finished only when it ended this long before the exchange's clock, so trades
# of its last moments (and the offset between our clock estimate and the exchange's) cannot be missed.
SETTLE = timedelta(seconds=2)


@dataclass(frozen=True)
class BackfillPlan:
    start: datetime
    end: datetime
    symbols: Sequence[str] = ()  # none: every option symbol the exchange lists
    streams: Sequence[str] = BACKFILL_STREAMS
    intervals: Sequence[str] = ("1m",)
    batch_rows: int = 5000

    @property
    def scope(self) -> str:
        return checkpoints.backfill_scope(self.start, self.end)


@dataclass
class Task:
    symbol: str
    stream: str
    interval: str  # '' for trades
    start: datetime
    end: datetime
    rows: int = 0  # stored by this run
    covered_until: datetime | None = None  # everything before this is stored
    cost: Cost = field(default_factory=Cost)
    done: bool = False
    complete: bool = False  # the whole window is stored (also across runs)
    skipped: bool = False  # complete before this run started
    error: str | None = None

    @property
    def name(self) -> str:
        return f"{self.symbol} {self.stream}{' ' + self.interval if self.interval else ''}"

    @property
    def fraction(self) -> float:
        if self.complete:
            return 1.0
        if self.covered_until is None:
            return 0.0
        span = (self.end - self.start).total_seconds()
        return min(1.0, max(0.0, (self.covered_until - self.start).total_seconds() / span))


class Reporter(Protocol):
    def started(self, tasks: Sequence[Task]) -> None: ...
    def updated(self, task: Task) -> None: ...
    def finished(self, task: Task) -> None: ...


class _Quiet:
    def started(self, tasks: Sequence[Task]) -> None: ...
    def updated(self, task: Task) -> None: ...
    def finished(self, task: Task) -> None: ...


@dataclass
class BackfillSummary:
    tasks: list[Task]
    wall_seconds: float
    requests: int
    weight: int
    retries: int
    rate_limited: int

    @property
    def rows(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tasks:
            out[t.stream] = out.get(t.stream, 0) + t.rows
        return out

    @property
    def failed(self) -> list[Task]:
        return [t for t in self.tasks if t.error]

    @property
    def incomplete(self) -> list[Task]:
        return [t for t in self.tasks if not t.complete and not t.error]


def plan_tasks(plan: BackfillPlan) -> list[Task]:
    tasks = []
    for symbol in plan.symbols:
        for stream in plan.streams:
            for interval in (plan.intervals if stream == "klines" else ("",)):
                tasks.append(Task(symbol, stream, interval, plan.start, plan.end))
    return tasks


def check_inputs(streams, intervals, *, has_api_key: bool) -> None:
    """What can be checked without the exchange: run before connecting, so bad input is one line."""
    unknown_streams = [s for s in streams if s not in BACKFILL_STREAMS]
    if unknown_streams:
        raise ConfigError(f"unknown stream {unknown_streams[0]!r}; backfill knows {', '.join(BACKFILL_STREAMS)}")
    if "trades" in streams and not has_api_key:
        raise ConfigError("trades need option/historicalTrades, which needs an API key: set COLLECTOR_API_KEY")
    bad_intervals = [i for i in intervals if i not in INTERVALS]
    if bad_intervals:
        raise ConfigError(f"unknown interval {bad_intervals[0]!r}; choose from {', '.join(INTERVALS)}")


async def validate(client: JexClient, plan: BackfillPlan) -> tuple[BackfillPlan, list, list]:
    """Check the plan against the exchange before anything is written.

    Returns the plan with its symbols resolved (none given: every option symbol the exchange lists,
    expired ones still listed included) and the exchange's two symbol lists, each fetched once.
    """
    if plan.start >= plan.end:
        raise ConfigError("--start must be before --end")
    check_inputs(plan.streams, plan.intervals, has_api_key=bool(client.api_key))
    listed = (await client.exchange_info(priority=Priority.BACKFILL)).option_symbols
    infos = await client.option_info(priority=Priority.BACKFILL)
    known = {s.symbol for s in listed} | {o.symbol for o in infos}
    if not plan.symbols:
        plan = replace(plan, symbols=sorted(known))
    unknown = [s for s in plan.symbols if s not in known]
    if unknown:
        raise ConfigError(f"unknown symbol {unknown[0]!r}: the exchange lists {len(known)} option symbols "
                          "(see `collector symbols`)")
    if "trades" in plan.streams and plan.symbols:
        # One cheap call proves the key before anything is written (weight 5).
        try:
            await client.historical_trades(plan.symbols[0], limit=1, priority=Priority.BACKFILL)
        except ExchangeRejected as exc:
            if exc.code in FATAL_CODES:
                raise ConfigError(f"the exchange refused the API key: {exc}") from exc
            raise
    return plan, list(infos), list(listed)


async def run_backfill(client: JexClient, engine: Engine, plan: BackfillPlan, *,
                       reporter: Reporter | None = None, concurrency: int = 64) -> BackfillSummary:
    """Fetch and store everything the plan asks for; see the module docstring."""
    reporter = reporter or _Quiet()
    plan, infos, listed = await validate(client, plan)
    started = time.monotonic()
    requests0, retries0 = client.requests_sent, client.retries
    tasks = plan_tasks(plan)
    run_id = await asyncio.to_thread(_begin, engine, plan, infos, listed, tasks)
    reporter.started(tasks)
    gate = asyncio.Semaphore(concurrency)

    async def one(task: Task) -> None:
        async with gate:
            if task.skipped:
                reporter.finished(task)
                return
            try:
                if task.stream == "klines":
                    await _run_klines(client, engine, plan, task, reporter)
                else:
                    await _run_trades(client, engine, plan, task, reporter)
            except ExchangeRejected as exc:
                task.error = f"{type(exc).__name__}: {exc}"
                if exc.code in FATAL_CODES:
                    raise ConfigError(f"the exchange refused the API key: {exc}") from exc
                log.error("backfill %s failed: %s", task.name, task.error)
            except Exception as exc:  # noqa: BLE001 - one task's failure must not stop the others
                task.error = f"{type(exc).__name__}: {exc}"
                log.error("backfill %s failed: %s", task.name, task.error)
            finally:
                task.done = True
                reporter.finished(task)

    status = "failed"
    try:
        async with asyncio.TaskGroup() as group:  # a fatal error cancels every other task
            for t in tasks:
                group.create_task(one(t))
        status = "failed" if any(t.error for t in tasks) else "ok"
    except ExceptionGroup as group:
        fatal = group.subgroup(ConfigError)
        if fatal is not None:
            raise fatal.exceptions[0] from None
        raise
    except asyncio.CancelledError:
        status = "interrupted"
        raise
    finally:
        summary = BackfillSummary(
            tasks=tasks,
            wall_seconds=time.monotonic() - started,
            requests=client.requests_sent - requests0,
            weight=sum(t.cost.weight for t in tasks),
            retries=client.retries - retries0,
            rate_limited=_rate_limited_count(),
        )
        await asyncio.shield(asyncio.to_thread(_finish, engine, run_id, status, summary))
    return summary


def _rate_limited_count() -> int:
    from collector import metrics

    return int(sum(s.value for m in metrics.EXCHANGE_RATE_LIMITED.collect() for s in m.samples
                   if s.name.endswith("_total")))


def _begin(engine: Engine, plan: BackfillPlan, infos: list, listed: list, tasks: list[Task]) -> int:
    import os
    import socket

    with transaction(engine) as conn:
        write_symbols(conn, infos, listed, now=datetime.now(UTC), mark_delisted=False)
        done = checkpoints.load_scope(conn, plan.scope)
        for task in tasks:
            cp = done.get((task.symbol, task.stream, task.interval))
            if cp is not None:
                task.covered_until = cp.last_time
                task.complete = task.skipped = cp.complete
        args = {"start": plan.start.isoformat(), "end": plan.end.isoformat(), "symbols": list(plan.symbols),
                "streams": list(plan.streams), "intervals": list(plan.intervals)}
        return conn.execute(insert(RunRow.__table__).values(
            kind="backfill", host=socket.gethostname(), pid=os.getpid(), args=args,
        ).returning(RunRow.__table__.c.id)).scalar_one()


def _finish(engine: Engine, run_id: int, status: str, summary: BackfillSummary) -> None:
    counts = {"rows": summary.rows, "requests": summary.requests, "weight": summary.weight,
              "retries": summary.retries, "wall_seconds": round(summary.wall_seconds, 3),
              "failed_tasks": len(summary.failed), "incomplete_tasks": len(summary.incomplete)}
    error = "; ".join(f"{t.name}: {t.error}" for t in summary.failed)[:2000] or None
    with transaction(engine) as conn:
        conn.execute(update(RunRow.__table__).where(RunRow.__table__.c.id == run_id).values(
            status=status, finished_at=datetime.now(UTC), counts=counts, error=error))


# --- klines -------------------------------------------------------------------------------------


async def _run_klines(client: JexClient, engine: Engine, plan: BackfillPlan, task: Task,
                      reporter: Reporter) -> None:
    # Resume after the last stored closed kline; a finished window was skipped before we got here.
    start = task.start if task.covered_until is None else task.covered_until
    server_now = _server_now(client)
    met_open = False  # an unfinished kline inside the window: the window cannot be complete yet

    async def batches() -> AsyncIterator[tuple[list[Kline], bool]]:
        nonlocal met_open
        batch: list[Kline] = []
        async for page in kline_pages(client, task.symbol, task.interval, start, task.end, cost=task.cost):
            closed = [k for k in page if k.close_time < server_now]
            batch.extend(closed)
            if len(closed) < len(page):  # reached the open kline: nothing after it is final
                met_open = True
                break
            if len(batch) >= plan.batch_rows:
                yield batch, False
                batch = []
        yield batch, True

    def store(rows: list[Kline], last: bool) -> None:
        _store_klines(engine, plan, task, rows, last and not met_open and task.end <= server_now)

    await _drain(batches(), store, task, reporter)


def _store_klines(engine: Engine, plan: BackfillPlan, task: Task, rows: list[Kline], complete: bool) -> None:
    """Rows and checkpoint in one transaction. Complete: every kline of the window is stored and
    closed (klines after a symbol's expiry simply do not exist)."""
    covered = rows[-1].close_time + ONE_MS if rows else task.covered_until
    with transaction(engine) as conn:
        if rows:
            write_klines(conn, rows)
        checkpoints.save(conn, plan.scope, task.symbol, "klines", task.interval,
                         last_time=covered, complete=complete, added_rows=len(rows))
    task.rows += len(rows)
    task.covered_until = task.end if complete else covered
    task.complete = complete


# --- trades -------------------------------------------------------------------------------------


async def _run_trades(client: JexClient, engine: Engine, plan: BackfillPlan, task: Task,
                      reporter: Reporter) -> None:
    scope_cp = await asyncio.to_thread(_load_cp, engine, plan.scope, task.symbol, "trades")
    server_now = _server_now(client)

    async def batches() -> AsyncIterator[tuple[list[Trade], bool]]:
        if scope_cp is not None and scope_cp.last_trade_id is not None:
            pages = trade_pages(client, task.symbol, scope_cp.last_trade_id + 1, cost=task.cost)
        else:
            located = await locate_first_trade(client, task.symbol, task.start, cost=task.cost)
            if located.first_id is None:
                yield [], True  # no trade in or after the window
                return
            pages = trade_pages(client, task.symbol, located.first_id, cost=task.cost,
                                first_page=located.page)
        batch: list[Trade] = []
        async for page in pages:
            inside = [t for t in page if task.start <= t.time < task.end]
            batch.extend(inside)
            if page[-1].time >= task.end:  # past the window: done
                yield batch, True
                return
            if len(batch) >= plan.batch_rows:
                yield batch, False
                batch = []
        yield batch, True  # the exchange has nothing newer

    await _drain(batches(), lambda rows, last: _store_trades(engine, plan, task, rows, last, server_now),
                 task, reporter)


def _load_cp(engine: Engine, scope: str, symbol: str, stream: str, interval: str = ""):
    with engine.connect() as conn:
        return checkpoints.load(conn, scope, symbol, stream, interval)


def _store_trades(engine: Engine, plan: BackfillPlan, task: Task, rows: list[Trade], last: bool,
                  server_now: datetime) -> None:
    # The window is complete once we saw a trade at or after its end, or the exchange had nothing
    # newer and the window ended before the exchange's clock when we started.
    past_end = last and (task.end <= server_now)
    with transaction(engine) as conn:
        if rows:
            write_trades(conn, rows)
        checkpoints.save(conn, plan.scope, task.symbol, "trades",
                         last_trade_id=rows[-1].trade_id if rows else None,
                         last_time=rows[-1].time if rows else None,
                         complete=past_end, added_rows=len(rows))
    task.rows += len(rows)
    if rows:
        task.covered_until = rows[-1].time
    if past_end:
        task.complete = True
        task.covered_until = task.end


# --- plumbing -----------------------------------------------------------------------------------


async def _drain(batches: AsyncIterator[tuple[list, bool]], store, task: Task, reporter: Reporter) -> None:
    """Fetch ahead into a bounded queue while the previous batch is written."""
    queue: asyncio.Queue = asyncio.Queue(maxsize=QUEUE_BATCHES)

    async def produce() -> None:
        async for item in batches:
            await queue.put(item)
            reporter.updated(task)
        await queue.put(None)

    producer = asyncio.create_task(produce())
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, producer}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                producer.result()  # raises the fetch error
                continue
            item = getter.result()
            if item is None:
                break
            rows, last = item
            await asyncio.to_thread(store, rows, last)
            reporter.updated(task)
            if last:
                break
    finally:
        if not producer.done():
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)


def _server_now(client: JexClient) -> datetime:
    """The exchange's clock less SETTLE: what is before it is final."""
    return datetime.fromtimestamp(client.governor.server_time(), UTC) - SETTLE
