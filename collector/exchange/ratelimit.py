"""The weight governor: spend the exchange's announced budget, never more.

Limits come only from ``exchangeInfo.rateLimits`` (``configure``). Until then a bootstrap mode
lets one request be in flight at a time, enough to fetch exchangeInfo itself.

The exchange counts weight (and raw requests) in fixed windows aligned to its clock
(``floor(server_time / window)``), so this does too, on host time plus the measured server-time
offset. A request granted at server time ``t`` is charged to every window that meets
``[t - guard, t + guard]``: near a boundary we cannot know on which side the exchange will count
it, so it must fit on both.

Pacing: the weight budget is not spent in a burst. By the moment a fraction ``f`` of a window has
passed, at most ``cap * min(1, burst + f)`` is granted in it (``burst`` 0.5 by default). Two
collectors behind one IP, each with its own governor, used to both spend everything at the start
of each window: the second burst went out before any header could tell of the first, overflowed
the IP's limit, and what was still in flight arrived during the 429's wait (then 418). Paced, each
sends a little at a time, so the other's spending shows in a header before much more goes out.
The line reaches ``cap`` once ``f = 1 - burst``, so queued work still uses the whole budget; at
0.5, two collectors bursting together on one IP still fit within its limit, while a short job
waits at most half a window. A governor configured mid-window paces that window from then (what it held before is
unknown). The raw-request budget is not paced.

Every request reserves its weight before it is sent (``async with governor.slot(w, prio)``).
``observe`` reconciles the local count with the used-weight headers, as far as they can be
believed (`collector.exchange.weight_headers` weighs each against what we know for certain and
discounts one that is stuck, lagging, over the limit on a success, or at odds with the other): a
higher believed count means someone else spends from the same IP, so adopt it. The excess is what
they spent since we last knew; they may spend that much again before we hear of it, so the largest
excess is kept free (``cap = effective - reserve``, at most half the budget) in that window and the
next. A lower count is ignored: our in-flight requests are not in it yet. When the last believed
header is discounted, what was adopted from it in the current and previous window is given back.
Requests granted before ``configure`` (exchangeInfo itself) are charged to their window then.

429 → ``pause``: nothing new is granted until Retry-After has passed (and the window is counted
full), so only requests already in flight can arrive during the wait. 418 → ``ban``: nobody sends
until the ban ends. Waiters are served LIVE before BACKFILL, FIFO within a priority, head-of-line:
a big request is not starved by small ones behind it (while it waits for the pacing line nobody
jumps it), though smaller ones may use the rest of a window the blocked head cannot use at all
(backfilling, up to the line), so queued work fills each window.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from collector import metrics
from collector.domain import RateLimit
from collector.exchange.clocks import Clock, SystemClock
from collector.exchange.weight_headers import LOCAL, Evidence, HeaderJudge

log = logging.getLogger(__name__)

_WEIGHT_TYPES = {"requestsweight", "request_weight"}
_RAW_TYPES = {"rawrequests", "raw_requests"}
_ORDER_TYPES = {"orders"}
_SLACK = 1e-6  # float tolerance when comparing with the pacing line
_MIN_DELAY = 0.001  # floor for timer delays, so float rounding cannot make a busy loop


class Priority(enum.IntEnum):
    """Lower value is served first."""

    SIGNAL = -1  # small, frequent requests the live schedule steers by: never behind a job's batch
    LIVE = 0
    BACKFILL = 1


@dataclass
class _Budget:
    """One limit counted in fixed windows: window index → units used.

    ``burst`` paces the budget (None: not paced): by the moment a fraction ``f`` of window ``i``
    has passed, at most ``cap(i) * min(1, burst + f)`` may have been granted in it. ``jumps``
    records, per window, the largest amount a response header showed beyond our own count (what
    others on the IP spent between two of our observations); ``cap`` keeps that much free.
    """

    name: str
    limit: int
    effective: int
    window: float
    burst: float | None = None
    since: float = -math.inf  # server time the governor started counting: the line starts there
    used: dict[int, int] = field(default_factory=dict)
    jumps: dict[int, int] = field(default_factory=dict)

    def indices(self, t: float, guard: float) -> range:
        return range(math.floor((t - guard) / self.window), math.floor((t + guard) / self.window) + 1)

    def reserve(self, i: int) -> int:
        """Budget kept free for others seen on the IP in this window or the one before."""
        return min(max(self.jumps.get(i, 0), self.jumps.get(i - 1, 0)), self.effective // 2)

    def cap(self, i: int) -> int:
        return self.effective - self.reserve(i)

    def allowed(self, i: int, t: float) -> float:
        """Units window ``i`` may have granted by server time ``t`` (the pacing line)."""
        cap = self.cap(i)
        if self.burst is None:
            return cap
        elapsed = min(1.0, max(0.0, (t - self.start(i)) / self.window))
        return cap * min(1.0, self.burst + elapsed)

    def start(self, i: int) -> float:
        """Where window ``i``'s line starts: its beginning, or when we started if that was later
        (what was spent in it before we knew is unknown: no catching up in a burst)."""
        return max(i * self.window, self.since)

    def fits(self, t: float, guard: float, units: int) -> bool:
        counts = [(i, self.used.get(i, 0)) for i in self.indices(t, guard)]
        if all(c + units <= self.allowed(i, t) + _SLACK for i, c in counts):
            return True
        # A request bigger than the whole budget may go alone into empty windows.
        return all(c == 0 and units > self.cap(i) for i, c in counts)

    def line_time(self, i: int, units: int) -> float:
        """Server time from which ``units`` more fit under window ``i``'s pacing line; inf if never."""
        need = self.used.get(i, 0) + units
        cap = self.cap(i)
        if need > cap:
            return math.inf
        if self.burst is None:
            return i * self.window
        return self.start(i) + max(0.0, need / cap - self.burst) * self.window

    def charge(self, t: float, guard: float, units: int) -> None:
        for i in self.indices(t, guard):
            self.used[i] = self.used.get(i, 0) + units
        self.forget(t)

    def forget(self, t: float) -> None:
        current = math.floor(t / self.window)
        for counts in (self.used, self.jumps):
            for old in [i for i in counts if i < current - 1]:
                del counts[old]

    def next_change(self, t: float, guard: float) -> float:
        """Server time at which the oldest window leaves the guard band."""
        return (math.floor((t - guard) / self.window) + 1) * self.window + guard

    def wait(self, t: float, guard: float, units: int) -> float:
        """Server time at which ``units`` may fit (a lower bound: the caller checks again)."""
        blocking = [i for i in self.indices(t, guard) if self.used.get(i, 0) + units > self.allowed(i, t) + _SLACK]
        paced = max((self.line_time(i, units) for i in blocking), default=math.inf)
        return min(self.next_change(t, guard), paced)

    def current(self, t: float) -> int:
        return self.used.get(math.floor(t / self.window), 0)


