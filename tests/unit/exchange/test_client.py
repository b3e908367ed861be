"""JexClient against small aiohttp.web servers on loopback: requests, retries, 429/418, signing."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal

import aiohttp
import pytest
from aiohttp import web

from collector.errors import (
    Banned,
    ConfigError,
    ExchangeRejected,
    ExchangeUnavailable,
    ParseError,
    RateLimited,
)
from collector.exchange import JexClient, ManualClock, Priority, WeightGovernor, sign
from collector.exchange import endpoints as ep
from collector.exchange.clocks import _settle
from tests.helpers import loopback

T0 = 1_700_000_040.0  # a minute boundary

EXCHANGE_INFO = {
    "timezone": "UTC",
    "serverTime": 1551270414646,
    "rateLimits": [
        {"rateLimitType": "requestsWeight", "interval": "minute", "intervalNum": 1, "limit": 100},
        {"rateLimitType": "orders", "interval": "second", "intervalNum": 1, "limit": 10},
        {"rateLimitType": "rawRequests", "interval": "minute", "intervalNum": 5, "limit": 5000},
    ],
    "optionSymbols": [{"symbol": "BTCCALLM", "status": "TRADING"}],
}


class Server:
    """Records every request; ``handler`` decides each answer."""

    def __init__(self, handler: Callable[[web.Request], object]) -> None:
        self.handler = handler
        self.requests: list[web.Request] = []
        self.hit = asyncio.Event()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        self.hit.set()
        result = self.handler(request)
        if asyncio.iscoroutine(result):
            result = await result
        if isinstance(result, web.StreamResponse):
            return result
        return web.json_response(result)

    def count(self, path: str | None = None) -> int:
        return sum(1 for r in self.requests if path is None or r.path == path)


@asynccontextmanager
async def serve(handler) -> AsyncIterator[tuple[Server, str]]:
    server = Server(handler)
    async with loopback.serve(server._handle) as url:
        yield server, url


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


def make(session, url, **kw) -> JexClient:
    kw.setdefault("backoff_base", 0.001)
    kw.setdefault("backoff_cap", 0.002)
    return JexClient(session, url, **kw)


def error(status: int, code: int, msg: str, headers: dict | None = None) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status, headers=headers)


# --- requests --------------------------------------------------------------------------------


async def test_endpoints_paths_params_and_api_key(session):
    def handler(req: web.Request):
        return {
            "/api/v1/option/historicalTrades": [
                {"id": "2", "price": "1.5", "qty": "1", "time": 2},
                {"id": 1, "price": "1.4", "qty": "1", "time": 1},
            ],
            "/api/v1/option/klines": [[60000, "1", "1", "1", "1", "0", 119999, "0", 0, "0", "0", "0"]],
        }.get(req.path, {})

    async with serve(handler) as (srv, url):
        client = make(session, url + "/", api_key="K")
        trades = await client.historical_trades("BTCCALLM", from_id=1, limit=2)
        assert [t.trade_id for t in trades] == [1, 2]
        req = srv.requests[-1]
        assert req.headers["X-JEX-APIKEY"] == "K"
        assert dict(req.query) == {"symbol": "BTCCALLM", "limit": "2", "fromId": "1"}
        await client.historical_trades("BTCCALLM")
        assert "fromId" not in srv.requests[-1].query
        start = datetime(1970, 1, 1, 0, 1, tzinfo=UTC)
        await client.klines("BTCCALLM", "1m", start=start, end=datetime(1970, 1, 1, 0, 2, 0, 999000, tzinfo=UTC))
        req = srv.requests[-1]
        assert "X-JEX-APIKEY" not in req.headers  # only MARKET_DATA endpoints carry the key
        assert dict(req.query) == {
            "symbol": "BTCCALLM",
            "interval": "1m",
            "startTime": "60000",
            "endTime": "120999",
            "limit": "1000",
        }
        with pytest.raises(ConfigError):
            await client.klines("BTCCALLM", "2m")
        with pytest.raises(ConfigError):
            await client.klines("BTCCALLM", "1m", start=datetime(2020, 1, 1))  # naive
        with pytest.raises(ConfigError):
            await client.depth("BTCCALLM", limit=7)
        assert srv.count() == 3  # refused inputs cost no request


async def test_historical_trades_needs_api_key(session):
    async with serve(lambda r: []) as (srv, url):
        with pytest.raises(ConfigError):
            await make(session, url).historical_trades("X")
        assert srv.count() == 0


async def test_numbers_are_decoded_as_decimal_never_float(session):
    body = '{"symbol": "S", "price": 0.1000000000000000055511151231257827}'
    async with serve(lambda r: web.Response(text=body, content_type="application/json")) as (_, url):
        (ticker,) = await make(session, url).ticker_price("S")
    assert ticker.price == Decimal("0.1000000000000000055511151231257827")


async def test_weights_reserved_per_endpoint(session):
    async with serve(lambda r: EXCHANGE_INFO if r.path.endswith("exchangeInfo") else []) as (_, url):
        gov = WeightGovernor(margin=0, burst=1)  # unpaced: this test is about weights, not pacing
        client = make(session, url, governor=gov, api_key="K")
        info = await client.configure_limits()
        assert gov.configured and gov.stats().weight_limit == 100 and info.option_symbols[0].symbol == "BTCCALLM"
        before = gov.stats().weight_used
        await client.ticker_24hr()  # 40 without a symbol
        await client.ticker_24hr("S")  # 1
        await client.book_ticker()  # 2
        await client.ticker_price()  # 2
        await client.historical_trades("S")  # 5
        assert gov.stats().weight_used - before == 50


async def test_used_weight_header_is_adopted(session):
    async with serve(
        lambda r: web.json_response(
            EXCHANGE_INFO if r.path.endswith("exchangeInfo") else {}, headers={"X-Mbx-Used-Weight-1m": "77"}
        )
    ) as (_, url):
        gov = WeightGovernor(margin=0, clock=ManualClock(T0 + 20))  # mid-window: the reading is evidence
        client = make(session, url, governor=gov)
        await client.configure_limits()
        await client.ping()
        assert gov.stats().weight_used == 77


async def test_the_live_header_pair_that_disagrees_is_not_obeyed(session):
    """The recorded live pair: X-Mbx-Used-Weight: 1 beside X-Mbx-Used-Weight-1m: 1200. The clock
    stands mid-window: readings near a window's edge are no evidence either way."""
    async with serve(
        lambda r: web.json_response(
            EXCHANGE_INFO if r.path.endswith("exchangeInfo") else {},
            headers={"X-Mbx-Used-Weight-1m": "1200", "X-Mbx-Used-Weight": "1"},
        )
    ) as (_, url):
        gov = WeightGovernor(margin=0, clock=ManualClock(T0 + 20))
        client = make(session, url, governor=gov)
        await client.configure_limits()
        await asyncio.wait_for(asyncio.gather(*(client.ping() for _ in range(20))), 5)  # no wait for a window
        stats = gov.stats()
        assert "-1M" not in stats.weight_source and stats.adopted_from_header == 0 and stats.weight_used < 30


