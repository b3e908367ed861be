"""Fault injection changes representation or breaks transport, never values; the CLI rejects bad flags."""

from __future__ import annotations

import json
from decimal import Decimal as D

import aiohttp
import pytest
import typer
from sim_helpers import KEY, get, trading_symbol
from typer.testing import CliRunner

from collector.simulator import FaultConfig
from collector.simulator.cli import parse_accounts, simulate_command


async def test_server_errors_json_and_html(make_sim, http):
    sim = await make_sim()
    sim.faults = FaultConfig(server_error_rate=1.0, html_error_share=0.5, seed=5)
    kinds = set()
    for _ in range(30):
        async with http.get(sim.base_url + "/api/v1/ping") as r:
            assert r.status >= 500
            text = await r.text()
            kinds.add("html" if text.startswith("<html") else json.loads(text)["code"])
    assert "html" in kinds and kinds & {-1001, -1006, -1016}
    sim.faults = FaultConfig()
    assert (await get(http, sim, "/api/v1/ping"))[0] == 200


async def test_drop_and_truncate(make_sim, http):
    sim = await make_sim()
    sym = trading_symbol(sim)
    sim.faults = FaultConfig(drop_rate=1.0)
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.get(sim.base_url + "/api/v1/option/trades", params={"symbol": sym}) as r:
            await r.read()
    sim.faults = FaultConfig(truncate_rate=1.0)
    async with http.get(sim.base_url + "/api/v1/option/trades", params={"symbol": sym}) as r:
        with pytest.raises(json.JSONDecodeError):
            json.loads(await r.text())
    assert sim.stats.faults["drop"] == 1 and sim.stats.faults["truncate"] == 1


async def test_variations_keep_values(make_sim, http):
    sim = await make_sim()
    sym = trading_symbol(sim)
    plain = {}
    reqs = [
        ("/api/v1/option/depth", {"symbol": sym}),
        ("/api/v1/option/historicalTrades", {"symbol": sym}),
        ("/api/v1/option/klines", {"symbol": sym, "interval": "5m"}),
        ("/api/v1/option/ticker/24hr", {"symbol": sym}),
    ]
    for path, params in reqs:
        plain[path] = (await get(http, sim, path, params, KEY))[2]
    sim.faults = FaultConfig(
        depth_legacy_rate=1,
        ids_as_numbers_rate=1,
        numbers_as_json_rate=1,
        ticker_swapped_times_rate=1,
        clock_skew_ms=-5000,
    )
    odd = {path: (await get(http, sim, path, params, KEY))[2] for path, params in reqs}
    d0, d1 = plain["/api/v1/option/depth"], odd["/api/v1/option/depth"]
    assert "lastUpdateId" not in d1 and all(len(lvl) == 2 for lvl in d1["bids"] + d1["asks"])
    assert [[D(p), D(q)] for p, q, _ in d0["bids"]] == [[D(str(p)), D(str(q))] for p, q in d1["bids"]]
    t0, t1 = plain["/api/v1/option/historicalTrades"], odd["/api/v1/option/historicalTrades"]
    assert all(isinstance(x["id"], int) and isinstance(x["price"], float) for x in t1)
    assert [(int(a["id"]), D(a["price"]), D(a["qty"])) for a in t0] == [
        (b["id"], D(str(b["price"])), D(str(b["qty"]))) for b in t1
    ]
    k0, k1 = plain["/api/v1/option/klines"], odd["/api/v1/option/klines"]
    assert [[D(str(v)) for v in r] for r in k0] == [[D(str(v)) for v in r] for r in k1]
    x0, x1 = plain["/api/v1/option/ticker/24hr"], odd["/api/v1/option/ticker/24hr"]
    assert x1["closeTime"] < x1["openTime"] and D(str(x1["lastPrice"])) == D(x0["lastPrice"])
    assert (await get(http, sim, "/api/v1/time"))[2]["serverTime"] == sim.now_ms() - 5000
    assert sim.market.trades(sym, 0, sim.now_ms() + 1)[-1]["id"] == int(t0[0]["id"])


def test_account_pairs():
    assert parse_accounts([]) is None  # the demo account
    assert parse_accounts(["k1:s1", "k2:s2"]) == {"k1": "s1", "k2": "s2"}
    for bad in (["k1"], [":s"], ["k1:"], ["k 1:s"], ["ké:s"]):
        with pytest.raises(ValueError):
            parse_accounts(bad)


def test_fault_spec_parsing():
    f = FaultConfig.parse("5xx=0.05,slow=0.02,drop=0.01,truncate=0.01,variants,skew=-250")
    assert (f.server_error_rate, f.slow_rate, f.drop_rate, f.truncate_rate) == (0.05, 0.02, 0.01, 0.01)
    assert f.depth_legacy_rate == f.ids_as_numbers_rate == 0.5 and f.clock_skew_ms == -250
    assert FaultConfig.parse("") == FaultConfig()
    for bad in ("nope=1", "5xx=abc", "5xx=2"):
        with pytest.raises(ValueError):
            FaultConfig.parse(bad)


@pytest.mark.parametrize(
    "args",
    [
        ["--faults", "bogus"],
        ["--symbols", "0"],
        ["--port", "70000"],
        ["--history-days", "x"],
        ["--account", "nosecret"],
        ["--account", "key-1:secret"],
    ],
)
def test_cli_bad_flags_exit_2_without_traceback(args):
    app = typer.Typer()
    app.command()(simulate_command)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
