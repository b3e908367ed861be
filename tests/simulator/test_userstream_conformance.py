"""User data streams (JEX-STREAMS-NOTES.md): listenKeys over REST, and the events of an account on
``/ws/<listenKey>``, checked against what the signed REST endpoints answer at the same moment.

Requests are signed here by hand, as in test_account_conformance.py. The clock is frozen: the tests
move it and wait on messages, never on sleeps.
"""

from __future__ import annotations

import asyncio
import json
import re
from decimal import Decimal

import aiohttp
import pytest
from aiohttp import WSMsgType
from sim_helpers import OTHER_KEY, OTHER_SECRET, SECRET, place_resting_buy, small_config, used_weight
from sim_helpers import USER as KEY
from sim_helpers import signed_call as call

from collector.simulator import FaultConfig

REPORT_KEYS = {"e", "E", "s", "S", "q", "p", "X", "i", "z", "O", "Z"}
INFO_KEYS = {"e", "E", "m", "t", "u", "B"}


def uds_config(**kw):
    base = dict(accounts={KEY: SECRET, OTHER_KEY: OTHER_SECRET}, weight_limit=100_000, push_s=0.05, trade_push_ms=20)
    return small_config(**{**base, **kw})


async def uds(http, sim, method: str, params: dict | None = None, *, key: str | None = KEY, body: dict | None = None):
    """(status, body) of /api/v1/userDataStream: the API key only, no signature."""
    headers = {"X-JEX-APIKEY": key} if key is not None else {}
    async with http.request(
        method, sim.base_url + "/api/v1/userDataStream", params=params, data=body, headers=headers
    ) as r:
        return r.status, await r.json(content_type=None)


async def recv(ws, timeout: float = 5.0) -> aiohttp.WSMessage:
    return await asyncio.wait_for(ws.receive(), timeout)


async def events(ws, n: int) -> list[dict]:
    """The next n events."""
    out = []
    while len(out) < n:
        msg = await recv(ws)
        assert msg.type is WSMsgType.TEXT, msg
        out.append(json.loads(msg.data))
    return out


def by_time(evs: list[dict]) -> list[dict]:
    """Events in the order they happened (E; a report before the balances it led to)."""
    return sorted(evs, key=lambda e: (e["E"], e["e"] == "accountOptionInfo", Decimal(str(e.get("z", 0)))))


def cheap_busy_symbol(sim, minutes: int = 20) -> str:
    """A trading symbol priced below 20 with trades in each of the next few minutes."""
    now = sim.now_ms()
    for o in sim.market.listed(now):
        if (
            o.expiry > now + 3_600_000
            and sim.market.last_price_ticks(o, now + 1) < 200_000
            and all(sim.market.trades(o.name, now + i * 60_000, now + (i + 1) * 60_000) for i in range(minutes))
        ):
            return o.name
    raise AssertionError("no cheap busy symbol")


def expected_report(order: dict, at: int) -> dict:
    return {
        "e": "execOptionReport",
        "E": at,
        "s": order["symbol"],
        "S": order["side"],
        "q": order["origQty"],
        "p": order["price"],
        "X": order["status"],
        "i": int(order["orderId"]),
        "z": order["executedQty"],
        "O": at,
        "Z": order["cummulativeQuoteQty"],
    }


def expected_balances(account: dict) -> list[dict]:
    return [
        {
            "a": b["asset"],
            "f": b["free"],
            "l": b["locked"],
            "T": b["canTrade"],
            "W": b["canWithdraw"],
            "D": b["canDeposit"],
        }
        for b in account["optionBalances"]
    ]


