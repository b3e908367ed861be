"""`collector backfill`: history for [start, end), exactly once, resumable, at the weight limit.

Only what is not stored yet is fetched: each (symbol, stream, interval) of the window is compared
with the coverage (`collector.store.coverage`), and one task is made per hole, all running
concurrently; the client's weight governor decides who sends when, so the exchange's budget is the
only brake. Each task commits its rows, its checkpoint (scope ``backfill <start>/<end>`` of the
hole) and the coverage they prove together, batch by batch. After a crash the same command fetches
what is still missing (a hole begun before resumes from its checkpoint); a window wholly covered
is skipped without a request.

This module runs the tasks of a plan (`collector.backfill.plan`) and records the run in
``collector_runs``. What one task fetches and stores is in `collector.backfill.tasks`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine

from collector.backfill.plan import (
    FATAL_CODES,
    BackfillPlan,
    Reporter,
    Task,
    plan_keys,
    plan_tasks,
    validate,
)
from collector.backfill.tasks import run_account, run_klines, run_trades
from collector.domain import Ticker24h
from collector.errors import (
    CollectorError,
    ConfigError,
    ExchangeRejected,
    SymbolRefused,
)
from collector.exchange.client import JexClient
from collector.exchange.ratelimit import Priority
from collector.exchange.session import STARTUP_RETRIES
from collector.store import checkpoints, coverage, runs
from collector.store.db import reading, transaction
from collector.store.write import (
    refuse_symbol,
    set_strike_prices,
    symbols_without_strike,
    write_symbols,
    write_tickers,
)

log = logging.getLogger(__name__)


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
    refused: dict[str, str] = field(default_factory=dict)  # symbol -> why the exchange refused it
    named_refused: list[str] = field(default_factory=list)  # of those, the ones the user named
    warnings: list[str] = field(default_factory=list)  # one line each: windows that found nothing, and why

    @property
    def rows(self) -> dict[str, int]:
        """Rows fetched and stored, per stream."""
        out: dict[str, int] = {}
        for t in self.tasks:
            out[t.stream] = out.get(t.stream, 0) + t.rows
        return out

    @property
    def written(self) -> dict[str, int]:
        """Of the rows fetched, those new or changed, per stream (the rest were already stored)."""
        out: dict[str, int] = {}
        for t in self.tasks:
            out[t.stream] = out.get(t.stream, 0) + t.written
        return out

    @property
    def failed(self) -> list[Task]:
        return [t for t in self.tasks if t.error]

    @property
    def incomplete(self) -> list[Task]:
        return [t for t in self.tasks if not t.complete and not t.error and not t.refused]


async def fetch_terms(client: JexClient, engine: Engine, plan: BackfillPlan, refused: dict[str, str]) -> None:
    """A strike for every symbol the backfill stores data for: it is only in the 24hr ticker, so one
    ticker (weight 1) is fetched per symbol that has none yet, and stored beside the strike."""
    missing = await asyncio.to_thread(_without_strike, engine, [s for s in plan.symbols if s not in refused])
    if not missing:
        return

    async def one(symbol: str) -> list[Ticker24h]:
        try:
            return list(await client.ticker_24hr(symbol, priority=Priority.BACKFILL))
        except SymbolRefused as exc:
            refused[symbol] = exc.reason
        except CollectorError as exc:  # the strike is a nicety: its absence fails no task
            log.warning("no strike for %s: %s", symbol, exc)
        return []

    tickers = [t for got in await asyncio.gather(*(one(s) for s in missing)) for t in got]
    if tickers:
        await asyncio.to_thread(_store_terms, engine, tickers)


def _without_strike(engine: Engine, symbols: list[str]) -> list[str]:
    with reading(engine) as conn:
        return symbols_without_strike(conn, symbols)


def _store_terms(engine: Engine, tickers: list[Ticker24h]) -> None:
    with transaction(engine) as conn:
        write_tickers(conn, tickers)
        set_strike_prices(conn, tickers)


def _store_refusals(engine: Engine, refused: dict[str, str]) -> None:
    with transaction(engine) as conn:
        now = datetime.now(UTC)
        for symbol, reason in refused.items():
            refuse_symbol(conn, symbol, reason, at=now)


async def run_backfill(
    client: JexClient,
    engine: Engine,
    plan: BackfillPlan,
    *,
    reporter: Reporter | None = None,
    concurrency: int = 64,
    started: float | None = None,
) -> BackfillSummary:
    """Fetch and store everything the plan asks for that is not stored yet; see the module
    docstring. ``started``: the ``time.monotonic()`` the wall time is measured from (default: now,
    after validating)."""
    reporter = reporter or _Quiet()
    refused: dict[str, str] = {}  # symbol -> why the exchange refused it: no task asks for it again
    # Validating is part of starting: a blip is retried like connecting.
    with client.retrying(max(client.max_retries, STARTUP_RETRIES)):
        plan, infos, listed = await validate(client, plan, refused)
    started = time.monotonic() if started is None else started
    requests0, retries0 = client.requests_sent, client.retries
    run_id, tasks, unstored = await asyncio.to_thread(_begin, engine, plan, infos, listed)
    await fetch_terms(client, engine, plan, refused)
    reporter.started(tasks)
    gate = asyncio.Semaphore(concurrency)

    async def one(task: Task) -> None:
        async with gate:
            if task.skipped:
                reporter.finished(task)
                return
            if task.symbol in refused:
                task.refused = refused[task.symbol]
                task.done = True
                reporter.finished(task)
                return
            try:
                if task.stream == "klines":
                    await run_klines(client, engine, plan, task, reporter)
                elif task.stream == "trades":
                    await run_trades(client, engine, plan, task, reporter)
                else:
                    await run_account(client, engine, plan, task, reporter)
            except SymbolRefused as exc:
                if exc.symbol not in refused:
                    log.warning("%s refused by the exchange: %s; its other tasks are skipped", exc.symbol, exc.reason)
                refused.setdefault(exc.symbol, exc.reason)
                task.refused = refused[exc.symbol]
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
            refused=dict(refused),
            named_refused=[] if plan.from_listing else sorted(s for s in refused if s in set(plan.symbols)),
            warnings=[
                f"{symbol} {stream}{' ' + interval if interval else ''}: nothing stored yet to continue from; "
                "give --start, --since or --days to say where to begin"
                for symbol, stream, interval in unstored
            ]
            + _empty_windows(tasks, infos, named=not plan.from_listing),
        )
        if refused:
            await asyncio.shield(asyncio.to_thread(_store_refusals, engine, refused))
        await asyncio.shield(asyncio.to_thread(_finish, engine, run_id, status, summary))
    return summary


def _empty_windows(tasks: list[Task], infos: list, *, named: bool) -> list[str]:
    """A line for every symbol whose fetched windows all completed with nothing in them: a window
    outside its listing (after its expiry, before its first trade) or the exchange's history. Of
    the exchange's listing (no symbols ``named``), those expired before the window are one line."""
    expiry = {o.symbol: o.expiry_time for o in infos}
    fetched: dict[str, list[Task]] = {}
    for t in tasks:
        if not t.skipped and not t.refused and t.stream in ("klines", "trades"):
            fetched.setdefault(t.symbol, []).append(t)
    out: list[str] = []
    expired_before: list[str] = []
    for symbol, mine in sorted(fetched.items()):
        if not all(t.complete and t.rows == 0 for t in mine):
            continue
        start, end = min(t.start for t in mine), max(t.end for t in mine)
        window = f"{start:%Y-%m-%d %H:%M}-{end:%Y-%m-%d %H:%M} UTC"
        expired = expiry.get(symbol)
        if expired is not None and expired <= start:
            if not named:
                expired_before.append(symbol)
                continue
            why = f"it expired at {expired:%Y-%m-%d %H:%M} UTC, before the window"
        else:
            why = "it was quiet, or the window lies before its listing or outside the exchange's history"
        out.append(f"{symbol}: the exchange has no klines or trades in {window}: {why}")
    if expired_before:
        out.append(
            f"{len(expired_before)} listed symbols expired before the window, so it holds nothing of theirs: "
            + ", ".join(expired_before)
        )
    return out


