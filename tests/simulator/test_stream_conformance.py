"""The market web-socket streams (JEX-STREAMS-NOTES.md), against a running simulator over loopback.

The clock is frozen (conftest): nothing new happens until a test moves it, so every push is known in
advance and the tests wait on messages (with timeouts), never on sleeps.
"""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal as D

import aiohttp
import pytest
from aiohttp import WSMsgType
from sim_helpers import KEY, get, small_config, trading_symbol

from collector.simulator import FaultConfig
from collector.simulator.streams import depth_version

TRADE_KEYS = {"e", "E", "s", "t", "p", "q", "T", "m"}
KLINE_KEYS = {"t", "T", "s", "i", "o", "c", "h", "l", "v", "q"}


def stream_config(**kw):
    return small_config(**{"push_s": 0.05, "trade_push_ms": 20, **kw})


async def recv(ws, timeout: float = 5.0) -> aiohttp.WSMessage:
    return await asyncio.wait_for(ws.receive(), timeout)


async def recv_data(ws, timeout: float = 5.0):
    """The next data message, decoded (pings skipped)."""
    while True:
        msg = await recv(ws, timeout)
        if msg.type is WSMsgType.TEXT:
            return json.loads(msg.data)
        assert msg.type in (WSMsgType.PING, WSMsgType.PONG), msg


async def recv_stream(ws, name: str, pred=lambda d: True, timeout: float = 5.0):
    """The next payload of stream ``name`` (combined connection) that ``pred`` accepts."""
    while True:
        got = await recv_data(ws, timeout)
        if got["stream"] == name and pred(got["data"]):
            return got["data"]


async def recv_type(ws, kind: WSMsgType, timeout: float = 5.0) -> aiohttp.WSMessage:
    """The next message of that type, data messages, pings and pongs skipped."""
    while True:
        msg = await recv(ws, timeout)
        if msg.type is kind:
            return msg
        assert msg.type in (WSMsgType.TEXT, WSMsgType.PING, WSMsgType.PONG), msg


async def tick(ws) -> list:
    """Wait for the server's next ping (ping_s below the clock's moves; autoping off): its push loop
    pings, then polls its streams, without yielding in between; so once the ping is here, the
    streams have been polled at the clock's time. Returns the data that came before it."""
    data = []
    while True:
        msg = await recv(ws)
        if msg.type is WSMsgType.PING:
            return data
        assert msg.type is WSMsgType.TEXT, msg
        data.append(json.loads(msg.data))


async def refused(http, sim, path: str) -> tuple[int, dict]:
    async with http.get(sim.base_url + path) as r:
        return r.status, await r.json(content_type=None)


def busy_symbol(sim, minutes: int = 10) -> str:
    """A trading symbol with trades in each of the next few minutes."""
    now = sim.now_ms()
    for o in sim.market.listed(now):
        if o.expiry > now + minutes * 60_000 and all(
            sim.market.trades(o.name, now + i * 60_000, now + (i + 1) * 60_000) for i in range(minutes)
        ):
            return o.name
    raise AssertionError("no busy symbol")


