"""The budget planner: the weight per minute a schedule needs, and what it stretches when that does
not fit (least urgent first, none beyond MAX_STRETCH, the symbol refresh never)."""

from __future__ import annotations

import itertools
import math

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


# --- the adaptive schedule -------------------------------------------------------------------

from collector.daemon.planner import VOLUME_REQUESTS_SHARE, Demand, adaptive_plan, allocate  # noqa: E402


def demands_of(rates: dict[str, float], target=1.0, limit=120.0) -> list[Demand]:
    return [Demand(s, "trades", 5, target, limit, r) for s, r in rates.items()]


def cost(demands: list[Demand], seconds: dict[str, float]) -> float:
    return sum(d.weight / seconds[d.name] for d in demands)


def staleness(demands: list[Demand], seconds: dict[str, float]) -> float:
    return sum(d.priority * seconds[d.name] for d in demands)


def test_allocate_fits_the_budget_exactly_and_gives_busy_symbols_short_intervals():
    demands = demands_of({"busy": 1.0, "normal": 0.1, "quiet": 0.001})
    seconds = allocate(demands, budget_per_second=2.0).seconds
    assert cost(demands, seconds) == pytest.approx(2.0, rel=1e-6)
    assert seconds["busy"] < seconds["normal"] < seconds["quiet"] <= 120.0
    # the optimum: interval proportional to 1/sqrt(priority) where no bound binds
    assert seconds["normal"] / seconds["busy"] == pytest.approx((1.0 / 0.1) ** 0.5, rel=1e-6)


def test_allocate_is_the_optimum_no_small_move_lowers_the_staleness_within_the_budget():
    demands = demands_of({"a": 0.8, "b": 0.3, "c": 0.05, "d": 0.01}, target=0.5, limit=200.0)
    seconds = allocate(demands, budget_per_second=3.0).seconds
    best = staleness(demands, seconds)
    for x, y in itertools.permutations(seconds, 2):  # shorten one, lengthen another at the same cost
        moved = dict(seconds)
        moved[x] *= 0.99
        extra = 5 / moved[x] - 5 / seconds[x]
        moved[y] = 5 / (5 / seconds[y] - extra) if 5 / seconds[y] > extra else float("inf")
        if moved[y] <= 200.0:
            assert staleness(demands, moved) >= best - 1e-9, (x, y)


def test_allocate_within_bounds_and_even_degradation_beyond_them():
    demands = demands_of({"a": 1.0, "b": 0.5}, target=2.0, limit=60.0)
    assert allocate(demands, budget_per_second=100.0).seconds == {"a": 2.0, "b": 2.0}  # everything at target
    squeezed = allocate(demands, budget_per_second=0.05).seconds  # not even the limits fit: all in proportion
    assert squeezed["a"] == squeezed["b"] > 60.0
    assert cost(demands, squeezed) == pytest.approx(0.05, rel=1e-6)
    fixed = [Demand("signals", "signals", 2, 1.5, 1.5, 0.0), *demands]
    seconds = allocate(fixed, budget_per_second=3.0).seconds
    assert seconds["signals"] == 1.5 and cost(demands, seconds) == pytest.approx(3.0 - 2 / 1.5, rel=1e-6)


def test_allocate_polls_a_symbol_on_its_events_when_that_is_no_dearer():
    """Polled when the signal shows a trade: a quiet symbol costs its trades alone, so it is polled
    at once when it trades; a busy one (events more often than its optimum) is spaced."""
    demands = [
        Demand("busy", "trades", 5, 1.5, 120.0, 2.0, events=2.0),
        Demand("quiet", "trades", 5, 1.5, 120.0, 0.01, events=0.01),
    ]
    got = allocate(demands, budget_per_second=2.0)
    assert got.seconds["quiet"] == 1.5 and "quiet" in got.on_events  # at once when it trades
    assert got.seconds["busy"] > 1.5 and "busy" not in got.on_events  # spaced: 5 / interval
    assert got.runs(demands[1]) == pytest.approx((1 - math.exp(-0.01 * 1.5)) / 1.5)  # an interval with a trade
    assert sum(5 * got.runs(d) for d in demands) == pytest.approx(2.0, rel=1e-6)
    # trades its events cannot show (a quarter of them, waiting 60 s for a slower signal) make a
    # symbol polled at its interval that was polled on its events
    blind = Demand("quiet", "trades", 5, 1.5, 120.0, 0.2, events=0.2, blind=0.05, wait=60.0)
    assert "quiet" not in allocate([demands[0], blind], budget_per_second=2.0).on_events


