"""export of a million trades stays under 300 MB of peak RSS, as one Parquet file and as a
partitioned, incremental dataset, and what it writes is exact."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from sqlalchemy import text

# The same rows as the export benchmark: prices with 4 or 8 decimals, some buyer_maker unknown.
from bench.bench_export import FILL
from collector.store.db import make_engine
from collector.store.exports import SETTLE
from tests.conftest import _with_database, create_database, drop_database

ROWS = 1_000_000
LIMIT = 300 * 2**20
needs_gnu_time = pytest.mark.skipif(not Path("/usr/bin/time").exists(), reason="needs GNU time for the peak RSS")


@pytest.fixture(scope="module")
def million(pg_server_url, template_db):
    """A database holding a million trades (filled once for this module's tests): (url, sum of the
    prices, sum of the quantities, when the fill committed on the monotonic clock)."""
    name = create_database(pg_server_url, template=template_db)
    url = _with_database(pg_server_url, name)
    engine = make_engine(url)
    with engine.begin() as conn:
        # Indexes only slow the fill down here; the export sorts on the server either way.
        conn.execute(text("ALTER TABLE trades DROP CONSTRAINT pk_trades"))
        conn.execute(text("DROP INDEX ix_trades_symbol_time"))
        conn.execute(text(FILL), {"n": ROWS})
        n, price, qty = conn.execute(text("SELECT count(*), sum(price), sum(qty) FROM trades")).one()
    assert n == ROWS
    yield url, price, qty, time.monotonic()
    engine.dispose()
    drop_database(pg_server_url, name)


def peak_export(url: str, *args: str) -> int:
    """Run `collector export` in a process of its own; its peak RSS in bytes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    proc = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, "-m", "collector", "--database-url", url, "export", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1)) * 1024


@pytest.mark.slow
@needs_gnu_time
def test_million_trades_parquet_under_300_mb(million, tmp_path):
    url, price, qty, _ = million
    out = tmp_path / "trades.parquet"
    peak = peak_export(url, "--table", "trades", "--format", "parquet", "-o", str(out))
    assert peak < LIMIT, f"peak RSS {peak / 2**20:.0f} MB"
    table = pq.read_table(out)
    assert table.num_rows == ROWS
    assert pc.sum(table["price"]).as_py() == price and pc.sum(table["qty"]).as_py() == qty  # exact Decimals


@pytest.mark.slow
@needs_gnu_time
def test_million_trades_partitioned_and_incremental_under_300_mb(million, tmp_path):
    url, price, qty, filled = million
    out = tmp_path / "trades"
    time.sleep(max(0.0, SETTLE.total_seconds() - (time.monotonic() - filled)))  # the fill below the horizon
    peak = peak_export(url, "--table", "trades", "--partition-by", "day,symbol", "--since-last", "-o", str(out))
    assert peak < LIMIT, f"peak RSS {peak / 2**20:.0f} MB"
    assert len(list(out.rglob("*.parquet"))) == 28  # one file per partition: they come in order
    table = ds.dataset(out, partitioning="hive").to_table()
    assert table.num_rows == ROWS
    assert pc.sum(table["price"]).as_py() == price and pc.sum(table["qty"]).as_py() == qty  # exact Decimals