async def test_sync_time_keeps_the_sample_with_the_shortest_round_trip(session):
    """A slow /time answer (its time taken on arrival, then held 2 s) would put the estimate 1 s
    off; of three samples the fastest is kept (the tolerance leaves room for a loaded machine)."""
    offset_ms = 3_600_000
    answers = 0

    async def handler(req: web.Request):
        nonlocal answers
        now = int(datetime.now(UTC).timestamp() * 1000) + offset_ms
        answers += 1
        if answers == 1:
            await asyncio.sleep(2.0)
        return {"serverTime": now}

    async with serve(handler) as (srv, url):
        client = make(session, url)
        offset = await client.sync_time()
    assert srv.count("/api/v1/time") == 3
    assert offset == pytest.approx(3600, abs=0.4)


async def test_sync_time_and_signed_request(session):
    offset_ms = 3_600_000  # the server's clock is an hour ahead of ours
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"

    def handler(req: web.Request):
        now = int(datetime.now(UTC).timestamp() * 1000) + offset_ms
        if req.path == "/api/v1/time":
            return {"serverTime": now}
        qs = req.query_string
        payload, _, signature = qs.rpartition("&signature=")
        if req.headers.get("X-JEX-APIKEY") != "K" or not hmac.compare_digest(
            signature, hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        ):
            return error(400, -1022, "Signature for this request is not valid.")
        if abs(int(req.query["timestamp"]) - now) > int(req.query["recvWindow"]):
            return error(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        return {"ok": True, "symbol": req.query["symbol"]}

    async with serve(handler) as (srv, url):
        client = make(session, url, api_key="K", api_secret=secret)
        offset = await client.sync_time()
        assert offset == pytest.approx(3600, abs=0.5)
        assert client.governor.offset == offset
        assert await client.request(ep.ORDER, {"symbol": "BTCCALLM"}) == {
            "ok": True,
            "symbol": "BTCCALLM",
        }
        bad = make(session, url, api_key="K", api_secret="wrong")
        with pytest.raises(ExchangeRejected) as info:
            await bad.request(ep.ORDER, {"symbol": "BTCCALLM"})
        assert info.value.code == -1022 and srv.count("/api/v1/option/order") == 2


async def test_a_timestamp_refused_measures_the_clock_again_and_signs_again_once(session):
    state = {"offset_ms": 0, "refuse": False}  # the server's clock jumps an hour after the first measurement

    def handler(req: web.Request):
        now = int(datetime.now(UTC).timestamp() * 1000) + state["offset_ms"]
        if req.path == "/api/v1/time":
            return {"serverTime": now}
        if state["refuse"] or abs(int(req.query["timestamp"]) - now) > int(req.query["recvWindow"]):
            return error(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        return {"ok": int(req.query["timestamp"])}

    async with serve(handler) as (srv, url):
        client = make(session, url, api_key="K", api_secret="S")
        await client.sync_time()
        state["offset_ms"] = 3_600_000
        answer = await client.request(ep.ACCOUNT)
        assert srv.count("/api/v1/account") == 2 and srv.count("/api/v1/time") == 6  # 3 + 3 again
        assert client.governor.offset == pytest.approx(3600, abs=0.5)
        first, second = (int(r.query["timestamp"]) for r in srv.requests if r.path == "/api/v1/account")
        assert answer == {"ok": second} and second - first == pytest.approx(3_600_000, abs=1_000)  # signed anew
        state["refuse"] = True  # refused again right after measuring: raised, not looped
        with pytest.raises(ExchangeRejected) as info:
            await client.request(ep.ACCOUNT)
        assert info.value.code == -1021 and srv.count("/api/v1/account") == 4


async def test_the_clock_is_measured_again_before_a_signed_request_after_ten_minutes(session):
    clock = ManualClock(T0)

    def handler(req: web.Request):
        if req.path == "/api/v1/time":
            return {"serverTime": int(clock.time() * 1000)}
        return {}

    async with serve(handler) as (srv, url):
        client = make(session, url, api_key="K", api_secret="S", governor=WeightGovernor(clock=clock))
        await client.sync_time()
        await client.request(ep.ACCOUNT)
        assert srv.count("/api/v1/time") == 3  # fresh: not measured again
        await clock.advance(601)
        await client.request(ep.POSITION)
        assert srv.count("/api/v1/time") == 6
        await client.request(ep.TICKER_PRICE)  # a public request does not need it
        assert srv.count("/api/v1/time") == 6


def test_sign_published_vector():
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    expected = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    params = {
        "symbol": "LTCBTC",
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": 1,
        "price": "0.1",
        "recvWindow": 5000,
        "timestamp": 1499827319559,
    }
    assert sign(params, secret) == expected
    assert sign(list(params.items()), secret) == expected
    assert (
        sign(
            "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000"
            "&timestamp=1499827319559",
            secret,
        )
        == expected
    )


# --- retries and errors ----------------------------------------------------------------------


def failing_then_ok(failures: int, failure: Callable[[], web.Response]):
    state = {"n": 0}

    def handler(req):
        state["n"] += 1
        return failure() if state["n"] <= failures else {"serverTime": 1000}

    return handler


@pytest.mark.parametrize(
    "failure",
    [
        lambda: web.Response(status=500, text="<html>oops</html>", content_type="text/html"),
        lambda: error(503, -1016, "server offline"),
        lambda: error(400, -1001, "Internal error; unable to process your request. Please try again."),
        lambda: error(400, -1006, "unexpected response"),
        lambda: error(408, -1007, "Timeout waiting for response from backend server."),
        lambda: web.Response(status=200, text='{"serverTime": 10', content_type="application/json"),
    ],
    ids=["500-html", "-1016", "-1001", "-1006", "-1007", "truncated"],
)
async def test_transient_failures_are_retried(session, failure):
    async with serve(failing_then_ok(2, failure)) as (srv, url):
        client = make(session, url, max_retries=5)
        assert await client.server_time() == datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)
        assert srv.count() == 3 and client.retries == 2


async def test_retries_stop_at_max_retries(session):
    async with serve(lambda r: web.Response(status=502)) as (srv, url):
        client = make(session, url, max_retries=3)
        with pytest.raises(ExchangeUnavailable) as info:
            await client.ping()
        assert info.value.status == 502 and srv.count() == 4 and client.retries == 3


async def test_retrying_block_sets_retries_then_restores_them(session):
    async with serve(lambda r: web.Response(status=502)) as (srv, url):
        client = make(session, url, max_retries=0)
        with pytest.raises(ExchangeUnavailable), client.retrying(2):
            await client.ping()
        assert srv.count() == 3 and client.max_retries == 0
        with pytest.raises(ExchangeUnavailable):
            await client.ping()
        assert srv.count() == 4


@pytest.mark.parametrize("status, code", [(400, -1121), (400, -1100), (401, -2015), (404, None), (403, -5)])
async def test_rejections_are_never_retried(session, status, code):
    body = {"code": code, "msg": "Invalid symbol."} if code else None
    resp = (lambda r: web.json_response(body, status=status)) if body else (lambda r: web.Response(status=status))
    async with serve(resp) as (srv, url):
        client = make(session, url)
        with pytest.raises(ExchangeRejected) as info:
            await client.depth("NOPE")
        assert (info.value.code, info.value.status) == (code, status)
        assert srv.count() == 1 and client.retries == 0


async def test_error_inside_a_200_is_believed(session):
    async with serve(lambda r: {"code": -7012, "msg": "option does not exist"}) as (srv, url):
        with pytest.raises(ExchangeRejected) as info:
            await make(session, url).avg_price("X")
        assert info.value.code == -7012 and srv.count() == 1


async def test_parse_errors_are_not_retried(session):
    async with serve(lambda r: [{"price": True, "qty": "1", "time": 1}]) as (srv, url):
        with pytest.raises(ParseError) as info:
            await make(session, url).recent_trades("X")
        assert info.value.field == "price" and srv.count() == 1


def _misbehaviours():
    async def close_mid_body(req):
        resp = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": "1000"})
        await resp.prepare(req)
        await resp.write(b'{"serverTime": 1')
        req.transport.close()
        return resp

    async def reset_before_answer(req):
        req.transport.close()
        return web.Response()

    async def never_answers(req):
        await asyncio.Event().wait()

    async def stalls_mid_body(req):
        resp = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": "100"})
        await resp.prepare(req)
        await resp.write(b'{"serverTime"')
        await asyncio.Event().wait()

    def raw_bytes(status: int, body: bytes, ctype: str = "application/json"):
        return lambda req: web.Response(status=status, body=body, content_type=ctype)

    return {
        "close-mid-body": close_mid_body,
        "reset-before-answer": reset_before_answer,
        "never-answers": never_answers,
        "stalls-mid-body": stalls_mid_body,
        "garbage": raw_bytes(200, b"\x00\xff\xfe garbage"),
        "html-200": raw_bytes(200, b"<html><body>maintenance</html>", "text/html"),
        "empty-body": raw_bytes(200, b""),
        "not-utf8": raw_bytes(200, b'{"serverTime": "\xff"}'),
        "nan": raw_bytes(200, b'{"serverTime": NaN}'),
        "html-502": raw_bytes(502, b"<html>bad gateway</html>", "text/html"),
        "redirect": lambda req: web.Response(status=302, headers={"Location": "/elsewhere"}),
        "wrong-shape": raw_bytes(200, b"[1, 2]"),
    }


@pytest.mark.parametrize("name", list(_misbehaviours()))
async def test_no_aiohttp_exception_escapes(session, name):
    handler = _misbehaviours()[name]
    async with serve(handler) as (srv, url):
        # Short timeouts only where the timeout is the point: on a loaded machine a prompt answer
        # can take longer than 0.3 s to be served and read.
        timeout = 0.3 if name in ("never-answers", "stalls-mid-body") else 5
        client = make(session, url, max_retries=1, read_timeout=timeout, connect_timeout=timeout)
        with pytest.raises((ExchangeUnavailable, ParseError)) as info:
            await client.server_time()
        if isinstance(info.value, ExchangeUnavailable):
            assert client.retries == 1  # retried once, then given up
            # aiohttp itself resends once when a reused keep-alive connection turns out closed
            assert srv.count() == 2 or (name == "reset-before-answer" and 2 <= srv.count() <= 4)
            if info.value.__cause__ is not None:
                assert isinstance(info.value.__cause__, (aiohttp.ClientError, asyncio.TimeoutError, ValueError))
        else:  # well-formed JSON that does not follow the API: not retried
            assert name in ("nan", "wrong-shape") and srv.count() == 1


async def test_connection_refused_is_unavailable(session):
    async with serve(lambda r: {}) as (_, url):
        pass  # the port is closed now
    client = make(session, url, max_retries=2)
    with pytest.raises(ExchangeUnavailable) as info:
        await client.ping()
    assert isinstance(info.value.__cause__, aiohttp.ClientConnectionError) and client.retries == 2


# --- 429 and 418 -----------------------------------------------------------------------------


async def test_429_pauses_everyone_until_retry_after(session):
    clock = ManualClock(T0 + 1)
    state = {"limited": True}

    def handler(req):
        if req.path.endswith("exchangeInfo"):
            return EXCHANGE_INFO
        if state["limited"]:
            state["limited"] = False
            return error(429, -1003, "Too many requests.", {"Retry-After": "30"})
        return {"symbol": "S", "price": "1"} if "ticker" in req.path else {}

    async with serve(handler) as (srv, url):
        gov = WeightGovernor(clock=clock)
        client = make(session, url, governor=gov, max_retries=1)
        await client.configure_limits()
        clock.sleeping.clear()
        first = asyncio.create_task(client.ping())
        await clock.sleeping.wait()  # the 429 came back and the retry waits in the governor
        second = asyncio.create_task(client.ticker_price("S", priority=Priority.BACKFILL))
        await _settle()
        sent = srv.count()
        assert sent == 2 and gov.stats().paused_until == T0 + 31
        await clock.advance(29.9)
        assert srv.count() == sent  # nothing sent during Retry-After
        await clock.advance(60)  # the 429 also marked the window full: next minute
        await asyncio.wait_for(asyncio.gather(first, second), 5)
        assert srv.count() == 4 and client.retries == 1


async def test_429_without_retries_raises_rate_limited(session):
    async with serve(lambda r: error(429, -1003, "Too many", {"Retry-After": "12"})) as (srv, url):
        clock = ManualClock(T0 + 1)
        client = make(session, url, governor=WeightGovernor(clock=clock), max_retries=0)
        with pytest.raises(RateLimited) as info:
            await client.ping()
        assert info.value.retry_after == pytest.approx(12) and srv.count() == 1


async def test_long_ban_raises_and_blocks_all_sending(session, caplog):
    until_ms = int((T0 + 3 * 86400) * 1000)
    async with serve(
        lambda r: error(418, -1003, f"Way too many requests; IP banned until {until_ms}.", {"Retry-After": "60"})
    ) as (srv, url):
        clock = ManualClock(T0 + 1)
        client = make(session, url, governor=WeightGovernor(clock=clock), max_ban_wait=300)
        with caplog.at_level(logging.CRITICAL), pytest.raises(Banned) as info:
            await client.ping()
        assert info.value.until == datetime.fromtimestamp(until_ms / 1000, UTC)
        assert "BANNED" in caplog.text and srv.count() == 1 and client.retries == 0
        with pytest.raises(Banned):
            await client.depth("X")  # refused locally, nothing sent
        assert srv.count() == 1
        from collector import metrics

        assert metrics.REGISTRY.get_sample_value("jex_exchange_ban_until_timestamp_seconds") == until_ms / 1000


async def test_short_ban_is_waited_out_then_retried(session):
    clock = ManualClock(T0 + 1)
    state = {"banned": True}

    def handler(req):
        if state["banned"]:
            state["banned"] = False
            return error(418, -1003, "IP banned", {"Retry-After": "120"})
        return {}

    async with serve(handler) as (srv, url):
        client = make(session, url, governor=WeightGovernor(clock=clock), max_ban_wait=300)
        clock.sleeping.clear()
        task = asyncio.create_task(client.ping())
        await clock.sleeping.wait()
        await clock.advance(119.9)
        assert srv.count() == 1 and not task.done()  # nothing sent during the ban
        await clock.advance(0.2)
        await asyncio.wait_for(task, 5)
        assert srv.count() == 2 and client.retries == 1
