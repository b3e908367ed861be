"""Migrations: upgrade head builds exactly the models (with their comments); the contract's tables and
types are there."""

from __future__ import annotations

import os
import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from collector.store.comments import described
from collector.store.db import make_engine
from collector.store.migrate import head_revision, upgrade
from collector.store.models import metadata
from collector.store.partitions import include_name

CONTRACT = {
    "option_symbols": (["symbol"], {"option_type", "expiry_time", "strike_price", "status", "first_seen", "last_seen"}),
    "klines": (
        ["symbol", "interval", "open_time"],
        {
            "close_time",
            "open",
            "high",
            "low",
            "close",
            "volume",
            "quote_volume",
            "trade_count",
            "taker_buy_base_volume",
            "taker_buy_quote_volume",
        },
    ),
    # (symbol, trade_id) is the natural key; `time` joins it because trades is partitioned by it.
    "trades": (["symbol", "trade_id", "time"], {"price", "qty", "time", "buyer_maker"}),
    "depth_snapshots": (["id"], {"symbol", "captured_at", "last_update_id"}),
    "depth_levels": (["snapshot_id", "side", "level"], {"price", "qty"}),
    "tickers_24hr": (
        ["symbol", "captured_at"],
        {
            "price_change",
            "price_change_percent",
            "weighted_avg_price",
            "last_price",
            "bid_price",
            "bid_qty",
            "ask_price",
            "ask_qty",
            "open_price",
            "high_price",
            "low_price",
            "volume",
            "quote_volume",
            "open_time",
            "close_time",
            "expiry_time",
            "strike_price",
            "underlying_price",
            "perform_price",
        },
    ),
}
NUMERIC = {
    "strike_price",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "taker_buy_base_volume",
    "taker_buy_quote_volume",
    "price",
    "qty",
    "price_change",
    "price_change_percent",
    "weighted_avg_price",
    "last_price",
    "bid_price",
    "bid_qty",
    "ask_price",
    "ask_qty",
    "open_price",
    "high_price",
    "low_price",
    "underlying_price",
    "perform_price",
}


def test_upgrade_head_matches_models(empty_db_url):
    engine = make_engine(empty_db_url)
    try:
        assert upgrade(engine) == (None, head_revision())
        with engine.connect() as conn:
            opts = {"compare_type": True, "include_name": include_name}  # as migrations/env.py
            diff = compare_metadata(MigrationContext.configure(conn, opts=opts), described(metadata))
        assert diff == []
    finally:
        engine.dispose()


def test_contract_tables_keys_and_types(engine):
    insp = inspect(engine)
    for table, (pk, columns) in CONTRACT.items():
        cols = {c["name"]: c for c in insp.get_columns(table)}
        assert columns <= set(cols), (table, columns - set(cols))
        assert insp.get_pk_constraint(table)["constrained_columns"] == pk, table
        for name, col in cols.items():
            type_name = type(col["type"]).__name__
            if name.endswith(("_time", "_at", "_seen")) or name == "time":
                assert type_name == "TIMESTAMP" and col["type"].timezone, (table, name)
            elif name in NUMERIC:
                assert type_name == "NUMERIC", (table, name, type_name)


def test_cli_upgrade_twice_with_only_the_url_set(empty_db_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    env["COLLECTOR_DATABASE_URL"] = empty_db_url.replace("postgresql+psycopg://", "postgresql://")
    run = [sys.executable, "-m", "collector", "db", "upgrade"]
    first = subprocess.run(run, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "upgraded <empty> -> " in first.stdout
    second = subprocess.run(run, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "nothing to do" in second.stdout
    engine = make_engine(empty_db_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert set(CONTRACT) <= tables


def test_cli_upgrade_with_nothing_set_uses_embedded_server_in_the_users_data_directory(tmp_path):
    """Nothing set: the embedded database lives in the per-user data directory, the same from any
    current directory (here $XDG_DATA_HOME points into the test's own directory)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    tmp_path.chmod(0o755)
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    run = [sys.executable, "-m", "collector", "db", "upgrade"]
    first = subprocess.run(run, env=env, cwd=here, capture_output=True, text=True, timeout=180)
    assert first.returncode == 0, first.stderr
    assert f"embedded PostgreSQL in {tmp_path / 'xdg' / 'jex-collector' / 'pg'}" in first.stderr
    assert "upgraded <empty> -> " in first.stdout
    again = subprocess.run(run, env=env, cwd=there, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0 and "nothing to do" in again.stdout  # the same database, from elsewhere
    assert (tmp_path / "xdg" / "jex-collector" / "pg" / "PG_VERSION").exists()
    assert list(here.iterdir()) == list(there.iterdir()) == []  # nothing in the current directory


MARKET = ("trades", "klines", "tickers_24hr", "depth_snapshots", "avg_prices", "book_tickers")


def test_ingestion_time_and_export_cursors_down_and_up(engine):
    """0008 down and up again: the rows stay; rows stored before it read as ingested at the
    migration; the column, its BRIN index and the cursors' table come back, commented."""
    from alembic import command
    from sqlalchemy import text

    from collector.store.migrate import alembic_config

    with engine.begin() as conn:
        conn.execute(text("INSERT INTO trades (symbol, trade_id, time, price, qty) VALUES ('S', 1, now(), 1.5, 2)"))
        conn.execute(text("INSERT INTO export_cursors (name, relation) VALUES ('c', 'trades')"))
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0007")
    insp = inspect(engine)
    assert "export_cursors" not in insp.get_table_names()
    for table in MARKET:
        assert "ingested_at" not in {c["name"] for c in insp.get_columns(table)}, table
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO trades (symbol, trade_id, time, price, qty) VALUES ('S', 2, now(), 1.5, 2)"))
    assert upgrade(engine)[1] == head_revision()
    with engine.connect() as conn:
        stamps = conn.execute(text("SELECT DISTINCT ingested_at FROM trades")).scalars().all()
        assert len(stamps) == 1 and stamps[0] is not None  # both rows: the migration's time, no rewrite needed
        for table in MARKET:
            comment, index = conn.execute(
                text(
                    "SELECT col_description(CAST(:t AS regclass), attnum), "
                    "(SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_' || :t || '_ingested_at') "
                    "FROM pg_attribute WHERE attrelid = CAST(:t AS regclass) AND attname = 'ingested_at'"
                ),
                {"t": table},
            ).one()
            assert comment and "since-last" in comment and "USING brin" in index, table
        undocumented = conn.execute(
            text(
                "SELECT attname FROM pg_attribute WHERE attrelid = 'export_cursors'::regclass AND attnum > 0 "
                "AND col_description(attrelid, attnum) IS NULL"
            )
        ).all()
        assert undocumented == [] and conn.execute(text("SELECT obj_description('export_cursors'::regclass)")).scalar()
        assert conn.execute(text("SELECT count(*) FROM export_cursors")).scalar() == 0  # dropped with its table
