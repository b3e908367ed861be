"""parse_historical_trades' inline fast path: the same trades, or the same refusal, as the general readers."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.errors import ParseError
from collector.exchange import parsers as p

MISSING = object()

ids = st.one_of(
    st.integers(min_value=-5, max_value=2**64),
    st.sampled_from([2**63 - 1, 2**63, 0, True, None, 1.0]),
    st.integers(min_value=0, max_value=2**64).map(str),
    st.sampled_from(
        [
            "",
            " 12",
            "12 ",
            "-0",
            "-3",
            "+3",
            "007",
            "١٢",
            "1_0",
            "12a",
            "9223372036854775807",
            "9223372036854775808",
            "99999999999999999999",
            "1" * 21,
        ]
    ),
    st.sampled_from([Decimal("3"), Decimal("3.0"), Decimal("3.5"), Decimal("1e30")]),
)
decimal_texts = st.decimals(allow_nan=False, allow_infinity=False, places=None).map(str)
decimals = st.one_of(
    decimal_texts,
    decimal_texts.map(lambda s: f" {s}\t"),
    st.decimals(allow_nan=True, allow_infinity=True, places=None),
    st.sampled_from(
        [
            "0",
            "-0",
            "0E-8",
            "0.00000000",
            "1e100",
            "9.99e99",
            "1e-100",
            "1e-101",
            "-1e-100",
            "-1e-101",
            "-9.99e99",
            "-1e100",
            "NaN",
            "sNaN",
            "-Infinity",
            "Infinity",
            "1_000",
            "١٫٥",
            "",
            "abc",
            "1.5.5",
            "1e999999",
            "\u20031.5",
            7,
            -7,
            0,
            1.5,
            True,
            None,
        ]
    ),
)
times = st.one_of(
    st.integers(min_value=-5, max_value=2**70),
    st.sampled_from(
        [
            0,
            1795598995728,
            253402300799999,
            253402300800000,
            10**20,
            "1795598995728",
            " 5",
            Decimal("5"),
            Decimal("5.5"),
            True,
            None,
            1.5,
        ]
    ),
)
makers = st.sampled_from([True, False, None, MISSING, "yes", 1, 0])


@st.composite
def trade_items(draw):
    item = {"id": draw(ids), "price": draw(decimals), "qty": draw(decimals), "time": draw(times)}
    for key in ("buyerMaker", "isBuyerMaker"):
        value = draw(makers)
        if value is not MISSING:
            item[key] = value
    for key in list(item):
        if draw(st.integers(0, 30)) == 0:
            del item[key]
    return item


def general(items: list) -> list:
    """What the general readers make of a page (the definition the fast path must match)."""
    return sorted(p._page(items, lambda i, item: p._historical_trade(item, i, "S")), key=lambda t: t.trade_id)


def outcome(parse, items):
    try:
        return [repr(t) for t in parse(items)]  # repr: Decimal('1.0') and Decimal('1.00') differ
    except ParseError as exc:
        return ("refused", exc.endpoint, exc.field, str(exc))


@settings(max_examples=1500)
@given(trade_items())
def test_one_trade_fast_path_equals_the_general_readers(item):
    assert outcome(lambda x: p.parse_historical_trades(x, "S"), [item]) == outcome(general, [item])


@settings(max_examples=300)
@given(st.lists(trade_items(), max_size=6), st.randoms())
def test_pages_fast_path_equals_the_general_readers(items, rnd):
    rnd.shuffle(items)
    assert outcome(lambda x: p.parse_historical_trades(x, "S"), items) == outcome(general, items)


def test_plain_page_read_exactly():
    page = [
        {
            "id": str(5983153800028 + i),
            "price": f"1.{i:04d}",
            "qty": str(-i if i % 3 else i),
            "time": 1795598875001 + i,
            "buyerMaker": i % 2 == 0,
        }
        for i in range(500)
    ]
    random.Random(7).shuffle(page)
    trades = p.parse_historical_trades(page, "S")
    assert [t.trade_id for t in trades] == list(range(5983153800028, 5983153800528))
    first = trades[0]
    assert first.price.as_tuple() == Decimal("1.0000").as_tuple() and first.qty == 0
    assert first.time == p.ms_to_datetime(1795598875001, "t", "f") and first.buyer_maker is True
    assert repr(trades) == repr(general(page))


def test_repeated_ids_keep_the_exchange_order_among_themselves():
    page = [
        {"id": 2, "price": "1", "qty": "1", "time": 5},
        {"id": 1, "price": "2", "qty": "1", "time": 5},
        {"id": 2, "price": "3", "qty": "1", "time": 5},
    ]
    assert [(t.trade_id, str(t.price)) for t in p.parse_historical_trades(page, "S")] == [(1, "2"), (2, "1"), (2, "3")]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "9223372036854775808"),
        ("id", -1),
        ("price", "-0.5"),
        ("price", "1e100"),
        ("price", "1e-101"),
        ("qty", "-1e100"),
        ("qty", "-1e-101"),
        ("price", "NaN"),
        ("qty", Decimal("sNaN")),
        ("time", 10**20),
        ("time", -1),
        ("buyerMaker", 2),
        ("buyerMaker", "yes"),
    ],
)
def test_fast_path_still_refuses_naming_the_field(field, value):
    item = {"id": "1", "price": "1", "qty": "1", "time": 1, field: value}
    with pytest.raises(ParseError) as info:
        p.parse_historical_trades([{"id": 0, "price": "1", "qty": "1", "time": 1}, item], "S")
    assert info.value.field == field
