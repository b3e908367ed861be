"""Locating and paging trades by fromId, on adversarial histories (property-based).

The stand-in below answers ``historical_trades`` the way the seed and field notes describe: with
fromId, trades with id >= fromId oldest first; without it, the most recent trades newest first
(the client sorts by id). It is the unit-level transport; the simulator covers the real thing.
"""

from __future__ import annotations

import asyncio
import bisect
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from collector.domain import Trade
from collector.exchange.client import PageSizes
from collector.exchange.paging import TRADE_PAGE, Cost, locate_first_trade, trade_pages

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class PagedTrades:
    """``cap``: the most the server serves per page, whatever was asked (the seed says 500)."""

    def __init__(self, trades: list[Trade], cap: int = 500) -> None:
        self.trades = trades
        self.ids = [t.trade_id for t in trades]
        self.calls = 0
        self.cap = cap
        self.pages = PageSizes()

    async def historical_trades(self, symbol, from_id=None, limit=500, *, priority=None):
        self.calls += 1
        limit = min(limit, self.cap)
        if from_id is None:
            return self.trades[-limit:]
        first = bisect.bisect_left(self.ids, from_id)
        return self.trades[first : first + limit]


@st.composite
def histories(draw):
    """Hypothesis draws the shape; a seeded RNG fills in thousands of trades cheaply."""
    n = draw(st.integers(0, 3000))
    max_gap = draw(st.sampled_from([1, 3, 112, 10_000, 10**7]))  # ids across symbols leave gaps
    same_ms = draw(st.floats(0, 0.95))  # share of trades in the same millisecond as the last
    rng = random.Random(draw(st.integers(0, 2**32)))
    trades, tid, t = [], draw(st.integers(0, 10**12)), 0
    for _ in range(n):
        tid += rng.randint(1, max_gap)
        t += 0 if rng.random() < same_ms else rng.choice([1, 7, 1000, 60_000])
        trades.append(Trade("S", tid, Decimal("1"), Decimal("1"), T0 + timedelta(milliseconds=t), None))
    at = T0 + timedelta(milliseconds=draw(st.integers(-5, t + 2)))
    return trades, at


@settings(max_examples=150, deadline=None)
@given(histories())
def test_locate_finds_exactly_the_first_trade_at_or_after(history):
    trades, at = history
    client = PagedTrades(trades)
    cost = Cost()
    located = asyncio.run(locate_first_trade(client, "S", at, cost=cost))
    expected = next((t.trade_id for t in trades if t.time >= at), None)
    assert located.first_id == expected
    if expected is not None:
        assert located.page and any(t.trade_id == expected for t in located.page)
    assert cost.requests == client.calls
    assert cost.requests <= 60  # logarithmic, whatever the gaps


@settings(max_examples=60, deadline=None)
@given(histories(), st.sampled_from([500, 100, 37, 1]), st.booleans())
def test_paging_from_the_located_page_returns_every_later_trade_once(history, cap, evidence):
    """Whatever the server's page cap: a short page is not taken for the end of history."""
    trades, at = history

    async def collect():
        client = PagedTrades(trades, cap)
        located = await locate_first_trade(client, "S", at)
        if located.first_id is None:
            return [], True, 0
        searching = client.calls
        out = []
        pages = trade_pages(client, "S", located.first_id, first_page=located.page, evidence=evidence)
        async for page in pages:
            out.extend(page)
        return out, pages.exhausted, client.calls - searching

    got, exhausted, calls = asyncio.run(collect())
    assert [t.trade_id for t in got] == [t.trade_id for t in trades if t.time >= at]
    if evidence:
        assert exhausted  # ended on an empty page: evidence that nothing newer existed
    wanted = sum(1 for t in trades if t.time >= at)
    # paging (after the search, whose page is the first) costs at most one request beyond the data's pages
    assert calls <= -(-wanted // cap) + 1


@settings(max_examples=80, deadline=None)
@given(histories(), st.sampled_from([100, 7, 1]))
def test_locate_with_a_page_cap_below_the_seed_still_finds_the_first_trade(history, cap):
    trades, at = history
    client = PagedTrades(trades, cap)
    located = asyncio.run(locate_first_trade(client, "S", at))
    assert located.first_id == next((t.trade_id for t in trades if t.time >= at), None)


def test_the_daemon_learns_the_servers_page_and_stops_on_a_page_shorter_than_it():
    trades = [Trade("S", i, Decimal("1"), Decimal("1"), T0 + timedelta(seconds=i), None) for i in range(1, 251)]

    async def pages_fetched(from_id: int) -> tuple[int, int]:
        out = 0
        async for page in trade_pages(client, "S", from_id):
            out += len(page)
        return out, client.calls

    client = PagedTrades(trades, cap=100)
    assert asyncio.run(pages_fetched(1)) == (250, 3)  # 100 (learned: full), 100, 50 (short: done)
    client.calls = 0
    assert asyncio.run(pages_fetched(201)) == (50, 1)  # now known: 50 < 100 ends the poll at once


def test_interpolation_needs_few_probes_on_a_regular_history():
    trades = [
        Trade("S", 10_000 + 112 * i, Decimal("1"), Decimal("1"), T0 + timedelta(seconds=3 * i), None)
        for i in range(200_000)
    ]
    client = PagedTrades(trades)
    cost = Cost()
    at = T0 + timedelta(days=4, seconds=1)
    located = asyncio.run(locate_first_trade(client, "S", at, cost=cost))
    assert trades[[t.trade_id for t in trades].index(located.first_id)].time >= at
    assert cost.probes <= 4  # newest, oldest, and one or two aimed probes
    assert TRADE_PAGE == 500
