"""Paging the exchange's history: shared by `backfill` and the daemon's jobs. No database here.

Trades: ``historicalTrades`` has no time parameter, only ``fromId`` (trades with id >= fromId,
oldest first). Ids grow with time but need not be contiguous per symbol, so the first trade at or
after a time is located by searching on ``fromId`` over the trades' times: interpolation (ids are
close to linear in time) alternating with plain bisection (so a skewed history cannot make it
slow). Every probe asks for a full page, so the probe that finds the boundary is also the first
page of data.

Klines: paged by ``startTime`` up to ``endTime``.

A page shorter than asked is not the end of history: a server may serve fewer than the seed's
maximum (100 trades where 500 were asked). ``PageSizes`` learns the largest page the server gave
when asked for more; a page at least that long is taken as full, so paging goes on. Where
completeness is claimed (``evidence=True``: the backfill, a final sweep) paging ends only on
evidence: an empty page from the next id (``exhausted``), or, for klines, the window's end reached.
That costs at most one extra request per (symbol, window). Elsewhere (the daemon's polls) a page
shorter than the learned size ends the poll, and the next poll continues from the checkpoint.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from collector.domain import INTERVALS, Kline, Trade
from collector.exchange import endpoints as ep
from collector.exchange.client import JexClient, PageSizes
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


async def _page(
    client: JexClient,
    symbol: str,
    from_id: int | None,
    limit: int,
    priority: Priority,
    cost: Cost,
    *,
    probe: bool = False,
) -> list[Trade]:
    cost.add(ep.HISTORICAL_TRADES.weight, probe=probe)
    page = await client.historical_trades(symbol, from_id=from_id, limit=limit, priority=priority)
    client.pages.saw(ep.HISTORICAL_TRADES.name, limit, len(page))
    return page


async def locate_first_trade(
    client: JexClient, symbol: str, at: datetime, *, priority: Priority = Priority.BACKFILL, cost: Cost | None = None
) -> Located:
    """The first trade with ``time >= at``, with the page that holds it.

    Invariant: every trade with id < ``lo`` is before ``at``; the first trade at or after ``at``
    is the first trade with id >= some probe in [lo, hi]. Probes aim half a page early (of the page
    the server really serves), so that ``at`` falls inside the page they fetch, using the
    ids-per-trade density seen in the pages fetched so far.
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
            half = client.pages.size(ep.HISTORICAL_TRADES.name, TRADE_PAGE) / 2
            guess = lo + int((hi - lo) * share) - int(density * half)
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
            # Even a short page is no proof that nothing follows (a server may serve less than asked);
            # the newest trade is at or after ``at``, so page[-1] is not it: search on above it.
            lo, lo_time = page[-1].trade_id + 1, page[-1].time
            continue
        # The boundary is inside this page; ids grow with time, so everything before is earlier.
        return Located(next(t.trade_id for t in page if t.time >= at), page)


class TradePages:
    """Pages of trades with id >= ``from_id``, oldest first: ``async for page in TradePages(...)``.

    ``first_page`` is a page already fetched (raw, as the exchange sent it) that holds ``from_id``.
    Without ``evidence`` it ends after a page shorter than the server's (learned) page; with it, only
    on an empty page, and then ``exhausted`` is True: nothing newer existed when it was asked. The
    caller may stop earlier when it has enough.
    """

    def __init__(
        self,
        client: JexClient,
        symbol: str,
        from_id: int,
        *,
        priority: Priority = Priority.BACKFILL,
        cost: Cost | None = None,
        first_page: list[Trade] | None = None,
        evidence: bool = False,
    ) -> None:
        self.client, self.symbol, self.from_id, self.priority = client, symbol, from_id, priority
        self.cost = cost if cost is not None else Cost()
        self.first_page, self.evidence = first_page, evidence
        self.exhausted = False

    def __aiter__(self) -> AsyncIterator[list[Trade]]:
        return self._pages()

    async def _pages(self) -> AsyncIterator[list[Trade]]:
        client, symbol, from_id = self.client, self.symbol, self.from_id
        raw = self.first_page
        if raw is None:
            raw = await _page(client, symbol, from_id, TRADE_PAGE, self.priority, self.cost)
        sizes: PageSizes = client.pages
        while True:
            if not raw:
                self.exhausted = True
                return
            page = [t for t in raw if t.trade_id >= from_id]
            if not page:
                return  # nothing new in a non-empty page: no progress to be made, and no evidence
            yield page
            from_id = page[-1].trade_id + 1
            if not self.evidence and not sizes.full(ep.HISTORICAL_TRADES.name, TRADE_PAGE, len(raw)):
                return
            raw = await _page(client, symbol, from_id, TRADE_PAGE, self.priority, self.cost)


def trade_pages(
    client: JexClient,
    symbol: str,
    from_id: int,
    *,
    priority: Priority = Priority.BACKFILL,
    cost: Cost | None = None,
    first_page: list[Trade] | None = None,
    evidence: bool = False,
) -> TradePages:
    """See ``TradePages``."""
    return TradePages(client, symbol, from_id, priority=priority, cost=cost, first_page=first_page, evidence=evidence)


class KlinePages:
    """Pages of klines with ``start <= open_time < end``, oldest first (partial ones included).

    Without ``evidence`` it ends after a page shorter than the server's (learned) page; with it, only
    once the window's end is reached or a page is empty, and then ``exhausted`` is True.
    """

    def __init__(
        self,
        client: JexClient,
        symbol: str,
        interval: str,
        start: datetime,
        end: datetime,
        *,
        priority: Priority = Priority.BACKFILL,
        cost: Cost | None = None,
        evidence: bool = False,
    ) -> None:
        self.client, self.symbol, self.interval, self.start, self.end = client, symbol, interval, start, end
        self.priority, self.evidence = priority, evidence
        self.cost = cost if cost is not None else Cost()
        self.exhausted = False

    def __aiter__(self) -> AsyncIterator[list[Kline]]:
        return self._pages()

    async def _pages(self) -> AsyncIterator[list[Kline]]:
        client, end = self.client, self.end
        step = INTERVALS[self.interval]
        sizes = client.pages
        cursor = self.start
        while cursor < end:
            self.cost.add(ep.KLINES.weight)
            page = await client.klines(
                self.symbol, self.interval, start=cursor, end=end - ONE_MS, limit=KLINE_PAGE, priority=self.priority
            )
            sizes.saw(ep.KLINES.name, KLINE_PAGE, len(page))
            rows = [k for k in page if cursor <= k.open_time < end]
            if not rows:
                self.exhausted = not page  # a page of klines outside the range is no evidence
                return
            yield rows
            cursor = rows[-1].open_time + ONE_MS
            if rows[-1].open_time + step >= end:
                break  # no further kline opens before the end
            if not self.evidence and not sizes.full(ep.KLINES.name, KLINE_PAGE, len(page)):
                return
        self.exhausted = True


def kline_pages(
    client: JexClient,
    symbol: str,
    interval: str,
    start: datetime,
    end: datetime,
    *,
    priority: Priority = Priority.BACKFILL,
    cost: Cost | None = None,
    evidence: bool = False,
) -> KlinePages:
    """See ``KlinePages``."""
    return KlinePages(client, symbol, interval, start, end, priority=priority, cost=cost, evidence=evidence)
