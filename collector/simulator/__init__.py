"""A local JEX options exchange: the seed's public market-data API over a deterministic market.

    async with Simulator(SimConfig(seed=1), port=0) as sim:
        sim.base_url, sim.market, sim.stats, sim.clock, sim.faults

Independent of `collector.exchange` on purpose: each is a separate reading of the seed.
"""

from collector.simulator.app import Simulator
from collector.simulator.config import FaultConfig, SimConfig
from collector.simulator.limits import Clock, Stats
from collector.simulator.market import INTERVALS, Market

__all__ = ["INTERVALS", "Clock", "FaultConfig", "Market", "SimConfig", "Simulator", "Stats"]
