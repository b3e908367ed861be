"""Every public endpoint and parameter rule of the seed, against a running simulator."""

from __future__ import annotations

import re

from sim_helpers import KEY, T0, get, small_config, trading_symbol

NAME_RE = re.compile(r"^(BTC|ETH|EOS|LTC|BNB)\d{4}(CALL|PUT)W?\d*$")
DEC_RE = re.compile(r"^-?\d+(\.\d+)?$")


def is_dec(v) -> bool:
    return isinstance(v, str) and bool(DEC_RE.match(v))


async def test_general_endpoints(make_sim, http):
    sim = await make_sim(small_config(weight_limit=1200, raw_limit=5000))
    status, _headers, body = await get(http, sim, "/api/v1/ping")
    assert (status, body) == (200, {})
    status, _, body = await get(http, sim, "/api/v1/time")
    assert body == {"serverTime": sim.now_ms()}
    status, _, info = await get(http, sim, "/api/v1/exchangeInfo")
    assert status == 200 and info["timezone"] == "UTC" and info["serverTime"] == sim.now_ms()
    limits = {(x["rateLimitType"], x["interval"], x["intervalNum"]): x["limit"] for x in info["rateLimits"]}
    assert limits[("requestsWeight", "minute", 1)] == 1200
    assert limits[("rawRequests", "minute", 5)] == 5000
    names = [s["symbol"] for s in info["optionSymbols"]]
    assert names == sim.market.listed_symbols(sim.now_ms()) and len(names) >= 6
    assert all(NAME_RE.match(n) for n in names), names
    for s0 in info["optionSymbols"]:
        assert s0["baseAsset"] == s0["symbol"] and s0["quotePrecision"] == 4
        assert s0["status"] == ("TRADING" if sim.market.option(s0["symbol"]).expiry > sim.now_ms() else "EXPIRED")
    assert {s["status"] for s in info["optionSymbols"]} == {"TRADING", "EXPIRED"}
    assert info["contractSymbols"] and info["spotSymbols"]
    assert not set(names) & {s["symbol"] for s in info["contractSymbols"] + info["spotSymbols"]}


async def test_option_info(make_sim, http):
    sim = await make_sim()
    status, _, body = await get(http, sim, "/api/v1/optionInfo")
    assert status == 200 and body == sim.market.option_info(sim.now_ms())
    assert {o["type"] for o in body} == {"LONGS", "SHORTS"}
    for o in body:
        assert set(o) == {"symbol", "status", "type", "exertionTime", "optionDesc", "canRelease", "releaseOption"}
        assert isinstance(o["exertionTime"], int)
        assert (o["exertionTime"] > sim.now_ms()) == (o["status"] == "TRADING")
        assert ("CALL" in o["symbol"]) == (o["type"] == "LONGS")
        assert (o["releaseOption"] is None) == (not o["canRelease"])


async def test_symbol_errors(make_sim, http):
    sim = await make_sim()
    for path in ("option/depth", "option/trades", "option/avgPrice"):
        st, _, body = await get(http, sim, f"/api/v1/{path}")
        assert (st, body["code"]) == (400, -1102)
        st, _, body = await get(http, sim, f"/api/v1/{path}", {"symbol": "BTC0101CALLZ"})
        assert (st, body) == (400, {"code": -1121, "msg": "Invalid symbol."})
        st, _, body = await get(http, sim, f"/api/v1/{path}", {"symbol": "btc?"})
        assert (st, body["code"]) == (400, -1100)
    for path in ("option/ticker/24hr", "option/ticker/price", "option/ticker/bookTicker"):
        st, _, body = await get(http, sim, f"/api/v1/{path}", {"symbol": "NOPE"})
        assert (st, body["code"]) == (400, -1121)
    st, _, body = await get(http, sim, "/api/v1/option/nothing")
    assert st == 404 and body["code"] < 0


