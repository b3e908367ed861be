"""The account stream against a live simulator: after orders are placed, filled, partly filled and
cancelled, and an option is shorted and called, the account tables equal the simulator's account,
row for row; the same when the collector is killed (`kill -9`) at random moments meanwhile.
"""

from __future__ import annotations

import asyncio
import random
import signal
import sys
from decimal import Decimal

import aiohttp
import pytest

from collector.config import load_settings
from collector.simulator import SimConfig, Simulator
from tests.helpers.account_truth import (
    KEY,
    SECRET,
    Trader,
    account_truth,
    differences,
    stored_account,
    trader_client,
)
from tests.helpers.daemons import running_daemon
from tests.helpers.kills import run_and_kill, runs_begun
from tests.helpers.polling import until
from tests.helpers.truth import cli_env, tail

# Symbols that live an hour, trading a few times a second; one account, no demo history; a weight
# limit that fits polling the account every second (the planner would stretch it to fit 1200).
SIM = dict(
    weight_limit=12_000,
    seed=14,
    history_days=0.02,
    symbols=6,
    trades_per_minute=180,
    silent_share=0.0,
    listing_interval_s=600,
    accounts={KEY: SECRET},
)
POLL = dict(
    streams=["account"],
    account_poll_seconds=1.0,
    account_history_seconds=2.0,
    symbols_refresh_seconds=5.0,
    lookback_hours=0.02,
    metrics_port=0,
    http_read_timeout=2.0,
    push=[],  # REST alone, as these tests were written for; with the user data stream: test_push.py
)


def account_settings(sim: Simulator, db_url: str, **extra):
    """The daemon on the account of KEY, at POLL's pace (``extra`` overrides)."""
    return load_settings(
        None,
        {"exchange_url": sim.base_url, "api_key": KEY, "api_secret": SECRET, "database_url": db_url, **POLL, **extra},
        defaults_file=None,
    )


