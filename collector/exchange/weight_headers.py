"""Used-weight headers as evidence, not orders: which of them, if any, the governor may believe.

The exchange may send ``X-MBX-USED-WEIGHT-1M`` (the count in the current 1-minute window), the
legacy ``X-MBX-USED-WEIGHT``, both, or neither, in any case. The live one once answered
``X-Mbx-Used-Weight: 1`` beside ``X-Mbx-Used-Weight-1m: 1200`` on a request that succeeded: a
governor that obeyed the higher one waited for the next window before every request. So each
header is checked against what we know for certain about the window it counts:

- **our own weight**: every request of ours answered before this one was sent has been counted by
  the exchange, so an honest reading is at least that plus this request (``floor``);
- **growth**: a reading taken after an earlier one of the same window was received must exceed it
  by at least this request's weight (a counter only grows within its window);
- **the limit**: a successful answer cannot carry a count above the announced limit, and an exchange
  that is truly full at our first request of two windows in a row is not what is happening;
- **each other**: two headers that count the same window and say different things cannot both be
  right, so neither is believed until one of them proves itself.

Only readings of requests sent and answered well inside one window (``guard`` seconds from its
edges) and counted by the exchange (2xx, and 4xx other than 429/418) are evidence. A header that
fails a check is *discounted*: its readings are ignored until it passes every check of a whole
window (at least ``PROBATION`` readings) while no trusted header disagrees with it. With no header
believed, the governor counts locally; 429 + Retry-After and 418 stay the ground truth either way.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

LEGACY = "x-mbx-used-weight"
PROBATION = 3  # clean readings, all passing, in one window before a discounted header is believed again
LOCAL = "local"


@dataclass(frozen=True)
class Evidence:
    """What we know for certain about the request a response answers."""

    window: int  # index of the window the request was granted and answered in
    clean: bool  # granted and answered away from the window's edges, and counted by the exchange
    success: bool  # 2xx: the exchange served it
    weight: int
    granted: int  # the governor's event number at grant: orders it against earlier answers
    floor: int  # our weight surely counted in the window once this request was: answered before it + its own


@dataclass
class _Header:
    name: str
    trusted: bool = True  # innocent until proven otherwise
    window: int | None = None  # the window the readings below belong to
    times: list[int] = field(default_factory=list)  # event number at which each clean reading was received
    highs: list[int] = field(default_factory=list)  # running maximum of the readings, in that order
    passes: int = 0  # clean readings that passed every check in ``window``
    failed: str | None = None  # why a reading of ``window`` failed (None: none did)
    saturated: int | None = None  # last window whose first clean success read >= the limit
    first_seen: bool = False
    prev: tuple[int, str | None] | None = None  # (window, failure) of the window before ``window``

    def roll(self, window: int) -> tuple[int, int, str | None] | None:
        """Move to ``window``; returns (window, passes, failure) of the window left, or None."""
        if self.window == window:
            return None
        left = None
        if self.window is not None:
            left = (self.window, self.passes, self.failed)
            self.prev = (self.window, self.failed)
        self.window, self.times, self.highs, self.passes, self.failed = window, [], [], 0, None
        return left

    def passed(self, window: int) -> bool:
        """It had readings in ``window`` and none failed."""
        if self.window == window:
            return bool(self.times) and self.failed is None
        return self.prev is not None and self.prev[0] == window and self.prev[1] is None

    def high_before(self, t: int) -> int | None:
        """The highest reading of this window received before event ``t``."""
        i = bisect.bisect_left(self.times, t)
        return self.highs[i - 1] if i else None

    def record(self, t: int, value: int) -> None:
        self.times.append(t)
        self.highs.append(max(value, self.highs[-1]) if self.highs else value)


class HeaderJudge:
    """Keeps, per used-weight header, whether its readings may be believed (see the module docstring)."""

    def __init__(self, suffix: str, limit: int) -> None:
        names = [f"x-mbx-used-weight-{suffix}"]
        if suffix == "1m":
            names.append(LEGACY)  # the legacy header counts the 1-minute window
        self.limit = limit
        self.headers = {n: _Header(n) for n in names}
        self.disagreed: set[int] = set()  # windows in which two readings of one response differed
        self.discounts = 0
        self._source = LOCAL
        from collector import metrics

        metrics.WEIGHT_SOURCE.labels(LOCAL).set(1)

    @property
    def source(self) -> str:
        """What the governor believes: 'local', or the header names it trusts, joined by '+'."""
        return self._source

    def readings(self, headers: Mapping[str, str]) -> dict[str, int]:
        lowered = {k.lower(): v for k, v in headers.items()}
        out = {}
        for name in self.headers:
            raw = lowered.get(name)
            if raw is None:
                continue
            try:
                value = int(str(raw).strip())
            except ValueError:
                continue
            if value >= 0:
                out[name] = value
        return out

    def judge(self, values: dict[str, int], evidence: Evidence | None, now: int) -> tuple[int | None, list[str]]:
        """Weigh one response's readings, received at event ``now``. Returns (the reading to
        reconcile with, or None when no header present is believed; the names of headers
        discounted just now)."""
        discounted: list[str] = []
        for name, value in values.items():
            h = self.headers[name]
            h.first_seen = True
            if evidence is None or not evidence.clean:
                continue
            left = h.roll(evidence.window)
            if left is not None:
                self._probation_over(h, *left)
            problem = self._check(h, value, evidence)
            h.record(now, value)
            if problem is None:
                h.passes += 1
                continue
            h.failed = h.failed or problem
            if h.trusted:
                h.trusted = False
                discounted.append(name)
                self._discount(name, problem)
        if evidence is not None and evidence.clean and len(set(values.values())) > 1:
            self.disagreed.add(evidence.window)
            self.disagreed = {w for w in self.disagreed if w >= evidence.window - 1}
            both = [n for n in values if self.headers[n].trusted]
            if len(both) > 1:
                shown = ", ".join(f"{n.upper()}: {values[n]}" for n in values)
                for n in both:
                    self.headers[n].trusted = False
                    discounted.append(n)
                    self._discount(n, f"disagrees with another used-weight header ({shown})")
        self._update_source()
        believed = [v for n, v in values.items() if self.headers[n].trusted]
        return (max(believed) if believed else None), discounted

    def _check(self, h: _Header, value: int, ev: Evidence) -> str | None:
        if ev.success and value > self.limit:
            return f"read {value}, over the limit of {self.limit}, on an answer the exchange served"
        if value < ev.floor:
            return f"read {value}, below the {ev.floor} of our own weight already counted (stuck or lagging)"
        before = h.high_before(ev.granted)
        if before is not None and value < before + ev.weight:
            return f"read {value} after {before}, across a request of weight {ev.weight} (stuck or lagging)"
        if ev.success and value >= self.limit and not h.times:  # first reading of this window
            stuck = h.saturated == ev.window - 1
            h.saturated = ev.window
            if stuck:
                return f"read {value}, the whole limit, at our first request of two windows in a row (stuck)"
        elif not h.times:
            h.saturated = None
        return None

    def _probation_over(self, h: _Header, window: int, passes: int, failed: str | None) -> None:
        """A window of ``h``'s readings has ended: a discounted header that passed it is believed again."""
        if h.trusted or failed is not None or passes < PROBATION:
            return
        others = [o for o in self.headers.values() if o is not h and o.first_seen]
        if window in self.disagreed and any(o.trusted or o.passed(window) for o in others):
            return  # it disagreed with a header that has not failed: which is right is still unknown
        h.trusted = True
        log.info(
            "used-weight header %s passed every check for a whole window (%d readings): believed again",
            h.name.upper(),
            passes,
        )

    def _discount(self, name: str, problem: str) -> None:
        from collector import metrics

        self.discounts += 1
        metrics.WEIGHT_HEADER_DISCOUNTED.labels(name.upper()).inc()
        log.warning("used-weight header %s discounted: %s", name.upper(), problem)

    def _update_source(self) -> None:
        from collector import metrics

        trusted = [n.upper() for n, h in self.headers.items() if h.trusted and h.first_seen]
        source = "+".join(trusted) or LOCAL
        if source == self._source:
            return
        old, self._source = self._source, source
        metrics.WEIGHT_SOURCE.labels(old).set(0)
        metrics.WEIGHT_SOURCE.labels(source).set(1)
        if source == LOCAL:
            log.warning(
                "weight accounting: no used-weight header is believed; counting locally "
                "(429 and 418 remain the ground truth)"
            )
        else:
            log.info("weight accounting: reconciling with %s", source)
