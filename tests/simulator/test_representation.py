"""The fast renderers serve exactly the bytes the reference rendering (dicts/lists + json.dumps,
Decimal quantize) would: same values, same representation."""

from __future__ import annotations

import json
import random
from decimal import Decimal

import pytest
from sim_helpers import T0, small_config

from collector.simulator import INTERVALS, Market
from collector.simulator.wire import (
    _fmt_dec,
    fmt_pct4,
    fmt_ratio8,
    fmt_ticks,
    kline_json,
    recent_trade_json,
    trade_json,
)


def dumps(x) -> str:
    return json.dumps(x, separators=(",", ":"))


def test_trade_renderers_match_json_dumps():
    rng = random.Random(1)
    for _ in range(5000):
        i, p, q, t = rng.randrange(10**15), rng.randrange(1, 10**9), rng.randrange(1, 10**5), rng.randrange(2**42)
        bm = rng.random() < 0.5
        assert trade_json(i, p, q, t, bm) == dumps(
            {"id": str(i), "price": fmt_ticks(p), "qty": str(q), "time": t, "buyerMaker": bm}
        )
        assert recent_trade_json(p, q, t) == dumps({"price": fmt_ticks(p), "qty": str(q), "time": t})


def test_kline_renderer_matches_json_dumps():
    rng = random.Random(2)
    for _ in range(3000):
        t, iv = rng.randrange(2**42), rng.choice(list(INTERVALS.values()))
        o, h, lo, c = (rng.randrange(1, 10**8) for _ in range(4))
        v, qv, n, tbv, tbq = (rng.choice((0, rng.randrange(10**12))) for _ in range(5))
        want = [
            t,
            fmt_ticks(o),
            fmt_ticks(h),
            fmt_ticks(lo),
            fmt_ticks(c),
            str(v),
            t + iv - 1,
            fmt_ticks(qv),
            n,
            str(tbv),
            fmt_ticks(tbq),
            "0",
        ]
        assert kline_json(t, iv, o, h, lo, c, v, qv, n, tbv, tbq) == dumps(want)


def test_integer_decimals_match_decimal_quantize():
    rng = random.Random(3)
    # Weighted prices: qv = sum(price * qty) >= v = sum(qty), prices being >= 1 tick.
    cases = [(qv, v) for v in (1, 2, 3, 7, 8, 16, 10**6 + 3) for qv in (1, 5, 15, 25, 12345, 10**12 + 5)]
    cases += [(rng.randrange(1, 10**13), rng.randrange(1, 10**7)) for _ in range(20000)]
    for qv, v in ((qv, v) for qv, v in cases if qv >= v):
        assert fmt_ratio8(qv, v) == _fmt_dec(Decimal(qv) / v / 10_000, "0.00000001"), (qv, v)
    pcts = [(c, o) for o in (1, 2, 3, 8, 16, 10**6, 10**7 + 1) for c in (0, 1, -1, 5, -5, 50, -50, 10**7)]
    pcts += [(rng.randrange(-(10**7), 10**7), rng.randrange(1, 10**8)) for _ in range(20000)]
    for c, o in pcts:  # includes tiny negatives that round to "-0.0000", and exact ties
        assert fmt_pct4(c, o) == _fmt_dec(Decimal(c) * 100 / o, "0.0001"), (c, o)


@pytest.mark.parametrize("listing_interval_s", [1800, 5431.5])  # minute-aligned listings, and not
def test_cached_klines_equal_reference_rows(listing_interval_s):
    cfg = small_config(
        history_days=2,
        symbols=6,
        listing_interval_s=listing_interval_s,
        trades_per_minute=4,
        silent_share=0.3,
        grace_s=9000,
    )
    m = Market(cfg)
    rng = random.Random(4)
    # Time moves forward with odd steps, then back: closed rows are cached, open ones are not.
    for now in (T0 + 37_123, T0 + 97_123, T0 + 4_000_000, T0 + 4_000_001, T0 + 60_000 * 600 - 1, T0 + 11):
        for opt in m.listed(now):
            for interval, iv in INTERVALS.items():
                _, first, last = m.kline_rows(opt, interval, now)
                if last < first:
                    assert m.klines_json(opt, iv, first, last, now) == (0, "[]")
                    continue
                for _ in range(3):
                    lo = first + rng.randrange((last - first) // iv + 1) * iv
                    hi = min(last, lo + rng.choice((0, 1, 10, 999)) * iv)
                    want = [m.kline(opt, iv, t, now) for t in range(lo, hi + 1, iv)]
                    assert m.klines_json(opt, iv, lo, hi, now) == (len(want), dumps(want)), (opt.name, interval)


def test_ticker_renderers_match_json_dumps():
    m = Market(small_config(silent_share=0.3, grace_s=9000))
    for now in (T0 + 37_123, T0 + 3_600_000 + 5, T0 + 86_400_000 - 1):
        for opt in m.listed(now):
            assert m.ticker_24hr_json(opt, now) == dumps(m.ticker_24hr(opt, now))
            _, bids, asks = m.depth(opt, now)
            assert m.book_ticker_json(opt, now) == dumps(
                {
                    "symbol": opt.name,
                    "bidPrice": fmt_ticks(bids[0][0]) if bids else "0.0000",
                    "bidQty": str(bids[0][1]) if bids else "0",
                    "askPrice": fmt_ticks(asks[0][0]) if asks else "0.0000",
                    "askQty": str(asks[0][1]) if asks else "0",
                }
            )
            assert m.price_ticker_json(opt, now) == dumps(
                {"symbol": opt.name, "price": fmt_ticks(m.last_price_ticks(opt, now + 1))}
            )
