"""The exchange's push side: stream names, how they are packed into connections, and one
connection's messages (JEX-STREAMS-NOTES.md).

A connection is a combined stream (``/stream?streams=a/b/…``, at most MAX_STREAMS names, symbols
in lower case); every message is ``{"stream": name, "data": payload}``, decoded with Decimals (no
float ever exists). Pings are answered by aiohttp (``autoping``); a connection that delivers no
message for ``stall`` seconds is a silent stall (StreamStalled), one that reached ``lifetime`` is
ended by us before the exchange ends it (StreamRenewal). What a payload means is for the parsers
(parse_stream_*); this module only carries messages. Imports only the shared modules and aiohttp.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import partial

import aiohttp

from collector.errors import TransientError

MAX_STREAMS = 10  # per combined connection, as the exchange allows
TRADE, KLINE, DEPTH = "optionTrade", "optionKline", "optionDepth"
PUSH_LEVELS = (5, 10, 20)  # the partial book streams
_decode = partial(json.loads, parse_float=Decimal)


class StreamStalled(TransientError):
    """Connected, but nothing arrived for longer than the stall limit."""


class StreamRenewal(Exception):
    """The connection reached the age at which it is replaced (before the exchange's 24 h limit)."""


def stream_session() -> aiohttp.ClientSession:
    """A session for the push connections alone: a web socket holds its connection for hours, so on
    the REST client's session (64 connections at most) 64 of them would leave REST none."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))


def trade_stream(symbol: str) -> str:
    return f"{symbol.lower()}@{TRADE}"


def kline_stream(symbol: str, interval: str) -> str:
    return f"{symbol.lower()}@{KLINE}_{interval}"  # the REST spelling, which the notes accept


def depth_stream(symbol: str, levels: int) -> str:
    return f"{symbol.lower()}@{DEPTH}{levels}"


@dataclass(frozen=True)
class Route:
    """What a stream name carries: the symbol (as REST spells it), the kind, the interval."""

    symbol: str
    kind: str  # TRADE, KLINE or DEPTH
    interval: str = ""


def pack(groups: Iterable[tuple[str, Sequence[str]]], per_connection: int = MAX_STREAMS) -> list[tuple[str, ...]]:
    """Stream names packed into connections of at most ``per_connection``: a symbol's streams
    (``groups``: symbol -> its names, in a stable order) stay on one connection, so a connection
    lost is a known set of symbols to repair, and a symbol's per-second streams keep a connection
    of quiet trade streams from looking stalled."""
    out: list[tuple[str, ...]] = []
    current: list[str] = []
    for _, names in groups:
        if len(names) > per_connection:
            raise ValueError(f"{len(names)} streams for one symbol; a connection carries {per_connection}")
        if len(current) + len(names) > per_connection:
            out.append(tuple(current))
            current = []
        current.extend(names)
    if current:
        out.append(tuple(current))
    return out


def combined_url(base: str, names: Sequence[str]) -> str:
    return f"{base.rstrip('/')}/stream?streams={'/'.join(names)}"


@dataclass
class Message:
    stream: str
    data: object
    received: float  # host time
    error: str | None = None  # the message could not be read (stream and data empty)


async def messages(
    session: aiohttp.ClientSession,
    base: str,
    names: Sequence[str],
    *,
    stall: float,
    lifetime: float,
    on_open=None,
    raw: bool = False,
) -> AsyncIterator[Message]:
    """The messages of one combined connection (``raw``: of the one stream ``/ws/<names[0]>``, whose
    payloads come bare, as the user data stream's do), until it ends: closed by the exchange or
    broken (TransientError), silent for ``stall`` s (StreamStalled), or ``lifetime`` s old
    (StreamRenewal). ``on_open()`` is called once the connection is up, before its first message."""
    url = f"{base.rstrip('/')}/ws/{names[0]}" if raw else combined_url(base, names)
    read = partial(_bare, names[0]) if raw else _message
    try:
        ws = await session.ws_connect(
            url,
            autoping=True,  # the exchange's pings answered with pongs
            heartbeat=None,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0),
            max_msg_size=16 * 1024 * 1024,
        )
    except aiohttp.WSServerHandshakeError as exc:
        raise TransientError(f"stream connection refused: HTTP {exc.status}") from None
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise TransientError(f"stream connection failed: {type(exc).__name__}: {exc}") from None
    opened = time.monotonic()
    try:
        if on_open is not None:
            on_open()
        while True:
            left = lifetime - (time.monotonic() - opened)
            if left <= 0:
                raise StreamRenewal
            try:
                msg = await ws.receive(timeout=min(stall, left))
            except TimeoutError:
                if time.monotonic() - opened >= lifetime:
                    raise StreamRenewal from None
                raise StreamStalled(f"no message for {stall:g}s") from None
            if msg.type == aiohttp.WSMsgType.TEXT:
                yield read(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                yield read(msg.data.decode())
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                raise TransientError(f"stream closed by the exchange (code {ws.close_code})")
            elif msg.type == aiohttp.WSMsgType.ERROR:
                raise TransientError(f"stream broken: {ws.exception()}")
    finally:
        await ws.close()


def _message(text: str) -> Message:
    """One combined-stream message; one that cannot be read is yielded with its ``error`` (the
    connection goes on: what it carried is repaired like any message lost)."""
    try:
        obj = _decode(text)
    except ValueError:
        return Message("", None, time.time(), "not JSON")
    if not isinstance(obj, dict) or "stream" not in obj or "data" not in obj:
        return Message("", None, time.time(), "not a {stream, data} object")
    return Message(str(obj["stream"]), obj["data"], time.time())


def _bare(stream: str, text: str) -> Message:
    """A raw stream's message: the payload itself."""
    try:
        return Message(stream, _decode(text), time.time())
    except ValueError:
        return Message("", None, time.time(), "not JSON")
