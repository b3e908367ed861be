"""Helpers shared by the simulator tests (a plain module: tests/ is not a package)."""

from __future__ import annotations

import aiohttp

from collector.simulator import SimConfig, Simulator

# 2030-01-07T00:00:00Z (a Monday, on every interval boundary): history and windows are predictable.
T0 = 1_894_060_800_000
KEY = {"X-JEX-APIKEY": "testkey123"}


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
