"""An order whose answer is lost is never placed twice: the client asks the account instead.

A proxy in front of the simulator loses the answer of chosen TRADE requests in every way an outcome
can be unknown: a 5xx before the exchange saw the request, a 5xx after it acted, a timeout before, a
timeout after, an answer that cannot be read after it acted, and a request the gateway holds and
hands on late (still within its recvWindow, so the exchange accepts it after the client gave up).
Everything else passes through. The simulator's own account and request counts are the judge.
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
HELD_S = 2.5  # how long the gateway holds a "late" request before handing it on
# (path, quantity or amount) -> (forward to the exchange?, then answer with): each request's terms
# tell the proxy what to do with it
ORDER_FATES = {
    3: (False, 502),  # refused at the gateway: never reached the exchange
    4: (True, 503),  # the exchange acted; its answer became a 503
    5: (False, "stall"),  # no answer at all, nothing reached the exchange
    6: (True, "stall"),  # the exchange acted; the answer never came
    7: (True, "unreadable"),  # the exchange acted; the answer came, with a key twice
}
FATES = {
    **{("order", q): f for q, f in ORDER_FATES.items()},
    ("order", 8): ("late", "stall"),  # held, then handed on after the client timed out
    ("release", 4): (True, 503),
    ("release", 3): (False, 502),
    ("back", 5): (False, 502),  # a call of 5 lost on the way: a short of 5 is no evidence of it
}


@pytest.fixture
async def exchange():
    cfg = SimConfig(
        seed=3,
        history_days=0.02,
        symbols=4,
        trades_per_minute=30,
        listing_interval_s=600,
        accounts={KEY: SECRET},
        weight_limit=40,  # in windows of 10 s: a test can make the governor hold a request a while
        weight_window_s=10,
    )
    async with Simulator(cfg, port=0) as sim, aiohttp.ClientSession() as upstream:
        stalls: list[asyncio.Event] = []

        async def forward(request: web.Request, body: bytes) -> web.Response:
            async with upstream.request(
                request.method, sim.base_url + request.path_qs, data=body or None, headers=_headers(request)
            ) as r:
                return web.Response(status=r.status, body=await r.read(), headers=_headers(r))

        async def proxy(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            fate = _fate(request)
            if fate is None:
                return await forward(request, body)
            reach, how = fate
            if reach == "late":
                await asyncio.sleep(HELD_S)  # the gateway's own delay (the test's subject, not a sync)
                await forward(request, body)
                return await _lose(how, stalls)
            if reach:
                await forward(request, body)
            return await _lose(how, stalls)

        async with serve(proxy) as url:
            yield sim, url
        for stall in stalls:
            stall.set()


def _fate(request: web.Request):
    if request.method != "POST":
        return None
    kind = request.path.rsplit("/", 1)[-1]
    qty = request.query.get("quantity") or request.query.get("amount")
    return FATES.get((kind, int(Decimal(qty)))) if qty else None


async def _lose(how, stalls: list[asyncio.Event]) -> web.Response:
    if how == "unreadable":
        return web.Response(body=b'{"orderId": 1, "orderId": 2}', content_type="application/json")
    if how == "stall":
        stall = asyncio.Event()
        stalls.append(stall)
        await stall.wait()  # until the test ends: the client's timeout is what happens first
    return web.json_response({"code": -1006, "msg": "unexpected response"}, status=502 if how == "stall" else how)


def _headers(message) -> dict[str, str]:
    return {k: v for k, v in message.headers.items() if k.lower() in ("x-jex-apikey", "content-type")}


async def client_for(session, url: str, recv_window: int = 500) -> JexClient:
    client = JexClient(
        session,
        url,
        api_key=KEY,
        api_secret=SECRET,
        governor=WeightGovernor(),
        read_timeout=READ_TIMEOUT,
        recv_window=recv_window,  # an answer lost is settled recvWindow after it was signed
        backoff_base=0.01,
    )
    await client.configure_limits()
    await client.sync_time()
    return client


def orders_of(sim) -> list[int]:
    """The quantities of the account's orders, one entry per order."""
    return sorted(int(o.qty) for o in sim.accounts.get(KEY, sim.now_ms()).orders.values())


