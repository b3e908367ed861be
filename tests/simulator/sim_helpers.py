"""Helpers shared by the simulator tests (a plain module: tests/ is not a package)."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode

import aiohttp

from collector.simulator import SimConfig, Simulator

# 2030-01-07T00:00:00Z (a Monday, on every interval boundary): history and windows are predictable.
T0 = 1_894_060_800_000
KEY = {"X-JEX-APIKEY": "testkey123"}
# Two accounts of the signed API (SimConfig.accounts): API key and secret of each.
USER, SECRET = "acct1key", "acct1secret"
OTHER_KEY, OTHER_SECRET = "acct2key", "acct2secret"


def small_config(**kw) -> SimConfig:
    base = dict(
        seed=1,
        history_days=0.5,
        symbols=30,
        listing_interval_s=1800,
        trades_per_minute=6,
        silent_share=0.0,
        start_ms=T0,
        weight_limit=0,
        grace_s=7200,
    )
    base.update(kw)
    return SimConfig(**base)


async def get(http: aiohttp.ClientSession, sim: Simulator, path: str, params=None, headers=None):
    """(status, headers, decoded JSON) of GET base_url + path."""
    async with http.get(sim.base_url + path, params=params, headers=headers) as r:
        return r.status, r.headers, await r.json(content_type=None)


def trading_symbol(sim: Simulator, index: int = 0) -> str:
    """The index-th oldest symbol still trading (so it has hours of history)."""
    return [o["symbol"] for o in sim.market.option_info(sim.now_ms()) if o["status"] == "TRADING"][index]


def signature_of(payload: str, secret: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


async def signed_call(
    http,
    sim,
    method: str,
    path: str,
    params: dict | None = None,
    *,
    key: str | None = USER,
    secret: str = SECRET,
    timestamp: int | None = None,
    recv_window: int | None = None,
    body: dict | None = None,
    signature: str | None = None,
    sign: bool = True,
):
    """(status, body) of a request signed as the notes describe: ``params`` in the query string,
    ``body`` form-encoded in the body, the signature over both in that order."""
    query = dict(params or {})
    if recv_window is not None:
        query["recvWindow"] = recv_window
    if timestamp is not False:
        query["timestamp"] = sim.now_ms() if timestamp is None else timestamp
    qs = urlencode(query)
    bs = urlencode(body or {})
    if sign:
        qs += ("&" if qs else "") + "signature=" + (signature or signature_of(qs + bs, secret))
    headers = {"X-JEX-APIKEY": key} if key is not None else {}
    if bs:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    async with http.request(method, f"{sim.base_url}/api/v1/{path}?{qs}", data=bs or None, headers=headers) as r:
        return r.status, await r.json(content_type=None)


def used_weight(sim) -> int:
    return sum(sum(w.values()) for w in sim.stats.weight.values())


async def place_resting_buy(http, sim: Simulator, symbol: str, qty: int = 1, **signing):
    """(status, body) of a LIMIT BUY far below the market (it rests, unfilled)."""
    params = {"symbol": symbol, "side": "BUY", "type": "LIMIT", "quantity": qty, "price": "0.0001"}
    return await signed_call(http, sim, "POST", "option/order", params, **signing)
