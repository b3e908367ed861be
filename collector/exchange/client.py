"""The JEX REST client: HTTP only, on a ``ClientSession`` owned by the caller.

Each request reserves its weight from the governor before it is sent, has explicit timeouts, and is
decoded with ``parse_float=Decimal`` so no float ever exists. aiohttp exceptions stop here: they
become ``ExchangeUnavailable`` (``raise ... from exc``). Transient failures are retried with capped,
jittered exponential backoff; 429/418 make the governor hold every request, then the call is retried;
other 4xx are ``ExchangeRejected`` and never retried. See ``collector.errors`` for the tree.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import math
import random
import re
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import aiohttp
from yarl import URL

from collector import metrics
from collector.domain import (
    INTERVALS,
    AccountInfo,
    AccountOrder,
    AvgPrice,
    BookTicker,
    DepthSnapshot,
    ExchangeInfo,
    Kline,
    OptionRecord,
    OptionSymbol,
    Position,
    PriceTicker,
    RecentTrade,
    ShortCall,
    Ticker24h,
    Trade,
)
from collector.errors import (
    SYMBOL_REFUSALS,
    Banned,
    ConfigError,
    ExchangeRejected,
    ExchangeUnavailable,
    OrderNotPlaced,
    OutcomeUnknown,
    ParseError,
    RateLimited,
    SymbolRefused,
)
from collector.exchange import endpoints as ep
from collector.exchange import parsers
from collector.exchange.endpoints import Endpoint, Security
from collector.exchange.parsers import Listing
from collector.exchange.ratelimit import Priority, Reservation, WeightGovernor
from collector.exchange.signing import query_string, sign

log = logging.getLogger(__name__)

# Exchange codes whose outcome is unknown or that mean "not now": retried like a 5xx.
TRANSIENT_CODES = frozenset({-1001, -1006, -1007, -1016})
_BANNED_UNTIL = re.compile(r"banned until (\d+)", re.IGNORECASE)
_DEFAULT_BAN = 120.0  # bans start at 2 minutes; used when a 418 says nothing about its end
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_BODY_BYTES = 32 * 1024 * 1024  # far above any real answer (a 1000-kline page is ~0.2 MB)
CLOCK_REFRESH_SECONDS = 600.0  # a signed request measures the server clock again after this long
RESOLVE_SLACK_MS = 2_000  # an order found by its terms may carry a time this far before we sent it


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are unique: which of two values is meant is anyone's guess."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        raise _DuplicateKey(next(k for k, _ in pairs if k in seen or seen.add(k)))  # type: ignore[func-returns-value]
    return obj


def _keys_surely_unique(body: bytes, payload: Any) -> bool:
    """True only if no JSON object in ``body`` repeated a key; False means "not shown", not "repeated".

    Every member of every object has its own ':' in the text, so ``body`` holds at least as many
    ':' bytes as all its objects have members (more when strings contain ':'; in UTF-16/32 other
    characters may contribute such bytes too). The decoded objects at the top (the body itself, or
    the items of a top-level list) have at most that many entries between them, fewer if a key
    repeated. When the two counts are equal there is no room left for a repeated key, nor for any
    member of an object not counted (a nested one).
    """
    if type(payload) is dict:
        entries = len(payload)
    elif type(payload) is list:
        entries = sum([len(item) for item in payload if type(item) is dict])
    else:
        entries = 0
    return entries == body.count(b":")


def _unknown(exc: Exception, endpoint: Endpoint) -> OutcomeUnknown:
    """A TRADE request without a usable answer (none, or one that cannot be read): its outcome."""
    if isinstance(exc, OutcomeUnknown):
        return exc
    return OutcomeUnknown(f"{endpoint.name}: the answer could not be read ({exc})", endpoint=endpoint.name)


def _reject_constant(name: str) -> Decimal:
    return Decimal(name)  # NaN / Infinity reach the parser, which refuses them by field


def _to_ms(value: datetime, name: str) -> int:
    if value.tzinfo is None:
        raise ConfigError(f"{name} must be timezone-aware (UTC)")
    return (value - _EPOCH) // timedelta(milliseconds=1)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(raw).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class PageSizes:
    """What the server has shown of its page size per endpoint: the longest page it gave when asked
    for more. Lives on the client (one per server).

    Paging (``collector.exchange.paging``) records what it sees and asks it whether a page may be followed by more."""

    def __init__(self) -> None:
        self._longest_short: dict[str, int] = {}

    def saw(self, endpoint: str, asked: int, got: int) -> None:
        if 0 < got < asked and got > self._longest_short.get(endpoint, 0):
            self._longest_short[endpoint] = got

    def full(self, endpoint: str, asked: int, got: int) -> bool:
        """May more follow this page? (A page as long as the longest short one seen may be capped.)"""
        if got >= asked:
            return True
        longest = self._longest_short.get(endpoint)
        return longest is not None and got >= longest

    def size(self, endpoint: str, asked: int) -> int:
        """The page length to expect when asking for ``asked``."""
        return min(asked, self._longest_short.get(endpoint, asked))


class Allowance(Protocol):
    """Weight granted by something outside this process (a budget shared per egress IP)."""

    async def take(self, weight: int) -> None: ...


class JexClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        api_key: str | None = None,
        api_secret: str | None = None,
        governor: WeightGovernor | None = None,
        connect_timeout: float = 5,
        read_timeout: float = 15,
        max_retries: int = 5,
        backoff_base: float = 0.25,
        backoff_cap: float = 10,
        max_ban_wait: float = 300,
        recv_window: int = 5000,
        rng: random.Random | None = None,
        allowance: Allowance | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.api_secret = api_secret
        self.governor = governor or WeightGovernor()
        # total caps a server that drips bytes; sock_read catches one that stalls.
        self.timeout = aiohttp.ClientTimeout(
            total=connect_timeout + read_timeout, connect=connect_timeout, sock_read=read_timeout
        )
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_ban_wait = max_ban_wait
        self.recv_window = recv_window
        self.max_body_bytes = max_body_bytes  # a larger answer is refused as it streams in
        self._rng = rng or random.Random()
        # Weight shared with other processes behind the same IP (see collector.store.coordination).
        self.allowance = allowance
        self.retries = 0  # retries made over the client's life, all endpoints
        self.requests_sent = 0  # HTTP requests attempted (each retry is one)
        self._rejected_seen: set[str] = set()  # malformed listing entries already logged
        self.pages = PageSizes()  # the server's real page sizes, as paging has seen them
        self._synced_at = -math.inf  # host time of the last clock measurement

    # --- plumbing --------------------------------------------------------------------------

    @contextlib.contextmanager
    def retrying(self, times: int) -> Iterator[None]:
        """Within the block, retry transient failures ``times`` times, then restore ``max_retries``
        (starting up: a blip is retried, whatever the configured retries say)."""
        saved = self.max_retries
        self.max_retries = times
        try:
            yield
        finally:
            self.max_retries = saved

    def backoff(self, attempt: int) -> float:
        """Delay before retry ``attempt`` (1-based): exponential, capped, with jitter in [d/2, d]."""
        delay = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return self._rng.uniform(delay / 2, delay)

    async def request(
        self,
        endpoint: Endpoint,
        params: Mapping[str, object] | None = None,
        *,
        priority: Priority = Priority.LIVE,
        weight: int | None = None,
        method: str = "GET",
        signed: list[int] | None = None,
    ) -> Any:
        """One logical call: reserve, send, decode, retry what is transient. Returns decoded JSON.

        A TRADE request (``endpoint.trade``) that got no usable answer is not retried here: it may
        have taken effect. Its typed method resolves it against the account (``place_order``...).
        A signed request refused for its timestamp (-1021) is signed again once, on a fresh clock.
        ``signed`` collects the timestamp (ms) of every signature sent: the latest is when the
        exchange may have accepted it, whatever the waits before it.
        """
        attempt = 0
        resynced = False
        if endpoint.security is Security.SIGNED and self._clock_stale():
            await self.sync_time()
        while True:
            try:
                return await self._attempt(
                    endpoint, params or {}, priority, endpoint.weight if weight is None else weight, method, signed
                )
            except SymbolRefused:
                raise
            except ExchangeRejected as exc:
                if exc.code == -1021 and endpoint.security is Security.SIGNED and not resynced:
                    resynced = True  # our clock estimate drifted: measure again, sign again, once
                    await self.sync_time()
                    continue
                symbol = (params or {}).get("symbol")
                if exc.code in SYMBOL_REFUSALS and isinstance(symbol, str):
                    raise SymbolRefused(
                        f"{exc} (symbol {symbol})",
                        symbol=symbol,
                        code=exc.code,
                        status=exc.status,
                        endpoint=exc.endpoint,
                    ) from exc
                raise
            except RateLimited:
                reason = "rate_limited"
                if attempt >= self.max_retries:
                    raise
            except Banned as exc:
                reason = "banned"
                if attempt >= self.max_retries or self._ban_too_long(exc.until):
                    raise
            except ExchangeUnavailable as exc:
                reason = "unavailable"
                if endpoint.trade:
                    raise OutcomeUnknown(
                        f"{exc} (not retried: it may have taken effect)",
                        endpoint=exc.endpoint,
                        status=exc.status,
                        code=exc.code,
                    ) from exc
                if attempt >= self.max_retries:
                    raise
            attempt += 1
            self.retries += 1
            metrics.EXCHANGE_RETRIES.labels(endpoint.name, reason).inc()
            if reason == "unavailable":
                await self.governor.clock.sleep(self.backoff(attempt))
            # after a 429/418 the governor holds the next slot until the pause or ban is over

    def _ban_too_long(self, until: datetime) -> bool:
        return until.timestamp() - self.governor.clock.time() > self.max_ban_wait

    async def _attempt(
        self,
        endpoint: Endpoint,
        params: Mapping[str, object],
        priority: Priority,
        weight: int,
        method: str,
        signed: list[int] | None = None,
    ) -> Any:
        banned = self.governor.stats().banned_until
        if banned is not None and banned - self.governor.clock.time() > self.max_ban_wait:
            # Waiting days inside a job helps nobody: say so now, without sending.
            raise Banned(
                f"{endpoint.name}: IP banned, not sending",
                endpoint=endpoint.name,
                until=datetime.fromtimestamp(banned, UTC),
            )
        headers = {}
        if endpoint.security is not Security.NONE:
            if not self.api_key:
                raise ConfigError(f"{endpoint.name} needs an API key (COLLECTOR_API_KEY)")
            headers["X-JEX-APIKEY"] = self.api_key
        items = [(k, v) for k, v in params.items() if v is not None]
        if self.allowance is not None and self.governor.configured:
            await self.allowance.take(weight)
        async with self.governor.slot(weight, priority, orders=endpoint.orders) as reservation:
            if endpoint.security is Security.SIGNED:
                items = self._signed(items, signed)
            qs = query_string(items)
            url = URL(self.base_url + endpoint.path + (f"?{qs}" if qs else ""), encoded=True)
            status_label = "error"
            started = time.perf_counter()
            self.requests_sent += 1
            try:
                async with self.session.request(
                    method, url, headers=headers, timeout=self.timeout, allow_redirects=False
                ) as resp:
                    status_label = str(resp.status)
                    body = await self._read_body(resp, endpoint.name)
                    status, resp_headers = resp.status, resp.headers
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise ExchangeUnavailable(
                    f"{endpoint.name}: {type(exc).__name__}: {exc}", endpoint=endpoint.name
                ) from exc
            finally:
                metrics.EXCHANGE_REQUESTS.labels(endpoint.name, status_label).inc()
                metrics.EXCHANGE_LATENCY.labels(endpoint.name).observe(time.perf_counter() - started)
        return self._interpret(endpoint, status, resp_headers, body, reservation)

    async def _read_body(self, resp: aiohttp.ClientResponse, name: str) -> bytes:
        """The body, refused (ParseError, nothing kept) once it exceeds ``max_body_bytes``."""
        cap = self.max_body_bytes
        if resp.content_length is not None and resp.content_length > cap:
            raise ParseError(name, "<body>", f"larger than {cap} bytes (Content-Length {resp.content_length})")
        chunks, size = [], 0
        async for chunk in resp.content.iter_chunked(1 << 16):
            size += len(chunk)
            if size > cap:
                raise ParseError(name, "<body>", f"larger than {cap} bytes; refused unread")
            chunks.append(chunk)
        return b"".join(chunks)

    def _signed(self, items: list[tuple[str, object]], signed: list[int] | None = None) -> list[tuple[str, object]]:
        if not (self.api_key and self.api_secret):
            raise ConfigError("signed endpoints need COLLECTOR_API_KEY and COLLECTOR_API_SECRET")
        timestamp = int((self.governor.clock.time() + self.governor.offset) * 1000)
        if signed is not None:
            signed.append(timestamp)
        items = [*items, ("recvWindow", self.recv_window), ("timestamp", timestamp)]
        return [*items, ("signature", sign(items, self.api_secret))]

    def _interpret(
        self, endpoint: Endpoint, status: int, headers: Mapping[str, str], body: bytes, reservation: Reservation
    ) -> Any:
        self.governor.observe(headers, reservation, status)
        name = endpoint.name
        if status == 429:
            return self._rate_limited(name, headers, self._error_body(body)[1])
        if status == 418:
            return self._banned(name, headers, self._error_body(body)[1])
        if status >= 500:
            code, msg = self._error_body(body)
            raise ExchangeUnavailable(
                f"{name}: HTTP {status} {code} {msg}".rstrip(), endpoint=name, status=status, code=code
            )
        if 400 <= status < 500:
            code, msg = self._error_body(body)
            if code in TRANSIENT_CODES:
                raise ExchangeUnavailable(f"{name}: {code} {msg}", endpoint=name, status=status, code=code)
            if code == -1003:
                if msg and _BANNED_UNTIL.search(msg):
                    return self._banned(name, headers, msg)
                return self._rate_limited(name, headers, msg)
            raise ExchangeRejected(f"{name}: HTTP {status} code {code}: {msg}", code=code, status=status, endpoint=name)
        if not 200 <= status < 300:
            raise ExchangeUnavailable(f"{name}: unexpected HTTP {status}", endpoint=name, status=status)
        payload = self._decode(name, body, status)
        if (
            isinstance(payload, dict)
            and isinstance(payload.get("code"), int)
            and payload["code"] < 0
            and "msg" in payload
        ):
            # An error inside a 200: believe the body.
            code, msg = payload["code"], payload.get("msg")
            if code in TRANSIENT_CODES:
                raise ExchangeUnavailable(f"{name}: {code} {msg}", endpoint=name, status=status, code=code)
            raise ExchangeRejected(f"{name}: code {code}: {msg}", code=code, status=status, endpoint=name)
        return payload

    @staticmethod
    def _decode(name: str, body: bytes, status: int) -> Any:
        # Content-Type is not checked: the body decides (a JSON body under text/plain is still JSON).
        try:  # fast: C-built dicts, then a proof that no object had a repeated key
            payload = json.loads(body, parse_float=Decimal, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            pass  # the checked decode below says what is wrong, as it always did
        else:
            if _keys_surely_unique(body, payload):
                return payload
        try:
            return json.loads(
                body, parse_float=Decimal, parse_constant=_reject_constant, object_pairs_hook=_unique_keys
            )
        except _DuplicateKey as exc:
            raise ParseError(name, str(exc), "duplicate key in a JSON object") from None
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
            raise ExchangeUnavailable(
                f"{name}: body is not JSON ({len(body)} bytes): {exc}", endpoint=name, status=status
            ) from exc

    @staticmethod
    def _error_body(body: bytes) -> tuple[int | None, str | None]:
        try:
            payload = json.loads(body, parse_float=Decimal)
        except (ValueError, RecursionError):
            text = body[:200].decode("utf-8", "replace").strip()
            return None, text or None
        if not isinstance(payload, dict):
            return None, None
        code = payload.get("code")
        msg = payload.get("msg")
        return (
            code if isinstance(code, int) and not isinstance(code, bool) else None,
            msg if isinstance(msg, str) else None,
        )

    def _rate_limited(self, name: str, headers: Mapping[str, str], msg: str | None) -> Any:
        retry_after = _retry_after(headers)
        until = self.governor.pause(retry_after)
        metrics.EXCHANGE_RATE_LIMITED.inc()
        raise RateLimited(
            f"{name}: rate limited (429): {msg}", endpoint=name, retry_after=until - self.governor.clock.time()
        )

    def _banned(self, name: str, headers: Mapping[str, str], msg: str | None) -> Any:
        now = self.governor.clock.time()
        candidates = []
        retry_after = _retry_after(headers)
        if retry_after is not None:
            candidates.append(now + retry_after)
        match = _BANNED_UNTIL.search(msg or "")
        if match:
            candidates.append(int(match.group(1)) / 1000 - self.governor.offset)  # server → host time
        until = max(candidates) if candidates else now + _DEFAULT_BAN
        self.governor.ban(until)
        metrics.EXCHANGE_BANNED.inc()
        raise Banned(
            f"{name}: IP banned (418) until {datetime.fromtimestamp(until, UTC).isoformat()}: {msg}",
            endpoint=name,
            until=datetime.fromtimestamp(until, UTC),
        )

    @staticmethod
    def _now() -> datetime:
        return datetime.now(UTC)

    def _kept(self, name: str, rejected: tuple[Exception, ...]) -> None:
        """A listing answer left malformed entries out: count each, log each new one once."""
        for exc in rejected:
            metrics.PARSE_REJECTED_ENTRIES.labels(name).inc()
            key = str(exc)
            if key not in self._rejected_seen:
                if len(self._rejected_seen) < 10_000:
                    self._rejected_seen.add(key)
                log.warning("left out a malformed entry, kept the rest: %s", key)

    # --- general endpoints -----------------------------------------------------------------

    async def ping(self, *, priority: Priority = Priority.LIVE) -> None:
        await self.request(ep.PING, priority=priority)

    async def server_time(self, *, priority: Priority = Priority.LIVE) -> datetime:
        return parsers.parse_server_time(await self.request(ep.TIME, priority=priority))

    async def sync_time(self, samples: int = 3) -> float:
        """Measure server time minus host time (seconds), give it to the governor, return it.

        Fixed windows are aligned to the server's clock, and signed requests carry its time. The
        estimate's error is at most half the round trip, so of ``samples`` requests (weight 1 each)
        the one with the shortest round trip is kept: one slow answer on a loaded host could
        otherwise shift the windows by more than the governor's guard at their edges.
        """
        clock = self.governor.clock
        best: tuple[float, float] | None = None  # (round trip, offset)
        for _ in range(max(1, samples)):
            sent = clock.time()
            payload = await self.request(ep.TIME)
            received = clock.time()
            server = parsers.parse_server_time(payload)
            offset = (server - _EPOCH) / timedelta(seconds=1) - (sent + received) / 2
            if best is None or received - sent < best[0]:
                best = (received - sent, offset)
        assert best is not None  # at least one sample
        self.governor.set_time_offset(best[1])
        self._synced_at = clock.time()
        return best[1]

    def _clock_stale(self) -> bool:
        """Signed requests carry the server's time: the offset is measured again every so often."""
        return self.governor.clock.time() - self._synced_at > CLOCK_REFRESH_SECONDS

    async def exchange_info(self, *, priority: Priority = Priority.LIVE) -> ExchangeInfo:
        info = parsers.parse_exchange_info(await self.request(ep.EXCHANGE_INFO, priority=priority))
        self._kept(ep.EXCHANGE_INFO.name, info.rejected)
        return info

    async def configure_limits(self) -> ExchangeInfo:
        """Fetch exchangeInfo and give its rateLimits to the governor. Call once at startup."""
        info = await self.exchange_info()
        self.governor.configure(info.rate_limits)
        return info

    async def option_info(self, *, priority: Priority = Priority.LIVE) -> Listing[OptionSymbol]:
        """Every well-formed entry; ``.rejected_symbols`` names those left out as malformed."""
        infos = parsers.parse_option_info(await self.request(ep.OPTION_INFO, priority=priority))
        self._kept(ep.OPTION_INFO.name, infos.rejected)
        return infos

    # --- option market data ----------------------------------------------------------------

    async def depth(self, symbol: str, limit: int = 60, *, priority: Priority = Priority.LIVE) -> DepthSnapshot:
        if limit not in ep.DEPTH_LIMITS:
            raise ConfigError(f"depth limit must be one of {ep.DEPTH_LIMITS}, not {limit}")
        payload = await self.request(ep.DEPTH, {"symbol": symbol, "limit": limit}, priority=priority)
        return parsers.parse_depth(payload, symbol, self._now())

    async def recent_trades(
        self, symbol: str, limit: int = 60, *, priority: Priority = Priority.LIVE
    ) -> list[RecentTrade]:
        if not 1 <= limit <= ep.MAX_TRADES:
            raise ConfigError(f"trades limit must be 1..{ep.MAX_TRADES}, not {limit}")
        payload = await self.request(ep.TRADES, {"symbol": symbol, "limit": limit}, priority=priority)
        return parsers.parse_recent_trades(payload, symbol)

    async def historical_trades(
        self, symbol: str, from_id: int | None = None, limit: int = 500, *, priority: Priority = Priority.LIVE
    ) -> list[Trade]:
        """Trades with id >= from_id (most recent without it), sorted by id ascending."""
        if not 1 <= limit <= ep.MAX_HISTORICAL_TRADES:
            raise ConfigError(f"historicalTrades limit must be 1..{ep.MAX_HISTORICAL_TRADES}, not {limit}")
        params = {"symbol": symbol, "limit": limit, "fromId": from_id}
        payload = await self.request(ep.HISTORICAL_TRADES, params, priority=priority)
        return parsers.parse_historical_trades(payload, symbol)

    async def klines(
        self,
        symbol: str,
        interval: str,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 1000,
        *,
        priority: Priority = Priority.LIVE,
    ) -> list[Kline]:
        """Klines sorted by open time; ``start``/``end`` are aware datetimes (startTime/endTime)."""
        if interval not in INTERVALS:
            raise ConfigError(f"unknown kline interval {interval!r}; known: {', '.join(INTERVALS)}")
        if not 1 <= limit <= ep.MAX_KLINES:
            raise ConfigError(f"klines limit must be 1..{ep.MAX_KLINES}, not {limit}")
        params = {
            "symbol": symbol,
            "interval": interval,
            "startTime": None if start is None else _to_ms(start, "start"),
            "endTime": None if end is None else _to_ms(end, "end"),
            "limit": limit,
        }
        payload = await self.request(ep.KLINES, params, priority=priority)
        return parsers.parse_klines(payload, symbol, interval)

    async def avg_price(self, symbol: str, *, priority: Priority = Priority.LIVE) -> AvgPrice:
        payload = await self.request(ep.AVG_PRICE, {"symbol": symbol}, priority=priority)
        return parsers.parse_avg_price(payload, symbol, self._now())

    async def ticker_24hr(self, symbol: str | None = None, *, priority: Priority = Priority.LIVE) -> list[Ticker24h]:
        payload = await self.request(
            ep.TICKER_24HR, {"symbol": symbol}, priority=priority, weight=ep.TICKER_24HR.weight_for(symbol)
        )
        tickers = parsers.parse_ticker_24hr(payload, self._now())
        self._kept(ep.TICKER_24HR.name, tickers.rejected)
        return tickers

    async def ticker_price(self, symbol: str | None = None, *, priority: Priority = Priority.LIVE) -> list[PriceTicker]:
        payload = await self.request(
            ep.TICKER_PRICE, {"symbol": symbol}, priority=priority, weight=ep.TICKER_PRICE.weight_for(symbol)
        )
        prices = parsers.parse_price_tickers(payload)
        self._kept(ep.TICKER_PRICE.name, prices.rejected)
        return prices

    async def book_ticker(self, symbol: str | None = None, *, priority: Priority = Priority.LIVE) -> list[BookTicker]:
        payload = await self.request(
            ep.BOOK_TICKER, {"symbol": symbol}, priority=priority, weight=ep.BOOK_TICKER.weight_for(symbol)
        )
        books = parsers.parse_book_tickers(payload, self._now())
        self._kept(ep.BOOK_TICKER.name, books.rejected)
        return books

    # --- the account (signed: USER_DATA reads, TRADE changes) -------------------------------------
    # The collector only reads the account; the TRADE methods are here for the account holder's own
    # tools and the tests, and none of them is ever sent twice by accident.

    async def get_order(self, symbol: str, order_id: int, *, priority: Priority = Priority.LIVE) -> AccountOrder:
        payload = await self.request(ep.ORDER, {"symbol": symbol, "orderId": order_id}, priority=priority)
        return parsers.parse_order(payload)

    async def open_orders(
        self,
        symbol: str,
        *,
        order_id: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = ep.MAX_ACCOUNT_PAGE,
        priority: Priority = Priority.LIVE,
    ) -> list[AccountOrder]:
        return await self._orders(ep.OPEN_ORDERS, symbol, order_id, start, end, limit, priority)

    async def history_orders(
        self,
        symbol: str,
        *,
        order_id: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = ep.MAX_ACCOUNT_PAGE,
        priority: Priority = Priority.LIVE,
    ) -> list[AccountOrder]:
        """The symbol's orders (``order_id``: from that id on), sorted by id."""
        return await self._orders(ep.HISTORY_ORDERS, symbol, order_id, start, end, limit, priority)

    async def _orders(
        self,
        endpoint: Endpoint,
        symbol: str,
        order_id: int | None,
        start: datetime | None,
        end: datetime | None,
        limit: int,
        priority: Priority,
    ) -> list[AccountOrder]:
        if not 1 <= limit <= ep.MAX_ACCOUNT_PAGE:
            raise ConfigError(f"{endpoint.name} limit must be 1..{ep.MAX_ACCOUNT_PAGE}, not {limit}")
        params = {
            "symbol": symbol,
            "orderId": order_id,
            "limit": limit,
            "startTime": None if start is None else _to_ms(start, "start"),
            "endTime": None if end is None else _to_ms(end, "end"),
        }
        return parsers.parse_orders(await self.request(endpoint, params, priority=priority), endpoint.name)

    async def records(
        self,
        symbol: str,
        *,
        from_id: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = ep.MAX_ACCOUNT_PAGE,
        priority: Priority = Priority.LIVE,
    ) -> list[OptionRecord]:
        """The symbol's shorts and calls (``from_id``: from that id on), sorted by id."""
        if not 1 <= limit <= ep.MAX_ACCOUNT_PAGE:
            raise ConfigError(f"record limit must be 1..{ep.MAX_ACCOUNT_PAGE}, not {limit}")
        params = {
            "symbol": symbol,
            "fromId": from_id,
            "limit": limit,
            "startTime": None if start is None else _to_ms(start, "start"),
            "endTime": None if end is None else _to_ms(end, "end"),
        }
        return parsers.parse_records(await self.request(ep.RECORD, params, priority=priority))

    async def positions(self, symbol: str | None = None, *, priority: Priority = Priority.LIVE) -> list[Position]:
        return parsers.parse_positions(await self.request(ep.POSITION, {"symbol": symbol}, priority=priority))

    async def short_call_info(self, symbol: str, *, priority: Priority = Priority.LIVE) -> ShortCall:
        payload = await self.request(ep.SHORT_CALL_INFO, {"symbol": symbol}, priority=priority)
        return parsers.parse_short_call(payload, ep.SHORT_CALL_INFO.name)

    async def account(self, *, priority: Priority = Priority.LIVE) -> AccountInfo:
        return parsers.parse_account(await self.request(ep.ACCOUNT, priority=priority))

    async def listen_key(self) -> str:
        """A new listenKey for the user data stream (valid 60 minutes unless kept alive)."""
        return parsers.parse_listen_key(await self.request(ep.USER_DATA_STREAM, method="POST"))

    async def keep_listen_key(self, key: str) -> None:
        """Another 60 minutes for ``key`` (ExchangeRejected -1125 once it has expired)."""
        await self.request(ep.USER_DATA_STREAM, {"listenKey": key}, method="PUT")

    async def close_listen_key(self, key: str) -> None:
        await self.request(ep.USER_DATA_STREAM, {"listenKey": key}, method="DELETE")

    async def test_order(self, symbol: str, side: str, quantity: Decimal, price: Decimal) -> None:
        """order/test: validated by the exchange, never placed."""
        await self.request(ep.TEST_ORDER, self._order_params(symbol, side, quantity, price, "ACK"), method="POST")

    async def place_order(self, symbol: str, side: str, quantity: Decimal, price: Decimal) -> AccountOrder:
        """Place a LIMIT order (newOrderRespType RESULT). Never sent twice: without a usable answer the
        account is asked whether the order exists (raises OrderNotPlaced if it does not, and
        OutcomeUnknown if that cannot be told)."""
        params = self._order_params(symbol, side, quantity, price, "RESULT")
        signed: list[int] = []
        try:
            return parsers.parse_order(await self.request(ep.PLACE_ORDER, params, method="POST", signed=signed))
        except (OutcomeUnknown, ParseError) as exc:  # no answer, or one we cannot read: it may be placed
            unknown = _unknown(exc, ep.PLACE_ORDER)
            return await self._resolve_order(symbol, side, quantity, price, self._sent(signed), unknown)

    def _sent(self, signed: list[int]) -> tuple[int, int]:
        """(first, last) timestamps a TRADE request was signed with (now, if it never was)."""
        return (min(signed), max(signed)) if signed else (self._server_ms(), self._server_ms())

    async def _settled(self, sent_ms: int) -> None:
        """Wait until a request signed at ``sent_ms`` can no longer be accepted: an exchange refuses a
        timestamp older than recvWindow, so what the account shows after that is final."""
        wait = (sent_ms + self.recv_window + RESOLVE_SLACK_MS) / 1000 - self.governor.server_time()
        if wait > 0:
            await self.governor.clock.sleep(wait)

    async def _resolve_order(
        self,
        symbol: str,
        side: str,
        quantity: Decimal,
        price: Decimal,
        sent: tuple[int, int],
        unknown: OutcomeUnknown,
    ) -> AccountOrder:
        await self._settled(sent[1])
        start = _EPOCH + timedelta(milliseconds=sent[0] - RESOLVE_SLACK_MS)
        try:
            with self.retrying(max(self.max_retries, 2)):
                seen = await self.history_orders(symbol, start=start)
        except ExchangeUnavailable as exc:
            raise OutcomeUnknown(
                f"{unknown}; the account could not be asked either: {exc}", endpoint=unknown.endpoint
            ) from exc
        found = [o for o in seen if o.side == side and o.orig_qty == quantity and o.price == price]
        if len(found) == 1:
            log.warning("order outcome was unknown (%s); the account shows it placed as %s", unknown, found[0].order_id)
            return found[0]
        if not found:
            raise OrderNotPlaced(f"{unknown}; the account shows no such order since it was sent: nothing was placed")
        raise OutcomeUnknown(
            f"{unknown}; {len(found)} orders with these terms since it was sent: which is it?",
            endpoint=unknown.endpoint,
        )

    async def cancel_order(self, symbol: str, order_id: int) -> AccountOrder:
        """Cancel; without a usable answer, the order itself says whether it is cancelled."""
        signed: list[int] = []
        try:
            payload = await self.request(
                ep.CANCEL_ORDER, {"symbol": symbol, "orderId": order_id}, method="DELETE", signed=signed
            )
            return parsers.parse_order(payload)
        except (OutcomeUnknown, ParseError) as exc:
            unknown = _unknown(exc, ep.CANCEL_ORDER)
            await self._settled(self._sent(signed)[1])
            try:
                with self.retrying(max(self.max_retries, 2)):
                    order = await self.get_order(symbol, order_id)
            except ExchangeUnavailable as asked:
                raise OutcomeUnknown(f"{unknown}; the order could not be asked either: {asked}") from asked
            if order.status == "CANCELED":
                return order
            if order.final:
                raise OrderNotPlaced(f"{unknown}; order {order_id} is {order.status}: nothing to cancel") from None
            raise OrderNotPlaced(f"{unknown}; order {order_id} is still {order.status}: not cancelled") from None

    async def release(self, symbol: str, amount: int) -> ShortCall:
        """Short ``amount`` of an option (margin and base move as the seed's example shows)."""
        return await self._short_call(ep.RELEASE, symbol, amount)

    async def back(self, symbol: str, amount: int) -> ShortCall:
        """Call back ``amount`` of a shorted option."""
        return await self._short_call(ep.BACK, symbol, amount)

    async def _short_call(self, endpoint: Endpoint, symbol: str, amount: int) -> ShortCall:
        if amount <= 0:
            raise ConfigError(f"{endpoint.name} amount must be a positive integer, not {amount}")
        signed: list[int] = []
        before = None
        try:
            payload = await self.request(endpoint, {"symbol": symbol, "amount": amount}, method="POST", signed=signed)
            return parsers.parse_short_call(payload, endpoint.name)
        except (OutcomeUnknown, ParseError) as exc:
            unknown = _unknown(exc, endpoint)
            first, last = self._sent(signed)
            await self._settled(last)
            start = _EPOCH + timedelta(milliseconds=first - RESOLVE_SLACK_MS)
            try:
                with self.retrying(max(self.max_retries, 2)):
                    records = await self.records(symbol, start=start)
                    before = await self.short_call_info(symbol)
            except ExchangeUnavailable as asked:
                raise OutcomeUnknown(f"{unknown}; the account could not be asked either: {asked}") from asked
            status = "1" if endpoint is ep.RELEASE else "2"  # a short is status 1, a call 2
            found = [r for r in records if r.amount == amount and r.status == status]
            if not found:
                raise OrderNotPlaced(f"{unknown}; no {endpoint.name} of {amount} recorded since it was sent") from None
            if len(found) > 1:
                raise OutcomeUnknown(f"{unknown}; {len(found)} records of {amount} since it was sent") from None
            log.warning("%s outcome was unknown (%s); the account shows it done", endpoint.name, unknown)
            return before

    def _order_params(
        self, symbol: str, side: str, quantity: Decimal, price: Decimal, resp_type: str
    ) -> dict[str, object]:
        if side not in ("BUY", "SELL"):
            raise ConfigError(f"side must be BUY or SELL, not {side!r}")
        if quantity <= 0 or price <= 0:
            raise ConfigError("quantity and price must be positive")
        return {
            "symbol": symbol,
            "side": side,
            "type": "LIMIT",
            "quantity": format(quantity, "f"),
            "price": format(price, "f"),
            "newOrderRespType": resp_type,
        }

    def _server_ms(self) -> int:
        return int(self.governor.server_time() * 1000)
