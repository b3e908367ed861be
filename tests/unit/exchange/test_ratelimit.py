"""The weight governor on a fake clock: time only moves when a test says so.

Tests about something other than pacing build the governor with ``burst=1`` (the whole window's
budget may go at once) so that their numbers stay simple; pacing has its own tests below.
"""

from __future__ import annotations

import asyncio

import pytest

from collector.domain import RateLimit
from collector.exchange.clocks import ManualClock
from collector.exchange.ratelimit import Priority, Reservation, WeightGovernor

T0 = 1_700_000_040.0  # a minute boundary: 1_700_000_040 % 60 == 0


def FakeClock(now: float = T0) -> ManualClock:
    return ManualClock(now)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def limits(weight: int, raw: int | None = None, spelling: str = "jex") -> list[RateLimit]:
    names = (
        ("requestsWeight", "rawRequests", "minute")
        if spelling == "jex"
        else ("REQUEST_WEIGHT", "RAW_REQUESTS", "MINUTE")
    )
    result = [RateLimit(names[0], names[2], 1, weight), RateLimit("orders", "second", 1, 10)]
    if raw is not None:
        result.append(RateLimit(names[1], names[2], 5, raw))
    return result


def governor(at: float = T0 + 1, *, margin: float = 0, burst: float = 1) -> tuple[ManualClock, WeightGovernor]:
    """A governor on a fake clock at ``at``; by default no margin and no pacing (``burst=1``)."""
    clock = FakeClock(at)
    return clock, WeightGovernor(margin=margin, clock=clock, burst=burst)


async def take(gov: WeightGovernor, weight: int, prio: Priority = Priority.LIVE, log: list | None = None):
    async with gov.slot(weight, prio):
        if log is not None:
            log.append((prio, weight))


async def answered(gov: WeightGovernor, weight: int = 1) -> Reservation:
    """A request that went out and came back: its reservation, for ``observe`` with its headers."""
    async with gov.slot(weight) as r:
        pass
    return r


async def queue(
    gov: WeightGovernor, n: int, weight: int = 1, prio: Priority = Priority.LIVE, log: list | None = None
) -> list[asyncio.Task]:
    """``n`` requests sent at once; returns when they have got as far as they can without the clock moving."""
    tasks = [asyncio.create_task(take(gov, weight, prio, log)) for _ in range(n)]
    await settle()
    return tasks


async def drop(tasks: list[asyncio.Task]) -> None:
    """The test is over: cancel the requests still waiting and wait until they are gone."""
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_bootstrap_allows_one_request_at_a_time():
    gov = WeightGovernor(clock=FakeClock())
    first = await gov.acquire(1)
    second = asyncio.create_task(gov.acquire(1))
    await settle()
    assert not second.done()  # unconfigured: only one in flight
    gov.release(first)
    await settle()
    assert second.done()
    gov.release(second.result())


@pytest.mark.parametrize("spelling", ["jex", "binance"])
async def test_budget_per_window_with_margin(spelling):
    clock, gov = governor(margin=0.05)
    gov.configure(limits(60, spelling=spelling))
    assert gov.stats().effective_limit == 57
    done: list = []
    tasks = await queue(gov, 100, log=done)
    assert len(done) == 57 and gov.stats().weight_used == 57
    await clock.advance(58)  # still the same minute
    assert len(done) == 57
    await clock.advance(1.5)  # next minute + guard band
    assert len(done) == 100
    await asyncio.gather(*tasks)
    assert gov.stats().waits == 43


def line(effective: int, t: float, burst: float = 0.1) -> int:
    """What may have been granted by time ``t`` in the window that started at T0."""
    return int(effective * min(1.0, burst + (t - T0) / 60) + 1e-9)


async def paced(limit: int, *, margin: float = 0, burst: float = 0.1) -> tuple[ManualClock, WeightGovernor]:
    """Configured in the previous window, now at T0 + 1: the window at T0 is paced from its start."""
    clock, gov = governor(T0 - 5, margin=margin, burst=burst)
    gov.configure(limits(limit))
    await clock.advance(6)
    return clock, gov


