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

from dataclasses import dataclass

from collector.config import Settings
from collector.domain import INTERVALS
from collector.exchange import endpoints as ep

PLAN_SHARE = 0.9
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
) -> list[JobSpec]:
    """Every scheduled job with its configured interval and the weight one run costs
    (``n_releasable``: symbols with history that may be shorted, whose shorts and calls are paged;
    ``n_open_orders``: symbols with orders the account poll follows, at most openOrders' 5 each;
    ``n_account``: symbols whose orders are paged, by default those with history)."""
    s = settings
    specs = [JobSpec("symbols", "symbols", s.symbols_refresh_seconds, ep.EXCHANGE_INFO.weight + ep.OPTION_INFO.weight)]
    if "trades" in s.streams:  # steady state: one page per symbol per poll
        specs.append(JobSpec("trades", "trades", s.trades_poll_seconds, ep.HISTORICAL_TRADES.weight * n_history))
    if "klines" in s.streams:
        for iv in s.kline_intervals:
            specs.append(JobSpec(f"klines {iv}", "klines", s.klines_poll_seconds, ep.KLINES.weight * n_history))
    if "depth" in s.streams:
        specs.append(JobSpec("depth", "depth", s.depth_poll_seconds, ep.DEPTH.weight * n_trading))
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
