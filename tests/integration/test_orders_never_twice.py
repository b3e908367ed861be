"""An order whose answer is lost is never placed twice: the client asks the account instead.

A proxy in front of the simulator loses the answer of chosen TRADE requests in the four ways an
outcome can be unknown: a 5xx before the exchange saw the request, a 5xx after it acted, a timeout
before, a timeout after. Everything else passes through. The simulator's own account and request
counts are the judge.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import aiohttp
import pytest
from aiohttp import web

from collector.errors import OrderNotPlaced
from collector.exchange import JexClient, WeightGovernor
from collector.simulator import SimConfig, Simulator
from tests.helpers.account_truth import KEY, SECRET
from tests.helpers.loopback import serve

READ_TIMEOUT = 1.0
# quantity -> (forward to the exchange?, then answer with): each order's terms tell the proxy what to do
FATES = {
    3: (False, 502),  # refused at the gateway: never reached the exchange
    4: (True, 503),  # the exchange acted; its answer became a 503
    5: (False, "stall"),  # no answer at all, nothing reached the exchange
    6: (True, "stall"),  # the exchange acted; the answer never came
}


@pytest.fixture
async def exchange():
    cfg = SimConfig(
        seed=3, history_days=0.02, symbols=4, trades_per_minute=30, listing_interval_s=600, accounts={KEY: SECRET}
    )
    async with Simulator(cfg, port=0) as sim, aiohttp.ClientSession() as upstream:
        stalls: list[asyncio.Event] = []

        async def proxy(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            fate = _fate(request)
            if fate is not None and not fate[0]:
                return await _lose(fate[1], stalls)
            async with upstream.request(
                request.method, sim.base_url + request.path_qs, data=body or None, headers=_headers(request)
            ) as r:
                answer = web.Response(status=r.status, body=await r.read(), headers=_headers(r))
            return answer if fate is None else await _lose(fate[1], stalls)

        async with serve(proxy) as url:
            yield sim, url
        for stall in stalls:
            stall.set()


def _fate(request: web.Request):
    if request.method != "POST" or not request.path.endswith(("/option/order", "/option/release")):
        return None
    qty = request.query.get("quantity") or request.query.get("amount")
    return FATES.get(int(Decimal(qty))) if qty else None


async def _lose(how, stalls: list[asyncio.Event]) -> web.Response:
    if how == "stall":
        stall = asyncio.Event()
        stalls.append(stall)
        await stall.wait()  # until the test ends: the client's timeout is what happens first
    return web.json_response({"code": -1006, "msg": "unexpected response"}, status=502 if how == "stall" else how)


def _headers(message) -> dict[str, str]:
    return {k: v for k, v in message.headers.items() if k.lower() in ("x-jex-apikey", "content-type")}


def client_for(session, url: str) -> JexClient:
    return JexClient(
        session,
        url,
        api_key=KEY,
        api_secret=SECRET,
        governor=WeightGovernor(),
        read_timeout=READ_TIMEOUT,
        recv_window=500,  # an answer lost is settled recvWindow after it was sent
        backoff_base=0.01,
    )


async def test_an_order_answered_by_a_5xx_or_a_timeout_is_never_placed_twice(exchange):
    sim, url = exchange
    async with aiohttp.ClientSession() as session:
        client = client_for(session, url)
        await client.configure_limits()
        await client.sync_time()
        symbol = sim.market.listed_symbols(sim.now_ms())[-1]
        price = Decimal("0.0001")  # rests: nothing fills it while the test looks
        outcomes = await asyncio.gather(
            *(client.place_order(symbol, "BUY", Decimal(qty), price) for qty in FATES), return_exceptions=True
        )
        sent = sim.stats.by_endpoint["order"]
        account = sim.accounts.get(KEY, sim.now_ms())
        placed = {int(o.qty): o for o in account.orders.values()}
        for qty, outcome in zip(FATES, outcomes, strict=True):
            reached, _ = FATES[qty]
            if reached:  # it was placed once, and the client says which order it is
                assert outcome.order_id == placed[qty].order_id, (qty, outcome)
                assert outcome.orig_qty == qty and outcome.status == "NEW"
            else:  # it was not placed, and the client says so: safe to send again
                assert isinstance(outcome, OrderNotPlaced), (qty, outcome)
                assert qty not in placed
        # once each: a retried POST would have left a second order of the same terms
        assert sorted(int(o.qty) for o in account.orders.values()) == [
            q for q, (reached, _) in FATES.items() if reached
        ]
        # every POST reached the exchange at most once: the two lost on the way never, the others once
        assert sent == 2, sent
        # a short whose answer was lost: done once, and the client returns the position it left
        short = next(
            o["symbol"] for o in sim.market.option_info(sim.now_ms()) if o["status"] == "TRADING" and o["canRelease"]
        )
        info = await client.release(short, 4)
        assert [r.amount for r in account.records if r.symbol == short] == [4]
        assert info.release_amount == 4 and info.asset_option == short
        with pytest.raises(OrderNotPlaced):
            await client.release(short, 3)
        assert [r.amount for r in account.records if r.symbol == short] == [4]