async def test_pacing_grants_the_budget_along_the_line_not_in_a_burst():
    clock, gov = await paced(100)
    done: list = []
    tasks = await queue(gov, 300, log=done)
    assert len(done) == 11  # 100 * (0.1 + 1/60): not the whole window's 100
    seen = {}
    for _ in range(int(58 / 0.5)):  # each instant to the window's end: on the line, never above
        await clock.advance(0.5)
        assert len(done) == gov.stats().weight_used == line(100, clock.now), clock.now - T0
        seen[round(clock.now - T0, 1)] = len(done)
    assert seen[6.0] == 20 and seen[30.0] == 60 and seen[53.5] == 99 and seen[54.0] == 100
    assert seen[59.0] == 100  # the line is flat at the budget for the window's last tenth
    await clock.advance(1.5)  # T0 + 60.5: next window, past the guard band: its burst share only
    assert len(done) == 100 + line(100, clock.now - 60)
    await clock.advance(60)
    assert len(done) == 200 + line(100, clock.now - 120)
    await drop(tasks)


async def test_pacing_uses_the_whole_budget_of_a_window_with_margin():
    clock, gov = await paced(60, margin=0.05, burst=0.15)
    done: list = []
    tasks = await queue(gov, 200, log=done)
    assert len(done) == line(57, clock.now, 0.15) == 9
    await clock.advance(20)
    assert len(done) == line(57, clock.now, 0.15) == 28
    await clock.advance(38)  # T0 + 59: all 57 of the window, none more
    assert len(done) == 57
    await clock.advance(1.5)
    assert len(done) == 57 + line(57, clock.now - 60, 0.15)
    await drop(tasks)


async def test_pacing_does_not_let_small_requests_jump_a_big_head():
    clock, gov = await paced(100)
    order: list = []
    [big] = await queue(gov, 1, 40, log=order)
    smalls = await queue(gov, 100, 1, Priority.BACKFILL, log=order)
    assert order == []  # 40 > the line (11) yet; it fits the window, so nobody jumps it
    await clock.advance(16.9)  # T0 + 17.9: line 39.8
    assert order == []
    await clock.advance(0.2)  # T0 + 18.1: line 40.2
    assert order == [(Priority.LIVE, 40)]
    await clock.advance(12)  # T0 + 30.1: line 60.2: the small ones follow the line
    assert len(order) == 1 + 20
    await clock.advance(29)
    assert len(order) == 1 + 60 and gov.stats().weight_used == 100
    await clock.advance(61)
    await asyncio.gather(big, *smalls)


async def test_pacing_lets_small_requests_use_what_a_big_head_cannot_along_the_line():
    clock, gov = await paced(100)
    await clock.advance(39)
    await take(gov, 70)  # line at T0 + 40 is 76
    order: list = []
    [big] = await queue(gov, 1, 40, log=order)  # 70 + 40 > 100: not in this window
    smalls = await queue(gov, 40, 1, Priority.BACKFILL, log=order)
    assert len(order) == 6  # up to the line (76), not to the budget (100)
    await clock.advance(10)  # T0 + 50: line 93
    assert len(order) == 23
    await clock.advance(5)  # T0 + 55: line 100
    assert len(order) == 30 and (Priority.LIVE, 40) not in order
    await clock.advance(5.5)  # next window: the head is first, once the line reaches 40 (T0 + 78)
    assert len(order) == 30
    await clock.advance(17.4)
    assert len(order) == 30
    await clock.advance(0.2)
    assert order[30:] == [(Priority.LIVE, 40)]
    await clock.advance(60)
    await asyncio.gather(big, *smalls)


async def test_started_mid_window_the_line_starts_then_not_at_the_window_start():
    clock, gov = governor(T0 + 50, burst=0.1)
    gov.configure(limits(100))  # what the window already holds is unknown: no catching up
    done: list = []
    tasks = await queue(gov, 200, log=done)
    assert len(done) == 10  # the burst share, not the 93 the line is at for the window
    await clock.advance(6)  # T0 + 56: 10% of a window later
    assert len(done) == 20
    await clock.advance(4.5)  # T0 + 60.5: a new window, paced from its start as usual
    assert len(done) == 26 + 10  # 26 by T0 + 59.75; the guard band then charges both windows
    await drop(tasks)


async def test_requests_before_configure_are_counted_in_their_window():
    _clock, gov = governor()
    await take(gov, 10)  # exchangeInfo itself, before the limits are known
    gov.configure(limits(100))
    assert gov.stats().weight_used == 10
    r = await answered(gov, 1)
    gov.observe({"X-MBX-USED-WEIGHT-1M": "11"}, r)  # ours alone: nobody else is on the IP
    assert gov.stats().adopted_from_header == 0


