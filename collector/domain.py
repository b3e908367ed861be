"""Frozen records shared by the parsers (which make them) and the store (which writes them).

Prices and quantities are ``Decimal``; times are aware ``datetime`` in UTC. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

# Kline intervals the seed lists, with their length. Months are not in the seed.
INTERVALS: dict[str, timedelta] = {
    "1m": timedelta(minutes=1),
    "3m": timedelta(minutes=3),
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "30m": timedelta(minutes=30),
    "1h": timedelta(hours=1),
    "2h": timedelta(hours=2),
    "4h": timedelta(hours=4),
    "6h": timedelta(hours=6),
    "12h": timedelta(hours=12),
    "1d": timedelta(days=1),
    "3d": timedelta(days=3),
    "1w": timedelta(weeks=1),
}

STREAMS = ("klines", "trades", "depth", "tickers", "avg_price", "book_ticker", "account")
# The streams the exchange also pushes over web sockets (JEX-STREAMS-NOTES.md) that the daemon follows.
PUSHABLE = ("trades", "klines", "depth", "account")
# What a second of staleness costs per stream, for the adaptive schedule (trades: per trade per
# second of a symbol; the others per symbol a run serves): config's default, the planner's input.
DEFAULT_PRIORITIES = {
    "trades": 1.0,
    "klines": 0.02,
    "depth": 0.02,
    "tickers": 0.02,
    "avg_price": 0.01,
    "book_ticker": 0.01,
    "account": 0.05,
}


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One entry of ``exchangeInfo.rateLimits``."""

    rate_limit_type: str  # requestsWeight | rawRequests | orders (also REQUEST_WEIGHT, ...)
    interval: str  # second | minute | day (also SECOND, MINUTE, DAY)
    interval_num: int
    limit: int

    @property
    def window_seconds(self) -> float:
        unit = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}[self.interval.lower()]
        return float(unit * self.interval_num)


@dataclass(frozen=True, slots=True)
class ListedSymbol:
    """An entry of ``exchangeInfo.optionSymbols``."""

    symbol: str
    status: str
    base_asset: str | None
    quote_asset: str | None
    base_asset_precision: int | None
    quote_precision: int | None


@dataclass(frozen=True, slots=True)
class ExchangeInfo:
    server_time: datetime | None
    timezone: str | None
    rate_limits: tuple[RateLimit, ...]
    option_symbols: tuple[ListedSymbol, ...]
    rejected: tuple[Exception, ...] = ()  # ParseErrors of the entries left out (malformed)
    rejected_symbols: frozenset[str] = frozenset()  # names of malformed symbol entries


@dataclass(frozen=True, slots=True)
class OptionSymbol:
    """An entry of ``optionInfo``: what the option is, from the exchange rather than its name."""

    symbol: str
    status: str
    option_type: str | None  # 'CALL' (type LONGS) or 'PUT' (type SHORTS); None when unknown
    raw_type: str | None
    expiry_time: datetime | None  # exertionTime
    description: str | None = None
    can_release: bool | None = None
    underlying: str | None = None  # releaseOption.assetMarginName, else read off the name
    underlying_source: str | None = None  # 'optionInfo' or 'name': where ``underlying`` came from
    weekly: bool | None = None  # the name ends in W (BTC0925CALLW); None: the name does not say


@dataclass(frozen=True, slots=True)
class StreamKline:
    """A kline's prices and volumes: all the push stream shows of the open kline (no trade count,
    no taker volumes)."""

    symbol: str
    interval: str  # as REST spells it (1m, 1h)
    open_time: datetime
    close_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal


@dataclass(frozen=True, slots=True)
class Kline(StreamKline):
    """A kline as REST gives it: the stream's fields, and its counts."""

    trade_count: int
    taker_buy_base_volume: Decimal
    taker_buy_quote_volume: Decimal


@dataclass(frozen=True, slots=True)
class Trade:
    """A trade from ``historicalTrades``: it has an id."""

    symbol: str
    trade_id: int
    price: Decimal
    qty: Decimal
    time: datetime
    buyer_maker: bool | None


@dataclass(frozen=True, slots=True)
class RecentTrade:
    """A trade from ``option/trades``: the real exchange sent no id and no buyerMaker."""

    symbol: str
    price: Decimal
    qty: Decimal
    time: datetime
    trade_id: int | None = None
    buyer_maker: bool | None = None


@dataclass(frozen=True, slots=True)
class DepthLevel:
    price: Decimal
    qty: Decimal


