"""export of a million trades stays under 300 MB of peak RSS, and the Parquet file is exact."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from sqlalchemy import text

# The same rows as the export benchmark: prices with 4 or 8 decimals, some buyer_maker unknown.
from bench.bench_export import FILL

ROWS = 1_000_000
LIMIT = 300 * 2**20


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/bin/time").exists(), reason="needs GNU time for the peak RSS")
def test_million_trades_parquet_under_300_mb(engine, db_url, tmp_path):
    with engine.begin() as conn:
        # Indexes only slow the fill down here; the export sorts on the server either way.
        conn.execute(text("ALTER TABLE trades DROP CONSTRAINT pk_trades"))
        conn.execute(text("DROP INDEX ix_trades_symbol_time"))
        conn.execute(text(FILL), {"n": ROWS})
    out = tmp_path / "trades.parquet"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    proc = subprocess.run(
        [
            "/usr/bin/time",
            "-v",
            sys.executable,
            "-m",
            "collector",
            "--database-url",
            db_url,
            "export",
            "--table",
            "trades",
            "--format",
            "parquet",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1)) * 1024
    assert peak < LIMIT, f"peak RSS {peak / 2**20:.0f} MB"
    table = pq.read_table(out)
    with engine.connect() as conn:
        n, price, qty = conn.execute(text("SELECT count(*), sum(price), sum(qty) FROM trades")).one()
    assert table.num_rows == n == ROWS
    assert pc.sum(table["price"]).as_py() == price and pc.sum(table["qty"]).as_py() == qty  # exact Decimals
