"""What every daemon job needs, passed in explicitly: client, engine, settings, the symbol set,
and the freshness bookkeeping that /metrics and /healthz read."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from collector import metrics
from collector.config import Settings
from collector.errors import CollectorError, DatabaseUnavailable, SymbolRefused
from collector.exchange.client import JexClient
from collector.store import checkpoints
from collector.store.db import transaction
from collector.store.write import write_job_error

log = logging.getLogger(__name__)
FANOUT = 8  # polls a job runs at once (each waits for its weight at the governor)
REFUSE_AFTER_1121 = 3  # "invalid symbol" answers in a row before a listed symbol is given up


@dataclass
class Symbol:
    """A symbol the daemon knows, from optionInfo/exchangeInfo."""

    name: str
    expiry: datetime | None
    listed: bool = True
    swept: bool = False  # its final collection after expiry is done: no longer polled
    first_seen: datetime | None = None  # when a refresh first stored it
    refused: bool = False  # the exchange refused its market data for good: no longer asked
    can_release: bool = False  # it may be shorted: the account's shorts and calls of it are followed

    def trading(self, now: datetime) -> bool:
        return self.listed and not self.refused and (self.expiry is None or self.expiry > now)

    def needs_history(self, now: datetime) -> bool:
        """Polled for trades and klines: trading, or expired and waiting for its final sweep."""
        return self.listed and not self.swept and not self.refused


@dataclass
class LiveContext:
    client: JexClient
    engine: Engine
    settings: Settings
    symbols: dict[str, Symbol] = field(default_factory=dict)
    # When each (stream, symbol) last confirmed it had everything the exchange had (monotonic-free
    # wall time, for lag); read by /healthz and the lag metrics.
    caught_up: dict[tuple[str, str], float] = field(default_factory=dict)
    db_ok: bool = True
    final: dict[str, set[str]] = field(default_factory=dict)  # expired symbol -> streams swept
    owned: set[str] | None = None  # symbols this node holds leases on; None: no coordination
    leases: Any = None  # collector.store.coordination.Leases when several daemons share the work
    on_symbols_changed: Callable[[], Any] | None = None
    clock: Callable[[], float] = time.time
    disabled: dict[str, str] = field(default_factory=dict)  # stream -> why it is not collected
    account_open_symbols: int = 0  # symbols with orders not yet final (the account poll follows them)
    planned_per_minute: float = 0.0  # weight per minute the schedule in force needs (log and metric)
    # The adaptive schedule's view of trades (daemon/trades.py): per symbol, when its last trades poll
    # began (host time), its estimated trades per second, the interval the plan gives it, its last
    # price and when the price signal saw it change.
    trade_polls: dict[str, float] = field(default_factory=dict)
    trade_rates: dict[str, float] = field(default_factory=dict)
    trade_plan: dict[str, float] = field(default_factory=dict)
    last_prices: dict[str, Any] = field(default_factory=dict)
    price_changed: dict[str, float] = field(default_factory=dict)
    signal_at: float = -1e18  # when the last price signal that was answered was asked
    spawned: set[str] = field(default_factory=set)  # symbols with a poll task of their own running
    unseen_rates: dict[str, float] = field(default_factory=dict)  # trades/s the price signal does not show
    on_signals: frozenset[str] = frozenset()  # symbols the plan polls when a signal shows a trade
    volume_symbols: frozenset[str] = frozenset()  # symbols whose 24h volume the plan reads as a signal
    last_volumes: dict[str, Any] = field(default_factory=dict)  # 24h volume of the latest ticker
    volume_changed: dict[str, float] = field(default_factory=dict)  # when a ticker showed it move
    tasks: set[asyncio.Task] = field(default_factory=set)
    # Push (daemon/push.py): symbols whose trades stream is connected, with when it came up (their
    # trades are confirmed by REST after that and every push_confirm_seconds, not polled for
    # freshness); symbols whose book is pushed (not polled); the push's figures and state.
    push_up: dict[str, float] = field(default_factory=dict)
    push_back: dict[str, float] = field(default_factory=dict)  # when its trades stream came back after a loss
    repairs: deque[float] = field(default_factory=deque)  # when each repair of the last minute began
    depth_pushed: set[str] = field(default_factory=set)
    push_stats: Any = None
    push: Any = None
    _strikes: dict[str, int] = field(default_factory=dict)  # -1121 answers per symbol since its last success
    _busy: dict[str, int] = field(default_factory=dict)  # polls running per symbol
    _settled: asyncio.Event = field(default_factory=asyncio.Event)  # set when a poll ends

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def _mine(self, name: str) -> bool:
        return self.owned is None or name in self.owned

    @contextlib.contextmanager
    def polling(self, symbol: str) -> Iterator[bool]:
        """Around one poll of a symbol: yields whether this node may poll it now.

        Counting the poll and checking ownership happen together (no await between), so a lease
        handed over after ``wait_idle`` saw the symbol idle can never have a poll of ours running.
        """
        self._busy[symbol] = self._busy.get(symbol, 0) + 1
        try:
            yield self._mine(symbol)
        finally:
            self._busy[symbol] -= 1
            if not self._busy[symbol]:
                del self._busy[symbol]
            self._settled.set()

    async def each(self, items: Iterable[Any], fn: Callable[[Any], Awaitable[Any]], limit: int = FANOUT) -> None:
        """``fn(item)`` for every item, at most ``limit`` at once: a job over 200 symbols keeps a
        few requests waiting at the governor, not 200 (which every other job would queue behind)."""
        gate = asyncio.Semaphore(limit)

        async def one(item: Any) -> None:
            async with gate:
                await fn(item)

        await asyncio.gather(*(one(i) for i in items))

    def is_polling(self, symbol: str) -> bool:
        return symbol in self._busy

    def spawn(self, symbol: str, coro: Any) -> None:
        """Run one symbol's poll as a task of its own (``spawned`` names the symbols that have one;
        the schedule waits for or cancels ``tasks`` when it stops)."""
        self.spawned.add(symbol)
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)

        def done(t: asyncio.Task) -> None:
            self.tasks.discard(t)
            self.spawned.discard(symbol)

        task.add_done_callback(done)

    async def wait_idle(self, symbols: set[str], timeout: float) -> set[str]:
        """Wait (at most ``timeout`` s) until none of ``symbols`` is being polled; return the idle ones."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(s in self._busy for s in symbols) and loop.time() < deadline:
            self._settled.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), deadline - loop.time())
        return {s for s in symbols if s not in self._busy}

    def history_start(self, name: str) -> datetime:
        """Where the history of a symbol without a checkpoint starts: ``lookback_hours`` before it
        was first seen, so a first poll that fails or comes late (database down, polls stretched)
        does not move the start and leave a gap. A symbol first seen longer ago than that and never
        polled since starts ``lookback_hours`` before now."""
        lookback = timedelta(hours=self.settings.lookback_hours)
        now = self.now()
        seen = self.symbols[name].first_seen if name in self.symbols else None
        if seen is not None and now - seen <= lookback:
            return seen - lookback
        return now - lookback

    def trading(self) -> list[str]:
        """Trading symbols this node polls (snapshots: depth, tickers, ...)."""
        now = self.now()
        return sorted(s.name for s in self.symbols.values() if s.trading(now) and self._mine(s.name))

    def with_history(self) -> list[str]:
        """Symbols this node polls for trades and klines (trading, or awaiting a final sweep)."""
        now = self.now()
        return sorted(s.name for s in self.symbols.values() if s.needs_history(now) and self._mine(s.name))

    def account_symbols(self) -> list[str]:
        """Symbols this node pages the account's orders (and shorts and calls) of: listed and not
        swept, even when the exchange refuses their market data (an expired option's orders still
        end, and must be seen ending)."""
        return sorted(s.name for s in self.symbols.values() if s.listed and not s.swept and self._mine(s.name))

    def candidates(self) -> list[str]:
        """Every symbol some node must poll: what the leases are shared over (with the account, also
        the symbols whose market data is refused while their orders may still end)."""
        now = self.now()
        account = "account" in self.settings.streams
        return sorted(
            s.name for s in self.symbols.values() if s.needs_history(now) or (account and s.listed and not s.swept)
        )

    def forget(self, symbol: str) -> None:
        """This process no longer polls ``symbol`` (swept, handed over, refused): drop what it kept
        of it, and its metric series, so none of them shows a staleness growing for ever."""
        for key in [k for k in self.caught_up if k[1] == symbol]:
            del self.caught_up[key]
        for kept in (
            self.trade_polls,
            self.trade_rates,
            self.unseen_rates,
            self.trade_plan,
            self.push_back,
            self.last_prices,
            self.price_changed,
            self.last_volumes,
            self.volume_changed,
        ):
            kept.pop(symbol, None)
        metrics.forget_symbol(symbol)

    def mark_caught_up(self, stream: str, symbol: str, at: float) -> None:
        self.caught_up[(stream, symbol)] = at
        self._strikes.pop(symbol, None)
        metrics.STREAM_STALENESS.labels(*metrics.stream_labels(stream), symbol).set(0)

    async def refuse(self, exc: SymbolRefused) -> None:
        """The exchange refused ``exc.symbol`` for good: record why, say so once, stop asking.

        -7012/-7013 are final at once. -1121 (invalid symbol) for a symbol the exchange listed may be
        a listing not yet everywhere on its side: final after REFUSE_AFTER_1121 answers in a row."""
        symbol = exc.symbol
        sym = self.symbols.get(symbol)
        if sym is None or sym.refused:
            return
        if exc.code == -1121:
            self._strikes[symbol] = self._strikes.get(symbol, 0) + 1
            if self._strikes[symbol] < REFUSE_AFTER_1121:
                log.warning("%s: the exchange answered %s; asking again later", symbol, exc.reason)
                return
        sym.refused = True
        metrics.SYMBOLS_REFUSED.inc()
        self.forget(symbol)
        log.warning(
            "%s refused by the exchange: %s; no longer asked for it (recorded in option_symbols)", symbol, exc.reason
        )
        try:
            await self.db(_store_refusal, self.engine, symbol, exc.reason, self.now())
        except DatabaseUnavailable:
            pass  # known in memory; a later refusal after a restart records it
        if self.on_symbols_changed is not None:
            self.on_symbols_changed()

    async def db(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a store function in a worker thread; track whether the database answers."""
        try:
            result = await asyncio.to_thread(fn, *args)
        except DatabaseUnavailable as exc:
            self._db_down(exc)
            raise
        if not self.db_ok:
            log.warning("database reachable again")
        self.db_ok = True
        return result

    def _db_down(self, exc: DatabaseUnavailable) -> None:
        """One line per outage: said when the database is first found down, not by every job."""
        metrics.DB_ERRORS.inc()
        if self.db_ok:
            log.error("database unavailable (%s); polls retry it and the log says when it is back", exc)
        self.db_ok = False

    async def record_error(
        self, job: str, symbol: str | None, exc: BaseException, *, stream: str = "", interval: str = ""
    ) -> None:
        """Count, log and (when the database answers) store a job failure; never raises.
        A refusal of the symbol itself (SymbolRefused) stops its collection instead."""
        if isinstance(exc, SymbolRefused):
            try:
                await self.refuse(exc)
            except Exception:  # noqa: BLE001 - reporting a failure must not fail
                log.debug("could not record a refusal", exc_info=True)
            return
        metrics.JOB_FAILURES.labels(job, type(exc).__name__).inc()
        if isinstance(exc, DatabaseUnavailable):
            self._db_down(exc)  # nothing can be stored now; the outage is said once
            return
        message = str(exc) or type(exc).__name__
        level = logging.WARNING if isinstance(exc, CollectorError) else logging.ERROR
        log.log(
            level,
            "%s %s failed: %s: %s",
            job,
            symbol or "",
            type(exc).__name__,
            message,
            exc_info=not isinstance(exc, CollectorError),
        )

        def store() -> None:
            with transaction(self.engine) as conn:
                write_job_error(conn, job, symbol, type(exc).__name__, message)
                if symbol and stream:
                    checkpoints.record_error(
                        conn, checkpoints.LIVE, symbol, stream, interval, f"{type(exc).__name__}: {message}"
                    )

        try:
            await asyncio.to_thread(store)
        except Exception:  # noqa: BLE001 - reporting a failure must not fail
            log.debug("could not store job error", exc_info=True)


def _store_refusal(engine: Engine, symbol: str, reason: str, at: datetime) -> None:
    from collector.store.write import refuse_symbol

    with transaction(engine) as conn:
        refuse_symbol(conn, symbol, reason, at=at)