@dataclass(frozen=True)
class Reservation:
    weight: int
    priority: Priority
    granted_at: float  # server time
    window: int | None  # weight-window index at grant; None before configuration
    clear_of_edges: bool = False  # granted more than the guard away from its window's edges
    answered_before: int = 0  # our weight answered in that window before this was granted
    event: int = 0  # the governor's event number at grant (grants and answers are numbered in order)


@dataclass(frozen=True)
class GovernorStats:
    configured: bool
    weight_limit: int | None  # announced
    effective_limit: int | None  # announced less the margin
    weight_window_seconds: float | None
    weight_used: int  # in the current window (with the guard band's share of its neighbours)
    raw_limit: int | None
    raw_used: int
    in_flight: int
    queued: dict[Priority, int]
    granted: dict[Priority, int]
    waits: int  # requests that did not get a slot at once
    wait_seconds: float
    paused_until: float | None  # host epoch seconds
    banned_until: float | None  # host epoch seconds
    adopted_from_header: int  # times a header showed more weight than we had counted
    weight_source: str = LOCAL  # what the count is reconciled with: 'local' or the believed headers
    headers_discounted: int = 0  # times a used-weight header was found unbelievable
    weight_last_window: int = 0  # weight this process sent in the last complete window (by server time)
    raw_window_seconds: float | None = None

    @property
    def weight_per_minute(self) -> float:
        """The weight we may send in a minute (announced less the margin; 0 until known)."""
        return (self.effective_limit or 0) * 60.0 / (self.weight_window_seconds or 60.0)


@dataclass
class _Waiter:
    weight: int
    priority: Priority
    future: asyncio.Future[Reservation]
    since: float
    orders: int = 0  # new orders it places (the `orders` rate limits)


def _effective(limit: int, margin: float) -> int:
    return max(1, limit - math.ceil(limit * margin - 1e-9))


