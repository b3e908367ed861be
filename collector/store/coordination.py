"""Several collectors on one database, coordinated by PostgreSQL itself.

Leases: every daemon heartbeats into ``collector_nodes`` and holds leases (``collector_leases``)
on a fair share of the symbols (ceil(symbols / live nodes)). A lease lives ``ttl`` seconds and is
renewed every ttl/3; a node that dies stops renewing and its symbols are claimed by the others once
their leases expire, so takeover takes at most ttl + ttl/3. Claims are single conditional upserts
(``... WHERE expires_at < now()``), so two nodes can never hold one symbol. When a node joins, the
others hand over what exceeds their new share in two steps: they stop starting polls of it (still
holding the lease), and release the lease only once their polls of it already running have ended,
so no symbol is ever polled by two nodes at once (collector/jobs/leases.py).

Shared weight budget: the exchange limits request weight per IP, so every process behind one
egress IP spends one budget. Each window of the exchange has a row in ``weight_budget``; a process
claims weight in small chunks with one atomic ``UPDATE ... WHERE claimed + chunk <= limit`` and
spends it locally; when the window's budget is gone it waits for the next window. The exchange
client only sees an ``allowance`` with ``take(weight)``: it knows nothing of the database.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, text

from collector.store.db import transaction

log = logging.getLogger("collector.store.coordination")


def node_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _resource(symbol: str) -> str:
    return f"symbol:{symbol}"


class Leases:
    """This node's view of the leases; ``balance`` runs in a worker thread."""

    def __init__(self, engine: Engine, node: str, egress: str, ttl: float) -> None:
        self.engine = engine
        self.node = node
        self.egress = egress
        self.ttl = ttl

    def balance(self, candidates: Iterable[str]) -> tuple[set[str], set[str]]:
        """Heartbeat, renew, claim up to the fair share. Return (symbols to poll, symbols to hand
        over): the latter are beyond the share, still held and renewed until ``release``."""
        wanted = sorted({_resource(s) for s in candidates})
        ttl = f"{self.ttl} seconds"
        with transaction(self.engine) as conn:
            conn.execute(
                text(
                    "INSERT INTO collector_nodes (node, host, pid, egress) VALUES (:n, :h, :p, :e) "
                    "ON CONFLICT (node) DO UPDATE SET heartbeat_at = now()"
                ),
                {"n": self.node, "h": socket.gethostname(), "p": os.getpid(), "e": self.egress},
            )
            live = conn.execute(
                text("SELECT count(*) FROM collector_nodes WHERE heartbeat_at > now() - CAST(:ttl AS interval)"),
                {"ttl": ttl},
            ).scalar_one()
            # Forget resources nobody needs any more (delisted, swept) and very old dead nodes.
            conn.execute(
                text("DELETE FROM collector_leases WHERE holder = :n AND NOT (resource = ANY(:w))"),
                {"n": self.node, "w": wanted},
            )
            conn.execute(
                text("DELETE FROM collector_nodes WHERE heartbeat_at < now() - CAST(:old AS interval)"),
                {"old": f"{self.ttl * 20} seconds"},
            )
            mine = list(
                conn.execute(
                    text(
                        "UPDATE collector_leases SET expires_at = now() + CAST(:ttl AS interval) "
                        "WHERE holder = :n AND expires_at > now() RETURNING resource"
                    ),
                    {"n": self.node, "ttl": ttl},
                ).scalars()
            )
            share = math.ceil(len(wanted) / max(1, live))
            extra: list[str] = []
            if len(mine) > share:
                extra = sorted(mine, key=lambda r: _spread(r, self.node))[share:]
                mine = [r for r in mine if r not in set(extra)]
            elif len(mine) < share:
                free = (
                    conn.execute(
                        text(
                            "SELECT w.r FROM unnest(CAST(:w AS text[])) AS w(r) "
                            "LEFT JOIN collector_leases l ON l.resource = w.r "
                            "WHERE l.resource IS NULL OR l.expires_at < now()"
                        ),
                        {"w": wanted},
                    )
                    .scalars()
                    .all()
                )
                for resource in sorted(free, key=lambda r: _spread(r, self.node)):
                    if len(mine) >= share:
                        break
                    got = conn.execute(
                        text(
                            "INSERT INTO collector_leases (resource, holder, expires_at) "
                            "VALUES (:r, :n, now() + CAST(:ttl AS interval)) "
                            "ON CONFLICT (resource) DO UPDATE SET holder = EXCLUDED.holder, "
                            "expires_at = EXCLUDED.expires_at, acquired_at = now() "
                            "WHERE collector_leases.expires_at < now() RETURNING resource"
                        ),
                        {"r": resource, "n": self.node, "ttl": ttl},
                    ).scalar()
                    if got:
                        mine.append(got)
        return {r.removeprefix("symbol:") for r in mine}, {r.removeprefix("symbol:") for r in extra}

    def release(self, symbols: Iterable[str]) -> None:
        """Hand symbols over now: claimable by any node at once."""
        with transaction(self.engine) as conn:
            conn.execute(
                text(
                    "UPDATE collector_leases SET holder = '', expires_at = now() WHERE holder = :n AND resource = ANY(:r)"
                ),
                {"n": self.node, "r": [_resource(s) for s in symbols]},
            )

    def release_all(self) -> None:
        """On a clean stop: hand everything over at once instead of after the TTL."""
        with transaction(self.engine) as conn:
            conn.execute(text("DELETE FROM collector_leases WHERE holder = :n"), {"n": self.node})
            conn.execute(text("DELETE FROM collector_nodes WHERE node = :n"), {"n": self.node})


