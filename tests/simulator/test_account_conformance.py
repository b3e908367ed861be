"""Every signed endpoint of the seed (USER_DATA and TRADE), against a running simulator.

Requests are signed here by hand, from the field notes' description (HMAC-SHA256 of the query
string, then the body), not by the collector's client: these tests pin the simulator to the notes.
"""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlencode

import pytest
from sim_helpers import (
    OTHER_KEY,
    OTHER_SECRET,
    SECRET,
    T0,
    get,
    place_resting_buy,
    small_config,
    trading_symbol,
    used_weight,
)
from sim_helpers import (
    USER as KEY,
)
from sim_helpers import signature_of as _sig
from sim_helpers import signed_call as call

from collector.simulator.accounts import DEMO_KEY, DEMO_SECRET

ORDER_FIELDS = {
    "symbol",
    "orderId",
    "price",
    "origQty",
    "executedQty",
    "cummulativeQuoteQty",
    "status",
    "timeInForce",
    "type",
    "side",
    "time",
    "updateTime",
    "working",
}
SHORT_CALL_FIELDS = {
    "assetMargin",
    "assetBase",
    "assetOption",
    "releaseAmount",
    "backAmount",
    "marginAmount",
    "baseAmount",
    "availableMargin",
    "availableBase",
    "availableOption",
}


def accounts_config(**kw):
    return small_config(accounts={KEY: SECRET, OTHER_KEY: OTHER_SECRET}, weight_limit=100_000, **kw)


def shortable_symbol(sim) -> str:
    """A trading symbol whose optionInfo says canRelease."""
    infos = sim.market.option_info(sim.now_ms())
    return next(o["symbol"] for o in infos if o["status"] == "TRADING" and o["canRelease"])


def is_dec(v) -> bool:
    try:
        return isinstance(v, str) and Decimal(v).is_finite()
    except ArithmeticError:
        return False


async def test_every_signed_endpoint_path_method_and_weight(make_sim, http):
    sim = await make_sim(accounts_config())
    sym, short = trading_symbol(sim), shortable_symbol(sim)
    price = str(Decimal(sim.market.last_price_ticks(sim.market.option(sym), sim.now_ms())) / 10_000)
    st, placed = await place_resting_buy(http, sim, sym, 1)
    assert st == 200, placed
    oid = placed["orderId"]
    cases = [
        ("POST", "option/order", {"symbol": sym, "side": "BUY", "type": "LIMIT", "quantity": 1, "price": price}, 1),
        ("POST", "option/order/test", {"symbol": sym, "side": "SELL", "type": "LIMIT", "quantity": 1, "price": "1"}, 1),
        ("GET", "option/order", {"symbol": sym, "orderId": oid}, 1),
        ("GET", "option/openOrders", {"symbol": sym}, 5),
        ("GET", "option/historyOrders", {"symbol": sym}, 5),
        ("POST", "option/release", {"symbol": short, "amount": 10}, 1),
        ("POST", "option/back", {"symbol": short, "amount": 4}, 1),
        ("GET", "option/position", {}, 2),
        ("GET", "option/position", {"symbol": sym}, 2),
        ("GET", "option/info", {"symbol": short}, 1),
        ("GET", "option/record", {"symbol": short}, 5),
        ("GET", "account", {}, 1),
        ("DELETE", "option/order", {"symbol": sym, "orderId": oid}, 1),
    ]
    for method, path, params, weight in cases:
        before = used_weight(sim)
        st, body = await call(http, sim, method, path, params)
        assert st == 200, (method, path, body)
        assert used_weight(sim) - before == weight, (method, path)
    # and a refused request costs its weight too (it was counted before it was judged)
    before = used_weight(sim)
    st, body = await call(http, sim, "GET", "option/openOrders", {"symbol": sym}, signature="0" * 64)
    assert (st, body["code"]) == (400, -1022) and used_weight(sim) - before == 5


