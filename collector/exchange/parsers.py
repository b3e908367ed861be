"""Pure parsers: decoded JSON → the frozen records of ``collector.domain``.

Input is what ``json.loads(body, parse_float=Decimal)`` returns, so no float ever exists: numbers
arrive as ``str``, ``int`` or ``Decimal``. A float is refused rather than silently rounded.
Everything the seed or the field notes allow is accepted (every scalar as a string or a number,
booleans also as ``"true"``/``1``, ids as strings, pages in either order, depth with or without
``lastUpdateId`` and with 2- or 3-element levels, missing optional fields); anything else raises
``ParseError(endpoint, field, problem)``, naming the list entry at fault.

Two kinds of list answer are told apart. A *page* of data (trades, klines, the levels of a book) is
one fact: one bad entry refuses all of it, since storing the rest would leave a hole. A *listing*
(optionInfo, the all-symbol tickers, exchangeInfo's symbols and limits) is many independent facts:
it keeps its good entries in a ``Listing`` whose ``rejected`` names each bad one; only a listing
with no good entry at all is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from operator import attrgetter
from typing import Any, TypeVar

from collector.domain import (
    AccountInfo,
    AccountOrder,
    AvgPrice,
    Balance,
    BookTicker,
    DepthLevel,
    DepthSnapshot,
    ExchangeInfo,
    Kline,
    ListedSymbol,
    OptionRecord,
    OptionSymbol,
    OrderAck,
    Position,
    PriceTicker,
    RateLimit,
    RecentTrade,
    ShortCall,
    StreamKline,
    Ticker24h,
    Trade,
)
from collector.errors import ParseError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MISSING = object()
BIGINT = 2**63  # every integer column is a BIGINT: [-2**63, 2**63)
MAX_EXPONENT = 100  # |decimal| within [1e-100, 1e100), or 0: beyond is no price, quantity or volume
_OPTION_TYPES = {"LONGS": "CALL", "SHORTS": "PUT", "CALL": "CALL", "PUT": "PUT"}
_RATE_UNITS = {"second", "minute", "hour", "day"}
_TRUE = {"true", "1"}
_FALSE = {"false", "0"}
# Option names as the live exchange had them (BTC0925CALL, EOS0923CALLW) and as the seed shows
# them (BTCCALLM): underlying, optional MMDD of expiry, CALL/PUT, optional W (weekly) or M.
_OPTION_NAME = re.compile(r"^([A-Z]+?)(\d{4})?(CALL|PUT)([WM]?)$")
T = TypeVar("T")


class Listing(list[T]):
    """The good entries of a listing answer; ``rejected`` holds why each bad entry was refused,
    ``rejected_symbols`` the names of those whose symbol could still be read."""

    def __init__(
        self, items: Iterable[T] = (), rejected: Iterable[ParseError] = (), rejected_symbols: Iterable[str] = ()
    ) -> None:
        super().__init__(items)
        self.rejected: tuple[ParseError, ...] = tuple(rejected)
        self.rejected_symbols: frozenset[str] = frozenset(rejected_symbols)


# --- field readers -------------------------------------------------------------------------


def to_decimal(value: Any, endpoint: str, field: str, *, signed: bool = True) -> Decimal:
    """A finite Decimal from a str, int or Decimal; ``signed=False`` also refuses negatives."""
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise ParseError(endpoint, field, f"expected a decimal number, got {type(value).__name__}")
    if isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ParseError(endpoint, field, f"not a decimal number: {value!r}") from None
    else:
        result = Decimal(value)
    if not result.is_finite():
        raise ParseError(endpoint, field, f"not finite: {value!r}")
    if result and not -MAX_EXPONENT <= result.adjusted() < MAX_EXPONENT:
        # No price or quantity is anywhere near this; PostgreSQL's NUMERIC would overflow on some.
        raise ParseError(endpoint, field, f"absurd magnitude: {_short(value)}")
    if not signed and result < 0:
        raise ParseError(endpoint, field, f"negative: {value!r}")
    return result


def to_int(value: Any, endpoint: str, field: str) -> int:
    """An integer from an int, an integral Decimal or a string of digits (ids beyond 2**53)."""
    if isinstance(value, bool):
        raise ParseError(endpoint, field, "expected an integer, got bool")
    if isinstance(value, int):
        result = value
    elif isinstance(value, str):
        text = value.strip()
        if not (text.lstrip("-").isdigit() and text.isascii() and len(text) <= 20):
            raise ParseError(endpoint, field, f"not an integer: {_short(value)}")
        result = int(text)
    elif (
        isinstance(value, Decimal)
        and value.is_finite()
        and value.adjusted() < 20
        and value == value.to_integral_value()
    ):
        result = int(value)
    else:
        raise ParseError(endpoint, field, f"expected an integer, got {_short(value)}")
    if not -BIGINT <= result < BIGINT:  # every integer is stored as a BIGINT
        raise ParseError(endpoint, field, f"out of the 64-bit range: {_short(value)}")
    return result


def to_id(value: Any, endpoint: str, field: str) -> int:
    """An exchange id (trade id, update id): an integer >= 0."""
    result = to_int(value, endpoint, field)
    if result < 0:
        raise ParseError(endpoint, field, f"negative id: {result}")
    return result


def _short(value: Any) -> str:
    """repr() of a hostile value, cut so an error stays one readable line."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def ms_to_datetime(value: Any, endpoint: str, field: str) -> datetime:
    """Aware UTC datetime from epoch milliseconds, by integer arithmetic (no float rounding)."""
    ms = to_int(value, endpoint, field)
    if ms < 0:
        raise ParseError(endpoint, field, f"negative timestamp: {ms}")
    try:
        return _EPOCH + timedelta(0, 0, 0, ms)  # milliseconds (positional: faster)
    except OverflowError:
        raise ParseError(endpoint, field, f"timestamp out of range: {ms}") from None


