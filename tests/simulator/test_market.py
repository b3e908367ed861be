"""Ground truth: klines are exact aggregates of the trades; the market is a pure function of the seed."""

from __future__ import annotations

import functools
import itertools
from decimal import Decimal as D

import pytest
from sim_helpers import KEY, T0, get, small_config, trading_symbol

from collector.simulator import INTERVALS, Market

DAY = 86_400_000


def open_of(interval: str, t: int) -> int:
    """Independent alignment: epoch multiples, weeks from Monday 1970-01-05."""
    n = INTERVALS[interval]
    if interval == "1w":
        monday = 4 * DAY
        return monday + (t - monday) // n * n
    return t - t % n


def aggregate(trades, interval, first_open, last_open, initial, now):
    """Kline rows from raw trades, written from the seed's field list (not the simulator's code)."""
    n = INTERVALS[interval]
    rows, prev, i = [], D(initial), 0
    t = first_open
    while t <= last_open:
        bucket = []
        while i < len(trades) and trades[i]["time"] < t + n:
            if trades[i]["time"] >= t and trades[i]["time"] <= now:
                bucket.append(trades[i])
            i += 1
        if bucket:
            ps = [D(x["price"]) for x in bucket]
            vol = sum(D(x["qty"]) for x in bucket)
            qv = sum(D(x["price"]) * D(x["qty"]) for x in bucket)
            taker = [x for x in bucket if not x["buyerMaker"]]
            row = (
                t,
                ps[0],
                max(ps),
                min(ps),
                ps[-1],
                vol,
                t + n - 1,
                qv,
                len(bucket),
                sum((D(x["qty"]) for x in taker), D(0)),
                sum((D(x["price"]) * D(x["qty"]) for x in taker), D(0)),
            )
            prev = ps[-1]
        else:
            row = (t, prev, prev, prev, prev, D(0), t + n - 1, D(0), 0, D(0), D(0))
        rows.append(row)
        t += n
    return rows


def as_values(row):
    return (
        row[0],
        D(row[1]),
        D(row[2]),
        D(row[3]),
        D(row[4]),
        D(row[5]),
        row[6],
        D(row[7]),
        row[8],
        D(row[9]),
        D(row[10]),
    )


@functools.cache
def _market(model: str = "slots") -> Market:
    return Market(small_config(history_days=3, symbols=8, listing_interval_s=43_200, trades_per_minute=3, market=model))


@pytest.mark.parametrize("model", ["slots", "chain"])
@pytest.mark.parametrize("interval", list(INTERVALS))
def test_klines_equal_independent_aggregation(interval, model):
    m = _market(model)
    now = T0 + 37_123
    for sym in (o["symbol"] for o in m.option_info(now)):
        opt = m.option(sym)
        start = max(opt.listing, m.history_start)
        end = min(now + 1, opt.expiry)
        trades = m.trades(sym, start, end)
        assert all(start <= x["time"] < end for x in trades)
        got = m.klines(sym, interval, 0, 2**62, now)
        first, last = open_of(interval, start), open_of(interval, end - 1)
        want = aggregate(trades, interval, first, last, m.initial_price(sym), now)
        assert [as_values(r) for r in got] == want, sym
        assert sum(r[8] for r in got) == len(trades)


async def test_served_klines_and_partial_current(make_sim, http):
    sim = await make_sim()
    sym = trading_symbol(sim)
    now = sim.now_ms()
    _, _, rows = await get(http, sim, "/api/v1/option/klines", {"symbol": sym, "interval": "1h", "limit": 3})
    assert rows == sim.market.klines(sym, "1h", rows[0][0], now + 1, now)
    before = rows[-1]
    sim.clock.advance(120_000)  # the current kline is partial: it changes as trades arrive
    _, _, rows2 = await get(http, sim, "/api/v1/option/klines", {"symbol": sym, "interval": "1h", "limit": 3})
    assert rows2[:-1] == rows[:-1]
    new = sim.market.trades(sym, now + 1, sim.now_ms() + 1)
    assert new and rows2[-1][8] == before[8] + len(new) and rows2[-1][4] == new[-1]["price"]