async def test_depth(make_sim, http):
    sim = await make_sim()
    sym = trading_symbol(sim)
    st, _, d = await get(http, sim, "/api/v1/option/depth", {"symbol": sym})
    assert st == 200 and isinstance(d["lastUpdateId"], int)
    assert 30 <= len(d["bids"]) <= 60 and 30 <= len(d["asks"]) <= 60
    for limit in (5, 10, 20, 50, 60):
        st, _, d = await get(http, sim, "/api/v1/option/depth", {"symbol": sym, "limit": limit})
        assert st == 200 and len(d["bids"]) <= limit and len(d["asks"]) <= limit
        bids = [(float(p), float(q)) for p, q, ign in d["bids"]]
        asks = [(float(p), float(q)) for p, q, ign in d["asks"]]
        assert all(is_dec(x) for lvl in d["bids"] + d["asks"] for x in lvl[:2])
        assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
        assert bids[0][0] < asks[0][0] and all(q > 0 for _, q in bids + asks)
    for bad in (0, 7, 61, 100):
        st, _, body = await get(http, sim, "/api/v1/option/depth", {"symbol": sym, "limit": bad})
        assert (st, body["code"]) == (400, -1130)


async def test_recent_trades(make_sim, http):
    sim = await make_sim()
    now = sim.now_ms()
    sym = trading_symbol(sim)
    st, _, rows = await get(http, sim, "/api/v1/option/trades", {"symbol": sym})
    assert st == 200 and len(rows) == 60
    assert all(set(r) == {"price", "qty", "time"} and is_dec(r["price"]) and is_dec(r["qty"]) for r in rows)
    truth = sim.market.trades(sym, now - 3_600_000, now + 1)[-60:][::-1]
    assert rows == [{"price": t["price"], "qty": t["qty"], "time": t["time"]} for t in truth]
    st, _, rows = await get(http, sim, "/api/v1/option/trades", {"symbol": sym, "limit": 7})
    assert len(rows) == 7
    for bad, code in (("61", -1130), ("0", -1130), ("abc", -1100), ("1.5", -1100)):
        st, _, body = await get(http, sim, "/api/v1/option/trades", {"symbol": sym, "limit": bad})
        assert (st, body["code"]) == (400, code)


async def test_historical_trades(make_sim, http):
    sim = await make_sim(small_config(api_keys=("testkey123",)))
    now = sim.now_ms()
    sym = trading_symbol(sim)
    path = "/api/v1/option/historicalTrades"
    st, _, body = await get(http, sim, path, {"symbol": sym})
    assert (st, body["code"]) == (401, -2014)
    st, _, body = await get(http, sim, path, {"symbol": sym}, {"X-JEX-APIKEY": "otherkey"})
    assert (st, body["code"]) == (401, -2015)
    st, _, rows = await get(http, sim, path, {"symbol": sym}, KEY)
    assert st == 200 and len(rows) == 200
    assert all(set(r) == {"id", "price", "qty", "time", "buyerMaker"} and isinstance(r["id"], str) for r in rows)
    ids = [int(r["id"]) for r in rows]
    assert ids == sorted(ids, reverse=True)  # most recent, newest first
    truth = sim.market.trades(sym, sim.market.history_start, now + 1)
    assert ids == [t["id"] for t in truth[-200:]][::-1]
    # fromId: id >= fromId, oldest first, max 500, exact ground truth
    from_id = truth[100]["id"] - 1
    st, _, rows = await get(http, sim, path, {"symbol": sym, "fromId": from_id, "limit": 500}, KEY)
    assert [int(r["id"]) for r in rows] == [t["id"] for t in truth[100:600]]
    assert [(r["price"], r["qty"], r["time"], r["buyerMaker"]) for r in rows] == [
        (t["price"], t["qty"], t["time"], t["buyerMaker"]) for t in truth[100:600]
    ]
    st, _, rows = await get(http, sim, path, {"symbol": sym, "fromId": truth[-1]["id"] + 1}, KEY)
    assert (st, rows) == (200, [])
    for bad, code in (("501", -1130), ("0", -1130)):
        st, _, body = await get(http, sim, path, {"symbol": sym, "limit": bad}, KEY)
        assert (st, body["code"]) == (400, code)
    st, _, body = await get(http, sim, path, {"symbol": sym, "fromId": "x1"}, KEY)
    assert (st, body["code"]) == (400, -1100)


