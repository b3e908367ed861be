"""`collector run`: the long-running daemon.

Start-up waits (with backoff) for the exchange and the database rather than dying, migrates the
schema, refreshes symbols, plans the weight budget and starts the schedule. SIGTERM or SIGINT, in
any state: a start-up step is cancelled; once running, scheduling stops, every request waiting
for budget, a Retry-After or a ban is cancelled at once, requests in flight get a few seconds,
the rest is cancelled (nothing is lost: checkpoints), and it exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
from dataclasses import dataclass

from collector import metrics
from collector.config import Settings
from collector.daemon import health
from collector.daemon.context import LiveContext
from collector.daemon.leases import balance_leases
from collector.daemon.push import Push
from collector.daemon.scheduler import Schedule
from collector.daemon.symbols import refresh_symbols
from collector.daemon.userstream import UserStream
from collector.errors import (
    CollectorError,
    ConfigError,
    ExchangeRejected,
    TransientError,
)
from collector.exchange.session import handshake, open_client
from collector.store import runs
from collector.store.db import Database, open_database, transaction
from collector.store.migrate import upgrade

log = logging.getLogger(__name__)
SHUTDOWN_GRACE = 3.0  # seconds running jobs get to finish after SIGTERM
SUMMARY_EVERY = 60.0


@dataclass
class Running:
    """What a started daemon exposes to its caller (tests, `run --simulate`)."""

    ctx: LiveContext
    schedule: Schedule
    metrics_port: int


async def until_stopped(awaitable, stop: asyncio.Event):
    """Await ``awaitable`` unless ``stop`` is set first: then cancel it and raise CancelledError.

    A start-up step may wait a long time (a rate-limit window, a Retry-After, a ban of days);
    stopping must not wait for it."""
    work = asyncio.ensure_future(awaitable)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({work, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if work.done():
        return work.result()
    work.cancel()
    await asyncio.gather(work, return_exceptions=True)
    raise asyncio.CancelledError


async def _retry_forever(what: str, attempt_fn, stop: asyncio.Event, *, cap: float = 30.0, interruptible: bool = True):
    """Keep trying a start-up step through transient failures; bad configuration is fatal. Stopping
    cancels an ``interruptible`` step at once (one that owns a resource when it returns is not)."""
    delay = 1.0
    while True:
        if stop.is_set():
            raise asyncio.CancelledError
        try:
            if not interruptible:
                return await attempt_fn()
            return await until_stopped(attempt_fn(), stop)
        except (ConfigError, ExchangeRejected):
            raise
        except (TransientError, OSError) as exc:
            log.warning("%s not ready (%s: %s); retrying in %.0fs", what, type(exc).__name__, exc, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay * random.uniform(0.8, 1.2))
        if stop.is_set():
            raise asyncio.CancelledError
        delay = min(cap, delay * 2)


async def run_daemon(
    settings: Settings, *, stop: asyncio.Event | None = None, started: asyncio.Future | None = None, announce=print
) -> int:
    """Run until ``stop`` is set (or SIGTERM/SIGINT). Returns the exit code."""
    stop = stop or asyncio.Event()
    settings, disabled = _collectable(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    db: Database | None = None
    try:
        db = await _retry_forever(
            "database",
            lambda: asyncio.to_thread(
                open_database, settings.database_url, settings.data_dir, announce=announce, pool_size=10
            ),
            stop,
            interruptible=False,
        )
        await asyncio.to_thread(upgrade, db.engine)
        async with open_client(settings) as client:
            await _retry_forever(f"exchange {settings.exchange_url}", lambda: handshake(client), stop)
            ctx = LiveContext(client, db.engine, settings, disabled=disabled)
            _coordinate(ctx, db)
            run_id = await asyncio.to_thread(_begin_run, db.engine, settings, disabled)
            runner = await health.serve(ctx, settings.metrics_host, settings.metrics_port)
            port = health.bound_port(runner)
            try:
                await _retry_forever("symbol refresh", lambda: refresh_symbols(ctx), stop)
                if ctx.leases is not None:
                    await _retry_forever("leases", lambda: balance_leases(ctx), stop)
                schedule = Schedule(ctx)
                schedule.start()
                push = _push(ctx, schedule)
                try:
                    announce(
                        f"collecting {len(ctx.trading())} option symbols from {settings.exchange_url}; "
                        f"metrics on http://{settings.metrics_host}:{port}/metrics"
                    )
                    if started is not None and not started.done():
                        started.set_result(Running(ctx, schedule, port))
                    await _summaries(ctx, stop, run_id)
                    log.info("stopping: letting requests in flight finish (up to %gs)", SHUTDOWN_GRACE)
                    if push is not None:  # first: closing the listenKey is a request
                        await push.close()
                    client.governor.shut()  # whatever waits for budget, a Retry-After or a ban ends now
                    await schedule.shutdown(SHUTDOWN_GRACE)
                    if ctx.leases is not None:  # hand our symbols over now rather than after the TTL
                        with contextlib.suppress(CollectorError):
                            await asyncio.to_thread(ctx.leases.release_all)
                finally:
                    schedule.abort()  # whatever ended us, no job may outlive the session it uses
                    if push is not None:
                        await push.close()
            finally:
                with contextlib.suppress(Exception):  # the database may be the reason we stop
                    await asyncio.to_thread(_finish_run, db.engine, run_id, stop.is_set())
                await runner.cleanup()
    except asyncio.CancelledError:
        if not stop.is_set():
            raise
    except CollectorError:
        if started is not None and not started.done():
            started.cancel()
        raise
    finally:
        if db is not None:  # waits for worker threads' connections: off the event loop
            await asyncio.to_thread(db.close)
    log.info("stopped")
    return 0


NO_KEY = "needs COLLECTOR_API_KEY: option/historicalTrades is MARKET_DATA (an API key, no signature)"


NO_SECRET = "needs COLLECTOR_API_KEY and COLLECTOR_API_SECRET: the account's endpoints are signed"


def _collectable(settings: Settings) -> tuple[Settings, dict[str, str]]:
    """The streams that can be collected with these settings, and why the others cannot (said once)."""
    disabled: dict[str, str] = {}
    if "trades" in settings.streams and settings.api_key is None:
        log.warning("trades are not collected: %s; every other stream is", NO_KEY)
        disabled["trades"] = NO_KEY
    if "account" in settings.streams and (settings.api_key is None or settings.api_secret is None):
        log.info("the account is not collected: %s", NO_SECRET)
        disabled["account"] = NO_SECRET
    if not disabled:
        return settings, {}
    rest = [s for s in settings.streams if s not in disabled]
    return settings.model_copy(update={"streams": rest}), disabled


def _begin_run(engine, settings: Settings, disabled: dict[str, str]) -> int:
    """A collector_runs row for this daemon: what it was told to do (never secrets)."""
    args = {
        "exchange_url": settings.exchange_url,
        "streams": settings.streams,
        "kline_intervals": settings.kline_intervals,
        "disabled": disabled,
    }
    with transaction(engine) as conn:
        return runs.begin(conn, "run", args)


def _finish_run(engine, run_id: int, clean: bool) -> None:
    counts = {}
    for metric in (metrics.ROWS_UPSERTED, metrics.JOB_FAILURES):
        for m in metric.collect():
            for sample in m.samples:
                if sample.name.endswith("_total"):
                    key = "/".join(sample.labels.values())
                    counts[f"{m.name}:{key}"] = int(sample.value)
    with transaction(engine) as conn:
        runs.finish(conn, run_id, "ok" if clean else "interrupted", counts)


def _push(ctx: LiveContext, schedule: Schedule) -> Push | None:
    """The push streams, when configured: kept matching the symbols (a refresh re-plans both), and
    the account's user data stream."""
    if not any(k in ctx.settings.streams for k in ctx.settings.push):
        return None
    push = Push(ctx, on_change=schedule.replan)
    if "account" in ctx.settings.push and "account" in ctx.settings.streams:
        push.user = UserStream(ctx, push.session)
        push.user.start()

    def symbols_changed() -> None:
        schedule.replan()
        push.replan()

    ctx.on_symbols_changed = symbols_changed
    push.start()
    return push


