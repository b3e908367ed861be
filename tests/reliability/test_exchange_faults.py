"""Exchange faults: a skewed exchange clock, a 418 ban, symbols vanishing from exchangeInfo.

5xx bursts (JSON and HTML), answers slower than the read timeout, dropped connections and truncated
bodies are in tests/integration/test_backfill_faults.py (backfill), test_daemon.py (the daemon with
faults and a database restart) and test_client_sim.py (retry counts); hostile bodies are in
test_hostile_responses.py. Each case here checks the data is exact, that we caused no ban, and that
the log says what happened.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from sqlalchemy import text

from collector.backfill.plan import BackfillPlan
from collector.backfill.run import run_backfill
from collector.config import load_settings
from collector.exchange.session import connect_exchange
from collector.simulator import Clock, SimConfig, Simulator
from tests.helpers.daemon_truth import POLL
from tests.helpers.daemons import running_daemon
from tests.helpers.polling import until
from tests.helpers.truth import assert_equals_truth

KEY = "faultkey123"


def settings_for(sim: Simulator, **extra):
    return load_settings(None, {"exchange_url": sim.base_url, "api_key": KEY, **extra}, defaults_file=None)


def past_window(now_ms: int, minutes: int) -> tuple[datetime, datetime]:
    end = datetime.fromtimestamp(now_ms / 1000, UTC).replace(second=13, microsecond=0) - timedelta(hours=2)
    return end - timedelta(minutes=minutes, seconds=31), end


async def offset_within_guard(client, true_offset: float, elapsed: float) -> None:
    """Assert the measured clock offset is within the governor's guard at window edges.

    ``sync_time`` keeps the fastest of its 3 /time round trips, whose estimate is off by at most
    half that round trip (+1 ms: server time is in whole ms). The fastest is at most a third of the
    three, so ``elapsed`` (a span holding all of them) bounds the error by ``elapsed / 6``: beyond
    that it is wrong at any machine speed. Within the guard needs a round trip under ~0.5 s, which a
    loaded machine may not give every time: then measure again, a few times.
    """
    guard = client.governor.guard
    for measured in range(1, 6):
        if measured > 1:
            started = time.time()
            await client.sync_time()
            elapsed = time.time() - started
        error = abs(client.governor.offset - true_offset)
        assert error <= elapsed / 6 + 0.002, f"offset off by {error:.3f}s; samples took {elapsed:.3f}s in all"
        if error < guard:
            print(f"\noffset off by {error * 1000:.1f} ms; measured {measured}x, last in {elapsed:.3f}s")
            return
    raise AssertionError(f"offset still off by {error:.3f}s (guard {guard}s) after {measured} measurements")


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_exchange_clock_ahead_of_ours_windows_follow_its_clock(engine, caplog):
    """The exchange's clock runs 7 s ahead of the host's (its windows too): the governor measures
    the offset and aligns its windows to the exchange's, so a backfill spanning several windows at a
    small limit sees no 429. (Windows of 10 s, announced as such, keep the run short: 7 s is most
    of a window, as 9 s of a minute would not be.)"""
    skew_ms = 7_000
    clock = Clock(offset_ms=skew_ms)
    cfg = SimConfig(
        seed=21,
        history_days=0.2,
        symbols=3,
        trades_per_minute=30,
        silent_share=0.0,
        weight_limit=40,
        weight_window_s=10,
        ban_after=1,
    )
    async with Simulator(cfg, port=0, clock=clock) as sim:
        now = sim.clock.now_ms()
        start, end = past_window(now, 40)
        symbols = sim.market.listed_symbols(now)[-3:]
        started = time.time()
        async with connect_exchange(settings_for(sim)) as client:
            await offset_within_guard(client, skew_ms / 1000, time.time() - started)
            summary = await run_backfill(client, engine, BackfillPlan(start, end, symbols, intervals=("1m", "1h")))
        assert not summary.failed and not summary.incomplete
        windows = sim.stats.weight["127.0.0.1"]
        assert len(windows) >= 3, "the run must span several rate-limit windows to mean anything"
        assert sim.stats.status_429 == 0 and sim.stats.status_418 == 0
        assert max(windows.values()) <= cfg.weight_limit
        assert_equals_truth(engine, sim, symbols, start, end, now)


async def _get_banned(base_url: str) -> None:
    """A careless neighbour on our IP: keeps sending after 429 until the exchange bans the IP."""
    async with aiohttp.ClientSession() as session:
        for _ in range(1000):
            async with session.get(f"{base_url}/api/v1/ping") as resp:
                await resp.read()
                if resp.status == 418:
                    return
    raise AssertionError("the neighbour was never banned")


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_ban_on_our_ip_is_waited_out_and_logged(engine, caplog):
    # The ban must outlast the way to our first request on a loaded machine. It costs little: after
    # it the neighbour's spent window (429 until its end) is waited out anyway, so the test waits
    # until whichever ends later.
    cfg = SimConfig(
        seed=22,
        history_days=0.2,
        symbols=3,
        trades_per_minute=30,
        silent_share=0.0,
        weight_limit=300,
        ban_after=1,
        ban_base_s=15,
    )
    async with Simulator(cfg, port=0) as sim:
        now = sim.clock.now_ms()
        start, end = past_window(now, 20)
        symbols = sim.market.listed_symbols(now)[-2:]
        await _get_banned(sim.base_url)
        limited_before, bans_before, refused_before = sim.stats.while_limited, sim.stats.bans, sim.stats.status_418
        caplog.set_level(logging.WARNING)
        async with connect_exchange(settings_for(sim, max_ban_wait_seconds=60)) as client:
            # our first request met the ban (the only way to learn of it)
            assert sim.stats.status_418 - refused_before == 1
            summary = await run_backfill(client, engine, BackfillPlan(start, end, symbols, intervals=("1m",)))
        assert not summary.failed
        # Only the one request that discovered the ban reached the exchange during it.
        assert sim.stats.while_limited - limited_before == 1
        assert sim.stats.status_418 - refused_before == 1
        assert sim.stats.bans == bans_before
    assert any("IP BANNED" in r.getMessage() for r in caplog.records)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM trades")).scalar() > 0


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_symbols_vanishing_from_exchange_info_are_kept_and_marked(db_url, engine, caplog):
    """Expired symbols drop out of exchangeInfo/optionInfo after a short grace: the daemon marks
    them delisted, keeps their rows, and stops polling them; nothing errors."""
    cfg = SimConfig(
        seed=23, history_days=0.05, symbols=3, trades_per_minute=40, silent_share=0.0, listing_interval_s=20, grace_s=6
    )
    caplog.set_level(logging.INFO)
    async with Simulator(cfg, port=0) as sim:
        settings = load_settings(
            None, {"exchange_url": sim.base_url, "api_key": KEY, "database_url": db_url, **POLL}, defaults_file=None
        )

        def delisted_with_rows() -> bool:
            with engine.connect() as conn:
                return (
                    conn.execute(
                        text(
                            "SELECT count(*) FROM option_symbols s WHERE NOT s.listed AND s.delisted_at IS NOT NULL "
                            "AND EXISTS (SELECT 1 FROM trades t WHERE t.symbol = s.symbol)"
                        )
                    ).scalar()
                    >= 1
                )

        async with running_daemon(settings, stop_timeout=20):
            await until(delisted_with_rows, 180, "a symbol with stored trades to vanish and be marked delisted")
        assert sim.stats.status_429 == 0 and sim.stats.status_418 == 0
    assert any("delisted (kept, no longer polled)" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [
        r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR
    ][:3]