async def test_names_limits_and_wrappers(make_sim, http):
    sim = await make_sim(stream_config())
    sym = trading_symbol(sim).lower()
    names = [f"{trading_symbol(sim, i).lower()}@optionTrade" for i in range(11)]
    st, body = await refused(http, sim, "/stream?streams=" + "/".join(names))
    assert (st, body["code"]) == (400, -1101) and body["msg"]
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await http.ws_connect(sim.stream_url + "/stream?streams=" + "/".join(names))
    assert exc.value.status == 400
    for path, code in [
        (f"/ws/{sym.upper()}@optionTrade", -1100),
        (f"/ws/{sym}@optionNothing", -1121),
        ("/ws/btc0101callz@optionTrade", -1121),
        (f"/ws/{sym}@optionKline_2M2", -1120),
        (f"/ws/{sym}@optionDepth15", -1121),
        ("/ws/!optionBookTicker@arr", -1121),
        ("/stream", -1102),
        ("/ws/NoSuchListenKey0000", -1125),
    ]:
        st, body = await refused(http, sim, path)
        assert (st, body["code"]) == (400, code), path
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await http.ws_connect(sim.stream_url + path)
    assert (await refused(http, sim, f"/ws/{sym}@optionTrade"))[0] == 426  # valid, but no upgrade
    assert sim.stats.ws_opened == 0 and sim.stats.ws_refused >= 17
    # ten are allowed; raw payloads are bare, combined ones wrapped with the name as subscribed
    async with http.ws_connect(sim.stream_url + "/stream?streams=" + "/".join(names[:10])):
        pass
    async with http.ws_connect(f"{sim.stream_url}/ws/{sym}@optionKline_1H") as ws:
        raw = await recv_data(ws)
    assert raw["e"] == "optionKline" and raw["k"]["i"] == "1h" and raw["s"] == sym.upper()
    async with http.ws_connect(f"{sim.stream_url}/stream?streams={sym}@optionKline_1H/{sym}@optionKline_1H") as ws:
        wrapped = await recv_data(ws)
    assert set(wrapped) == {"stream", "data"} and wrapped["stream"] == f"{sym}@optionKline_1H"
    assert wrapped["data"] == raw
    assert sim.stats.ws_opened == 3 and sim.stats.ws_messages["kline"] >= 2
    st, _, stats = await get(http, sim, "/_sim/stats")
    assert stats["wsOpened"] == 3 and stats["wsMessages"]["kline"] >= 2


async def test_trades_pushed_once_in_id_order_with_rest_ids(make_sim, http):
    sim = await make_sim(stream_config())
    sym = busy_symbol(sim)
    start = sim.now_ms()
    async with http.ws_connect(f"{sim.stream_url}/ws/{sym.lower()}@optionTrade") as ws:
        sim.clock.advance(300_000)
        first = await recv_data(ws)
        assert [(x["t"], x["T"]) for x in first] == [
            (x["id"], x["time"]) for x in sim.market.trades(sym, start, sim.now_ms())
        ]
        assert first and all(set(x) == TRADE_KEYS for x in first)
        assert {(x["e"], x["E"], x["s"]) for x in first} == {("optionTrade", sim.now_ms(), sym)}
        assert all(isinstance(x["t"], int) and isinstance(x["m"], bool) for x in first)
        # a trade at the push's very instant goes with the next push, not lost nor sent twice
        ahead = sim.market.trades(sym, sim.now_ms() + 1, sim.now_ms() + 600_000)
        upcoming = next(x for i, x in enumerate(ahead) if i >= 3 and x["time"] > ahead[i - 1]["time"])
        sim.clock.advance(upcoming["time"] - sim.now_ms())
        second = await recv_data(ws)
        assert second[-1]["T"] < upcoming["time"]
        sim.clock.advance(1)
        third = await recv_data(ws)
        assert third[0]["t"] == upcoming["id"]
        end = sim.now_ms()
        pushed = first + second + third
        truth = sim.market.trades(sym, start, end)
        assert [x["t"] for x in pushed] == [x["id"] for x in truth]
        assert [(x["p"], x["q"], x["T"], x["m"]) for x in pushed] == [
            (x["price"], x["qty"], x["time"], x["buyerMaker"]) for x in truth
        ]
        # the same ids REST's historicalTrades returns
        st, _, rest = await get(
            http, sim, "/api/v1/option/historicalTrades", {"symbol": sym, "fromId": pushed[0]["t"], "limit": 500}, KEY
        )
        assert st == 200
        assert [int(x["id"]) for x in rest if x["time"] < end] == [x["t"] for x in pushed]
        assert sim.stats.ws_messages["trade"] == 3  # the clock stands still: nothing more to push