async def test_listen_key_lifecycle(make_sim, http):
    sim = await make_sim(uds_config())
    before = used_weight(sim)
    st, body = await uds(http, sim, "POST")
    assert st == 200 and set(body) == {"listenKey"} and re.fullmatch(r"[A-Za-z0-9]{60}", body["listenKey"])
    lk = body["listenKey"]
    assert used_weight(sim) - before == 1 and sim.stats.listen_keys_created == 1
    assert (await uds(http, sim, "POST"))[1]["listenKey"] != lk
    st, body = await uds(http, sim, "POST", key=None)
    assert (st, body["code"]) == (401, -2014)
    st, body = await uds(http, sim, "POST", key="nosuchkey")
    assert (st, body["code"]) == (401, -2015)
    before = used_weight(sim)
    assert await uds(http, sim, "PUT", {"listenKey": lk}) == (200, {})
    assert await uds(http, sim, "PUT", body={"listenKey": lk}) == (200, {})  # in the body, too
    assert used_weight(sim) - before == 2
    st, body = await uds(http, sim, "PUT")
    assert (st, body["code"]) == (400, -1102)
    missing = {"code": -1125, "msg": "This listenKey does not exist."}
    assert await uds(http, sim, "PUT", {"listenKey": lk}, key=OTHER_KEY) == (400, missing)  # not theirs
    assert await uds(http, sim, "PUT", {"listenKey": "x" * 60}) == (400, missing)
    async with http.ws_connect(f"{sim.stream_url}/ws/{lk}"):
        pass
    assert await uds(http, sim, "DELETE", {"listenKey": lk}) == (200, {})
    assert await uds(http, sim, "PUT", {"listenKey": lk}) == (400, missing)
    assert await uds(http, sim, "DELETE", {"listenKey": lk}) == (400, missing)
    async with http.get(f"{sim.base_url}/ws/{lk}") as r:
        assert (r.status, await r.json(content_type=None)) == (400, missing)
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await http.ws_connect(f"{sim.stream_url}/ws/{lk}")
    assert sim.stats.by_endpoint["userDataStream"] == 12


async def test_expiry_without_keepalive_closes_the_stream(make_sim, http):
    sim = await make_sim(uds_config(listen_key_ttl_s=10))
    lk = (await uds(http, sim, "POST"))[1]["listenKey"]
    sym = cheap_busy_symbol(sim)
    async with http.ws_connect(f"{sim.stream_url}/ws/{lk}") as ws:
        sim.clock.advance(6_000)
        assert await uds(http, sim, "PUT", {"listenKey": lk}) == (200, {})  # valid until +16 s
        sim.clock.advance(6_000)
        st, placed = await place_resting_buy(http, sim, sym, 1)
        assert st == 200
        report = next(e for e in await events(ws, 2) if e["e"] == "execOptionReport")  # still served
        assert report["i"] == placed["orderId"] and report["E"] == sim.now_ms()
        sim.clock.advance(4_000)
        while (msg := await recv(ws)).type is WSMsgType.TEXT:
            pass
        assert msg.type is WSMsgType.CLOSE and msg.extra == "listenKey expired" and ws.close_code == 1000
    st, body = await uds(http, sim, "PUT", {"listenKey": lk})
    assert (st, body["code"]) == (400, -1125)
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await http.ws_connect(f"{sim.stream_url}/ws/{lk}")
    assert exc.value.status == 400


async def test_delete_closes_its_connections(make_sim, http):
    sim = await make_sim(uds_config())
    lk = (await uds(http, sim, "POST"))[1]["listenKey"]
    other = (await uds(http, sim, "POST"))[1]["listenKey"]
    async with (
        http.ws_connect(f"{sim.stream_url}/ws/{lk}") as a,
        http.ws_connect(f"{sim.stream_url}/stream?streams={lk}") as b,
        http.ws_connect(f"{sim.stream_url}/ws/{other}") as c,
    ):
        assert await uds(http, sim, "DELETE", {"listenKey": lk}) == (200, {})
        for ws in (a, b):
            msg = await recv(ws)
            assert msg.type is WSMsgType.CLOSE and msg.extra == "listenKey deleted"
        assert not c.closed
    assert sim.stats.ws_closed["listen_key"] == 2


