"""The simulator's web-socket streams (JEX-STREAMS-NOTES.md), served on the same aiohttp app as REST.

    ws://host:port/ws/<streamName>             raw: every payload sent bare
    ws://host:port/stream?streams=<a>/<b>/...  combined: every payload sent as {"stream": "<a>", "data": ...}
    ws://host:port/ws/<listenKey>              the user data stream (`userstream`; also allowed in /stream)

This module owns the connections (`StreamHub`, `Conn`) and the market streams; `userstream` owns the
listenKeys and the user stream's events.

**Names** are checked BEFORE the upgrade; a bad request is answered HTTP 400 with a JSON body
``{"code", "msg"}`` and no web socket: -1121 an unknown or malformed stream name, or a symbol not
listed; -1120 a kline interval not known; -1100 a symbol not in lower case (streams name
``btc0925call@optionTrade``); -1101 more than ``SimConfig.max_streams`` (10) streams; -1102
``/stream`` without ``streams``; -1125 a name without ``@`` that is no live listenKey. A plain GET
(no upgrade) of a valid name is answered 426. A name given twice in one ``streams`` is one
subscription.

**Streams** (symbols as REST spells them in payloads; E = the simulated time of the push):

- ``<symbol>@optionTrade``: every ``trade_push_ms`` (real time), if any trade happened since the last
  push, one message: an array of ``{e: "optionTrade", E, s, t: id, p, q, T, m}`` ascending by id. The
  trades are the market's own (``Market._trades_range``: ids are historicalTrades' ids); a push at
  ``now`` sends those with ``last <= T < now`` (a trade at ``now`` itself goes with the next push), the
  first push starting at the moment of subscription: every trade exactly once, in id order.
- ``<symbol>@optionKline_<interval>``, intervals as the stream writes them (``1M 5M 15M 30M 1H 4H 1D
  1W``: capital M = minutes) or as REST does (``1m``, ``1h``...): every ``push_s``, the kline open at
  now, ``{e: "optionKline", E, s, k: {t, T, s, i: REST spelling, o, c, h, l, v, q}}``: the values of
  REST's last kline at that moment; no trade count, no taker volumes, no closed flag.
- ``<symbol>@optionMiniTicker`` ``{e: "24hrOptionMiniTicker", E, s, c, h, l, o, v, q}`` and
  ``<symbol>@optionTicker`` ``{e: "24hrOptionTicker", E, s, p, P, c, h, l, v, q, O, C}``: every
  ``push_s``, REST ticker/24hr's values at that moment (``FaultConfig.frozen_prices`` included).
  ``!optionMiniTicker@arr`` and ``!optionTicker@arr``: arrays of those, of the trading symbols whose
  values (E, O and C aside) changed since this connection's last push: all on the first; nothing is
  sent when none changed.
- ``<symbol>@optionDepth5|10|20``: every ``push_s``, ``{bids: [[p, q]...], asks: ...}``: the book of
  the current depth version (below), as REST depth would return it with that limit.
- ``<symbol>@optionDepth``: diffs ``{e: "optionDepthUpdate", E, s, v, b: [[p, q]...], a: ...}``.

A symbol that expires stops producing events (a per-symbol stream falls silent; the ``@arr`` ones
carry trading symbols only); the connection stays open.

**Depth versions** (the rule): the book changes once per simulated second. Version
``v = (t - ID_EPOCH) // 1000`` (ID_EPOCH = 2019-01-01T00:00:00Z, so v is a count of seconds, the same
for every symbol); the book of version v is ``Market.depth`` at ``ID_EPOCH + 1000 v``, the start of
that second. REST depth at ``now`` answers ``lastUpdateId = v(now)`` with book(v(now)) (an empty book
once the option has expired). The diff with version v holds every level that differs between
book(v - 1) and book(v): ``[price, qty]`` with the new quantity, ``[price, "0"]`` for a level gone;
bids by descending, asks by ascending price; E is the version's time. Each connection sends every
version once, in order, starting with v(subscription) itself, one message per version (a push after
the clock moved n seconds sends n of them), up to the last version before expiry. So: take a REST
snapshot (lastUpdateId U), drop diffs with v <= U, apply U + 1, U + 2, ...; a jump in v is a gap
(resync from REST). The server makes gaps itself when more than ``MAX_DIFF_CATCHUP`` versions are
due at once (a clock jump: only the newest is sent) and when a stall swallowed versions. (REST
ticker/24hr and bookTicker still quote ``Market.depth`` at now: within a second, after a trade, their
best bid and ask may differ from the versioned book's.)

**Connections.** Time is the simulator's clock (``Clock``; simulated ms): the server pings every
``ping_s``; a ping left without any pong for ``pong_timeout_s`` closes the connection (any pong
counts, unsolicited ones too); the client's pings are answered at once; every connection is closed
``lifetime_s`` after it opened. Pushes are paced in real time (asyncio.sleep); with a frozen clock
nothing new happens until the clock moves. Server closes send a close frame, code 1000 and the reason
as text (1001 when the simulator stops).

**Faults** (``FaultConfig``; data messages only, never pings; drawn from a per-connection RNG seeded
from the simulator's seed and the connection's number, so a run is repeatable):
``numbers_as_json_rate`` prices and quantities as JSON numbers; ``ws_dup_rate`` a message sent
twice; ``ws_reorder_rate`` a message held back and sent right after the connection's next one
(lost if the connection ends first; user stream: the events of one push shuffled instead);
``ws_drop_s`` mean simulated seconds between abrupt drops (the transport is cut, no close frame);
``ws_stall_s``/``ws_stall_len_s`` stalls: for that long nothing is sent (pings still answered), and
what happened meanwhile (trades, depth versions, user events with E inside the stall) is never sent:
the stream resumes from then on, as a broken feed would.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from collector.simulator.config import FaultConfig, SimConfig
from collector.simulator.faults import numbers_as_json
from collector.simulator.limits import Clock, Stats
from collector.simulator.market import ID_EPOCH, INTERVALS, Market, Option, interval_open
from collector.simulator.wire import fmt_ticks

log = logging.getLogger("collector.simulator")

DEPTH_STEP_MS = 1000  # one depth version per simulated second
MAX_DIFF_CATCHUP = 60  # more versions due at once: only the newest is sent (a gap)
PARTIAL_LEVELS = (5, 10, 20)
CLOSE_TIMEOUT_S = 5.0  # how long a server close waits for the client's close frame
STALL_HORIZON_MS = 3_600_000  # stalls further back than this behind a clock jump are not drawn
_SYMBOL_RE = re.compile(r"^[A-Za-z0-9\-_.]{1,20}$")
_JSON_CT = "application/json;charset=UTF-8"


def depth_version(now_ms: int) -> int:
    """The depth version (REST lastUpdateId, diff stream v) at ``now_ms``."""
    return (now_ms - ID_EPOCH) // DEPTH_STEP_MS


def version_time(v: int) -> int:
    """The simulated time whose book is version v's."""
    return ID_EPOCH + v * DEPTH_STEP_MS


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _levels(levels: list[tuple[int, int]]) -> list[list[str]]:
    return [[fmt_ticks(p), str(q)] for p, q in levels]


