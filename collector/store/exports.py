"""What exports need of the database beyond the tables: the columns of views, and for incremental
exports (``collector export --since-last``) the ingestion horizon and the export cursors.

An incremental export takes the rows whose ``ingested_at`` lies in ``[position, horizon)``, where
``position`` is where its cursor stands and ``horizon`` is a time below which no row can still
appear: every transaction that could yet commit a row with a smaller ``ingested_at`` is running now
(``ingested_at`` is the writing transaction's start time), so the horizon is the start of the
oldest transaction in progress in this database (``pg_stat_activity``), or now when there is none
(less ``SETTLE``). It is read *before* the export's snapshot is taken, so that every transaction
that started before the horizon and had not committed by the snapshot was seen running. The new
position is stored in the transaction that read the rows, after the file is written: a failure
anywhere leaves the cursor where it was. Design and guarantee: docs/analysis.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy.exc
from sqlalchemy import Connection, Engine, text

from collector.errors import ConfigError, TransientError
from collector.store.columns import Column
from collector.store.db import reading, transaction

# A transaction takes its start time a few microseconds before it shows in pg_stat_activity; a
# horizon at least this far behind now() cannot fall into that gap (nor into a small clock step).
SETTLE = timedelta(seconds=1)

# PostgreSQL's type names (regtype) -> the export's kinds; any other type is exported as its text.
_KINDS = {
    "numeric": "num",
    "timestamp with time zone": "time",
    "bigint": "int",
    "integer": "int",
    "smallint": "int",
    "boolean": "bool",
    "text": "text",
    "character varying": "text",
    "date": "date",
    "interval": "interval",
    "double precision": "float",
    "real": "float",
}


def view_columns(conn: Connection, view: str) -> tuple[Column, ...]:
    """The columns of ``view`` in its order, with their kinds (views are not in the models)."""
    rows = conn.execute(
        text(
            "SELECT a.attname, a.atttypid::regtype::text FROM pg_attribute a "
            "WHERE a.attrelid = to_regclass(:v) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
        ),
        {"v": view},
    ).all()
    if not rows:
        raise ConfigError(f"no view {view!r} in this database")
    out = []
    for name, type_name in rows:
        kind = _KINDS.get(type_name)
        quoted = '"' + name.replace('"', '""') + '"'
        out.append(Column(name, kind or "text", True, quoted if kind else f"{quoted}::text"))
    return tuple(out)


# --- the ingestion horizon ------------------------------------------------------------------------

_HORIZON = text(
    """
SELECT now(),
       pg_is_in_recovery(),
       (SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()),
       (SELECT count(*) FROM pg_stat_activity a
        WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND a.usesysid IS NOT NULL
          AND NOT (pg_has_role(a.usesysid, 'USAGE') OR pg_has_role('pg_read_all_stats', 'USAGE')))
"""
)
# Autovacuum runs transactions of its own but never writes rows.
_OLDEST = text(
    """
SELECT a.xact_start, a.pid, a.application_name FROM pg_stat_activity a
WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND a.xact_start IS NOT NULL
  AND a.backend_type NOT IN ('autovacuum worker', 'autovacuum launcher')
ORDER BY a.xact_start LIMIT 1
"""
)


@dataclass(frozen=True)
class Horizon:
    at: datetime  # every row with ingested_at below it is committed (or never will be)
    held_by: str | None = None  # the transaction holding it back, when one is older than SETTLE


def horizon(conn: Connection, settle: timedelta = SETTLE) -> Horizon:
    """The ingestion horizon now (see the module docstring); ConfigError where it cannot be known."""
    now, standby, prepared, hidden = conn.execute(_HORIZON).one()
    if standby:
        raise ConfigError("--since-last needs the primary: a standby neither sees its writers nor stores a cursor")
    if prepared:
        raise ConfigError(
            f"{prepared} prepared transaction(s) in this database: their rows' ingestion times are unknown "
            "until they are committed or rolled back (pg_prepared_xacts)"
        )
    if hidden:
        raise ConfigError(
            f"--since-last must see every session's transaction, and {hidden} session(s) of other roles are "
            "hidden from this one: export as the collector's role, or grant it pg_read_all_stats"
        )
    at = now - settle
    oldest = conn.execute(_OLDEST).one_or_none()
    if oldest is not None and oldest[0] < at:
        start, pid, app = oldest
        return Horizon(start, f"pid {pid} ({app or 'no application name'}) in a transaction since {_iso(start)}")
    return Horizon(at)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- export cursors -------------------------------------------------------------------------------


@dataclass
class Incremental:
    """One incremental export in progress: ``conn`` is a REPEATABLE READ transaction holding the
    cursor's row lock; export the rows with ``since <= ingested_at < until`` through it (``since``
    None: from the start), then ``advance``."""

    conn: Connection
    name: str
    since: datetime | None
    until: datetime
    held_by: str | None

    def advance(self, rows: int) -> None:
        """Store ``until`` as the cursor's position and commit: call once the output is in place."""
        self.conn.execute(
            text(
                "UPDATE export_cursors SET exported_until = :until, runs = runs + 1, rows = rows + :rows, "
                "updated_at = now() WHERE name = :name"
            ),
            {"until": self.until, "rows": rows, "name": self.name},
        )
        self.conn.commit()


@contextmanager
def incremental(engine: Engine, name: str, relation: str, *, settle: timedelta = SETTLE) -> Iterator[Incremental]:
    """Open the incremental export ``name`` of ``relation`` (the cursor is made on first use).

    Leaving the block without ``advance`` (an exception, a crash) rolls back: the cursor does not
    move. Another export holding the same cursor is a TransientError (try again when it is done).
    """
    with transaction(engine) as conn:
        conn.execute(
            text("INSERT INTO export_cursors (name, relation) VALUES (:n, :r) ON CONFLICT (name) DO NOTHING"),
            {"n": name, "r": relation},
        )
        # Read before the export's snapshot exists: see the module docstring.
        limit = horizon(conn, settle)
    with reading(engine, isolation="REPEATABLE READ") as conn:
        try:
            row = conn.execute(
                text("SELECT relation, exported_until FROM export_cursors WHERE name = :n FOR UPDATE NOWAIT"),
                {"n": name},
            ).one_or_none()
        except sqlalchemy.exc.DBAPIError as exc:
            # 55P03: locked by a running export; 40001: moved by one that finished after our snapshot.
            if getattr(exc.orig, "sqlstate", None) in ("55P03", "40001"):
                raise TransientError(
                    f"export cursor {name!r} is in use by another export; run again when it has finished"
                ) from None
            raise
        if row is None:  # deleted between the two transactions
            raise TransientError(f"export cursor {name!r} vanished meanwhile; run again")
        stored_relation, since = row
        if stored_relation != relation:
            raise ConfigError(f"export cursor {name!r} belongs to exports of {stored_relation}, not {relation}")
        # A horizon is never below an earlier one, but a horizon read before a concurrent export
        # committed its own could be: the position never goes back.
        until = limit.at if since is None else max(limit.at, since)
        yield Incremental(conn, name, since, until, limit.held_by)


def cursor_position(engine: Engine, name: str) -> tuple[str, datetime | None, int, int] | None:
    """(relation, position, runs, rows) of the export cursor ``name``, or None if there is none."""
    with reading(engine) as conn:
        row = conn.execute(
            text("SELECT relation, exported_until, runs, rows FROM export_cursors WHERE name = :n"), {"n": name}
        ).one_or_none()
    return None if row is None else (row[0], row[1], row[2], row[3])
