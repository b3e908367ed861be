"""`collector backfill`: history for [start, end), exactly once, resumable, at the weight limit.

One task per (symbol, stream, interval), all running concurrently; the client's weight governor
decides who sends when, so the exchange's budget is the only brake. Each task commits its rows and
its checkpoint (scope ``backfill <start>/<end>``) together, batch by batch. After a crash the same
command resumes from the checkpoints; a finished window is skipped without a request.

This module runs the tasks of a plan (`collector.backfill.plan`) and records the run in
``collector_runs``. What one task fetches and stores is in `collector.backfill.tasks`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine

from collector.backfill.plan import (
    FATAL_CODES,
    BackfillPlan,
    Reporter,
    Task,
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
from collector.store import checkpoints, runs
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
    client: JexClient, engine: Engine, plan: BackfillPlan, *, reporter: Reporter | None = None, concurrency: int = 64
) -> BackfillSummary:
    """Fetch and store everything the plan asks for; see the module docstring."""
    reporter = reporter or _Quiet()
    refused: dict[str, str] = {}  # symbol -> why the exchange refused it: no task asks for it again
    # Validating is part of starting: a blip is retried like connecting.
    with client.retrying(max(client.max_retries, STARTUP_RETRIES)):
        plan, infos, listed = await validate(client, plan, refused)
    started = time.monotonic()
    requests0, retries0 = client.requests_sent, client.retries
    tasks = plan_tasks(plan)
    run_id = await asyncio.to_thread(_begin, engine, plan, infos, listed, tasks)
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
        )
        if refused:
            await asyncio.shield(asyncio.to_thread(_store_refusals, engine, refused))
        await asyncio.shield(asyncio.to_thread(_finish, engine, run_id, status, summary))
    return summary


def _rate_limited_count() -> int:
    from collector import metrics

    return int(
        sum(s.value for m in metrics.EXCHANGE_RATE_LIMITED.collect() for s in m.samples if s.name.endswith("_total"))
    )


def _begin(engine: Engine, plan: BackfillPlan, infos: list, listed: list, tasks: list[Task]) -> int:
    with transaction(engine) as conn:
        write_symbols(conn, infos, listed, now=datetime.now(UTC), mark_delisted=False)
        done = checkpoints.load_scope(conn, plan.scope)
        for task in tasks:
            cp = done.get((task.symbol, task.stream, task.interval))
            if cp is not None:
                task.covered_until = cp.last_time
                task.complete = task.skipped = cp.complete
        args = {
            "start": plan.start.isoformat(),
            "end": plan.end.isoformat(),
            "symbols": list(plan.symbols),
            "streams": list(plan.streams),
            "intervals": list(plan.intervals),
        }
        return runs.begin(conn, "backfill", args)


def _finish(engine: Engine, run_id: int, status: str, summary: BackfillSummary) -> None:
    counts = {
        "rows": summary.rows,
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