class StreamError(Exception):
    """A stream request refused before the upgrade: (HTTP status, code, message)."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


# A poll's messages: (stats kind, payload JSON text).
Messages = list[tuple[str, str]]
Stalled = Callable[[int], bool]


class Subscription:
    """One stream of a connection. ``poll(now, stalled)`` returns the messages due at now."""

    kind = ""  # the Stats.ws_messages key
    fast = False  # polled every trade_push_ms, else every push_s
    shuffle = False  # the reorder fault shuffles one poll's messages instead of holding one back

    def __init__(self, hub: StreamHub, name: str) -> None:
        self.hub, self.name = hub, name
        self.conn: Conn | None = None
        self.polled = 0  # simulated time of the last poll

    def attach(self, conn: Conn) -> None:
        self.conn = conn
        self.polled = conn.opened

    def detach(self) -> None:
        pass

    def close_reason(self, now: int) -> str | None:
        """Why the connection must close now (user stream: its listenKey is gone), or None."""
        return None

    def poll(self, now: int, stalled: Stalled) -> Messages:
        raise NotImplementedError


class _SymbolSub(Subscription):
    def __init__(self, hub: StreamHub, name: str, opt: Option) -> None:
        super().__init__(hub, name)
        self.opt = opt


class TradeSub(_SymbolSub):
    kind, fast = "trade", True

    def attach(self, conn: Conn) -> None:
        super().attach(conn)
        self.cursor = conn.opened  # trades with T >= cursor are still to be pushed

    def poll(self, now: int, stalled: Stalled) -> Messages:
        if now <= self.cursor:
            return []
        rows = self.hub.market._trades_range(self.opt, self.cursor, now)  # cursor <= T < now
        self.cursor = now
        name = self.opt.name
        items = [
            f'{{"e":"optionTrade","E":{now},"s":"{name}","t":{i},"p":"{fmt_ticks(p)}","q":"{q}","T":{t},'
            f'"m":{"true" if bm else "false"}}}'
            for i, p, q, t, bm in rows
            if not stalled(t)
        ]
        return [(self.kind, "[" + ",".join(items) + "]")] if items else []


class KlineSub(_SymbolSub):
    kind = "kline"

    def __init__(self, hub: StreamHub, name: str, opt: Option, interval: str) -> None:
        super().__init__(hub, name, opt)
        self.interval, self.iv = interval, INTERVALS[interval]

    def poll(self, now: int, stalled: Stalled) -> Messages:
        m, opt = self.hub.market, self.opt
        if now >= opt.expiry or now < m._trade_start(opt):
            return []
        row = m.kline(opt, self.iv, interval_open(self.iv, now), now)  # REST's last kline at now
        k = {
            "t": row[0],
            "T": row[6],
            "s": opt.name,
            "i": self.interval,
            "o": row[1],
            "c": row[4],
            "h": row[2],
            "l": row[3],
            "v": row[5],
            "q": row[7],
        }
        return [(self.kind, _dumps({"e": "optionKline", "E": now, "s": opt.name, "k": k}))]


def _mini(d: dict, now: int) -> dict:
    return {
        "e": "24hrOptionMiniTicker",
        "E": now,
        "s": d["symbol"],
        "c": d["lastPrice"],
        "h": d["highPrice"],
        "l": d["lowPrice"],
        "o": d["openPrice"],
        "v": d["volume"],
        "q": d["quoteVolume"],
    }


def _ticker(d: dict, now: int) -> dict:
    return {
        "e": "24hrOptionTicker",
        "E": now,
        "s": d["symbol"],
        "p": d["priceChange"],
        "P": d["priceChangePercent"],
        "c": d["lastPrice"],
        "h": d["highPrice"],
        "l": d["lowPrice"],
        "v": d["volume"],
        "q": d["quoteVolume"],
        "O": d["openTime"],
        "C": d["closeTime"],
    }


class TickerSub(_SymbolSub):
    def __init__(self, hub: StreamHub, name: str, opt: Option, mini: bool) -> None:
        super().__init__(hub, name, opt)
        self.render = _mini if mini else _ticker
        self.kind = "miniTicker" if mini else "ticker"

    def poll(self, now: int, stalled: Stalled) -> Messages:
        if now >= self.opt.expiry:
            return []
        return [(self.kind, _dumps(self.render(self.hub.ticker(self.opt, now), now)))]


class TickerArrSub(Subscription):
    def __init__(self, hub: StreamHub, name: str, mini: bool) -> None:
        super().__init__(hub, name)
        self.render = _mini if mini else _ticker
        self.kind = "miniTickerArr" if mini else "tickerArr"
        self.last: dict[int, tuple] = {}  # slot -> the values last sent

    def poll(self, now: int, stalled: Stalled) -> Messages:
        out, last = [], {}
        for opt in self.hub.market.listed(now):
            if now >= opt.expiry:
                continue
            payload = self.render(self.hub.ticker(opt, now), now)
            values = tuple(v for k, v in payload.items() if k not in ("E", "O", "C"))
            last[opt.k] = values
            if self.last.get(opt.k) != values:
                out.append(payload)
        self.last = last
        return [(self.kind, _dumps(out))] if out else []


class PartialDepthSub(_SymbolSub):
    kind = "depthPartial"

    def __init__(self, hub: StreamHub, name: str, opt: Option, levels: int) -> None:
        super().__init__(hub, name, opt)
        self.levels = levels

    def poll(self, now: int, stalled: Stalled) -> Messages:
        if now >= self.opt.expiry:
            return []
        bids, asks = self.hub.book(self.opt, depth_version(now))
        n = self.levels
        return [(self.kind, _dumps({"bids": _levels(bids[:n]), "asks": _levels(asks[:n])}))]


class DiffDepthSub(_SymbolSub):
    kind = "depthDiff"

    def attach(self, conn: Conn) -> None:
        super().attach(conn)
        self.last = depth_version(conn.opened) - 1  # the first push starts with the current version

    def poll(self, now: int, stalled: Stalled) -> Messages:
        opt = self.opt
        hi = depth_version(min(now, opt.expiry - 1))
        if hi <= self.last:
            return []
        lo = self.last + 1
        if hi - lo >= MAX_DIFF_CATCHUP:
            lo = hi
        self.last = hi
        out = []
        for v in range(lo, hi + 1):
            at = version_time(v)
            if stalled(at):
                continue
            b, a = self.hub.diff(opt, v)
            out.append((self.kind, _dumps({"e": "optionDepthUpdate", "E": at, "s": opt.name, "v": v, "b": b, "a": a})))
        return out


class ListenKeys(Protocol):
    """What the hub asks of the user streams (`userstream.UserStreams`; no import: it imports us)."""

    def subscription(self, key: str, now: int) -> Subscription: ...


class StreamHub:
    """Every open web socket of the simulator, and what their streams share (books, diffs, tickers)."""

    def __init__(
        self,
        market: Market,
        clock: Clock,
        cfg: SimConfig,
        stats: Stats,
        faults: Callable[[], FaultConfig],
    ) -> None:
        self.market, self.clock, self.cfg, self.stats, self.faults = market, clock, cfg, stats, faults
        self.user_streams: ListenKeys | None = None  # resolves names that are listenKeys
        self.conns: set[Conn] = set()
        self.opened = 0  # connections ever opened (numbers them: each has its own RNG)
        self._books: OrderedDict[tuple[int, int], tuple[list, list]] = OrderedDict()
        self._diffs: OrderedDict[tuple[int, int], tuple[list, list]] = OrderedDict()
        self._tickers: dict[tuple[int, int], dict] = {}
        self._tickers_now: int | None = None

    # ---- shared values ---------------------------------------------------------------------
    def book(self, opt: Option, v: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(bids, asks) of depth version v (see the module docstring)."""
        key = (opt.k, v)
        got = self._books.get(key)
        if got is None:
            _, bids, asks = self.market.depth(opt, version_time(v))
            got = self._books[key] = (bids, asks)
            if len(self._books) > 4096:
                self._books.popitem(last=False)
        return got

    def diff(self, opt: Option, v: int) -> tuple[list[list[str]], list[list[str]]]:
        """The levels that differ between book(v - 1) and book(v), rendered: (bids, asks)."""
        key = (opt.k, v)
        got = self._diffs.get(key)
        if got is None:
            (ob, oa), (nb, na) = self.book(opt, v - 1), self.book(opt, v)
            got = self._diffs[key] = (_side_diff(ob, nb, reverse=True), _side_diff(oa, na, reverse=False))
            if len(self._diffs) > 1024:
                self._diffs.popitem(last=False)
        return got

    def ticker(self, opt: Option, now: int) -> dict:
        """REST ticker/24hr of opt at now (as at its listing for a frozen symbol), memoised per now."""
        at = opt.listing if opt.name in self.faults().frozen_prices else now
        if self._tickers_now != now:
            self._tickers.clear()
            self._tickers_now = now
        key = (opt.k, at)
        got = self._tickers.get(key)
        if got is None:
            got = self._tickers[key] = self.market.ticker_24hr(opt, at)
        return got

    # ---- names -----------------------------------------------------------------------------
    def parse(self, name: str, now: int) -> Subscription:
        """The subscription a stream name asks for; raises StreamError."""
        if name in ("!optionMiniTicker@arr", "!optionTicker@arr"):
            return TickerArrSub(self, name, mini=name.startswith("!optionMini"))
        sym, at, stream = name.partition("@")
        if not at:
            if self.user_streams is not None and name.isascii() and name.isalnum():
                return self.user_streams.subscription(name, now)
            raise StreamError(400, -1121, f"Invalid stream name: {name!r}.")
        if not _SYMBOL_RE.match(sym):
            raise StreamError(400, -1121, f"Invalid stream name: {name!r}.")
        if sym != sym.lower():
            raise StreamError(400, -1100, f"Illegal characters in stream name {name!r}: symbols are lowercase.")
        opt = self.market.lookup(sym.upper(), now)
        if opt is None:
            raise StreamError(400, -1121, f"Invalid symbol in stream name {name!r}.")
        if stream == "optionTrade":
            return TradeSub(self, name, opt)
        if stream == "optionMiniTicker":
            return TickerSub(self, name, opt, mini=True)
        if stream == "optionTicker":
            return TickerSub(self, name, opt, mini=False)
        if stream == "optionDepth":
            return DiffDepthSub(self, name, opt)
        if stream.startswith("optionDepth") and stream[11:] in {str(n) for n in PARTIAL_LEVELS}:
            return PartialDepthSub(self, name, opt, int(stream[11:]))
        if stream.startswith("optionKline_"):
            iv = stream[12:]
            rest = iv.lower()  # 1M (stream: minutes) -> 1m, 1H -> 1h; REST spellings as they are
            if rest in INTERVALS and iv in (rest, rest[:-1] + rest[-1].upper()):
                return KlineSub(self, name, opt, rest)
            raise StreamError(400, -1120, f"Invalid interval in stream name {name!r}.")
        raise StreamError(400, -1121, f"Invalid stream name: {name!r}.")

    # ---- handlers --------------------------------------------------------------------------
    async def handle_raw(self, request: web.Request) -> web.StreamResponse:
        return await self._open(request, [request.match_info["name"]], combined=False)

    async def handle_combined(self, request: web.Request) -> web.StreamResponse:
        raw = request.query.get("streams")
        if not raw:
            return self._refuse(
                StreamError(400, -1102, "Mandatory parameter 'streams' was not sent, was empty/null, or malformed.")
            )
        return await self._open(request, list(dict.fromkeys(raw.split("/"))), combined=True)

    def _refuse(self, exc: StreamError) -> web.Response:
        self.stats.ws_refused += 1
        return web.Response(
            status=exc.status,
            body=_dumps({"code": exc.code, "msg": exc.msg}).encode(),
            headers={"Content-Type": _JSON_CT},
        )

    async def _open(self, request: web.Request, names: list[str], combined: bool) -> web.StreamResponse:
        now = self.clock.now_ms()
        try:
            if len(names) > self.cfg.max_streams:
                raise StreamError(
                    400, -1101, f"Too many streams: {len(names)}; at most {self.cfg.max_streams} per connection."
                )
            subs = [self.parse(n, now) for n in names]
        except StreamError as exc:
            return self._refuse(exc)
        ws = web.WebSocketResponse(autoping=False, timeout=CLOSE_TIMEOUT_S)
        if not ws.can_prepare(request).ok:
            return self._refuse(StreamError(426, -1, "This is a web-socket stream: upgrade the connection."))
        conn = Conn(self, request, ws, subs, combined, now)
        conn.open()  # counted, subscribed and scheduled before the client hears of the upgrade
        try:
            await ws.prepare(request)
        except BaseException:
            conn.finish()
            raise
        return await conn.run()

    async def close_all(self) -> None:
        """Close every open connection (the simulator stops): close frames, then cut what lingers."""
        conns = list(self.conns)
        tasks = [t for c in conns if (t := c.start_close(1001, "simulator stopping", "stop")) is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        for c in conns:
            c.cut()
        for _ in range(50):  # let the handlers finish
            if not self.conns:
                break
            await asyncio.sleep(0.01)


def _side_diff(old: list[tuple[int, int]], new: list[tuple[int, int]], reverse: bool) -> list[list[str]]:
    before, after = dict(old), dict(new)
    changed = [(p, q) for p, q in new if before.get(p) != q]
    changed += [(p, 0) for p in before if p not in after]
    changed.sort(reverse=reverse)
    return _levels(changed)


class Conn:
    """One web socket: its subscriptions, its timers, its faults."""

    def __init__(
        self,
        hub: StreamHub,
        request: web.Request,
        ws: web.WebSocketResponse,
        subs: list[Subscription],
        combined: bool,
        now: int,
    ) -> None:
        self.hub, self.request, self.ws, self.subs, self.combined = hub, request, ws, subs, combined
        self.opened = now
        self.index = hub.opened
        hub.opened += 1
        f = hub.faults()
        base = f.seed if f.seed is not None else hub.cfg.seed
        self.rng = random.Random(base * 1_000_003 + self.index * 7919 + 0x57EA)
        self.last_ping = now
        self.ping_out: int | None = None  # when the oldest unanswered ping was sent
        self.stalls: list[tuple[int, int]] = []  # [start, end) of the stalls drawn so far
        self._faults: FaultConfig | None = None  # the fault config the schedule below was drawn for
        self.next_drop: int | None = None  # simulated ms of the next drop (None: off)
        self.next_stall: int | None = None  # ... of the next stall's start
        self._held: list[tuple[str, str]] | None = None  # a message held back by the reorder fault
        self._closing: asyncio.Task | None = None
        self._dead = False

    # ---- life --------------------------------------------------------------------------------
    def open(self) -> None:
        st = self.hub.stats
        self.hub.conns.add(self)
        st.ws_opened += 1
        st.ws_open += 1
        self._schedule(self.opened)
        for sub in self.subs:
            sub.attach(self)

    def finish(self) -> None:
        self._dead = True
        for sub in self.subs:
            sub.detach()
        if self in self.hub.conns:
            self.hub.conns.discard(self)
            self.hub.stats.ws_open -= 1

    async def run(self) -> web.WebSocketResponse:
        pusher: asyncio.Task | None = None
        try:
            pusher = asyncio.get_running_loop().create_task(self._push_loop())
            while True:
                msg = await self.ws.receive()
                if msg.type is WSMsgType.PING:
                    try:
                        await self.ws.pong(msg.data)
                    except (ConnectionError, RuntimeError):
                        break
                elif msg.type is WSMsgType.PONG:
                    self.ping_out = None
                elif msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break  # CLOSE, CLOSING (we close), CLOSED, ERROR
        finally:
            self._dead = True
            if self._closing is not None:
                await asyncio.wait([self._closing], timeout=CLOSE_TIMEOUT_S + 1)
            if pusher is not None:
                pusher.cancel()
                try:
                    await pusher
                except asyncio.CancelledError:
                    pass
            self.finish()
        return self.ws

    def start_close(self, code: int, reason: str, kind: str) -> asyncio.Task | None:
        """Close with a close frame (in a task of its own: it waits for the client's answer)."""
        if self._closing is not None or self._dead:
            return self._closing
        self.hub.stats.ws_closed[kind] += 1
        self._closing = asyncio.get_running_loop().create_task(self._close(code, reason))
        return self._closing

    async def _close(self, code: int, reason: str) -> None:
        try:
            await self.ws.close(code=code, message=reason.encode())
        except Exception:  # noqa: BLE001 - the peer may be gone already
            pass

    def cut(self) -> None:
        """Cut the transport: no close frame (a drop, or what lingers when the simulator stops)."""
        self._dead = True
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    # ---- faults ------------------------------------------------------------------------------
    def _exp_ms(self, mean_s: float) -> int:
        return max(1, round(self.rng.expovariate(1.0 / mean_s) * 1000))

    def _schedule(self, now: int) -> None:
        f = self._faults = self.hub.faults()
        self.next_drop = now + self._exp_ms(f.ws_drop_s) if f.ws_drop_s > 0 else None
        self.next_stall = now + self._exp_ms(f.ws_stall_s) if f.ws_stall_s > 0 else None

    def _draw_stalls(self, now: int) -> None:
        f = self._faults
        assert f is not None
        if self.next_stall is not None and self.next_stall < now - STALL_HORIZON_MS:
            self.next_stall = now - STALL_HORIZON_MS + self._exp_ms(f.ws_stall_s)
        while self.next_stall is not None and self.next_stall <= now:
            start = self.next_stall
            end = start + max(1, round(f.ws_stall_len_s * 1000))
            self.stalls.append((start, end))
            self.hub.stats.ws_stalls += 1
            self.next_stall = end + self._exp_ms(f.ws_stall_s)

    def in_stall(self, t: int) -> bool:
        return any(a <= t < b for a, b in self.stalls)

    # ---- pushing -----------------------------------------------------------------------------
    async def _push_loop(self) -> None:
        try:
            await self._pushes()
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug: say so, and close rather than hang
            log.exception("web-socket push loop failed")
            self.start_close(1011, "internal error", "error")

    async def _pushes(self) -> None:
        cfg, clock = self.hub.cfg, self.hub.clock
        loop = asyncio.get_running_loop()
        fast_s, slow_s = cfg.trade_push_ms / 1000, cfg.push_s
        fast = [s for s in self.subs if s.fast]
        slow = [s for s in self.subs if not s.fast]
        next_fast = next_slow = loop.time()
        while not self._dead and self._closing is None:
            now = clock.now_ms()
            if not await self._keepalive(now):
                return
            t = loop.time()
            due: list[Subscription] = []
            if fast and t >= next_fast - 0.001:
                due += fast
                next_fast += fast_s
                if next_fast <= t:
                    next_fast = t + fast_s
            if slow and t >= next_slow - 0.001:
                due += slow
                next_slow += slow_s
                if next_slow <= t:
                    next_slow = t + slow_s
            if due and not self.in_stall(now):
                for sub in due:
                    if not await self._push(sub, now):
                        return
            if self.stalls:
                oldest = min(s.polled for s in self.subs)
                self.stalls = [w for w in self.stalls if w[1] > oldest]
            wake = min(next_fast if fast else t + fast_s, next_slow if slow else t + fast_s, t + fast_s)
            await asyncio.sleep(max(0.0, wake - loop.time()))

    async def _keepalive(self, now: int) -> bool:
        """Timers and connection faults; False when the connection is done."""
        cfg = self.hub.cfg
        if self._faults is not self.hub.faults():
            self._schedule(now)
        if self.next_drop is not None and now >= self.next_drop:
            self.hub.stats.ws_drops += 1
            self.cut()
            return False
        if now - self.opened >= cfg.lifetime_s * 1000:
            self.start_close(1000, "connection lifetime reached", "lifetime")
            return False
        if self.ping_out is not None and now - self.ping_out >= cfg.pong_timeout_s * 1000:
            self.start_close(1000, "no pong", "pong_timeout")
            return False
        for sub in self.subs:
            reason = sub.close_reason(now)
            if reason is not None:
                self.start_close(1000, reason, "listen_key")
                return False
        if now - self.last_ping >= cfg.ping_s * 1000:
            self.last_ping = now
            if self.ping_out is None:
                self.ping_out = now
            try:
                await self.ws.ping()
            except (ConnectionError, RuntimeError):
                return False
        if self.next_stall is not None:
            self._draw_stalls(now)
        return True

    async def _push(self, sub: Subscription, now: int) -> bool:
        msgs = sub.poll(now, self.in_stall)
        sub.polled = now
        f = self._faults
        assert f is not None
        rng = self.rng
        if sub.shuffle and len(msgs) > 1 and f.ws_reorder_rate and rng.random() < f.ws_reorder_rate:
            rng.shuffle(msgs)
            self.hub.stats.ws_reorders += 1
        for kind, payload in msgs:
            if not await self._send(sub, kind, payload, f):
                return False
        return True

    async def _send(self, sub: Subscription, kind: str, payload: str, f: FaultConfig) -> bool:
        st, rng = self.hub.stats, self.rng
        if f.numbers_as_json_rate and rng.random() < f.numbers_as_json_rate:
            payload = numbers_as_json(payload)
        text = f'{{"stream":{_dumps(sub.name)},"data":{payload}}}' if self.combined else payload
        out = [(kind, text)]
        if f.ws_dup_rate and rng.random() < f.ws_dup_rate:
            out.append((kind, text))
            st.ws_dups += 1
        if self._held is not None:
            out += self._held
            self._held = None
        elif not sub.shuffle and f.ws_reorder_rate and rng.random() < f.ws_reorder_rate:
            self._held = out  # sent after the next message
            st.ws_reorders += 1
            return True
        try:
            for k, m in out:
                st.ws_messages[k] += 1
                await self.ws.send_str(m)
        except (ConnectionError, RuntimeError):
            self._dead = True
            return False
        return True
