"""docs/sql.md: every SQL block runs against a populated database and returns rows; the views'
migration goes down and up again cleanly."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from collector.simulator import Market, SimConfig
from collector.store.migrate import upgrade
from tests.helpers.analyst_data import ms, populate, populate_account

DOC = Path(__file__).resolve().parents[2] / "docs" / "sql.md"
BLOCKS = re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.S)
VIEWS = {"option_chain", "top_of_book", "trades_enriched"}
ACCOUNT_VIEWS = {"account_open_orders", "position_marks", "account_balance_daily"}


def test_doc_has_examples():
    assert len(BLOCKS) >= 10
    for view in VIEWS | ACCOUNT_VIEWS:
        assert f"### `{view}`" in DOC.read_text() or f"### `{view}` and" in DOC.read_text()


@pytest.fixture(scope="module")
def window():
    # Anchored at the wall clock so that `now()`-relative examples and the live chain find data.
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return end - timedelta(hours=2), end


@pytest.mark.parametrize("n", range(len(BLOCKS)))
def test_every_block_runs_and_returns_rows(engine, window, n):
    start, end = window
    m = Market(SimConfig(seed=3, history_days=0.2, symbols=4, start_ms=ms(end)))
    populate(engine, start=start, end=end, m=m)
    populate_account(engine, m, end)
    # One gap for the gap query to find: a kline with neighbours on both sides (which symbols trade
    # at that minute depends on the hour the test runs in).
    t = start + timedelta(minutes=30)
    with engine.begin() as conn:
        deleted = conn.execute(
            text(
                "DELETE FROM klines WHERE (symbol, interval, open_time) IN (SELECT k.symbol, k.interval, k.open_time "
                "FROM klines k WHERE k.interval = '1m' AND k.open_time = :t AND EXISTS (SELECT 1 FROM klines b "
                "WHERE b.symbol = k.symbol AND b.interval = '1m' AND b.open_time = :t - interval '1 minute') "
                "AND EXISTS (SELECT 1 FROM klines a WHERE a.symbol = k.symbol AND a.interval = '1m' "
                "AND a.open_time = :t + interval '1 minute') ORDER BY k.symbol LIMIT 1)"
            ),
            {"t": t},
        ).rowcount
    assert deleted == 1
    with engine.connect() as conn:
        rows = conn.execute(text(BLOCKS[n])).all()
    assert rows, BLOCKS[n]


def test_views_migration_down_and_up(engine):
    assert set(inspect(engine).get_view_names()) >= VIEWS
    from alembic import command

    from collector.store.migrate import alembic_config

    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    assert not (VIEWS & set(inspect(engine).get_view_names()))
    upgrade(engine)
    assert set(inspect(engine).get_view_names()) >= VIEWS


def test_on_the_demos_chain_market_the_chain_has_calls_and_puts_at_several_strikes_and_put_call_numbers(engine, window):
    """The demo's market (chains of calls and puts): option_chain shows several strikes of each kind
    per expiry, and the put/call example of this file returns numbers, not NULL."""
    start, end = window
    m = Market(SimConfig(market="chain", seed=1, history_days=0.2, symbols=28, start_ms=ms(end)))
    populate(engine, start=start, end=end, m=m)
    with engine.connect() as conn:
        chain = conn.execute(
            text(
                "SELECT expiry_time, option_type, count(DISTINCT strike_price) FROM option_chain "
                "GROUP BY expiry_time, option_type"
            )
        ).all()
        put_call = conn.execute(text(next(b for b in BLOCKS if "put_call_ratio" in b))).all()
    assert {t for _, t, _ in chain} == {"CALL", "PUT"} and all(n >= 3 for *_, n in chain), chain
    assert any(r.put_call_ratio is not None for r in put_call), put_call