async def test_order_shapes_ack_result_query_cancel(make_sim, http):
    sim = await make_sim(accounts_config())
    sym = trading_symbol(sim)
    args = {"symbol": sym, "side": "BUY", "type": "LIMIT", "quantity": "2", "price": "0.0001"}
    st, ack = await call(http, sim, "POST", "option/order", args)
    assert st == 200 and set(ack) == {"symbol", "orderId", "transactTime"}
    assert ack["symbol"] == sym and ack["transactTime"] == sim.now_ms() and isinstance(ack["orderId"], int)
    st, res = await call(http, sim, "POST", "option/order", {**args, "newOrderRespType": "RESULT"})
    assert st == 200
    assert set(res) == {"symbol", "orderId", "transactTime"} | ORDER_FIELDS - {"time", "updateTime", "working"}
    assert (res["status"], res["timeInForce"], res["type"], res["side"]) == ("NEW", "GTC", "LIMIT", "BUY")
    assert Decimal(res["price"]) == Decimal("0.0001") and Decimal(res["origQty"]) == 2
    assert Decimal(res["executedQty"]) == 0 and is_dec(res["cummulativeQuoteQty"])
    assert res["orderId"] > ack["orderId"]  # ids grow
    st, got = await call(http, sim, "GET", "option/order", {"symbol": sym, "orderId": ack["orderId"]})
    assert st == 200 and set(got) == ORDER_FIELDS and got["working"] is True
    assert str(got["orderId"]) == str(ack["orderId"]) and got["time"] == got["updateTime"] == sim.now_ms()
    assert all(is_dec(got[k]) for k in ("price", "origQty", "executedQty", "cummulativeQuoteQty"))
    sim.clock.advance(1_000)
    st, cancelled = await call(http, sim, "DELETE", "option/order", {"symbol": sym, "orderId": ack["orderId"]})
    assert st == 200 and cancelled["status"] == "CANCELED" and cancelled["transactTime"] == sim.now_ms()
    st, again = await call(http, sim, "DELETE", "option/order", {"symbol": sym, "orderId": ack["orderId"]})
    assert (st, again["code"]) == (400, -2011)
    st, got = await call(http, sim, "GET", "option/order", {"symbol": sym, "orderId": ack["orderId"]})
    assert got["status"] == "CANCELED" and got["working"] is False and got["updateTime"] == sim.now_ms()
    # an order of another account, or of another symbol, does not exist for this one
    st, other = await call(
        http, sim, "GET", "option/order", {"symbol": sym, "orderId": ack["orderId"]}, key=OTHER_KEY, secret=OTHER_SECRET
    )
    assert (st, other["code"]) == (400, -2013)
    st, body = await call(
        http, sim, "GET", "option/order", {"symbol": trading_symbol(sim, 1), "orderId": res["orderId"]}
    )
    assert (st, body["code"]) == (400, -2013)
    # order/test validates and places nothing
    n = len(sim.accounts.get(KEY, sim.now_ms()).orders)
    st, body = await call(http, sim, "POST", "option/order/test", args)
    assert (st, body) == (200, {}) and len(sim.accounts.get(KEY, sim.now_ms()).orders) == n
    st, body = await call(http, sim, "POST", "option/order/test", {**args, "type": "MARKET"})
    assert (st, body["code"]) == (400, -1116)


