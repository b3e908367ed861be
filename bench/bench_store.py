"""Store upsert throughput vs raw binary COPY into the same table, measured in one run.

    python -m bench.bench_store [--rows 200000] [--database-url URL]

Without a URL it starts a throw-away embedded PostgreSQL.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import text

from bench.report import database, write_section
from collector.store.db import make_engine
from collector.store.migrate import upgrade
from collector.store.models import TradeRow
from collector.store.upsert import upsert

TRADES = TradeRow.__table__
COLS = ["symbol", "trade_id", "price", "qty", "time", "buyer_maker"]


def make_rows(n: int, offset: int = 0) -> list[dict]:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        {
            "symbol": f"BTC{(i % 28):04d}CALL",
            "trade_id": offset + i,
            "price": Decimal(f"{1 + (i % 997) / 1000:.4f}"),
            "qty": Decimal(f"{(i % 13) + 0.25}"),
            "time": t0 + timedelta(milliseconds=i * 7),
            "buyer_maker": i % 2 == 0,
        }
        for i in range(n)
    ]


def timed(engine, fn) -> float:
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE trades"))
    start = time.perf_counter()
    with engine.begin() as conn:
        fn(conn)
    return time.perf_counter() - start


def raw_copy(conn, rows) -> None:
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(f"COPY trades ({', '.join(COLS)}) FROM STDIN (FORMAT BINARY)") as cp:
        cp.set_types(["text", "int8", "numeric", "numeric", "timestamptz", "bool"])
        for r in rows:
            cp.write_row([r[c] for c in COLS])


def in_batches(rows, size, method):
    def run(conn):
        for i in range(0, len(rows), size):
            upsert(conn, TRADES, rows[i : i + size], method=method)

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--database-url")
    args = ap.parse_args()
    with database(args.database_url) as url:
        run(url, args.rows)


def run(url: str, n_rows: int) -> None:
    engine = make_engine(url)
    upgrade(engine)
    rows = make_rows(n_rows)
    results = {}
    results["raw binary COPY (ceiling)"] = timed(engine, lambda c: raw_copy(c, rows))
    results["upsert, COPY path, 5000-row batches"] = timed(engine, in_batches(rows, 5000, "copy"))
    results["upsert, VALUES path, 1000-row batches"] = timed(engine, in_batches(rows, 1000, "values"))
    # re-upsert of identical rows into a full table: what a repeated backfill costs
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE trades"))
        upsert(conn, TRADES, rows, method="copy")
    start = time.perf_counter()
    with engine.begin() as conn:
        in_batches(rows, 5000, "copy")(conn)
    results["re-upsert of unchanged rows, COPY path"] = time.perf_counter() - start
    engine.dispose()
    ceiling = n_rows / results["raw binary COPY (ceiling)"]
    lines = ["| method | rows/s | vs raw COPY |", "|---|---:|---:|"]
    for name, secs in results.items():
        rate = n_rows / secs
        lines.append(f"| {name} | {rate:,.0f} | {rate / ceiling:.2f} |")
    body = (
        f"{n_rows:,} trades rows into `trades` (6 columns, primary key (symbol, trade_id)), "
        f"each method into an emptied table in one transaction, same run.\n\n" + "\n".join(lines)
    )
    print(body)
    write_section("store", "Store: bulk upsert vs raw COPY", body, f"python -m bench.bench_store --rows {n_rows}")


if __name__ == "__main__":
    main()