def test_adaptive_plan_keeps_the_other_streams_at_their_targets_until_trades_are_slow():
    s = settings(schedule="adaptive", streams=["klines", "trades", "depth", "tickers"], kline_intervals=["1m", "1h"])
    specs = job_specs(s, n_trading=28, n_history=28)
    rates = {f"S{i}": (0.5 if i < 5 else 0.01) for i in range(28)}
    p = adaptive_plan(s, specs, rates, 1140)
    assert p.seconds["depth"] == 60.0 and p.seconds["tickers"] == 60.0 and p.seconds["klines 1m"] == 60.0
    assert p.seconds["klines 1h"] == 900.0  # a 1h kline asked for at most every quarter hour
    assert p.seconds["trade signals"] == s.trades_signal_seconds
    # with the price signal, every symbol is polled when it trades: that fits, so all at the signal's pace
    assert set(p.trades.values()) == {s.trades_signal_seconds} and not p.behind
    assert p.need_per_minute < p.budget_per_minute
    # without it, polls are blind: the busy symbols get the short intervals, within the budget exactly
    blind = adaptive_plan(s.model_copy(update={"trades_signal_seconds": 0.0}), specs, rates, 1140)
    assert max(blind.trades[f"S{i}"] for i in range(5)) < min(blind.trades[f"S{i}"] for i in range(5, 28))
    assert blind.need_per_minute == pytest.approx(blind.budget_per_minute, rel=1e-3) and not blind.behind
    # a budget too small for every target: everything stretches together, bounded, and says so
    tight = adaptive_plan(s, specs, rates, 200)
    assert tight.behind and {"depth", "tickers"} <= set(tight.behind)
    assert all(
        tight.seconds[j] <= target * s.max_stretch + 1e-6 for j, (target, _) in tight.behind.items() if j != "trades"
    )
    assert tight.need_per_minute <= tight.budget_per_minute * 1.001


def test_priorities_are_configurable_per_stream():
    base = settings(schedule="adaptive", streams=["trades", "depth"])
    specs = job_specs(base, n_trading=50, n_history=50)
    rates = {f"S{i}": 0.2 for i in range(50)}
    normal = adaptive_plan(base, specs, rates, 300)
    depth_first = adaptive_plan(
        settings(schedule="adaptive", streams=["trades", "depth"], stream_priorities={"depth": 10.0}), specs, rates, 300
    )
    assert depth_first.seconds["depth"] < normal.seconds["depth"]
    assert depth_first.trades["S0"] > normal.trades["S0"]


