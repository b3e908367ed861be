"""Parsers: tables of payloads, every recorded real response with a counterpart, round-trips."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.domain import DepthLevel
from collector.errors import ParseError
from collector.exchange import parsers as p

# The recorded live responses sit beside the checkout, in shared/ (as CI lays them out too).
RECORDED = Path(__file__).resolve().parents[4] / "shared" / "reference" / "jex-recorded"
NOW = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def recorded(name: str) -> dict:
    return json.loads((RECORDED / name).read_text(), parse_float=Decimal)


def ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


# --- recorded real responses ---------------------------------------------------------------


def test_recorded_exchange_info():
    info = p.parse_exchange_info(recorded("api_v1_exchangeInfo.json")["body"])
    assert len(info.option_symbols) == 28
    assert info.option_symbols[0].symbol == "BTC0925CALL"
    assert all(s.base_asset == s.symbol and s.quote_precision == 4 for s in info.option_symbols)
    assert info.timezone == "UTC"
    assert info.server_time == datetime(2019, 9, 20, 4, 34, 9, 278000, tzinfo=UTC)
    kinds = {(r.rate_limit_type, r.interval, r.interval_num, r.limit) for r in info.rate_limits}
    assert ("requestsWeight", "minute", 1, 1200) in kinds
    assert ("rawRequests", "minute", 5, 5000) in kinds
    assert len(info.rate_limits) == 4


@pytest.mark.parametrize(
    "name, symbol",
    [
        ("api_v1_spot_depth__symbol-LTCBTC.json", "LTCBTC"),
        ("api_v1_contract_depth__symbol-BTCUSDT.json", "BTCUSDT"),
    ],
)
def test_recorded_depth(name, symbol):
    body = recorded(name)["body"]
    snap = p.parse_depth(body, symbol, NOW)
    assert snap.last_update_id is None  # the real exchange sent none
    assert len(snap.bids) == len(body["bids"]) and len(snap.asks) == len(body["asks"])
    assert snap.bids[0] == DepthLevel(Decimal(body["bids"][0][0]), Decimal(body["bids"][0][1]))
    assert str(snap.bids[0].price) == body["bids"][0][0]  # exact, precision kept
    assert snap.captured_at == NOW


@pytest.mark.parametrize(
    "name, symbol",
    [
        ("api_v1_spot_trades__symbol-LTCBTC.json", "LTCBTC"),
        ("api_v1_contract_trades__symbol-BTCUSDT.json", "BTCUSDT"),
    ],
)
def test_recorded_trades_newest_first_without_ids(name, symbol):
    body = recorded(name)["body"]
    trades = p.parse_recent_trades(body, symbol)
    assert len(trades) == len(body)
    assert all(t.trade_id is None and t.buyer_maker is None for t in trades)
    assert [t.time for t in trades] == sorted((t.time for t in trades), reverse=True)  # order kept
    assert trades[0].price == Decimal(body[0]["price"]) and trades[0].time == ms(body[0]["time"])


def test_recorded_contract_trades_keep_negative_qty():
    trades = p.parse_recent_trades(recorded("api_v1_contract_trades__symbol-BTCUSDT.json")["body"], "BTCUSDT")
    assert any(t.qty < 0 for t in trades)


@pytest.mark.parametrize("name", ["api_v1_spot_ticker_24hr.json", "api_v1_contract_ticker_24hr.json"])
def test_recorded_tickers(name):
    body = recorded(name)["body"]
    tickers = p.parse_ticker_24hr(body, NOW)
    assert [t.symbol for t in tickers] == [b["symbol"] for b in body]
    assert all(t.strike_price is None and t.expiry_time is None for t in tickers)  # no option fields
    assert any(t.close_time < t.open_time for t in tickers)  # stored as sent, not "fixed"
    first = tickers[0]
    assert first.open_time == ms(body[0]["openTime"]) and first.close_time == ms(body[0]["closeTime"])
    assert first.price_change == Decimal(body[0]["priceChange"])


# --- seed examples and variations ----------------------------------------------------------


def test_option_info_seed_example():
    payload = [
        {
            "symbol": "BTCCALLM",
            "status": "TRADING",
            "type": "LONGS",
            "exertionTime": 1551344400000,
            "optionDesc": "www.jex.com",
            "canRelease": True,
            "releaseOption": {"convertRatio": Decimal("0.1"), "assetMarginName": "BTC"},
        },
        {
            "symbol": "BTCPUTM",
            "status": "TRADING",
            "type": "SHORTS",
            "exertionTime": "1551172087000",
            "optionDesc": "www.jex.com",
            "canRelease": False,
            "releaseOption": None,
        },
        {"symbol": "X", "status": "TRADING", "type": "WEIRD"},
    ]
    call, put, other = p.parse_option_info(payload)
    assert (call.option_type, call.raw_type, call.expiry_time) == ("CALL", "LONGS", ms(1551344400000))
    assert (put.option_type, put.can_release) == ("PUT", False)
    assert (other.option_type, other.raw_type, other.expiry_time, other.can_release) == (None, "WEIRD", None, None)


@pytest.mark.parametrize(
    "payload, last_id, bids",
    [
        (
            {"lastUpdateId": 1027024, "bids": [["4.00000000", "431.00000000", []]], "asks": []},
            1027024,
            (DepthLevel(Decimal("4.00000000"), Decimal("431.00000000")),),
        ),
        (
            {"lastUpdateId": "99", "bids": [[Decimal("4.5"), 3]], "asks": []},
            99,
            (DepthLevel(Decimal("4.5"), Decimal(3)),),
        ),
        ({"bids": [], "asks": []}, None, ()),
    ],
)
def test_depth_variations(payload, last_id, bids):
    snap = p.parse_depth(payload, "S", NOW)
    assert snap.last_update_id == last_id and snap.bids == bids


def test_historical_trades_sorted_by_id_either_order():
    page = [
        {"id": "3489", "price": "0.00001457", "qty": "6", "time": 1551129538000, "buyerMaker": False},
        {"id": 3488, "price": Decimal("0.00001464"), "qty": 2, "time": "1551129500000", "buyerMaker": True},
        {"id": "18014398509481985", "price": "1", "qty": "1", "time": 1551129600000},  # > 2**53, as a string
    ]
    trades = p.parse_historical_trades(page, "S")
    assert [t.trade_id for t in trades] == [3488, 3489, 18014398509481985]
    assert trades[0].buyer_maker is True and trades[2].buyer_maker is None
    assert p.parse_historical_trades(list(reversed(page)), "S") == trades


def test_klines_seed_example_and_order():
    row = [
        1499040000000,
        "0.01634790",
        "0.80000000",
        "0.01575800",
        "0.01577100",
        "148976.11427815",
        1499644799999,
        "2434.19055334",
        308,
        "1756.87402397",
        "28.46694368",
        "17928899.62484339",
    ]
    later = [1499040060000, Decimal("1"), 2, "1", "1", "0", 1499040119999, "0", "0", "0", "0"]  # 11 fields
    klines = p.parse_klines([later, row], "S", "1m")
    assert [k.open_time for k in klines] == [ms(1499040000000), ms(1499040060000)]
    k = klines[0]
    assert (k.open, k.high, k.trade_count, k.close_time) == (
        Decimal("0.01634790"),
        Decimal("0.80000000"),
        308,
        ms(1499644799999),
    )
    assert k.taker_buy_quote_volume == Decimal("28.46694368") and k.interval == "1m"
    assert klines[1].trade_count == 0 and klines[1].high == Decimal(2)


def test_ticker_seed_example_single_object_and_option_fields():
    obj = {
        "symbol": "BNBBTC",
        "priceChange": "-1.00000000",
        "priceChangePercent": "50.00000000",
        "weightedAvgPrice": "1.88",
        "lastPrice": "3.00000000",
        "bidPrice": "1.00000000",
        "bidQty": "5.00000000",
        "askPrice": "3.00000000",
        "askQty": "9.00000000",
        "openPrice": "2.00000000",
        "highPrice": "18.00000000",
        "lowPrice": "1.00000000",
        "volume": "8.00000000",
        "quoteVolume": "15.00000000",
        "openTime": 1551174049782,
        "closeTime": 1551173957144,
        "exertionTime": 1574841600000,
        "performPrice": "0.0000",
        "referencePrice": "9279.5200",
        "exertionPrice": "7958.7100",
    }
    (t,) = p.parse_ticker_24hr(obj, NOW)
    assert t.price_change == Decimal("-1.00000000")
    assert (t.strike_price, t.underlying_price, t.perform_price) == (
        Decimal("7958.7100"),
        Decimal("9279.5200"),
        Decimal("0.0000"),
    )
    assert t.expiry_time == ms(1574841600000) and t.close_time < t.open_time
    assert p.parse_ticker_24hr([obj, obj], NOW) == [t, t]
    (bare,) = p.parse_ticker_24hr({"symbol": "A", "lastPrice": None}, NOW)
    assert bare.last_price is None and bare.open_time is None


def test_price_and_book_tickers_object_or_list():
    assert p.parse_price_tickers({"symbol": "LTCBTC", "price": "4.00000200"})[0].price == Decimal("4.00000200")
    assert [t.symbol for t in p.parse_price_tickers([{"symbol": "A", "price": 1}, {"symbol": "B", "price": "2"}])] == [
        "A",
        "B",
    ]
    (b,) = p.parse_book_tickers(
        {
            "symbol": "LTCBTC",
            "bidPrice": "4.00000000",
            "bidQty": "431.00000000",
            "askPrice": "4.00000200",
            "askQty": "9.00000000",
        },
        NOW,
    )
    assert (b.bid_price, b.ask_qty, b.captured_at) == (Decimal("4.00000000"), Decimal("9.00000000"), NOW)


def test_avg_price_and_server_time():
    a = p.parse_avg_price({"mins": 5, "price": "9.35751834"}, "S", NOW)
    assert (a.mins, a.price) == (5, Decimal("9.35751834"))
    assert p.parse_server_time({"serverTime": 1499827319595}) == datetime(2017, 7, 12, 2, 41, 59, 595000, tzinfo=UTC)


def test_binance_rate_limit_spelling():
    info = p.parse_exchange_info(
        {"rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 60}]}
    )
    assert info.rate_limits[0].window_seconds == 60 and info.option_symbols == ()


# --- what is really malformed --------------------------------------------------------------

GOOD_TRADE = {"id": 1, "price": "1", "qty": "1", "time": 1}


@pytest.mark.parametrize(
    "parse, payload, field",
    [
        (lambda x: p.parse_depth(x, "S", NOW), {"asks": []}, "bids"),
        (lambda x: p.parse_depth(x, "S", NOW), {"bids": [["1"]], "asks": []}, "bids[0]"),
        (lambda x: p.parse_depth(x, "S", NOW), {"bids": "nope", "asks": []}, "bids"),
        (lambda x: p.parse_depth(x, "S", NOW), {"bids": [["-1", "1"]], "asks": []}, "bids[0].price"),
        (lambda x: p.parse_depth(x, "S", NOW), {"bids": [["NaN", "1"]], "asks": []}, "bids[0].price"),
        (lambda x: p.parse_depth(x, "S", NOW), {"bids": [[Decimal("Infinity"), "1"]], "asks": []}, "bids[0].price"),
        (lambda x: p.parse_depth(x, "S", NOW), [], "<body>"),
        (lambda x: p.parse_historical_trades(x, "S"), [{**GOOD_TRADE, "id": None}], "id"),
        (lambda x: p.parse_historical_trades(x, "S"), [{**GOOD_TRADE, "id": "12a"}], "id"),
        (lambda x: p.parse_historical_trades(x, "S"), [{**GOOD_TRADE, "price": True}], "price"),
        (lambda x: p.parse_historical_trades(x, "S"), [{**GOOD_TRADE, "price": 1.5}], "price"),  # a float: refused
        (lambda x: p.parse_historical_trades(x, "S"), [{**GOOD_TRADE, "time": -5}], "time"),
        (lambda x: p.parse_historical_trades(x, "S"), [{**GOOD_TRADE, "buyerMaker": "yes"}], "buyerMaker"),
        (lambda x: p.parse_historical_trades(x, "S"), {"id": 1}, "<body>"),
        (lambda x: p.parse_recent_trades(x, "S"), [{"price": "1", "qty": "1"}], "time"),
        (lambda x: p.parse_recent_trades(x, "S"), [{"price": "abc", "qty": "1", "time": 1}], "price"),
        (lambda x: p.parse_klines(x, "S", "1m"), [[1, "1", "1"]], "[0]"),
        (
            lambda x: p.parse_klines(x, "S", "1m"),
            [[1, "1", "1", "1", "1", "1", 2, "1", 1.0, "1", "1"]],
            "[0].trade_count",
        ),
        (lambda x: p.parse_klines(x, "S", "1m"), [[1, "1", "-1", "1", "1", "1", 2, "1", 1, "1", "1"]], "[0].high"),
        (lambda x: p.parse_exchange_info(x), {"optionSymbols": []}, "rateLimits"),
        (
            lambda x: p.parse_exchange_info(x),
            {"rateLimits": [{"rateLimitType": "x", "interval": "fortnight", "intervalNum": 1, "limit": 1}]},
            "interval",
        ),
        (lambda x: p.parse_option_info(x), [{"status": "TRADING"}], "symbol"),
        (lambda x: p.parse_option_info(x), [{"symbol": "S", "status": "T", "canRelease": "yes"}], "canRelease"),
        (lambda x: p.parse_option_info(x), [{"symbol": "S", "status": "T", "canRelease": 2}], "canRelease"),
        (lambda x: p.parse_avg_price(x, "S", NOW), {"mins": 5}, "price"),
        (lambda x: p.parse_price_tickers(x), [{"symbol": "A", "price": ""}], "price"),
        (lambda x: p.parse_price_tickers(x), "A", "<body>"),
        (lambda x: p.parse_ticker_24hr(x, NOW), [{"symbol": "A", "openTime": "soon"}], "openTime"),
        (lambda x: p.parse_book_tickers(x, NOW), [{"bidPrice": "1"}], "symbol"),
        (lambda x: p.parse_server_time(x), {"serverTime": False}, "serverTime"),
    ],
)
def test_malformed_is_refused_naming_the_field(parse, payload, field):
    with pytest.raises(ParseError) as info:
        parse(payload)
    assert info.value.field == field
    assert info.value.endpoint in str(info.value)


# --- tolerance: every scalar as a string or a number; listings keep their good entries -------------


@pytest.mark.parametrize(
    "value, expected",
    [
        (True, True),
        (False, False),
        ("true", True),
        ("FALSE", False),
        (" True ", True),
        (1, True),
        (0, False),
        ("1", True),
        ("0", False),
        (Decimal("1"), True),
        (Decimal("0"), False),
    ],
)
def test_booleans_in_every_spelling_the_notes_allow(value, expected):
    assert p.to_bool(value, "t", "f") is expected
    (info,) = p.parse_option_info([{"symbol": "S", "status": "TRADING", "canRelease": value}])
    assert info.can_release is expected
    (trade,) = p.parse_historical_trades([{**GOOD_TRADE, "buyerMaker": value}], "S")
    assert trade.buyer_maker is expected


def test_scalars_as_strings_or_numbers_mean_the_same():
    as_strings = {
        "symbol": "BTC0925CALL",
        "status": "TRADING",
        "type": "LONGS",
        "exertionTime": "1569398400000",
        "canRelease": "false",
    }
    as_numbers = {
        "symbol": "BTC0925CALL",
        "status": "TRADING",
        "type": "LONGS",
        "exertionTime": 1569398400000,
        "canRelease": 0,
    }
    assert p.parse_option_info([as_strings]) == p.parse_option_info([as_numbers])
    ticker = {"symbol": "A", "lastPrice": "1.5", "openTime": "1551174049782", "exertionPrice": "7958.71"}
    numeric = {
        "symbol": "A",
        "lastPrice": Decimal("1.5"),
        "openTime": 1551174049782,
        "exertionPrice": Decimal("7958.71"),
    }
    assert p.parse_ticker_24hr(ticker, NOW) == p.parse_ticker_24hr(numeric, NOW)
    # a status sent as a number is its text
    (odd,) = p.parse_option_info([{"symbol": "S", "status": 1}])
    assert odd.status == "1"


def test_one_bad_option_info_entry_does_not_blind_the_listing():
    good = [
        {"symbol": f"BTC09{d:02d}CALL", "status": "TRADING", "type": "LONGS", "exertionTime": 1569398400000}
        for d in range(10, 37)
    ]
    bad = {"symbol": "BTC0925PUT", "status": "TRADING", "type": "SHORTS", "canRelease": "perhaps"}
    listing = p.parse_option_info([*good[:5], bad, *good[5:]])
    assert [o.symbol for o in listing] == [g["symbol"] for g in good]  # 27 good ones, in order
    (why,) = listing.rejected
    assert why.entry == "[5] BTC0925PUT" and why.field == "canRelease"
    assert str(why) == "optionInfo entry [5] BTC0925PUT: field 'canRelease': expected a boolean, got 'perhaps'"
    assert listing.rejected_symbols == {"BTC0925PUT"}
    # exchangeInfo's symbols and limits are listings too
    info = p.parse_exchange_info(
        {
            "rateLimits": [
                {"rateLimitType": "requestsWeight", "interval": "minute", "intervalNum": 1, "limit": 1200},
                {"rateLimitType": "orders", "interval": "fortnight", "limit": 1},
            ],
            "optionSymbols": [{"symbol": "A", "status": "TRADING"}, {"symbol": "B"}],
        }
    )
    assert [s.symbol for s in info.option_symbols] == ["A"] and info.rejected_symbols == {"B"}
    assert [r.limit for r in info.rate_limits] == [1200] and len(info.rejected) == 2
    # all-symbol tickers: the good ones stay
    tickers = p.parse_ticker_24hr([{"symbol": "A", "lastPrice": "1"}, {"symbol": "B", "lastPrice": "x"}], NOW)
    assert [t.symbol for t in tickers] == ["A"] and tickers.rejected[0].entry == "[1] B"


def test_a_bad_entry_refuses_a_page_of_data_naming_the_entry():
    page = [{**GOOD_TRADE, "id": str(i)} for i in range(1, 6)]
    page[3] = {**page[3], "price": "12,5"}
    with pytest.raises(ParseError) as info:
        p.parse_historical_trades(page, "S")
    assert info.value.entry == "[3]" and info.value.field == "price"
    assert str(info.value).startswith("historicalTrades entry [3]: field 'price'")
    with pytest.raises(ParseError) as info:
        p.parse_depth({"bids": [["1", "2"], ["1", "x"]], "asks": []}, "S", NOW)
    assert info.value.field == "bids[1].qty"
    with pytest.raises(ParseError) as info:
        p.parse_recent_trades([{"price": "1", "qty": "1", "time": 1}, {"price": "1", "qty": "1"}], "S")
    assert info.value.entry == "[1]"


@pytest.mark.parametrize(
    "entry, underlying, source, weekly",
    [
        ({"symbol": "BTC0925CALL", "releaseOption": {"assetMarginName": "BTC"}}, "BTC", "optionInfo", False),
        ({"symbol": "ETH1010PUT", "releaseOption": None}, "ETH", "name", False),
        ({"symbol": "EOS0923CALLW"}, "EOS", "name", True),
        ({"symbol": "BTCCALLM", "releaseOption": {"assetMarginName": "BTC"}}, "BTC", "optionInfo", False),
        ({"symbol": "XBT0925CALL", "releaseOption": {"assetMarginName": "BTC"}}, "BTC", "optionInfo", False),
        ({"symbol": "ODDNAME1"}, None, None, None),
    ],
)
def test_underlying_from_option_info_else_from_the_name(entry, underlying, source, weekly):
    (o,) = p.parse_option_info([{"status": "TRADING", **entry}])
    assert (o.underlying, o.underlying_source, o.weekly) == (underlying, source, weekly)


# --- properties ----------------------------------------------------------------------------

decimals = st.decimals(
    allow_nan=False, allow_infinity=False, min_value=0, max_value=Decimal("1e12"), places=None
).filter(lambda d: d.as_tuple().exponent >= -20)


@given(decimals)
def test_decimal_strings_round_trip_exactly(value):
    text = str(value)
    parsed = p.to_decimal(text, "t", "f")
    assert str(parsed) == text and parsed.as_tuple() == value.as_tuple()


@given(st.integers(min_value=0, max_value=10**8), st.integers(min_value=0, max_value=20))
def test_fixed_point_strings_keep_trailing_zeros(units, places):
    text = f"{units}.{'0' * places}" if places else str(units)
    assert format(p.to_decimal(text, "t", "f"), "f") == text  # str() would say 0E-7 for 0.0000000


@given(decimals)
def test_json_numbers_decoded_as_decimal_round_trip(value):
    # What the client does: json.loads(..., parse_float=Decimal); no float in between.
    body = json.dumps({"symbol": "S", "price": "PLACEHOLDER"}).replace('"PLACEHOLDER"', str(value))
    (ticker,) = p.parse_price_tickers(json.loads(body, parse_float=Decimal))
    assert ticker.price == value


@given(st.integers(min_value=0, max_value=253402300799999))
def test_ms_timestamps_exact(value):
    dt = p.ms_to_datetime(str(value), "t", "f")
    assert dt.tzinfo is UTC
    assert (dt - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1000 == pytest.approx(value, abs=0.5)
    assert int((dt - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 1000 + dt.microsecond // 1000 == value
