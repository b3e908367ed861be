"""Prometheus metrics, all on one registry that whatever serves ``/metrics`` exposes.

Exchange-client metrics are below; daemon metrics belong in this module too. A separate
registry (not the global default) keeps tests and embedded uses from colliding.
"""

from __future__ import annotations

import contextlib
from importlib.metadata import PackageNotFoundError, version
from platform import python_version

from prometheus_client import (
    GC_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)

REGISTRY = CollectorRegistry()
# The standard series of the process and the interpreter (process_*, python_*).
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
REGISTRY.register(GC_COLLECTOR)

# --- exchange client -----------------------------------------------------------------------

EXCHANGE_REQUESTS = Counter(
    "jex_exchange_requests_total",
    "HTTP requests sent to the exchange, by endpoint and outcome (HTTP status, or 'error' "
    "when no status was received).",
    ["endpoint", "status"],
    registry=REGISTRY,
)
EXCHANGE_LATENCY = Histogram(
    "jex_exchange_request_seconds",
    "Time from sending a request to having its whole body, by endpoint.",
    ["endpoint"],
    registry=REGISTRY,
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20),
)
EXCHANGE_RETRIES = Counter(
    "jex_exchange_retries_total",
    "Requests retried, by endpoint and reason (unavailable, rate_limited, banned).",
    ["endpoint", "reason"],
    registry=REGISTRY,
)
EXCHANGE_RATE_LIMITED = Counter(
    "jex_exchange_rate_limited_total",
    "HTTP 429 responses received.",
    registry=REGISTRY,
)
EXCHANGE_BANNED = Counter(
    "jex_exchange_banned_total",
    "HTTP 418 responses (IP bans) received.",
    registry=REGISTRY,
)
EXCHANGE_BAN_UNTIL = Gauge(
    "jex_exchange_ban_until_timestamp_seconds",
    "Unix time at which the current IP ban ends; 0 when not banned.",
    registry=REGISTRY,
)
EXCHANGE_PAUSED_UNTIL = Gauge(
    "jex_exchange_paused_until_timestamp_seconds",
    "Unix time before which nothing is sent (Retry-After of a 429 or 418); 0 when not paused.",
    registry=REGISTRY,
)
WEIGHT_USED = Gauge(
    "jex_exchange_weight_used",
    "Request weight counted in the current window (local reservations reconciled with X-MBX-USED-WEIGHT-*).",
    registry=REGISTRY,
)
WEIGHT_LAST_WINDOW = Gauge(
    "jex_exchange_weight_used_last_window",
    "Request weight this process sent in the last complete window (the figure the per-minute log line reports).",
    registry=REGISTRY,
)
WEIGHT_LIMIT = Gauge(
    "jex_exchange_weight_limit",
    "Announced request-weight limit per window (from exchangeInfo.rateLimits); 0 before it is known.",
    registry=REGISTRY,
)
WEIGHT_EFFECTIVE_LIMIT = Gauge(
    "jex_exchange_weight_effective_limit",
    "Weight the governor allows per window: the announced limit less the safety margin.",
    registry=REGISTRY,
)
RAW_REQUESTS_USED = Gauge(
    "jex_exchange_raw_requests_used",
    "Requests counted in the current raw-request window.",
    registry=REGISTRY,
)
PARSE_REJECTED_ENTRIES = Counter(
    "jex_parse_rejected_entries_total",
    "Malformed entries left out of a listing answer (the rest of it kept), by endpoint.",
    ["endpoint"],
    registry=REGISTRY,
)
WEIGHT_SOURCE = Gauge(
    "jex_governor_weight_source",
    "1 for what the weight count is reconciled with now: source='local' (no used-weight header is "
    "believed) or the believed header names joined by '+'; 0 for sources used before.",
    ["source"],
    registry=REGISTRY,
)
WEIGHT_HEADER_DISCOUNTED = Counter(
    "jex_governor_weight_header_discounted_total",
    "Times a used-weight header was found unbelievable (stuck, lagging, over the limit on a success, "
    "or disagreeing with the other) and its readings ignored.",
    ["header"],
    registry=REGISTRY,
)
GOVERNOR_WAITS = Counter(
    "jex_governor_waits_total",
    "Requests that had to wait for budget, a pause or a ban, by priority.",
    ["priority"],
    registry=REGISTRY,
)
GOVERNOR_WAIT_SECONDS = Counter(
    "jex_governor_wait_seconds_total",
    "Total time requests spent waiting, by priority.",
    ["priority"],
    registry=REGISTRY,
)
GOVERNOR_QUEUED = Gauge(
    "jex_governor_queued",
    "Requests waiting for budget now, by priority.",
    ["priority"],
    registry=REGISTRY,
)


# --- The daemon ----------------------------------------------------------------------------

