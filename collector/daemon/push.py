"""Push: the exchange's web-socket streams, merged with REST into one exact history.

REST stays the backbone; push buys freshness. Per symbol the daemon subscribes (``push``):
``<symbol>@optionTrade`` (trades, within ~100 ms of being made), ``<symbol>@optionKline_<iv>``
(the open kline, every second) and ``<symbol>@optionDepth<levels>`` (the partial book). A symbol's
streams share one connection (at most 10 streams each, the exchange's limit), so each connection
is a known set of symbols.

- **Trades** are upserted as they arrive, on (symbol, trade_id) beside REST's rows. The fromId
  checkpoint advances only over what REST's pages confirmed: a pushed id does not say whether
  another trade lies between it and the one before (ids are not consecutive), so no run of pushes
  proves a range complete; a REST page from the checkpoint does. Every pushed symbol is confirmed
  by REST at once after each (re)connect of its connection (``push_up``: the trades schedule
  polls a symbol whose connection came up after its last poll) and at least every
  ``push_confirm_seconds``; what REST stores that push had not, made while the stream was up, is
  counted as repaired (``jex_trades_first_seen_total{source="repair"}``).
- **Klines**: the stream's open kline is written with its trade count and taker volumes unknown
  (NULL); REST's polls still store every kline, and a closed one only from REST.
- **Depth**: the partial book is stored every ``depth_poll_seconds`` per symbol (no update id);
  the REST depth poll skips the symbols whose book is pushed.
- A connection is reopened with backoff when it closes or breaks, when it delivers nothing for
  ``stream_stall_seconds`` (a silent stall) and, before the exchange's 24-hour limit, at
  ``stream_renew_seconds`` (at once; its symbols are confirmed by REST as after any reconnect).
  Whatever is not pushed (connection down, stream not offered) is polled as without push.

Every figure (connections per state, messages, reconnects, stalls, trades first seen by push or
REST) lives in ``PushStats``; /metrics, /healthz, the log and ``collector status`` read it there.
May import: the daemon's context, the exchange's streams and parsers, the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine

from collector import metrics
from collector.daemon.context import LiveContext
from collector.daemon.snapshots import store_depth
from collector.daemon.userstream import UserStream
from collector.domain import DepthSnapshot, StreamKline, Trade
from collector.errors import CollectorError, ParseError
from collector.exchange import streams as ws
from collector.exchange.parsers import parse_stream_depth, parse_stream_kline, parse_stream_trades
from collector.store.history import save_pushed_trades, save_stream_klines

log = logging.getLogger(__name__)
BACKOFF_FIRST, BACKOFF_CAP = 0.5, 30.0  # seconds between attempts to reopen a connection
RATE_SECONDS = 60  # messages per second are counted over this window
CHANGES_KEPT = 10_000
FOLLOW_SECONDS = 5.0  # the connections follow expiries at least this often
REPLAN_AFTER = 0.5  # seconds: connections changing state together cause one re-plan of REST
STATES = ("up", "connecting", "backoff")


@dataclass
class Connection:
    """One combined connection: its streams, what they carry, and its state."""

    names: tuple[str, ...]
    routes: dict[str, ws.Route]
    state: str = "connecting"
    up_since: float | None = None
    failures: int = 0  # attempts to open it that failed in a row
    recent: deque = field(default_factory=lambda: deque(maxlen=RATE_SECONDS + 1))  # [second, count]
    task: asyncio.Task | None = None

    @property
    def beats(self) -> bool:
        """It carries a stream pushed every second (a kline, a book), whatever the market does."""
        return any(r.kind != ws.TRADE for r in self.routes.values())

    @property
    def symbols(self) -> set[str]:
        return {r.symbol for r in self.routes.values()}

    def count(self, now: float) -> None:
        second = int(now)
        if self.recent and self.recent[-1][0] == second:
            self.recent[-1][1] += 1
        else:
            self.recent.append([second, 1])

    def rate(self, now: float) -> float:
        since = int(now) - RATE_SECONDS
        return sum(n for s, n in self.recent if s >= since) / RATE_SECONDS


@dataclass
class PushStats:
    """The one source of the push figures (metrics, /healthz, the log and collector status)."""

    # trades by the source that stored them first: push; REST for a symbol not pushed then; REST
    # repairing what push missed while the symbol's stream was up
    first_seen: dict[str, int] = field(default_factory=lambda: {"push": 0, "rest": 0, "repair": 0})
    reconnects: int = 0
    stalls: int = 0
    unreadable: int = 0

    def repaired_share(self) -> float | None:
        """Of the trades made while their symbol's stream was up, the share REST had to store."""
        total = self.first_seen["push"] + self.first_seen["repair"]
        return self.first_seen["repair"] / total if total else None