async def test_klines_parameters(make_sim, http):
    sim = await make_sim()
    now = sim.now_ms()
    sym = trading_symbol(sim)
    path = "/api/v1/option/klines"
    st, _, body = await get(http, sim, path, {"symbol": sym})
    assert (st, body["code"]) == (400, -1102)
    st, _, body = await get(http, sim, path, {"symbol": sym, "interval": "2m"})
    assert (st, body["code"]) == (400, -1120)
    st, _, body = await get(http, sim, path, {"symbol": sym, "interval": "1m", "startTime": 10, "endTime": 5})
    assert (st, body["code"]) == (400, -1127)
    st, _, body = await get(http, sim, path, {"symbol": sym, "interval": "1m", "limit": 1001})
    assert (st, body["code"]) == (400, -1130)
    st, _, rows = await get(http, sim, path, {"symbol": sym, "interval": "1m"})
    assert st == 200 and len(rows) == 500  # default, most recent
    assert rows[-1][0] == now // 60_000 * 60_000 and rows[-1][6] > now  # current, partial
    for r in rows:
        assert len(r) == 12 and isinstance(r[0], int) and isinstance(r[6], int) and isinstance(r[8], int)
        assert r[6] == r[0] + 59_999
        assert all(is_dec(r[i]) for i in (1, 2, 3, 4, 5, 7, 9, 10, 11))
    st, _, rows = await get(http, sim, path, {"symbol": sym, "interval": "1m", "limit": 1000})
    assert len(rows) == 721  # 12 h of history + the current minute
    start = T0 - 3_600_000 + 1
    st, _, rows = await get(http, sim, path, {"symbol": sym, "interval": "5m", "startTime": start, "limit": 3})
    assert [r[0] for r in rows] == [T0 - 3_600_000 + 300_000 * i for i in (1, 2, 3)]
    st, _, rows = await get(http, sim, path, {"symbol": sym, "interval": "5m", "endTime": T0 - 1, "limit": 2})
    assert [r[0] for r in rows] == [T0 - 600_000, T0 - 300_000]
    st, _, rows = await get(
        http, sim, path, {"symbol": sym, "interval": "1h", "startTime": T0 - 7_200_000, "endTime": T0 - 3_600_000}
    )
    assert [r[0] for r in rows] == [T0 - 7_200_000, T0 - 3_600_000]
    assert rows == sim.market.klines(sym, "1h", T0 - 7_200_000, T0 - 3_600_000 + 1, now)


