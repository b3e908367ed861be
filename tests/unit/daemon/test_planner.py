"""The budget planner: the weight per minute a schedule needs, and what it stretches when that does
not fit (least urgent first, none beyond MAX_STRETCH, the symbol refresh never)."""

from __future__ import annotations

import itertools

import pytest

from collector.config import load_settings
from collector.daemon import planner
from collector.daemon.planner import MAX_STRETCH, PLAN_SHARE, JobSpec, job_specs, need, plan


def settings(**overrides):
    base = {
        "streams": ["klines", "trades", "depth", "tickers", "avg_price", "book_ticker"],
        "kline_intervals": ["1m", "1h"],
        "trades_poll_seconds": 15.0,
        "klines_poll_seconds": 60.0,
        "depth_poll_seconds": 60.0,
        "tickers_poll_seconds": 60.0,
        "avg_price_poll_seconds": 60.0,
        "book_ticker_poll_seconds": 60.0,
        "symbols_refresh_seconds": 300.0,
    }
    return load_settings(None, {**base, **overrides}, defaults_file=None)


def test_weights_per_run_follow_the_endpoint_table():
    specs = {s.name: s for s in job_specs(settings(), n_trading=28, n_history=30)}
    assert specs["trades"].weight_per_run == 5 * 30  # historicalTrades, per symbol with history
    assert specs["klines 1m"].weight_per_run == specs["klines 1h"].weight_per_run == 30
    assert specs["depth"].weight_per_run == 28 and specs["avg_price"].weight_per_run == 28
    assert specs["tickers"].weight_per_run == 28  # 28 single-symbol calls are cheaper than one of 40
    assert specs["book_ticker"].weight_per_run == 2  # the all-symbol call (2) beats 28 of 1
    assert job_specs(settings(), 50, 50)[-1].name == "partitions"
    assert {s.name: s.weight_per_run for s in job_specs(settings(), 50, 50)}["tickers"] == 40
    assert specs["symbols"].weight_per_run == 2


def test_a_schedule_that_fits_is_left_as_configured():
    specs = job_specs(settings(), 28, 28)
    p = plan(specs, 1140)
    assert p.fits and not p.changes
    assert p.seconds == {s.name: s.base_seconds for s in specs}
    assert p.need_per_minute == pytest.approx(need(specs, p.seconds))
    assert p.budget_per_minute == pytest.approx(1140 * PLAN_SHARE)


def test_the_least_urgent_jobs_stretch_first_and_trades_last():
    specs = job_specs(settings(trades_poll_seconds=5.0), 28, 28)
    p = plan(specs, 1140)
    assert p.fits and p.need_per_minute <= p.budget_per_minute
    stretch = {s.name: p.seconds[s.name] / s.base_seconds for s in specs}
    assert stretch["symbols"] == 1 and stretch["partitions"] == 1  # never: refresh, and weightless upkeep
    order = ["book_ticker", "avg_price", "klines 1h", "klines 1m", "depth", "tickers", "trades"]
    # a job is stretched only once every less urgent one is at its limit
    for lower, higher in itertools.pairwise(order):
        if stretch[higher] > 1:
            assert stretch[lower] * planner.STEP > MAX_STRETCH, (lower, higher, stretch)
    assert all(v <= MAX_STRETCH for v in stretch.values())
    assert p.changes and all("->" in c for c in p.changes)


def test_a_schedule_that_cannot_fit_says_so():
    specs = job_specs(settings(trades_poll_seconds=1.0), 400, 400)
    p = plan(specs, 1140)
    assert not p.fits and p.need_per_minute > p.budget_per_minute
    assert all(p.seconds[s.name] / s.base_seconds <= MAX_STRETCH for s in specs)


def test_need_is_weight_per_minute():
    specs = [JobSpec("a", "depth", 30.0, 10), JobSpec("b", "trades", 15.0, 5)]
    assert need(specs, {"a": 30.0, "b": 15.0}) == pytest.approx(10 * 2 + 5 * 4)


def test_the_account_stream_is_in_the_plan_with_its_weights():
    s = settings(streams=["trades", "account"], account_poll_seconds=60.0, account_history_seconds=300.0)
    specs = {x.name: x for x in job_specs(s, n_trading=28, n_history=30, n_releasable=10)}
    assert specs["account"].weight_per_run == 1 + 2 + 1 * 10  # account, position, info per shortable
    assert specs["account history"].weight_per_run == 5 * 30 + 5 * 10  # historyOrders each, record each shortable
    assert specs["account"].stream == specs["account history"].stream == "account"
    p = plan(list(specs.values()), 1140)
    assert p.need_per_minute == pytest.approx(need(list(specs.values()), p.seconds))
    assert p.need_per_minute >= 13 + 200 / 5  # both account jobs are counted in what the plan needs
    # when the budget is short, the account gives way before trades do
    tight = plan(list(specs.values()), 700)
    assert tight.seconds["account history"] > 300.0 and tight.seconds["trades"] == 15.0
