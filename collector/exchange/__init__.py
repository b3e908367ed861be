"""The exchange side: HTTP client, weight governor, request signing and pure parsers."""

from collector.exchange.client import JexClient
from collector.exchange.ratelimit import Clock, GovernorStats, Priority, Reservation, SystemClock, WeightGovernor
from collector.exchange.signing import sign

__all__ = ["Clock", "GovernorStats", "JexClient", "Priority", "Reservation", "SystemClock", "WeightGovernor",
           "sign"]
