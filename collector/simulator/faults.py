"""Fault injection: what goes wrong with a response, drawn from a seeded RNG.

Transport faults (5xx, slow, dropped, truncated) replace or damage the answer; representation
variations (the real-world differences in JEX-FIELD-NOTES.md) rewrite its JSON without changing
any value.
"""

from __future__ import annotations

import random
import re

from collector.simulator.config import FaultConfig

# 5xx bodies: JSON with the codes that mean "outcome unknown", or an HTML page from a proxy.
JSON_5XX = (
    (500, -1001, "Internal error; unable to process your request. Please try again."),
    (503, -1016, "This service is no longer available."),
    (504, -1006, "An unexpected response was received from the message bus. Execution status unknown."),
)
HTML_5XX = (
    (
        502,
        "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>"
        "</center><hr><center>nginx</center></body></html>",
    ),
    (
        503,
        "<html><head><title>503 Service Temporarily Unavailable</title></head><body><center>"
        "<h1>503 Service Temporarily Unavailable</h1></center></body></html>",
    ),
)


class Plan:
    """The faults decided for one response."""

    __slots__ = (
        "as_strings",
        "depth_legacy",
        "drop",
        "error",
        "fewer_levels",
        "ids_as_numbers",
        "numbers_as_json",
        "slow",
        "swap_times",
        "trade_lost",
        "truncate",
    )

    def __init__(self) -> None:
        self.error: tuple[int, str, str] | None = None  # (status, content_type, body)
        self.slow = 0.0
        self.drop = self.truncate = False
        self.depth_legacy = self.ids_as_numbers = self.numbers_as_json = self.swap_times = False
        self.fewer_levels: float | None = None  # share of the asked levels served, in (0, 1)
        self.as_strings = False
        self.trade_lost = False


NO_FAULTS = Plan()


class Injector:
    def __init__(self, cfg: FaultConfig, default_seed: int) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed if cfg.seed is not None else default_seed * 7919 + 17)
        c = cfg
        self.active = any(
            (
                c.server_error_rate,
                c.slow_rate,
                c.drop_rate,
                c.truncate_rate,
                c.depth_legacy_rate,
                c.ids_as_numbers_rate,
                c.numbers_as_json_rate,
                c.ticker_swapped_times_rate,
                c.fewer_levels_rate,
                c.scalars_as_strings_rate,
                c.trade_lost_rate,
            )
        )

    def plan(self) -> Plan:
        if not self.active:
            return NO_FAULTS
        c, r = self.cfg, self.rng.random
        p = Plan()
        if c.server_error_rate and r() < c.server_error_rate:
            if r() < c.html_error_share:
                status, body = HTML_5XX[int(r() * len(HTML_5XX))]
                p.error = (status, "text/html", body)
            else:
                status, code, msg = JSON_5XX[int(r() * len(JSON_5XX))]
                p.error = (status, "application/json", f'{{"code":{code},"msg":"{msg}"}}')
        if c.slow_rate and r() < c.slow_rate:
            p.slow = c.slow_delay_s
        if c.drop_rate and r() < c.drop_rate:
            p.drop = True
        elif c.truncate_rate and r() < c.truncate_rate:
            p.truncate = True
        p.depth_legacy = bool(c.depth_legacy_rate) and r() < c.depth_legacy_rate
        p.ids_as_numbers = bool(c.ids_as_numbers_rate) and r() < c.ids_as_numbers_rate
        p.numbers_as_json = bool(c.numbers_as_json_rate) and r() < c.numbers_as_json_rate
        p.swap_times = bool(c.ticker_swapped_times_rate) and r() < c.ticker_swapped_times_rate
        if c.fewer_levels_rate and r() < c.fewer_levels_rate:
            p.fewer_levels = 0.05 + 0.9 * r()
        p.as_strings = bool(c.scalars_as_strings_rate) and r() < c.scalars_as_strings_rate
        p.trade_lost = bool(c.trade_lost_rate) and r() < c.trade_lost_rate
        return p


# A JSON string holding a plain decimal number, not the value of "id" (ids as numbers are their own
# variation) nor a key (followed by ':').
_DECIMAL_STRING = re.compile(r'(?<!"id":)"(-?[0-9]+(?:\.[0-9]+)?)"(?!:)')
# A JSON integer as an object member's value or a list element; true and false.
_INTEGER = re.compile(r"(?<=[:\[,])(-?[0-9]+)(?=[,}\]])")


def numbers_as_json(body: str) -> str:
    """Decimal strings -> JSON numbers, on the rendered text: the same digits, so the same exact value
    (a float in between could change it); ids and symbols untouched."""
    return _DECIMAL_STRING.sub(r"\1", body)


def scalars_as_strings(body: str) -> str:
    """The other way round: integers (times, counts, ids) -> strings, true -> "true", false -> 0."""
    body = _INTEGER.sub(r'"\1"', body)
    return body.replace(":true", ':"true"').replace(":false", ":0")