def _get(obj: Mapping[str, Any], key: str, endpoint: str, *, required: bool = True) -> Any:
    value = obj.get(key, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise ParseError(endpoint, key, "missing")
        return None
    return value


def _obj(value: Any, endpoint: str, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ParseError(endpoint, field, f"expected an object, got {type(value).__name__}")
    return value


def _list(value: Any, endpoint: str, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise ParseError(endpoint, field, f"expected a list, got {type(value).__name__}")
    return value


def _str(value: Any, endpoint: str, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ParseError(endpoint, field, f"expected a non-empty string, got {value!r}")
    return value


def _opt_dec(obj: Mapping[str, Any], key: str, endpoint: str, *, signed: bool = True) -> Decimal | None:
    value = _get(obj, key, endpoint, required=False)
    return None if value is None else to_decimal(value, endpoint, key, signed=signed)


def _opt_time(obj: Mapping[str, Any], key: str, endpoint: str) -> datetime | None:
    value = _get(obj, key, endpoint, required=False)
    return None if value is None else ms_to_datetime(value, endpoint, key)


def to_bool(value: Any, endpoint: str, field: str) -> bool:
    """A boolean from true/false, "true"/"false" (any case), 1/0 or "1"/"0"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, Decimal)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ParseError(endpoint, field, f"expected a boolean, got {_short(value)}")


def _opt_bool(obj: Mapping[str, Any], key: str, endpoint: str) -> bool | None:
    value = _get(obj, key, endpoint, required=False)
    return None if value is None else to_bool(value, endpoint, key)


def _text(value: Any, endpoint: str, field: str) -> str:
    """A non-empty string; a number (a status sent as 1) becomes its decimal text."""
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return str(value)
    return _str(value, endpoint, field)


def _entry_name(i: int, item: Any) -> str:
    """How an error names a list entry: its index, and its symbol when it has a readable one."""
    symbol = item.get("symbol") if isinstance(item, Mapping) else None
    return f"[{i}] {symbol}" if isinstance(symbol, str) and symbol else f"[{i}]"


def _listing(items: list[Any], endpoint: str, parse: Callable[[Any], T]) -> Listing[T]:
    """Parse each entry on its own; keep the good ones. All bad (and some there): refuse the answer."""
    good: list[T] = []
    rejected: list[ParseError] = []
    names: list[str] = []
    for i, item in enumerate(items):
        try:
            good.append(parse(item))
        except ParseError as exc:
            rejected.append(exc.at(_entry_name(i, item)))
            symbol = item.get("symbol") if isinstance(item, Mapping) else None
            if isinstance(symbol, str) and symbol:
                names.append(symbol)
    if rejected and not good:
        raise rejected[0]
    return Listing(good, rejected, names)


def _page(items: list[Any], parse: Callable[[int, Any], T]) -> list[T]:
    """Parse every entry of a page of data; the first bad one refuses the page, naming the entry."""
    out: list[T] = []
    for i, item in enumerate(items):
        try:
            out.append(parse(i, item))
        except ParseError as exc:
            raise exc.at(_entry_name(i, item)) from None
    return out


def _one_or_many(payload: Any, endpoint: str, parse: Callable[[Mapping[str, Any]], T]) -> Listing[T]:
    """Ticker endpoints answer an object for one symbol (refused whole if bad) and a listing without one."""
    if isinstance(payload, Mapping):
        return Listing([parse(payload)])
    return _listing(_list(payload, endpoint, "<body>"), endpoint, lambda item: parse(_obj(item, endpoint, "<entry>")))


# --- endpoints -----------------------------------------------------------------------------


def parse_server_time(payload: Any) -> datetime:
    ep = "time"
    return ms_to_datetime(_get(_obj(payload, ep, "<body>"), "serverTime", ep), ep, "serverTime")


def parse_rate_limit(item: Any, endpoint: str = "exchangeInfo") -> RateLimit:
    obj = _obj(item, endpoint, "rateLimits[]")
    interval = _text(_get(obj, "interval", endpoint), endpoint, "interval")
    if interval.lower() not in _RATE_UNITS:
        raise ParseError(endpoint, "interval", f"unknown rate-limit interval {interval!r}")
    interval_num = to_int(_get(obj, "intervalNum", endpoint, required=False) or 1, endpoint, "intervalNum")
    limit = to_int(_get(obj, "limit", endpoint), endpoint, "limit")
    if interval_num <= 0 or limit < 0:
        raise ParseError(endpoint, "limit", f"nonsensical limit {limit} per {interval_num} {interval}")
    return RateLimit(
        rate_limit_type=_str(_get(obj, "rateLimitType", endpoint), endpoint, "rateLimitType"),
        interval=interval,
        interval_num=interval_num,
        limit=limit,
    )


def _listed_symbol(item: Any) -> ListedSymbol:
    ep = "exchangeInfo"
    s = _obj(item, ep, "optionSymbols[]")
    base_prec = _get(s, "baseAssetPrecision", ep, required=False)
    quote_prec = _get(s, "quotePrecision", ep, required=False)
    base = _get(s, "baseAsset", ep, required=False)
    quote = _get(s, "quoteAsset", ep, required=False)
    return ListedSymbol(
        symbol=_str(_get(s, "symbol", ep), ep, "symbol"),
        status=_text(_get(s, "status", ep), ep, "status"),
        base_asset=None if base is None else _text(base, ep, "baseAsset"),
        quote_asset=None if quote is None else _text(quote, ep, "quoteAsset"),
        base_asset_precision=None if base_prec is None else to_int(base_prec, ep, "baseAssetPrecision"),
        quote_precision=None if quote_prec is None else to_int(quote_prec, ep, "quotePrecision"),
    )


def parse_exchange_info(payload: Any) -> ExchangeInfo:
    """Rate limits and option symbols are listings: a bad entry is dropped (``rejected``), not the answer."""
    ep = "exchangeInfo"
    obj = _obj(payload, ep, "<body>")
    limits = _listing(_list(_get(obj, "rateLimits", ep), ep, "rateLimits"), ep, lambda i: parse_rate_limit(i, ep))
    raw_symbols = _get(obj, "optionSymbols", ep, required=False)
    symbols = _listing(_list(raw_symbols if raw_symbols is not None else [], ep, "optionSymbols"), ep, _listed_symbol)
    timezone = _get(obj, "timezone", ep, required=False)
    return ExchangeInfo(
        server_time=_opt_time(obj, "serverTime", ep),
        timezone=None if timezone is None else _str(timezone, ep, "timezone"),
        rate_limits=tuple(limits),
        option_symbols=tuple(symbols),
        rejected=limits.rejected + symbols.rejected,
        rejected_symbols=symbols.rejected_symbols,
    )


def terms_from_name(symbol: str) -> tuple[str | None, bool | None]:
    """(underlying, weekly) as the name spells them, or (None, None) for a name of another shape.

    Only a fallback: optionInfo's own fields win wherever it gives them.
    """
    match = _OPTION_NAME.match(symbol)
    if match is None:
        return None, None
    return match.group(1), match.group(4) == "W"


def _option_symbol(item: Any) -> OptionSymbol:
    ep = "optionInfo"
    obj = _obj(item, ep, "<entry>")
    symbol = _str(_get(obj, "symbol", ep), ep, "symbol")
    raw_type = _get(obj, "type", ep, required=False)
    if raw_type is not None:
        raw_type = _text(raw_type, ep, "type")
    desc = _get(obj, "optionDesc", ep, required=False)
    release = _get(obj, "releaseOption", ep, required=False)
    margin = None
    if release is not None:
        margin = _get(_obj(release, ep, "releaseOption"), "assetMarginName", ep, required=False)
        margin = None if margin is None else _text(margin, ep, "releaseOption.assetMarginName")
    named, weekly = terms_from_name(symbol)
    underlying, source = (margin, "optionInfo") if margin else (named, "name" if named else None)
    return OptionSymbol(
        symbol=symbol,
        status=_text(_get(obj, "status", ep), ep, "status"),
        option_type=_OPTION_TYPES.get(raw_type.upper()) if raw_type else None,
        raw_type=raw_type,
        expiry_time=_opt_time(obj, "exertionTime", ep),
        description=None if desc is None else str(desc),
        can_release=_opt_bool(obj, "canRelease", ep),
        underlying=underlying,
        underlying_source=source,
        weekly=weekly,
    )


def parse_option_info(payload: Any) -> Listing[OptionSymbol]:
    """A listing: one malformed entry is rejected (named in ``rejected``), the others kept."""
    ep = "optionInfo"
    return _listing(_list(payload, ep, "<body>"), ep, _option_symbol)


def _levels(value: Any, endpoint: str, side: str) -> tuple[DepthLevel, ...]:
    """A side of the book is a page: one bad level refuses the snapshot (the field names the level)."""
    levels = []
    for i, level in enumerate(_list(value, endpoint, side)):
        field = f"{side}[{i}]"
        if not isinstance(level, list) or len(level) < 2:
            raise ParseError(endpoint, field, f"expected [price, qty, ...], got {_short(level)}")
        levels.append(
            DepthLevel(
                price=to_decimal(level[0], endpoint, f"{field}.price", signed=False),
                qty=to_decimal(level[1], endpoint, f"{field}.qty", signed=False),
            )
        )
    return tuple(levels)


def parse_depth(payload: Any, symbol: str, captured_at: datetime) -> DepthSnapshot:
    ep = "depth"
    obj = _obj(payload, ep, "<body>")
    last_id = _get(obj, "lastUpdateId", ep, required=False)
    return DepthSnapshot(
        symbol=symbol,
        captured_at=captured_at,
        last_update_id=None if last_id is None else to_id(last_id, ep, "lastUpdateId"),
        bids=_levels(_get(obj, "bids", ep), ep, "bids"),
        asks=_levels(_get(obj, "asks", ep), ep, "asks"),
    )


def _buyer_maker(obj: Mapping[str, Any], ep: str) -> bool | None:
    if obj.get("buyerMaker") is not None:
        return _opt_bool(obj, "buyerMaker", ep)
    return _opt_bool(obj, "isBuyerMaker", ep)


def parse_recent_trades(payload: Any, symbol: str) -> list[RecentTrade]:
    """Order kept as sent: the real exchange sent newest first."""
    ep = "trades"

    def one(i: int, item: Any) -> RecentTrade:
        obj = _obj(item, ep, "<entry>")
        trade_id = _get(obj, "id", ep, required=False)
        return RecentTrade(
            symbol=symbol,
            price=to_decimal(_get(obj, "price", ep), ep, "price", signed=False),
            qty=to_decimal(_get(obj, "qty", ep), ep, "qty"),  # contract sells are negative
            time=ms_to_datetime(_get(obj, "time", ep), ep, "time"),
            trade_id=None if trade_id is None else to_id(trade_id, ep, "id"),
            buyer_maker=_buyer_maker(obj, ep),
        )

    return _page(_list(payload, ep, "<body>"), one)


def _historical_trade(item: Any, i: int, symbol: str) -> Trade:
    """One trade through the general field readers: what the answer means, or why it is refused."""
    ep = "historicalTrades"
    obj = _obj(item, ep, "<entry>")
    return Trade(
        symbol=symbol,
        trade_id=to_id(_get(obj, "id", ep), ep, "id"),
        price=to_decimal(_get(obj, "price", ep), ep, "price", signed=False),
        qty=to_decimal(_get(obj, "qty", ep), ep, "qty"),
        time=ms_to_datetime(_get(obj, "time", ep), ep, "time"),
        buyer_maker=_buyer_maker(obj, ep),
    )


# Bounds of ``to_decimal``'s magnitude check as values: |d| in [1e-100, 1e100), or d == 0.
_DEC_MIN = Decimal(f"1e-{MAX_EXPONENT}")
_DEC_MAX = Decimal(f"1e{MAX_EXPONENT}")
_DEC_MAX_NEG = -_DEC_MAX
_DEC_MIN_NEG = -_DEC_MIN


class _NotPlain(Exception):
    """The fast path met something it does not vouch for: the general readers decide."""


def parse_historical_trades(payload: Any, symbol: str) -> list[Trade]:
    """Sorted by id: the exchange's order within a page is not to be relied on.

    A trade in the shape the exchange sends (an object; ``id`` an int or a string of ASCII digits;
    ``price``/``qty`` decimal strings or Decimals within ``to_decimal``'s bounds; ``time`` an int;
    ``buyerMaker``/``isBuyerMaker`` a bool or absent) is read inline: this is the backfill's hot
    loop. Anything else goes through ``_historical_trade``, the general readers, which accept the
    same values with the same result and refuse the rest naming the field.
    """
    items = _list(payload, "historicalTrades", "<body>")
    result: list[Trade] = []
    append = result.append
    prev_id = -1
    ordered = True
    for i, obj in enumerate(items):
        try:
            if type(obj) is not dict:
                raise _NotPlain
            tid = obj.get("id")
            if type(tid) is str:
                if not (tid.isascii() and tid.isdigit() and len(tid) <= 19):  # digits only: >= 0
                    raise _NotPlain
                tid = int(tid)
            elif type(tid) is not int or tid < 0:
                raise _NotPlain
            if tid >= BIGINT:
                raise _NotPlain
            price = obj.get("price")
            qty = obj.get("qty")
            if type(price) is not Decimal:
                if type(price) is not str:
                    raise _NotPlain
                price = Decimal(price)  # InvalidOperation: refused below, with the field named
            if type(qty) is not Decimal:
                if type(qty) is not str:
                    raise _NotPlain
                qty = Decimal(qty)
            # Comparisons refuse NaN (they raise) and infinities (out of bounds) as well.
            if not (_DEC_MIN <= price < _DEC_MAX or price == 0):
                raise _NotPlain
            if not (_DEC_MIN <= qty < _DEC_MAX or _DEC_MAX_NEG < qty <= _DEC_MIN_NEG or qty == 0):
                raise _NotPlain
            ms = obj.get("time")
            if type(ms) is not int or ms < 0:
                raise _NotPlain
            when = _EPOCH + timedelta(0, 0, 0, ms)  # milliseconds; OverflowError: refused below
            maker = obj.get("buyerMaker")
            if maker is None:
                maker = obj.get("isBuyerMaker")
            if maker is not None and type(maker) is not bool:
                raise _NotPlain
            trade = Trade(symbol, tid, price, qty, when, maker)
        except (_NotPlain, ArithmeticError):  # InvalidOperation, OverflowError
            try:
                trade = _historical_trade(obj, i, symbol)
            except ParseError as exc:  # one bad trade refuses the page: no hole is ever stored
                raise exc.at(_entry_name(i, obj)) from None
        if trade.trade_id <= prev_id:
            ordered = False
        prev_id = trade.trade_id
        append(trade)
    if not ordered:
        result.sort(key=attrgetter("trade_id"))
    return result


_KLINE_DECIMALS = {
    1: "open",
    2: "high",
    3: "low",
    4: "close",
    5: "volume",
    7: "quote_volume",
    9: "taker_buy_base_volume",
    10: "taker_buy_quote_volume",
}


def parse_stream_trades(payload: Any, symbol: str) -> list[Trade]:
    """An ``<symbol>@optionTrade`` push: an array of ``{t, p, q, T, m}`` (ids as historicalTrades
    gives them), sorted by id. One bad entry refuses the push, as a bad entry refuses a page."""
    ep = "optionTrade"

    def one(i: int, item: Any) -> Trade:
        obj = _obj(item, ep, "<entry>")
        return Trade(
            symbol=symbol,
            trade_id=to_id(_get(obj, "t", ep), ep, "t"),
            price=to_decimal(_get(obj, "p", ep), ep, "p", signed=False),
            qty=to_decimal(_get(obj, "q", ep), ep, "q"),
            time=ms_to_datetime(_get(obj, "T", ep), ep, "T"),
            buyer_maker=_opt_bool(obj, "m", ep),
        )

    items = payload if isinstance(payload, list) else [payload]  # one trade alone, unwrapped: accepted
    return sorted(_page(items, one), key=attrgetter("trade_id"))


# Stream kline intervals: "1M" is a minute there (JEX-STREAMS-NOTES.md); REST spells it "1m".
_STREAM_INTERVALS = {"1M": "1m", "5M": "5m", "15M": "15m", "30M": "30m", "1H": "1h", "4H": "4h", "1D": "1d", "1W": "1w"}


def stream_interval(text: str) -> str:
    """A kline interval as a stream name or payload spells it, as REST spells it."""
    return _STREAM_INTERVALS.get(text, text)


def parse_stream_kline(payload: Any, symbol: str, interval: str) -> StreamKline:
    """An ``<symbol>@optionKline_<interval>`` push: the current kline (``k``), without trade count,
    taker volumes or a closed flag. ``interval`` is the subscribed one (the payload's ``i`` may be
    spelt either way)."""
    ep = "optionKline"
    k = _obj(_get(_obj(payload, ep, "<body>"), "k", ep), ep, "k")
    given = _get(k, "i", ep, required=False)
    if given is not None and stream_interval(str(given)) != interval:
        raise ParseError(ep, "k.i", f"interval {given!r} pushed on the {interval} stream")
    dec = {name: to_decimal(_get(k, key, ep), ep, f"k.{key}", signed=False) for key, name in _STREAM_KLINE.items()}
    return StreamKline(
        symbol=symbol,
        interval=interval,
        open_time=ms_to_datetime(_get(k, "t", ep), ep, "k.t"),
        close_time=ms_to_datetime(_get(k, "T", ep), ep, "k.T"),
        **dec,
    )


_STREAM_KLINE = {"o": "open", "h": "high", "l": "low", "c": "close", "v": "volume", "q": "quote_volume"}


def parse_stream_depth(payload: Any, symbol: str, captured_at: datetime) -> DepthSnapshot:
    """An ``<symbol>@optionDepth<levels>`` push: ``{bids, asks}``, no update id."""
    return parse_depth(payload, symbol, captured_at)


def parse_klines(payload: Any, symbol: str, interval: str) -> list[Kline]:
    """Sorted by open time."""
    ep = "klines"
    result = []
    for i, row in enumerate(_list(payload, ep, "<body>")):
        if not isinstance(row, list) or len(row) < 11:
            raise ParseError(ep, f"[{i}]", f"expected a list of at least 11 fields, got {_short(row)}")
        values = {
            name: to_decimal(row[idx], ep, f"[{i}].{name}", signed=False) for idx, name in _KLINE_DECIMALS.items()
        }
        trade_count = to_int(row[8], ep, f"[{i}].trade_count")
        if trade_count < 0:
            raise ParseError(ep, f"[{i}].trade_count", f"negative: {trade_count}")
        result.append(
            Kline(
                symbol=symbol,
                interval=interval,
                open_time=ms_to_datetime(row[0], ep, f"[{i}].open_time"),
                close_time=ms_to_datetime(row[6], ep, f"[{i}].close_time"),
                trade_count=trade_count,
                **values,
            )
        )
    result.sort(key=lambda k: k.open_time)
    return result


def parse_avg_price(payload: Any, symbol: str, captured_at: datetime) -> AvgPrice:
    ep = "avgPrice"
    obj = _obj(payload, ep, "<body>")
    return AvgPrice(
        symbol=symbol,
        captured_at=captured_at,
        mins=to_int(_get(obj, "mins", ep), ep, "mins"),
        price=to_decimal(_get(obj, "price", ep), ep, "price", signed=False),
    )


def parse_ticker_24hr(payload: Any, captured_at: datetime) -> Listing[Ticker24h]:
    """Times are stored as sent: the real exchange often had closeTime < openTime."""
    ep = "ticker/24hr"

    def one(obj: Mapping[str, Any]) -> Ticker24h:
        def dec(key: str, signed: bool = False) -> Decimal | None:
            return _opt_dec(obj, key, ep, signed=signed)

        return Ticker24h(
            symbol=_str(_get(obj, "symbol", ep), ep, "symbol"),
            captured_at=captured_at,
            price_change=dec("priceChange", signed=True),
            price_change_percent=dec("priceChangePercent", signed=True),
            weighted_avg_price=dec("weightedAvgPrice"),
            last_price=dec("lastPrice"),
            bid_price=dec("bidPrice"),
            bid_qty=dec("bidQty"),
            ask_price=dec("askPrice"),
            ask_qty=dec("askQty"),
            open_price=dec("openPrice"),
            high_price=dec("highPrice"),
            low_price=dec("lowPrice"),
            volume=dec("volume"),
            quote_volume=dec("quoteVolume"),
            open_time=_opt_time(obj, "openTime", ep),
            close_time=_opt_time(obj, "closeTime", ep),
            expiry_time=_opt_time(obj, "exertionTime", ep),
            perform_price=dec("performPrice"),
            underlying_price=dec("referencePrice"),
            strike_price=dec("exertionPrice"),
        )

    return _one_or_many(payload, ep, one)


def parse_price_tickers(payload: Any) -> Listing[PriceTicker]:
    ep = "ticker/price"
    return _one_or_many(
        payload,
        ep,
        lambda obj: PriceTicker(
            symbol=_str(_get(obj, "symbol", ep), ep, "symbol"),
            price=to_decimal(_get(obj, "price", ep), ep, "price", signed=False),
        ),
    )


def parse_book_tickers(payload: Any, captured_at: datetime) -> Listing[BookTicker]:
    ep = "ticker/bookTicker"
    return _one_or_many(
        payload,
        ep,
        lambda obj: BookTicker(
            symbol=_str(_get(obj, "symbol", ep), ep, "symbol"),
            captured_at=captured_at,
            bid_price=_opt_dec(obj, "bidPrice", ep, signed=False),
            bid_qty=_opt_dec(obj, "bidQty", ep, signed=False),
            ask_price=_opt_dec(obj, "askPrice", ep, signed=False),
            ask_qty=_opt_dec(obj, "askQty", ep, signed=False),
        ),
    )


# --- The account (signed endpoints) ----------------------------------------------------------


def _order(obj: Mapping[str, Any], ep: str) -> AccountOrder:
    def dec(key: str) -> Decimal:
        return to_decimal(_get(obj, key, ep), ep, key, signed=False)

    tif = _get(obj, "timeInForce", ep, required=False)
    kind = _get(obj, "type", ep, required=False)
    return AccountOrder(
        symbol=_str(_get(obj, "symbol", ep), ep, "symbol"),
        order_id=to_id(_get(obj, "orderId", ep), ep, "orderId"),
        price=dec("price"),
        orig_qty=dec("origQty"),
        executed_qty=dec("executedQty"),
        cummulative_quote_qty=dec("cummulativeQuoteQty"),
        status=_text(_get(obj, "status", ep), ep, "status"),
        time_in_force=None if tif is None else _text(tif, ep, "timeInForce"),
        type=None if kind is None else _text(kind, ep, "type"),
        side=_text(_get(obj, "side", ep), ep, "side"),
        time=_opt_time(obj, "time", ep) or _opt_time(obj, "transactTime", ep),
        update_time=_opt_time(obj, "updateTime", ep) or _opt_time(obj, "transactTime", ep),
        working=_opt_bool(obj, "working", ep),
    )


def parse_order(payload: Any, endpoint: str = "order") -> AccountOrder:
    """GET/DELETE order, and POST order with newOrderRespType=RESULT."""
    return _order(_obj(payload, endpoint, "<body>"), endpoint)


def parse_order_ack(payload: Any) -> OrderAck:
    ep = "order"
    obj = _obj(payload, ep, "<body>")
    return OrderAck(
        symbol=_str(_get(obj, "symbol", ep), ep, "symbol"),
        order_id=to_id(_get(obj, "orderId", ep), ep, "orderId"),
        transact_time=_opt_time(obj, "transactTime", ep),
    )


def parse_orders(payload: Any, endpoint: str) -> list[AccountOrder]:
    """openOrders / historyOrders: a page of the account's own data (one bad order refuses it),
    sorted by order id."""
    orders = _page(
        _list(payload, endpoint, "<body>"), lambda i, item: _order(_obj(item, endpoint, "<entry>"), endpoint)
    )
    return sorted(orders, key=attrgetter("order_id"))


def parse_short_call(payload: Any, endpoint: str) -> ShortCall:
    """``release``, ``back`` and ``info``: the account's short & call position in one option."""
    obj = _obj(payload, endpoint, "<body>")

    def dec(key: str, required: bool = True) -> Decimal | None:
        value = _get(obj, key, endpoint, required=required)
        return None if value is None else to_decimal(value, endpoint, key)

    def txt(key: str) -> str | None:
        value = _get(obj, key, endpoint, required=False)
        return None if value is None else _text(value, endpoint, key)

    return ShortCall(
        asset_margin=txt("assetMargin"),
        asset_base=txt("assetBase"),
        asset_option=_str(_get(obj, "assetOption", endpoint), endpoint, "assetOption"),
        release_amount=dec("releaseAmount") or Decimal(0),
        back_amount=dec("backAmount") or Decimal(0),
        margin_amount=dec("marginAmount") or Decimal(0),
        base_amount=dec("baseAmount") or Decimal(0),
        available_margin=dec("availableMargin", required=False),
        available_base=dec("availableBase", required=False),
        available_option=dec("availableOption", required=False),
        created_at=_opt_time(obj, "createdDate", endpoint),
    )


def parse_records(payload: Any) -> list[OptionRecord]:
    """``option/record``: a page of the account's shorts and calls, sorted by id."""
    ep = "record"

    def one(i: int, item: Any) -> OptionRecord:
        obj = _obj(item, ep, "<entry>")

        def dec(key: str) -> Decimal | None:
            return _opt_dec(obj, key, ep)

        def txt(key: str) -> str | None:
            value = _get(obj, key, ep, required=False)
            return None if value is None else _text(value, ep, key)

        return OptionRecord(
            record_id=to_id(_get(obj, "id", ep), ep, "id"),
            symbol=_str(_get(obj, "name", ep), ep, "name"),
            status=_text(_get(obj, "status", ep), ep, "status"),
            amount=to_decimal(_get(obj, "amount", ep), ep, "amount"),
            convert_ratio=dec("convertRatio"),
            rate_margin=dec("rateMargin"),
            base_amount=dec("baseAmount"),
            margin_amount=dec("marginAmount"),
            asset_margin=txt("assetMargin"),
            asset_base=txt("assetBase"),
            created_at=ms_to_datetime(_get(obj, "createdDate", ep), ep, "createdDate"),
        )

    return sorted(_page(_list(payload, ep, "<body>"), one), key=attrgetter("record_id"))


def parse_positions(payload: Any) -> list[Position]:
    """``option/position``: every position, or one symbol's (an object or a list of one)."""
    ep = "position"

    def one(obj: Mapping[str, Any]) -> Position:
        kind = _get(obj, "type", ep, required=False)
        index = _get(obj, "orderIndex", ep, required=False)
        strike = _get(obj, "execrPrice", ep, required=False)
        if strike is None:
            strike = _get(obj, "execPrice", ep, required=False)
        return Position(
            symbol=_str(_get(obj, "name", ep), ep, "name"),
            amount=to_decimal(_get(obj, "amount", ep), ep, "amount"),
            avail_amount=_opt_dec(obj, "availAmount", ep),
            profit=_opt_dec(obj, "profit", ep),
            profit_rate=_opt_dec(obj, "profitRate", ep),
            cost=_opt_dec(obj, "cost", ep),
            type=None if kind is None else _text(kind, ep, "type"),
            exec_time=_opt_time(obj, "execTime", ep),
            exec_price=None if strike is None else to_decimal(strike, ep, "execrPrice"),
            order_index=None if index is None else to_int(index, ep, "orderIndex"),
        )

    items = [payload] if isinstance(payload, Mapping) else _list(payload, ep, "<body>")
    return _page(items, lambda i, item: one(_obj(item, ep, "<entry>")))


_SECTIONS = (("contractBalances", "contract"), ("optionBalances", "option"), ("spotBalances", "spot"))


# A balance's fields as REST's account names them, and as the user data stream's events do.
_REST_BALANCE = ("asset", "free", "locked", "canTrade", "canDeposit", "canWithdraw")
_EVENT_BALANCE = ("a", "f", "l", "T", "D", "W")


def _balance(b: Mapping[str, Any], section: str, names: tuple[str, ...], ep: str) -> Balance:
    asset, free, locked, trade, deposit, withdraw = names
    return Balance(
        section=section,
        asset=_text(_get(b, asset, ep), ep, asset),
        free=to_decimal(_get(b, free, ep), ep, free),
        locked=to_decimal(_get(b, locked, ep), ep, locked),
        can_trade=_opt_bool(b, trade, ep),
        can_deposit=_opt_bool(b, deposit, ep),
        can_withdraw=_opt_bool(b, withdraw, ep),
    )


def parse_account(payload: Any) -> AccountInfo:
    """``GET /api/v1/account``: each section's balances (a section may be missing)."""
    ep = "account"
    obj = _obj(payload, ep, "<body>")
    balances: list[Balance] = []
    sections: list[str] = []
    for key, section in _SECTIONS:
        raw = _get(obj, key, ep, required=False)
        if raw is None:
            continue
        sections.append(section)

        def one(i: int, item: Any, section: str = section, key: str = key) -> Balance:
            return _balance(_obj(item, ep, f"{key}[]"), section, _REST_BALANCE, ep)

        balances.extend(_page(_list(raw, ep, key), one))
    return AccountInfo(update_time=_opt_time(obj, "updateTime", ep), balances=tuple(balances), sections=tuple(sections))


# --- the user data stream (JEX-STREAMS-NOTES.md) ------------------------------------------------


def parse_listen_key(payload: Any) -> str:
    """``POST /api/v1/userDataStream``: ``{"listenKey": "..."}``."""
    ep = "userDataStream"
    key = _str(_get(_obj(payload, ep, "<body>"), "listenKey", ep), ep, "listenKey")
    if not (key.isascii() and key.isalnum() and len(key) <= 256):
        raise ParseError(ep, "listenKey", f"not a key: {_short(key)}")
    return key


def parse_exec_report(payload: Any) -> tuple[int, AccountOrder]:
    """An ``execOptionReport`` event: (event ms, the order right after the change). The event has no
    order type, time in force or placing time (``time`` is the change's own for a NEW order only)."""
    ep = "execOptionReport"
    obj = _obj(payload, ep, "<body>")
    event = to_int(_get(obj, "E", ep), ep, "E")
    status = _text(_get(obj, "X", ep), ep, "X")
    changed = ms_to_datetime(_get(obj, "O", ep, required=False) or event, ep, "O")

    def dec(key: str) -> Decimal:
        return to_decimal(_get(obj, key, ep), ep, key, signed=False)

    return event, AccountOrder(
        symbol=_str(_get(obj, "s", ep), ep, "s"),
        order_id=to_id(_get(obj, "i", ep), ep, "i"),
        price=dec("p"),
        orig_qty=dec("q"),
        executed_qty=dec("z"),
        cummulative_quote_qty=dec("Z"),
        status=status,
        time_in_force=None,
        type=None,
        side=_text(_get(obj, "S", ep), ep, "S"),
        time=changed if status == "NEW" else None,
        update_time=changed,
    )


def parse_account_event(payload: Any, section: str = "option") -> tuple[int, AccountInfo]:
    """An ``accountOptionInfo`` event (``accountSpotInfo``/``accountContractInfo`` alike): (event
    ms, the section's balances)."""
    ep = "accountOptionInfo"
    obj = _obj(payload, ep, "<body>")
    event = to_int(_get(obj, "E", ep), ep, "E")

    def one(i: int, item: Any) -> Balance:
        return _balance(_obj(item, ep, "B[]"), section, _EVENT_BALANCE, ep)

    balances = _page(_list(_get(obj, "B", ep), ep, "B"), one)
    update = _opt_time(obj, "u", ep) or ms_to_datetime(event, ep, "E")
    return event, AccountInfo(update_time=update, balances=tuple(balances), sections=(section,))