async def test_orders_fill_against_the_market_and_balances_follow(make_sim, http):
    sim = await make_sim(accounts_config(trades_per_minute=30))
    sym = trading_symbol(sim)
    opt = sim.market.option(sym)
    account = sim.accounts.get(KEY, sim.now_ms())
    quote_before = account.balance("option", "USDT")[0]
    # a BUY far above the market fills from the next trades, each filling at most its own quantity:
    # sized to take exactly the next three trades, so it is partly filled after the first
    high = "999"
    coming = sim.market.trades(sym, sim.now_ms() + 1, sim.now_ms() + 4 * 3_600_000)[:3]
    assert len(coming) == 3
    qty = sum(int(Decimal(t["qty"])) for t in coming)
    st, order = await call(
        http,
        sim,
        "POST",
        "option/order",
        {"symbol": sym, "side": "BUY", "type": "LIMIT", "quantity": qty, "price": high, "newOrderRespType": "RESULT"},
    )
    assert st == 200 and order["status"] == "NEW"
    assert account.balance("option", "USDT")[1] == qty * Decimal(high)  # locked
    path, which = "option/order", {"symbol": sym, "orderId": order["orderId"]}
    sim.clock.advance(coming[0]["time"] - sim.now_ms())
    st, got = await call(http, sim, "GET", path, which)
    assert (got["status"], Decimal(got["executedQty"])) == ("PARTIALLY_FILLED", Decimal(coming[0]["qty"]))
    assert got["updateTime"] == coming[0]["time"] and got["working"] is True
    sim.clock.advance(coming[2]["time"] - sim.now_ms())
    st, got = await call(http, sim, "GET", path, which)
    assert (got["status"], got["updateTime"], got["working"]) == ("FILLED", coming[2]["time"], False)
    assert Decimal(got["executedQty"]) == qty and Decimal(got["cummulativeQuoteQty"]) == qty * Decimal(high)
    assert account.balance("option", "USDT") == [quote_before - qty * Decimal(high), 0]
    assert account.balance("option", sym)[0] == qty
    # a SELL locks the options; cancelling unlocks them
    st, sell = await call(
        http,
        sim,
        "POST",
        "option/order",
        {"symbol": sym, "side": "SELL", "type": "LIMIT", "quantity": 15, "price": high},
    )
    assert st == 200 and account.balance("option", sym) == [qty - 15, 15]
    st, _ = await call(http, sim, "DELETE", "option/order", {"symbol": sym, "orderId": sell["orderId"]})
    assert account.balance("option", sym) == [qty, 0]
    # more than the account holds is refused
    st, body = await call(
        http,
        sim,
        "POST",
        "option/order",
        {"symbol": sym, "side": "SELL", "type": "LIMIT", "quantity": qty + 1, "price": "1"},
    )
    assert (st, body["code"]) == (400, -2010)
    # positions: what is held, with its cost (the price paid) and the seed's fields
    st, positions = await call(http, sim, "GET", "option/position", {"symbol": sym})
    assert st == 200 and len(positions) == 1
    (p,) = positions
    assert set(p) == {"name", "amount", "availAmount", "profit", "profitRate", "cost", "type"} | {
        "execTime",
        "execrPrice",
        "orderIndex",
    }
    assert p["name"] == sym and Decimal(p["amount"]) == qty and Decimal(p["cost"]) == Decimal(high)
    assert p["type"] == ("CALL" if opt.is_call else "PUT") and p["execTime"] == opt.expiry
    assert all(is_dec(p[k]) for k in ("profit", "profitRate", "execrPrice"))
    # the account: three sections, the seed's fields
    st, acct = await call(http, sim, "GET", "account")
    assert st == 200 and set(acct) == {"updateTime", "contractBalances", "optionBalances", "spotBalances"}
    for section in ("contractBalances", "optionBalances", "spotBalances"):
        for b in acct[section]:
            assert set(b) == {"asset", "canDeposit", "canTrade", "canWithdraw", "free", "locked"}
            assert is_dec(b["free"]) and is_dec(b["locked"]) and isinstance(b["canTrade"], bool)
    option = {b["asset"]: Decimal(b["free"]) for b in acct["optionBalances"]}
    assert option[sym] == qty and option["USDT"] == quote_before - qty * Decimal(high)


async def test_open_and_history_orders_page_by_order_id(make_sim, http):
    sim = await make_sim(accounts_config())
    sym = trading_symbol(sim)
    ids = []
    for _ in range(12):
        sim.clock.advance(150)  # within the orders limit (10 per second)
        st, o = await place_resting_buy(http, sim, sym, 1)
        assert st == 200
        ids.append(o["orderId"])
    for oid in ids[:4]:
        await call(http, sim, "DELETE", "option/order", {"symbol": sym, "orderId": oid})
    st, history = await call(http, sim, "GET", "option/historyOrders", {"symbol": sym})
    assert st == 200 and [int(o["orderId"]) for o in history] == ids
    assert all(set(o) == ORDER_FIELDS and isinstance(o["orderId"], str) for o in history)
    st, open_ = await call(http, sim, "GET", "option/openOrders", {"symbol": sym})
    assert [int(o["orderId"]) for o in open_] == ids[4:] and {o["status"] for o in open_} == {"NEW"}
    st, page = await call(http, sim, "GET", "option/historyOrders", {"symbol": sym, "orderId": ids[5], "limit": 3})
    assert [int(o["orderId"]) for o in page] == ids[5:8]  # from that id on, oldest first
    st, page = await call(http, sim, "GET", "option/historyOrders", {"symbol": sym, "orderId": ids[-1] + 1})
    assert (st, page) == (200, [])
    st, page = await call(http, sim, "GET", "option/historyOrders", {"symbol": sym, "limit": 3})
    assert [int(o["orderId"]) for o in page] == ids[-3:]  # without orderId: the most recent, oldest first
    st, body = await call(http, sim, "GET", "option/openOrders", {"symbol": sym, "startTime": 9, "endTime": 8})
    assert (st, body["code"]) == (400, -1127)
    times = [o["time"] for o in history]
    st, page = await call(
        http, sim, "GET", "option/historyOrders", {"symbol": sym, "startTime": times[2], "endTime": times[6]}
    )
    assert [int(o["orderId"]) for o in page] == ids[2:7]
    for limit in ("0", "501"):
        st, body = await call(http, sim, "GET", "option/openOrders", {"symbol": sym, "limit": limit})
        assert (st, body["code"]) == (400, -1130)
    st, body = await call(http, sim, "GET", "option/historyOrders", {"symbol": sym, "orderId": "1e3"})
    assert (st, body["code"]) == (400, -1100)
    st, body = await call(http, sim, "GET", "option/historyOrders", {})
    assert (st, body["code"]) == (400, -1102)
    st, body = await call(http, sim, "GET", "option/openOrders", {"symbol": "NOPE0101CALL"})
    assert (st, body["code"]) == (400, -1121)


