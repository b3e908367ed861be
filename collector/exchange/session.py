"""Building the exchange side from Settings: one ClientSession per process, a governor, limits.

    async with connect_exchange(settings) as client:
        ...  # limits configured from exchangeInfo, clock offset measured

An exchange that cannot be reached at startup is ExchangeUnavailable (down, or nothing at that
URL: retry later, or check it), so commands exit 75 with one line and write nothing; one that
answers and refuses (a bad key) is a ConfigError (exit 2).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

from collector.config import Settings
from collector.errors import (
    ConfigError,
    ExchangeRejected,
    ExchangeUnavailable,
    TransientError,
)
from collector.exchange.client import JexClient
from collector.exchange.ratelimit import WeightGovernor


def make_client(
    session: aiohttp.ClientSession, settings: Settings, governor: WeightGovernor | None = None
) -> JexClient:
    return JexClient(
        session,
        settings.exchange_url,
        api_key=settings.api_key.get_secret_value() if settings.api_key else None,
        api_secret=settings.api_secret.get_secret_value() if settings.api_secret else None,
        governor=governor or WeightGovernor(margin=settings.weight_margin, burst=settings.weight_burst),
        connect_timeout=settings.http_connect_timeout,
        read_timeout=settings.http_read_timeout,
        max_retries=settings.max_retries,
        max_ban_wait=settings.max_ban_wait_seconds,
        max_body_bytes=settings.http_max_body_bytes,
    )


STARTUP_RETRIES = 2  # retries while connecting and validating: a blip at start is not fatal


@asynccontextmanager
async def open_client(settings: Settings, governor: WeightGovernor | None = None) -> AsyncIterator[JexClient]:
    """A client on the process's one ``ClientSession`` (closed when the block ends); not yet
    connected: see ``handshake``."""
    connector = aiohttp.TCPConnector(limit=64, ttl_dns_cache=300)
    async with aiohttp.ClientSession(connector=connector, raise_for_status=False) as session:
        yield make_client(session, settings, governor)


async def handshake(client: JexClient) -> None:
    """What every run does first: limits from exchangeInfo, then the server clock's offset."""
    await client.configure_limits()
    await client.sync_time()


@asynccontextmanager
async def connect_exchange(
    settings: Settings, *, startup_retries: int | None = None, governor: WeightGovernor | None = None
) -> AsyncIterator[JexClient]:
    """A ready client: limits from exchangeInfo, server-time offset measured."""
    async with open_client(settings, governor) as client:
        try:
            with client.retrying(settings.max_retries if startup_retries is None else startup_retries):
                await handshake(client)
        except TransientError as exc:  # down, or nothing there: retry later (or check the URL)
            raise ExchangeUnavailable(f"exchange {settings.exchange_url} is not usable: {exc}") from exc
        except ExchangeRejected as exc:  # it answered, and refused us: the settings are wrong
            raise ConfigError(f"exchange {settings.exchange_url} is not usable: {exc}") from exc
        yield client
