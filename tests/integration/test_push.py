"""The daemon with push on, against the simulator's web-socket streams over loopback: trades exact
(every one once, against the simulator's truth) and mostly first seen by push, closed klines equal
REST's, the open kline live from the stream; under dropped connections, silent stalls, duplicated
and reordered messages; and with push off nothing is asked of the streams at all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from sqlalchemy import text

from collector import metrics
from collector.analyst.status import render_push
from collector.simulator import FaultConfig, SimConfig, Simulator
from tests.helpers.daemon_truth import caught_up, check_up_to
from tests.helpers.daemons import running_daemon
from tests.integration.test_adaptive import CHAIN as ADAPTIVE_CHAIN
from tests.integration.test_adaptive import adaptive_settings

# The adaptive tests' chains (6 symbols listed every 10 s, living minutes), fewer at once.
CHAIN = {**ADAPTIVE_CHAIN, "seed": 18, "symbols": 18}
RUN = timedelta(seconds=40)
FAULTY_RUN = timedelta(seconds=30)  # long enough for several drops, stalls and renewals
# seconds: what was made while a connection was down is stored this soon after it is back. The goal
# (10 s) is measured by the push benchmark; here the budget is overdrawn on purpose (POLL asks more
# than fits) and another test may share the cores (12.5 s was seen so), but a repair that waited for
# the routine confirmation (push_confirm_seconds, 30 s here; 34.75 s was seen before repairs went
# first) still fails it.
REPAIR = 20.0
DOWN_MARGIN = 1.0  # seconds


def push_settings(sim: Simulator, db_url: str, **extra):
    pushed = dict(
        push=["trades", "klines", "depth"],
        # REST only confirms: rarely, so what the streams deliver is visibly theirs
        push_confirm_seconds=30.0,
        trades_sweep_seconds=30.0,
        stream_stall_seconds=2.0,
    )
    return adaptive_settings(sim, db_url, **{**pushed, **extra})


def repaired_late(engine, sim: Simulator, intervals, until: datetime) -> list[tuple[str, int, float]]:
    """(symbol, trade id, seconds after the reconnect) of every trade made while its symbol's
    connection was down (from DOWN_MARGIN before the daemon saw it go, as the last push before a
    cut is lost with it) and written more than REPAIR after the connection was back up."""
    with engine.connect() as conn:
        written = {
            (r[0], r[1]): float(r[2])
            for r in conn.execute(text("SELECT symbol, trade_id, extract(epoch FROM ingested_at) FROM trades"))
        }
    late = []
    for symbol, down, up in intervals:
        if up > until.timestamp():
            continue
        for t in sim.market.trades(symbol, int((down - DOWN_MARGIN) * 1000), int(up * 1000)):
            after = written[(symbol, t["id"])] - up
            if after > REPAIR:
                late.append((symbol, t["id"], round(after, 2)))
    return late


def first_seen() -> dict[str, float]:
    return {s: metrics.TRADES_FIRST_SEEN.labels(s)._value.get() for s in ("push", "rest", "repair")}


async def test_push_stores_every_trade_once_fresh_and_closed_klines_stay_rests(engine, db_url):
    async with Simulator(SimConfig(**CHAIN), port=0) as sim:
        before = first_seen()
        started = datetime.now(UTC)
        async with running_daemon(push_settings(sim, db_url)) as daemon:
            await caught_up(
                engine, sim, started, started + RUN, RUN.total_seconds() + 45, alive=lambda: not daemon.task.done()
            )
            state, conns = daemon.running.ctx.push.state(), len(daemon.running.ctx.push.conns)
            async with aiohttp.ClientSession() as http:  # the same figures on /healthz and /metrics
                base = f"http://127.0.0.1:{daemon.running.metrics_port}"
                async with http.get(f"{base}/healthz") as r:
                    health = (await r.json())["push"]
                async with http.get(f"{base}/metrics") as r:
                    exposed = await r.text()
            with engine.connect() as conn:
                open_from_stream = conn.execute(
                    text("SELECT count(*) FROM klines WHERE NOT is_closed AND trade_count IS NULL")
                ).scalar()
                # trade time (the simulator's, same host clock) -> row written (the database's now())
                lags = (
                    conn.execute(
                        text(
                            "SELECT extract(epoch FROM ingested_at - time) FROM trades WHERE time >= :lo AND time < :hi"
                        ),
                        {"lo": started + timedelta(seconds=10), "hi": started + RUN},
                    )
                    .scalars()
                    .all()
                )
        result = check_up_to(engine, sim, started, started + RUN)  # trades exact; closed klines = truth
        after = first_seen()
    assert result["trades"] > 200 and len(lags) > 100
    # REST alone confirms each symbol every 30 s here (its median lag would be about 15 s): only
    # the stream stores most trades within 2 s (the bound leaves room for a machine whose other
    # core runs another test: 86% within 1.5 s was seen so, median 0.11 s)
    fresh = sum(1 for x in lags if x < 2.0) / len(lags)
    median = sorted(lags)[len(lags) // 2]
    assert fresh > 0.8 and median < 1.0, (fresh, median)
    seen = {s: after[s] - before[s] for s in after}
    assert seen["push"] > 0 and seen["repair"] <= 0.02 * seen["push"], seen
    assert state["connections"]["up"] == conns > 1
    assert state["unreadable"] == 0  # (a reconnect may happen: a loaded machine can stall a push 2 s)
    assert health["connections"]["up"] > 1 and health["trades_first_seen"]["push"] > 0
    assert f'jex_push_connections{{state="up"}} {float(health["connections"]["up"])}' in exposed
    assert f"{state['connections']['up']} of {conns} connections up" in render_push(state)  # collector status
    assert open_from_stream > 0  # the open kline, written from the stream (no counts)
    assert sim.stats.status_429 == 0 and sim.stats.status_418 == 0


async def faulty_run(engine, db_url, sim_config: SimConfig, **extra):
    """The daemon with push on against a simulator for FAULTY_RUN, until every trade made in it is
    stored exactly once; the simulator, the daemon's push (its figures kept) and when it began."""
    async with Simulator(sim_config, port=0) as sim:
        started = datetime.now(UTC)
        async with running_daemon(push_settings(sim, db_url, **extra)) as daemon:
            await caught_up(
                engine,
                sim,
                started,
                started + FAULTY_RUN,
                FAULTY_RUN.total_seconds() + 45,
                alive=lambda: not daemon.task.done(),
            )
            push = daemon.running.ctx.push
        check_up_to(engine, sim, started, started + FAULTY_RUN)
    return sim, push, started