async def test_release_and_back_move_margin_and_options_as_the_seed_shows(make_sim, http):
    sim = await make_sim(accounts_config())
    short = shortable_symbol(sim)
    opt = sim.market.option(short)
    account = sim.accounts.get(KEY, sim.now_ms())
    margin0, base0 = account.balance("spot", opt.underlying)[0], account.balance("spot", "JEX")[0]
    st, rel = await call(http, sim, "POST", "option/release", {"symbol": short, "amount": 30})
    assert st == 200 and set(rel) == SHORT_CALL_FIELDS | {"createdDate"} and rel["createdDate"] == sim.now_ms()
    assert (rel["assetMargin"], rel["assetBase"], rel["assetOption"]) == (opt.underlying, "JEX", short)
    assert (rel["releaseAmount"], rel["backAmount"]) == ("30", "0")
    # margin = amount x convertRatio x rateMargin of the underlying; base = amount of JEX
    assert Decimal(rel["marginAmount"]) == Decimal("0.3") and Decimal(rel["baseAmount"]) == 30
    assert Decimal(rel["availableMargin"]) == margin0 - Decimal("0.3")
    assert Decimal(rel["availableBase"]) == base0 - 30 and rel["availableOption"] == "30"
    sim.clock.advance(60_000)
    st, back = await call(http, sim, "POST", "option/back", {"symbol": short, "amount": 12})
    assert st == 200 and (back["releaseAmount"], back["backAmount"]) == ("30", "12")
    assert Decimal(back["marginAmount"]) == Decimal("0.18") and Decimal(back["availableMargin"]) == margin0 - Decimal(
        "0.18"
    )
    assert back["availableOption"] == "18"
    st, info = await call(http, sim, "GET", "option/info", {"symbol": short})
    assert st == 200 and set(info) == SHORT_CALL_FIELDS and info["backAmount"] == "12"
    st, body = await call(http, sim, "POST", "option/back", {"symbol": short, "amount": 19})
    assert (st, body["code"]) == (400, -2010)  # more than is shorted
    st, body = await call(http, sim, "POST", "option/release", {"symbol": short, "amount": 0})
    assert (st, body["code"]) == (400, -1130)
    st, body = await call(http, sim, "POST", "option/release", {"symbol": short, "amount": "1.5"})
    assert (st, body["code"]) == (400, -1100)
    not_shortable = next(
        o["symbol"] for o in sim.market.option_info(sim.now_ms()) if o["status"] == "TRADING" and not o["canRelease"]
    )
    st, body = await call(http, sim, "POST", "option/release", {"symbol": not_shortable, "amount": 1})
    assert st == 400 and body["code"] < 0
    # records: a short (status 1) and a call (status 2), paged by fromId
    st, records = await call(http, sim, "GET", "option/record", {"symbol": short})
    assert st == 200 and [r["status"] for r in records] == [1, 2]
    for r in records:
        assert set(r) == {"createdDate", "name", "status", "amount", "convertRatio", "rateMargin"} | {
            "baseAmount",
            "marginAmount",
            "assetMargin",
            "assetBase",
            "id",
        }
        assert r["name"] == short and all(is_dec(r[k]) for k in ("amount", "convertRatio", "rateMargin"))
    assert [r["amount"] for r in records] == ["30", "12"]
    assert records[0]["id"] < records[1]["id"]
    st, page = await call(http, sim, "GET", "option/record", {"symbol": short, "fromId": records[1]["id"]})
    assert [r["id"] for r in page] == [records[1]["id"]]
    st, page = await call(http, sim, "GET", "option/record", {"symbol": short, "limit": 1})
    assert [r["id"] for r in page] == [records[1]["id"]]  # without fromId: the most recent
    st, body = await call(http, sim, "GET", "option/record", {"symbol": short, "startTime": 2, "endTime": 1})
    assert (st, body["code"]) == (400, -1127)
    for path, params, code in (
        ("option/record", {"symbol": short, "limit": 501}, -1130),
        ("option/record", {}, -1102),
        ("option/info", {}, -1102),
        ("option/release", {"symbol": short}, -1102),
        ("option/back", {"amount": 1}, -1102),
    ):
        method = "POST" if path in ("option/release", "option/back") else "GET"
        st, body = await call(http, sim, method, path, params)
        assert (st, body["code"]) == (400, code), (path, params)
    st, page = await call(http, sim, "GET", "option/record", {"symbol": short, "startTime": sim.now_ms() - 1})
    assert [r["id"] for r in page] == [records[1]["id"]]


