"""Secrets never leak, SQL is parameterised, servers bind loopback by default.

A real daemon (`python -m collector run`, text and then JSON logs at DEBUG) collecting market data
and the account (signed requests with the key and secret the simulator knows), and failing runs (a
backfill refused, signed requests with a wrong secret, a database that does not answer) with an
API key, an API secret and a database password; afterwards none of the three appears in any log
line, in /metrics, in any error message, or in any row of any table (cast to text).
"""

from __future__ import annotations

import ast
import asyncio
import os
import re
import signal
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from collector.simulator import SimConfig, Simulator
from collector.store.db import make_engine
from tests.helpers.daemon_truth import SIM as DAEMON_SIM
from tests.helpers.polling import count, until

REPO = Path(__file__).resolve().parents[2]
API_KEY = "KEYk3yK3Y0123456789abcdef"
API_SECRET = "SECRETs3cr3t-fedcba9876543210"
DB_PASSWORD = "PASSWORDpa55w0rd-13579"


@pytest.fixture
def url_with_password(db_url: str):
    """The test database reached as a role with a password (the server may trust loopback; the
    password is still in the URL, which is what must not leak)."""
    engine = make_engine(db_url)
    role = "jex_sec_" + os.urandom(3).hex()
    dbname = make_url(db_url).database
    with engine.begin() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{DB_PASSWORD}'"))  # test-only DDL
    yield make_url(db_url).set(username=role, password=DB_PASSWORD).render_as_string(hide_password=False)
    with engine.begin() as conn:
        conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"))
        conn.execute(text(f"REASSIGN OWNED BY {role} TO CURRENT_USER"))
        conn.execute(text(f"DROP OWNED BY {role}"))
        conn.execute(text(f"DROP ROLE {role}"))
    engine.dispose()
    assert dbname


DEPTH_ROWS = "SELECT count(*) FROM depth_snapshots"
SIGNED_OK = re.compile(r'jex_exchange_requests_total\{endpoint="(account|position|historyOrders)",status="200"\} [1-9]')


async def until_rows(url: str, sql: str, above: int, timeout: float = 60) -> None:
    """Until the query counts more than ``above`` rows (counted before the daemon started: its
    first poll may commit before any look taken after it has said it is collecting)."""
    engine = make_engine(url)
    try:
        await until(lambda: count(engine, sql) > above, timeout, f"new rows from {sql!r}")
    finally:
        engine.dispose()


def count_rows(url: str, sql: str) -> int:
    engine = make_engine(url)
    try:
        return count(engine, sql)
    finally:
        engine.dispose()


