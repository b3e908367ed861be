"""Daemon job: keep the monthly partitions of trades and klines created ahead of time.

Runs at start and hourly (budget.PARTITIONS_SECONDS); costs no exchange weight. Safe with several
daemons on one database (ensure_partitions serialises on an advisory lock and is idempotent).
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from collector.daemon.context import LiveContext
from collector.store.db import transaction
from collector.store.partitions import DEFAULT_MONTHS_AHEAD, ensure_partitions

log = logging.getLogger(__name__)
LOCK_TIMEOUT = "5s"  # behind a long analyst query: give up, retry next hour, never block writers


async def maintain_partitions(ctx: LiveContext) -> list[str]:
    created = await ctx.db(_ensure, ctx.engine, ctx)
    if created:
        log.info("created partitions: %s", ", ".join(created))
    return created


def _ensure(engine: Engine, ctx: LiveContext) -> list[str]:
    with transaction(engine) as conn:
        return ensure_partitions(conn, DEFAULT_MONTHS_AHEAD, now=ctx.now(), lock_timeout=LOCK_TIMEOUT)
