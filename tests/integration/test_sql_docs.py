"""docs/sql.md: every SQL block runs against a populated database and returns rows; the views'
migration goes down and up again cleanly."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.integration.analyst_data import execute, ms, populate
from sqlalchemy import inspect, text

from collector.simulator import Market, SimConfig
from collector.store.migrate import upgrade

DOC = Path(__file__).resolve().parents[2] / "docs" / "sql.md"
BLOCKS = re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.S)
VIEWS = {"option_chain", "top_of_book", "trades_enriched"}


def test_doc_has_examples():
    assert len(BLOCKS) >= 10
    for view in VIEWS:
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
    names = populate(engine, start=start, end=end, m=m)
    execute(engine, "DELETE FROM klines WHERE symbol = :s AND open_time = :t", s=names[-1],
            t=start + timedelta(minutes=30))  # one gap for the gap query to find
    with engine.connect() as conn:
        rows = conn.execute(text(BLOCKS[n])).all()
    assert rows, BLOCKS[n]


def test_views_migration_down_and_up(engine):
    assert VIEWS <= set(inspect(engine).get_view_names())
    from alembic import command

    from collector.store.migrate import alembic_config

    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    assert not (VIEWS & set(inspect(engine).get_view_names()))
    upgrade(engine)
    assert VIEWS <= set(inspect(engine).get_view_names())
