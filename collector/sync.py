"""Paging the exchange's history: shared by `backfill` and the daemon's jobs. No database here.

Trades: ``historicalTrades`` has no time parameter, only ``fromId`` (trades with id >= fromId,
oldest first). Ids grow with time but need not be contiguous per symbol, so the first trade at or
after a time is located by searching on ``fromId`` over the trades' times: interpolation (ids are
close to linear in time) alternating with plain bisection (so a skewed history cannot make it
slow). Every probe asks for a full page, so the probe that finds the boundary is also the first
page of data.

Klines: paged by ``startTime``; a short page means there is nothing more before ``endTime``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from collector.domain import Kline, Trade
from collector.exchange import endpoints as ep
from collector.exchange.client import JexClient
from collector.exchange.ratelimit import Priority

TRADE_PAGE = ep.MAX_HISTORICAL_TRADES
KLINE_PAGE = ep.MAX_KLINES
ONE_MS = timedelta(milliseconds=1)


@dataclass
class Cost:
    """Requests and weight spent by one task, for progress displays and efficiency figures."""

    requests: int = 0
    weight: int = 0
    probes: int = 0  # historicalTrades calls spent locating a start (not paging data)

    def add(self, weight: int, *, probe: bool = False) -> None:
        self.requests += 1
        self.weight += weight
        self.probes += probe


@dataclass
class Located:
    """Where the trades at or after a time begin: the boundary id and the raw page holding it."""

    first_id: int | None
    page: list[Trade] = field(default_factory=list)  # as the exchange sent it (length tells if full)


async def _page(client: JexClient, symbol: str, from_id: int | None, limit: int, priority: Priority,
                cost: Cost, *, probe: bool = False) -> list[Trade]:
    cost.add(ep.HISTORICAL_TRADES.weight, probe=probe)
    return await client.historical_trades(symbol, from_id=from_id, limit=limit, priority=priority)


async def locate_first_trade(client: JexClient, symbol: str, at: datetime, *,
                             priority: Priority = Priority.BACKFILL, cost: Cost | None = None) -> Located:
    """The first trade with ``time >= at``, with the page that holds it.

    Invariant: every trade with id < ``lo`` is before ``at``; the first trade at or after ``at``
    is the first trade with id >= some probe in [lo, hi]. Probes aim half a page early, so that ``at`` falls inside the page they
    fetch, using the ids-per-trade density seen in the pages fetched so far.
    """
    cost = cost if cost is not None else Cost()
    newest = await _page(client, symbol, None, 1, priority, cost, probe=True)
    if not newest or newest[-1].time < at:
        return Located(None)  # no trades at all, or none since ``at``
    lo, lo_time = 0, None
    hi, hi_time = newest[-1].trade_id, newest[-1].time
    density = 1.0  # ids per trade, refined from every full page
    tried: set[int] = set()
    step = 0
    while True:
        if lo_time is None:
            guess = lo  # the oldest page first: it fixes the lower bound and the density
        elif step % 3 == 2 or hi_time <= lo_time:
            guess = lo + (hi - lo) // 2  # plain bisection now and then: bounded worst case
        else:
            share = min(max((at - lo_time) / (hi_time - lo_time), 0.0), 1.0)
            guess = lo + int((hi - lo) * share) - int(density * TRADE_PAGE / 2)
        guess = min(max(guess, lo), hi)
        if guess in tried:
            guess = lo + (hi - lo) // 2 if lo + (hi - lo) // 2 not in tried else lo
        tried.add(guess)
        step += 1
        page = await _page(client, symbol, guess, TRADE_PAGE, priority, cost, probe=True)
        if len(page) > 1:
            density = max(1.0, (page[-1].trade_id - page[0].trade_id) / (len(page) - 1))
        if not page:  # nothing at or after guess (trades vanished since the first probe)
            if guess <= lo:
                return Located(None)
            hi = guess
            continue
        if page[0].time >= at:
            if guess <= lo:  # nothing between lo and page[0]: found
                return Located(page[0].trade_id, page)
            # No trade has an id in [guess, page[0]), so the boundary is below guess or is page[0],
            # which a probe at lo will return: the range shrinks to [lo, guess] even across id gaps.
            hi, hi_time = guess, page[0].time
            continue
        if page[-1].time < at:
            if len(page) < TRADE_PAGE:  # the newest trades, all before ``at``
                return Located(None)
            lo, lo_time = page[-1].trade_id + 1, page[-1].time
            continue
        # The boundary is inside this page; ids grow with time, so everything before is earlier.
        return Located(next(t.trade_id for t in page if t.time >= at), page)


async def trade_pages(client: JexClient, symbol: str, from_id: int, *, priority: Priority = Priority.BACKFILL,
                      cost: Cost | None = None, first_page: list[Trade] | None = None,
                      ) -> AsyncIterator[list[Trade]]:
    """Pages of trades with id >= ``from_id``, oldest first, until the exchange has no more.

    ``first_page`` is a page already fetched (raw, as the exchange sent it) that holds ``from_id``.
    Ends after a short raw page (the newest trades); the caller stops earlier when it has enough.
    """
    cost = cost if cost is not None else Cost()
    raw = first_page if first_page is not None else await _page(client, symbol, from_id, TRADE_PAGE, priority, cost)
    while True:
        page = [t for t in raw if t.trade_id >= from_id]
        if page:
            yield page
            from_id = page[-1].trade_id + 1
        if len(raw) < TRADE_PAGE:
            return
        raw = await _page(client, symbol, from_id, TRADE_PAGE, priority, cost)


async def kline_pages(client: JexClient, symbol: str, interval: str, start: datetime, end: datetime, *,
                      priority: Priority = Priority.BACKFILL, cost: Cost | None = None,
                      ) -> AsyncIterator[list[Kline]]:
    """Pages of klines with ``start <= open_time < end``, oldest first (partial ones included)."""
    cost = cost if cost is not None else Cost()
    cursor = start
    while cursor < end:
        cost.add(ep.KLINES.weight)
        page = await client.klines(symbol, interval, start=cursor, end=end - ONE_MS, limit=KLINE_PAGE,
                                   priority=priority)
        rows = [k for k in page if cursor <= k.open_time < end]
        if rows:
            yield rows
            cursor = rows[-1].open_time + ONE_MS
        if len(page) < KLINE_PAGE or not rows:
            return