def assert_clean(where: str, blob: str) -> None:
    for secret in (API_KEY, API_SECRET, DB_PASSWORD):
        assert secret not in blob, f"{secret[:6]}... leaked in {where}"


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_secrets_never_appear_in_logs_metrics_errors_or_database(url_with_password, db_url, engine, tmp_path):
    # the account's key pair is known to the exchange: the signed stream works, and is watched too
    cfg = SimConfig(**{**DAEMON_SIM, "weight_limit": 0}, accounts={API_KEY: API_SECRET})
    async with Simulator(cfg, port=0) as sim:
        base = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
        base.update(
            COLLECTOR_DATABASE_URL=url_with_password,
            COLLECTOR_EXCHANGE_URL=sim.base_url,
            COLLECTOR_API_KEY=API_KEY,
            COLLECTOR_API_SECRET=API_SECRET,
            COLLECTOR_LOG_LEVEL="DEBUG",
            COLLECTOR_TRADES_POLL_SECONDS="1",
            COLLECTOR_ACCOUNT_POLL_SECONDS="1",
            COLLECTOR_ACCOUNT_HISTORY_SECONDS="2",
            COLLECTOR_LOOKBACK_HOURS="0.02",
            COLLECTOR_DATA_DIR=str(tmp_path),
        )
        outputs: dict[str, str] = {}
        for fmt in ("text", "json"):
            # Port 0: the daemon binds a free port and names it in its "collecting" line.
            env = {**base, "COLLECTOR_LOG_FORMAT": fmt, "COLLECTOR_METRICS_PORT": "0"}
            depth_before = await asyncio.to_thread(count_rows, db_url, DEPTH_ROWS)
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "collector",
                "run",
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            err: list[str] = []
            out: list[str] = []
            collecting = asyncio.get_running_loop().create_future()

            async def drain(stream, lines: list[str], collecting=collecting) -> None:
                # Read everything as it comes, in chunks (a DEBUG line can pass any line limit): an
                # unread pipe fills and blocks the daemon.
                while chunk := await stream.read(1 << 16):
                    lines.append(chunk.decode(errors="replace"))
                    if not collecting.done():
                        found = re.search(r"collecting .*?metrics on http://127\.0\.0\.1:(\d+)/metrics", "".join(lines))
                        if found:
                            collecting.set_result(int(found.group(1)))
                if not collecting.done():
                    collecting.set_exception(AssertionError("daemon exited: " + "".join(lines)[-3000:]))

            readers = [asyncio.create_task(drain(proc.stderr, err)), asyncio.create_task(drain(proc.stdout, out))]
            port = await asyncio.wait_for(collecting, 60)
            # the metrics server binds loopback only
            listening = {
                c.laddr.ip for c in psutil.Process(proc.pid).net_connections("tcp") if c.status == psutil.CONN_LISTEN
            }
            assert listening == {"127.0.0.1"}, listening
            # Let it work: new rows stored through the password-bearing URL, and signed requests
            # answered, so secrets had every chance to leak.
            await until_rows(url_with_password, DEPTH_ROWS, above=depth_before)
            metrics_url = f"http://127.0.0.1:{port}/metrics"
            await until(lambda u=metrics_url: SIGNED_OK.search(fetch(u)), 60, "signed requests answered")
            outputs[f"/metrics ({fmt})"] = await asyncio.to_thread(fetch, metrics_url)
            outputs[f"/healthz ({fmt})"] = await asyncio.to_thread(fetch, f"http://127.0.0.1:{port}/healthz")
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 30)
            await asyncio.wait_for(asyncio.gather(*readers), 10)
            outputs[f"daemon log ({fmt})"] = "".join(err) + "".join(out)
            assert proc.returncode == 0, outputs[f"daemon log ({fmt})"][-2000:]
        assert '"level": "DEBUG"' in outputs["daemon log (json)"]
        # Errors: a backfill refused by the exchange, a database that does not answer, config show.
        now = sim.now_ms() // 1000
        recent = [time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - back)) for back in (1800, 60)]
        for name, args, extra in (
            ("backfill error", ["backfill", "--start", "2026-01-01", "--end", "2026-01-02", "--symbol", "NOPE"], {}),
            (
                "signed refusal",  # a wrong secret that holds the real one: refused, and never printed
                ["backfill", "--start", recent[0], "--end", recent[1], "--streams", "orders,records"],
                {"COLLECTOR_API_SECRET": "x" + API_SECRET},
            ),
            (
                "database error",
                ["db", "upgrade"],
                {"COLLECTOR_DATABASE_URL": f"postgresql://u:{DB_PASSWORD}@127.0.0.1:9/x"},
            ),
            ("config show", ["config", "show"], {}),
            ("status", ["status", "--json"], {}),
            (
                "bad setting",
                ["config", "show"],
                {"COLLECTOR_API_SECRET": "", "COLLECTOR_DATABASE_URL": f"mysql://u:{DB_PASSWORD}@h/x"},
            ),
        ):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "collector",
                *args,
                env={**base, **extra},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            outputs[name] = out.decode() + err.decode()
    assert "-1022" in outputs["signed refusal"], outputs["signed refusal"][-2000:]  # the signature was refused
    for where, blob in outputs.items():
        assert_clean(where, blob)
    assert "jex_" in outputs["/metrics (text)"]

    # Every row of every table, cast to text.
    with engine.connect() as conn:
        tables = (
            conn.execute(
                text(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'public' AND c.relkind = 'r'"
                )
            )
            .scalars()
            .all()
        )
        assert conn.execute(text("SELECT count(*) FROM collector_runs")).scalar() >= 2  # both runs logged
        assert conn.execute(text("SELECT count(*) FROM option_symbols")).scalar() > 0
        for table in tables:
            for secret in (API_KEY, API_SECRET, DB_PASSWORD):
                hits = conn.execute(
                    text(f'SELECT count(*) FROM "{table}" t WHERE t::text LIKE :s'),  # noqa: S608
                    {"s": f"%{secret}%"},
                ).scalar()
                assert hits == 0, f"{secret[:6]}... stored in {table}"


def fetch(url: str) -> str:
    try:
        return urllib.request.urlopen(url, timeout=10).read().decode()
    except urllib.error.HTTPError as exc:  # 503 while catching up is still a body to check
        return exc.read().decode()


# --- SQL is parameterised ----------------------------------------------------------------------

