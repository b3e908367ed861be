"""upsert's row handling without a database: deduplication and NUMERIC values sent as text."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from collector.domain import Trade
from collector.store import upsert as u
from collector.store import write


def test_dedupe_keeps_the_last_row_per_key_in_first_seen_order():
    rows = [
        {"s": "A", "i": 1, "v": 1},
        {"s": "B", "i": 1, "v": 2},
        {"s": "A", "i": 1, "v": 3},
        {"s": "A", "i": 2, "v": 4},
    ]
    assert u.dedupe(rows, ["s", "i"]) == [
        {"s": "A", "i": 1, "v": 3},
        {"s": "B", "i": 1, "v": 2},
        {"s": "A", "i": 2, "v": 4},
    ]
    assert u.dedupe(rows, ["s"]) == [{"s": "A", "i": 2, "v": 4}, {"s": "B", "i": 1, "v": 2}]  # one-column key
    assert u.dedupe([], ["s"]) == []


def test_getter_always_gives_a_tuple():
    assert u._getter(["a"])({"a": 1}) == (1,)
    assert u._getter([0, 2])((1, 2, 3)) == (1, 3)


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "-0",
        "0E-8",
        "0.00000000",
        "1.2300",
        "1.20E+3",
        "1E+2",
        "1.2E-7",
        "123456789012345678901234567890.123456789",
        "-5.5",
        "1E-100",
        "9.999E+99",
    ],
)
def test_numeric_text_is_the_exact_decimal(text):
    (sent,) = u._numeric_texts([Decimal(text)])
    assert Decimal(sent).as_tuple() == Decimal(text).as_tuple()  # digits, sign and exponent: nothing lost


def test_numeric_texts_take_none_and_int_and_refuse_float():
    assert u._numeric_texts([Decimal("1.50"), None, 7, Decimal("-2")]) == ["1.50", None, "7", "-2"]
    assert u._numeric_texts([Decimal("1"), Decimal("sNaN"), Decimal("-NaN"), Decimal("-Infinity")]) == [
        "1",
        "NaN",
        "NaN",
        "-Infinity",
    ]  # as psycopg's dumper sent them
    for bad in (1.5, True, "1.5"):
        with pytest.raises(TypeError, match="NUMERIC"):
            u._numeric_texts([Decimal("1"), bad])


def test_trade_columns_follow_the_record():
    t = Trade("S", 5, Decimal("1.10"), Decimal("-2"), datetime(2026, 1, 1, tzinfo=UTC), None)
    assert write._trade_values(t) == tuple(write.trade_row(t)[c] for c in write._TRADE_COLUMNS)
    assert set(write._TRADE_COLUMNS) == {c.name for c in write.TRADES.columns} & set(write.trade_row(t))