async def test_others_seen_in_headers_keep_room_free_for_them():
    clock, gov = governor()
    gov.configure(limits(100))
    r = await answered(gov, 5)
    gov.observe({"X-MBX-USED-WEIGHT-1M": "45"}, r)  # someone else spent 40 since we last knew
    assert gov.stats().weight_used == 45
    done: list = []
    tasks = await queue(gov, 200, log=done)
    # they may spend about as much again before we hear of it: keep 40 free, not the margin alone
    assert gov.stats().weight_used == 60 and len(done) == 15
    await clock.advance(60)  # next window: still expected
    assert len(done) == 15 + 60
    await clock.advance(60)  # not seen for a whole window: the room is ours again
    assert len(done) == 15 + 60 + 100
    await drop(tasks)


async def test_room_kept_for_others_is_at_most_half_the_budget():
    clock, gov = governor()
    gov.configure(limits(100))
    r = await answered(gov, 1)
    gov.observe({"X-MBX-USED-WEIGHT-1M": "99"}, r)
    await clock.advance(60)
    done: list = []
    tasks = await queue(gov, 100, log=done)
    assert len(done) == 50
    await drop(tasks)


async def test_no_hard_coded_limit_and_configure_keeps_count():
    clock, gov = governor()
    gov.configure(limits(10))
    for _ in range(4):
        await take(gov, 2)
    gov.configure(limits(10))  # reconfigured (e.g. exchangeInfo refreshed): 8 already spent
    [blocked] = await queue(gov, 1, 3)
    assert not blocked.done() and gov.stats().weight_used == 8
    await clock.advance(60)
    assert blocked.done()


async def test_raw_request_limit_applies_too():
    clock, gov = governor(burst=0.1)
    gov.configure(limits(1000, raw=5))
    for _ in range(5):
        await take(gov, 1)
    [blocked] = await queue(gov, 1)
    assert not blocked.done()  # raw window is 5 minutes, aligned to 300 s
    await clock.advance(300)
    assert blocked.done()


async def test_request_near_window_end_counts_in_both_windows():
    clock, gov = governor(T0 + 59.9)  # 0.1 s before the boundary; guard is 0.25 s
    gov.configure(limits(10))
    await take(gov, 4)
    await clock.advance(0.5)  # next window, past the guard
    assert gov.stats().weight_used == 4  # we could not know on which side the exchange counted it
    await take(gov, 6)
    [blocked] = await queue(gov, 1)
    assert not blocked.done()
    await clock.advance(60)
    assert blocked.done()


async def test_window_follows_server_clock_offset():
    clock, gov = governor(T0 + 30)
    gov.set_time_offset(29.0)  # server clock is 29 s ahead: 1 s before its minute ends
    gov.configure(limits(2))
    await take(gov, 2)
    [blocked] = await queue(gov, 1)
    assert not blocked.done()
    await clock.advance(1.0)  # server passes its minute boundary, plus the guard band
    await settle()
    assert not blocked.done()  # new server minute, but still inside the guard band
    await clock.advance(0.3)
    assert blocked.done()


async def test_live_goes_before_backfill():
    clock, gov = governor()
    gov.configure(limits(3))
    await take(gov, 3)
    order: list = []
    tasks = await queue(gov, 3, 1, Priority.BACKFILL, order)
    tasks += await queue(gov, 3, 1, Priority.LIVE, order)
    assert order == []
    await clock.advance(60)
    assert order == [(Priority.LIVE, 1)] * 3
    await clock.advance(60)
    assert order == [(Priority.LIVE, 1)] * 3 + [(Priority.BACKFILL, 1)] * 3
    await asyncio.gather(*tasks)
    assert gov.stats().granted == {Priority.SIGNAL: 0, Priority.LIVE: 4, Priority.BACKFILL: 3}


async def test_big_request_is_not_starved_and_small_ones_use_the_rest():
    clock, gov = governor()
    gov.configure(limits(40))
    await take(gov, 10)
    order: list = []
    [big] = await queue(gov, 1, 40, log=order)
    smalls = await queue(gov, 35, 1, Priority.BACKFILL, log=order)
    # the big one cannot go before the next window; 30 small ones use what it cannot
    assert order == [(Priority.BACKFILL, 1)] * 30 and gov.stats().weight_used == 40
    await clock.advance(60)
    assert order[30] == (Priority.LIVE, 40) and len(order) == 31  # the big one fills the new window
    await clock.advance(60)
    await asyncio.gather(big, *smalls)
    assert len(order) == 36


