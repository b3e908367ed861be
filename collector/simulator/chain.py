"""The realistic market (``SimConfig.market = "chain"``): underlyings, option chains, prices, activity.

Everything is a pure function of (seed, time), like the rest of the market:

- **Underlyings** follow geometric Brownian motion with jumps. A day's log-return (and whether it
  holds a jump, of what size, at which minute) is drawn from (seed, underlying, day); summed from a
  fixed epoch, with a slow pull toward a reference price so that years stay plausible, they give
  each day's opening price. Within a day a Brownian bridge of per-minute
  steps, drawn from the same key, joins one opening to the next, the day's jump included.
- **Chains**: every listing lists ``2 x strikes`` options of one underlying and one expiry, a call
  and a put at each of ``strikes`` strikes around the money at the listing, all expiring together.
- **Prices**: Black-Scholes (no rates) of the underlying's price at the minute, with a volatility
  smile (higher for strikes away from the money) and a floor of one tick.
- **Activity**: a symbol's trade rate in a minute is the configured level times its own multiplier,
  times how close to the money it is and how close to expiry, times its underlying's bursts
  (clusters of trading decaying over minutes), and, most of the time for options far from the
  money, a quiet stretch: most trades happen on a few symbols, most symbols trade a few times an
  hour. ``SimConfig.boosts`` multiply chosen symbols' activity over a chosen span (a burst to test).
"""

from __future__ import annotations

import math
import random
from array import array
from collections import OrderedDict

MINUTE = 60_000
DAY = 86_400_000
YEAR_MS = 365.0 * DAY
EPOCH_DAY = 17_897  # 2019-01-01: daily returns are summed from here (earlier days: the start price)
DAY_MINUTES = 1440
QUIET_BLOCK = 90  # minutes: a symbol is quiet or awake for a block at a time
# underlying -> (price on EPOCH_DAY, annual volatility, strike step as a share of the price)
UNDERLYING_TERMS = {
    "BTC": (9000.0, 0.65, 0.025),
    "ETH": (180.0, 0.75, 0.03),
    "EOS": (3.5, 0.9, 0.04),
    "LTC": (60.0, 0.85, 0.035),
    "BNB": (20.0, 0.8, 0.035),
}
JUMP_DAY_SHARE = 0.04  # share of days with a jump
JUMP_SIGMA = 0.05  # its log size
REVERSION = 0.01  # per day, toward the reference price: years of history stay near it


def _key(*parts: int) -> int:
    """A seed for random.Random from integers (never hash(): strings hash differently per process)."""
    out = 0x9E3779B97F4A7C15
    for p in parts:
        out = (out * 0x100000001B3) ^ (p & 0xFFFFFFFFFFFFFFFF)
        out &= 0xFFFFFFFFFFFFFFFF
    return out


def _norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def black_scholes(spot: float, strike: float, tau_years: float, vol: float, is_call: bool) -> float:
    """The option's value (no rates, no dividends); the intrinsic value at or after expiry."""
    if tau_years <= 0 or vol <= 0 or spot <= 0:
        return max(0.0, spot - strike) if is_call else max(0.0, strike - spot)
    sd = vol * math.sqrt(tau_years)
    d1 = (math.log(spot / strike) + sd * sd / 2) / sd
    call = spot * _norm_cdf(d1) - strike * _norm_cdf(d1 - sd)
    return call if is_call else call - spot + strike


def smile(vol: float, spot: float, strike: float) -> float:
    """Implied volatility at a strike: higher away from the money, puts' side a little more."""
    x = math.log(strike / spot)
    return max(0.3 * vol, vol * (1.0 + 2.5 * x * x - 0.3 * x))