async def test_tickers_and_avg_price(make_sim, http):
    sim = await make_sim()
    now = sim.now_ms()
    m = sim.market
    syms = m.listed_symbols(now)
    sym = trading_symbol(sim)
    trades = m.trades(sym, now - 86_400_000 + 1, now + 1)
    st, _, t = await get(http, sim, "/api/v1/option/ticker/24hr", {"symbol": sym})
    assert st == 200 and t["symbol"] == sym
    for k in (
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
        "performPrice",
        "referencePrice",
        "exertionPrice",
    ):
        assert is_dec(t[k]), k
    for k in ("openTime", "closeTime", "exertionTime"):
        assert isinstance(t[k], int)
    from decimal import Decimal as D

    assert t["lastPrice"] == trades[-1]["price"] and t["openPrice"] == trades[0]["price"]
    assert D(t["volume"]) == sum(D(x["qty"]) for x in trades)
    assert D(t["quoteVolume"]) == sum(D(x["qty"]) * D(x["price"]) for x in trades)
    assert t["highPrice"] == max((x["price"] for x in trades), key=D)
    assert D(t["priceChange"]) == D(t["lastPrice"]) - D(t["openPrice"])
    st, _, all_t = await get(http, sim, "/api/v1/option/ticker/24hr")
    assert [x["symbol"] for x in all_t] == syms and t in all_t
    st, _, p = await get(http, sim, "/api/v1/option/ticker/price", {"symbol": sym})
    assert p == {"symbol": sym, "price": trades[-1]["price"]}
    st, _, ps = await get(http, sim, "/api/v1/option/ticker/price")
    assert [x["symbol"] for x in ps] == syms
    st, _, b = await get(http, sim, "/api/v1/option/ticker/bookTicker", {"symbol": sym})
    st, _, d = await get(http, sim, "/api/v1/option/depth", {"symbol": sym, "limit": 5})
    assert b == {
        "symbol": sym,
        "bidPrice": d["bids"][0][0],
        "bidQty": d["bids"][0][1],
        "askPrice": d["asks"][0][0],
        "askQty": d["asks"][0][1],
    }
    assert (b["bidPrice"], b["askPrice"]) == (t["bidPrice"], t["askPrice"])
    st, _, bs = await get(http, sim, "/api/v1/option/ticker/bookTicker")
    assert len(bs) == len(syms)
    st, _, a = await get(http, sim, "/api/v1/option/avgPrice", {"symbol": sym})
    last5 = [x for x in trades if x["time"] > now - 300_000]
    want = sum(D(x["qty"]) * D(x["price"]) for x in last5) / sum(D(x["qty"]) for x in last5)
    assert a["mins"] == 5 and D(a["price"]) == want.quantize(D("0.00000001"))


WEIGHTS = [
    ("/api/v1/ping", {}, 1),
    ("/api/v1/time", {}, 1),
    ("/api/v1/exchangeInfo", {}, 1),
    ("/api/v1/optionInfo", {}, 1),
    ("/api/v1/option/depth", {"symbol": None}, 1),
    ("/api/v1/option/trades", {"symbol": None}, 1),
    ("/api/v1/option/historicalTrades", {"symbol": None}, 5),
    ("/api/v1/option/klines", {"symbol": None, "interval": "1m"}, 1),
    ("/api/v1/option/avgPrice", {"symbol": None}, 1),
    ("/api/v1/option/ticker/24hr", {"symbol": None}, 1),
    ("/api/v1/option/ticker/24hr", {}, 40),
    ("/api/v1/option/ticker/price", {"symbol": None}, 1),
    ("/api/v1/option/ticker/price", {}, 2),
    ("/api/v1/option/ticker/bookTicker", {"symbol": None}, 1),
    ("/api/v1/option/ticker/bookTicker", {}, 2),
]


async def test_weights_and_headers(make_sim, http):
    sim = await make_sim(small_config(weight_limit=1200))
    sym = trading_symbol(sim)
    used = 0
    for path, params, weight in WEIGHTS:
        params = {k: (sym if v is None else v) for k, v in params.items()}
        async with http.get(sim.base_url + path, params=params, headers=KEY) as r:
            assert r.status == 200, path
            used += weight
            assert r.headers["X-MBX-USED-WEIGHT-1M"] == str(used), path
            assert r.headers["X-MBX-USED-WEIGHT"] == str(used), path
            assert r.headers["Content-Type"].startswith("application/json")
    window = sim.now_ms() // 60_000 * 60_000
    assert sim.stats.weight["127.0.0.1"][window] == used
    assert sim.stats.requests == len(WEIGHTS)
    assert sim.stats.by_endpoint["/api/v1/option/ticker/24hr"] == 2
    # errors are charged and carry the headers too
    async with http.get(sim.base_url + "/api/v1/option/depth", params={"symbol": "NOPE"}) as r:
        assert r.status == 400 and r.headers["X-MBX-USED-WEIGHT-1M"] == str(used + 1)
    sim.clock.advance(60_000)  # next fixed window starts from zero
    async with http.get(sim.base_url + "/api/v1/ping") as r:
        assert r.headers["X-MBX-USED-WEIGHT-1M"] == "1"