async def test_no_backfill_in_the_guard_band():
    clock, gov = governor(T0 + 50)
    gov.configure(limits(40))
    await take(gov, 10)
    await clock.advance(9.9)  # 0.1 s before the boundary
    big = asyncio.create_task(take(gov, 40))
    small = asyncio.create_task(take(gov, 1))
    await settle()
    assert not small.done()  # it would also charge the next window, which the big one needs
    await clock.advance(0.4)
    assert big.done() and not small.done()
    await clock.advance(60)
    assert small.done()


async def read(gov: WeightGovernor, headers: dict, weight: int = 1, status: int = 200) -> Reservation:
    """One request answered at once, with these used-weight headers."""
    r = await answered(gov, weight)
    gov.observe(headers, r, status)
    return r


async def test_a_believed_header_higher_than_our_count_is_adopted():
    clock, gov = governor(burst=0.1)
    gov.configure(limits(100))
    await read(gov, {"x-mbx-used-weight-1m": "95"})  # any case; someone else spent 94
    assert gov.stats().weight_used == 95 and gov.stats().adopted_from_header == 1
    assert gov.stats().weight_source == "X-MBX-USED-WEIGHT-1M"
    gov.observe({"X-MBX-USED-WEIGHT-1M": "garbage"})
    assert gov.stats().weight_used == 95
    [blocked] = await queue(gov, 1, 4)
    assert not blocked.done()
    await clock.advance(60)
    assert blocked.done()


async def test_legacy_header_alone_is_used_too():
    _clock, gov = governor()
    gov.configure(limits(100))
    await read(gov, {"X-MBX-USED-WEIGHT": "40"})
    assert gov.stats().weight_used == 40 and gov.stats().weight_source == "X-MBX-USED-WEIGHT"


async def test_the_live_pair_that_disagrees_is_not_obeyed_and_the_honest_one_wins_back(caplog):
    """X-Mbx-Used-Weight: <our count> beside X-Mbx-Used-Weight-1m: 1200, as the live exchange sent."""
    caplog.set_level("INFO", "collector.exchange.weight_headers")
    clock, gov = governor()
    gov.configure(limits(1200))
    used = 0
    granted = []
    for _minute in range(3):
        n = 0
        while gov.stats().weight_used + 5 <= 1200:
            used += 5
            await read(gov, {"X-Mbx-Used-Weight": str(used), "X-Mbx-Used-Weight-1m": "1200"}, 5)
            n += 5
        granted.append(n)
        await clock.advance(60)
        used = 0
    assert granted == [1200, 1200, 1200]  # the whole budget of every window, never a wait for the next
    stats = gov.stats()
    assert stats.weight_source == "X-MBX-USED-WEIGHT"  # proved itself for a window; -1M never does
    discounted = [r.getMessage() for r in caplog.records if "discounted" in r.getMessage()]
    assert len(discounted) == 2 and "disagrees" in discounted[0]  # both, once, at the first disagreement
    sources = [r.getMessage() for r in caplog.records if r.getMessage().startswith("weight accounting")]
    assert sources == ["weight accounting: reconciling with X-MBX-USED-WEIGHT"]  # local until then


async def test_a_stuck_header_is_discounted_at_its_second_reading():
    _clock, gov = governor()
    gov.configure(limits(100))
    await read(gov, {"X-MBX-USED-WEIGHT-1M": "7"})  # plausible: others spent 6
    assert gov.stats().weight_used == 7
    await read(gov, {"X-MBX-USED-WEIGHT-1M": "7"})  # did not grow across our request
    assert gov.stats().weight_source == "local" and gov.stats().headers_discounted == 1
    assert gov.stats().weight_used == 2  # what was adopted from it is given back: ours alone


async def test_a_lagging_header_is_discounted():
    _clock, gov = governor()
    gov.configure(limits(100))
    await read(gov, {"X-MBX-USED-WEIGHT-1M": "1"})
    await read(gov, {"X-MBX-USED-WEIGHT-1M": "1"}, 3)  # the exchange counted 4 by then at least
    assert gov.stats().weight_source == "local"


async def test_a_header_below_our_own_answered_weight_is_discounted():
    _clock, gov = governor()
    gov.configure(limits(100))
    await read(gov, {"X-MBX-USED-WEIGHT": "5"}, 5)
    for _ in range(3):
        await read(gov, {}, 5)  # answered without headers: still counted by the exchange
    assert gov.stats().weight_source == "X-MBX-USED-WEIGHT"
    await read(gov, {"X-MBX-USED-WEIGHT": "12"}, 5)  # 20 of ours were answered before it, +5
    assert gov.stats().weight_source == "local"


