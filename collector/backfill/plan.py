"""What a backfill is: its window, symbols, streams and intervals (``BackfillPlan``), the tasks it
splits into (``Task``, one per symbol, stream and interval), and the checks made before anything
is written: the input alone (``check_inputs``), then against the exchange (``validate``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from collector.domain import INTERVALS
from collector.errors import ConfigError, ExchangeRejected, SymbolRefused
from collector.exchange.client import JexClient
from collector.exchange.paging import Cost
from collector.exchange.ratelimit import Priority
from collector.store import checkpoints

BACKFILL_STREAMS = ("klines", "trades")  # the default
ACCOUNT_STREAMS = ("orders", "records")  # the account's own history (signed: key and secret)
KNOWN_STREAMS = BACKFILL_STREAMS + ACCOUNT_STREAMS
# Rejections that no task can get past (the key is bad for all of them): stop the whole run.
FATAL_CODES = frozenset({-1002, -1022, -2014, -2015})
KEY_PROBES = 5  # symbols tried to prove the API key when the exchange refuses the first ones


@dataclass(frozen=True)
class BackfillPlan:
    start: datetime | None  # None: from where each (symbol, stream, interval)'s stored data ends
    end: datetime
    symbols: Sequence[str] = ()  # none: every option symbol the exchange lists
    streams: Sequence[str] = BACKFILL_STREAMS
    intervals: Sequence[str] = ("1m",)
    batch_rows: int = 5000
    from_listing: bool = False  # the symbols are the exchange's listing, not named by the user
    account_name: str = "default"  # the label stored with account rows (orders, records)
    refetch: bool = False  # fetch the whole window even where the coverage says it is stored
    to_now: bool = False  # ``end`` is "now": klines end at the start of their interval's current kline


@dataclass
class Task:
    symbol: str
    stream: str
    interval: str  # '' for trades
    start: datetime
    end: datetime
    rows: int = 0  # fetched and stored by this run
    written: int = 0  # of those, new or changed (the rest were stored already, as they are)
    covered_until: datetime | None = None  # everything before this is stored
    cost: Cost = field(default_factory=Cost)
    done: bool = False
    complete: bool = False  # the whole window is stored (also across runs)
    skipped: bool = False  # complete before this run started
    error: str | None = None
    refused: str | None = None  # the exchange refused the symbol (why): not asked for again

    @property
    def scope(self) -> str:
        """The checkpoints' scope of this task's range."""
        return checkpoints.backfill_scope(self.start, self.end)

    @property
    def name(self) -> str:
        return f"{self.symbol} {self.stream}{' ' + self.interval if self.interval else ''}"

    @property
    def fraction(self) -> float:
        if self.complete:
            return 1.0
        if self.covered_until is None:
            return 0.0
        span = (self.end - self.start).total_seconds()
        return min(1.0, max(0.0, (self.covered_until - self.start).total_seconds() / span))


class Reporter(Protocol):
    def started(self, tasks: Sequence[Task]) -> None: ...
    def updated(self, task: Task) -> None: ...
    def finished(self, task: Task) -> None: ...


def plan_keys(plan: BackfillPlan) -> list[tuple[str, str, str]]:
    """Every (symbol, stream, interval) the plan asks for ('' for streams without an interval)."""
    return [
        (symbol, stream, interval)
        for symbol in plan.symbols
        for stream in plan.streams
        for interval in (plan.intervals if stream == "klines" else ("",))
    ]


def plan_tasks(plan: BackfillPlan, starts: Mapping[tuple[str, str, str], datetime] | None = None) -> list[Task]:
    """One task per (symbol, stream, interval) over the plan's window. With no plan start, each
    starts at ``starts[key]`` (where its stored data ends); keys missing there get no task."""
    tasks = []
    for symbol, stream, interval in plan_keys(plan):
        start = plan.start if plan.start is not None else (starts or {}).get((symbol, stream, interval))
        end = plan.end
        if plan.to_now and interval:  # the kline open at ``end`` is not final yet
            step = INTERVALS[interval].total_seconds()
            end = datetime.fromtimestamp(end.timestamp() // step * step, end.tzinfo)
        if start is not None and start < end:
            tasks.append(Task(symbol, stream, interval, start, end))
    return tasks


def check_inputs(streams, intervals, *, has_api_key: bool, has_api_secret: bool = False) -> None:
    """What can be checked without the exchange: run before connecting, so bad input is one line."""
    unknown_streams = [s for s in streams if s not in KNOWN_STREAMS]
    if unknown_streams:
        raise ConfigError(f"unknown stream {unknown_streams[0]!r}; backfill knows {', '.join(KNOWN_STREAMS)}")
    if "trades" in streams and not has_api_key:
        raise ConfigError("trades need option/historicalTrades, which needs an API key: set COLLECTOR_API_KEY")
    account = [s for s in streams if s in ACCOUNT_STREAMS]
    if account and not (has_api_key and has_api_secret):
        raise ConfigError(f"{account[0]} are the account's: set COLLECTOR_API_KEY and COLLECTOR_API_SECRET")
    bad_intervals = [i for i in intervals if i not in INTERVALS]
    if bad_intervals:
        raise ConfigError(f"unknown interval {bad_intervals[0]!r}; choose from {', '.join(INTERVALS)}")


async def validate(
    client: JexClient,
    plan: BackfillPlan,
    refused: dict[str, str] | None = None,
) -> tuple[BackfillPlan, list, list]:
    """Check the plan against the exchange before anything is written.

    Returns the plan with its symbols resolved (none given: every option symbol the exchange lists,
    expired ones still listed included) and the exchange's two symbol lists, each fetched once.
    Symbols the exchange refuses while the key is proven are added to ``refused``.
    """
    if plan.start is not None and plan.start >= plan.end:
        raise ConfigError("--start must be before --end")
    check_inputs(plan.streams, plan.intervals, has_api_key=bool(client.api_key), has_api_secret=bool(client.api_secret))
    listed = (await client.exchange_info(priority=Priority.BACKFILL)).option_symbols
    infos = await client.option_info(priority=Priority.BACKFILL)
    known = {s.symbol for s in listed} | {o.symbol for o in infos}
    if not plan.symbols:
        plan = replace(plan, symbols=sorted(known), from_listing=True)
    unknown = [s for s in plan.symbols if s not in known]
    if unknown:
        raise ConfigError(
            f"unknown symbol {unknown[0]!r}: the exchange lists {len(known)} option symbols (see `collector symbols`)"
        )
    refused = refused if refused is not None else {}
    if "trades" in plan.streams and plan.symbols:
        # One cheap call proves the key before anything is written (weight 5); a symbol the exchange
        # refuses proves nothing about the key, so the next one is tried (a few at most).
        for symbol in plan.symbols[:KEY_PROBES]:
            try:
                await client.historical_trades(symbol, limit=1, priority=Priority.BACKFILL)
                break
            except SymbolRefused as exc:
                refused[exc.symbol] = exc.reason
            except ExchangeRejected as exc:
                if exc.code in FATAL_CODES:
                    raise ConfigError(f"the exchange refused the API key: {exc}") from exc
                raise
    return plan, list(infos), list(listed)