def _coordinate(ctx: LiveContext, db: Database) -> None:
    """Leases and the shared weight budget, as configured (both on by default)."""
    from collector.store.coordination import Leases, SharedAllowance, node_id

    settings, client = ctx.settings, ctx.client
    if settings.coordination:
        ctx.leases = Leases(db.engine, node_id(), settings.egress, settings.lease_ttl_seconds)
    if settings.shared_budget:
        client.allowance = SharedAllowance.for_governor(db.engine, settings.egress, client.governor)


def _note_push(engine, run_id: int, state: dict) -> None:
    """The push's state on the run's row, for `collector status` (the figures the log just gave)."""
    with transaction(engine) as conn:
        runs.note(conn, run_id, {"push": state})


async def _summaries(ctx: LiveContext, stop: asyncio.Event, run_id: int) -> None:
    """One line per minute of what the daemon did, until stopped."""
    last: dict[str, float] = {}
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=SUMMARY_EVERY)
        if stop.is_set():
            return
        rows = {}
        for metric in metrics.ROWS_UPSERTED.collect():
            for s in metric.samples:
                if s.name.endswith("_total"):
                    table = s.labels["table"]
                    rows[table] = int(s.value - last.get(table, 0))
                    last[table] = s.value
        stats = ctx.client.governor.stats()
        metrics.WEIGHT_LAST_WINDOW.set(stats.weight_last_window)  # the same figure /metrics shows
        if ctx.push is not None:
            p = ctx.push.state()
            log.info(
                "push: %d of %d connections up, %.1f messages/s, %d reconnects (%d stalls); trades first "
                "seen by push %d, by REST %d (%d of them repairing the push)",
                p["connections"]["up"],
                sum(p["connections"].values()),
                p["messages_per_second"],
                p["reconnects"],
                p["stalls"],
                p["trades_first_seen"]["push"],
                p["trades_first_seen"]["rest"] + p["trades_first_seen"]["repair"],
                p["trades_first_seen"]["repair"],
            )
            with contextlib.suppress(Exception):  # the database may be down; the log has said it
                await asyncio.to_thread(_note_push, ctx.engine, run_id, p)
        log.info(
            "last minute: %s; weight %d/%s in the last full window (planned %.0f/min); %d symbols; database %s",
            ", ".join(f"{n} {t}" for t, n in sorted(rows.items())) or "no rows",
            stats.weight_last_window,
            stats.weight_limit,
            ctx.planned_per_minute,
            len(ctx.trading()),
            "up" if ctx.db_ok else "DOWN",
        )