def _interval_suffix(window: float) -> str:
    seconds = int(window)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class WeightGovernor:
    def __init__(
        self, margin: float = 0.05, clock: Clock | None = None, *, guard: float = 0.25, burst: float = 0.5
    ) -> None:
        if not 0 <= margin < 1:
            raise ValueError("margin must be in [0, 1)")
        if not 0 < burst <= 1:
            raise ValueError("burst must be in (0, 1]")
        self.margin = margin
        self.guard = guard
        self.burst = burst  # share of the weight budget that may go at once at a window's start
        self.clock: Clock = clock or SystemClock()
        self.offset = 0.0  # server time - host time, seconds
        self._weight: _Budget | None = None
        self._raw: _Budget | None = None
        self._orders: list[_Budget] = []  # per window length: new orders counted (not paced)
        self._queues: dict[Priority, deque[_Waiter]] = {p: deque() for p in Priority}
        self._in_flight = 0
        self._paused_until = 0.0  # host time
        self._banned_until = 0.0  # host time
        self._timer: asyncio.Task[None] | None = None
        self._waits = 0
        self._wait_seconds = 0.0
        self._granted = {p: 0 for p in Priority}
        self._adopted = 0
        self._unconfigured: list[tuple[float, int]] = []  # (host time, weight) granted before limits
        self._judge: HeaderJudge | None = None
        self._answered: dict[int, int] = {}  # window -> our weight answered well inside it
        self._adopted_excess: dict[int, int] = {}  # window -> weight adopted from headers beyond our count
        self._events = 0  # grants and answers, numbered: what happened before what, whatever the clock
        self._spent: dict[int, int] = {}  # window index -> weight granted in it (each grant once)
        self._shut = False

    # --- configuration ---------------------------------------------------------------------

    @property
    def configured(self) -> bool:
        return self._weight is not None

    def configure(self, rate_limits: Iterable[RateLimit]) -> None:
        """Take the request-weight, raw-request and order limits (every `orders` entry applies:
        JEX announces 10 a second and 100000 a day)."""
        weight = raw = None
        orders: list[_Budget] = []
        for rl in rate_limits:
            kind = rl.rate_limit_type.lower()
            budget = _Budget(rl.rate_limit_type, rl.limit, _effective(rl.limit, self.margin), rl.window_seconds)
            if kind in _ORDER_TYPES:
                orders.append(budget)
                continue
            # Several entries of one kind: the tightest per second wins (not expected on JEX).
            if kind in _WEIGHT_TYPES and (
                weight is None or budget.limit / budget.window < weight.limit / weight.window
            ):
                budget.burst = self.burst
                budget.since = self.server_time()
                weight = budget
            elif kind in _RAW_TYPES and (raw is None or budget.limit / budget.window < raw.limit / raw.window):
                raw = budget
        if weight is None:
            raise ValueError("exchangeInfo.rateLimits has no requestsWeight limit")
        # Keep what was already counted in the current windows.
        for new, old in ((weight, self._weight), (raw, self._raw)):
            if new is not None and old is not None and new.window == old.window:
                new.used, new.jumps, new.since = old.used, old.jumps, old.since
        # What went out before the limits were known (exchangeInfo itself) counts too; otherwise
        # its weight would show in the first headers as someone else's.
        for host_time, units in self._unconfigured:
            weight.charge(host_time + self.offset, self.guard, units)
            if raw is not None:
                raw.charge(host_time + self.offset, self.guard, 1)
        self._unconfigured.clear()
        suffix = _interval_suffix(weight.window)
        if (
            self._judge is None
            or self._weight is None
            or self._weight.window != weight.window
            or self._judge.limit != weight.limit
        ):
            self._judge = HeaderJudge(suffix, weight.limit)
        old_orders = {o.window: o for o in self._orders}
        for o in orders:
            if o.window in old_orders:
                o.used = old_orders[o.window].used
        self._weight, self._raw, self._orders = weight, raw, orders
        metrics.WEIGHT_LIMIT.set(weight.limit)
        metrics.WEIGHT_EFFECTIVE_LIMIT.set(weight.effective)
        log.info(
            "rate limits: weight %d per %gs (using %d), raw %s",
            weight.limit,
            weight.window,
            weight.effective,
            f"{raw.limit} per {raw.window:g}s" if raw else "none",
        )
        self._pump()

    def set_time_offset(self, seconds: float) -> None:
        """Server time minus host time, as measured by the client's ``sync_time``."""
        self.offset = seconds
        self._pump()

    def server_time(self) -> float:
        return self.clock.time() + self.offset

    # --- reservation -----------------------------------------------------------------------

    @asynccontextmanager
    async def slot(
        self, weight: int, priority: Priority = Priority.LIVE, *, orders: int = 0
    ) -> AsyncIterator[Reservation]:
        """Reserve ``weight`` (and ``orders`` new orders) before sending; the request is in flight
        inside the block."""
        reservation = await self.acquire(weight, priority, orders=orders)
        try:
            yield reservation
        finally:
            self.release(reservation)

    def shut(self) -> None:
        """The process is stopping: every request waiting for budget, a pause or a ban is cancelled
        now, and so is every later one. Requests already in flight are not touched."""
        self._shut = True
        for queue in self._queues.values():
            while queue:
                queue.popleft().future.cancel()
        self._arm(math.inf)

    async def acquire(self, weight: int, priority: Priority = Priority.LIVE, *, orders: int = 0) -> Reservation:
        if weight < 0 or orders < 0:
            raise ValueError("weight and orders must be >= 0")
        if self._shut:
            raise asyncio.CancelledError
        loop = asyncio.get_running_loop()
        waiter = _Waiter(weight, priority, loop.create_future(), self.clock.time(), orders)
        self._queues[priority].append(waiter)
        self._pump()
        if waiter.future.done():
            return waiter.future.result()
        self._waits += 1
        metrics.GOVERNOR_WAITS.labels(priority.name).inc()
        metrics.GOVERNOR_QUEUED.labels(priority.name).set(len(self._queues[priority]))
        try:
            return await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self.release(waiter.future.result())  # granted, then cancelled before it ran
            else:
                try:
                    self._queues[priority].remove(waiter)
                except ValueError:
                    pass
                self._pump()
            raise

    def release(self, reservation: Reservation) -> None:
        """The request is over (answered or failed). Its weight stays counted."""
        self._in_flight -= 1
        self._pump()

    # --- what the exchange told us ---------------------------------------------------------

    def observe(self, headers: Mapping[str, str], reservation: Reservation | None = None, status: int = 200) -> None:
        """Weigh the used-weight headers of a response (any status) and reconcile with the believed ones."""
        w, judge = self._weight, self._judge
        if w is None or judge is None:
            return
        now = self.server_time()
        index = math.floor(now / w.window)
        values = judge.readings(headers)
        same_window = reservation is not None and reservation.window == index
        evidence = None
        if same_window:
            assert reservation is not None
            counted = status < 500 and status not in (429, 418)  # the exchange counted its weight
            clean = counted and reservation.clear_of_edges and math.floor((now + self.guard) / w.window) == index
            evidence = Evidence(
                index,
                clean,
                200 <= status < 300,
                reservation.weight,
                reservation.event,
                reservation.answered_before + reservation.weight,
            )
            if clean:
                self._answered[index] = self._answered.get(index, 0) + reservation.weight
                for old in [i for i in self._answered if i < index - 1]:
                    del self._answered[old]
        if not values:
            return
        self._events += 1
        used, discounted = judge.judge(values, evidence, self._events)
        if discounted and judge.source == LOCAL:
            self._give_back(index)
        metrics.WEIGHT_USED.set(w.current(now))
        if used is None or (reservation is not None and not same_window):
            return  # nothing believed, or answered in a later window than granted: which one it counts in is unknown
        counted_here = w.used.get(index, 0)
        if used > counted_here:
            # Others spent ``used - counted`` since we last knew: keep that much free for them.
            self._adopted += 1
            w.used[index] = used
            w.jumps[index] = max(w.jumps.get(index, 0), used - counted_here)
            self._adopted_excess[index] = self._adopted_excess.get(index, 0) + used - counted_here
            for old in [i for i in self._adopted_excess if i < index - 1]:
                del self._adopted_excess[old]
            w.forget(now)
            metrics.WEIGHT_USED.set(used)
            self._pump()

    def _give_back(self, index: int) -> None:
        """No header is believed any more: undo what was adopted from them lately (local count only)."""
        w = self._weight
        assert w is not None
        for i in (index - 1, index):
            excess = self._adopted_excess.pop(i, 0)
            if excess and i in w.used:
                w.used[i] = max(0, w.used[i] - excess)
            w.jumps.pop(i, None)
        self._pump()

    def pause(self, retry_after: float | None) -> float:
        """After a 429: nothing is sent before Retry-After (or the window's end when absent)."""
        now = self.clock.time()
        if retry_after is None or retry_after <= 0:
            if self._weight is not None:
                server_now = self.server_time()
                retry_after = self._weight.next_change(server_now, 0) - server_now
            else:
                retry_after = 1.0
        until = now + retry_after
        if until > self._paused_until:
            self._paused_until = until
            metrics.EXCHANGE_PAUSED_UNTIL.set(until)
        if self._weight is not None:
            # Whatever we counted, the exchange thinks this window is full.
            index = math.floor(self.server_time() / self._weight.window)
            self._weight.used[index] = max(self._weight.used.get(index, 0), self._weight.limit)
        log.warning("rate limited (429): sending nothing for %.1fs", until - now)
        self._pump()
        return until

    def ban(self, until: float) -> None:
        """After a 418: nothing is sent before ``until`` (host epoch seconds)."""
        if until > self._banned_until:
            self._banned_until = until
            metrics.EXCHANGE_BAN_UNTIL.set(until)
        log.critical(
            "IP BANNED by the exchange (418) until %s; sending nothing before then",
            datetime.fromtimestamp(until, UTC).isoformat(),
        )
        self._pump()

    # --- scheduling ------------------------------------------------------------------------

    def _delay(self, weight: int, now: float, orders: int = 0) -> float:
        """Seconds until the head request might go: 0 = now, inf = when something is released."""
        hold = max(self._paused_until, self._banned_until) - now
        if hold > 0:
            return max(hold, _MIN_DELAY)
        if self._weight is None:
            return 0.0 if self._in_flight == 0 else math.inf
        server_now = now + self.offset
        delay = 0.0
        budgets = [(self._weight, weight), (self._raw, 1)]
        if orders:
            budgets.extend((o, orders) for o in self._orders)
        for budget, units in budgets:
            if budget is not None and not budget.fits(server_now, self.guard, units):
                delay = max(delay, budget.wait(server_now, self.guard, units) - server_now, _MIN_DELAY)
        return delay

    def _pump(self) -> None:
        """Grant waiting requests in order while they fit; otherwise arm a timer."""
        now = self.clock.time()
        delay = math.inf
        while True:
            waiter = self._head()
            if waiter is None:
                delay = math.inf
                break
            delay = self._delay(waiter.weight, now, waiter.orders)
            if delay > 0:
                other = self._past_held_order(waiter, now)
                if other is None:
                    break
                self._queues[other.priority].remove(other)
                self._grant(other, now)
                continue
            self._queues[waiter.priority].popleft()
            self._grant(waiter, now)
        if (
            waiter is not None
            and math.isfinite(delay)
            and self._weight is not None
            and max(self._paused_until, self._banned_until) <= now
        ):
            delay = min(delay, self._backfill(waiter, now))
        if self._paused_until and now >= self._paused_until:
            self._paused_until = 0.0
            metrics.EXCHANGE_PAUSED_UNTIL.set(0)
        if self._banned_until and now >= self._banned_until:
            self._banned_until = 0.0
            metrics.EXCHANGE_BAN_UNTIL.set(0)
            log.warning("exchange ban over; sending again")
        for p in Priority:
            metrics.GOVERNOR_QUEUED.labels(p.name).set(len(self._queues[p]))
        self._arm(delay)

    def _backfill(self, head: _Waiter, now: float) -> float:
        """Let smaller requests use what is left of a window the blocked head cannot use.

        Only when the head cannot go in this window at all (pacing aside: it is never jumped while
        it waits for the pacing line), and only outside the guard band: then they charge the
        current window alone, and the head still gets the next window exactly when it would have.
        Without this, a weight-40 request at the head would leave up to 39 units of every window
        unused. Returns the seconds until the pacing line lets the next of them go (inf: none).
        """
        server_now = now + self.offset
        w, raw = self._weight, self._raw
        assert w is not None
        if len(w.indices(server_now, self.guard)) != 1:
            return math.inf
        index = math.floor(server_now / w.window)
        if w.used.get(index, 0) + head.weight <= w.cap(index):
            return math.inf  # the head still gets this window once the pacing line allows
        later = math.inf
        for p in Priority:
            for waiter in list(self._queues[p]):
                if waiter is head or waiter.future.done():
                    continue
                if w.used.get(index, 0) + waiter.weight > w.allowed(index, server_now) + _SLACK:
                    later = min(later, w.line_time(index, waiter.weight))
                    continue
                if raw is not None and not raw.fits(server_now, self.guard, 2):  # keep one for the head
                    return math.inf
                if waiter.orders and not all(o.fits(server_now, self.guard, waiter.orders) for o in self._orders):
                    continue
                self._queues[p].remove(waiter)
                self._grant(waiter, now)
        return max(later - server_now, _MIN_DELAY) if math.isfinite(later) else math.inf

    def _past_held_order(self, head: _Waiter, now: float) -> _Waiter | None:
        """A request that places no order and may go now, when the head waits for the ``orders``
        limits alone (they count new orders, not weight: a read has no reason to wait behind them)."""
        if not head.orders or self._delay(head.weight, now) > 0:
            return None
        for p in Priority:
            for waiter in self._queues[p]:
                if not waiter.orders and not waiter.future.done():
                    return waiter if self._delay(waiter.weight, now) == 0 else None
        return None

    def _head(self) -> _Waiter | None:
        for p in Priority:
            queue = self._queues[p]
            while queue and queue[0].future.done():
                queue.popleft()  # cancelled while waiting
            if queue:
                return queue[0]
        return None

    def _grant(self, waiter: _Waiter, now: float) -> None:
        server_now = now + self.offset
        window = None
        if self._weight is None:
            self._unconfigured.append((now, waiter.weight))
            del self._unconfigured[:-100]  # bootstrap is one request at a time; keep it bounded
        else:
            w = self._weight
            w.charge(server_now, self.guard, waiter.weight)
            window = math.floor(server_now / w.window)
            self._spent[window] = self._spent.get(window, 0) + waiter.weight
            for old in [i for i in self._spent if i < window - 1]:
                del self._spent[old]
            clear = math.floor((server_now - self.guard) / w.window) == math.floor((server_now + self.guard) / w.window)
            answered = self._answered.get(window, 0)
            metrics.WEIGHT_USED.set(w.current(server_now))
        if self._raw is not None:
            self._raw.charge(server_now, self.guard, 1)
            metrics.RAW_REQUESTS_USED.set(self._raw.current(server_now))
        if waiter.orders and self._weight is not None:
            for o in self._orders:
                o.charge(server_now, self.guard, waiter.orders)
        self._in_flight += 1
        self._granted[waiter.priority] += 1
        waited = now - waiter.since
        if waited > 0:
            self._wait_seconds += waited
            metrics.GOVERNOR_WAIT_SECONDS.labels(waiter.priority.name).inc(waited)
        self._events += 1
        if window is None:
            reservation = Reservation(waiter.weight, waiter.priority, server_now, None, event=self._events)
        else:
            reservation = Reservation(waiter.weight, waiter.priority, server_now, window, clear, answered, self._events)
        waiter.future.set_result(reservation)

    def _arm(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if math.isfinite(delay):
            self._timer = asyncio.get_running_loop().create_task(self._fire(delay))

    async def _fire(self, delay: float) -> None:
        await self.clock.sleep(delay)
        self._timer = None
        self._pump()

    # --- reading ---------------------------------------------------------------------------

    def stats(self) -> GovernorStats:
        server_now = self.server_time()
        now = self.clock.time()
        w, r = self._weight, self._raw
        return GovernorStats(
            configured=w is not None,
            weight_limit=w.limit if w else None,
            effective_limit=w.effective if w else None,
            weight_window_seconds=w.window if w else None,
            weight_used=w.current(server_now) if w else 0,
            raw_limit=r.limit if r else None,
            raw_used=r.current(server_now) if r else 0,
            raw_window_seconds=r.window if r else None,
            in_flight=self._in_flight,
            queued={p: len(q) for p, q in self._queues.items()},
            granted=dict(self._granted),
            waits=self._waits,
            wait_seconds=self._wait_seconds,
            paused_until=self._paused_until if self._paused_until > now else None,
            banned_until=self._banned_until if self._banned_until > now else None,
            adopted_from_header=self._adopted,
            weight_source=self._judge.source if self._judge else LOCAL,
            headers_discounted=self._judge.discounts if self._judge else 0,
            weight_last_window=self._spent.get(math.floor(server_now / w.window) - 1, 0) if w else 0,
        )
