"""Configuration of the JEX simulator: the market (`SimConfig`) and the faults it injects (`FaultConfig`).

Both are plain dataclasses with defaults, so tests build exactly the exchange they need and the
CLI maps flags onto them one to one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

# `--faults` keys -> FaultConfig fields (rates are probabilities per /api/ response).
_FAULT_KEYS = {
    "5xx": "server_error_rate",
    "html": "html_error_share",
    "slow": "slow_rate",
    "delay": "slow_delay_s",
    "drop": "drop_rate",
    "truncate": "truncate_rate",
    "depth": "depth_legacy_rate",
    "idnum": "ids_as_numbers_rate",
    "numbers": "numbers_as_json_rate",
    "swaptimes": "ticker_swapped_times_rate",
    "fewer": "fewer_levels_rate",
    "strings": "scalars_as_strings_rate",
    "tradelost": "trade_lost_rate",
    "wsdrop": "ws_drop_s",
    "wsstall": "ws_stall_s",
    "wsstalllen": "ws_stall_len_s",
    "wsdup": "ws_dup_rate",
    "wsreorder": "ws_reorder_rate",
    "skew": "clock_skew_ms",
    "seed": "seed",
}
_VARIANT_FIELDS = ("depth_legacy_rate", "ids_as_numbers_rate", "numbers_as_json_rate", "ticker_swapped_times_rate")
# How X-MBX-USED-WEIGHT(-1M) are sent: 'exact' (both: the IP's weight in the window), 'live-2019'
# (X-Mbx-Used-Weight: the weight, X-Mbx-Used-Weight-1m: the limit, as recorded from the live
# exchange), 'legacy' or '1m' (only that one), 'none', 'stuck' (both: always the limit).
WEIGHT_HEADER_MODES = ("exact", "live-2019", "legacy", "1m", "none", "stuck")
MARKETS = ("chain", "slots")
# Every habit recorded from the live exchange (JEX-FIELD-NOTES.md), at once, on every answer.
PROFILES: dict[str, dict[str, object]] = {
    "default": {},
    "live-2019": {
        "weight_headers": "live-2019",
        "depth_legacy_rate": 1.0,
        "fewer_levels_rate": 1.0,
        "ids_as_numbers_rate": 1.0,
        "numbers_as_json_rate": 1.0,
        "ticker_swapped_times_rate": 1.0,
    },
}

FAULTS_HELP = (
    "Comma-separated faults, e.g. '5xx=0.05,slow=0.02,drop=0.01,truncate=0.01,variants'. "
    "Keys (rates are shares of /api/ responses): 5xx (5xx answers), html (share of those with an "
    "HTML body, default 0.5), slow (delayed answers), delay (seconds, default 2), drop (connection "
    "closed mid-body), truncate (JSON cut short), depth (depth without lastUpdateId, 2-element "
    "levels), idnum (trade ids as JSON numbers), numbers (decimal strings as JSON numbers), "
    "swaptimes (24hr tickers with closeTime < openTime), fewer (fewer depth levels than asked), "
    'strings (integers and booleans as strings: "1551129538000", "true", and false as 0), '
    "skew (serverTime offset in ms), seed (fault RNG seed). Web sockets (data messages only): wsdrop "
    "(mean seconds between abrupt drops of a connection), wsstall / wsstalllen (mean seconds between "
    "silent stalls, and their length, default 10), wsdup (share of messages sent twice), wsreorder "
    "(share swapped with the next; user streams: a tick's events shuffled); numbers applies to "
    "stream messages too. 'variants' alone sets depth, idnum, numbers and swaptimes to 0.5; a bare "
    "key means 1.0."
)


@dataclass
class FaultConfig:
    """What goes wrong, and how often. Every rate is a probability per `/api/` response, except the
    `ws_*` ones, which apply to web-socket data messages (see `streams`), as does numbers_as_json_rate.

    Variations (the `*_rate` fields from `depth_legacy_rate` to `scalars_as_strings_rate`) change
    only the representation of an answer, never its values. Replace `Simulator.faults` at runtime to switch faults on or off.
    """

    server_error_rate: float = 0.0
    html_error_share: float = 0.5
    slow_rate: float = 0.0
    slow_delay_s: float = 2.0
    drop_rate: float = 0.0
    truncate_rate: float = 0.0
    depth_legacy_rate: float = 0.0
    ids_as_numbers_rate: float = 0.0
    numbers_as_json_rate: float = 0.0
    ticker_swapped_times_rate: float = 0.0
    fewer_levels_rate: float = 0.0
    scalars_as_strings_rate: float = 0.0
    trade_lost_rate: float = 0.0  # a TRADE request done, then answered 504 -1006 (outcome unknown)
    # Web sockets (streams.py), in simulated time, per connection; 0 = off.
    ws_drop_s: float = 0.0  # mean seconds between abrupt drops (no close frame), exponential
    ws_stall_s: float = 0.0  # mean seconds between silent stalls (open, pings answered, no data)
    ws_stall_len_s: float = 10.0  # a stall's length; what happens during it is never sent
    ws_dup_rate: float = 0.0  # share of data messages sent twice
    ws_reorder_rate: float = 0.0  # share swapped with the next message (user stream: a tick's events shuffled)
    clock_skew_ms: int = 0
    seed: int | None = None  # None: derived from SimConfig.seed
    # Habits of a whole server rather than of single answers (not drawn: always on when set).
    weight_headers: str = "exact"  # see WEIGHT_HEADER_MODES
    page_cap: int | None = None  # at most this many trades / klines per page, whatever was asked
    refuse_expired: bool = False  # market data of expired (still listed) options: -7013
    # ticker/price and 24hr ticker of these symbols stay as at their listing, whatever they trade (as
    # if every trade were at one price and the 24h volume were stuck): no signal shows them trade
    frozen_prices: tuple[str, ...] = ()

    @classmethod
    def profile(cls, name: str, **overrides: object) -> FaultConfig:
        """The faults of a named profile (see PROFILES), with ``overrides`` on top."""
        if name not in PROFILES:
            raise ValueError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}")
        return cls(**{**PROFILES[name], **overrides})  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name.endswith("_rate") or f.name == "html_error_share":
                v = getattr(self, f.name)
                if not 0.0 <= v <= 1.0:
                    raise ValueError(f"{f.name} must be within [0, 1], got {v}")
        for name in ("slow_delay_s", "ws_drop_s", "ws_stall_s", "ws_stall_len_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.weight_headers not in WEIGHT_HEADER_MODES:
            raise ValueError(
                f"weight_headers must be one of {', '.join(WEIGHT_HEADER_MODES)}, got {self.weight_headers!r}"
            )
        if self.page_cap is not None and self.page_cap < 1:
            raise ValueError(f"page_cap must be >= 1, got {self.page_cap}")

    @classmethod
    def parse(cls, spec: str, base: FaultConfig | None = None) -> FaultConfig:
        """Parse the compact `--faults` syntax (see FAULTS_HELP) on top of ``base`` (a profile);
        raises ValueError with a clear message."""
        kwargs: dict[str, object] = dataclasses.asdict(base) if base is not None else {}
        for raw in spec.split(","):
            item = raw.strip()
            if not item:
                continue
            key, sep, value = item.partition("=")
            key = key.strip().lower()
            if key == "variants":
                rate = float(value) if sep else 0.5
                for name in _VARIANT_FIELDS:
                    kwargs[name] = rate
                continue
            if key not in _FAULT_KEYS:
                raise ValueError(f"unknown fault {key!r}; known: {', '.join(sorted(_FAULT_KEYS))}, variants")
            name = _FAULT_KEYS[key]
            try:
                if name in ("clock_skew_ms", "seed"):
                    kwargs[name] = int(value)
                else:
                    kwargs[name] = float(value) if sep else 1.0
            except ValueError:
                raise ValueError(f"fault {key!r} needs a number, got {value!r}") from None
        return cls(**kwargs)  # type: ignore[arg-type]


@dataclass
class SimConfig:
    """The simulated exchange. The market is a pure function of (seed, time) given these fields.

    Slot k is listed at k * listing_interval_s (Unix epoch) and expires `symbols` listings later,
    so `symbols` options trade at any instant; expired ones stay listed for grace_s. The chain
    market lists its slots in groups (a chain of 2 x strikes options of one expiry, listed and
    expiring together, every 2 x strikes listings), so about `symbols` trade at once.
    """

    seed: int = 1
    history_days: float = 7.0  # trades exist from (start - history_days), floored to the minute
    symbols: int = 28  # options trading at once
    weight_limit: int | None = 1200  # requestsWeight per window; 0/None lifts all limits
    weight_window_s: int = 60  # the requestsWeight window: JEX's is a minute; shorter ones compress time in tests
    raw_limit: int | None = 5000  # rawRequests per 5 minutes; 0/None lifts it
    faults: FaultConfig = field(default_factory=FaultConfig)
    trades_per_minute: float = 7.0  # mean per trading symbol (each symbol has its own multiplier)
    silent_share: float = 0.1  # share of symbols that never trade
    listing_interval_s: float = 21600.0  # a new symbol every 6 h -> 7-day lifetime with 28 symbols
    grace_s: float = 86400.0  # expired symbols stay listed (status EXPIRED) this long
    start_ms: int | None = None  # anchor of the history window; None: wall clock at construction
    ban_base_s: float = 120.0  # first 418 ban; doubles with each ban
    ban_max_s: float = 3 * 86400.0
    ban_after: int = 3  # requests received while told to wait (Retry-After) before an IP is banned
    api_keys: tuple[str, ...] | None = None  # market data: None = any well-formed X-JEX-APIKEY is accepted
    accounts: dict[str, str] | None = None  # signed endpoints: key -> secret; None: the demo pair only
    trade_cache_buckets: int = 50_000  # LRU of generated (symbol, minute) trade lists
    # The market model: "chain" (chains of calls and puts per expiry on underlyings that move, priced
    # by Black-Scholes with a smile, trading near the money and near expiry in bursts: see chain.py)
    # or "slots" (one option per listing on a smooth price: small, fast markets for tests).
    market: str = "slots"
    strikes: int = 3  # chain: strikes per expiry (each with a call and a put)
    # chain: (symbol, start ms, end ms, factor): that symbol's activity multiplied over [start, end)
    boosts: tuple[tuple[str, int, int, float], ...] = ()
    # Web-socket streams and user data streams (streams.py, userstream.py); times are simulated.
    max_streams: int = 10  # streams per connection
    trade_push_ms: int = 100  # @optionTrade (and user stream) push cadence, real ms
    push_s: float = 1.0  # klines, tickers, depth: push cadence, real seconds
    ping_s: float = 180.0  # the server pings every ping_s
    pong_timeout_s: float = 600.0  # ... and closes a connection whose ping has no pong this long after
    lifetime_s: float = 86400.0  # every connection is closed this long after it opened
    listen_key_ttl_s: float = 3600.0  # a listenKey's validity, extended by this on every PUT

    def __post_init__(self) -> None:
        if self.symbols < 1:
            raise ValueError(f"symbols must be >= 1, got {self.symbols}")
        if self.history_days < 0:
            raise ValueError(f"history_days must be >= 0, got {self.history_days}")
        if self.trades_per_minute < 0:
            raise ValueError(f"trades_per_minute must be >= 0, got {self.trades_per_minute}")
        if not 0.0 <= self.silent_share <= 1.0:
            raise ValueError(f"silent_share must be within [0, 1], got {self.silent_share}")
        if self.listing_interval_s < 1:
            raise ValueError(f"listing_interval_s must be >= 1, got {self.listing_interval_s}")
        if self.market not in MARKETS:
            raise ValueError(f"market must be one of {', '.join(MARKETS)}, got {self.market!r}")
        if not 1 <= self.strikes <= 10:
            raise ValueError(f"strikes must be within 1..10, got {self.strikes}")
        if not 1 <= self.weight_window_s <= 3600:
            raise ValueError(f"weight_window_s must be within 1..3600, got {self.weight_window_s}")
        if self.max_streams < 1:
            raise ValueError(f"max_streams must be >= 1, got {self.max_streams}")
        if self.trade_push_ms < 1:
            raise ValueError(f"trade_push_ms must be >= 1, got {self.trade_push_ms}")
        for name in ("push_s", "ping_s", "pong_timeout_s", "lifetime_s", "listen_key_ttl_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("weight_limit", "raw_limit"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise ValueError(f"{name} must be >= 0, got {v}")

    @property
    def limits_enabled(self) -> bool:
        return bool(self.weight_limit)