ROWS_UPSERTED = Counter(
    "jex_rows_upserted_total",
    "Rows written (inserted or re-upserted) per table.",
    ["table"],
    registry=REGISTRY,
)
NEWEST_ROW = Gauge(
    "jex_stream_newest_row_timestamp_seconds",
    "Time of the newest row stored per stream and symbol (trade time, kline open time, capture time).",
    ["stream", "interval", "symbol"],
    registry=REGISTRY,
)
STREAM_LAG = Gauge(
    "jex_stream_lag_seconds",
    "Now minus the newest stored row's time, per stream and symbol.",
    ["stream", "interval", "symbol"],
    registry=REGISTRY,
)
STREAM_STALENESS = Gauge(
    "jex_stream_staleness_seconds",
    "Seconds since a poll last confirmed the stream held everything the exchange had (the health "
    "signal: unlike lag it stays low for a symbol that simply has no new trades).",
    ["stream", "interval", "symbol"],
    registry=REGISTRY,
)
JOB_DURATION = Histogram(
    "jex_job_duration_seconds",
    "Duration of daemon job runs.",
    ["job"],
    registry=REGISTRY,
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
JOB_FAILURES = Counter(
    "jex_job_failures_total",
    "Failed job runs (per symbol where the job is per symbol).",
    ["job", "error"],
    registry=REGISTRY,
)
JOB_INTERVAL = Gauge(
    "jex_job_interval_seconds",
    "Interval each job is scheduled at after budget planning.",
    ["job"],
    registry=REGISTRY,
)
TRADES_INTERVAL = Gauge(
    "jex_trades_poll_interval_seconds",
    "Interval the adaptive schedule gives each symbol's trades polls (busy symbols short, quiet long).",
    ["symbol"],
    registry=REGISTRY,
)
TRADES_RATE = Gauge(
    "jex_trades_rate_per_second",
    "Estimated trades per second of each symbol (what its polls found, smoothed over 5 minutes).",
    ["symbol"],
    registry=REGISTRY,
)
STREAM_BEHIND = Gauge(
    "jex_stream_behind_target",
    "1 when the schedule gives a job a longer interval than its target (the budget does not fit "
    "every target); for trades, when a symbol's polls are further apart than trades_sweep_seconds.",
    ["job"],
    registry=REGISTRY,
)
STREAM_TARGET = Gauge(
    "jex_job_target_seconds",
    "The interval each job asks for (its configured target).",
    ["job"],
    registry=REGISTRY,
)
PLANNED_WEIGHT = Gauge(
    "jex_planned_weight_per_minute",
    "Request weight per minute the current schedule needs.",
    registry=REGISTRY,
)
SYMBOLS = Gauge(
    "jex_symbols",
    "Symbols known to the daemon by state.",
    ["state"],
    registry=REGISTRY,
)
SYMBOLS_REFUSED = Counter(
    "jex_symbols_refused_total",
    "Symbols the exchange refused for good (-7012, -7013, -1121) and that are no longer asked for.",
    registry=REGISTRY,
)
DB_ERRORS = Counter(
    "jex_database_errors_total",
    "Database operations that failed because the database was unreachable.",
    registry=REGISTRY,
)
PUSH_CONNECTIONS = Gauge(
    "jex_push_connections",
    "Connections to the exchange's push streams, by state (up, connecting, backoff).",
    ["state"],
    registry=REGISTRY,
)
PUSH_MESSAGES = Counter(
    "jex_push_messages_total",
    "Push messages received, by kind (optionTrade, optionKline, optionDepth; unreadable: refused).",
    ["kind"],
    registry=REGISTRY,
)
PUSH_RECONNECTS = Counter(
    "jex_push_reconnects_total",
    "Push connections reopened, by reason (closed or broken, failed to open, stalled: silent too long, "
    "renewed: before the exchange's 24 h limit).",
    ["reason"],
    registry=REGISTRY,
)
TRADES_FIRST_SEEN = Counter(
    "jex_trades_first_seen_total",
    "Trades stored, by the source that stored them first: push; rest (REST, for a symbol not pushed then); "
    "repair (REST, made while the symbol's stream was up: what the push missed).",
    ["source"],
    registry=REGISTRY,
)
DB_UP = Gauge("jex_database_up", "1 when the last database operation succeeded.", registry=REGISTRY)


def collector_version() -> str:
    """The installed jex-collector's version ("unknown" from a source tree never installed)."""
    try:
        return version("jex-collector")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


BUILD = Info("jex_collector_build", "The collector's version and the Python it runs on.", registry=REGISTRY)
BUILD.info({"version": collector_version(), "python": python_version()})

# Series labelled with a symbol: removed when this process no longer polls the symbol (swept, handed
# to another collector, refused), so no expired symbol's staleness grows for ever.
PER_SYMBOL = [NEWEST_ROW, STREAM_LAG, STREAM_STALENESS, TRADES_INTERVAL, TRADES_RATE]


def stream_labels(stream: str) -> tuple[str, str]:
    """("klines", "1m") of a job's stream key "klines 1m"; (stream, "") of the others."""
    name, _, interval = stream.partition(" ")
    return name, interval


def forget_symbol(symbol: str) -> None:
    for metric in PER_SYMBOL:
        names = metric._labelnames
        for family in metric.collect():
            for sample in family.samples:
                if sample.labels.get("symbol") == symbol:
                    with contextlib.suppress(KeyError):
                        metric.remove(*(sample.labels[n] for n in names))