async def test_new_and_cancelled_order_events_equal_rest(make_sim, http):
    sim = await make_sim(uds_config())
    sym = cheap_busy_symbol(sim)
    lk = (await uds(http, sim, "POST"))[1]["listenKey"]
    async with http.ws_connect(f"{sim.stream_url}/ws/{lk}") as ws:
        st, placed = await place_resting_buy(http, sim, sym, 3)
        assert st == 200
        now = sim.now_ms()
        report, info = by_time(await events(ws, 2))
        st, open_orders = await call(http, sim, "GET", "option/openOrders", {"symbol": sym})
        st, account = await call(http, sim, "GET", "account")
        assert set(report) == REPORT_KEYS and report == expected_report(open_orders[-1], now)
        assert report["X"] == "NEW" and report["i"] == placed["orderId"]
        assert set(info) == INFO_KEYS and info["e"] == "accountOptionInfo"
        assert (info["E"], info["u"], info["m"], info["t"]) == (now, account["updateTime"], 0, 0)
        assert info["B"] == expected_balances(account)
        sim.clock.advance(5_000)
        st, cancelled = await call(http, sim, "DELETE", "option/order", {"symbol": sym, "orderId": placed["orderId"]})
        assert st == 200 and cancelled["status"] == "CANCELED"
        report, info = by_time(await events(ws, 2))
        st, order = await call(http, sim, "GET", "option/order", {"symbol": sym, "orderId": placed["orderId"]})
        st, account = await call(http, sim, "GET", "account")
        assert report == expected_report(order, sim.now_ms()) and report["X"] == "CANCELED"
        assert info["B"] == expected_balances(account) and info["E"] == sim.now_ms()
    assert sim.stats.ws_messages["execOptionReport"] == 2 and sim.stats.ws_messages["accountOptionInfo"] == 2


async def test_each_fill_reported_at_its_trade_time(make_sim, http):
    sim = await make_sim(uds_config(faults=FaultConfig(ws_reorder_rate=1.0, seed=2)))
    sym = cheap_busy_symbol(sim)
    placed_at = sim.now_ms()
    ahead = sim.market.trades(sym, placed_at, placed_at + 1_200_000)
    fills = ahead[:3]
    price = max(Decimal(t["price"]) for t in fills)
    qty = sum(int(t["qty"]) for t in fills) - 1  # three fills, the last one partial
    lk = (await uds(http, sim, "POST"))[1]["listenKey"]
    async with http.ws_connect(f"{sim.stream_url}/ws/{lk}") as ws:
        st, placed = await call(
            http,
            sim,
            "POST",
            "option/order",
            {"symbol": sym, "side": "BUY", "type": "LIMIT", "quantity": qty, "price": str(price)},
        )
        assert st == 200
        new, _ = by_time(await events(ws, 2))
        assert new["X"] == "NEW" and new["z"] == "0"
        sim.clock.advance(fills[-1]["time"] + 1 - sim.now_ms())
        got = await events(ws, 4)  # three fills and the balances, in one push
        reports, (info,) = by_time(got)[:3], by_time(got)[3:]
        st, order = await call(http, sim, "GET", "option/order", {"symbol": sym, "orderId": placed["orderId"]})
        st, account = await call(http, sim, "GET", "account")
    assert [(r["E"], r["O"]) for r in reports] == [(t["time"], t["time"]) for t in fills]
    assert [r["X"] for r in reports] == ["PARTIALLY_FILLED", "PARTIALLY_FILLED", "FILLED"]
    filled = [int(fills[0]["qty"]), int(fills[0]["qty"]) + int(fills[1]["qty"]), qty]
    assert [r["z"] for r in reports] == [str(z) for z in filled]
    assert [Decimal(r["Z"]) for r in reports] == [price * z for z in filled]
    assert reports[-1] == expected_report(order, fills[-1]["time"])
    assert (
        info["B"] == expected_balances(account) and info["E"] == info["u"] == account["updateTime"] == fills[-1]["time"]
    )
    assert sim.stats.ws_reorders == 2  # both pushes shuffled: clients order by E
    assert got != by_time(got)  # and this one came out of order
