"""export --since-last: every row version exported exactly once across runs, whatever the writers do.

Choice tested here: a row that changes after it was exported (a kline updated, a partial kline
closed) is exported again, as a new version with a later ``ingested_at``; re-writing a row with
the same values does not change it, so it is not exported again.
"""

from __future__ import annotations

import gzip
import itertools
import threading
import time
from datetime import timedelta
from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from sqlalchemy import text

from collector.analyst.export import export
from collector.cli.commands import main
from collector.domain import Kline, Trade
from collector.errors import ConfigError, TransientError
from collector.store.exports import SETTLE, cursor_position
from collector.store.write import write_klines, write_trades
from tests.helpers.analyst_data import T0

M = timedelta(minutes=1)
NOW = timedelta(0)  # no settling: these tests have no writer racing the export


def trades(ids, price: str = "1.25") -> list[Trade]:
    return [Trade(f"S{i % 2}", i, Decimal(price), Decimal("0.001"), T0 + i * M, i % 2 == 0) for i in ids]


def kline(minute: int, close: str) -> Kline:
    t = T0 + minute * M
    one = Decimal(1)
    return Kline("S0", "1m", t, t + M - timedelta(milliseconds=1), one, one, one, Decimal(close), one, one, 3, one, one)


def write(engine, ts=(), ks=()) -> None:
    with engine.begin() as conn:
        write_trades(conn, ts)
        write_klines(conn, ks)


def ingested(engine, table: str) -> dict:
    key = "trade_id" if table == "trades" else "open_time"
    with engine.connect() as conn:
        return dict(conn.execute(text(f"SELECT {key}, ingested_at FROM {table}")).all())  # noqa: S608


def test_three_runs_export_each_row_version_once(engine, tmp_path):
    write(engine, trades(range(10)), [kline(m, "1.0") for m in range(5)])
    runs = []

    def run(n: int) -> tuple:
        t = export(engine, "trades", tmp_path / f"t{n}.parquet", since_last=True, cursor="t", settle=NOW)
        k = export(engine, "klines", tmp_path / f"k{n}.csv", since_last=True, cursor="k", settle=NOW)
        runs.append((t, k))
        return pq.read_table(tmp_path / f"t{n}.parquet").to_pylist(), pd.read_csv(tmp_path / f"k{n}.csv", dtype=str)

    t1, k1 = run(1)
    assert sorted(r["trade_id"] for r in t1) == list(range(10)) and len(k1) == 5
    assert runs[0][0].since is None and runs[0][0].cursor == "t"

    before = ingested(engine, "klines")
    write(engine, trades(range(10, 15)) + trades(range(5)), [kline(2, "1.5"), kline(3, "1.0"), kline(5, "2.0")])
    after = ingested(engine, "klines")
    assert after[T0 + 3 * M] == before[T0 + 3 * M] and after[T0 + 2 * M] > before[T0 + 2 * M]  # only a change touches
    t2, k2 = run(2)
    assert sorted(r["trade_id"] for r in t2) == list(range(10, 15))  # the re-written trades 0-4 are unchanged
    assert sorted(k2["close"]) == ["1.5", "2.0"] and runs[1][0].since == runs[0][0].until

    write(engine, trades(range(15, 18)), [kline(2, "1.75"), kline(6, "3.0")])
    t3, k3 = run(3)
    assert sorted(r["trade_id"] for r in t3) == [15, 16, 17] and sorted(k3["close"]) == ["1.75", "3.0"]

    t4, k4 = run(4)  # nothing new
    assert t4 == [] and len(k4) == 0

    # Across the runs: every trade exactly once; every kline version once, the latest as stored.
    every = [r["trade_id"] for r in t1 + t2 + t3]
    assert sorted(every) == list(range(18))
    versions = pd.concat([k1, k2, k3]).sort_values("ingested_at")
    assert len(versions) == 5 + 2 + 2
    latest = versions.groupby("open_time").last()["close"].to_dict()
    with engine.connect() as conn:
        stored = {
            t: c
            for t, c in conn.execute(
                text(
                    "SELECT to_char(open_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), close::text FROM klines"
                )
            )
        }
    assert latest == stored
    # Each run's window starts where the previous one ended.
    for (t_prev, _), (t_next, _) in itertools.pairwise(runs):
        assert t_next.since == t_prev.until
    name = runs[0][0].cursor
    assert cursor_position(engine, name) == ("trades", runs[-1][0].until, 4, 18)