async def test_an_order_answered_by_a_5xx_a_timeout_or_garbage_is_never_placed_twice(exchange):
    sim, url = exchange
    async with aiohttp.ClientSession() as session:
        client = await client_for(session, url)
        symbol = sim.market.listed_symbols(sim.now_ms())[-1]
        price = Decimal("0.0001")  # rests: nothing fills it while the test looks
        outcomes = await asyncio.gather(
            *(client.place_order(symbol, "BUY", Decimal(qty), price) for qty in ORDER_FATES), return_exceptions=True
        )
        placed = {int(o.qty): o for o in sim.accounts.get(KEY, sim.now_ms()).orders.values()}
        for qty, outcome in zip(ORDER_FATES, outcomes, strict=True):
            reached, _ = ORDER_FATES[qty]
            if reached:  # it was placed once, and the client says which order it is
                assert outcome.order_id == placed[qty].order_id, (qty, outcome)
                assert outcome.orig_qty == qty and outcome.status == "NEW"
            else:  # it was not placed, and the client says so: safe to send again
                assert isinstance(outcome, OrderNotPlaced), (qty, outcome)
        # once each: a retried POST would have left a second order of the same terms
        assert orders_of(sim) == [q for q, (reached, _) in ORDER_FATES.items() if reached]
        # every POST reached the exchange at most once: those lost on the way never, the others once
        assert sim.stats.by_endpoint["order"] == 3
        # a short whose answer was lost: done once, and the client returns the position it left
        short = next(
            o["symbol"] for o in sim.market.option_info(sim.now_ms()) if o["status"] == "TRADING" and o["canRelease"]
        )
        records = sim.accounts.get(KEY, sim.now_ms()).records
        info = await client.release(short, 4)
        assert [r.amount for r in records if r.symbol == short] == [4]
        assert info.release_amount == 4 and info.asset_option == short
        with pytest.raises(OrderNotPlaced):
            await client.release(short, 3)
        # a call lost on the way, just after a short of the same amount: not taken for done
        await client.release(short, 5)
        with pytest.raises(OrderNotPlaced):
            await client.back(short, 5)
        assert [(r.status, r.amount) for r in records if r.symbol == short] == [(1, 4), (1, 5)]


async def test_the_account_is_asked_only_once_a_late_signature_can_no_longer_be_accepted(exchange):
    """The governor holds the order for seconds (the window's weight is spent), so it is signed well
    after it was asked for; the gateway then holds it HELD_S, past the client's timeout, and hands it
    on within its recvWindow. The account must be asked after that signature's window, not after one
    counted from the call: by then the order exists, and the client returns it."""
    sim, url = exchange
    async with aiohttp.ClientSession() as session:
        client = await client_for(session, url, recv_window=3_000)
        symbol = sim.market.listed_symbols(sim.now_ms())[-1]
        # at the start of a fresh 10 s window, its whole weight asked for ahead of the order: the
        # order waits behind it for the next window
        await asyncio.sleep((10_000 - sim.now_ms() % 10_000) / 1000)
        pings = [asyncio.create_task(client.ping()) for _ in range(40)]
        for _ in range(10):
            await asyncio.sleep(0)  # the pings reach the governor's queue first
        asked_at = client.governor.server_time()
        order = await client.place_order(symbol, "BUY", Decimal(8), Decimal("0.0001"))
        await asyncio.gather(*pings)
        placed = sim.accounts.get(KEY, sim.now_ms()).orders[order.order_id]
        assert placed.time / 1000 - asked_at > 4  # signed seconds after it was asked for
        assert orders_of(sim) == [8]
