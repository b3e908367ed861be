"""The simulator can be the live exchange: the live-2019 profile and the separate switches.

Every habit changes how an answer looks, never what it says: each test compares against the same
request answered by the default exchange, value for value (exactly, as Decimal).
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from sim_helpers import KEY, get, small_config, trading_symbol

from collector.simulator import FaultConfig
from collector.simulator.cli import simulator_faults


def exact(body: bytes):
    return json.loads(body, parse_float=Decimal)


async def raw(http, sim, path, params=None):
    async with http.get(sim.base_url + path, params=params, headers=KEY) as r:
        return r.status, r.headers, await r.read()


async def test_live_2019_headers_depth_tickers_and_numbers(make_sim, http):
    sim = await make_sim(small_config(weight_limit=1200))
    sym = trading_symbol(sim)
    reqs = [
        ("/api/v1/option/depth", {"symbol": sym, "limit": "20"}),
        ("/api/v1/option/historicalTrades", {"symbol": sym, "limit": "50"}),
        ("/api/v1/option/klines", {"symbol": sym, "interval": "1m", "limit": "30"}),
        ("/api/v1/option/ticker/24hr", {"symbol": sym}),
    ]
    plain = {p: exact((await raw(http, sim, p, q))[2]) for p, q in reqs}
    sim.faults = FaultConfig.profile("live-2019")
    answers = {p: await raw(http, sim, p, q) for p, q in reqs}

    # The recorded header pair, spelling included: the weight in one, the limit in the other.
    _, headers, _ = answers["/api/v1/option/ticker/24hr"]  # the last request
    assert {k for k in headers if k.upper().startswith("X-MBX")} == {"X-Mbx-Used-Weight", "X-Mbx-Used-Weight-1m"}
    assert headers["X-Mbx-Used-Weight-1m"] == "1200"
    assert int(headers["X-Mbx-Used-Weight"]) == sim.limiter.used("127.0.0.1", sim.now_ms())

    depth = exact(answers["/api/v1/option/depth"][2])
    assert "lastUpdateId" not in depth
    assert all(len(level) == 2 for level in depth["bids"] + depth["asks"])
    assert 1 <= len(depth["bids"]) < 20  # fewer levels than asked
    assert [[Decimal(str(p)), Decimal(str(q))] for p, q in depth["bids"]] == [
        [Decimal(p), Decimal(q)] for p, q, _ in plain["/api/v1/option/depth"]["bids"][: len(depth["bids"])]
    ]

    trades = exact(answers["/api/v1/option/historicalTrades"][2])
    assert all(type(t["id"]) is int and type(t["qty"]) is not str for t in trades)  # JSON numbers
    assert [(t["id"], Decimal(t["price"]), Decimal(t["qty"])) for t in trades] == [
        (int(t["id"]), Decimal(t["price"]), Decimal(t["qty"])) for t in plain["/api/v1/option/historicalTrades"]
    ]

    klines = exact(answers["/api/v1/option/klines"][2])
    assert klines == [[Decimal(v) if isinstance(v, str) else v for v in row] for row in plain["/api/v1/option/klines"]]

    ticker = exact(answers["/api/v1/option/ticker/24hr"][2])
    assert ticker["closeTime"] < ticker["openTime"]
    assert Decimal(ticker["lastPrice"]) == Decimal(plain["/api/v1/option/ticker/24hr"]["lastPrice"])


async def test_numbers_as_json_keep_every_digit(make_sim, http):
    """The rewrite is on the text: no float in between, so no digit is lost (quote volumes are long)."""
    sim = await make_sim()
    sym = trading_symbol(sim)
    params = {"symbol": sym, "interval": "1d", "limit": "3"}
    plain = exact((await raw(http, sim, "/api/v1/option/klines", params))[2])
    sim.faults = FaultConfig(numbers_as_json_rate=1)
    _, _, body = await raw(http, sim, "/api/v1/option/klines", params)
    assert b'"' not in body  # every decimal string became a number
    assert exact(body) == [[Decimal(v) if isinstance(v, str) else v for v in row] for row in plain]


async def test_scalars_as_strings(make_sim, http):
    sim = await make_sim()
    sym = trading_symbol(sim)
    plain = exact((await raw(http, sim, "/api/v1/option/historicalTrades", {"symbol": sym}))[2])
    info = exact((await raw(http, sim, "/api/v1/optionInfo"))[2])
    sim.faults = FaultConfig(scalars_as_strings_rate=1)
    odd = exact((await raw(http, sim, "/api/v1/option/historicalTrades", {"symbol": sym}))[2])
    assert all(type(t["time"]) is str for t in odd)
    assert [(t["id"], int(t["time"]), t["buyerMaker"] in ("true", 0) and (t["buyerMaker"] == "true")) for t in odd] == [
        (t["id"], t["time"], t["buyerMaker"]) for t in plain
    ]
    odd_info = exact((await raw(http, sim, "/api/v1/optionInfo"))[2])
    assert [o["exertionTime"] for o in odd_info] == [str(o["exertionTime"]) for o in info]


@pytest.mark.parametrize("cap", [100, 1])
async def test_page_cap_serves_fewer_than_asked(make_sim, http, cap):
    sim = await make_sim()
    sym = trading_symbol(sim)
    sim.faults = FaultConfig(page_cap=cap)
    trades = (await get(http, sim, "/api/v1/option/historicalTrades", {"symbol": sym, "limit": 500, "fromId": 0}, KEY))[
        2
    ]
    klines = (await get(http, sim, "/api/v1/option/klines", {"symbol": sym, "interval": "1m", "limit": 1000}))[2]
    assert len(trades) == cap and len(klines) == cap


@pytest.mark.parametrize(
    "mode, present",
    [
        ("none", set()),
        ("legacy", {"X-MBX-USED-WEIGHT"}),
        ("1m", {"X-MBX-USED-WEIGHT-1M"}),
        ("stuck", {"X-MBX-USED-WEIGHT", "X-MBX-USED-WEIGHT-1M"}),
    ],
)
async def test_weight_header_modes(make_sim, http, mode, present):
    sim = await make_sim(small_config(weight_limit=1200))
    sim.faults = FaultConfig(weight_headers=mode)
    _, headers, _ = await raw(http, sim, "/api/v1/ping")
    got = {k.upper() for k in headers if k.upper().startswith("X-MBX-USED-WEIGHT")}
    assert got == present
    if mode == "stuck":
        assert headers["X-MBX-USED-WEIGHT-1M"] == headers["X-MBX-USED-WEIGHT"] == "1200"


async def test_refuse_expired_answers_7013_for_expired_symbols_only(make_sim, http):
    sim = await make_sim()
    now = sim.now_ms()
    expired = [o["symbol"] for o in sim.market.option_info(now) if o["status"] == "EXPIRED"]
    assert expired
    sim.faults = FaultConfig(refuse_expired=True)
    for path, extra in (
        ("/api/v1/option/historicalTrades", {}),
        ("/api/v1/option/klines", {"interval": "1m"}),
        ("/api/v1/option/depth", {}),
        ("/api/v1/option/ticker/24hr", {}),
    ):
        status, _, body = await get(http, sim, path, {"symbol": expired[0], **extra}, KEY)
        assert (status, body["code"]) == (400, -7013)
    status, _, _ = await get(http, sim, "/api/v1/option/klines", {"symbol": trading_symbol(sim), "interval": "1m"})
    assert status == 200


def test_profile_and_switches_from_flags():
    f = simulator_faults("live-2019", "5xx=0.1", "none", 100, True)
    assert (f.weight_headers, f.page_cap, f.refuse_expired, f.server_error_rate) == ("none", 100, True, 0.1)
    assert f.depth_legacy_rate == 1.0 and f.fewer_levels_rate == 1.0
    assert simulator_faults() == FaultConfig()
    with pytest.raises(ValueError):
        simulator_faults("live-2020")
    with pytest.raises(ValueError):
        simulator_faults(weight_headers="sometimes")