def test_a_transaction_open_across_the_export_is_caught_by_the_next_one(engine, tmp_path):
    """A writer that began before the export and commits after it stamps its rows with its start
    time, below the export's own clock: the horizon stops at that start, and the next run takes them."""
    write(engine, trades(range(3)))
    writer = engine.connect()
    try:
        writer.execute(text("SELECT 1"))  # the transaction begins: its now() is fixed from here
        write_trades(writer, trades([100]))
        pid = writer.execute(text("SELECT pg_backend_pid()")).scalar()
        first = export(engine, "trades", tmp_path / "a.csv", since_last=True, cursor="c", settle=NOW)
        assert first.rows == 3 and first.held_by is not None and f"pid {pid}" in first.held_by
        writer.commit()
    finally:
        writer.close()
    ingested_100 = ingested(engine, "trades")[100]
    assert ingested_100 < first.until + timedelta(seconds=1)
    assert first.until <= ingested_100  # a cursor at the export's own now() would have skipped it
    second = export(engine, "trades", tmp_path / "b.csv", since_last=True, cursor="c", settle=NOW)
    assert second.rows == 1 and "100" in (tmp_path / "b.csv").read_text().splitlines()[1]
    assert second.since == first.until and second.held_by is None


def test_a_failed_export_does_not_move_the_cursor(engine, tmp_path):
    write(engine, trades(range(4)))
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO trades (symbol, trade_id, time, price, qty) VALUES ('S0', 99, :t, 'NaN', 1)"), {"t": T0}
        )
    out = tmp_path / "t.parquet"
    with pytest.raises(pa.ArrowException):  # NaN has no decimal form: fails while writing
        export(engine, "trades", out, since_last=True, cursor="c", settle=NOW, chunk_rows=1)
    assert list(tmp_path.iterdir()) == [] and cursor_position(engine, "c") == ("trades", None, 0, 0)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM trades WHERE trade_id = 99"))
    res = export(engine, "trades", out, since_last=True, cursor="c", settle=NOW)
    assert res.rows == 4 and cursor_position(engine, "c")[1:] == (res.until, 1, 4)


def test_partitioned_since_last_appends_each_row_once_even_after_a_run_that_did_not_commit(engine, tmp_path):
    out = tmp_path / "ds"
    write(engine, trades(range(6)))
    first = export(engine, "trades", out, partition_by="symbol,day", since_last=True, settle=NOW)
    assert first.rows == 6 and sorted(p.name for p in out.rglob("*.parquet")) == ["part-start-0.parquet"] * 2
    write(engine, trades(range(6, 9), price="0.123456789"))
    second = export(engine, "trades", out, partition_by="symbol,day", since_last=True, settle=NOW)
    assert second.rows == 3 and second.files == 4

    # A run whose files were placed but whose cursor never moved (a crash between the two): the
    # cursor is put back, as if that run had not committed, and more rows arrive meanwhile.
    with engine.begin() as conn:
        conn.execute(text("UPDATE export_cursors SET exported_until = :p"), {"p": first.until})
    write(engine, trades(range(9, 11)))
    again = export(engine, "trades", out, partition_by="symbol,day", since_last=True, settle=NOW)
    assert again.rows == 5 and again.since == first.until and again.files == 4  # second's files replaced

    table = ds.dataset(out, partitioning="hive").to_table()
    assert sorted(table["trade_id"].to_pylist()) == list(range(11))
    assert table.schema.field("price").type == pa.decimal128(38, 18)  # room for later runs
    with engine.connect() as conn:
        want = dict(conn.execute(text("SELECT trade_id, price FROM trades")).all())
    assert dict(zip(table["trade_id"].to_pylist(), table["price"].to_pylist(), strict=True)) == want
    frame = pd.read_parquet(out)
    assert len(frame) == 11 and set(frame["symbol"].astype(str)) == {"S0", "S1"}

    # A value the dataset's decimals cannot hold is refused; nothing is added, the cursor stays.
    position = cursor_position(engine, again.cursor)
    write(engine, [Trade("S0", 50, Decimal("1." + "1" * 20), Decimal(1), T0, True)])
    files = sorted(out.rglob("*"))
    with pytest.raises(ConfigError, match="export into a new directory"):
        export(engine, "trades", out, partition_by="symbol,day", since_last=True, settle=NOW)
    assert sorted(out.rglob("*")) == files and cursor_position(engine, again.cursor) == position
    # ... and the directory is never replaced by a whole export, nor fed by another cursor.
    with pytest.raises(ConfigError, match="fed by --since-last"):
        export(engine, "trades", out, partition_by="symbol,day")
    with pytest.raises(ConfigError, match="under cursor"):
        export(engine, "trades", out, partition_by="symbol,day", since_last=True, cursor="other", settle=NOW)