async def test_a_shorter_weight_window_is_announced_counted_and_named_as_such(make_sim, http):
    sim = await make_sim(small_config(weight_limit=12, weight_window_s=10), now=T0 + 1_000)
    _, _, info = await get(http, sim, "/api/v1/exchangeInfo")
    (weight,) = [x for x in info["rateLimits"] if x["rateLimitType"] == "requestsWeight"]
    assert (weight["interval"], weight["intervalNum"], weight["limit"]) == ("second", 10, 12)
    for n in range(2, 13):  # exchangeInfo was the first
        async with http.get(sim.base_url + "/api/v1/ping") as r:
            assert r.status == 200 and r.headers["X-MBX-USED-WEIGHT-10S"] == str(n)
    async with http.get(sim.base_url + "/api/v1/ping") as r:
        assert r.status == 429 and int(r.headers["Retry-After"]) == 9  # to the end of the 10 s window
    sim.clock.advance(9_000)
    async with http.get(sim.base_url + "/api/v1/ping") as r:
        assert r.status == 200 and r.headers["X-MBX-USED-WEIGHT-10S"] == "1"


async def test_429_then_418_and_growing_bans(make_sim, http):
    cfg = small_config(weight_limit=50, ban_base_s=2, ban_after=1)
    sim = await make_sim(cfg, now=T0 + 10_000)  # 50 s before the window ends
    sym = trading_symbol(sim)
    path = "/api/v1/option/historicalTrades"
    statuses = []
    for _ in range(11):
        async with http.get(sim.base_url + path, params={"symbol": sym}, headers=KEY) as r:
            statuses.append(r.status)
            last_headers, last_body = r.headers, await r.json()
    assert statuses == [200] * 10 + [429]
    assert last_body["code"] == -1003 and last_headers["Retry-After"] == "50"
    assert last_headers["X-MBX-USED-WEIGHT-1M"] == "55"
    sim.clock.advance(1_000)
    st, h, body = await get(http, sim, "/api/v1/ping")  # still told to wait: banned
    assert st == 418 and body["code"] == -1003 and h["Retry-After"] == "2"
    until = sim.now_ms() + 2_000
    assert f"IP banned until {until}." in body["msg"]
    for _ in range(3):  # nothing is served during the ban
        st, h, body = await get(http, sim, "/api/v1/time")
        assert st == 418 and "serverTime" not in body
    assert sim.stats.status_429 == 1 and sim.stats.status_418 == 4 and sim.stats.while_limited == 4
    sim.clock.advance(2_000)
    st, _, _ = await get(http, sim, "/api/v1/ping")  # ban over, but this window is still spent
    assert st == 429
    st, h, body = await get(http, sim, "/api/v1/ping")
    assert st == 418 and h["Retry-After"] == "4"  # the second ban doubles
    sim.clock.advance(60_000)
    st, h, _ = await get(http, sim, "/api/v1/ping")
    assert st == 200 and h["X-MBX-USED-WEIGHT-1M"] == "1"


async def test_raw_request_limit(make_sim, http):
    sim = await make_sim(small_config(weight_limit=10_000, raw_limit=5, ban_after=3), now=T0 + 60_000)
    statuses = [(await get(http, sim, "/api/v1/ping"))[0] for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    st, h, _ = await get(http, sim, "/api/v1/ping")
    assert st == 429 and h["Retry-After"] == "240"  # 5-minute window aligned to the clock


async def test_unlimited_mode(make_sim, http):
    sim = await make_sim(small_config(weight_limit=0))
    for _ in range(40):
        st, _, _ = await get(http, sim, "/api/v1/option/ticker/24hr")
        assert st == 200
    st, _, info = await get(http, sim, "/api/v1/exchangeInfo")
    assert info["rateLimits"][0]["limit"] >= 2**31 - 1