SQL_CALLS = {"text", "execute", "exec_driver_sql", "copy", "executemany"}
# Every value interpolated into SQL text, reviewed: identifiers from fixed tables in the code, or
# fragments whose values are bind parameters, or (partition DDL, which cannot take parameters)
# literals rendered from ``date`` objects. Anything new fails here until reviewed.
ALLOWED = {
    "collector/analyst/frames.py": {"sql.format(columns=_select_list(cols, decimals))"},  # a column list
    "collector/analyst/export.py": {"measures", "select", "spec.source", "where"},  # fixed specs; %(name)s params
    "collector/analyst/status.py": {
        "bucket.format(c='open_time')",
        "bucket.format(c=col)",
        "bucket.format(c='k.open_time')",
        "bucket.format(c=_KLINE_END)",  # a constant expression over a column
        "_IV_SPANS",  # VALUES of the interval names and lengths, from collector.domain.INTERVALS
        "c",
        "col",
        "t",
        "table",
    },
    # DDL takes no bind parameters: the role name is checked against [a-z_][a-z0-9_]{0,62} first, the
    # database and owners are quoted by _ident, and the verifier is SCRAM's base64 and '$:' only
    "collector/store/roles.py": {
        "'CREATE' if found is None else 'ALTER'",
        "_ident(database)",
        "_ident(owner)",
        "role",
        "verifier",
    },
    "migrations/versions/0007_backfill_coverage.py": {"column", "comment"},  # the migration's own constants
    # the comments' own table, column and function names; their texts quoted by _literal
    "migrations/versions/0009_comments_for_analysts.py": {
        "_literal(None if remove else comment)",
        "_literal(None if remove else text)",
        "column",
        "kind",
        "name",
        "signature",
    },
    "collector/store/account.py": {"keys", "table.name"},  # a snapshot table's name and key columns
    "collector/store/partitions.py": {
        "PARTITIONED[table]",
        "_bound(cutoff)",
        "column",
        "default",
        "default_name(table)",
        "hi",
        "lo",
        "name",
        "table",
    },  # lo/hi: _bound(date)
    # as_text/as_stored: the table's own column names, quoted by _q, with fixed casts
    "collector/store/upsert.py": {"_q(table.name)", "_q(tmp)", "as_stored", "as_text", "cols"},
    "collector/analyst/verify.py": {"MAX_REPORTED", "where"},  # a constant int; ':start'/':end' params
    "migrations/versions/0004_partition_trades_klines.py": {"cols", "column", "source", "suffix", "table"},
    "migrations/versions/0006_the_account.py": {"view"},  # the migration's own view names
    # the klines columns the stream's open kline writes (StreamKline's own field names); values are parameters
    "collector/store/write.py": {"_SK_COLUMNS", "_SK_MINE", "_SK_SET", "_SK_THEIRS", "_SK_VALUES"},
    # the migration's own column names and comment texts (quotes doubled)
    "migrations/versions/0011_klines_open_from_push.py": {"column", "text.replace(chr(39), chr(39) * 2)"},
}


def interpolations() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    files = [*REPO.joinpath("collector").rglob("*.py"), *REPO.joinpath("migrations").rglob("*.py")]
    for path in sorted(files):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and node.args):
                continue
            f = node.func
            if (f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)) not in SQL_CALLS:
                continue
            arg = node.args[0]
            rel = str(path.relative_to(REPO))
            for sub in ast.walk(arg):
                if isinstance(sub, ast.FormattedValue):
                    found.setdefault(rel, set()).add(ast.unparse(sub.value))
            # %-formatting straight into SQL is never allowed; .format() is reviewed like f-strings
            assert not (isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Mod)), f"{rel}:{node.lineno}"
            if isinstance(arg, ast.Call) and getattr(arg.func, "attr", "") == "format":
                found.setdefault(rel, set()).add(ast.unparse(arg))
    return found


def test_sql_interpolates_only_reviewed_identifiers():
    found = interpolations()
    unreviewed = {f: sorted(v - ALLOWED.get(f, set())) for f, v in found.items() if v - ALLOWED.get(f, set())}
    assert not unreviewed, f"values formatted into SQL text; use bind parameters (or review): {unreviewed}"


def test_partition_bounds_are_rendered_from_dates_only():
    from datetime import date

    from collector.store.partitions import _bound

    assert _bound(date(2026, 3, 1)) == "'2026-03-01 00:00:00+00'"
    src = (REPO / "collector/store/partitions.py").read_text()
    assert re.search(r"def _bound\(month: date\) -> str", src)


# --- loopback by default -------------------------------------------------------------------------


def test_servers_bind_loopback_by_default():
    import inspect

    from collector.config import load_settings
    from collector.simulator.cli import simulate_command

    assert load_settings(None, {}).metrics_host == "127.0.0.1"
    assert inspect.signature(Simulator.__init__).parameters["host"].default == "127.0.0.1"
    assert inspect.signature(simulate_command).parameters["host"].default.default == "127.0.0.1"


async def test_simulator_listens_on_loopback_only():
    async with Simulator(SimConfig(history_days=0.01, symbols=2), port=0) as sim:
        listening = {
            c.laddr.ip
            for c in psutil.Process().net_connections("tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == int(sim.base_url.rsplit(":", 1)[1])
        }
    assert listening == {"127.0.0.1"}