def _rate_limited_count() -> int:
    from collector import metrics

    return int(
        sum(s.value for m in metrics.EXCHANGE_RATE_LIMITED.collect() for s in m.samples if s.name.endswith("_total"))
    )


def plan_holes(conn: Connection, plan: BackfillPlan) -> tuple[list[Task], list[tuple[str, str, str]]]:
    """The plan's tasks: one per hole of the coverage within each (symbol, stream, interval)'s
    window, resuming from the hole's checkpoint when a run began it; a window wholly covered gives
    one task marked complete and skipped. With no plan start, each key's window starts where its
    coverage ends; the keys with nothing covered are returned beside the tasks. Reads only."""
    keys = plan_keys(plan)
    starts = coverage.covered_until(conn, keys) if plan.start is None else None
    unstored = [k for k in keys if starts is not None and k not in starts]
    windows = plan_tasks(plan, starts)
    if plan.refetch:
        found = {(t.symbol, t.stream, t.interval): [(t.start, t.end)] for t in windows}
    else:
        found = coverage.holes(conn, [((t.symbol, t.stream, t.interval), t.start, t.end) for t in windows])
    # A run that stopped half-way left its window's checkpoint where the hole now begins: a hole
    # with the same end continues that window from there (no new search, its counters go on).
    begun: dict[tuple[str, str, str, datetime], list[tuple[datetime, datetime]]] = {}
    if not plan.refetch:
        for cp in checkpoints.unfinished_backfills(conn, list(found)):
            window = checkpoints.backfill_window(cp.scope)
            if window is not None and cp.last_time is not None:
                begun.setdefault((cp.symbol, cp.stream, cp.interval, window[1]), []).append((window[0], cp.last_time))
    tasks: list[Task] = []
    for w in windows:
        holes = found[(w.symbol, w.stream, w.interval)]
        if not holes:
            tasks.append(replace(w, complete=True, skipped=True))
            continue
        for start, end in holes:
            start, end = start.astimezone(UTC), end.astimezone(UTC)
            task = replace(w, start=start, end=end)
            for first, reached in begun.get((w.symbol, w.stream, w.interval, end), []):
                if first <= start <= reached:
                    task = replace(w, start=first, end=end, covered_until=reached)
                    break
            tasks.append(task)
    return tasks, unstored