async def test_over_the_limit_on_a_success_is_discounted_at_once():
    _clock, gov = governor()
    gov.configure(limits(100))
    await read(gov, {"X-MBX-USED-WEIGHT-1M": "250"})
    assert gov.stats().weight_source == "local" and gov.stats().weight_used == 1
    # the same reading on a 429 is no such evidence (and the 429 itself fills the window)
    _clock2, gov2 = governor()
    gov2.configure(limits(100))
    await read(gov2, {"X-MBX-USED-WEIGHT-1M": "250"}, status=429)
    assert gov2.stats().weight_source == "X-MBX-USED-WEIGHT-1M"


async def test_the_whole_limit_at_our_first_request_of_two_windows_is_stuck():
    clock, gov = governor()
    gov.configure(limits(100))
    await read(gov, {"X-MBX-USED-WEIGHT-1M": "100"})  # could be true: someone else filled the window
    assert gov.stats().weight_used == 100
    await clock.advance(60)
    await read(gov, {"X-MBX-USED-WEIGHT-1M": "100"})  # again at once: not a neighbour, a stuck header
    assert gov.stats().weight_source == "local" and gov.stats().weight_used == 1
    done: list = []
    tasks = await queue(gov, 200, log=done)
    assert len(done) == 99
    await drop(tasks)


async def test_a_discounted_header_is_believed_again_after_a_clean_window():
    clock, gov = governor()
    gov.configure(limits(100))
    await read(gov, {"X-MBX-USED-WEIGHT-1M": "50"})
    await read(gov, {"X-MBX-USED-WEIGHT-1M": "50"})  # stuck once (a proxy's cached answer, say)
    assert gov.stats().weight_source == "local"
    await clock.advance(60)
    for n in range(1, 5):
        await read(gov, {"X-MBX-USED-WEIGHT-1M": str(n)})  # honest again
    assert gov.stats().weight_source == "local"  # on probation until the window is over
    await clock.advance(60)
    await read(gov, {"X-MBX-USED-WEIGHT-1M": "30"})
    assert gov.stats().weight_source == "X-MBX-USED-WEIGHT-1M" and gov.stats().weight_used == 30


async def test_two_honest_headers_that_agree_are_both_believed():
    _clock, gov = governor()
    gov.configure(limits(100))
    for n in range(1, 4):
        await read(gov, {"X-MBX-USED-WEIGHT-1M": str(n + 10), "X-MBX-USED-WEIGHT": str(n + 10)})
    assert gov.stats().weight_source == "X-MBX-USED-WEIGHT-1M+X-MBX-USED-WEIGHT"
    assert gov.stats().weight_used == 13 and gov.stats().headers_discounted == 0


async def test_no_headers_at_all_local_accounting_uses_the_whole_budget():
    _clock, gov = governor()
    gov.configure(limits(100))
    done: list = []
    tasks = await queue(gov, 150, log=done)
    assert len(done) == 100 and gov.stats().weight_source == "local"
    await drop(tasks)


async def test_header_from_an_earlier_window_is_ignored():
    clock, gov = governor(burst=0.1)
    gov.configure(limits(100))
    async with gov.slot(1) as r:
        await clock.advance(60)  # the answer comes in the next window
    gov.observe({"X-MBX-USED-WEIGHT-1M": "90"}, r)
    assert gov.stats().weight_used == 0


async def test_pause_after_429_blocks_everyone_until_retry_after():
    clock, gov = governor(burst=0.1)
    gov.configure(limits(1000))
    gov.pause(7.0)
    assert gov.stats().paused_until == T0 + 8
    order: list = []
    tasks = [asyncio.create_task(take(gov, 1, p, order)) for p in (Priority.LIVE, Priority.BACKFILL)]
    await clock.advance(6.9)
    assert order == []
    # the window was marked full by the 429, so they go at the next minute, not at T0 + 8
    await clock.advance(0.2)
    assert order == []
    await clock.advance(53)
    assert sorted(order) == [(Priority.LIVE, 1), (Priority.BACKFILL, 1)]
    await asyncio.gather(*tasks)