class Push:
    """The daemon's connections to the push streams, kept matching the symbols it follows."""

    def __init__(self, ctx: LiveContext, on_change=None) -> None:
        """``on_change()``: which symbols are pushed changed (the REST schedule re-plans). The
        connections have a session of their own (closed by ``close``), apart from REST's."""
        self.ctx, self.on_change = ctx, on_change
        self.session = ws.stream_session()
        s = ctx.settings
        self.base = s.push_url()
        self.kinds = [k for k in s.push if k in s.streams and k != "account"]  # the account: userstream.py
        self.levels = s.depth_limit if s.depth_limit in ws.PUSH_LEVELS else None
        if "depth" in self.kinds and self.levels is None:
            log.info("depth is polled, not pushed: depth_limit %d is not a pushed book (5, 10, 20)", s.depth_limit)
            self.kinds.remove("depth")
        self.conns: dict[tuple[str, ...], Connection] = {}
        self.user: UserStream | None = None  # the account's user data stream, when followed
        self.stats = PushStats()
        ctx.push_stats, ctx.push = self.stats, self
        self._trades: list[Trade] = []
        self._klines: dict[tuple[str, str], StreamKline] = {}
        self._depth: dict[str, DepthSnapshot] = {}
        self._depth_stored: dict[str, float] = {}
        self._wake = asyncio.Event()  # klines or books arrived
        self._wake_trades = asyncio.Event()  # trades arrived
        self._writer: asyncio.Task | None = None
        self._trade_writer: asyncio.Task | None = None
        self._follower: asyncio.Task | None = None
        self._replan: asyncio.TimerHandle | None = None
        self._closed = False
        # (host time, symbols, "up" or "down") of the connections' changes, newest last: when each
        # symbol's trades were followed by push (the benchmarks' reconnect repair times)
        self.changes: deque[tuple[float, frozenset[str], str]] = deque(maxlen=CHANGES_KEPT)
        self._lost: set[str] = set()  # symbols whose trades stream was up once and went down

    # ---- the plan of connections ----------------------------------------------------------
    def groups(self) -> list[tuple[str, list[str]]]:
        """Each trading symbol's stream names, in symbol order (an expired symbol's streams fall
        silent: its final sweep is REST's)."""
        ctx = self.ctx
        out = []
        for symbol in ctx.trading():
            names = []
            if "trades" in self.kinds:
                names.append(ws.trade_stream(symbol))
            if "klines" in self.kinds:
                names.extend(ws.kline_stream(symbol, iv) for iv in ctx.settings.kline_intervals)
            if "depth" in self.kinds and self.levels is not None:
                names.append(ws.depth_stream(symbol, self.levels))
            out.append((symbol, names[: ws.MAX_STREAMS]))
        return out

    def replan(self) -> None:
        """Open the connections the symbols need, close the ones no longer needed. A connection
        whose symbols are all still followed is kept as it is; the symbols of one that lost any
        (expired, delisted, handed to another collector) and the new ones are packed into new
        connections: a change of symbols reopens only the connections it touches."""
        if self._closed or not self.kinds:
            return
        wanted = dict(self.groups())
        self._lost &= wanted.keys()
        kept: set[str] = set()
        for key, conn in list(self.conns.items()):
            mine = conn.symbols
            if all(s in wanted and set(wanted[s]) <= set(conn.names) for s in mine):
                kept |= mine
            else:
                self._drop(self.conns.pop(key))
        for names in ws.pack((s, n) for s, n in wanted.items() if s not in kept):
            routes = {n: _route(s, n) for s, ns in wanted.items() for n in ns if n in names}
            conn = Connection(names, routes)
            conn.task = asyncio.get_running_loop().create_task(self._run(conn), name=f"push {names[0]}")
            self.conns[names] = conn
        if self._writer is None:
            loop = asyncio.get_running_loop()
            self._writer = loop.create_task(self._write_books(), name="push writer")
            self._trade_writer = loop.create_task(self._write_trades(), name="push trades writer")
            self._follower = loop.create_task(self._follow(), name="push follower")
        self._gauges()

    async def _follow(self) -> None:
        """Symbols expire between refreshes: the plan follows every FOLLOW_SECONDS."""
        while True:
            await asyncio.sleep(FOLLOW_SECONDS)
            self.replan()

    def start(self) -> None:
        self.replan()
        if self.kinds:
            log.info(
                "push: %s of %d symbols on %d connections to %s",
                ", ".join(self.kinds),
                len(self.groups()),
                len(self.conns),
                self.base,
            )

    async def close(self) -> None:
        self._closed = True
        if self._replan is not None:
            self._replan.cancel()
        tasks = [c.task for c in self.conns.values() if c.task is not None]
        for conn in list(self.conns.values()):
            self._drop(conn)
        self.conns.clear()
        for task in (self._writer, self._trade_writer, self._follower):
            if task is not None:
                task.cancel()
                tasks.append(task)
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(CollectorError):  # what arrived is stored
            await asyncio.to_thread(self._store_all)
        if self.user is not None:
            await self.user.close()
            self.user = None
        await self.session.close()

    def _drop(self, conn: Connection) -> None:
        if conn.task is not None:
            conn.task.cancel()
        self._down(conn)

    # ---- one connection -----------------------------------------------------------------------
    async def _run(self, conn: Connection) -> None:
        s = self.ctx.settings
        delay = BACKOFF_FIRST
        while True:
            conn.state = "connecting"
            self._gauges()
            reason = "closed"
            try:
                async for msg in ws.messages(
                    self.session,
                    self.base,
                    conn.names,
                    # only a stream pushed every second can be silent for too long; trades may just be quiet
                    stall=s.stream_stall_seconds if conn.beats else math.inf,
                    lifetime=s.stream_renew_seconds,
                    on_open=lambda: self._up(conn),
                ):
                    conn.count(msg.received)
                    self._dispatch(conn, msg)
                    delay = BACKOFF_FIRST
            except ws.StreamRenewal:
                reason = "renewed"
            except ws.StreamStalled:
                reason = "stalled"
                self.stats.stalls += 1
            except CollectorError as exc:
                reason = "closed" if conn.up_since is not None else "failed"
                conn.failures = 0 if reason == "closed" else conn.failures + 1
                # said when it goes down and when it keeps failing (1st, 10th, 100th...), not on every try
                quiet = reason == "failed" and math.log10(conn.failures) % 1 != 0
                log.log(
                    logging.DEBUG if quiet else logging.WARNING,
                    "push connection %s… %s: %s; its symbols are polled meanwhile",
                    conn.names[0],
                    "lost" if reason == "closed" else f"not open (attempt {conn.failures})",
                    exc,
                )
            was_up = conn.up_since is not None
            self._down(conn)
            self.stats.reconnects += 1
            metrics.PUSH_RECONNECTS.labels(reason).inc()
            if reason == "renewed":
                continue  # at once: its symbols are confirmed by REST as after any reconnect
            if reason == "stalled":
                log.warning(
                    "push connection %s… stalled (nothing for %gs); reopening", conn.names[0], s.stream_stall_seconds
                )
            conn.state = "backoff"
            self._gauges()
            await asyncio.sleep(delay * random.uniform(0.8, 1.2) if not was_up else BACKOFF_FIRST * random.random())
            delay = min(BACKOFF_CAP, delay * 2)

    def _up(self, conn: Connection) -> None:
        """Connected: its symbols' trades are confirmed by REST from their checkpoints now (what
        happened while it was down), and followed by push from here."""
        now = self.ctx.clock()
        conn.state, conn.up_since = "up", now
        self.changes.append((now, frozenset(conn.symbols), "up"))
        for route in conn.routes.values():
            if route.kind == ws.TRADE:
                self.ctx.push_up[route.symbol] = now
                if route.symbol in self._lost:  # a reconnect: what it missed is due at once
                    self.ctx.push_back[route.symbol] = now
            elif route.kind == ws.DEPTH:
                self.ctx.depth_pushed.add(route.symbol)
        self._gauges()
        self._changed()

    def _down(self, conn: Connection) -> None:
        if conn.up_since is None:
            return
        conn.up_since = None
        self.changes.append((self.ctx.clock(), frozenset(conn.symbols), "down"))
        for route in conn.routes.values():
            if route.kind == ws.TRADE:
                self.ctx.push_up.pop(route.symbol, None)
                self._lost.add(route.symbol)
            elif route.kind == ws.DEPTH:
                self.ctx.depth_pushed.discard(route.symbol)
        self._gauges()
        self._changed()

    def _changed(self) -> None:
        """Which symbols are pushed changed: the REST plan follows (their weight goes elsewhere),
        once for all the connections that changed within REPLAN_AFTER seconds."""
        if self.on_change is None or self._closed or self._replan is not None:
            return

        def replan() -> None:
            self._replan = None
            if not self._closed:
                self.on_change()

        self._replan = asyncio.get_running_loop().call_later(REPLAN_AFTER, replan)

    def _gauges(self) -> None:
        counts = dict.fromkeys(STATES, 0)
        for c in self.conns.values():
            counts[c.state] += 1
        for state, n in counts.items():
            metrics.PUSH_CONNECTIONS.labels(state).set(n)

    # ---- messages -------------------------------------------------------------------------------
    def _dispatch(self, conn: Connection, msg: ws.Message) -> None:
        route = conn.routes.get(msg.stream) if msg.error is None else None
        if route is None:
            self._unreadable(conn, msg.error or f"a message of stream {msg.stream!r}, not subscribed")
            return
        metrics.PUSH_MESSAGES.labels(route.kind).inc()
        try:
            if route.kind == ws.TRADE:
                self._trades.extend(parse_stream_trades(msg.data, route.symbol))
                self._wake_trades.set()
                return
            elif route.kind == ws.KLINE:
                k = parse_stream_kline(msg.data, route.symbol, route.interval)
                self._klines[(k.symbol, k.interval)] = k  # the newest of each wins
            else:
                captured = datetime.fromtimestamp(msg.received, UTC)
                self._depth[route.symbol] = parse_stream_depth(msg.data, route.symbol, captured)
        except ParseError as exc:
            self._unreadable(conn, str(exc))
            return
        self._wake.set()

    def _unreadable(self, conn: Connection, why: str) -> None:
        self.stats.unreadable += 1
        metrics.PUSH_MESSAGES.labels("unreadable").inc()
        log.warning("push connection %s…: a message could not be read (%s); REST repairs it", conn.names[0], why)

    async def _write_trades(self) -> None:
        """Store the trades that arrived, as soon as the previous write is done: one transaction
        for all pushed meanwhile. Apart from the books and klines, whose writes (every symbol's
        book in the same second, once a minute) must not hold the trades back."""
        while True:
            await self._wake_trades.wait()
            self._wake_trades.clear()
            trades, self._trades = self._trades, []
            try:
                await self.ctx.db(_store_trades, self.ctx.engine, trades, self.stats)
            except CollectorError as exc:
                # Lost from push only: REST's confirmation stores them from the checkpoint.
                log.warning("push: could not store %d trades (%s); REST will", len(trades), exc)

    async def _write_books(self) -> None:
        """Store the open klines and, at their cadence, the books that arrived."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            klines, depth = self._take_books()
            try:
                await self.ctx.db(self._store_books, klines, depth)
            except CollectorError as exc:
                log.warning("push: could not store klines and books (%s); REST's polls will", exc)
                continue
            for d in depth:
                self.ctx.mark_caught_up("depth", d.symbol, d.captured_at.timestamp())

    def _take_books(self) -> tuple[list[StreamKline], list[DepthSnapshot]]:
        """What arrived since the last write (on the event loop: the messages keep coming)."""
        klines, self._klines = list(self._klines.values()), {}
        now = self.ctx.clock()
        cadence = self.ctx.settings.depth_poll_seconds
        depth = [d for sym, d in self._depth.items() if now - self._depth_stored.get(sym, -1e18) >= cadence]
        for d in depth:
            self._depth_stored[d.symbol] = now
            del self._depth[d.symbol]
        return klines, depth

    def _store_books(self, klines: list[StreamKline], depth: list[DepthSnapshot]) -> None:
        if klines:
            save_stream_klines(self.ctx.engine, klines)
            metrics.ROWS_UPSERTED.labels("klines").inc(len(klines))
        for d in depth:
            store_depth(self.ctx.engine, d, self.levels)

    def _store_all(self) -> None:
        """At close: whatever arrived and is not stored yet."""
        trades, self._trades = self._trades, []
        if trades:
            _store_trades(self.ctx.engine, trades, self.stats)
        self._store_books(*self._take_books())

    # ---- state, for /healthz and collector status -------------------------------------------------
    def down_intervals(self) -> list[tuple[str, float, float]]:
        """(symbol, seen down, back up), host time, of every connection kept in ``changes`` that
        went down and came back up: the windows REST's repair after a reconnect answers for."""
        down: dict[str, float] = {}
        out = []
        for at, symbols, what in self.changes:
            for s in symbols:
                if what == "down":
                    down.setdefault(s, at)
                elif s in down:
                    out.append((s, down.pop(s), at))
        return out

    def state(self) -> dict:
        now = time.time()
        return {
            "at": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "url": self.base,
            "streams": self.kinds,
            "connections": {state: sum(1 for c in self.conns.values() if c.state == state) for state in STATES},
            "symbols": len({s for c in self.conns.values() for s in c.symbols}),
            "messages_per_second": round(sum(c.rate(now) for c in self.conns.values()), 2),
            "reconnects": self.stats.reconnects,
            "stalls": self.stats.stalls,
            "unreadable": self.stats.unreadable,
            "trades_first_seen": dict(self.stats.first_seen),
            "repaired_share": self.stats.repaired_share(),
            "down": sorted(c.names[0].split("@")[0] for c in self.conns.values() if c.state != "up"),
            "account": self.user.state() if self.user is not None else None,
        }


def _route(symbol: str, name: str) -> ws.Route:
    _, _, stream = name.partition("@")
    if stream == ws.TRADE:
        return ws.Route(symbol, ws.TRADE)
    if stream.startswith(ws.KLINE + "_"):
        return ws.Route(symbol, ws.KLINE, stream.removeprefix(ws.KLINE + "_"))
    return ws.Route(symbol, ws.DEPTH)


def _store_trades(engine: Engine, trades: list[Trade], stats: PushStats) -> None:
    written = save_pushed_trades(engine, trades)
    stats.first_seen["push"] += written
    metrics.TRADES_FIRST_SEEN.labels("push").inc(written)
    metrics.ROWS_UPSERTED.labels("trades").inc(len(trades))
    newest: dict[str, float] = {}
    for t in trades:
        newest[t.symbol] = max(newest.get(t.symbol, 0.0), t.time.timestamp())
    for symbol, at in newest.items():
        metrics.NEWEST_ROW.labels("trades", "", symbol).set(at)
