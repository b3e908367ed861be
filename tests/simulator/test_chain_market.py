"""The realistic market (``market="chain"``): chains of calls and puts per expiry around the money,
prices that follow the underlying as Black-Scholes says, activity concentrated and bursty, all of it
a pure function of the seed (klines stay exact aggregates: test_market runs on both models)."""

from __future__ import annotations

import functools
import itertools
import math
import re
import statistics
from collections import defaultdict

from sim_helpers import T0, small_config

from collector.simulator import Market
from collector.simulator.chain import black_scholes

HOUR = 3_600_000
NAME_RE = re.compile(r"^(BTC|ETH|EOS|LTC|BNB)\d{4}(CALL|PUT)W?\d*$")


def chain_config(**kw):
    base = dict(market="chain", strikes=3, symbols=28, listing_interval_s=21_600, history_days=1, trades_per_minute=7)
    return small_config(**{**base, **kw})


@functools.cache
def market(seed: int = 3) -> Market:
    return Market(chain_config(seed=seed))


def test_every_expiry_is_a_chain_of_calls_and_puts_around_the_money():
    m = market()
    infos = [o for o in m.option_info(T0) if o["status"] == "TRADING"]
    assert 24 <= len(infos) <= 30  # about `symbols` at once
    chains = defaultdict(list)
    for info in infos:
        assert NAME_RE.match(info["symbol"]), info["symbol"]
        opt = m.option(info["symbol"])
        chains[(opt.underlying, opt.expiry)].append(opt)
    assert len(chains) >= 4 and len({u for u, _ in chains}) >= 4  # several underlyings and expiries
    assert any(opt.weekly for opts in chains.values() for opt in opts) and any(
        not opt.weekly for opts in chains.values() for opt in opts
    )
    for (_, expiry), opts in chains.items():
        calls = sorted(o.strike for o in opts if o.is_call)
        puts = sorted(o.strike for o in opts if not o.is_call)
        assert calls == puts and len(set(calls)) == 3, opts  # a call and a put at each of 3 strikes
        listing = opts[0].listing
        assert all(o.listing == listing and o.expiry == expiry for o in opts)  # listed and expiring together
        spot = opts[0].spot0  # the underlying when the chain was listed: the strikes surround it
        step = calls[1] - calls[0]
        assert calls[2] - calls[1] == step and abs(calls[1] - spot * 10_000) <= step
        assert len({o.name for o in opts}) == 6
    # the ticker names the strike and the underlying's price (what option_chain and the put/call
    # examples of docs/sql.md read)
    opt = next(iter(chains.values()))[0]
    ticker = m.ticker_24hr(opt, T0)
    assert int(ticker["exertionPrice"].replace(".", "")) == opt.strike
    assert abs(float(ticker["referencePrice"]) - opt.und.price(T0)) < 0.001