class Underlying:
    """One underlying's price path, in quote units (USDT)."""

    def __init__(self, seed: int, index: int, name: str) -> None:
        self.seed, self.index, self.name = seed, index, name
        self.price0, self.vol, self.step_share = UNDERLYING_TERMS[name]
        self._day_sigma = self.vol / math.sqrt(365.0)
        self._opens = [math.log(self.price0)]  # log price at the start of EPOCH_DAY + i
        self._paths: OrderedDict[int, array] = OrderedDict()
        self._bursts: OrderedDict[int, list[tuple[int, float, float]]] = OrderedDict()

    def _day(self, day: int) -> tuple[float, float, int]:
        """(diffusive log-return, jump, jump minute) of a day."""
        rnd = random.Random(_key(self.seed, self.index, day, 1)).random
        z = math.sqrt(-2.0 * math.log(1.0 - rnd())) * math.cos(2.0 * math.pi * rnd())
        ret = -(self._day_sigma**2) / 2 + self._day_sigma * z
        jump, at = 0.0, 0
        if rnd() < JUMP_DAY_SHARE:
            u = math.sqrt(-2.0 * math.log(1.0 - rnd())) * math.cos(2.0 * math.pi * rnd())
            jump, at = JUMP_SIGMA * u, int(rnd() * DAY_MINUTES)
        return ret, jump, at

    def log_open(self, day: int) -> float:
        i = day - EPOCH_DAY
        if i <= 0:
            return self._opens[0]
        opens = self._opens
        level = opens[0]
        while len(opens) <= i:
            ret, jump, _ = self._day(EPOCH_DAY + len(opens) - 1)
            opens.append(opens[-1] + REVERSION * (level - opens[-1]) + ret + jump)
        return opens[i]

    def _path(self, day: int) -> array:
        """Log prices at the day's minutes 0..1440 (the last is the next day's opening)."""
        got = self._paths.get(day)
        if got is not None:
            self._paths.move_to_end(day)
            return got
        a, b = self.log_open(day), self.log_open(day + 1)
        _, jump, at = self._day(day) if day >= EPOCH_DAY else (0.0, 0.0, 0)
        gauss = random.Random(_key(self.seed, self.index, day, 2)).gauss
        sigma = self._day_sigma / math.sqrt(DAY_MINUTES)
        walk = [0.0]
        for _ in range(DAY_MINUTES):
            walk.append(walk[-1] + gauss(0.0, sigma))
        end = walk[-1]
        drift = b - a - jump
        path = array(
            "d",
            (
                a + drift * i / DAY_MINUTES + (walk[i] - end * i / DAY_MINUTES) + (jump if i >= at and jump else 0.0)
                for i in range(DAY_MINUTES + 1)
            ),
        )
        self._paths[day] = path
        if len(self._paths) > 64:
            self._paths.popitem(last=False)
        return path

    def price(self, t: int) -> float:
        """The price at t (ms), linear between minutes."""
        day, ms = divmod(t, DAY)
        path = self._path(day)
        i, frac = divmod(ms / MINUTE, 1.0)
        i = int(i)
        return math.exp(path[i] + (path[i + 1] - path[i]) * frac)

    def burst(self, m: int) -> float:
        """Activity multiplier of the underlying at minute m: 1 plus decaying clusters."""
        out = 1.0
        hour = m // 60
        for h in (hour - 2, hour - 1, hour):
            for start, size, decay in self._hour_bursts(h):
                if start <= m:
                    out += size * math.exp(-(m - start) / decay)
        return out

    def _hour_bursts(self, hour: int) -> list[tuple[int, float, float]]:
        got = self._bursts.get(hour)
        if got is None:
            rnd = random.Random(_key(self.seed, self.index, hour, 3)).random
            n = 0 if (r := rnd()) < 0.55 else (1 if r < 0.9 else 2)
            got = [(hour * 60 + int(rnd() * 60), 2.0 + 6.0 * rnd(), 2.0 + 5.0 * rnd()) for _ in range(n)]
            self._bursts[hour] = got
            if len(self._bursts) > 256:
                self._bursts.popitem(last=False)
        return got


def strikes_around(spot: float, step_share: float, n: int) -> list[float]:
    """``n`` strikes around the money, a round step apart (the middle one nearest the price)."""
    raw = spot * step_share
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10)), key=lambda s: abs(s - raw))
    atm = round(spot / step) * step
    return [atm + (i - (n - 1) // 2) * step for i in range(n)]
