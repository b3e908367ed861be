"""Building the exchange side from Settings: one ClientSession per process, a governor, limits.

    async with connect_exchange(settings) as client:
        ...  # limits configured from exchangeInfo, clock offset measured

An exchange that cannot be reached at startup is a ConfigError (bad URL or exchange down: the
operator must act), so commands exit 2 with one line and write nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

from collector.config import Settings
from collector.errors import ConfigError, ExchangeRejected, TransientError
from collector.exchange.client import JexClient
from collector.exchange.ratelimit import WeightGovernor


def make_client(session: aiohttp.ClientSession, settings: Settings,
                governor: WeightGovernor | None = None) -> JexClient:
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
async def connect_exchange(settings: Settings, *, startup_retries: int | None = None,
                           governor: WeightGovernor | None = None) -> AsyncIterator[JexClient]:
    """A ready client: limits from exchangeInfo, server-time offset measured."""
    connector = aiohttp.TCPConnector(limit=64, ttl_dns_cache=300)
    async with aiohttp.ClientSession(connector=connector, raise_for_status=False) as session:
        client = make_client(session, settings, governor)
        try:
            with client.retrying(settings.max_retries if startup_retries is None else startup_retries):
                await client.configure_limits()
                await client.sync_time()
        except (TransientError, ExchangeRejected) as exc:
            raise ConfigError(f"exchange {settings.exchange_url} is not usable: {exc}") from exc
        yield client
