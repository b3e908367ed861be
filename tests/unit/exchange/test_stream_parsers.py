"""Push payloads (JEX-STREAMS-NOTES.md) read as REST's are: Decimals from strings or numbers, ids
as historicalTrades gives them, both spellings of a stream interval; one bad trade refuses its push."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from collector.errors import ParseError
from collector.exchange.parsers import (
    parse_stream_depth,
    parse_stream_kline,
    parse_stream_trades,
    stream_interval,
)
from collector.exchange.streams import MAX_STREAMS, combined_url, depth_stream, kline_stream, pack, trade_stream


def decoded(text: str):
    return json.loads(text, parse_float=Decimal)


TRADES = decoded(
    '[{"e":"optionTrade","E":1568099422156,"s":"BTC0925CALL","t":30038689952004,"p":"0.0295","q":"56",'
    '"T":1568099422150,"m":true},'
    '{"e":"optionTrade","E":1568099422156,"s":"BTC0925CALL","t":30038689952001,"p":0.03,"q":12,'
    '"T":1568099422100,"m":false}]'
)


def test_a_trade_push_is_trades_sorted_by_id_with_exact_decimals():
    trades = parse_stream_trades(TRADES, "BTC0925CALL")
    assert [t.trade_id for t in trades] == [30038689952001, 30038689952004]
    assert trades[0].price == Decimal("0.03") and trades[1].price == Decimal("0.0295")
    assert trades[1].time == datetime(2019, 9, 10, 7, 10, 22, 150000, tzinfo=UTC)
    assert trades[1].buyer_maker is True and trades[0].buyer_maker is False


@pytest.mark.parametrize(
    "field,value",
    [("t", "abc"), ("p", "-1"), ("T", None), ("p", 0.5)],
)
def test_one_bad_trade_refuses_the_push(field, value):
    bad = [dict(TRADES[0]), dict(TRADES[1])]
    bad[1][field] = value
    with pytest.raises(ParseError):
        parse_stream_trades(bad, "BTC0925CALL")


KLINE = decoded(
    '{"e":"optionKline","E":1568099422156,"s":"BTC0925CALL","k":{"t":1568099400000,"T":1568099459999,'
    '"s":"BTC0925CALL","i":"1m","o":"0.03","c":"0.0295","h":"0.031","l":"0.029","v":"68","q":"2.0120"}}'
)


@pytest.mark.parametrize("spelling", ["1m", "1M"])
def test_a_kline_push_is_the_open_kline_whichever_way_its_interval_is_spelt(spelling):
    payload = {**KLINE, "k": {**KLINE["k"], "i": spelling}}
    k = parse_stream_kline(payload, "BTC0925CALL", "1m")
    assert (k.interval, k.open, k.close, k.volume, k.quote_volume) == (
        "1m",
        Decimal("0.03"),
        Decimal("0.0295"),
        Decimal("68"),
        Decimal("2.0120"),
    )
    assert stream_interval("1H") == "1h" and stream_interval("1h") == "1h" and stream_interval("1W") == "1w"


def test_a_kline_of_another_interval_is_refused():
    with pytest.raises(ParseError, match=r"k\.i"):
        parse_stream_kline(KLINE, "BTC0925CALL", "1h")


def test_a_partial_book_has_no_update_id():
    book = parse_stream_depth(
        decoded('{"bids":[["0.029","10"]],"asks":[[0.031,5]]}'), "BTC0925CALL", datetime(2019, 9, 10, tzinfo=UTC)
    )
    assert book.last_update_id is None and book.asks[0].price == Decimal("0.031")


def test_streams_are_packed_ten_to_a_connection_a_symbol_never_split():
    groups = [
        (f"S{i}", [trade_stream(f"S{i}"), kline_stream(f"S{i}", "1m"), depth_stream(f"S{i}", 20)]) for i in range(7)
    ]
    conns = pack(groups)
    assert all(len(c) <= MAX_STREAMS for c in conns) and sum(map(len, conns)) == 21
    assert [len(c) for c in conns] == [9, 9, 3]
    for c in conns:
        symbols = {n.split("@")[0] for n in c}
        assert all(sum(n.startswith(s + "@") for n in c) == 3 for s in symbols)
    assert trade_stream("BTC0925CALL") == "btc0925call@optionTrade"
    assert combined_url("ws://h:1/", ["a@x", "b@y"]) == "ws://h:1/stream?streams=a@x/b@y"
    with pytest.raises(ValueError):
        pack([("S", [f"s@{i}" for i in range(11)])])
