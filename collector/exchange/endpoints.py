"""Paths, weights and security of the endpoints the collector uses, read from the seed.

Weights are what the exchange charges; the governor reserves them before each request.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Security(enum.Enum):
    NONE = "NONE"
    MARKET_DATA = "MARKET_DATA"  # API key header, no signature
    SIGNED = "SIGNED"  # USER_DATA / TRADE: API key and HMAC-SHA256 signature


@dataclass(frozen=True)
class Endpoint:
    name: str  # metric label and error context
    path: str
    weight: int
    weight_all: int | None = None  # when the symbol parameter is omitted
    security: Security = Security.NONE
    trade: bool = False  # TRADE: it changes the account, so an unknown outcome is resolved, never retried
    orders: int = 0  # counts against the `orders` rate limits (placing an order)

    def weight_for(self, symbol: str | None) -> int:
        return self.weight if symbol is not None or self.weight_all is None else self.weight_all

    def cheapest(self, n_symbols: int) -> int:
        """Weight of asking for ``n_symbols`` symbols the cheapest way: one all-symbol call, or one each."""
        each = self.weight * n_symbols
        return each if self.weight_all is None else min(self.weight_all, each)

    def all_symbols_is_cheaper(self, n_symbols: int) -> bool:
        """One call without a symbol weighs less than one call for each of ``n_symbols``."""
        return self.weight_all is not None and self.weight_all < self.weight * n_symbols


PING = Endpoint("ping", "/api/v1/ping", 1)
TIME = Endpoint("time", "/api/v1/time", 1)
EXCHANGE_INFO = Endpoint("exchangeInfo", "/api/v1/exchangeInfo", 1)
OPTION_INFO = Endpoint("optionInfo", "/api/v1/optionInfo", 1)
DEPTH = Endpoint("depth", "/api/v1/option/depth", 1)
TRADES = Endpoint("trades", "/api/v1/option/trades", 1)
HISTORICAL_TRADES = Endpoint("historicalTrades", "/api/v1/option/historicalTrades", 5, security=Security.MARKET_DATA)
KLINES = Endpoint("klines", "/api/v1/option/klines", 1)
AVG_PRICE = Endpoint("avgPrice", "/api/v1/option/avgPrice", 1)
TICKER_24HR = Endpoint("ticker/24hr", "/api/v1/option/ticker/24hr", 1, weight_all=40)
TICKER_PRICE = Endpoint("ticker/price", "/api/v1/option/ticker/price", 1, weight_all=2)
BOOK_TICKER = Endpoint("ticker/bookTicker", "/api/v1/option/ticker/bookTicker", 1, weight_all=2)

# The account (USER_DATA / TRADE: signed). One path serves several methods (the order).
ORDER = Endpoint("order", "/api/v1/option/order", 1, security=Security.SIGNED)
PLACE_ORDER = Endpoint("order", "/api/v1/option/order", 1, security=Security.SIGNED, trade=True, orders=1)
CANCEL_ORDER = Endpoint("order", "/api/v1/option/order", 1, security=Security.SIGNED, trade=True)
TEST_ORDER = Endpoint("order/test", "/api/v1/option/order/test", 1, security=Security.SIGNED)
OPEN_ORDERS = Endpoint("openOrders", "/api/v1/option/openOrders", 5, security=Security.SIGNED)
HISTORY_ORDERS = Endpoint("historyOrders", "/api/v1/option/historyOrders", 5, security=Security.SIGNED)
RELEASE = Endpoint("release", "/api/v1/option/release", 1, security=Security.SIGNED, trade=True)
BACK = Endpoint("back", "/api/v1/option/back", 1, security=Security.SIGNED, trade=True)
POSITION = Endpoint("position", "/api/v1/option/position", 2, security=Security.SIGNED)
SHORT_CALL_INFO = Endpoint("info", "/api/v1/option/info", 1, security=Security.SIGNED)
RECORD = Endpoint("record", "/api/v1/option/record", 5, security=Security.SIGNED)
ACCOUNT = Endpoint("account", "/api/v1/account", 1, security=Security.SIGNED)
# The user data stream's listenKey (POST a new one, PUT to keep it 60 more minutes, DELETE): API key only.
USER_DATA_STREAM = Endpoint("userDataStream", "/api/v1/userDataStream", 1, security=Security.MARKET_DATA)

# Limits of the seed's parameters, checked before spending weight on a request that would fail.
DEPTH_LIMITS = (5, 10, 20, 50, 60)
MAX_TRADES = 60
MAX_HISTORICAL_TRADES = 500
MAX_KLINES = 1000
MAX_ACCOUNT_PAGE = 500  # openOrders, historyOrders, record
MAX_RECV_WINDOW = 60_000