async def test_trades_on_a_running_clock(make_sim, http):
    sim = await make_sim(stream_config(trades_per_minute=900, history_days=0.01))
    sym = busy_symbol(sim, 1)
    sim.clock.unfreeze()
    before = sim.now_ms()
    async with http.ws_connect(f"{sim.stream_url}/ws/{sym.lower()}@optionTrade") as ws:
        after = sim.now_ms()
        pushed, last_push = [], 0
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline or len(pushed) < 3:
            batch = await recv_data(ws)
            pushed += batch
            last_push = batch[0]["E"]
    ids = [x["t"] for x in pushed]
    assert ids == sorted(set(ids))
    assert all(x["T"] < x["E"] for x in pushed)
    truth = [x["id"] for x in sim.market.trades(sym, before, last_push)]
    assert ids == truth[len(truth) - len(ids) :]  # a tail of the window: from the subscription on
    assert set(x["id"] for x in sim.market.trades(sym, after, last_push)) <= set(ids)


async def test_kline_is_rests_open_kline_in_both_spellings(make_sim, http):
    sim = await make_sim(stream_config())
    sym = trading_symbol(sim, 5)  # trading for hours yet
    s = sym.lower()
    spellings = {"1M": "1m", "1m": "1m", "15M": "15m", "1H": "1h", "4h": "4h", "1D": "1d", "1W": "1w"}
    names = [f"{s}@optionKline_{iv}" for iv in spellings]
    async with http.ws_connect(sim.stream_url + "/stream?streams=" + "/".join(names)) as ws:
        for step in (0, 95_000, 3_600_000):
            sim.clock.advance(step)
            now = sim.now_ms()
            for name, (iv, rest_iv) in zip(names, spellings.items(), strict=True):
                k = (await recv_stream(ws, name, lambda d: d["E"] == now))["k"]  # noqa: B023
                assert set(k) == KLINE_KEYS, iv  # no trade count, taker volumes or closed flag
                st, _, rows = await get(
                    http, sim, "/api/v1/option/klines", {"symbol": sym, "interval": rest_iv, "limit": 1}
                )
                assert st == 200
                t, o, h, lo, c, v, close_t, q = rows[-1][:8]
                assert k == {
                    "t": t,
                    "T": close_t,
                    "s": sym,
                    "i": rest_iv,
                    "o": o,
                    "c": c,
                    "h": h,
                    "l": lo,
                    "v": v,
                    "q": q,
                }
                assert t <= now <= close_t


async def test_partial_depth_levels(make_sim, http):
    sim = await make_sim(stream_config())
    sym = trading_symbol(sim)
    names = [f"{sym.lower()}@optionDepth{n}" for n in (5, 10, 20)]
    async with http.ws_connect(sim.stream_url + "/stream?streams=" + "/".join(names)) as ws:
        for step in (0, 2_500):
            sim.clock.advance(step)
            for n, name in zip((5, 10, 20), names, strict=True):
                st, _, rest = await get(http, sim, "/api/v1/option/depth", {"symbol": sym, "limit": n})
                assert st == 200
                want = {"bids": [[p, q] for p, q, _ in rest["bids"]], "asks": [[p, q] for p, q, _ in rest["asks"]]}
                assert len(want["bids"]) == len(want["asks"]) == n
                # no update id, no event type; pushes computed before the move may still be in transit
                book = await recv_stream(ws, name, lambda d: d == want)  # noqa: B023
                assert set(book) == {"bids", "asks"}


def _apply(book: dict[str, str], levels: list) -> None:
    for p, q in levels:
        if D(str(q)) == 0:
            book.pop(p, None)
        else:
            book[p] = q