def test_same_seed_same_history_different_seed_differs():
    a = Market(small_config(seed=7, start_ms=T0))
    b = Market(small_config(seed=7, start_ms=T0 + 3 * 3_600_000))  # started 3 h later
    c = Market(small_config(seed=8, start_ms=T0))
    now = T0 + 60_000
    syms = a.listed_symbols(now)
    assert syms == b.listed_symbols(now) == c.listed_symbols(now)
    for sym in [o["symbol"] for o in a.option_info(now) if o["status"] == "TRADING"][:5]:
        ta = a.trades(sym, T0 - 3_600_000, T0)
        assert ta and ta == b.trades(sym, T0 - 3_600_000, T0)
        assert a.klines(sym, "5m", T0 - 3_600_000, T0, now) == b.klines(sym, "5m", T0 - 3_600_000, T0, now)
        assert ta != c.trades(sym, T0 - 3_600_000, T0)


async def test_two_servers_same_seed_serve_identical_history(make_sim, http):
    s1 = await make_sim(small_config(seed=3))
    s2 = await make_sim(small_config(seed=3))
    sym = trading_symbol(s1)
    for path, params in (
        ("/api/v1/option/historicalTrades", {"symbol": sym, "fromId": 0, "limit": 500}),
        ("/api/v1/option/klines", {"symbol": sym, "interval": "15m", "limit": 1000}),
        ("/api/v1/optionInfo", {}),
        ("/api/v1/option/ticker/24hr", {}),
    ):
        r1 = await get(http, s1, path, params, KEY)
        r2 = await get(http, s2, path, params, KEY)
        assert r1[0] == 200 and r1[2] == r2[2], path


def test_trade_ids_across_symbols():
    m = Market(small_config())
    now = T0
    everything = []
    per_symbol = {}
    for sym in m.listed_symbols(now):
        tr = m.trades(sym, T0 - 3_600_000, T0)
        per_symbol[sym] = tr
        everything += tr
        ids = [x["id"] for x in tr]
        if len(ids) < 10:
            continue
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        assert [x["time"] for x in tr] == sorted(x["time"] for x in tr)
        assert any(b - a > 1 for a, b in itertools.pairwise(ids))  # numbered across symbols: gaps
    ids = [x["id"] for x in everything]
    assert len(set(ids)) == len(ids)  # unique across all symbols
    by_id = sorted(everything, key=lambda x: x["id"])
    assert [x["time"] for x in by_id] == sorted(x["time"] for x in by_id)  # increasing with time
    times = [x["time"] for x in everything]
    assert len(set(times)) < len(times)  # several trades share a millisecond


def test_silent_symbols_and_listing_cycle():
    cfg = small_config(symbols=4, listing_interval_s=60, grace_s=120, silent_share=0.5, history_days=0.01)
    m = Market(cfg)
    t = T0
    seen_listed, seen_expired, gone = set(), set(), set()
    before = set(m.listed_symbols(t))
    for step in range(6):  # six minutes of market life
        now = t + step * 60_000 + 30_000
        info = {o["symbol"]: o for o in m.option_info(now)}
        trading = [s for s, o in info.items() if o["status"] == "TRADING"]
        assert len(trading) == 4
        seen_listed |= set(info) - before
        seen_expired |= {s for s, o in info.items() if o["status"] == "EXPIRED"}
        gone |= before - set(info)
        before = set(info)
        for s in gone:
            assert m.lookup(s, now) is None
    assert len(seen_listed) >= 5 and seen_expired and gone
    silent = [s for s in seen_listed if not m.trades(s, T0 - DAY, T0 + DAY)]
    loud = [s for s in seen_listed if s not in silent]
    assert silent and loud


def test_history_is_pinned():
    """The generator's RNG draws define the market: refactors must not change a single trade."""
    import hashlib

    m = Market(small_config(seed=11, silent_share=0.2))
    h = hashlib.sha256()
    for sym in m.listed_symbols(T0):
        h.update(repr(m.trades(sym, T0 - 3 * 3_600_000, T0 + 1)).encode())
    assert h.hexdigest() == "2fd79d034ccde04760edf15ebd0b3499f1e48892efd0bc94d670cac257b96e59"