def test_trades_the_price_signal_cannot_see_are_paid_for_by_polls_or_by_a_volume_signal():
    """A busy symbol trading at one price is polled at its interval, the signal or not; the unseen
    trades of quieter symbols wait for their 24h volume instead, read for them alone (weight 1 each)
    as often as what waits on it is worth."""
    s = settings(schedule="adaptive", streams=["klines", "trades", "depth", "tickers"], kline_intervals=["1m", "1h"])
    specs = job_specs(s, n_trading=200, n_history=200)
    rates = {f"S{i}": (0.3 if i < 3 else 1 / 60 if i < 40 else 1 / 3600) for i in range(200)}
    seen = adaptive_plan(s, specs, rates, 1140, {})
    assert not seen.volume_symbols and seen.seconds["tickers"] == 60.0  # nothing waits for a volume
    unseen = {"S0": 0.3, **{f"S{i}": rates[f"S{i}"] / 2 for i in range(3, 40)}}
    p = adaptive_plan(s, specs, rates, 1140, unseen)
    # polled, signal or not, sooner than a volume signal read for 38 symbols would show its trades
    assert "S0" not in p.on_signals and "S0" not in p.volume_symbols
    assert p.volume_symbols == {f"S{i}" for i in range(3, 40)} <= p.on_signals
    assert s.trades_volume_seconds <= p.seconds["volume signals"] < s.trades_sweep_seconds
    assert p.seconds["tickers"] == 60.0 and not p.behind
    assert p.need_per_minute <= p.budget_per_minute * 1.001
    # a tenth of the unseen trades is worth less weight: their volumes are read less often
    less = adaptive_plan(s, specs, rates, 1140, {k: v / 10 for k, v in unseen.items()})
    assert less.seconds["volume signals"] > p.seconds["volume signals"]
    # read one by one, 37 volumes are 37 requests: kept within a share of the raw-request limit
    capped = adaptive_plan(s, specs, rates, 1140, unseen, requests_per_minute=1000.0)
    assert capped.seconds["volume signals"] >= 37 * 60 / (VOLUME_REQUESTS_SHARE * 1000.0)


def test_pushed_symbols_are_only_confirmed_and_their_weight_goes_to_the_rest():
    """A symbol whose trades are pushed costs one page every push_confirm_seconds (less often when
    the budget is short); the weight it freed lets the symbols without push be polled more often, and with every symbol pushed the price
    signal (which serves only symbols not pushed) is off."""
    s = settings(schedule="adaptive", streams=["klines", "trades", "depth"], trades_signal_seconds=0.0)
    specs = job_specs(s, n_trading=40, n_history=40)
    rates = {f"S{i}": 0.3 for i in range(40)}
    rest_only = adaptive_plan(s, specs, rates, 400)
    half = frozenset(f"S{i}" for i in range(20))
    mixed = adaptive_plan(s, specs, rates, 400, pushed=half)
    assert all(s.push_confirm_seconds <= mixed.trades[k] <= s.trades_sweep_seconds for k in half)
    roomy = adaptive_plan(s, specs, rates, 1140, pushed=frozenset(rates))
    assert set(roomy.trades.values()) == {s.push_confirm_seconds}  # when they fit, at their interval
    assert all(mixed.trades[f"S{i}"] < rest_only.trades[f"S{i}"] for i in range(20, 40))
    assert mixed.need_per_minute <= mixed.budget_per_minute * 1.001
    with_signal = settings(schedule="adaptive", streams=["klines", "trades", "depth"])
    all_pushed = adaptive_plan(with_signal, specs, rates, 1140, pushed=frozenset(rates))
    assert "trade signals" not in all_pushed.seconds and "volume signals" not in all_pushed.seconds
    assert not all_pushed.on_signals
    # one symbol pushed at 28: REST spends 5 every minute on it instead of polling it on signals
    assert "trade signals" in adaptive_plan(with_signal, specs, rates, 1140, pushed=frozenset({"S0"})).seconds


def test_depth_weight_counts_only_the_books_polled():
    specs = {sp.name: sp for sp in job_specs(settings(), n_trading=28, n_history=28, n_depth=3)}
    assert specs["depth"].weight_per_run == 3


def test_confirmations_of_many_pushed_symbols_stretch_toward_the_sweep_when_they_do_not_fit():
    s = settings(schedule="adaptive", streams=["klines", "trades", "depth"], trades_signal_seconds=0.0)
    rates = {f"S{i}": 0.3 for i in range(200)}
    specs = job_specs(s, n_trading=200, n_history=200, n_depth=0)
    p = adaptive_plan(s, specs, rates, 1140, pushed=frozenset(rates))
    intervals = set(p.trades.values())
    assert min(intervals) > s.push_confirm_seconds and max(intervals) <= s.health_max_lag_seconds / 2
    assert p.need_per_minute <= p.budget_per_minute * 1.001
    assert p.seconds["klines 1m"] < 60 * s.max_stretch  # the other streams are not starved for them
