"""Monthly range partitions of the big tables (``trades`` by ``time``, ``klines`` by ``open_time``).

Layout (built by migration 0004): each table is partitioned ``BY RANGE`` on its time column, with
one partition per calendar month in UTC, named ``<table>_pYYYY_MM`` and covering
``[YYYY-MM-01 00:00 UTC, next month)``, plus ``<table>_default`` for rows no monthly partition
covers (history older than the first partition, or a month the daemon has not prepared yet).

``ensure_partitions`` creates the partitions of the current month and the next ``months_ahead``,
and also one for every month that has rows waiting in the DEFAULT partition (moving those rows
into it), so a backfill of old history ends up in monthly partitions at the next run. It is
idempotent and serialised by a transaction-level advisory lock, so several daemons (and the
migration) may run it at once. Partitions are made the gentle way: a plain table, the matching
rows moved out of DEFAULT, then ``ATTACH PARTITION`` (which only needs SHARE UPDATE EXCLUSIVE on
the parent, so reads and writes of other months go on).

``drop_partitions_before`` is retention: it drops whole months (instant, no vacuum). Nothing
calls it automatically; see docs/operations.md.

Autogenerate must not see the partitions as tables of their own: ``include_name`` is the filter
that ``migrations/env.py`` and the migration-drift test both use.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from sqlalchemy import Connection, text

# Parent table -> its partition key column.
PARTITIONED: dict[str, str] = {"trades": "time", "klines": "open_time"}
DEFAULT_MONTHS_AHEAD = 2
_LOCK = 0x6A6578_0002  # pg_advisory_xact_lock key; 0x6A6578_0001 is the migration lock
_CHILD = re.compile(r"^(?P<table>" + "|".join(PARTITIONED) + r")_(?:p(?P<y>\d{4})_(?P<m>\d{2})|default)$")


def include_name(name: str | None, type_: str, parent_names: dict) -> bool:
    """Alembic ``include_name`` hook: hide partition children from autogenerate."""
    return not (type_ == "table" and name is not None and _CHILD.match(name))


def month_start(value: datetime | date) -> date:
    return date(value.year, value.month, 1)


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def partition_name(table: str, month: date) -> str:
    return f"{table}_p{month.year:04d}_{month.month:02d}"


def default_name(table: str) -> str:
    return f"{table}_default"


def _bound(month: date) -> str:
    return f"'{month.isoformat()} 00:00:00+00'"  # an exact UTC instant, whatever the session TimeZone


def _exists(conn: Connection, name: str) -> bool:
    return bool(conn.execute(text("SELECT to_regclass(:n) IS NOT NULL"), {"n": name}).scalar())


def create_default_partition(conn: Connection, table: str) -> None:
    conn.execute(text(f"CREATE TABLE IF NOT EXISTS {default_name(table)} PARTITION OF {table} DEFAULT"))


def create_month(conn: Connection, table: str, month: date) -> bool:
    """Create (and attach) ``table``'s partition for ``month``; False if it already exists.

    Rows of that month already in the DEFAULT partition are moved into the new partition first
    (PostgreSQL would otherwise refuse the new bound). The DEFAULT partition is locked against
    writes for the move, so no row can slip in between the move and the attach.
    """
    name = partition_name(table, month)
    if _exists(conn, name):
        return False
    column = PARTITIONED[table]
    lo, hi = _bound(month), _bound(add_months(month, 1))
    conn.execute(text(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS)"))
    default = default_name(table)
    if _exists(conn, default):
        conn.execute(text(f"LOCK TABLE {default} IN EXCLUSIVE MODE"))
        conn.execute(
            text(
                f"WITH moved AS (DELETE FROM {default} WHERE {column} >= {lo} AND {column} < {hi} "
                f"RETURNING *) INSERT INTO {name} SELECT * FROM moved"
            )
        )
    # The CHECK lets ATTACH skip scanning the new partition; it is redundant once attached.
    conn.execute(text(f"ALTER TABLE {name} ADD CONSTRAINT {name}_bound CHECK ({column} >= {lo} AND {column} < {hi})"))
    conn.execute(text(f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM ({lo}) TO ({hi})"))
    conn.execute(text(f"ALTER TABLE {name} DROP CONSTRAINT {name}_bound"))
    return True


def months_in_default(conn: Connection, table: str) -> list[date]:
    """The months that have rows sitting in ``table``'s DEFAULT partition."""
    default = default_name(table)
    if not _exists(conn, default):
        return []
    column = PARTITIONED[table]
    rows = conn.execute(text(f"SELECT DISTINCT date_trunc('month', {column}, 'UTC') AT TIME ZONE 'UTC' FROM {default}"))
    return sorted(month_start(r[0]) for r in rows)


def ensure_partitions(
    conn: Connection,
    months_ahead: int = DEFAULT_MONTHS_AHEAD,
    *,
    now: datetime | None = None,
    tables: tuple[str, ...] = tuple(PARTITIONED),
    lock_timeout: str | None = None,
) -> list[str]:
    """Create the monthly partitions of the current month and the next ``months_ahead`` (and of
    any month with rows waiting in DEFAULT) for each partitioned table; returns the names created.

    Runs in the caller's transaction; commit it for the partitions to exist. ``lock_timeout``
    (e.g. '5s') bounds the wait for table locks, so a long analyst query delays this job (which
    retries on its next run) instead of queueing writers behind it.
    """
    if lock_timeout is not None:
        conn.execute(text("SELECT set_config('lock_timeout', :t, true)"), {"t": lock_timeout})
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
    current = month_start(now or datetime.now(UTC))
    wanted = [add_months(current, i) for i in range(months_ahead + 1)]
    created = []
    for table in tables:
        create_default_partition(conn, table)
        for month in sorted(set(wanted) | set(months_in_default(conn, table))):
            if create_month(conn, table, month):
                created.append(partition_name(table, month))
    return created


def monthly_partitions(conn: Connection, table: str) -> dict[date, str]:
    """``table``'s attached monthly partitions, by month."""
    names = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:t)"
        ),
        {"t": table},
    ).scalars()
    found = {}
    for name in names:
        m = _CHILD.match(name)
        if m and m["y"]:
            found[date(int(m["y"]), int(m["m"]), 1)] = name
    return found


def drop_partitions_before(conn: Connection, table: str, month: date | datetime) -> list[str]:
    """Retention: drop ``table``'s monthly partitions of months before ``month`` (their rows go with
    them), and delete the rows before ``month`` that sit in DEFAULT. Returns the dropped names.

    Takes an ACCESS EXCLUSIVE lock on the parent for an instant per partition. Not run by the
    daemon: retention is the operator's call (docs/operations.md).
    """
    if table not in PARTITIONED:
        raise ValueError(f"{table} is not partitioned (one of {', '.join(PARTITIONED)})")
    cutoff = month_start(month)
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
    dropped = []
    for m, name in sorted(monthly_partitions(conn, table).items()):
        if m < cutoff:
            conn.execute(text(f"DROP TABLE {name}"))
            dropped.append(name)
    default = default_name(table)
    if _exists(conn, default):
        conn.execute(text(f"DELETE FROM {default} WHERE {PARTITIONED[table]} < {_bound(cutoff)}"))
    return dropped
