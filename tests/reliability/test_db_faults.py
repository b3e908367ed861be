"""Database faults under a running daemon: its connections terminated again and again
(pg_terminate_backend, as a failover or an admin would), then PostgreSQL restarted. The daemon
waits, reconnects and loses nothing; no checkpoint ever points past committed rows.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from collector.simulator import SimConfig, Simulator
from tests.helpers.daemon_truth import SIM, caught_up, check_up_to, daemon_settings
from tests.helpers.daemons import running_daemon
from tests.helpers.kills import checkpoints_never_ahead
from tests.helpers.polling import count, until

TRADES = "SELECT count(*) FROM trades"


def terminate_others(engine) -> int:
    """Terminate every other backend on this database (the daemon's connections)."""
    with engine.connect() as conn:
        n = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar()
        conn.commit()
    return int(n)


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_daemon_survives_terminated_connections_and_a_restart(db_url, engine, pg_server):
    rng = random.Random(77)
    async with Simulator(SimConfig(**SIM), port=0) as sim:
        begun = datetime.now(UTC)
        async with running_daemon(daemon_settings(sim, db_url), stop_timeout=30):
            await until(lambda: count(engine, TRADES) > 0, 60, "first trades")
            killed = 0
            for _ in range(15):  # chaos: random gaps between rounds of terminations
                await asyncio.sleep(rng.uniform(0.2, 2.0))
                killed += await asyncio.to_thread(terminate_others, engine)
                await asyncio.to_thread(checkpoints_never_ahead, engine)
            if pg_server.can_restart:
                await asyncio.to_thread(pg_server.restart)
                engine.dispose()
            before = await asyncio.to_thread(count, engine, TRADES)
            await until(lambda: count(engine, TRADES) > before, 90, "trades stored after the faults")
            # Everything the exchange had when the faults ended arrives (polls may be stretched to
            # fit the weight budget, so no fixed settle time would do).
            faults_over = datetime.now(UTC)
            await caught_up(engine, sim, begun, faults_over, 90)
        result = check_up_to(engine, sim, begun, faults_over)  # the daemon has exited 0
        checkpoints_never_ahead(engine)
        assert killed >= 10, killed
        assert result["trades"] > 50
        assert sim.stats.status_429 == 0 and sim.stats.status_418 == 0
    # (Most terminations are absorbed by the pool's pre-ping; the ones that hit a transaction
    # roll it back with its checkpoint, which the truth check above covers.)