async def test_signature_timestamp_and_key_refusals(make_sim, http):
    sim = await make_sim(accounts_config())
    path = "account"
    assert (await call(http, sim, "GET", path))[0] == 200
    st, body = await call(http, sim, "GET", path, key=None)
    assert (st, body["code"]) == (401, -2014)
    st, body = await call(http, sim, "GET", path, key="bad key!")
    assert (st, body["code"]) == (401, -2014)
    st, body = await call(http, sim, "GET", path, key="unknownkey", secret="x")
    assert (st, body["code"]) == (401, -2015)
    st, body = await call(http, sim, "GET", path, secret="wrongsecret")
    assert (st, body["code"]) == (400, -1022)
    st, body = await call(http, sim, "GET", path, key=OTHER_KEY, secret=SECRET)  # another account's secret
    assert (st, body["code"]) == (400, -1022)
    st, body = await call(http, sim, "GET", path, sign=False)
    assert (st, body["code"]) == (400, -1102)
    st, body = await call(http, sim, "GET", path, timestamp=False)
    assert (st, body["code"]) == (400, -1102)
    now = sim.now_ms()
    # recvWindow: default 5000, at most 60000; a timestamp more than 1 s ahead is refused
    assert (await call(http, sim, "GET", path, timestamp=now - 5_000))[0] == 200
    st, body = await call(http, sim, "GET", path, timestamp=now - 5_001)
    assert (st, body["code"]) == (400, -1021)
    assert (await call(http, sim, "GET", path, timestamp=now - 59_000, recv_window=60_000))[0] == 200
    st, body = await call(http, sim, "GET", path, timestamp=now - 61_000, recv_window=60_000)
    assert (st, body["code"]) == (400, -1021)
    st, body = await call(http, sim, "GET", path, recv_window=60_001)
    assert (st, body["code"]) == (400, -1130)
    assert (await call(http, sim, "GET", path, timestamp=now + 999))[0] == 200
    st, body = await call(http, sim, "GET", path, timestamp=now + 1_000)
    assert (st, body["code"]) == (400, -1021)
    # the signature covers the query string, then the body: parameters may be split between them
    sym = trading_symbol(sim)
    st, body = await call(
        http,
        sim,
        "POST",
        "option/order",
        {"symbol": sym, "side": "BUY"},
        body={"type": "LIMIT", "quantity": 1, "price": "0.0001"},
    )
    assert st == 200 and body["symbol"] == sym
    # a parameter changed after signing is caught
    qs = urlencode({"symbol": sym, "timestamp": sim.now_ms()})
    good = _sig(qs, SECRET)
    url = f"{sim.base_url}/api/v1/option/openOrders?{qs.replace(sym, trading_symbol(sim, 1))}&signature={good}"
    async with http.get(url, headers={"X-JEX-APIKEY": KEY}) as r:
        assert (r.status, (await r.json())["code"]) == (400, -1022)


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"side": "BUY", "type": "LIMIT", "quantity": 1, "price": "1"}, -1102),  # no symbol
        ({"symbol": "S", "type": "LIMIT", "quantity": 1, "price": "1"}, -1102),  # no side
        ({"symbol": "S", "side": "BUY", "quantity": 1, "price": "1"}, -1102),  # no type
        ({"symbol": "S", "side": "BUY", "type": "LIMIT", "price": "1"}, -1102),  # no quantity
        ({"symbol": "S", "side": "BUY", "type": "LIMIT", "quantity": 1}, -1102),  # no price
        ({"symbol": "S", "side": "HOLD", "type": "LIMIT", "quantity": 1, "price": "1"}, -1117),
        ({"symbol": "S", "side": "BUY", "type": "MARKET", "quantity": 1, "price": "1"}, -1116),
        ({"symbol": "S", "side": "BUY", "type": "LIMIT", "quantity": "1e2", "price": "1"}, -1100),
        ({"symbol": "S", "side": "BUY", "type": "LIMIT", "quantity": 1, "price": "-1"}, -1100),
        ({"symbol": "S", "side": "BUY", "type": "LIMIT", "quantity": "0.5", "price": "1"}, -1013),
        ({"symbol": "S", "side": "BUY", "type": "LIMIT", "quantity": 1, "price": "0.00001"}, -1013),
        (
            {"symbol": "S", "side": "BUY", "type": "LIMIT", "quantity": 1, "price": "1", "newOrderRespType": "FULL"},
            -1130,
        ),
        ({"symbol": "NOPE0101CALL", "side": "BUY", "type": "LIMIT", "quantity": 1, "price": "1"}, -1121),
    ],
)
async def test_order_parameter_rules(make_sim, http, params, code):
    sim = await make_sim(accounts_config())
    if params.get("symbol") == "S":
        params = {**params, "symbol": trading_symbol(sim)}
    for path in ("option/order", "option/order/test"):
        st, body = await call(http, sim, "POST", path, params)
        assert (st, body["code"]) == (400, code), (path, body)
    assert not sim.accounts.get(KEY, sim.now_ms()).orders


