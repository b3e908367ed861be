"""JexClient._decode: the fast decode (no per-object hook) gives what the checked decode gives.

The checked decode (``object_pairs_hook=_unique_keys``) is the definition: same payload, same
refusal of a repeated key, same ``ExchangeUnavailable`` for what is not JSON.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.errors import ExchangeUnavailable, ParseError
from collector.exchange import client as c

KEYS = st.sampled_from(["id", "price", "qty", "a:b", "{", "}", ":", '"', "x\\y", "é", "code"])
SCALARS = st.one_of(
    st.integers(-5, 10**20),
    st.sampled_from(["1.5", "a:b", "{:}", "", "\u2028", "NaN"]),
    st.booleans(),
    st.none(),
    st.sampled_from([Decimal("1.50"), Decimal("-0.0")]),
)


def render(value) -> str:
    """JSON text; an object is a list of (key, value) pairs, so keys may repeat."""
    if isinstance(value, tuple) and value and value[0] == "obj":
        return "{" + ", ".join(f"{json.dumps(k)} : {render(v)}" for k, v in value[1]) + "}"
    if isinstance(value, list):
        return "[" + ",".join(render(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value)


values = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.lists(st.tuples(KEYS, inner), max_size=4).map(lambda pairs: ("obj", pairs))
    ),
    max_leaves=12,
)


def checked(body: bytes):
    """The decode as it was: every object through the duplicate-key hook."""
    try:
        return json.loads(
            body, parse_float=Decimal, parse_constant=c._reject_constant, object_pairs_hook=c._unique_keys
        )
    except c._DuplicateKey as exc:
        return ("duplicate", str(exc))
    except (ValueError, RecursionError):
        return ("not json",)


def fast(body: bytes):
    try:
        return c.JexClient._decode("historicalTrades", body, 200)
    except ParseError as exc:
        assert "duplicate key" in str(exc)
        return ("duplicate", exc.field)
    except ExchangeUnavailable:
        return ("not json",)


def same(a, b) -> bool:
    return repr(a) == repr(b)  # repr: Decimal scale and key order count


@settings(max_examples=1500)
@given(values, st.sampled_from(["utf-8", "utf-16", "utf-32"]))
def test_fast_decode_equals_checked_decode(value, encoding):
    body = render(value).encode(encoding)
    assert same(fast(body), checked(body))


@settings(max_examples=500)
@given(st.lists(st.lists(st.tuples(KEYS, SCALARS), max_size=5).map(lambda pairs: ("obj", pairs)), max_size=8))
def test_pages_of_flat_objects(page):
    body = render(page).encode()
    assert same(fast(body), checked(body))


@pytest.mark.parametrize(
    "body",
    [
        b'[{"id": "7", "price": "12.5", "price": "99", "qty": "0.3", "time": 1700000000000}]',
        b'[{"id": "7", "qty": "1"}, {"id": "8", "id": "9"}]',
        b'{"code": 0, "code": 1}',
        b'{"a": {"b": 1, "b": 2}}',
        b'[[{"b": 1, "b": 2}]]',
        b'[{"m": "x:y", "m": 1}]',  # a ':' inside a string must not hide the repeat
        b'[{"m": "{", "m": 1}]',
        '[{"id": 1, "id": 2}]'.encode("utf-16"),
    ],
)
def test_repeated_keys_are_refused_wherever_they_are(body):
    with pytest.raises(ParseError, match="duplicate key"):
        c.JexClient._decode("historicalTrades", body, 200)


def test_a_plain_trade_page_needs_no_hook(monkeypatch):
    page = [
        {"id": str(10 + i), "price": "1.2500", "qty": "-3", "time": 1795598875001 + i, "buyerMaker": True}
        for i in range(500)
    ]
    body = json.dumps(page, separators=(",", ":")).encode()
    assert c._keys_surely_unique(body, json.loads(body))

    def hook_called(pairs):
        raise AssertionError("the checked decode ran for a plain page")

    monkeypatch.setattr(c, "_unique_keys", hook_called)
    payload = c.JexClient._decode("historicalTrades", body, 200)
    assert payload[0]["price"] == "1.2500" and len(payload) == 500
    assert c.JexClient._decode("time", b'{"serverTime": 1795598875001}', 200) == {"serverTime": 1795598875001}
    assert c.JexClient._decode("klines", b'[[1, "2.5", "3"], []]', 200) == [[1, "2.5", "3"], []]


def test_floats_stay_decimal_and_constants_reach_the_parser():
    payload = c.JexClient._decode("klines", b"[[1, 1.10, NaN, -Infinity]]", 200)
    assert repr(payload) == repr([[1, Decimal("1.10"), Decimal("NaN"), Decimal("-Infinity")]])
