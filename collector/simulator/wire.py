"""The simulator's wire format: numbers as the exchange writes them and rows as compact JSON.

Prices are integer ticks of 0.0001 and quantities integers (see `market`), so every rendering is
exact integer arithmetic; `tests/simulator/test_representation.py` proves each fast renderer gives
the bytes json.dumps of the reference values would.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

TICKS = 10_000  # price ticks per unit (4 decimals, quotePrecision 4)


def fmt_ticks(v: int) -> str:
    """Integer count of 0.0001 as a decimal string with 4 decimals."""
    q, r = divmod(v, TICKS)
    return f"{q}.{r:04d}"


def _fmt_dec(v: Decimal, places: str) -> str:
    """Reference rendering (Decimal, 28 digits, half-even); the served values use the integer
    versions below, which give the same strings (tests compare them)."""
    return str(v.quantize(Decimal(places), rounding=ROUND_HALF_EVEN))


def _div_half_even(n: int, d: int) -> int:
    """round(n / d) half to even, for n >= 0, d > 0 (exact integer arithmetic)."""
    q, r = divmod(n, d)
    r2 = r + r
    if r2 > d or (r2 == d and q & 1):
        q += 1
    return q


def fmt_ratio8(qv: int, v: int) -> str:
    """qv / v / TICKS with 8 decimals, half-even: a volume-weighted price (qv >= v > 0, prices
    being >= 1 tick; Decimal would switch to exponent notation below 1e-6)."""
    q = _div_half_even(qv * TICKS, v)
    return f"{q // 100_000_000}.{q % 100_000_000:08d}"


def fmt_pct4(change: int, o: int) -> str:
    """change * 100 / o with 4 decimals, half-even, "-" kept when a negative rounds to zero
    (as Decimal does); "0.0000" when o is 0."""
    if not o:
        return "0.0000"
    q = _div_half_even(abs(change) * 1_000_000, o)
    s = f"{q // 10_000}.{q % 10_000:04d}"
    return "-" + s if change < 0 else s


def trade_json(i: int, p: int, q: int, t: int, bm: bool) -> str:
    """One historicalTrades row as JSON, exactly as json.dumps(..., separators=(",", ":")) renders
    {"id": str(i), "price": fmt_ticks(p), "qty": str(q), "time": t, "buyerMaker": bm} (p >= 0)."""
    return (
        f'{{"id":"{i}","price":"{p // TICKS}.{p % TICKS:04d}","qty":"{q}","time":{t},'
        f'"buyerMaker":{"true" if bm else "false"}}}'
    )


def recent_trade_json(p: int, q: int, t: int) -> str:
    """One option/trades row: {"price": fmt_ticks(p), "qty": str(q), "time": t} as compact JSON."""
    return f'{{"price":"{p // TICKS}.{p % TICKS:04d}","qty":"{q}","time":{t}}}'


def kline_json(t: int, iv: int, o: int, h: int, lo: int, c: int, v: int, qv: int, n: int, tbv: int, tbq: int) -> str:
    """One kline row as compact JSON (the layout of Market.kline; all values >= 0)."""
    return (
        f'[{t},"{o // TICKS}.{o % TICKS:04d}","{h // TICKS}.{h % TICKS:04d}",'
        f'"{lo // TICKS}.{lo % TICKS:04d}","{c // TICKS}.{c % TICKS:04d}","{v}",{t + iv - 1},'
        f'"{qv // TICKS}.{qv % TICKS:04d}",{n},"{tbv}","{tbq // TICKS}.{tbq % TICKS:04d}","0"]'
    )


TICKER_24HR_KEYS = (
    "symbol",
    "priceChange",
    "priceChangePercent",
    "weightedAvgPrice",
    "lastPrice",
    "bidPrice",
    "bidQty",
    "askPrice",
    "askQty",
    "openPrice",
    "highPrice",
    "lowPrice",
    "volume",
    "quoteVolume",
    "openTime",
    "closeTime",
    "exertionTime",
    "performPrice",
    "referencePrice",
    "exertionPrice",
)
INT_KEYS = {"openTime", "closeTime", "exertionTime"}
# Values are ASCII symbol names, decimal strings and ints: nothing JSON would escape.
TICKER_24HR_FMT = "{" + ",".join(f'"{k}":%d' if k in INT_KEYS else f'"{k}":"%s"' for k in TICKER_24HR_KEYS) + "}"
BOOK_FMT = '{"symbol":"%s","bidPrice":"%s","bidQty":"%d","askPrice":"%s","askQty":"%d"}'
PRICE_FMT = '{"symbol":"%s","price":"%s"}'