async def test_diff_depth_applies_on_a_rest_snapshot(make_sim, http):
    sim = await make_sim(stream_config())
    sym = trading_symbol(sim, 5)
    async with http.ws_connect(f"{sim.stream_url}/ws/{sym.lower()}@optionDepth") as ws:
        first = await recv_data(ws)
        assert set(first) == {"e", "E", "s", "v", "b", "a"} and first["e"] == "optionDepthUpdate"
        assert first["v"] == depth_version(sim.now_ms()) and first["s"] == sym
        st, _, snap = await get(http, sim, "/api/v1/option/depth", {"symbol": sym})
        assert snap["lastUpdateId"] == first["v"]
        bids = {p: q for p, q, _ in snap["bids"]}
        asks = {p: q for p, q, _ in snap["asks"]}
        last = snap["lastUpdateId"]
        for step in (1_000, 1_000, 3_700, 400, 600):
            sim.clock.advance(step)
            while last < depth_version(sim.now_ms()):
                d = await recv_data(ws)
                if d["v"] <= snap["lastUpdateId"]:
                    continue
                assert d["v"] == last + 1, "a gap"
                _apply(bids, d["b"])
                _apply(asks, d["a"])
                assert d["E"] <= sim.now_ms()
                last = d["v"]
            st, _, rest = await get(http, sim, "/api/v1/option/depth", {"symbol": sym})
            assert st == 200 and rest["lastUpdateId"] == last
            assert sorted(bids.items(), key=lambda x: -D(x[0])) == [(p, q) for p, q, _ in rest["bids"]]
            assert sorted(asks.items(), key=lambda x: D(x[0])) == [(p, q) for p, q, _ in rest["asks"]]
        # a clock jump of minutes: only the newest version comes, a gap the client resyncs on
        sim.clock.advance(600_000)
        d = await recv_data(ws)
        assert d["v"] == depth_version(sim.now_ms()) > last + 1


async def test_tickers(make_sim, http):
    sim = await make_sim(stream_config())
    sym = trading_symbol(sim)
    s = sym.lower()
    names = [f"{s}@optionMiniTicker", f"{s}@optionTicker", "!optionMiniTicker@arr", "!optionTicker@arr"]

    def mini(r):
        return {
            "s": r["symbol"],
            "c": r["lastPrice"],
            "h": r["highPrice"],
            "l": r["lowPrice"],
            "o": r["openPrice"],
            "v": r["volume"],
            "q": r["quoteVolume"],
        }

    def full(r):
        return {
            "s": r["symbol"],
            "p": r["priceChange"],
            "P": r["priceChangePercent"],
            "c": r["lastPrice"],
            "h": r["highPrice"],
            "l": r["lowPrice"],
            "v": r["volume"],
            "q": r["quoteVolume"],
            "O": r["openTime"],
            "C": r["closeTime"],
        }

    def strip(d):
        return {k: v for k, v in d.items() if k not in ("e", "E")}

    async with http.ws_connect(sim.stream_url + "/stream?streams=" + "/".join(names)) as ws:
        seen: dict[str, dict] = {}
        for step in (0, 10_000):
            sim.clock.advance(step)
            now = sim.now_ms()
            st, _, rest = await get(http, sim, "/api/v1/option/ticker/24hr")
            assert st == 200
            trading = {r["symbol"]: r for r in rest if r["exertionTime"] > now}
            m = await recv_stream(ws, names[0], lambda d: d["E"] == now)  # noqa: B023
            t = await recv_stream(ws, names[1], lambda d: d["E"] == now)  # noqa: B023
            assert (m["e"], t["e"]) == ("24hrOptionMiniTicker", "24hrOptionTicker")
            assert strip(m) == mini(trading[sym]) and strip(t) == full(trading[sym])
            for name, shape in ((names[2], mini), (names[3], full)):
                arr = await recv_stream(ws, name, lambda d: d[0]["E"] == now)  # noqa: B023
                got = {x["s"]: strip(x) for x in arr}
                assert all(got[k] == shape(trading[k]) for k in got)
                if not step:
                    assert set(got) == set(trading)  # all of them first
                else:  # then those that changed, and only those
                    changed = {k for k in trading if strip_times(shape(trading[k])) != strip_times(seen[name][k])}
                    assert set(got) == changed and 0 < len(changed) < len(trading)
                seen[name] = {k: shape(r) for k, r in trading.items()}


def strip_times(d: dict) -> dict:
    return {k: v for k, v in d.items() if k not in ("O", "C")}


