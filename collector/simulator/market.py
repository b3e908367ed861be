"""The simulated market: a pure, deterministic function of (seed, time).

- Symbol k (k = 0, 1, ...) is listed at k * I and expires at (k + symbols) * I, I being the listing
  interval; names follow the real ones: underlying + MMDD of expiry + CALL/PUT + optional W
  (plus a counter only when two slots would share a name). The chain market (``chain``) lists the
  slots in groups of G = 2 x strikes, one chain of one underlying and expiry, at g * G * I, all
  expiring S * I later; its options are priced off moving underlyings and trade unevenly.
- Trades of symbol k in minute m come from an RNG seeded by (seed, k, m), so any minute of history
  is the same whenever the simulator started. Trade ids are time-major across ALL symbols:
  id = (t - ID_EPOCH) * 4S + (k mod S) * 4 + n, n numbering trades of one symbol in one millisecond
  (S + G in place of S for chains: that many consecutive slots may trade at once).
  Ids increase with time, are unique (the S trading symbols have distinct k mod S), have gaps per
  symbol, and give the time back (useful to check a bisection).
- Prices are integers in ticks of 0.0001, quantities integers, so every aggregate is exact.
- Per symbol, completed minutes are folded into arrays (OHLC, sums, carried close) so klines of any
  interval and 24h statistics are a few slices away.
"""

from __future__ import annotations

import json
import math
import random
from array import array
from collections import OrderedDict
from datetime import UTC, datetime

from collector.simulator import chain
from collector.simulator.config import SimConfig
from collector.simulator.wire import (
    BOOK_FMT,
    PRICE_FMT,
    TICKER_24HR_FMT,
    TICKER_24HR_KEYS,
    TICKS,
    fmt_pct4,
    fmt_ratio8,
    fmt_ticks,
    kline_json,
)

MINUTE = 60_000
DAY = 86_400_000
ID_EPOCH = 1_546_300_800_000  # 2019-01-01T00:00:00Z
_WEEK_OFFSET = 4 * DAY  # 1970-01-05 was a Monday
_NO_LOW = 1 << 62

INTERVALS: dict[str, int] = {
    "1m": MINUTE,
    "3m": 3 * MINUTE,
    "5m": 5 * MINUTE,
    "15m": 15 * MINUTE,
    "30m": 30 * MINUTE,
    "1h": 60 * MINUTE,
    "2h": 120 * MINUTE,
    "4h": 240 * MINUTE,
    "6h": 360 * MINUTE,
    "12h": 720 * MINUTE,
    "1d": DAY,
    "3d": 3 * DAY,
    "1w": 7 * DAY,
}

UNDERLYINGS = (("BTC", 9000.0), ("ETH", 180.0), ("EOS", 3.5), ("LTC", 60.0), ("BNB", 20.0))
_KINDS = (("CALL", False), ("PUT", False), ("CALL", True), ("PUT", True))


def interval_open(interval_ms: int, t: int) -> int:
    """Open time of the kline containing t: epoch-aligned, weeks on Monday 00:00 UTC."""
    if interval_ms == 7 * DAY:
        return (t - _WEEK_OFFSET) // interval_ms * interval_ms + _WEEK_OFFSET
    return t // interval_ms * interval_ms


