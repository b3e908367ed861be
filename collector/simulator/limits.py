"""Rate limits as JEX/Binance enforce them, and the counters the simulator keeps.

Per client IP: request weight in fixed 1-minute windows aligned to the clock minute, raw request
count in fixed 5-minute windows. Past a limit: 429 with Retry-After up to the window's end. A client
that keeps sending while told to wait (`ban_after` such requests) is banned: 418 until the ban ends,
bans doubling from `ban_base_s` up to `ban_max_s`. Requests received during a ban are refused
without counting weight and without extending the ban.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

WEIGHT_WINDOW = 60_000  # JEX: a minute (SimConfig.weight_window_s may shorten it)
RAW_WINDOW = 300_000
QUERIES_KEPT = 100_000  # requests whose parameters Stats.queries keeps


class Clock:
    """The simulator's "now" in ms: wall clock + offset, or a frozen value tests move by hand."""

    def __init__(self, offset_ms: int = 0) -> None:
        self.offset_ms = offset_ms
        self._frozen: int | None = None

    def now_ms(self) -> int:
        if self._frozen is not None:
            return self._frozen
        return int(time.time() * 1000) + self.offset_ms

    def __int__(self) -> int:
        return self.now_ms()

    def freeze(self, at_ms: int | None = None) -> None:
        self._frozen = self.now_ms() if at_ms is None else at_ms

    def advance(self, ms: int) -> None:
        """Move time forward (frozen clock: by exactly ms; running clock: via the offset)."""
        if self._frozen is not None:
            self._frozen += ms
        else:
            self.offset_ms += ms

    def unfreeze(self) -> None:
        if self._frozen is not None:
            self.offset_ms = self._frozen - int(time.time() * 1000)
        self._frozen = None


@dataclass
class Stats:
    """Counters of what was served. weight[ip][window_start_ms] is the weight used in that minute."""

    requests: int = 0
    by_endpoint: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    by_symbol: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # requests naming it
    by_endpoint_symbol: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    weight: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    raw: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    status_429: int = 0
    status_418: int = 0
    while_limited: int = 0  # requests received while told to wait or banned
    bans: int = 0
    faults: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    rows: int = 0  # trades + klines rows served
    # The latest requests' endpoint and parameters (for tests that check what was asked for)
    queries: deque[tuple[str, dict[str, str]]] = field(default_factory=lambda: deque(maxlen=QUERIES_KEPT))
    # Web sockets (streams.py, userstream.py)
    ws_opened: int = 0  # connections upgraded
    ws_open: int = 0  # connections open now
    ws_refused: int = 0  # stream requests answered 400 before the upgrade
    ws_messages: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # data messages by stream kind
    ws_closed: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # server closes by reason
    ws_drops: int = 0  # injected: connections dropped
    ws_stalls: int = 0  # injected: stalls begun
    ws_dups: int = 0  # injected: messages sent twice
    ws_reorders: int = 0  # injected: messages swapped / user-stream ticks shuffled
    listen_keys_created: int = 0

    def as_dict(self) -> dict:
        return {
            "requests": self.requests,
            "byEndpoint": dict(self.by_endpoint),
            "bySymbol": dict(self.by_symbol),
            "weight": {ip: {str(k): v for k, v in w.items()} for ip, w in self.weight.items()},
            "raw": {ip: {str(k): v for k, v in w.items()} for ip, w in self.raw.items()},
            "status429": self.status_429,
            "status418": self.status_418,
            "whileLimited": self.while_limited,
            "bans": self.bans,
            "faults": dict(self.faults),
            "rows": self.rows,
            "wsOpened": self.ws_opened,
            "wsOpen": self.ws_open,
            "wsRefused": self.ws_refused,
            "wsMessages": dict(self.ws_messages),
            "wsClosed": dict(self.ws_closed),
            "wsDrops": self.ws_drops,
            "wsStalls": self.ws_stalls,
            "wsDups": self.ws_dups,
            "wsReorders": self.ws_reorders,
            "listenKeysCreated": self.listen_keys_created,
        }


@dataclass
class _Client:
    wait_until: int = 0  # told to wait (429) until then
    waiting_hits: int = 0
    banned_until: int = 0
    ban_count: int = 0


class Verdict:
    __slots__ = ("banned_until", "retry_after_s", "status", "used_weight")

    def __init__(self, status: int, used_weight: int, retry_after_s: int = 0, banned_until: int = 0) -> None:
        self.status = status
        self.used_weight = used_weight
        self.retry_after_s = retry_after_s
        self.banned_until = banned_until


class Limiter:
    def __init__(
        self,
        stats: Stats,
        weight_limit: int | None,
        raw_limit: int | None,
        ban_base_ms: int,
        ban_max_ms: int,
        ban_after: int,
        weight_window_ms: int = WEIGHT_WINDOW,
    ) -> None:
        self.stats = stats
        self.weight_window = weight_window_ms
        self.weight_limit = weight_limit or 0
        self.raw_limit = raw_limit or 0
        self.ban_base_ms = ban_base_ms
        self.ban_max_ms = ban_max_ms
        self.ban_after = max(1, ban_after)
        self._clients: dict[str, _Client] = {}

    def ban(self, ip: str, until_ms: int) -> None:
        """Ban ``ip`` until ``until_ms`` as if it had earned it (tests: a ban of days, at once)."""
        c = self._clients.setdefault(ip, _Client())
        c.banned_until = until_ms
        c.wait_until = 0

    def used(self, ip: str, now: int) -> int:
        w = self.stats.weight.get(ip)
        return w.get(now - now % self.weight_window, 0) if w else 0

    def admit(self, ip: str, weight: int, now: int) -> Verdict:
        """Account one request; status 200 means serve it, else 429/418."""
        wstart = now - now % self.weight_window
        if not self.weight_limit:
            # Limits lifted: still count, so headers and stats stay meaningful.
            wmap = self.stats.weight[ip]
            used = wmap[wstart] = wmap[wstart] + weight
            return Verdict(200, used)
        c = self._clients.get(ip)
        if c is None:
            c = self._clients[ip] = _Client()
        wmap = self.stats.weight[ip]
        if now < c.banned_until:
            self.stats.while_limited += 1
            self.stats.status_418 += 1
            return Verdict(418, wmap.get(wstart, 0), -(-(c.banned_until - now) // 1000), c.banned_until)
        if now < c.wait_until:
            self.stats.while_limited += 1
            c.waiting_hits += 1
            if c.waiting_hits >= self.ban_after:
                ban = min(self.ban_base_ms * (2**c.ban_count), self.ban_max_ms)
                c.ban_count += 1
                c.banned_until = now + ban
                c.wait_until = 0
                c.waiting_hits = 0
                self.stats.bans += 1
                self.stats.status_418 += 1
                return Verdict(418, wmap.get(wstart, 0), -(-ban // 1000), c.banned_until)
            self.stats.status_429 += 1
            return Verdict(429, wmap.get(wstart, 0), -(-(c.wait_until - now) // 1000))
        c.waiting_hits = 0
        wmap[wstart] += weight
        rstart = now - now % RAW_WINDOW
        rmap = self.stats.raw[ip]
        rmap[rstart] += 1
        used = wmap[wstart]
        until = 0
        if used > self.weight_limit:
            until = wstart + self.weight_window
        if self.raw_limit and rmap[rstart] > self.raw_limit:
            until = max(until, rstart + RAW_WINDOW)
        if until:
            c.wait_until = until
            self.stats.status_429 += 1
            return Verdict(429, used, max(1, -(-(until - now) // 1000)))
        return Verdict(200, used)
