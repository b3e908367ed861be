"""The exchange side: HTTP client, weight governor, request signing, pure parsers, paging and the
session. Knows nothing of the database; imports only the shared modules (config, errors, domain,
logs, metrics)."""

from collector.exchange.client import JexClient
from collector.exchange.clocks import Clock, ManualClock, SystemClock
from collector.exchange.ratelimit import (
    GovernorStats,
    Priority,
    Reservation,
    WeightGovernor,
)
from collector.exchange.signing import sign

__all__ = [
    "Clock",
    "GovernorStats",
    "JexClient",
    "ManualClock",
    "Priority",
    "Reservation",
    "SystemClock",
    "WeightGovernor",
    "sign",
]