class Option:
    """Static description of one option symbol (slot k)."""

    __slots__ = (
        "expiry",
        "is_call",
        "k",
        "listing",
        "name",
        "period1",
        "period2",
        "phase1",
        "phase2",
        "premium0",
        "rate",
        "silent",
        "spot0",
        "spot_phase",
        "strike",
        "underlying",
        "weekly",
    )

    def __init__(self, k: int, name: str, rng: random.Random, cfg: SimConfig, interval_ms: int) -> None:
        self.k = k
        self.name = name
        self.underlying, self.spot0 = UNDERLYINGS[k % len(UNDERLYINGS)]
        kind, self.weekly = _KINDS[(k // len(UNDERLYINGS)) % len(_KINDS)]
        self.is_call = kind == "CALL"
        self.listing = k * interval_ms
        self.expiry = (k + cfg.symbols) * interval_ms
        self.strike = int(self.spot0 * rng.uniform(0.85, 1.15) * TICKS)  # ticks
        self.premium0 = max(20.0, self.spot0 * rng.uniform(0.01, 0.08) * TICKS)
        self.rate = cfg.trades_per_minute * rng.uniform(0.4, 1.6)
        self.silent = rng.random() < cfg.silent_share
        self.phase1 = rng.uniform(0, 2 * math.pi)
        self.phase2 = rng.uniform(0, 2 * math.pi)
        self.period1 = rng.uniform(3, 30) * 3_600_000
        self.period2 = rng.uniform(5, 60) * MINUTE
        self.spot_phase = rng.uniform(0, 2 * math.pi)

    def fair_ticks(self, t: int) -> float:
        return self.premium0 * (
            1.0
            + 0.3 * math.sin(2 * math.pi * t / self.period1 + self.phase1)
            + 0.08 * math.sin(2 * math.pi * t / self.period2 + self.phase2)
        )

    def spot_ticks(self, t: int) -> int:
        return int(self.spot0 * TICKS * (1.0 + 0.05 * math.sin(2 * math.pi * t / (36 * 3_600_000) + self.spot_phase)))

    def rate_at(self, m: int) -> float:
        """Mean trades per minute in minute m."""
        return self.rate

    book_div = 400  # the book's price step: the price / this


class ChainOption(Option):
    """An option of a chain (market "chain"): priced off its underlying's path, active near the money
    and near expiry, in bursts, and quiet for long stretches (see ``chain``)."""

    __slots__ = ("boosts", "quiet_key", "strike_f", "und", "vol")
    book_div = 60  # options trade on wider books than the slot model's

    def __init__(
        self,
        k: int,
        name: str,
        rng: random.Random,
        cfg: SimConfig,
        listing: int,
        expiry: int,
        und: chain.Underlying,
        strike: float,
        is_call: bool,
        weekly: bool,
    ) -> None:
        self.k, self.name, self.und = k, name, und
        self.underlying, self.vol = und.name, und.vol
        self.is_call, self.weekly = is_call, weekly
        self.listing, self.expiry = listing, expiry
        self.strike_f = strike
        self.strike = round(strike * TICKS)
        self.spot0 = und.price(listing)
        self.rate = cfg.trades_per_minute * math.exp(rng.gauss(0.0, 0.4))
        self.silent = rng.random() < cfg.silent_share
        self.quiet_key = chain._key(cfg.seed, k, 4)
        self.boosts = tuple((a, b, f) for name_, a, b, f in cfg.boosts if name_ == name)
        self.premium0 = self.phase1 = self.phase2 = self.period1 = self.period2 = self.spot_phase = 0.0

    def fair_ticks(self, t: int) -> float:
        spot = self.und.price(t)
        vol = chain.smile(self.vol, spot, self.strike_f)
        value = chain.black_scholes(spot, self.strike_f, (self.expiry - t) / chain.YEAR_MS, vol, self.is_call)
        return max(1.0, value * TICKS)

    def spot_ticks(self, t: int) -> int:
        return int(self.und.price(t) * TICKS)

    def rate_at(self, m: int) -> float:
        t = m * MINUTE + 30_000
        x = math.log(self.und.price(t) / self.strike_f)  # log-moneyness
        near_money = math.exp(-0.5 * (x / 0.04) ** 2)
        money = 0.03 + near_money
        near_expiry = 0.15 + 3.85 * math.exp(-max(0.0, self.expiry - t) / (2 * 86_400_000))  # the last days
        awake = random.Random(self.quiet_key ^ (m // chain.QUIET_BLOCK)).random() < 0.1 + 0.8 * near_money
        rate = self.rate * money * near_expiry * self.und.burst(m) * (1.0 if awake else 0.02)
        for a, b, factor in self.boosts:
            if a <= t < b:
                rate *= factor
        return rate


class _Series:
    """Per-symbol aggregates of completed minutes m0 + i (arrays grow lazily)."""

    __slots__ = ("c", "carry", "first_open", "h", "l", "m0", "n", "o", "qv", "tbq", "tbv", "v")

    def __init__(self, m0: int) -> None:
        self.m0 = m0
        self.o = array("q")
        self.h = array("q")
        self.l = array("q")
        self.c = array("q")  # noqa: E702
        self.v = array("q")
        self.qv = array("q")
        self.n = array("q")  # noqa: E702
        self.tbv = array("q")
        self.tbq = array("q")
        self.carry = array("q")  # noqa: E702


# A trade is a tuple (id, price_ticks, qty, time_ms, buyer_maker).
Trade = tuple[int, int, int, int, bool]


class Market:
    """Ground truth of the simulated exchange. Pure: every answer depends on (config, arguments)."""

    def __init__(self, cfg: SimConfig, start_ms: int | None = None) -> None:
        import time

        self.cfg = cfg
        anchor = (
            start_ms
            if start_ms is not None
            else (cfg.start_ms if cfg.start_ms is not None else int(time.time() * 1000))
        )
        self.history_start = (anchor - int(cfg.history_days * DAY)) // MINUTE * MINUTE
        self.interval_ms = int(cfg.listing_interval_s * 1000)
        self.lifetime_ms = cfg.symbols * self.interval_ms
        self.grace_ms = int(cfg.grace_s * 1000)
        # Slots are listed in groups (a chain: calls and puts of one expiry at several strikes, listed
        # and expiring together) of `group` slots every group x interval; the slot model's group is 1.
        self.chain = cfg.market == "chain"
        self.group = 2 * cfg.strikes if self.chain else 1
        self._group_ms = self.group * self.interval_ms
        # Ids are unique when the symbols trading at once have distinct k mod _id_slots: at most
        # symbols + group - 1 consecutive slots trade at once.
        self._id_slots = cfg.symbols if self.group == 1 else cfg.symbols + self.group
        self._id_mult = 4 * self._id_slots
        self._underlyings = [chain.Underlying(cfg.seed, i, u) for i, (u, _) in enumerate(UNDERLYINGS)]
        self._options: dict[int, Option] = {}
        self._by_name: dict[str, Option] = {}
        self._series: dict[int, _Series] = {}
        self._trade_cache: OrderedDict[tuple[int, int], list[Trade]] = OrderedDict()
        # Caches of values that can no longer change (closed minutes, closed klines); all bounded.
        self._mid_cache: dict[tuple[int, int, int], tuple | None] = {}  # (k, i, j) -> series fold
        self._depth_cache: dict[int, tuple] = {}  # k -> (key, bids, asks)
        self._kline_cache: OrderedDict[tuple[int, int], list[str]] = OrderedDict()  # closed rows, JSON
        self._kline_cache_max = 4 * len(INTERVALS) * (cfg.symbols + 8)

    # ---- symbols -------------------------------------------------------------------------
    def _option(self, k: int) -> Option:
        opt = self._options.get(k)
        if opt is None:
            rng = random.Random((self.cfg.seed << 40) ^ (k << 1) ^ 0x5EED)
            if self.chain:
                opt = self._chain_option(k, rng)
            else:
                opt = Option(k, self._name(k), rng, self.cfg, self.interval_ms)
            self._options[k] = opt
            self._by_name[opt.name] = opt
        return opt

    def _chain_option(self, k: int, rng: random.Random) -> ChainOption:
        g, j = divmod(k, self.group)
        listing = g * self._group_ms
        expiry = listing + self.lifetime_ms
        und = self._underlyings[g % len(UNDERLYINGS)]
        weekly = g % 2 == 1
        strikes = chain.strikes_around(und.price(listing), und.step_share, self.cfg.strikes)
        strike, is_call = strikes[j // 2], j % 2 == 0
        kind = "CALL" if is_call else "PUT"
        base = (
            und.name + datetime.fromtimestamp(expiry / 1000, tz=UTC).strftime("%m%d") + kind + ("W" if weekly else "")
        )
        # Several strikes share a base name, and so may another chain of the same underlying and
        # weekly flag expiring that day: number them (such groups recur every 10).
        cycle = 2 * len(UNDERLYINGS)
        day = expiry // DAY
        first_g = -(-(day * DAY - self.lifetime_ms) // self._group_ms)  # first group expiring that day
        first_g += (g - first_g) % cycle
        n = (g - first_g) // cycle * self.cfg.strikes + j // 2
        name = base if n == 0 else f"{base}{n + 1}"
        return ChainOption(k, name, rng, self.cfg, listing, expiry, und, strike, is_call, weekly)

    def _name(self, k: int) -> str:
        u = UNDERLYINGS[k % len(UNDERLYINGS)][0]
        kind, weekly = _KINDS[(k // len(UNDERLYINGS)) % len(_KINDS)]
        expiry = (k + self.cfg.symbols) * self.interval_ms
        day = expiry // DAY
        base = u + datetime.fromtimestamp(expiry / 1000, tz=UTC).strftime("%m%d") + kind + ("W" if weekly else "")
        # Slots sharing this base name: same k mod 20, expiry on the same UTC day.
        cycle = len(UNDERLYINGS) * len(_KINDS)
        kmin = -(-(day * DAY - self.lifetime_ms) // self.interval_ms)  # first slot expiring that day
        first = kmin + ((k - kmin) % cycle)
        n = (k - first) // cycle
        return base if n == 0 else f"{base}{n + 1}"

    def _slots(self, now_ms: int, grace: bool = True) -> range:
        """Slots listed at now (trading, plus expired within the grace period if grace)."""
        back = self.lifetime_ms + (self.grace_ms if grace else 0)
        g_hi = now_ms // self._group_ms  # listed: g*G*I <= now
        g_lo = (now_ms - back) // self._group_ms + 1  # not gone: g*G*I + S*I + grace > now
        return range(max(g_lo, 0) * self.group, (g_hi + 1) * self.group)

    def listed(self, now_ms: int) -> list[Option]:
        return [self._option(k) for k in self._slots(now_ms)]

    def listed_symbols(self, now_ms: int) -> list[str]:
        return [o.name for o in self.listed(now_ms)]

    def lookup(self, symbol: str, now_ms: int) -> Option | None:
        """The option named symbol if it is listed at now_ms."""
        opt = self._by_name.get(symbol)
        if opt is None:
            self.listed(now_ms)  # names are created lazily
            opt = self._by_name.get(symbol)
        if opt is None or not (opt.listing <= now_ms < opt.expiry + self.grace_ms):
            return None
        return opt

    def option(self, symbol: str) -> Option:
        """The option named symbol, listed or not (ground truth helpers take names)."""
        opt = self._by_name.get(symbol)
        if opt is None:
            import time

            span = self.lifetime_ms + self.grace_ms
            lo = max(0, (self.history_start - span) // self.interval_ms)
            hi = (int(time.time() * 1000) + DAY) // self.interval_ms
            for k in range(lo, hi + 1):
                self._option(k)
            opt = self._by_name.get(symbol)
        if opt is None:
            raise KeyError(symbol)
        return opt

    def status(self, opt: Option, now_ms: int) -> str:
        return "TRADING" if now_ms < opt.expiry else "EXPIRED"

    def option_info(self, now_ms: int) -> list[dict]:
        out = []
        for o in self.listed(now_ms):
            release = o.k % 3 == 0
            out.append(
                {
                    "symbol": o.name,
                    "status": self.status(o, now_ms),
                    "type": "LONGS" if o.is_call else "SHORTS",
                    "exertionTime": o.expiry,
                    "optionDesc": "www.jex.com",
                    "canRelease": release,
                    "releaseOption": {
                        "convertRatio": 0.1,
                        "assetMarginName": o.underlying,
                        "rateMargin": 0.1,
                        "rateBase": 1,
                        "assetBaseName": "JEX",
                    }
                    if release
                    else None,
                }
            )
        return out

    def exchange_symbols(self, now_ms: int) -> list[dict]:
        return [
            {
                "symbol": o.name,
                "status": self.status(o, now_ms),
                "baseAsset": o.name,
                "baseAssetPrecision": 0,
                "quoteAsset": "USDT",
                "quotePrecision": 4,
                "orderTypes": ["LIMIT"],
                "icebergAllowed": False,
                "filters": [
                    {"filterType": "PRICE_FILTER", "maxPrice": "100000"},
                    {"filterType": "LOT_SIZE", "minQty": "1.00000000"},
                ],
            }
            for o in self.listed(now_ms)
        ]

    # ---- trades --------------------------------------------------------------------------
    def _trade_start(self, opt: Option) -> int:
        return max(opt.listing, self.history_start)

    def _minute_trades(self, opt: Option, m: int) -> list[Trade]:
        """All trades of opt in minute m (ascending id), cached."""
        key = (opt.k, m)
        cache = self._trade_cache
        got = cache.get(key)
        if got is not None:
            cache.move_to_end(key)
            return got
        got = self._generate(opt, m)
        cache[key] = got
        if len(cache) > self.cfg.trade_cache_buckets:
            cache.popitem(last=False)
        return got

    def _generate(self, opt: Option, m: int) -> list[Trade]:
        """The trades of opt in minute m. The RNG draws (their order included) define the market:
        keep them exactly as they are (expovariate(1.0) is inlined as -log(1 - random()))."""
        lo = max(m * MINUTE, self._trade_start(opt))
        hi = min((m + 1) * MINUTE, opt.expiry)
        rate = opt.rate_at(m)
        if opt.silent or lo >= hi or rate <= 0:
            return []
        rnd = random.Random((self.cfg.seed << 64) ^ (opt.k << 36) ^ m).random
        log = math.log
        mean_gap = MINUTE / rate
        times: list[int] = []
        add = times.append
        t = m * MINUTE + -log(1.0 - rnd()) * mean_gap
        end = (m + 1) * MINUTE
        while t < end:
            ti = int(t)
            add(ti)
            if rnd() < 0.12:  # a taker sweeping several levels: same millisecond
                add(ti)
                if rnd() < 0.3:
                    add(ti)
            t += -log(1.0 - rnd()) * mean_gap
        trades: list[Trade] = []
        keep = trades.append
        base = (opt.k % self._id_slots) * 4 - ID_EPOCH * self._id_mult
        mult = self._id_mult
        whole = lo == m * MINUTE and hi == end
        prev = -1
        seq = 0
        fair = opt.fair_ticks(m * MINUTE + 30_000)
        for ti in times:
            if ti == prev:
                seq += 1
                if seq > 3:
                    continue
            else:
                prev, seq = ti, 0
            price = int(fair * (1.0 + 0.004 * (rnd() + rnd() + rnd() - 1.5)))
            qty = 1 + int(rnd() * rnd() * 60)
            bm = rnd() < 0.5
            if whole or lo <= ti < hi:
                keep((ti * mult + base + seq, price if price > 1 else 1, qty, ti, bm))
        return trades

    def _time_of_id(self, trade_id: int) -> int:
        return ID_EPOCH + trade_id // self._id_mult

    def _series_for(self, opt: Option, upto_minute: int) -> _Series:
        """Series of opt with minutes [m0, upto_minute) folded in (capped at expiry)."""
        s = self._series.get(opt.k)
        if s is None:
            s = _Series(self._trade_start(opt) // MINUTE)
            self._series[opt.k] = s
        last = min(upto_minute, (opt.expiry - 1) // MINUTE + 1)
        m = s.m0 + len(s.n)
        carry = s.carry[-1] if len(s.carry) else self.initial_price_ticks(opt)
        while m < last:
            tr = self._minute_trades(opt, m)
            if tr:
                hi = max(x[1] for x in tr)
                lo = min(x[1] for x in tr)
                v = qv = tbv = tbq = 0
                for _, p, q, _, bm in tr:
                    v += q
                    qv += p * q
                    if not bm:
                        tbv += q
                        tbq += p * q
                s.o.append(tr[0][1])
                s.h.append(hi)
                s.l.append(lo)
                s.c.append(tr[-1][1])  # noqa: E702
                s.v.append(v)
                s.qv.append(qv)
                s.n.append(len(tr))
                s.tbv.append(tbv)
                s.tbq.append(tbq)  # noqa: E702
                carry = tr[-1][1]
            else:
                s.o.append(0)
                s.h.append(0)
                s.l.append(_NO_LOW)
                s.c.append(0)  # noqa: E702
                s.v.append(0)
                s.qv.append(0)
                s.n.append(0)
                s.tbv.append(0)
                s.tbq.append(0)  # noqa: E702
            s.carry.append(carry)
            m += 1
        return s

    def initial_price_ticks(self, opt: Option) -> int:
        """Reference price before the first trade (carried by empty klines, tickers, depth)."""
        return max(1, int(opt.fair_ticks(self._trade_start(opt))))

    def initial_price(self, symbol: str) -> str:
        return fmt_ticks(self.initial_price_ticks(self.option(symbol)))

    def _trades_range(self, opt: Option, start: int, end: int) -> list[Trade]:
        start = max(start, self._trade_start(opt))
        end = min(end, opt.expiry)
        out: list[Trade] = []
        if start >= end:
            return out
        for m in range(start // MINUTE, (end - 1) // MINUTE + 1):
            tr = self._minute_trades(opt, m)
            if tr and (tr[0][3] < start or tr[-1][3] >= end):
                out.extend(x for x in tr if start <= x[3] < end)
            else:
                out.extend(tr)
        return out

    def trades(self, symbol: str, start_ms: int, end_ms: int) -> list[dict]:
        """Ground truth: all trades with start <= time < end, ascending id."""
        return [
            {"id": i, "price": fmt_ticks(p), "qty": str(q), "time": t, "buyerMaker": bm}
            for i, p, q, t, bm in self._trades_range(self.option(symbol), start_ms, end_ms)
        ]

    def recent_trades(self, opt: Option, now_ms: int, limit: int) -> list[Trade]:
        """The `limit` most recent trades at now, newest first."""
        out: list[Trade] = []
        end = min(now_ms + 1, opt.expiry)
        start = self._trade_start(opt)
        if end <= start or opt.silent:
            return out
        m = (end - 1) // MINUTE
        s = self._series_for(opt, m)
        tr = self._minute_trades(opt, m)
        out.extend(x for x in reversed(tr) if x[3] < end)
        m -= 1
        n = s.n
        m0 = s.m0
        while len(out) < limit and m >= m0:
            if n[m - m0]:
                out.extend(reversed(self._minute_trades(opt, m)))
            m -= 1
        return out[:limit]

    def trades_from_id(self, opt: Option, from_id: int, now_ms: int, limit: int) -> list[Trade]:
        """Up to limit trades with id >= from_id and time <= now, oldest first."""
        out: list[Trade] = []
        end = min(now_ms + 1, opt.expiry)
        start = self._trade_start(opt)
        if opt.silent or end <= start:
            return out
        m = max(self._time_of_id(max(from_id, 0)), start) // MINUTE
        m_end = (end - 1) // MINUTE  # the minute holding `end - 1` may be partial
        s = self._series_for(opt, m_end)
        n, m0 = s.n, s.m0
        while m < m_end and len(out) < limit:
            if n[m - m0]:
                tr = self._minute_trades(opt, m)
                if tr[0][0] >= from_id:
                    out.extend(tr)
                else:
                    out.extend(x for x in tr if x[0] >= from_id)
            m += 1
        if len(out) < limit and m == m_end:
            out.extend(x for x in self._minute_trades(opt, m) if x[0] >= from_id and x[3] < end)
        return out[:limit]

    # ---- aggregates ----------------------------------------------------------------------
    def _stats(self, opt: Option, a: int, b: int) -> tuple | None:
        """(open, high, low, close, vol, qvol, count, tbv, tbq) of trades with a <= t < b, or None."""
        a = max(a, self._trade_start(opt))
        b = min(b, opt.expiry)
        if a >= b or opt.silent:
            return None
        fa = -(-a // MINUTE)
        fb = b // MINUTE
        if fa >= fb:  # within one or two partial minutes
            return _fold(self._trades_range(opt, a, b))
        head = self._trades_range(opt, a, fa * MINUTE) if a < fa * MINUTE else []
        tail = self._trades_range(opt, fb * MINUTE, b) if b > fb * MINUTE else []
        s = self._series_for(opt, fb)
        mid = self._mid(opt.k, s, fa - s.m0, fb - s.m0)
        parts: list[tuple] = [p for p in (_fold(head), mid, _fold(tail)) if p is not None]
        if len(parts) < 2:
            return parts[0] if parts else None
        o, h, lo, c, v, qv, n, tbv, tbq = parts[0]
        for p in parts[1:]:
            if p[1] > h:
                h = p[1]
            if p[2] < lo:
                lo = p[2]
            c = p[3]
            v += p[4]
            qv += p[5]
            n += p[6]
            tbv += p[7]
            tbq += p[8]
        return (o, h, lo, c, v, qv, n, tbv, tbq)

    def _mid(self, k: int, s: _Series, i: int, j: int) -> tuple | None:
        """Fold of the closed minutes i..j-1 of series s (immutable once folded: cached)."""
        key = (k, i, j)
        if key in self._mid_cache:
            return self._mid_cache[key]
        cnt = sum(s.n[i:j])
        if cnt:
            n = s.n
            first = i
            while not n[first]:
                first += 1
            got = (
                s.o[first],
                max(s.h[i:j]),
                min(s.l[i:j]),
                s.carry[j - 1],
                sum(s.v[i:j]),
                sum(s.qv[i:j]),
                cnt,
                sum(s.tbv[i:j]),
                sum(s.tbq[i:j]),
            )
        else:
            got = None
        if len(self._mid_cache) >= 8192:
            self._mid_cache.clear()
        self._mid_cache[key] = got
        return got

    def last_price_ticks(self, opt: Option, before: int) -> int:
        """Price of the last trade with time < before (the initial price if none)."""
        start = self._trade_start(opt)
        before = min(before, opt.expiry)
        if before <= start or opt.silent:
            return self.initial_price_ticks(opt)
        m = (before - 1) // MINUTE
        for x in reversed(self._minute_trades(opt, m)):
            if x[3] < before:
                return x[1]
        s = self._series_for(opt, m)
        i = m - 1 - s.m0
        return s.carry[i] if i >= 0 else self.initial_price_ticks(opt)

    def kline_rows(self, opt: Option, interval: str, now_ms: int) -> tuple[int, int, int]:
        """(interval_ms, first_open, last_open) of the klines opt has at now (last < first if none)."""
        iv = INTERVALS[interval]
        start = self._trade_start(opt)
        end = min(now_ms, opt.expiry - 1)
        if end < start:
            return iv, 0, -1
        return iv, interval_open(iv, start), interval_open(iv, end)

    def kline(self, opt: Option, iv: int, open_time: int, now_ms: int) -> list:
        end = min(open_time + iv, now_ms + 1)
        st = self._stats(opt, open_time, end)
        if st is None:
            c = fmt_ticks(self.last_price_ticks(opt, open_time))
            return [open_time, c, c, c, c, "0", open_time + iv - 1, "0.0000", 0, "0", "0.0000", "0"]
        o, h, lo, c, v, qv, n, tbv, tbq = st
        return [
            open_time,
            fmt_ticks(o),
            fmt_ticks(h),
            fmt_ticks(lo),
            fmt_ticks(c),
            str(v),
            open_time + iv - 1,
            fmt_ticks(qv),
            n,
            str(tbv),
            fmt_ticks(tbq),
            "0",
        ]

    def klines_json(self, opt: Option, iv: int, lo: int, hi: int, now_ms: int) -> tuple[int, str]:
        """(row count, JSON array) of the klines with open times lo, lo + iv, ..., hi as served at now
        (lo >= the first kline of opt). Closed klines come from a per-(symbol, interval) cache of
        rendered rows; only a kline still open at now is computed."""
        if hi < lo:
            return 0, "[]"
        first = interval_open(iv, self._trade_start(opt))
        closed_hi = min(hi, (now_ms + 1 - iv - first) // iv * iv + first)  # t + iv <= now + 1
        rows = self._closed_klines(opt, iv, first, closed_hi) if closed_hi >= lo else []
        a = (lo - first) // iv
        b = (closed_hi - first) // iv + 1 if closed_hi >= lo else a
        parts = rows[a:b]
        t = lo + (b - a) * iv
        while t <= hi:  # still open (normally only the current kline)
            parts.append(json.dumps(self.kline(opt, iv, t, now_ms), separators=(",", ":")))
            t += iv
        return len(parts), "[" + ",".join(parts) + "]"

    def _closed_klines(self, opt: Option, iv: int, first: int, upto: int) -> list[str]:
        """Rendered klines of opt with open times first, first + iv, ..., at least up to upto (all
        closed: upto + iv <= now + 1), from the cache, extended as needed."""
        key = (opt.k, iv)
        cache = self._kline_cache
        rows = cache.get(key)
        if rows is None:
            rows = cache[key] = []
            if len(cache) > self._kline_cache_max:
                cache.popitem(last=False)
        else:
            cache.move_to_end(key)
        t = first + len(rows) * iv
        if t > upto:
            return rows
        start = self._trade_start(opt)
        r = iv // MINUTE
        s = self._series_for(opt, (upto + iv) // MINUTE)
        m0 = s.m0
        n, o, h, low, c, carry = s.n, s.o, s.h, s.l, s.c, s.carry
        v, qv, tbv, tbq = s.v, s.qv, s.tbv, s.tbq
        expiry = opt.expiry
        append = rows.append
        while t <= upto:
            if t < start or t + iv > expiry or opt.silent:  # edges: the reference computation
                append(json.dumps(self.kline(opt, iv, t, t + iv - 1), separators=(",", ":")))
                t += iv
                continue
            i = t // MINUTE - m0
            if r == 1:
                if n[i]:
                    append(kline_json(t, iv, o[i], h[i], low[i], c[i], v[i], qv[i], n[i], tbv[i], tbq[i]))
                else:
                    p = carry[i - 1] if i else self.initial_price_ticks(opt)
                    append(kline_json(t, iv, p, p, p, p, 0, 0, 0, 0, 0))
            else:
                j = i + r
                cnt = sum(n[i:j])
                if cnt:
                    f = i
                    while not n[f]:
                        f += 1
                    append(
                        kline_json(
                            t,
                            iv,
                            o[f],
                            max(h[i:j]),
                            min(low[i:j]),
                            carry[j - 1],
                            sum(v[i:j]),
                            sum(qv[i:j]),
                            cnt,
                            sum(tbv[i:j]),
                            sum(tbq[i:j]),
                        )
                    )
                else:
                    p = carry[i - 1] if i else self.initial_price_ticks(opt)
                    append(kline_json(t, iv, p, p, p, p, 0, 0, 0, 0, 0))
            t += iv
        return rows

    def klines(self, symbol: str, interval: str, start_ms: int, end_ms: int, now_ms: int) -> list[list]:
        """Ground truth: kline rows with start <= open_time < end, as served at now."""
        opt = self.option(symbol)
        iv, first, last = self.kline_rows(opt, interval, now_ms)
        out = []
        t = max(first, interval_open(iv, start_ms))
        if t < start_ms:
            t += iv
        while t <= last and t < end_ms:
            out.append(self.kline(opt, iv, t, now_ms))
            t += iv
        return out

    def avg_price(self, opt: Option, now_ms: int) -> str:
        st = self._stats(opt, now_ms - 5 * MINUTE + 1, now_ms + 1)
        if st is None:
            return fmt_ratio8(self.last_price_ticks(opt, now_ms + 1), 1)
        return fmt_ratio8(st[5], st[4])

    def depth(self, opt: Option, now_ms: int) -> tuple[int, list[tuple[int, int]], list[tuple[int, int]]]:
        """(lastUpdateId, bids, asks) with up to 60 levels a side; empty book once expired."""
        uid = (now_ms - ID_EPOCH) // 100
        if now_ms >= opt.expiry:
            return uid, [], []
        last = self.last_price_ticks(opt, now_ms + 1)
        key = (now_ms // 1000, last)  # the book is a function of these: reuse it within the second
        got = self._depth_cache.get(opt.k)
        if got is not None and got[0] == key:
            return uid, got[1], got[2]
        bids, asks = self._book(opt, now_ms, last)
        if len(self._depth_cache) > 4 * (self.cfg.symbols + 8):
            self._depth_cache.clear()
        self._depth_cache[opt.k] = (key, bids, asks)
        return uid, bids, asks

    def _book(self, opt: Option, now_ms: int, last: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        rng = random.Random((self.cfg.seed << 64) ^ (opt.k << 36) ^ (now_ms // 1000) ^ 0xD)
        step = max(1, last // opt.book_div)
        bids: list[tuple[int, int]] = []
        asks: list[tuple[int, int]] = []
        p = last - 1 - int(rng.random() * step)
        for _ in range(rng.randint(30, 60)):
            if p <= 0:
                break
            bids.append((p, 1 + int(rng.random() * 400)))
            p -= 1 + int(rng.random() * step)
        p = last + 1 + int(rng.random() * step)
        for _ in range(rng.randint(30, 60)):
            asks.append((p, 1 + int(rng.random() * 400)))
            p += 1 + int(rng.random() * step)
        return bids, asks

    def ticker_24hr(self, opt: Option, now_ms: int) -> dict:
        return dict(zip(TICKER_24HR_KEYS, self._ticker_24hr_values(opt, now_ms), strict=False))

    def ticker_24hr_json(self, opt: Option, now_ms: int) -> str:
        """ticker_24hr as compact JSON (same bytes as json.dumps of the dict)."""
        return TICKER_24HR_FMT % self._ticker_24hr_values(opt, now_ms)

    def _ticker_24hr_values(self, opt: Option, now_ms: int) -> tuple:
        st = self._stats(opt, now_ms - DAY + 1, now_ms + 1)
        last = self.last_price_ticks(opt, now_ms + 1)
        _, bids, asks = self.depth(opt, now_ms)
        if st is None:
            o = h = lo = last
            v = qv = 0
        else:
            o, h, lo, _, v, qv = st[:6]
        change = last - o
        settled = now_ms >= opt.expiry
        spot = opt.spot_ticks(min(now_ms, opt.expiry))
        perform = max(0, spot - opt.strike) if opt.is_call else max(0, opt.strike - spot)
        return (  # in TICKER_24HR_KEYS order
            opt.name,
            fmt_ticks(change) if change >= 0 else "-" + fmt_ticks(-change),
            fmt_pct4(change, o),
            fmt_ratio8(qv, v) if v else "0.00000000",
            fmt_ticks(last),
            fmt_ticks(bids[0][0]) if bids else "0.0000",
            str(bids[0][1]) if bids else "0",
            fmt_ticks(asks[0][0]) if asks else "0.0000",
            str(asks[0][1]) if asks else "0",
            fmt_ticks(o),
            fmt_ticks(h),
            fmt_ticks(lo),
            str(v),
            fmt_ticks(qv),
            now_ms - DAY,
            now_ms,
            opt.expiry,
            fmt_ticks(perform) if settled else "0.0000",
            fmt_ticks(spot),
            fmt_ticks(opt.strike),
        )

    def book_ticker_json(self, opt: Option, now_ms: int) -> str:
        """{"symbol", "bidPrice", "bidQty", "askPrice", "askQty"} of the best levels, compact JSON."""
        _, bids, asks = self.depth(opt, now_ms)
        return BOOK_FMT % (
            opt.name,
            fmt_ticks(bids[0][0]) if bids else "0.0000",
            bids[0][1] if bids else 0,
            fmt_ticks(asks[0][0]) if asks else "0.0000",
            asks[0][1] if asks else 0,
        )

    def price_ticker_json(self, opt: Option, now_ms: int) -> str:
        """{"symbol", "price"}: the last price at now, compact JSON."""
        return PRICE_FMT % (opt.name, fmt_ticks(self.last_price_ticks(opt, now_ms + 1)))


def _fold(trades: list[Trade]) -> tuple | None:
    if not trades:
        return None
    v = qv = tbv = tbq = 0
    hi, lo = 0, _NO_LOW
    for _, p, q, _, bm in trades:
        v += q
        qv += p * q
        if p > hi:
            hi = p
        if p < lo:
            lo = p
        if not bm:
            tbv += q
            tbq += p * q
    return (trades[0][1], hi, lo, trades[-1][1], v, qv, len(trades), tbv, tbq)
