"""The HTTP side of the simulator: JEX's public option endpoints (aiohttp.web) and `Simulator`.

The web-socket streams (`streams`) and the user data stream's listenKeys (`userstream`) are served
by the same app: `Simulator.stream_url` is `base_url` with ws://.

Every `/api/` request goes through `_serve`: count it, apply the rate limits (429/418), draw the
faults, run the endpoint, render. Endpoint functions return plain JSON-able data; representation
variations are applied at render time so they never change values.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from collector.simulator.account_api import ROUTES as ACCOUNT_ROUTES
from collector.simulator.account_api import AccountApi, verify
from collector.simulator.accounts import AccountError
from collector.simulator.config import FaultConfig, SimConfig
from collector.simulator.faults import (
    NO_FAULTS,
    Injector,
    Plan,
    numbers_as_json,
    scalars_as_strings,
)
from collector.simulator.limits import Clock, Limiter, Stats, Verdict
from collector.simulator.market import INTERVALS, MINUTE, Market, Option
from collector.simulator.streams import StreamHub, depth_version
from collector.simulator.userstream import StreamingAccounts, UserStreams
from collector.simulator.wire import fmt_ticks, recent_trade_json, trade_json

log = logging.getLogger("collector.simulator")

JSON_CT = "application/json;charset=UTF-8"
_SYMBOL_RE = re.compile(r"^[A-Z0-9\-_.]{1,20}$")
_INT_RE = re.compile(r"^-?[0-9]{1,20}$")
_KEY_RE = re.compile(r"^[A-Za-z0-9]{1,128}$")
DEPTH_LIMITS = (5, 10, 20, 50, 60)
UNLIMITED_ANNOUNCED = 2**31 - 1

# contractSymbols / spotSymbols entries as the live exchange listed them (a collector ignores them).
_CONTRACT = [
    {
        "symbol": s,
        "status": "TRADING",
        "baseAsset": s[:-4].lower(),
        "baseAssetPrecision": 4,
        "quoteAsset": "usdt",
        "quotePrecision": 1,
        "orderTypes": ["LIMIT", "MARKET"],
        "icebergAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.00000001000000000000",
                "maxPrice": "1000000.00000000000000000000",
            },
            {"filterType": "LOT_SIZE", "minQty": "0.00010000000000000000", "maxQty": "1000000.00000000000000000000"},
        ],
    }
    for s in ("BTCUSDT", "EOSUSDT", "ETHUSDT")
]
_SPOT = [
    {
        "symbol": s,
        "status": "TRADING",
        "baseAsset": b,
        "baseAssetPrecision": 4,
        "quoteAsset": q,
        "quotePrecision": 2,
        "orderTypes": ["LIMIT"],
        "icebergAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "maxPrice": "100000"},
            {"filterType": "LOT_SIZE", "minQty": "0.00010000"},
        ],
    }
    for s, b, q in (("BTCUSDT", "BTC", "USDT"), ("JEXBTC", "JEX", "BTC"), ("ETHBTC", "ETH", "BTC"))
]


class ApiError(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def _mandatory(name: str) -> ApiError:
    return ApiError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def _int_param(q: Any, name: str) -> int | None:
    raw = q.get(name)
    if raw is None:
        return None
    if not _INT_RE.match(raw):
        return _raise(
            ApiError(400, -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.")
        )
    return int(raw)


def _raise(exc: Exception):
    raise exc


def _limit(q: Any, default: int, allowed: Callable[[int], bool]) -> int:
    v = _int_param(q, "limit")
    if v is None:
        return default
    if not allowed(v):
        raise ApiError(400, -1130, "Data sent for parameter 'limit' is not valid.")
    return v


class Simulator:
    """A running JEX exchange. `async with Simulator(cfg) as sim:` then use `sim.base_url`."""

    def __init__(
        self, cfg: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0, clock: Clock | None = None
    ) -> None:
        self.cfg = cfg or SimConfig()
        self.host, self.port = host, port
        self.clock = clock or Clock()
        self.market = Market(
            self.cfg, start_ms=self.cfg.start_ms if self.cfg.start_ms is not None else self.clock.now_ms()
        )
        self.stats = Stats()
        self.limiter = Limiter(
            self.stats,
            self.cfg.weight_limit,
            self.cfg.raw_limit,
            int(self.cfg.ban_base_s * 1000),
            int(self.cfg.ban_max_s * 1000),
            self.cfg.ban_after,
            self.cfg.weight_window_s * 1000,
        )
        self.accounts = StreamingAccounts(self.market, self.cfg.accounts, self.cfg.seed)
        self.account_api = AccountApi(self.market, self.accounts)
        self._faults = self.cfg.faults
        self.streams = StreamHub(self.market, self.clock, self.cfg, self.stats, lambda: self._faults)
        self.user_streams = UserStreams(self.accounts, self.streams, self.cfg, self.stats, self.cfg.seed)
        self._injector = Injector(self._faults, self.cfg.seed)
        self._runner: web.AppRunner | None = None
        self._warm_task: asyncio.Task | None = None
        self.warm = False  # all listed symbols' history folded into aggregates
        self.app = self._make_app()

    # ---- public --------------------------------------------------------------------------
    @property
    def faults(self) -> FaultConfig:
        return self._faults

    @faults.setter
    def faults(self, value: FaultConfig) -> None:
        self._faults = value
        self._injector = Injector(value, self.cfg.seed)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def stream_url(self) -> str:
        """The web-socket base: ``stream_url + "/ws/<name>"``, ``stream_url + "/stream?streams=..."``."""
        return f"ws://{self.host}:{self.port}"

    def now_ms(self) -> int:
        return self.clock.now_ms()

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        self._warm_task = asyncio.get_running_loop().create_task(self._warm())

    async def stop(self) -> None:
        await self.streams.close_all()  # web sockets would hold the runner's shutdown up
        if self._warm_task is not None:
            self._warm_task.cancel()
            try:
                await self._warm_task
            except asyncio.CancelledError:
                pass
            self._warm_task = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _warm(self) -> None:
        """Fold history into per-symbol aggregates a slice at a time, so the first all-symbol
        ticker or deep kline request does not stall the loop for seconds."""
        m = self.market
        for opt in m.listed(self.now_ms()):
            target = min(self.now_ms(), opt.expiry) // MINUTE
            s = m._series_for(opt, m._trade_start(opt) // MINUTE)
            while s.m0 + len(s.n) < target:
                m._series_for(opt, min(target, s.m0 + len(s.n) + 60))
                await asyncio.sleep(0)
        self.warm = True

    # ---- plumbing ------------------------------------------------------------------------
    def _make_app(self) -> web.Application:
        app = web.Application()
        m = self
        routes: list[tuple[str, Callable, Callable[[Any], int]]] = [
            ("/api/v1/ping", m._ping, lambda q: 1),
            ("/api/v1/time", m._time, lambda q: 1),
            ("/api/v1/exchangeInfo", m._exchange_info, lambda q: 1),
            ("/api/v1/optionInfo", m._option_info, lambda q: 1),
            ("/api/v1/option/depth", m._depth, lambda q: 1),
            ("/api/v1/option/trades", m._trades, lambda q: 1),
            ("/api/v1/option/historicalTrades", m._historical_trades, lambda q: 5),
            ("/api/v1/option/klines", m._klines, lambda q: 1),
            ("/api/v1/option/avgPrice", m._avg_price, lambda q: 1),
            ("/api/v1/option/ticker/24hr", m._ticker_24hr, lambda q: 1 if "symbol" in q else 40),
            ("/api/v1/option/ticker/price", m._ticker_price, lambda q: 1 if "symbol" in q else 2),
            ("/api/v1/option/ticker/bookTicker", m._book_ticker, lambda q: 1 if "symbol" in q else 2),
        ]
        for path, fn, weight in routes:
            app.router.add_get(path, self._endpoint(path, fn, weight))
        for path, methods in ACCOUNT_ROUTES.items():
            for method in methods:
                app.router.add_route(method, path, self._signed_endpoint(path, method))
        for method in ("POST", "PUT", "DELETE"):
            app.router.add_route(method, "/api/v1/userDataStream", self._user_stream_endpoint(method))
        app.router.add_get("/ws/{name}", self.streams.handle_raw)
        app.router.add_get("/stream", self.streams.handle_combined)
        app.router.add_get("/_sim/stats", self._debug_stats)
        app.router.add_get("/_sim/trades", self._debug_trades)
        app.router.add_get("/_sim/klines", self._debug_klines)
        app.router.add_route("*", "/api/{tail:.*}", self._endpoint("unknown", self._unknown, lambda q: 1))
        return app

    def _signed_endpoint(self, path: str, method: str):
        """A USER_DATA/TRADE endpoint: parameters from the query string and the body, signature checked,
        then the account's answer, through `_serve` like every other (limits, faults)."""
        name, units, trade = ACCOUNT_ROUTES[path][method]
        fn = self.account_api.handler(path, method)

        async def handler(request: web.Request) -> web.StreamResponse:
            body = await request.text() if request.body_exists else ""
            query = request.query_string
            params = dict(parse_qsl(query, keep_blank_values=True))
            params.update(parse_qsl(body, keep_blank_values=True))

            def run(req: web.Request, q: Any, arrived: int, plan: Plan) -> tuple[int, Any]:
                now = self.clock.now_ms()  # processed now (after a slow answer's delay, too)
                try:
                    key = verify(self.accounts, req.headers.get("X-JEX-APIKEY"), query, body, params, now)
                    status, data = fn(params, now, key)
                except AccountError as exc:
                    raise ApiError(exc.status, exc.code, exc.msg) from None
                if trade and plan.trade_lost:  # done, and the answer lost on the way back
                    self.stats.faults["trade_lost"] += 1
                    raise ApiError(
                        504,
                        -1006,
                        "An unexpected response was received from the message bus. Execution status unknown.",
                    )
                return status, data

            return await self._serve(request, name, run, lambda q: units, params=params)

        return handler

    def _user_stream_endpoint(self, method: str):
        """POST/PUT/DELETE /api/v1/userDataStream (API key, no signature), through `_serve`."""

        async def handler(request: web.Request) -> web.StreamResponse:
            body = await request.text() if request.body_exists else ""
            params = dict(parse_qsl(request.query_string, keep_blank_values=True))
            params.update(parse_qsl(body, keep_blank_values=True))

            def run(req: web.Request, q: Any, arrived: int, plan: Plan) -> tuple[int, Any]:
                try:
                    return 200, self.user_streams.rest(method, req.headers.get("X-JEX-APIKEY"), q, self.clock.now_ms())
                except AccountError as exc:
                    raise ApiError(exc.status, exc.code, exc.msg) from None

            return await self._serve(request, "userDataStream", run, lambda q: 1, params=params)

        return handler

    def _endpoint(self, name: str, fn: Callable, weight: Callable[[Any], int]):
        async def handler(request: web.Request) -> web.StreamResponse:
            return await self._serve(request, name, fn, weight)

        return handler

    async def _serve(
        self,
        request: web.Request,
        name: str,
        fn: Callable,
        weight: Callable[[Any], int],
        params: Any = None,
    ) -> web.StreamResponse:
        st = self.stats
        st.requests += 1
        st.by_endpoint[name] += 1
        now = self.clock.now_ms()
        q = request.query if params is None else params
        st.queries.append((name, dict(q)))
        symbol = q.get("symbol")
        if symbol:
            st.by_symbol[symbol] += 1
            st.by_endpoint_symbol[(name, symbol)] += 1
        verdict = self.limiter.admit(request.remote or "?", weight(q), now)
        if verdict.status != 200:
            return self._limited(verdict)
        if not self._injector.active:  # no faults configured: nothing to draw, delay or rewrite
            try:
                status, data = fn(request, q, now, NO_FAULTS)
            except ApiError as exc:
                status, data = exc.status, {"code": exc.code, "msg": exc.msg}
            headers = self._weight_headers(verdict.used_weight)
            headers["Content-Type"] = JSON_CT
            return web.Response(
                status=status,
                body=(data if type(data) is str else json.dumps(data, separators=(",", ":"))).encode(),
                headers=headers,
            )
        plan = self._injector.plan()
        if plan.slow:
            st.faults["slow"] += 1
            await asyncio.sleep(plan.slow)
        if plan.error is not None:
            status, ctype, error_body = plan.error
            st.faults["5xx"] += 1
            return web.Response(
                status=status, text=error_body, content_type=ctype, headers=self._weight_headers(verdict.used_weight)
            )
        try:
            status, data = fn(request, q, now, plan)
        except ApiError as exc:
            status, data = exc.status, {"code": exc.code, "msg": exc.msg}
        text = data if type(data) is str else json.dumps(data, separators=(",", ":"))  # compact JSON
        if status == 200:  # representation only: the same values
            if plan.numbers_as_json:
                text = numbers_as_json(text)
            if plan.as_strings:
                text = scalars_as_strings(text)
        body = text.encode()
        headers = self._weight_headers(verdict.used_weight)
        headers["Content-Type"] = JSON_CT
        if plan.drop:
            st.faults["drop"] += 1
            return await self._drop(request, status, headers, body)
        if plan.truncate and len(body) > 2:
            st.faults["truncate"] += 1
            body = body[: max(1, len(body) // 2)]
        return web.Response(status=status, body=body, headers=headers)

    def _weight_headers(self, used: int) -> dict[str, str]:
        """The used-weight headers, the way this exchange sends them (FaultConfig.weight_headers)."""
        mode = self._faults.weight_headers
        window = self.cfg.weight_window_s
        suffix = "1M" if window == 60 else (f"{window // 60}M" if window % 60 == 0 else f"{window}S")
        if mode == "exact":
            return {f"X-MBX-USED-WEIGHT-{suffix}": str(used), "X-MBX-USED-WEIGHT": str(used)}
        limit = str(self.cfg.weight_limit or UNLIMITED_ANNOUNCED)
        if mode == "live-2019":  # as recorded (api_v1_contractInfo.json), spelling included
            return {"X-Mbx-Used-Weight": str(used), "X-Mbx-Used-Weight-1m": limit}
        if mode == "legacy":
            return {"X-MBX-USED-WEIGHT": str(used)}
        if mode == "1m":
            return {f"X-MBX-USED-WEIGHT-{suffix}": str(used)}
        if mode == "stuck":
            return {f"X-MBX-USED-WEIGHT-{suffix}": limit, "X-MBX-USED-WEIGHT": limit}
        return {}

    def _limited(self, v: Verdict) -> web.Response:
        if v.status == 418:
            msg = (
                f"Way too much request weight used; IP banned until {v.banned_until}. "
                "Please use the websocket for live updates to avoid bans."
            )
        else:
            msg = "Too much request weight used; please use the websocket for live updates to avoid polling the API."
        headers = self._weight_headers(v.used_weight)
        headers["Retry-After"] = str(v.retry_after_s)
        headers["Content-Type"] = JSON_CT
        return web.Response(status=v.status, headers=headers, body=json.dumps({"code": -1003, "msg": msg}).encode())

    async def _drop(self, request: web.Request, status: int, headers: dict, body: bytes) -> web.StreamResponse:
        """Announce the full body, send half, then close the connection."""
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = len(body)
        await resp.prepare(request)
        await resp.write(body[: len(body) // 2])
        if request.transport is not None:
            request.transport.close()
        return resp

    # ---- helpers -------------------------------------------------------------------------
    def _capped(self, limit: int) -> int:
        cap = self._faults.page_cap
        return limit if cap is None else min(limit, cap)

    def _symbol(self, q: Any, now: int, required: bool = True) -> Option | None:
        s = q.get("symbol")
        if not s:
            if required or s == "":
                raise _mandatory("symbol")
            return None
        if not _SYMBOL_RE.match(s):
            raise ApiError(
                400, -1100, "Illegal characters found in parameter 'symbol'; legal range is '^[A-Z0-9-_.]{1,20}$'."
            )
        opt = self.market.lookup(s, now)
        if opt is None:
            raise ApiError(400, -1121, "Invalid symbol.")
        if self._faults.refuse_expired and now >= opt.expiry:
            raise ApiError(400, -7013, "Option is past its exercise time.")
        return opt

    # ---- endpoints: (request, query, now, plan) -> (status, data) -----------------------
    def _unknown(self, request, q, now, plan):
        return 404, {"code": -1, "msg": f"Unknown path {request.path}."}

    def _ping(self, request, q, now, plan):
        return 200, "{}"

    def _time(self, request, q, now, plan):
        return 200, {"serverTime": now + self._faults.clock_skew_ms}

    def _weight_limit_entry(self, limit: int) -> dict:
        window = self.cfg.weight_window_s
        if window % 60 == 0:
            return {
                "rateLimitType": "requestsWeight",
                "interval": "minute",
                "intervalNum": window // 60,
                "limit": limit,
            }
        return {"rateLimitType": "requestsWeight", "interval": "second", "intervalNum": window, "limit": limit}

    def _exchange_info(self, request, q, now, plan):
        wl = self.cfg.weight_limit or UNLIMITED_ANNOUNCED
        rl = (self.cfg.raw_limit or UNLIMITED_ANNOUNCED) if self.cfg.weight_limit else UNLIMITED_ANNOUNCED
        return 200, {
            "timezone": "UTC",
            "serverTime": now + self._faults.clock_skew_ms,
            "rateLimits": [
                self._weight_limit_entry(wl),
                {"rateLimitType": "orders", "interval": "second", "intervalNum": 1, "limit": 10},
                {"rateLimitType": "orders", "interval": "day", "intervalNum": 1, "limit": 100000},
                {"rateLimitType": "rawRequests", "interval": "minute", "intervalNum": 5, "limit": rl},
            ],
            "optionSymbols": self.market.exchange_symbols(now),
            "contractSymbols": _CONTRACT,
            "spotSymbols": _SPOT,
        }

    def _option_info(self, request, q, now, plan):
        return 200, self.market.option_info(now)

    def _depth(self, request, q, now, plan):
        opt = self._symbol(q, now)
        limit = _limit(q, 60, lambda v: v in DEPTH_LIMITS)
        uid = depth_version(now)  # the book of this version, as the diff stream counts them (streams.py)
        bids, asks = ([], []) if now >= opt.expiry else self.streams.book(opt, uid)
        if plan.fewer_levels is not None:  # fewer levels than asked, as the live exchange often had
            limit = max(1, int(limit * plan.fewer_levels))
        if plan.depth_legacy:
            return 200, {
                "bids": [[fmt_ticks(p), str(x)] for p, x in bids[:limit]],
                "asks": [[fmt_ticks(p), str(x)] for p, x in asks[:limit]],
            }
        return 200, {
            "lastUpdateId": uid,
            "bids": [[fmt_ticks(p), str(x), []] for p, x in bids[:limit]],
            "asks": [[fmt_ticks(p), str(x), []] for p, x in asks[:limit]],
        }

    def _trades(self, request, q, now, plan):
        opt = self._symbol(q, now)
        limit = _limit(q, 60, lambda v: 1 <= v <= 60)
        rows = self.market.recent_trades(opt, now, limit)
        self.stats.rows += len(rows)
        return 200, "[" + ",".join([recent_trade_json(p, x, t) for _, p, x, t, _ in rows]) + "]"

    def _historical_trades(self, request, q, now, plan):
        key = request.headers.get("X-JEX-APIKEY")
        if not key or not _KEY_RE.match(key):
            raise ApiError(401, -2014, "API-key format invalid.")
        if self.cfg.api_keys is not None and key not in self.cfg.api_keys:
            raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        opt = self._symbol(q, now)
        limit = self._capped(_limit(q, 200, lambda v: 1 <= v <= 500))
        from_id = _int_param(q, "fromId")
        if from_id is not None and from_id < 0:
            raise ApiError(400, -1130, "Data sent for parameter 'fromId' is not valid.")
        if from_id is None:
            rows = self.market.recent_trades(opt, now, limit)
        else:
            rows = self.market.trades_from_id(opt, from_id, now, limit)
        self.stats.rows += len(rows)
        if plan.ids_as_numbers:
            return 200, [
                {"id": i, "price": fmt_ticks(p), "qty": str(x), "time": t, "buyerMaker": bm} for i, p, x, t, bm in rows
            ]
        return 200, "[" + ",".join([trade_json(*x) for x in rows]) + "]"

    def _klines(self, request, q, now, plan):
        opt = self._symbol(q, now)
        interval = q.get("interval")
        if not interval:
            raise _mandatory("interval")
        if interval not in INTERVALS:
            raise ApiError(400, -1120, "Invalid interval.")
        start = _int_param(q, "startTime")
        end = _int_param(q, "endTime")
        limit = self._capped(_limit(q, 500, lambda v: 1 <= v <= 1000))
        if start is not None and end is not None and end < start:
            raise ApiError(400, -1127, "Start time is greater than end time.")
        iv, first, last = self.market.kline_rows(opt, interval, now)
        if end is not None:
            last = min(last, end - (end - first) % iv if end >= first else first - iv)
        if start is not None:
            lo = max(first, start + (-(start - first)) % iv)
            hi = min(last, lo + (limit - 1) * iv)
        else:
            hi = last
            lo = max(first, hi - (limit - 1) * iv)
        n, body = self.market.klines_json(opt, iv, lo, hi, now)
        self.stats.rows += n
        return 200, body

    def _avg_price(self, request, q, now, plan):
        opt = self._symbol(q, now)
        return 200, {"mins": 5, "price": self.market.avg_price(opt, now)}

    def _ticker_24hr(self, request, q, now, plan):
        opt = self._symbol(q, now, required=False)
        frozen = self._faults.frozen_prices

        def at(o):  # a frozen symbol's 24h volume stays as at its listing
            return o.listing if o.name in frozen else now

        if not plan.swap_times:
            if opt is not None:
                return 200, self.market.ticker_24hr_json(opt, at(opt))
            rows = [self.market.ticker_24hr_json(o, at(o)) for o in self.market.listed(now)]
            return 200, "[" + ",".join(rows) + "]"
        opts = [opt] if opt is not None else self.market.listed(now)
        out = [self.market.ticker_24hr(o, at(o)) for o in opts]
        for d in out:
            d["openTime"], d["closeTime"] = now, now - 3
        return 200, out[0] if opt is not None else out

    def _ticker_price(self, request, q, now, plan):
        opt = self._symbol(q, now, required=False)
        options = [opt] if opt is not None else self.market.listed(now)
        frozen = self._faults.frozen_prices
        rows = [self.market.price_ticker_json(o, o.listing if o.name in frozen else now) for o in options]
        return 200, rows[0] if opt is not None else "[" + ",".join(rows) + "]"

    def _book_ticker(self, request, q, now, plan):
        opt = self._symbol(q, now, required=False)
        if opt is not None:
            return 200, self.market.book_ticker_json(opt, now)
        return 200, "[" + ",".join([self.market.book_ticker_json(o, now) for o in self.market.listed(now)]) + "]"

    # ---- debug (outside /api/: no limits, no faults) ----------------------------------------
    async def _debug_stats(self, request: web.Request) -> web.Response:
        d = self.stats.as_dict()
        d["now"] = self.clock.now_ms()
        d["historyStart"] = self.market.history_start
        d["warm"] = self.warm
        d["symbols"] = self.market.listed_symbols(d["now"])
        return web.json_response(d)

    def _debug_args(self, request: web.Request) -> tuple[str, int, int]:
        q = request.query
        try:
            return (
                q["symbol"],
                int(q.get("startTime", self.market.history_start)),
                int(q.get("endTime", self.clock.now_ms() + 1)),
            )
        except (KeyError, ValueError):
            raise web.HTTPBadRequest(text="symbol, startTime, endTime (ms) expected") from None

    async def _debug_trades(self, request: web.Request) -> web.Response:
        symbol, start, end = self._debug_args(request)
        try:
            return web.json_response(self.market.trades(symbol, start, end))
        except KeyError:
            raise web.HTTPNotFound(text=f"no symbol {symbol}") from None

    async def _debug_klines(self, request: web.Request) -> web.Response:
        symbol, start, end = self._debug_args(request)
        interval = request.query.get("interval", "1m")
        if interval not in INTERVALS:
            raise web.HTTPBadRequest(text="bad interval")
        try:
            return web.json_response(self.market.klines(symbol, interval, start, end, self.clock.now_ms()))
        except KeyError:
            raise web.HTTPNotFound(text=f"no symbol {symbol}") from None
