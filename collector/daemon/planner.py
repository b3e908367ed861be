"""Budget planning: the weight per minute the configured schedule needs for the current symbols,
and, when it does not fit the announced limit (less the margin), longer intervals for the least
urgent jobs instead of a life on 429s.

Urgency, least first: bookTicker, avgPrice, klines (long intervals first), the account, depth,
tickers, trades.
Trades and klines lose nothing when stretched (the next poll catches up from the checkpoint);
snapshots only get sparser. Steady state is planned at PLAN_SHARE of the effective limit, leaving
room for catching up after an outage and for a backfill in the same process (which waits behind
live polling anyway).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from collector.config import Settings
from collector.domain import INTERVALS
from collector.exchange import endpoints as ep

PLAN_SHARE = 0.9
BEHIND = 1.05  # a job is behind its target when planned this much longer (small moves are noise)
MAX_STRETCH = 20.0  # no job is stretched beyond 20x its configured interval
STEP = 1.25
PARTITIONS_SECONDS = 3600.0  # monthly partitions created ahead (jobs/partitions.py)


@dataclass(frozen=True)
class JobSpec:
    name: str  # scheduler job id
    stream: str
    base_seconds: float
    weight_per_run: int


def job_specs(
    settings: Settings,
    n_trading: int,
    n_history: int,
    n_releasable: int = 0,
    n_open_orders: int = 0,
    n_account: int | None = None,
    n_depth: int | None = None,
) -> list[JobSpec]:
    """Every scheduled job with its configured interval and the weight one run costs
    (``n_releasable``: symbols with history that may be shorted, whose shorts and calls are paged;
    ``n_open_orders``: symbols with orders the account poll follows, at most openOrders' 5 each;
    ``n_account``: symbols whose orders are paged, by default those with history; ``n_depth``:
    symbols whose book is polled, by default every trading one)."""
    s = settings
    specs = [JobSpec("symbols", "symbols", s.symbols_refresh_seconds, ep.EXCHANGE_INFO.weight + ep.OPTION_INFO.weight)]
    if "trades" in s.streams:  # steady state: one page per symbol per poll
        specs.append(JobSpec("trades", "trades", s.trades_poll_seconds, ep.HISTORICAL_TRADES.weight * n_history))
    if "klines" in s.streams:
        for iv in s.kline_intervals:
            specs.append(JobSpec(f"klines {iv}", "klines", s.klines_poll_seconds, ep.KLINES.weight * n_history))
    if "depth" in s.streams:
        n = n_trading if n_depth is None else n_depth
        specs.append(JobSpec("depth", "depth", s.depth_poll_seconds, ep.DEPTH.weight * n))
    if "tickers" in s.streams:
        specs.append(
            JobSpec(
                "tickers",
                "tickers",
                s.tickers_poll_seconds,
                ep.TICKER_24HR.cheapest(n_trading),
            )
        )
    if "avg_price" in s.streams:
        specs.append(JobSpec("avg_price", "avg_price", s.avg_price_poll_seconds, ep.AVG_PRICE.weight * n_trading))
    if "book_ticker" in s.streams:
        specs.append(
            JobSpec(
                "book_ticker",
                "book_ticker",
                s.book_ticker_poll_seconds,
                ep.BOOK_TICKER.cheapest(n_trading),
            )
        )
    if "account" in s.streams:
        # balances and positions, the shorted options' positions, the orders still open
        specs.append(
            JobSpec(
                "account",
                "account",
                s.account_poll_seconds,
                ep.ACCOUNT.weight
                + ep.POSITION.weight
                + ep.SHORT_CALL_INFO.weight * n_releasable
                + ep.OPEN_ORDERS.weight * n_open_orders,
            )
        )
        specs.append(
            JobSpec(
                "account history",
                "account",
                s.account_history_seconds,
                ep.HISTORY_ORDERS.weight * (n_history if n_account is None else n_account)
                + ep.RECORD.weight * n_releasable,
            )
        )
    specs.append(JobSpec("partitions", "partitions", PARTITIONS_SECONDS, 0))  # database upkeep
    return specs


def _urgency(spec: JobSpec) -> tuple[int, float]:
    order = {
        "book_ticker": 0,
        "avg_price": 1,
        "klines": 2,
        "account": 3,
        "depth": 4,
        "tickers": 5,
        "trades": 6,
        "symbols": 7,
    }
    interval = INTERVALS[spec.name.split()[1]].total_seconds() if spec.stream == "klines" else 0.0
    return order[spec.stream], -interval  # among klines, the longest interval is least urgent


@dataclass(frozen=True)
class Plan:
    seconds: dict[str, float]  # job name -> interval to schedule
    need_per_minute: float  # weight per minute at those intervals
    budget_per_minute: float
    changes: list[str]  # human-readable, for the log

    @property
    def fits(self) -> bool:
        return self.need_per_minute <= self.budget_per_minute


def need(specs: list[JobSpec], seconds: dict[str, float]) -> float:
    return sum(s.weight_per_run * 60.0 / seconds[s.name] for s in specs)


def plan(specs: list[JobSpec], limit_per_minute: float) -> Plan:
    """Stretch the least urgent jobs (x1.25 at a time, up to x20) until the schedule fits."""
    budget = limit_per_minute * PLAN_SHARE
    seconds = {s.name: s.base_seconds for s in specs}
    for spec in sorted((s for s in specs if s.weight_per_run), key=_urgency):  # weightless: no gain
        if spec.stream == "symbols":
            continue
        while need(specs, seconds) > budget and seconds[spec.name] * STEP <= spec.base_seconds * MAX_STRETCH:
            seconds[spec.name] *= STEP
    changes = [
        f"{s.name}: every {s.base_seconds:g}s -> every {seconds[s.name]:.1f}s"
        for s in specs
        if seconds[s.name] != s.base_seconds
    ]
    return Plan(seconds, need(specs, seconds), budget, changes)


# --- The adaptive schedule: weight allocated where staleness costs most ---------------------------

TRADES_PAGE_WEIGHT = ep.HISTORICAL_TRADES.weight
VOLUME_REQUESTS_SHARE = 0.4  # of the raw-request limit, at most, for the volume signal's requests
QUIET_RATE = 1 / 3600  # trades/s assumed of a symbol that showed none yet: it still gets some weight


@dataclass(frozen=True)
class Demand:
    """Something that costs weight each time it runs: a job, or one symbol's trades poll.

    It runs every ``target`` seconds when the budget allows (never more often), and is stretched
    toward ``limit`` when it does not; ``priority`` is what a second of its interval costs (the
    staleness it causes). Zero priority: runs at ``target``, paid for first.

    ``events`` (per second): the demand may instead run only when something happened (a symbol's
    trades polled when a signal shows it traded), at most once a ``target`` and at least once a
    ``limit``: it then costs weight x (runs of an interval that saw an event, or 1/limit) and its
    staleness is ``target`` for what
    the events show, and ``wait`` for the share ``blind`` of its priority they cannot show (trades
    at an unchanged price, waiting for a slower signal). The allocation picks, per demand, whichever
    of the two ways costs less.
    """

    name: str
    stream: str
    weight: float
    target: float
    limit: float
    priority: float
    events: float | None = None
    blind: float = 0.0
    wait: float = 0.0


@dataclass(frozen=True)
class Allocation:
    seconds: dict[str, float]  # demand -> interval
    on_events: frozenset[str]  # demands run on their events (at most once their interval)

    def runs(self, d: Demand) -> float:
        """How often ``d`` runs (per second)."""
        return _runs(d, self.seconds[d.name], d.name in self.on_events)


def _runs(d: Demand, seconds: float, on_events: bool) -> float:
    if not on_events or d.events is None:
        return 1 / seconds
    return max(_event_runs(d.events, seconds), 1 / d.limit)


def _event_runs(events: float, seconds: float) -> float:
    """Runs per second of something run on events (at ``events`` a second, as a Poisson stream) at
    most once every ``seconds``: once an interval that saw at least one."""
    return -math.expm1(-events * seconds) / seconds


def _choose(d: Demand, mu: float) -> tuple[float, bool]:
    """The interval of ``d`` at multiplier ``mu``, and whether it runs on its events: the way with
    the lower staleness + mu x weight per second."""
    t = min(d.limit, max(d.target, math.sqrt(mu * d.weight / d.priority)))
    if d.events is None:
        return t, False
    ev = max(_event_runs(d.events, d.target), 1 / d.limit)
    on_events = (d.priority - d.blind) * d.target + d.blind * d.wait + mu * d.weight * ev
    periodic = d.priority * t + mu * d.weight / t
    if on_events <= periodic:
        return d.target, True
    return t, False


def allocate(demands: list[Demand], budget_per_second: float) -> Allocation:
    """Intervals minimising the total staleness cost sum(priority x interval) within the budget
    sum(weight / interval) <= budget, each between its target and its limit.

    The optimum (Lagrange) gives each demand interval = sqrt(mu x weight / priority), clamped: a
    busy symbol gets short intervals, a quiet one long, and when the budget tightens everything
    stretches together (by the square root of its cost over its value), not one stream after
    another. If even every limit does not fit, all intervals grow in proportion: degraded evenly.
    A demand that can run on events does so where that costs less at the same multiplier: a
    quiet symbol polled only when it trades, a busy one (or one trading unseen) at its interval.
    """
    fixed = [d for d in demands if d.priority <= 0 or d.weight <= 0]
    flexible = [d for d in demands if d.priority > 0 and d.weight > 0]
    out = {d.name: d.target for d in fixed}
    budget = budget_per_second - sum(d.weight / d.target for d in fixed)

    def at(mu: float) -> Allocation:
        chosen = {d.name: _choose(d, mu) for d in flexible}
        return Allocation(
            {**out, **{n: t for n, (t, _) in chosen.items()}},
            frozenset(n for n, (_, ev) in chosen.items() if ev),
        )

    def cost(a: Allocation) -> float:
        return sum(d.weight * a.runs(d) for d in flexible)

    fastest = at(0.0)
    if not flexible or cost(fastest) <= budget:
        return fastest
    slowest = {d.name: d.limit for d in flexible}  # periodic at the limit: the least weight there is
    if budget <= 0 or sum(d.weight / d.limit for d in flexible) > budget:
        scale = sum(d.weight / d.limit for d in flexible) / budget if budget > 0 else MAX_STRETCH
        return Allocation({**out, **{n: s * min(scale, MAX_STRETCH) for n, s in slowest.items()}}, frozenset())
    lo, hi = 1e-9, 1.0
    while cost(at(hi)) > budget:
        hi *= 4.0
    for _ in range(60):  # bisection on the multiplier (cost falls as mu grows)
        mid = math.sqrt(lo * hi)
        if cost(at(mid)) > budget:
            lo = mid
        else:
            hi = mid
    return at(hi)


@dataclass(frozen=True)
class AdaptivePlan:
    seconds: dict[str, float]  # job name -> interval to schedule (snapshot and upkeep jobs)
    trades: dict[str, float]  # symbol -> interval between its trades polls
    on_signals: frozenset[str]  # symbols polled when a signal shows they traded (others: at their interval)
    volume_symbols: frozenset[str]  # symbols whose 24h volume the volume signal reads
    need_per_minute: float  # weight per minute at those intervals
    budget_per_minute: float
    behind: dict[str, tuple[float, float]]  # stream -> (target, planned) where planned is longer
    targets: dict[str, float]  # job -> the interval it asks for ("trades": trades_sweep_seconds)

    @property
    def fits(self) -> bool:
        return self.need_per_minute <= self.budget_per_minute * 1.001

    @property
    def changes(self) -> list[str]:
        return [f"{n}: every {t:g}s -> every {p:.1f}s" for n, (t, p) in sorted(self.behind.items())]


def kline_target(settings: Settings, interval: str) -> float:
    """How often klines of ``interval`` are asked for at best: every klines_poll_seconds, but a
    longer kline (which closes once an interval) no more often than a quarter of its interval."""
    return max(settings.klines_poll_seconds, min(INTERVALS[interval].total_seconds() / 4, 900.0))


def adaptive_plan(
    settings: Settings,
    specs: list[JobSpec],
    trade_rates: dict[str, float],
    limit_per_minute: float,
    unseen_rates: dict[str, float] | None = None,
    requests_per_minute: float | None = None,
    pushed: frozenset[str] = frozenset(),
) -> AdaptivePlan:
    """The adaptive schedule: every job of ``specs`` but trades as a demand of its own, each symbol
    with history (``trade_rates``: its estimated trades per second) a trades demand of its own,
    the price signal (if on) a fixed one, all within PLAN_SHARE of the limit.

    With the signal, a symbol's trades may be polled only when it shows a trade (at most once its
    interval, and at least once trades_sweep_seconds); ``unseen_rates`` are the trades per second
    each symbol makes that the price signal does not show (at an unchanged price). On signals,
    those wait for its 24h volume: the volume signal reads the 24hr tickers of such symbols (weight
    1 each, or 40 for all) as often as what waits on it is worth, down to trades_volume_seconds. A
    symbol whose unseen trades are worth more than that is polled at its interval instead. Which
    symbols rely on the volume signal and how often it runs depend on each other: three rounds
    settle it. Read one by one, the volumes are many requests for little weight: they are kept to
    VOLUME_REQUESTS_SHARE of ``requests_per_minute`` (the raw-request limit), if one is announced.

    ``pushed``: symbols whose trades the push stream delivers; REST only confirms them, one page
    every push_confirm_seconds (stretched toward trades_sweep_seconds when the budget is short),
    and the weight they no longer need goes to the others (and the
    price signal, which only serves symbols not pushed, is off when every symbol is pushed)."""
    s = settings
    unseen_rates = unseen_rates or {}
    priorities = s.stream_priorities
    budget = limit_per_minute * PLAN_SHARE / 60.0
    signals = s.trades_signal_seconds > 0 and "trades" in s.streams and any(k not in pushed for k in trade_rates)
    trade_priority = priorities["trades"]
    confirmed = {k for k in trade_rates if k in pushed}
    rates = {k: max(r, 0.0) for k, r in trade_rates.items() if k not in pushed}
    unseen = {k: min(max(unseen_rates.get(k, 0.0), 0.0), r) for k, r in rates.items()}

    def demands_for(wait: float, relying: frozenset[str]) -> list[Demand]:
        """``wait``: how long an unseen trade waits on a symbol polled on signals; ``relying``: the
        symbols whose unseen trades wait for the volume signal."""
        out = []
        for spec in specs:
            if spec.stream == "trades":
                continue
            target = kline_target(s, spec.name.split()[1]) if spec.stream == "klines" else spec.base_seconds
            priority = priorities.get(spec.stream, 0.0) * spec.weight_per_run
            out.append(Demand(spec.name, spec.stream, spec.weight_per_run, target, target * s.max_stretch, priority))
        if signals:
            weight = ep.TICKER_PRICE.weight_all or ep.TICKER_PRICE.weight
            out.append(
                Demand("trade signals", "signals", weight, s.trades_signal_seconds, s.trades_signal_seconds, 0.0)
            )
            volume_weight = ep.TICKER_24HR.cheapest(len(relying))
            requests = 1 if ep.TICKER_24HR.all_symbols_is_cheaper(len(relying)) else len(relying)
            fastest = s.trades_volume_seconds
            if requests_per_minute:
                fastest = max(fastest, requests * 60.0 / (VOLUME_REQUESTS_SHARE * requests_per_minute))
            out.append(
                Demand(
                    "volume signals",
                    "signals",
                    volume_weight,
                    min(fastest, s.trades_sweep_seconds),
                    s.trades_sweep_seconds,
                    trade_priority * sum(unseen[k] for k in relying),
                )
            )
        for symbol, rate in rates.items():
            out.append(
                Demand(
                    f"trades {symbol}",
                    "trades",
                    TRADES_PAGE_WEIGHT,
                    max(s.trades_min_seconds, s.trades_signal_seconds) if signals else s.trades_min_seconds,
                    s.trades_sweep_seconds,
                    trade_priority * (rate + QUIET_RATE),
                    events=rate if signals else None,
                    blind=trade_priority * unseen[symbol],
                    wait=wait,
                )
            )
        for symbol in sorted(confirmed):
            # REST's proof of what push delivered: every push_confirm_seconds, stretched toward the
            # sweep (valued as a quiet symbol's poll) when 200 symbols' confirmations do not fit,
            # but never so far that /healthz would call the symbol's trades stale
            every = s.push_confirm_seconds
            slowest = max(every, min(s.trades_sweep_seconds, s.health_max_lag_seconds / 2))
            out.append(
                Demand(f"trades {symbol}", "trades", TRADES_PAGE_WEIGHT, every, slowest, trade_priority * QUIET_RATE)
            )
        return out

    sweep = s.trades_sweep_seconds
    relying = frozenset(k for k, u in unseen.items() if u >= QUIET_RATE)
    wait = min(s.trades_volume_seconds, sweep) if relying else sweep
    for _ in range(3):
        demands = demands_for(wait, relying)
        got = allocate(demands, budget)
        if not signals:
            break
        on_events = {n.removeprefix("trades ") for n in got.on_events}
        now_relying = frozenset(k for k in relying if k in on_events)
        if now_relying == relying and round(got.seconds["volume signals"], 6) == round(wait, 6):
            break
        relying = now_relying
        wait = min(got.seconds["volume signals"], sweep) if relying else sweep
    seconds = got.seconds
    need = sum(d.weight * 60.0 * got.runs(d) for d in demands)
    behind = {
        d.name: (d.target, seconds[d.name])
        for d in demands
        if d.stream not in ("trades", "signals") and seconds[d.name] > d.target * BEHIND
    }
    trades_targets = [d for d in demands if d.stream == "trades"]
    slow = [d for d in trades_targets if seconds[d.name] > d.limit * BEHIND]
    if slow:
        worst = max(seconds[d.name] for d in slow)
        behind["trades"] = (s.trades_sweep_seconds, worst)
    jobs = {n: v for n, v in seconds.items() if not n.startswith("trades ")}
    trades = {n.removeprefix("trades "): v for n, v in seconds.items() if n.startswith("trades ")}
    on_signals = frozenset(n.removeprefix("trades ") for n in got.on_events if n.startswith("trades "))
    targets = {d.name: d.target for d in demands if d.stream not in ("trades", "signals")}
    if any(spec.stream == "trades" for spec in specs):
        targets["trades"] = s.trades_sweep_seconds
    volume = relying if signals else frozenset()
    return AdaptivePlan(jobs, trades, on_signals, volume, need, limit_per_minute * PLAN_SHARE, behind, targets)
