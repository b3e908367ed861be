"""The signed endpoints of the seed (USER_DATA and TRADE), over `accounts`.

Every request names its key in ``X-JEX-APIKEY`` and signs the total parameter string (the query
string, then the body, without the ``signature`` itself) with HMAC-SHA256 of the account's secret;
``timestamp`` (ms) is required and must lie within ``recvWindow`` (default 5000, at most 60000)
before the server's clock, or 1 s after it. Refusals as JEX (and Binance) answer them: -2014 no or
malformed key, -2015 unknown key, -1102 a mandatory parameter missing, -1100 illegal characters,
-1130 an invalid value, -1021 a timestamp outside the window, -1022 a bad signature.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from collector.simulator.accounts import Account, AccountError, Accounts
from collector.simulator.market import Market, Option
from collector.simulator.wire import TICKS

_KEY_RE = re.compile(r"^[A-Za-z0-9]{1,128}$")
_INT_RE = re.compile(r"^[0-9]{1,20}$")
_DEC_RE = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,8})?$")
_SIGNATURE = re.compile(r"(^|&)signature=([^&]*)")
RECV_DEFAULT, RECV_MAX = 5000, 60_000
PAGE_DEFAULT = PAGE_MAX = 500

# path -> method -> (name, weight, trade?)
ROUTES: dict[str, dict[str, tuple[str, int, bool]]] = {
    "/api/v1/option/order": {"POST": ("order", 1, True), "GET": ("order", 1, False), "DELETE": ("order", 1, True)},
    "/api/v1/option/order/test": {"POST": ("order/test", 1, False)},
    "/api/v1/option/openOrders": {"GET": ("openOrders", 5, False)},
    "/api/v1/option/historyOrders": {"GET": ("historyOrders", 5, False)},
    "/api/v1/option/release": {"POST": ("release", 1, True)},
    "/api/v1/option/back": {"POST": ("back", 1, True)},
    "/api/v1/option/position": {"GET": ("position", 2, False)},
    "/api/v1/option/info": {"GET": ("info", 1, False)},
    "/api/v1/option/record": {"GET": ("record", 5, False)},
    "/api/v1/account": {"GET": ("account", 1, False)},
}


def _err(status: int, code: int, msg: str) -> AccountError:
    return AccountError(status, code, msg)


def mandatory(name: str) -> AccountError:
    return _err(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def verify(accounts: Accounts, key: str | None, query: str, body: str, params: dict[str, str], now: int) -> str:
    """The key of a correctly signed request in its window; raises AccountError otherwise."""
    if not key or not _KEY_RE.match(key):
        raise _err(401, -2014, "API-key format invalid.")
    secret = accounts.secret(key)
    if secret is None:
        raise _err(401, -2015, "Invalid API-key, IP, or permissions for action.")
    for name in ("timestamp", "signature"):
        if not params.get(name):
            raise mandatory(name)
    timestamp = _int(params, "timestamp")
    window = _int(params, "recvWindow") if params.get("recvWindow") else RECV_DEFAULT
    if window is None or window <= 0 or window > RECV_MAX:
        raise _err(400, -1130, "Data sent for parameter 'recvWindow' is not valid.")
    if timestamp is None or timestamp >= now + 1000 or now - timestamp > window:
        raise _err(400, -1021, "Timestamp for this request is outside of the recvWindow.")
    signature = ""
    payload = ""
    for part in (query, body):  # Binance's totalParams: the query string, then the body
        found = _SIGNATURE.search(part)
        if found:
            signature = found.group(2)
            part = part[: found.start()] + (part[found.end() :] if found.group(1) else part[found.end() + 1 :])
        payload += part
    expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature.lower(), expected):
        raise _err(400, -1022, "Signature for this request is not valid.")
    return key


def _int(params: dict[str, str], name: str, *, required: bool = False) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        if required:
            raise mandatory(name)
        return None
    if not _INT_RE.match(raw):
        raise _err(400, -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.")
    return int(raw)


def _decimal(params: dict[str, str], name: str) -> Decimal:
    raw = params.get(name)
    if not raw:
        raise mandatory(name)
    if not _DEC_RE.match(raw):
        raise _err(400, -1100, f"Illegal characters found in parameter '{name}'.")
    return Decimal(raw)


def _window(start: int | None, end: int | None) -> None:
    if start is not None and end is not None and start > end:
        raise _err(400, -1127, "Start time is greater than end time.")


def _page(rows: list, from_id: int | None, start: int | None, limit: int | None) -> list:
    """A page of ``rows`` (oldest first): from the id or the time asked, else the most recent ones
    ("only partial recent orders will be returned")."""
    n = limit or PAGE_DEFAULT
    return rows[:n] if from_id is not None or start is not None else rows[-n:]


class AccountApi:
    """The handlers; each takes (params, now, key) and returns (status, JSON-able)."""

    def __init__(self, market: Market, accounts: Accounts) -> None:
        self.market = market
        self.accounts = accounts

    def handler(self, path: str, method: str) -> Callable[[dict[str, str], int, str], tuple[int, Any]]:
        name = {"GET": "get", "POST": "post", "DELETE": "delete"}[method]
        return getattr(self, f"{name}_{path.removeprefix('/api/v1/').replace('option/', '').replace('/', '_')}")

    # ---- helpers -----------------------------------------------------------------------------
    def _option(self, params: dict[str, str], now: int, *, required: bool = True) -> Option | None:
        symbol = params.get("symbol")
        if not symbol:
            if required:
                raise mandatory("symbol")
            return None
        opt = self.market.lookup(symbol, now)
        if opt is None:
            raise _err(400, -1121, "Invalid symbol.")
        return opt

    def _account(self, key: str, now: int) -> Account:
        return self.accounts.get(key, now)

    def _order(self, account: Account, params: dict[str, str], now: int):
        opt = self._option(params, now)
        order_id = _int(params, "orderId", required=True)
        order = account.orders.get(order_id or -1)
        if order is None or opt is None or order.symbol != opt.name:
            raise _err(400, -2013, "Order does not exist.")
        return order

    # ---- orders --------------------------------------------------------------------------------
    def _new_order(self, params: dict[str, str], now: int) -> tuple[Option, str, int, int, str]:
        opt = self._option(params, now)
        assert opt is not None
        side = params.get("side")
        if not side:
            raise mandatory("side")
        if side not in ("BUY", "SELL"):
            raise _err(400, -1117, "Invalid side.")
        kind = params.get("type")
        if not kind:
            raise mandatory("type")
        if kind != "LIMIT":
            raise _err(400, -1116, "Invalid orderType.")
        qty, price = _decimal(params, "quantity"), _decimal(params, "price") * TICKS
        if qty <= 0 or qty != qty.to_integral_value():  # whole options (minQty 1)
            raise _err(400, -1013, "Filter failure: LOT_SIZE")
        if price <= 0 or price != price.to_integral_value():  # 4 decimals (quotePrecision 4)
            raise _err(400, -1013, "Filter failure: PRICE_FILTER")
        resp = params.get("newOrderRespType") or "ACK"
        if resp not in ("ACK", "RESULT"):
            raise _err(400, -1130, "Data sent for parameter 'newOrderRespType' is not valid.")
        if now >= opt.expiry:
            raise _err(400, -7013, "Option is past its exercise time.")
        return opt, side, int(qty), int(price), resp

    def post_order(self, params: dict[str, str], now: int, key: str) -> tuple[int, Any]:
        opt, side, qty, price, resp = self._new_order(params, now)
        order = self.accounts.place(self._account(key, now), opt, side, qty, price, now)
        if resp == "ACK":
            return 200, {"symbol": order.symbol, "orderId": order.order_id, "transactTime": now}
        body = order.json(id_as_text=False)
        for drop in ("time", "updateTime", "working"):
            body.pop(drop)
        return 200, {"symbol": body.pop("symbol"), "orderId": body.pop("orderId"), "transactTime": now, **body}

    def post_order_test(self, params: dict[str, str], now: int, key: str) -> tuple[int, Any]:
        self._new_order(params, now)
        return 200, {}

    def get_order(self, params: dict[str, str], now: int, key: str) -> tuple[int, Any]:
        account = self._account(key, now)
        return 200, self._order(account, params, now).json()

    def delete_order(self, params: dict[str, str], now: int, key: str) -> tuple[int, Any]:
        account = self._account(key, now)
        order = self.accounts.cancel(account, self._order(account, params, now), now)
        body = order.json(id_as_text=False)
        for drop in ("time", "updateTime", "working"):
            body.pop(drop)
        return 200, {"symbol": body.pop("symbol"), "orderId": body.pop("orderId"), "transactTime": now, **body}

    def _listing(self, params: dict[str, str], now: int, key: str, only_open: bool) -> tuple[int, Any]:
        opt = self._option(params, now)
        assert opt is not None
        account = self._account(key, now)
        from_id = _int(params, "orderId")
        start, end = _int(params, "startTime"), _int(params, "endTime")
        limit = _int(params, "limit")
        if limit is not None and not 1 <= limit <= PAGE_MAX:
            raise _err(400, -1130, "Data sent for parameter 'limit' is not valid.")
        _window(start, end)
        rows = [
            o
            for oid, o in sorted(account.orders.items())
            if o.symbol == opt.name
            and (not only_open or o.status in ("NEW", "PARTIALLY_FILLED"))
            and (from_id is None or oid >= from_id)
            and (start is None or o.time >= start)
            and (end is None or o.time <= end)
        ]
        return 200, [o.json() for o in _page(rows, from_id, start, limit)]

    def get_openOrders(self, params: dict[str, str], now: int, key: str) -> tuple[int, Any]:  # noqa: N802
        return self._listing(params, now, key, only_open=True)

    def get_historyOrders(self, params: dict[str, str], now: int, key: str) -> tuple[int, Any]:  # noqa: N802
        return self._listing(params, now, key, only_open=False)

    # ---- shorts and calls ----------------------------------------------------------------------
    def _amount(self, params: dict[str, str]) -> int:
        amount = _int(params, "amount", required=True)
        if not amount:
            raise _err(400, -1130, "Data sent for parameter 'amount' is not valid.")
        return amount

    def _releasable(self, params: dict[str, str], now: int) -> Option:
        opt = self._option(params, now)
        assert opt is not None
        if opt.k % 3 != 0:  # optionInfo says canRelease false: no releaseOption
            raise _err(400, -1, "This option can not be released.")
        if now >= opt.expiry:
            raise _err(400, -7013, "Option is past its exercise time.")
        return opt

    def post_release(self, params: dict[str, str], now: int, key: str) -> tuple[int, Any]:
        opt = self._releasable(params, now)
        return 200, self.accounts.release(self._account(key, now), opt, self._amount(params), now)

    def post_back(self, params: dict[str, str], now: int, key: str) -> tuple[int, Any]:
        opt = self._releasable(params, now)
        return 200, self.accounts.back(self._account(key, now), opt, self._amount(params), now)

    def get_info(self, params: dict[str, str], now: int, key: str) -> tuple[int, Any]:
        opt = self._option(params, now)
        assert opt is not None
        return 200, self.accounts.info(self._account(key, now), opt)

    def get_record(self, params: dict[str, str], now: int, key: str) -> tuple[int, Any]:
        opt = self._option(params, now)
        assert opt is not None
        account = self._account(key, now)
        from_id = _int(params, "fromId")
        start, end = _int(params, "startTime"), _int(params, "endTime")
        limit = _int(params, "limit")
        if limit is not None and not 1 <= limit <= PAGE_MAX:
            raise _err(400, -1130, "Data sent for parameter 'limit' is not valid.")
        _window(start, end)
        rows = [
            r
            for r in account.records
            if r.symbol == opt.name
            and (from_id is None or r.record_id >= from_id)
            and (start is None or r.created >= start)
            and (end is None or r.created <= end)
        ]
        return 200, [r.json() for r in _page(rows, from_id, start, limit)]

    # ---- holdings ----------------------------------------------------------------------------------
    def get_position(self, params: dict[str, str], now: int, key: str) -> tuple[int, Any]:
        opt = self._option(params, now, required=False)
        return 200, self.accounts.positions(self._account(key, now), now, opt.name if opt else None)

    def get_account(self, params: dict[str, str], now: int, key: str) -> tuple[int, Any]:
        return 200, self.accounts.account_json(self._account(key, now))