async def equal_to_truth(engine, sim: Simulator, timeout: float, alive=lambda: True) -> dict:
    """Until the account tables equal the account truth (bounded); returns the truth. The truth is
    read on the event loop's thread (the simulator's), the tables in a worker thread."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        truth = account_truth(sim)
        diff = differences(truth, await asyncio.to_thread(stored_account, engine))
        if not diff:
            return truth
        assert loop.time() < deadline, f"the account tables differ from the account after {timeout:g}s: {diff}"
        assert alive(), "the collector stopped before it caught up"
        await asyncio.sleep(0.5)


def check_history(truth: dict) -> None:
    """The history the trader made is all there: every kind of ending, a short and a call."""
    orders = truth["orders"].values()
    statuses = {(status, executed > 0) for _, _, executed, _, status, *_ in orders}
    assert statuses >= {("FILLED", True), ("CANCELED", True), ("CANCELED", False)}, statuses
    assert {side for *_, side, _, _ in orders} == {"BUY", "SELL"}
    assert sorted(status for _, status, *_ in truth["records"].values()) == ["1", "2"]
    assert truth["positions"] and truth["balances"]


async def test_account_tables_equal_the_account_row_for_row(engine, db_url):
    async with Simulator(SimConfig(**SIM), port=0) as sim, aiohttp.ClientSession() as session:
        trader = Trader(sim, trader_client(session, sim))
        await trader.client.configure_limits()
        async with running_daemon(account_settings(sim, db_url)) as daemon:
            await trader.history()
            await trader.all_final()
            truth = await equal_to_truth(engine, sim, 60, alive=lambda: not daemon.task.done())
        check_history(truth)
        # partly filled orders were seen in that state too (kept current until final): never two rows
        assert len(stored_account(engine)["orders"]) == len(truth["orders"])


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_account_killed_anywhere_loses_nothing(engine, db_url, tmp_path):
    async with Simulator(SimConfig(**SIM), port=0) as sim, aiohttp.ClientSession() as session:
        trader = Trader(sim, trader_client(session, sim))
        await trader.client.configure_limits()
        env = cli_env(
            db_url,
            sim,
            COLLECTOR_API_KEY=KEY,
            COLLECTOR_API_SECRET=SECRET,
            COLLECTOR_STREAMS="account",
            COLLECTOR_PUSH="",  # REST alone, as POLL
            COLLECTOR_METRICS_PORT="0",
            COLLECTOR_ACCOUNT_POLL_SECONDS="1",
            COLLECTOR_ACCOUNT_HISTORY_SECONDS="2",
            COLLECTOR_SYMBOLS_REFRESH_SECONDS="5",
            COLLECTOR_LOOKBACK_HOURS="0.02",
            COLLECTOR_HTTP_READ_TIMEOUT="2",
            COLLECTOR_LEASE_TTL_SECONDS="3",
            COLLECTOR_DATA_DIR=str(tmp_path),
        )
        cmd = [sys.executable, "-m", "collector", "run"]
        rng = random.Random(1414)
        trading = asyncio.create_task(trader.history())
        kills = []
        run = 0
        # kill while the account changes, and then some: at least 6 kills, each at a random moment
        while len(kills) < 6 or not trading.done():
            _, how = await run_and_kill(
                cmd, env, tmp_path / f"run{run}.log", engine, rng, (0.3, 3.0), on_commit=run % 3 == 1
            )
            assert how != "finished", tail(tmp_path / f"run{run}.log")
            kills.append(how)
            run += 1
        await trading
        await trader.all_final()
        runs_before = await asyncio.to_thread(runs_begun, engine)
        with open(tmp_path / "final.log", "wb") as log:
            proc = await asyncio.create_subprocess_exec(*cmd, env=env, stdout=log, stderr=log)
            await until(lambda: runs_begun(engine) > runs_before, 60, "the last run to begin")
            truth = await equal_to_truth(engine, sim, 90, alive=lambda: proc.returncode is None)
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 20) == 0, tail(tmp_path / "final.log")
        print(f"account kills: {kills}")
        check_history(truth)
        assert len(kills) >= 6


async def test_backfill_of_orders_and_records_equals_the_demo_accounts_window(engine):
    """The demo account's history, fetched by `backfill --streams orders,records` over a window:
    exactly the orders placed and the shorts and calls made in it, and again costs no request."""
    from collector.backfill.plan import BackfillPlan
    from collector.backfill.run import run_backfill
    from collector.exchange.session import connect_exchange
    from collector.simulator.accounts import DEMO_KEY, DEMO_SECRET
    from tests.helpers.truth import dt, ms

    cfg = SimConfig(seed=21, history_days=1, symbols=12, weight_limit=0, raw_limit=0, listing_interval_s=3600)
    async with Simulator(cfg, port=0) as sim:
        sim.clock.freeze()
        now = sim.now_ms()
        # The demo's history depends on the hour it is made at, and shorts and calls are rare: the
        # window reaches back 8 hours, or further when that is what it takes to hold two of them.
        listed = set(sim.market.listed_symbols(now))
        end = now - 3_600_000
        account = sim.accounts.get(DEMO_KEY, now)
        made = sorted(r.created for r in account.records if r.symbol in listed and r.created < end)
        start = min(now - 8 * 3_600_000, *made[-2:]) - 12_345
        start, end = dt(max(start, sim.market.history_start)), dt(end)
        settings = load_settings(
            None, {"exchange_url": sim.base_url, "api_key": DEMO_KEY, "api_secret": DEMO_SECRET}, defaults_file=None
        )
        plan = BackfillPlan(start, end, streams=("orders", "records"))
        async with connect_exchange(settings) as client:
            summary = await run_backfill(client, engine, plan)
            assert not summary.failed and not summary.incomplete
            orders = {
                (o.symbol, o.order_id): (o.status, Decimal(o.executed))
                for o in account.orders.values()
                if o.symbol in listed and ms(start) <= o.time < ms(end)
            }
            records = {
                r.record_id: r.symbol
                for r in account.records
                if r.symbol in listed and ms(start) <= r.created < ms(end)
            }
            assert len(orders) >= 10 and len(records) >= 2  # or this proves less than it claims
            stored = stored_account(engine)
            assert {k: (v[4], v[2]) for k, v in stored["orders"].items()} == orders
            assert {k: v[0] for k, v in stored["records"].items()} == records
            assert summary.rows == {"orders": len(orders), "records": len(records)}
            served = dict(sim.stats.by_endpoint)
            again = await run_backfill(client, engine, plan)
            assert all(t.skipped for t in again.tasks) and again.weight == 0
            assert [sim.stats.by_endpoint[e] - served.get(e, 0) for e in ("historyOrders", "record")] == [0, 0]


@pytest.mark.parametrize("refuse_expired", [False, True], ids=["swept", "refused-after-expiry"])
async def test_orders_placed_just_before_expiry_are_found_and_end_as_the_exchange_ended_them(
    engine, db_url, refuse_expired
):
    """Orders placed after the last history sweep before their symbol expires: the expired symbol's
    final sweep waits for the account (or, when the exchange refuses the expired symbol's market
    data, the account keeps paging it while it is listed), and an order still open at expiry, which
    the exchange cancels then, ends CANCELED in the table, not open for ever."""
    from collector.simulator import FaultConfig

    cfg = SimConfig(
        seed=31,
        history_days=0.01,
        symbols=3,
        trades_per_minute=60,
        silent_share=0.0,
        listing_interval_s=20,  # each symbol lives a minute
        grace_s=600,
        weight_limit=0,
        accounts={KEY: SECRET},
        faults=FaultConfig(refuse_expired=refuse_expired),
    )
    async with Simulator(cfg, port=0) as sim, aiohttp.ClientSession() as session:
        trader = Trader(sim, trader_client(session, sim))
        await trader.client.configure_limits()
        settings = account_settings(
            sim,
            db_url,
            streams=["trades", "account"],
            trades_poll_seconds=1.0,
            account_history_seconds=15.0,
            symbols_refresh_seconds=2.0,
        )
        async with running_daemon(settings) as daemon:
            ctx = daemon.running.ctx
            opt = await _expiring_before_the_next_sweep(ctx, sim)
            resting = [await trader.client.place_order(opt.name, "BUY", Decimal(q), Decimal("0.0001")) for q in (1, 2)]
            truth = await equal_to_truth(engine, sim, 90, alive=lambda: not daemon.task.done())
        ended = {oid: row for (symbol, oid), row in truth["orders"].items() if symbol == opt.name}
        assert {o.order_id for o in resting} <= set(ended)
        assert all(ended[o.order_id][4] == "CANCELED" for o in resting)  # cancelled by the exchange at expiry
        stored = stored_account(engine)["orders"]
        assert all(stored[(opt.name, o.order_id)][4] == "CANCELED" for o in resting)
        if not refuse_expired:
            assert ctx.symbols[opt.name].swept  # and only after its orders were seen


async def _expiring_before_the_next_sweep(ctx, sim):
    """Right after a history sweep, a symbol that expires before the next one (15 s later): orders
    placed on it now are seen only by a sweep after its expiry."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 90
    while True:
        done = max((at for (stream, _), at in ctx.caught_up.items() if stream == "orders"), default=0.0)
        await until(
            lambda d=done: max((at for (s, _), at in ctx.caught_up.items() if s == "orders"), default=0.0) > d,
            30,
            "a history sweep",
        )
        now = sim.now_ms()
        soon = [o for o in sim.market.listed(now) if 4_000 < o.expiry - now < 12_000]
        if soon:
            return soon[0]
        assert loop.time() < deadline, "no symbol expired between two sweeps"
