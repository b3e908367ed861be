"""Fixtures: a real simulator on a loopback port, with a frozen clock the test moves by hand."""

from __future__ import annotations

import aiohttp
import pytest
from sim_helpers import T0, small_config

from collector.simulator import Clock, SimConfig, Simulator


@pytest.fixture
async def make_sim():
    sims: list[Simulator] = []

    async def make(cfg: SimConfig | None = None, now: int = T0 + 37_123) -> Simulator:
        clock = Clock()
        clock.freeze(now)
        sim = Simulator(cfg or small_config(), port=0, clock=clock)
        await sim.start()
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        await sim.stop()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s:
        yield s