async def test_numbers_as_json(make_sim, http):
    sim = await make_sim(stream_config())
    sym = busy_symbol(sim)
    sim.faults = FaultConfig(numbers_as_json_rate=1.0)
    start = sim.now_ms()
    names = [f"{sym.lower()}@optionTrade", f"{sym.lower()}@optionDepth5"]
    async with http.ws_connect(sim.stream_url + "/stream?streams=" + "/".join(names)) as ws:
        book = await recv_stream(ws, names[1])
        assert all(isinstance(x, float | int) for lvl in book["bids"] + book["asks"] for x in lvl)
        sim.clock.advance(300_000)
        trades = await recv_stream(ws, names[0])
    truth = sim.market.trades(sym, start, start + 300_000)
    assert all(isinstance(x["p"], float) and isinstance(x["q"], int) for x in trades)
    assert [(x["t"], D(str(x["p"])), D(str(x["q"]))) for x in trades] == [
        (x["id"], D(x["price"]), D(x["qty"])) for x in truth
    ]


async def test_pings_pong_timeout_and_client_pings(make_sim, http):
    sim = await make_sim(stream_config(ping_s=1, pong_timeout_s=3))
    name = f"{trading_symbol(sim).lower()}@optionDepth5"
    async with (
        http.ws_connect(f"{sim.stream_url}/ws/{name}", autoping=False) as polite,
        http.ws_connect(f"{sim.stream_url}/ws/{name}", autoping=False) as silent,
    ):
        await polite.pong(b"unsolicited")  # allowed
        sim.clock.advance(1_000)
        ping = await recv_type(polite, WSMsgType.PING)
        await polite.pong(ping.data)
        await recv_type(silent, WSMsgType.PING)
        await polite.ping(b"are you there")
        assert (await recv_type(polite, WSMsgType.PONG)).data == b"are you there"
        sim.clock.advance(3_000)
        closing = await recv_type(silent, WSMsgType.CLOSE)
        assert silent.close_code == 1000 and closing.extra == "no pong"
        await recv_type(polite, WSMsgType.PING)  # still open, pinged again
        assert not polite.closed
    assert sim.stats.ws_closed["pong_timeout"] == 1


async def test_lifetime_from_each_connections_opening(make_sim, http):
    sim = await make_sim(stream_config(lifetime_s=5))
    url = f"{sim.stream_url}/ws/{trading_symbol(sim).lower()}@optionKline_1m"
    async with http.ws_connect(url) as early:
        sim.clock.advance(3_000)
        async with http.ws_connect(url) as late:
            sim.clock.advance(2_000)
            closing = await recv_type(early, WSMsgType.CLOSE)
            assert early.close_code == 1000 and closing.extra == "connection lifetime reached"
            sim.clock.advance(2_999)
            now = sim.now_ms()
            assert (await recv_data(late))["E"] <= now  # still served
            while (await recv_data(late))["E"] < now:
                pass
            sim.clock.advance(1)
            await recv_type(late, WSMsgType.CLOSE)
    assert sim.stats.ws_closed["lifetime"] == 2


async def test_stop_closes_open_sockets_promptly(make_sim, http):
    sim = await make_sim(stream_config())
    ws = await http.ws_connect(f"{sim.stream_url}/ws/{trading_symbol(sim).lower()}@optionTrade")
    began = time.monotonic()
    stopping = asyncio.ensure_future(sim.stop())
    msg = await recv_type(ws, WSMsgType.CLOSE)
    await stopping
    assert time.monotonic() - began < 2.0
    assert msg.data == 1001 and ws.closed


# ---- faults -------------------------------------------------------------------------------------
async def test_duplicates(make_sim, http):
    sim = await make_sim(stream_config(faults=FaultConfig(ws_dup_rate=1.0)))
    sym = busy_symbol(sim)
    async with http.ws_connect(f"{sim.stream_url}/ws/{sym.lower()}@optionTrade") as ws:
        sim.clock.advance(300_000)
        a = await recv(ws)
        b = await recv(ws)
    assert a.type is WSMsgType.TEXT and a.data == b.data
    assert sim.stats.ws_dups == 1 and sim.stats.ws_messages["trade"] == 2