async def test_orders_rate_limits_on_placement(make_sim, http):
    sim = await make_sim(accounts_config(), now=T0 + 60_000)
    _, _, info = await get(http, sim, "/api/v1/exchangeInfo")
    limits = {(x["rateLimitType"], x["interval"]): x["limit"] for x in info["rateLimits"]}
    assert limits[("orders", "second")] == 10 and limits[("orders", "day")] == 100_000
    sym = trading_symbol(sim)
    args = {"symbol": sym, "side": "BUY", "type": "LIMIT", "quantity": 1, "price": "0.0001"}
    results = [await call(http, sim, "POST", "option/order", args) for _ in range(11)]
    assert [st for st, _ in results] == [200] * 10 + [429]
    assert results[-1][1]["code"] == -1015
    # reads and tests are not orders; another account has its own count
    assert (await call(http, sim, "POST", "option/order/test", args))[0] == 200
    assert (await call(http, sim, "POST", "option/order", args, key=OTHER_KEY, secret=OTHER_SECRET))[0] == 200
    sim.clock.advance(1_000)
    assert (await call(http, sim, "POST", "option/order", args))[0] == 200
    # the day's limit: a day of placements is counted, not only the last second
    sim.accounts.ORDERS_PER_DAY = 12
    sim.clock.advance(1_000)
    assert (await call(http, sim, "POST", "option/order", args))[0] == 200
    sim.clock.advance(1_000)
    st, body = await call(http, sim, "POST", "option/order", args)
    assert (st, body["code"]) == (429, -1015)
    sim.clock.advance(86_400_000)  # the next day (and a symbol listed by then)
    assert (await call(http, sim, "POST", "option/order", {**args, "symbol": trading_symbol(sim)}))[0] == 200


async def test_demo_account_has_a_deterministic_history(make_sim, http):
    sims = [await make_sim(small_config(weight_limit=100_000)) for _ in range(2)]
    seen = []
    for sim in sims:
        account = sim.accounts.get(DEMO_KEY, sim.now_ms())
        orders = [(o.order_id, o.symbol, o.side, o.status, o.executed) for o in account.orders.values()]
        records = [(r.record_id, r.symbol, r.status, r.amount) for r in account.records]
        seen.append((orders, records))
    assert seen[0] == seen[1]
    orders, records = seen[0]
    assert {s for *_, s, _ in orders} >= {"FILLED", "CANCELED"}
    assert {r[2] for r in records} == {1, 2}
    # and the demo key pair answers, signed as documented
    sim = sims[0]
    sym = orders[-1][1]  # still listed
    st, history = await call(
        http, sim, "GET", "option/historyOrders", {"symbol": sym}, key=DEMO_KEY, secret=DEMO_SECRET
    )
    assert st == 200 and [int(o["orderId"]) for o in history] == [o[0] for o in orders if o[1] == sym]