def _spread(resource: str, node: str) -> int:
    """A per-node order of resources, so nodes claiming at once mostly want different ones."""
    import zlib

    return zlib.crc32(f"{node}/{resource}".encode())


class SharedAllowance:
    """Weight claimed from the egress IP's shared budget row, spent locally, chunk by chunk."""

    def __init__(
        self,
        engine: Engine,
        egress: str,
        *,
        limit: Callable[[], tuple[int, float]],
        server_time: Callable[[], float],
        chunk: int | None = None,
    ) -> None:
        self.engine = engine
        self.egress = egress
        self._limit = limit  # -> (effective weight per window, window seconds)
        self._server_time = server_time
        self._chunk = chunk
        self._window: int | None = None
        self._left = 0
        self._lock = asyncio.Lock()
        self.claims = 0

    @classmethod
    def for_governor(cls, engine: Engine, egress: str, governor: Any) -> SharedAllowance:
        """The allowance for a weight governor (``collector.exchange.ratelimit.WeightGovernor``):
        its effective limit and window, on its server clock."""

        def limit() -> tuple[int, float]:
            stats = governor.stats()
            return stats.effective_limit or 1, stats.weight_window_seconds or 60.0

        return cls(engine, egress, limit=limit, server_time=governor.server_time)

    async def take(self, weight: int) -> None:
        async with self._lock:
            while True:
                limit, window = self._limit()
                now = self._server_time()
                index = math.floor(now / window)
                if index != self._window:
                    self._window, self._left = index, 0  # unspent weight of a past window is gone
                if self._left >= weight:
                    self._left -= weight
                    return
                chunk = self._chunk or max(1, limit // 100)
                got = await asyncio.to_thread(self._claim, index, window, max(chunk, weight - self._left), limit)
                if not got and weight - self._left < chunk:
                    got = await asyncio.to_thread(self._claim, index, window, weight - self._left, limit)
                if got:
                    self._left += got
                    continue
                await asyncio.sleep(max(0.01, (index + 1) * window - now + 0.05))  # the next window

    def _claim(self, index: int, window: float, amount: int, limit: int) -> int:
        start = datetime.fromtimestamp(index * window, UTC)
        with transaction(self.engine) as conn:
            row = conn.execute(
                text(
                    "INSERT INTO weight_budget (egress, window_start, claimed) VALUES (:e, :w, :a) "
                    "ON CONFLICT (egress, window_start) DO UPDATE SET claimed = weight_budget.claimed + EXCLUDED.claimed "
                    "WHERE weight_budget.claimed + EXCLUDED.claimed <= :limit RETURNING claimed"
                ),
                {"e": self.egress, "w": start, "a": amount, "limit": limit},
            ).scalar()
            if index % 60 == 0:  # now and then, forget windows older than a day
                conn.execute(text("DELETE FROM weight_budget WHERE window_start < now() - interval '1 day'"))
        self.claims += 1
        return amount if row is not None and amount <= limit else 0