@dataclass(frozen=True, slots=True)
class DepthSnapshot:
    symbol: str
    captured_at: datetime  # when the collector received it
    last_update_id: int | None
    bids: tuple[DepthLevel, ...]
    asks: tuple[DepthLevel, ...]


@dataclass(frozen=True, slots=True)
class Ticker24h:
    symbol: str
    captured_at: datetime
    price_change: Decimal | None
    price_change_percent: Decimal | None
    weighted_avg_price: Decimal | None
    last_price: Decimal | None
    bid_price: Decimal | None
    bid_qty: Decimal | None
    ask_price: Decimal | None
    ask_qty: Decimal | None
    open_price: Decimal | None
    high_price: Decimal | None
    low_price: Decimal | None
    volume: Decimal | None
    quote_volume: Decimal | None
    open_time: datetime | None
    close_time: datetime | None  # stored as sent: often before open_time on the real exchange
    expiry_time: datetime | None  # exertionTime
    perform_price: Decimal | None  # performPrice
    underlying_price: Decimal | None  # referencePrice
    strike_price: Decimal | None  # exertionPrice


@dataclass(frozen=True, slots=True)
class AvgPrice:
    symbol: str
    captured_at: datetime
    mins: int
    price: Decimal


@dataclass(frozen=True, slots=True)
class PriceTicker:
    symbol: str
    price: Decimal


@dataclass(frozen=True, slots=True)
class BookTicker:
    symbol: str
    captured_at: datetime
    bid_price: Decimal | None
    bid_qty: Decimal | None
    ask_price: Decimal | None
    ask_qty: Decimal | None


# --- The account (signed endpoints) ---------------------------------------------------------

ORDER_FINAL = frozenset({"FILLED", "CANCELED", "REJECTED", "EXPIRED"})  # an order in these never changes


@dataclass(frozen=True, slots=True)
class AccountOrder:
    """An order of the account (GET order, openOrders, historyOrders; POST order with RESULT)."""

    symbol: str
    order_id: int
    price: Decimal
    orig_qty: Decimal
    executed_qty: Decimal
    cummulative_quote_qty: Decimal  # the exchange's spelling, kept
    status: str  # NEW | PARTIALLY_FILLED | FILLED | CANCELED | ...
    time_in_force: str | None
    type: str | None
    side: str  # BUY | SELL
    time: datetime | None  # placed (transactTime for a new order)
    update_time: datetime | None
    working: bool | None = None

    @property
    def final(self) -> bool:
        return self.status in ORDER_FINAL


@dataclass(frozen=True, slots=True)
class OrderAck:
    """POST order with newOrderRespType=ACK: the order exists, nothing more is known yet."""

    symbol: str
    order_id: int
    transact_time: datetime | None


@dataclass(frozen=True, slots=True)
class ShortCall:
    """The answer to a short (``release``) or a call (``back``), and ``info`` without createdDate."""

    asset_margin: str | None
    asset_base: str | None
    asset_option: str
    release_amount: Decimal
    back_amount: Decimal
    margin_amount: Decimal
    base_amount: Decimal
    available_margin: Decimal | None
    available_base: Decimal | None
    available_option: Decimal | None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OptionRecord:
    """One historical short or call of the account (``option/record``)."""

    record_id: int
    symbol: str
    status: str  # as sent (the seed shows 2 for a call)
    amount: Decimal
    convert_ratio: Decimal | None
    rate_margin: Decimal | None
    base_amount: Decimal | None
    margin_amount: Decimal | None
    asset_margin: str | None
    asset_base: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Position:
    """One option position of the account (``option/position``)."""

    symbol: str
    amount: Decimal
    avail_amount: Decimal | None
    profit: Decimal | None
    profit_rate: Decimal | None
    cost: Decimal | None
    type: str | None  # CALL | PUT
    exec_time: datetime | None  # the option's exercise (expiry) time
    exec_price: Decimal | None  # the seed spells it execrPrice: the strike
    order_index: int | None = None


@dataclass(frozen=True, slots=True)
class Balance:
    section: str  # contract | option | spot
    asset: str
    free: Decimal
    locked: Decimal
    can_trade: bool | None
    can_deposit: bool | None
    can_withdraw: bool | None


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """``GET /api/v1/account``: the balances of every section."""

    update_time: datetime | None
    balances: tuple[Balance, ...]
    sections: tuple[str, ...] = ("contract", "option", "spot")  # the sections the answer held
