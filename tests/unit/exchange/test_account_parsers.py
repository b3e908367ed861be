"""The account's parsers on the seed's own examples, and on the variations the field notes allow:
ids and numbers as strings or JSON numbers, booleans in every spelling, exact decimals, UTC times,
frozen records; a malformed entry refuses its page, naming the entry. (The client decodes JSON
numbers with a fractional part to ``Decimal``, never to float: so they appear here.)"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from collector.errors import ParseError
from collector.exchange import parsers

SEED_ORDER = {
    "symbol": "BTCCALLM",
    "orderId": "61292",
    "price": "2.00",
    "origQty": "1.00",
    "executedQty": "1.00",
    "cummulativeQuoteQty": "2.00",
    "status": "FILLED",
    "timeInForce": "GTC",
    "type": "LIMIT",
    "side": "BUY",
    "time": 1551184924000,
    "updateTime": 1551234873000,
    "working": True,
}
SEED_CANCEL = {
    "symbol": "BTCCALLM",
    "orderId": 61299,
    "transactTime": 1551239198405,
    "price": "2.00",
    "origQty": "1",
    "executedQty": "0",
    "cummulativeQuoteQty": "0.00",
    "status": "CANCELED",
    "timeInForce": "GTC",
    "type": "LIMIT",
    "side": "BUY",
}
SEED_SHORT = {
    "assetMargin": "BTC",
    "assetBase": "JEX",
    "assetOption": "BTCCALLM",
    "releaseAmount": "17780",
    "backAmount": "0",
    "marginAmount": "177.8000",
    "baseAmount": "17780.000",
    "availableMargin": "999616.1163",
    "availableBase": "267400.836",
    "availableOption": "17785",
    "createdDate": 1551428811520,
}
SEED_RECORD = {
    "createdDate": 1551668069000,
    "name": "BTCCALLM",
    "status": 2,
    "amount": "2",
    "convertRatio": "0.10000000",
    "rateMargin": "0.10",
    "baseAmount": "2.000",
    "marginAmount": "0.0200",
    "assetMargin": "BTC",
    "assetBase": "JEX",
    "id": 21821,
}
SEED_POSITION = {
    "name": "BTCCALLM",
    "amount": "5",
    "availAmount": "5",
    "profit": "15.99999996",
    "profitRate": "1.14285714",
    "cost": "2.80",
    "type": "CALL",
    "execTime": 1553763600000,
    "execrPrice": "5.00",
    "orderIndex": 0,
}
SEED_ACCOUNT = {
    "updateTime": 1523093528000,
    "contractBalances": [
        {
            "asset": "usdt",
            "canDeposit": False,
            "canTrade": True,
            "canWithdraw": False,
            "free": "8144.0412",
            "locked": "1855.3288",
        }
    ],
    "optionBalances": [
        {"asset": "BCXBTC01", "canDeposit": False, "canTrade": True, "canWithdraw": False, "free": "0", "locked": "0"}
    ],
    "spotBalances": [
        {
            "asset": "BTC",
            "canDeposit": True,
            "canTrade": True,
            "canWithdraw": False,
            "free": "999616.1363",
            "locked": "0.7219",
        }
    ],
}


def utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def test_the_seeds_order_examples():
    o = parsers.parse_order(SEED_ORDER)
    assert (o.symbol, o.order_id, o.status, o.side, o.type, o.time_in_force) == (
        "BTCCALLM",
        61292,
        "FILLED",
        "BUY",
        "LIMIT",
        "GTC",
    )
    assert o.price == Decimal("2.00") and str(o.price) == "2.00"  # exact, its zeros kept
    assert o.cummulative_quote_qty == Decimal("2.00") and o.final and o.working is True
    assert o.time == utc(1551184924000) and o.time.tzinfo is UTC and o.update_time == utc(1551234873000)
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.status = "NEW"  # type: ignore[misc]
    cancelled = parsers.parse_order(SEED_CANCEL, "order")  # DELETE's answer: transactTime, no time
    assert cancelled.order_id == 61299 and cancelled.status == "CANCELED" and cancelled.final
    assert cancelled.time == cancelled.update_time == utc(1551239198405)
    ack = parsers.parse_order_ack({"symbol": "JEXBTC", "orderId": 28, "transactTime": 1507725176595})
    assert (ack.order_id, ack.transact_time) == (28, utc(1507725176595))


@pytest.mark.parametrize(
    "variant",
    [
        {"orderId": 61292, "price": Decimal("2.00"), "time": "1551184924000", "working": "true"},  # JSON 2.00
        {"orderId": "61292", "executedQty": 1, "working": 1, "updateTime": "1551234873000"},
        {"working": "1", "origQty": "1.00000000"},
    ],
)
def test_orders_as_strings_or_numbers_parse_to_the_same_values(variant):
    base = parsers.parse_order(SEED_ORDER)
    other = parsers.parse_order({**SEED_ORDER, **variant})
    assert other.order_id == base.order_id and other.time == base.time and other.update_time == base.update_time
    assert other.working is True and other.price == base.price and other.executed_qty == base.executed_qty


def test_an_order_page_is_sorted_and_a_bad_entry_refuses_it_naming_the_field():
    page = [{**SEED_ORDER, "orderId": "9"}, {**SEED_ORDER, "orderId": 7}, {**SEED_ORDER, "orderId": 2**60}]
    assert [o.order_id for o in parsers.parse_orders(page, "historyOrders")] == [7, 9, 2**60]
    for bad in ({"price": "abc"}, {"price": "-1"}, {"orderId": "x7"}, {"side": None}, {"time": "yesterday"}):
        with pytest.raises(ParseError) as info:
            parsers.parse_orders([SEED_ORDER, {**SEED_ORDER, **bad}], "historyOrders")
        assert "historyOrders" in str(info.value) and next(iter(bad)) in str(info.value)
    assert parsers.parse_orders([], "openOrders") == []


def test_shorts_calls_and_their_records():
    s = parsers.parse_short_call(SEED_SHORT, "release")
    assert (s.asset_margin, s.asset_base, s.asset_option) == ("BTC", "JEX", "BTCCALLM")
    assert s.release_amount == 17780 and s.margin_amount == Decimal("177.8000") and s.created_at == utc(1551428811520)
    info = parsers.parse_short_call({k: v for k, v in SEED_SHORT.items() if k != "createdDate"}, "info")
    assert info.created_at is None and info.available_option == 17785
    (r,) = parsers.parse_records([SEED_RECORD])
    assert (r.record_id, r.symbol, r.status, r.amount) == (21821, "BTCCALLM", "2", Decimal("2"))
    assert r.convert_ratio == Decimal("0.10000000") and r.created_at == utc(1551668069000)
    again = parsers.parse_records(
        [{**SEED_RECORD, "id": "21821", "status": "2", "amount": 2, "createdDate": "1551668069000"}]
    )
    assert again == [r]
    with pytest.raises(ParseError, match="createdDate"):
        parsers.parse_records([{**SEED_RECORD, "createdDate": None}])


def test_positions_as_a_list_or_one_object():
    (p,) = parsers.parse_positions([SEED_POSITION])
    assert (p.symbol, p.amount, p.cost, p.type, p.exec_price, p.order_index) == (
        "BTCCALLM",
        Decimal("5"),
        Decimal("2.80"),
        "CALL",
        Decimal("5.00"),
        0,
    )
    assert p.exec_time == utc(1553763600000) and p.profit == Decimal("15.99999996")
    assert parsers.parse_positions(SEED_POSITION) == [p]
    spelled = {k: v for k, v in SEED_POSITION.items() if k != "execrPrice"} | {"execPrice": Decimal("5.0")}
    assert parsers.parse_positions([spelled])[0].exec_price == Decimal("5.0")


def test_the_account_and_its_sections():
    a = parsers.parse_account(SEED_ACCOUNT)
    assert a.update_time == utc(1523093528000)
    assert [(b.section, b.asset, b.free, b.locked) for b in a.balances] == [
        ("contract", "usdt", Decimal("8144.0412"), Decimal("1855.3288")),
        ("option", "BCXBTC01", Decimal("0"), Decimal("0")),
        ("spot", "BTC", Decimal("999616.1363"), Decimal("0.7219")),
    ]
    spot = a.balances[2]
    assert (spot.can_deposit, spot.can_trade, spot.can_withdraw) == (True, True, False)
    flags = parsers.parse_account(
        {
            "spotBalances": [
                {"asset": "BTC", "canDeposit": "false", "canTrade": 1, "free": Decimal("1.5"), "locked": "0"}
            ]
        }
    )
    (b,) = flags.balances  # a missing section, booleans spelled otherwise, a number as a JSON number
    assert (b.can_deposit, b.can_trade, b.can_withdraw, b.free) == (False, True, None, Decimal("1.5"))
    with pytest.raises(ParseError, match="free"):
        parsers.parse_account({"spotBalances": [{"asset": "BTC", "free": "lots", "locked": "0"}]})