def test_prices_follow_the_underlying_as_black_scholes_says():
    m = market()
    opts = [o for o in m.listed(T0) if o.expiry > T0 + HOUR]
    by_key = {(o.underlying, o.expiry, o.strike, o.is_call): o for o in opts}
    for (u, expiry, strike, is_call), call in by_key.items():
        if not is_call:
            continue
        put = by_key[(u, expiry, strike, False)]
        spot = call.und.price(T0)
        # put-call parity of the fair values (no rates): C - P = S - K, to the tick floors
        c, p = call.fair_ticks(T0), put.fair_ticks(T0)
        if c > 1 and p > 1:
            assert math.isclose(c - p, spot * 10_000 - strike, abs_tol=2)
        # a higher strike: a cheaper call and a dearer put
        for other in (o for o in opts if o.underlying == u and o.expiry == expiry and o.strike > strike):
            assert (other.fair_ticks(T0) <= c) if other.is_call else (other.fair_ticks(T0) >= p)
    # at expiry an option is worth what it is in the money
    assert black_scholes(100.0, 90.0, 0.0, 0.7, True) == 10.0 and black_scholes(100.0, 90.0, 0.0, 0.7, False) == 0
    # trades happen around the fair value
    busy = max(opts, key=lambda o: len(m._trades_range(o, T0 - HOUR, T0)))
    trades = m._trades_range(busy, T0 - HOUR, T0)
    assert trades and all(
        abs(p / busy.fair_ticks(t // 60_000 * 60_000 + 30_000) - 1) < 0.01 for _, p, _, t, _ in trades
    )


def test_the_underlying_moves_with_jumps_and_stays_plausible():
    m = market()
    und = m.option(m.listed_symbols(T0)[0]).und
    minutes = [und.price(T0 - 7 * 24 * HOUR + i * 60_000) for i in range(7 * 24 * 60)]
    moves = [math.log(b / a) for a, b in itertools.pairwise(minutes)]
    assert statistics.pstdev(moves) > 0  # it moves
    annual = statistics.pstdev(moves) * math.sqrt(365 * 24 * 60)
    assert 0.2 < annual < 2.0, annual  # a plausible volatility
    assert 0.3 < minutes[-1] / und.price0 < 3  # a decade later, still near its reference
    assert und.price(T0 + 12_345) == und.price(T0 + 12_345)  # pure


def test_activity_is_concentrated_and_bursty():
    m = market()
    counts, per_minute = {}, {}
    start = T0 - 6 * HOUR
    for opt in m.listed(T0):
        if opt.expiry <= T0:
            continue
        trades = m._trades_range(opt, start, T0)
        counts[opt.name] = len(trades)
        minutes = [0] * 360
        for t in trades:
            minutes[(t[3] - start) // 60_000] += 1
        per_minute[opt.name] = minutes
    ranked = sorted(counts.values(), reverse=True)
    total = sum(ranked)
    assert total > 1000
    assert sum(ranked[: len(ranked) // 4]) >= 0.6 * total  # a quarter of the symbols: most trades
    assert sum(1 for n in ranked if n / 6 < 20) >= len(ranked) // 4  # many trade a few times an hour
    busiest = per_minute[max(counts, key=counts.get)]
    mean = statistics.mean(busiest)
    assert statistics.pvariance(busiest) / mean > 3  # clustered arrivals, not a Poisson stream


def test_the_same_seed_is_the_same_market_whenever_it_starts():
    a = Market(chain_config(seed=5, start_ms=T0))
    b = Market(chain_config(seed=5, start_ms=T0 + 5 * HOUR))
    c = Market(chain_config(seed=6, start_ms=T0))
    assert a.listed_symbols(T0) == b.listed_symbols(T0) == c.listed_symbols(T0)
    for sym in a.listed_symbols(T0)[:8]:
        assert a.trades(sym, T0 - HOUR, T0) == b.trades(sym, T0 - HOUR, T0)
    assert any(a.trades(s, T0 - HOUR, T0) != c.trades(s, T0 - HOUR, T0) for s in a.listed_symbols(T0))


def test_trade_ids_are_unique_across_a_chains_symbols():
    m = market()
    everything = [t for sym in m.listed_symbols(T0) for t in m.trades(sym, T0 - 2 * HOUR, T0)]
    ids = [t["id"] for t in everything]
    assert len(ids) > 1000 and len(set(ids)) == len(ids)
    by_id = sorted(everything, key=lambda t: t["id"])
    assert [t["time"] for t in by_id] == sorted(t["time"] for t in by_id)


def test_a_boost_multiplies_one_symbols_activity_over_its_span():
    plain = market()
    sym = max(
        (o for o in plain.listed(T0) if o.expiry > T0), key=lambda o: len(plain._trades_range(o, T0 - HOUR, T0))
    ).name
    boosted = Market(chain_config(seed=3, boosts=((sym, T0 - 10 * 60_000, T0 - 5 * 60_000, 10.0),)))
    assert sym in boosted.listed_symbols(T0)
    before = len(plain.trades(sym, T0 - 10 * 60_000, T0 - 5 * 60_000))
    after = len(boosted.trades(sym, T0 - 10 * 60_000, T0 - 5 * 60_000))
    assert after > 5 * max(before, 1)
    assert boosted.trades(sym, T0 - HOUR, T0 - 10 * 60_000) == plain.trades(sym, T0 - HOUR, T0 - 10 * 60_000)


def test_the_chain_history_is_pinned():
    """Its RNG draws define the chain market too: refactors must not change a single trade."""
    import hashlib

    m = Market(chain_config(seed=11, silent_share=0.2))
    h = hashlib.sha256()
    for sym in m.listed_symbols(T0):
        h.update(repr(m.trades(sym, T0 - 3 * HOUR, T0 + 1)).encode())
    assert h.hexdigest() == "621cd7f8066a7bdf400f2e71fa6fe5d2fca301ae7bf0e510e5457c66990e1f35"