def test_one_cursor_one_export_at_a_time(engine, tmp_path):
    write(engine, trades(range(3)))
    export(engine, "trades", tmp_path / "a.csv", since_last=True, cursor="c", settle=NOW)
    holder = engine.connect()
    try:
        holder.execute(text("SELECT 1 FROM export_cursors WHERE name = 'c' FOR UPDATE"))
        with pytest.raises(TransientError, match="in use by another export"):
            export(engine, "trades", tmp_path / "b.csv", since_last=True, cursor="c", settle=NOW)
    finally:
        holder.rollback()
        holder.close()
    with pytest.raises(ConfigError, match="belongs to exports of trades"):
        export(engine, "klines", tmp_path / "k.csv", since_last=True, cursor="c", settle=NOW)
    assert not (tmp_path / "b.csv").exists() and not (tmp_path / "k.csv").exists()


def test_concurrent_writers_lose_nothing_and_duplicate_nothing(engine, tmp_path):
    """Writers whose transactions straddle the exports (they begin before one and commit after it)
    while exports run back to back: the exports together hold every trade exactly once."""
    stop = threading.Event()
    written: list[list[int]] = [[], [], []]
    lock = threading.Lock()

    def writer(n: int) -> None:
        i = 10_000 * (n + 1)
        while not stop.is_set():
            batch = trades(range(i, i + 5))
            with engine.begin() as conn:
                conn.execute(text("SELECT pg_sleep(0.005 * :n)"), {"n": n + 1})  # begun well before it writes
                write_trades(conn, batch)
                conn.execute(text("SELECT pg_sleep(0.01)"))  # and commits a while after
            with lock:
                written[n].extend(t.trade_id for t in batch)
            i += 5

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    got: list[int] = []

    def export_once(n: int) -> None:
        path = tmp_path / f"t{n}.csv.gz"
        export(engine, "trades", path, since_last=True, cursor="c", settle=NOW)
        got.extend(int(line.split(",")[1]) for line in gzip.decompress(path.read_bytes()).decode().splitlines()[1:])

    try:
        deadline = time.monotonic() + 2
        n = 0
        while time.monotonic() < deadline:
            export_once(n)
            n += 1
    finally:
        stop.set()
        for t in threads:
            t.join()
    export_once(n)  # after the writers: what the last transactions committed
    every = sorted(i for w in written for i in w)
    assert n > 10 and len(every) > 100
    assert len(got) == len(set(got)), "a trade exported twice"
    assert sorted(got) == every, f"{len(set(every) - set(got))} trades never exported"


def test_the_command_reports_the_cursor(db_url, engine, tmp_path, capsys):
    write(engine, trades(range(4)))
    time.sleep(SETTLE.total_seconds() + 0.1)  # the command's horizon stays SETTLE behind the clock
    argv = ["--database-url", db_url, "export", "--table", "trades", "--since-last", "-o", str(tmp_path / "t.jsonl")]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code in (0, None), err
    assert "4 rows ->" in err and f"cursor 'trades -> {tmp_path / 't.jsonl'}'" in err and "from the start until" in err
    with pytest.raises(SystemExit) as exc:
        main([*argv[:-2], "--table", "option_symbols", "-o", str(tmp_path / "s.csv")])
    assert exc.value.code == 2 and "ingestion time" in capsys.readouterr().err