async def test_ban_blocks_everything_until_it_ends(caplog):
    clock = FakeClock(T0 + 1)
    gov = WeightGovernor(clock=clock)  # even unconfigured
    with caplog.at_level("CRITICAL"):
        gov.ban(T0 + 121)
    assert "BANNED" in caplog.text and "2023-11-14T22:16:01" in caplog.text
    from collector import metrics

    assert metrics.REGISTRY.get_sample_value("jex_exchange_ban_until_timestamp_seconds") == T0 + 121
    task = asyncio.create_task(take(gov, 1))
    await clock.advance(119.9)
    assert not task.done() and gov.stats().banned_until == T0 + 121
    await clock.advance(0.2)
    assert task.done() and gov.stats().banned_until is None
    assert metrics.REGISTRY.get_sample_value("jex_exchange_ban_until_timestamp_seconds") == 0


async def test_cancelled_waiter_leaves_the_queue():
    clock, gov = governor()
    gov.configure(limits(1))
    await take(gov, 1)
    doomed, after = await queue(gov, 2)
    doomed.cancel()
    await settle()
    assert gov.stats().queued[Priority.LIVE] == 1
    await clock.advance(60)
    assert after.done() and doomed.cancelled() and gov.stats().in_flight == 0


async def test_saturated_use_reaches_the_budget_over_several_windows():
    clock = FakeClock(T0 + 17)
    gov = WeightGovernor(margin=0.05, clock=clock)
    gov.configure(limits(1200))
    granted_at: list[float] = []

    async def worker(w: int) -> None:
        while clock.now < T0 + 60 * 6:
            async with gov.slot(w, Priority.BACKFILL if w == 5 else Priority.LIVE):
                granted_at.append((clock.now, w))

    tasks = [asyncio.create_task(worker(w)) for w in (1, 5, 40, 1, 5)]
    await clock.advance(60 * 6 + 1)
    await asyncio.gather(*tasks)
    per_window: dict[int, int] = {}
    for t, w in granted_at:
        per_window[int(t // 60)] = per_window.get(int(t // 60), 0) + w
    full = [per_window[i] for i in sorted(per_window)[1:-1]]
    assert full and all(used == 1140 for used in full)  # 95%: the margin, and nothing left unused


async def test_shut_cancels_every_waiting_request_and_later_ones_at_once():
    _clock, gov = governor()
    gov.configure(limits(10))
    gov.ban(T0 + 3 * 86400)  # a ban of days
    tasks = await queue(gov, 3)
    assert not any(t.done() for t in tasks)
    gov.shut()
    await settle()
    assert all(t.cancelled() for t in tasks)
    with pytest.raises(asyncio.CancelledError):
        await gov.acquire(1)


async def test_new_orders_are_held_to_the_orders_limits_and_reads_are_not():
    from collector.domain import RateLimit

    clock, gov = governor()
    gov.configure([*limits(1200), RateLimit("orders", "day", 1, 14)])
    placed: list[float] = []

    async def place() -> None:
        async with gov.slot(1, orders=1):
            placed.append(clock.time())

    tasks = [asyncio.create_task(place()) for _ in range(16)]
    await settle()
    assert len(placed) == 10  # 10 per second
    read = asyncio.create_task(take(gov, 5))  # a read is not an order: not held by the orders limits
    await settle()
    assert read.done()
    for _ in range(4):
        await clock.advance(0.5)
    assert len(placed) == 14  # the next second's share, up to the day's 14
    assert max(placed) - min(placed) >= 1.0
    await clock.advance(60)
    assert len(placed) == 14  # the day's limit holds for the rest of the day
    await drop(tasks)


async def test_weight_of_the_last_full_window_counts_each_grant_once_even_at_the_edges():
    clock, gov = governor(at=T0 + 59.9)  # within the guard band of the next window
    gov.configure(limits(1200))
    await take(gov, 5)  # charged to both windows for pacing, spent in this one only
    await clock.advance(0.2)
    await take(gov, 7)  # the next window
    await clock.advance(60)
    stats = gov.stats()
    assert stats.weight_last_window == 7  # the one window before the current, each grant once
    await clock.advance(60)
    assert gov.stats().weight_last_window == 0


async def test_a_signal_request_goes_before_every_queued_live_one():
    clock, gov = governor()
    gov.configure(limits(10))
    order: list = []
    live = await queue(gov, 12, 1, Priority.LIVE, order)  # 10 go, 2 wait for the next window
    signal = asyncio.create_task(take(gov, 1, Priority.SIGNAL, order))
    await settle()
    await clock.advance(61)
    await settle()
    waited = order[10:]
    assert waited[0] == (Priority.SIGNAL, 1)  # first of the next window, ahead of the two before it
    await drop([*live, signal])