def _begin(
    engine: Engine, plan: BackfillPlan, infos: list, listed: list
) -> tuple[int, list[Task], list[tuple[str, str, str]]]:
    with transaction(engine) as conn:
        write_symbols(conn, infos, listed, now=datetime.now(UTC), mark_delisted=False)
        tasks, unstored = plan_holes(conn, plan)
        if plan.refetch and plan.start is not None:  # what was believed stored is doubted until fetched again
            for scope in {t.scope for t in tasks}:
                checkpoints.forget(conn, scope, plan.symbols)
            coverage.forget(conn, plan.symbols, plan.streams, plan.start, plan.end)
        args = {
            "start": plan.start.isoformat() if plan.start else "from stored data",
            "end": plan.end.isoformat(),
            "symbols": list(plan.symbols),
            "streams": list(plan.streams),
            "intervals": list(plan.intervals),
            "refetch": plan.refetch,
        }
        return runs.begin(conn, "backfill", args), tasks, unstored


def _finish(engine: Engine, run_id: int, status: str, summary: BackfillSummary) -> None:
    counts = {
        "rows": summary.rows,
        "written": summary.written,
        "requests": summary.requests,
        "weight": summary.weight,
        "retries": summary.retries,
        "wall_seconds": round(summary.wall_seconds, 3),
        "failed_tasks": len(summary.failed),
        "incomplete_tasks": len(summary.incomplete),
        "refused": summary.refused,
    }
    error = "; ".join(f"{t.name}: {t.error}" for t in summary.failed)[:2000] or None
    with transaction(engine) as conn:
        runs.finish(conn, run_id, status, counts, error)
