"""``collector_runs``: one row per daemon or backfill run, what it was told to do (never secrets)
and how it ended, with its counts. Functions run inside the caller's transaction."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert, update

from collector.store.models import RunRow, table_of

RUNS = table_of(RunRow)


def begin(conn: Connection, kind: str, args: dict[str, Any]) -> int:
    """A new run (``kind`` 'run' or 'backfill') of this host and process; returns its id."""
    return conn.execute(
        insert(RUNS).values(kind=kind, host=socket.gethostname(), pid=os.getpid(), args=args).returning(RUNS.c.id)
    ).scalar_one()


def finish(conn: Connection, run_id: int, status: str, counts: dict[str, Any], error: str | None = None) -> None:
    """How the run ended: 'ok', 'failed' or 'interrupted'."""
    conn.execute(
        update(RUNS)
        .where(RUNS.c.id == run_id)
        .values(status=status, finished_at=datetime.now(UTC), counts=RUNS.c.counts.op("||")(counts), error=error)
    )


def note(conn: Connection, run_id: int, counts: dict[str, Any]) -> None:
    """Figures of a run still going (merged into its counts), for `collector status`."""
    conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(counts=RUNS.c.counts.op("||")(counts)))
