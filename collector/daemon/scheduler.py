"""All APScheduler wiring of the daemon, and nothing else.

Every job: one instance at a time (a slow run is never doubled), missed runs coalesced into one,
a misfire grace as long as its interval, and a timeout so a hung run cannot block it forever.
On every symbol change the budget is re-planned and intervals rescheduled; the adaptive schedule
also re-plans every REPLAN_SECONDS, as the symbols' rates of trades change.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from collector import metrics
from collector.daemon import planner as budget
from collector.daemon.account import poll_account, poll_account_history
from collector.daemon.context import LiveContext
from collector.daemon.klines import poll_klines
from collector.daemon.leases import balance_leases
from collector.daemon.partitions import maintain_partitions
from collector.daemon.snapshots import (
    poll_avg_price,
    poll_book_ticker,
    poll_depth,
    poll_tickers,
)
from collector.daemon.symbols import refresh_symbols
from collector.daemon.trades import (
    TICK_SECONDS,
    poll_due_trades,
    poll_trade_signals,
    poll_trades,
    poll_volume_signals,
)
from collector.exchange import GovernorStats

log = logging.getLogger(__name__)


REPLAN_SECONDS = 30.0  # adaptive: how often the plan follows the symbols' rates of trades
KLINES_AFTER_MINUTE = 2.0  # seconds after the minute at which klines jobs run (a kline has closed)
RESCHEDULE_CHANGE = 0.1  # a job is rescheduled when its planned interval moved more than this share


def job_functions(ctx: LiveContext) -> dict[str, Callable[[], Awaitable[object]]]:
    adaptive = ctx.settings.schedule == "adaptive"
    funcs: dict[str, Callable[[], Awaitable[object]]] = {
        "symbols": partial(refresh_symbols, ctx),
        "partitions": partial(maintain_partitions, ctx),
        "trades": partial(poll_due_trades if adaptive else poll_trades, ctx),
        "trade signals": partial(poll_trade_signals, ctx),
        "volume signals": partial(poll_volume_signals, ctx),
        "depth": partial(poll_depth, ctx),
        "tickers": partial(poll_tickers, ctx),
        "avg_price": partial(poll_avg_price, ctx),
        "book_ticker": partial(poll_book_ticker, ctx),
        "leases": partial(balance_leases, ctx),
    }
    funcs["account"] = partial(poll_account, ctx)
    funcs["account history"] = partial(poll_account_history, ctx)
    for iv in ctx.settings.kline_intervals:
        funcs[f"klines {iv}"] = partial(poll_klines, ctx, iv)
    return funcs


class Schedule:
    """The scheduler plus the running job tasks, so shutdown can let them finish or cancel them."""

    def __init__(self, ctx: LiveContext) -> None:
        self.ctx = ctx
        self.scheduler = AsyncIOScheduler(
            timezone="UTC",
            job_defaults={
                "max_instances": 1,
                "coalesce": True,
            },
        )
        self.functions = job_functions(ctx)
        self.functions["replan"] = self._replan_job
        self.adaptive = ctx.settings.schedule == "adaptive"
        self.running: set[asyncio.Task] = set()
        self.stopping = False
        self.plan: budget.Plan | budget.AdaptivePlan | None = None
        self.intervals: dict[str, float] = {}  # job -> interval it is scheduled at
        self._behind: set[str] = set()
        ctx.on_symbols_changed = self.replan

    def _specs(self) -> list[budget.JobSpec]:
        history = self.ctx.with_history()
        account = self.ctx.account_symbols()
        releasable = sum(1 for s in account if self.ctx.symbols[s].can_release)
        trading = self.ctx.trading()
        specs = budget.job_specs(
            self.ctx.settings,
            len(trading),
            len(history),
            releasable,
            self.ctx.account_open_symbols,
            len(account),
            n_depth=sum(1 for s in trading if s not in self.ctx.depth_pushed),
        )
        pushed = sum(1 for s in history if s in self.ctx.push_up)
        if pushed and not self.adaptive:  # a pushed symbol's trades are polled only to confirm them
            share = min(1.0, self.ctx.settings.trades_poll_seconds / self.ctx.settings.push_confirm_seconds)
            specs = [
                dataclasses.replace(
                    spec, weight_per_run=round(spec.weight_per_run * (1 - pushed * (1 - share) / len(history)))
                )
                if spec.stream == "trades"
                else spec
                for spec in specs
            ]
        if self.ctx.leases is not None:
            specs.append(budget.JobSpec("leases", "leases", self.ctx.settings.lease_ttl_seconds / 3, 0))
        return specs

    def _limit(self, stats: GovernorStats) -> float:
        """Weight per minute this node may plan for: its share of the symbols' share of the limit."""
        share = 1.0
        if self.ctx.owned is not None:  # a node between leases still refreshes symbols: never zero
            candidates = self.ctx.candidates()
            mine = len(self.ctx.owned & set(candidates))  # leases on swept symbols linger until rebalanced
            share = min(1.0, max(0.05, mine / max(1, len(candidates))))
        return stats.weight_per_minute * share

    def _compute(self) -> budget.Plan | budget.AdaptivePlan:
        stats = self.ctx.client.governor.stats()  # one reading: the limit and the raw limit agree
        if not self.adaptive:
            return budget.plan(self._specs(), self._limit(stats))
        rates = {s: self.ctx.trade_rates.get(s, 0.0) for s in self.ctx.with_history()}
        unseen = {s: self.ctx.unseen_rates.get(s, 0.0) for s in rates}
        raw = (
            stats.raw_limit * 60.0 / stats.raw_window_seconds if stats.raw_limit and stats.raw_window_seconds else None
        )
        pushed = frozenset(s for s in rates if s in self.ctx.push_up)
        return budget.adaptive_plan(self.ctx.settings, self._specs(), rates, self._limit(stats), unseen, raw, pushed)

    def _jobs(self) -> dict[str, float]:
        """Every job to schedule, with its interval, from the plan in force."""
        assert self.plan is not None
        jobs = dict(self.plan.seconds)
        if self.adaptive and "trades" in self.ctx.settings.streams:
            jobs["trades"] = TICK_SECONDS  # looks for symbols due; the plan spaces each symbol
            if "trade signals" in jobs:  # (not when every symbol's trades are pushed)
                jobs["trade signals"] = self.ctx.settings.trades_signal_seconds
            jobs["replan"] = REPLAN_SECONDS
        return jobs

    def start(self) -> None:
        self.plan = self._compute()
        self._apply()
        for name, seconds in self._jobs().items():
            # The daemon refreshed symbols just before starting us; everything else runs at once.
            first = {} if name in ("symbols", "replan") else {"next_run_time": _now()}
            self._add(name, seconds, **first)
        self.scheduler.start()

    def _add(self, name: str, seconds: float, **first) -> None:
        self.scheduler.add_job(
            self._runner(name, seconds),
            _trigger(name, seconds),
            id=name,
            name=name,
            misfire_grace_time=max(1, int(seconds)),
            **first,
        )
        self.intervals[name] = seconds
        metrics.JOB_INTERVAL.labels(name).set(seconds)

    async def _replan_job(self) -> None:
        self.replan()

    def replan(self) -> None:
        """Symbols (or, adaptive, rates of trades) changed: recompute the budget and reschedule what
        moved by more than RESCHEDULE_CHANGE."""
        self.plan = self._compute()
        self._apply()
        jobs = self._jobs()
        for name in [n for n in self.intervals if n not in jobs]:  # e.g. signals, once all is pushed
            with contextlib.suppress(JobLookupError):
                self.scheduler.remove_job(name)
            del self.intervals[name]
            metrics.JOB_INTERVAL.labels(name).set(0)
        for name, seconds in jobs.items():
            before = self.intervals.get(name)
            if before is None:
                self._add(name, seconds)
            elif abs(seconds - before) > RESCHEDULE_CHANGE * before:
                self.scheduler.reschedule_job(name, trigger=_trigger(name, seconds))
                self.scheduler.modify_job(name, misfire_grace_time=max(1, int(seconds)))
                self.intervals[name] = seconds
                metrics.JOB_INTERVAL.labels(name).set(seconds)

    def _apply(self) -> None:
        """Hand the plan to the trades polls and the metrics, and log it when it changed."""
        p = self.plan
        assert p is not None
        if isinstance(p, budget.AdaptivePlan):
            gone = set(self.ctx.trade_plan) - set(p.trades)
            self.ctx.trade_plan = dict(p.trades)
            self.ctx.on_signals = p.on_signals
            self.ctx.volume_symbols = p.volume_symbols
            for symbol, seconds in p.trades.items():
                metrics.TRADES_INTERVAL.labels(symbol).set(seconds)
            for symbol in gone:
                with contextlib.suppress(KeyError):
                    metrics.TRADES_INTERVAL.remove(symbol)
        self._log_plan()

    def _log_plan(self) -> None:
        p = self.plan
        assert p is not None
        self.ctx.planned_per_minute = p.need_per_minute
        metrics.PLANNED_WEIGHT.set(p.need_per_minute)
        if isinstance(p, budget.AdaptivePlan):
            self._log_adaptive(p)
            return
        now = self.ctx.now()
        states = {"trading": 0, "expired_unswept": 0, "done": 0}
        for s in self.ctx.symbols.values():
            key = "trading" if s.trading(now) else ("expired_unswept" if s.needs_history(now) else "done")
            states[key] += 1
        for state, n in states.items():
            metrics.SYMBOLS.labels(state).set(n)
        log.info(
            "schedule for %d trading symbols needs %.0f weight/min; budget %.0f (%.0f%% of the "
            "announced limit less the margin)",
            states["trading"],
            p.need_per_minute,
            p.budget_per_minute,
            budget.PLAN_SHARE * 100,
        )
        if p.changes:
            log.warning("stretched to fit the weight budget: %s", "; ".join(p.changes))
        if not p.fits:
            log.error(
                "even stretched %gx the schedule needs %.0f weight/min, over the budget of %.0f",
                budget.MAX_STRETCH,
                p.need_per_minute,
                p.budget_per_minute,
            )

    def _log_adaptive(self, p: budget.AdaptivePlan) -> None:
        """One line when the plan's shape changes (which jobs are behind their targets), not on every
        re-plan; the metrics carry every figure at every re-plan."""
        for job, seconds in p.targets.items():
            metrics.STREAM_TARGET.labels(job).set(seconds)
            metrics.STREAM_BEHIND.labels(job).set(1 if job in p.behind else 0)
        behind = set(p.behind)
        if behind == self._behind and self.intervals:
            return
        self._behind = behind
        intervals = sorted(p.trades.values())
        spread = (
            f"trades of {len(intervals)} symbols every {intervals[0]:.1f}-{intervals[-1]:.0f}s"
            f" (median {intervals[len(intervals) // 2]:.1f}s; {len(p.on_signals)} of them only when a signal"
            " shows a trade)"
            if intervals
            else "no trades polls yet"
        )
        log.info(
            "adaptive schedule: %s; needs %.0f weight/min of a budget of %.0f (%.0f%% of the announced "
            "limit less the margin)",
            spread,
            p.need_per_minute,
            p.budget_per_minute,
            budget.PLAN_SHARE * 100,
        )
        if behind:
            log.warning("behind their targets (the budget does not fit them): %s", "; ".join(p.changes))
        else:
            log.info("every job at its target interval")

    def _runner(self, name: str, seconds: float) -> Callable[[], Awaitable[None]]:
        func = self.functions[name]
        timeout = max(120.0, 4 * seconds)

        async def run() -> None:
            task = asyncio.current_task()
            assert task is not None
            self.running.add(task)
            started = time.monotonic()
            try:
                async with asyncio.timeout(timeout):
                    await func()
            except TimeoutError as exc:
                await self.ctx.record_error(name, None, TimeoutError(f"job ran over {timeout:g}s"))
                del exc
            except asyncio.CancelledError:
                if not self.stopping:
                    raise
                # stopping: the request it waited for was cancelled (or the job itself); it ends here

            except Exception as exc:  # noqa: BLE001 - a job failure is logged, the schedule goes on
                await self.ctx.record_error(name, None, exc)
            finally:
                self.running.discard(task)
                metrics.JOB_DURATION.labels(name).observe(time.monotonic() - started)

        return run

    async def shutdown(self, grace: float) -> None:
        """Stop scheduling; give running jobs ``grace`` seconds to finish, then cancel them.

        A cancelled job loses nothing: its committed batches are checkpointed and the rest is
        fetched again on the next start. A transaction already handed to the database thread
        completes (commit or rollback) before the process exits.
        """
        self.stopping = True
        self.scheduler.pause()
        pending = set(self.running) | set(self.ctx.tasks)  # jobs, and the polls they started
        if pending:
            _, still = await asyncio.wait(pending, timeout=grace)
            for task in still:
                task.cancel()
            if still:
                await asyncio.gather(*still, return_exceptions=True)
        self.scheduler.shutdown(wait=False)

    def abort(self) -> None:
        """Stop at once (after shutdown this does nothing): cancel every running job."""
        self.stopping = True
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        for task in [*self.running, *self.ctx.tasks]:
            task.cancel()


def _trigger(name: str, seconds: float) -> IntervalTrigger:
    """Every ``seconds``; a klines job's runs fall KLINES_AFTER_MINUTE seconds after a minute
    begins (at 60 s: just after every 1m kline closes, not up to a minute later, whatever phase
    the daemon started or was re-planned at)."""
    if not name.startswith("klines "):
        return IntervalTrigger(seconds=seconds)
    now = _now()
    aligned = now.replace(second=0, microsecond=0) + timedelta(minutes=1, seconds=KLINES_AFTER_MINUTE)
    return IntervalTrigger(seconds=seconds, start_date=aligned, timezone="UTC")


def _now() -> datetime:
    return datetime.now(UTC)
