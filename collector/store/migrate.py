"""Running Alembic from the collector, on a connection of ours (``alembic`` alone takes the URL from
the settings in migrations/env.py). The migrations ship inside the package (``collector.migrations``,
the top-level migrations/ of the source tree): an installed wheel needs no source tree."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, text

from collector.errors import ConfigError
from collector.store.db import Database, open_database, transaction

# Several collectors may start at once; only one of them migrates, the others wait for it.
_MIGRATION_LOCK = 0x6A6578_0001


def alembic_config() -> Config:
    """alembic.ini's settings, from the package (alembic.ini stays for developers' `alembic`)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(files("collector.migrations")))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    cfg.set_main_option("timezone", "UTC")
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def require_schema(engine: Engine, where: str) -> None:
    """ConfigError unless the database has the schema this collector reads (its head revision): a
    command that reads says what to do in one line instead of failing on a missing table."""
    with transaction(engine) as conn:
        current = current_revision(conn)
    head = head_revision()
    if current is None:
        raise ConfigError(f"the database at {where} has no schema (revision none); run `collector db upgrade`")
    if current != head:
        raise ConfigError(
            f"the database at {where} is at revision {current}, this collector reads {head}; run `collector db upgrade`"
        )


def open_for_reading(url: str | None, data_dir: Path, **kwargs: Any) -> Database:
    """``open_database`` for what only reads the store: an embedded database that does not exist yet
    is not made, and one without the current schema is one ConfigError line (``require_schema``)."""
    db = open_database(url, data_dir, create=False, **kwargs)
    try:
        require_schema(db.engine, db.display_url)
    except BaseException:
        db.close()
        raise
    return db


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate to ``revision``; return (before, after). A second run does nothing."""
    cfg = alembic_config()
    with transaction(engine) as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        before = current_revision(conn)
        cfg.attributes["connection"] = conn
        try:
            command.upgrade(cfg, revision)
        except CommandError as exc:  # e.g. an unknown revision: the operator's input, one line
            raise ConfigError(f"cannot upgrade to {revision!r}: {exc}") from None
        after = current_revision(conn)
    return before, after