@pytest.mark.parametrize("schedule", ["adaptive", pytest.param("fixed", marks=pytest.mark.slow)])
async def test_drops_stalls_duplicates_reordering_and_renewals_lose_and_double_nothing(engine, db_url, schedule):
    """Connections dropped, stalled, cut by the exchange at the end of their lifetime (here 15 s)
    and renewed by the daemon before theirs (here 11 s), messages sent twice and out of order:
    every trade once, with either REST schedule confirming."""
    faults = FaultConfig(ws_drop_s=8.0, ws_stall_s=12.0, ws_stall_len_s=4.0, ws_dup_rate=0.2, ws_reorder_rate=0.2)
    renewed = metrics.PUSH_RECONNECTS.labels("renewed")._value.get()
    sim, push, _ = await faulty_run(
        engine, db_url, SimConfig(**CHAIN, faults=faults, lifetime_s=15), schedule=schedule, stream_renew_seconds=11.0
    )
    state = push.state()
    assert state["reconnects"] >= 2 and state["stalls"] >= 1, state
    assert metrics.PUSH_RECONNECTS.labels("renewed")._value.get() > renewed
    assert sim.stats.ws_drops >= 1 and sim.stats.ws_dups >= 1 and sim.stats.ws_reorders >= 1


async def test_what_a_dropped_connection_missed_is_repaired_at_once_not_at_the_routine_confirmation(engine, db_url):
    """Connections dropped every 15 s or so (each reconnect costs its symbols a REST confirmation
    from the checkpoint, weight 5: here about a fifth of the budget, beside routine confirmations
    and the other streams stretched to fit): every trade made while a connection was down is
    written within REPAIR of its return, ahead of the routine polls."""
    sim, push, started = await faulty_run(engine, db_url, SimConfig(**CHAIN, faults=FaultConfig(ws_drop_s=15.0)))
    intervals = push.down_intervals()
    late = repaired_late(engine, sim, intervals, started + FAULTY_RUN)
    assert len(intervals) >= 3 and sim.stats.ws_drops >= 3, intervals
    assert not late, late


async def test_push_off_asks_nothing_of_the_streams(engine, db_url):
    async with Simulator(SimConfig(**CHAIN), port=0) as sim:
        started = datetime.now(UTC)
        async with running_daemon(push_settings(sim, db_url, push=[])) as daemon:
            await caught_up(
                engine, sim, started, started + timedelta(seconds=10), 60, alive=lambda: not daemon.task.done()
            )
            assert daemon.running.ctx.push is None
        check_up_to(engine, sim, started, started + timedelta(seconds=10))
    assert sim.stats.ws_opened == 0


async def test_the_account_from_the_user_data_stream_equals_the_account_under_faults(engine, db_url):
    """Orders placed, filled, partly filled and cancelled, an option shorted and called, while the
    user data stream reorders, duplicates and drops: the account tables equal the account, row for
    row; the stream delivered the changes (the REST polls run only every 30 s here)."""
    from tests.helpers.account_truth import Trader, stored_account, trader_client
    from tests.integration.test_account import SIM, account_settings, check_history, equal_to_truth

    faults = FaultConfig(ws_drop_s=6.0, ws_dup_rate=0.2, ws_reorder_rate=0.3)
    async with Simulator(SimConfig(**SIM, faults=faults), port=0) as sim, aiohttp.ClientSession() as session:
        trader = Trader(sim, trader_client(session, sim))
        await trader.client.configure_limits()
        settings = account_settings(
            sim, db_url, push=["account"], account_poll_seconds=30.0, account_history_seconds=30.0
        )
        async with running_daemon(settings) as daemon:
            await trader.history()
            await trader.all_final()
            truth = await equal_to_truth(engine, sim, 90, alive=lambda: not daemon.task.done())
            user = daemon.running.ctx.push.user.state()
        check_history(truth)
        assert len(stored_account(engine)["orders"]) == len(truth["orders"])
    assert user["events"]["execOptionReport"] >= len(truth["orders"]) and user["events"]["accountOptionInfo"] > 0
    assert user["events"]["unreadable"] == 0 and user["reconnects"] >= 1 and sim.stats.ws_drops >= 1, user