async def test_reorder_swaps_with_the_next_message(make_sim, http):
    sim = await make_sim(stream_config(ping_s=1))
    sym = busy_symbol(sim)
    sim.faults = FaultConfig(ws_reorder_rate=1.0)
    start = sim.now_ms()
    async with http.ws_connect(f"{sim.stream_url}/ws/{sym.lower()}@optionTrade", autoping=False) as ws:
        sim.clock.advance(120_000)
        assert await tick(ws) == []  # pushed, and held back
        sim.clock.advance(120_000)
        await tick(ws)
        later = await recv_data(ws)
        earlier = await recv_data(ws)
    assert later[0]["t"] > earlier[-1]["t"] and earlier[0]["E"] < later[0]["E"]
    truth = [x["id"] for x in sim.market.trades(sym, start, start + 240_000)]
    assert [x["t"] for x in earlier + later] == truth
    assert sim.stats.ws_reorders == 1


async def test_drop(make_sim, http):
    sim = await make_sim(stream_config(faults=FaultConfig(ws_drop_s=5.0, seed=3)))
    async with http.ws_connect(f"{sim.stream_url}/ws/{trading_symbol(sim).lower()}@optionTrade") as ws:
        conn = next(iter(sim.streams.conns))
        assert conn.next_drop is not None and conn.next_drop > sim.now_ms()
        sim.clock.advance(conn.next_drop - sim.now_ms())
        while (msg := await recv(ws)).type is WSMsgType.TEXT:
            pass
        assert msg.type in (WSMsgType.CLOSED, WSMsgType.ERROR), msg  # no close frame: cut
        assert ws.close_code != 1000
    assert sim.stats.ws_drops == 1


async def test_stall_sends_nothing_then_resumes_from_then(make_sim, http):
    sim = await make_sim(stream_config(ping_s=1, faults=FaultConfig(ws_stall_s=300.0, ws_stall_len_s=120.0, seed=3)))
    sym = busy_symbol(sim, 30)
    start = sim.now_ms()
    async with http.ws_connect(f"{sim.stream_url}/ws/{sym.lower()}@optionTrade", autoping=False) as ws:
        conn = next(iter(sim.streams.conns))
        stall_start = conn.next_stall
        assert stall_start is not None and start + 60_000 < stall_start < start + 1_500_000
        sim.clock.advance(stall_start + 1_000 - start)  # inside the stall
        assert await tick(ws) == []  # no data, not even what happened before the stall
        await ws.ping(b"stalled?")  # pings are answered
        assert (await recv(ws)).data == b"stalled?"
        stall_end = stall_start + 120_000
        assert sim.stats.ws_stalls == 1 and conn.stalls == [(stall_start, stall_end)]
        assert conn.next_stall is not None and conn.next_stall > stall_end + 60_000
        sim.clock.advance(stall_end + 60_000 - sim.now_ms())  # past its end
        await tick(ws)
        pushed = await recv_data(ws)
    truth = sim.market.trades(sym, start, sim.now_ms())
    lost = {x["id"] for x in truth if stall_start <= x["time"] < stall_end}
    assert lost and [x["t"] for x in pushed] == [x["id"] for x in truth if x["id"] not in lost]


def test_ws_fault_keys_and_config_checks():
    f = FaultConfig.parse("wsdrop=30,wsstall=120,wsstalllen=5,wsdup=0.1,wsreorder=0.2,numbers=0.5")
    assert (f.ws_drop_s, f.ws_stall_s, f.ws_stall_len_s, f.ws_dup_rate, f.ws_reorder_rate) == (30, 120, 5, 0.1, 0.2)
    assert FaultConfig().ws_drop_s == FaultConfig().ws_stall_s == FaultConfig().ws_dup_rate == 0  # off
    for bad in ("wsdup=2", "wsdrop=-1", "wsstalllen=x"):
        with pytest.raises(ValueError):
            FaultConfig.parse(bad)
    for bad in ({"max_streams": 0}, {"push_s": 0}, {"listen_key_ttl_s": -1}, {"trade_push_ms": 0}):
        with pytest.raises(ValueError):
            small_config(**bad)
