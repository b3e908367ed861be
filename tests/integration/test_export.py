"""export: exact decimals both ways, filters, streaming in row groups, nothing half-written."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import text

from collector.analyst.export import export
from collector.domain import Trade
from collector.errors import ConfigError
from collector.store.write import write_trades
from tests.helpers.analyst_data import T0, T1, populate

M = timedelta(minutes=1)
SYM = "EOS0106CALLW"
ODD = [Decimal("0.0000001"), Decimal("123456789012.123456789"), Decimal("0.26220000"), Decimal("-5"), Decimal("1E+3")]


@pytest.fixture
def data(engine):
    return populate(engine)


def stored(engine, sql: str, **params) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


def test_parquet_round_trips_exact_decimals(engine, tmp_path):
    trades = [
        Trade(
            "X",
            i,
            ODD[i % len(ODD)] if i % 2 else Decimal("1.5"),
            ODD[(i + 1) % len(ODD)],
            T0 + timedelta(microseconds=i * 1001),
            None if i % 3 == 0 else i % 2 == 0,
        )
        for i in range(1, 400)
    ]
    with engine.begin() as conn:
        write_trades(conn, trades)
    out = tmp_path / "t.parquet"
    res = export(engine, "trades", out, "parquet", chunk_rows=64, row_group_rows=128)
    assert res.rows == 399 and out.exists() and not list(tmp_path.glob(".*partial"))
    f = pq.ParquetFile(out)
    assert [f.metadata.row_group(i).num_rows for i in range(f.metadata.num_row_groups)] == [128, 128, 128, 15]
    table = f.read()
    assert table.schema.field("price").type == pa.decimal128(21, 9)  # 12 integer + 9 decimal digits
    assert table.schema.field("time").type == pa.timestamp("us", tz="UTC")
    got = table.to_pylist()
    want = stored(engine, "SELECT trade_id, price, qty, time, buyer_maker FROM trades ORDER BY time, trade_id")
    assert [(r["trade_id"], r["price"], r["qty"], r["time"], r["buyer_maker"]) for r in got] == want
    assert all(r["price"] == w[1] for r, w in zip(got, want, strict=True))  # Decimal equality, exact


def test_csv_keeps_the_stored_text(engine, tmp_path):
    with engine.begin() as conn:
        write_trades(conn, [Trade("X", i, d, d, T0 + timedelta(microseconds=7), True) for i, d in enumerate(ODD)])
    out = tmp_path / "t.csv"
    assert export(engine, "trades", out, "csv").rows == len(ODD)
    rows = list(csv.DictReader(out.read_text().splitlines()))
    as_text = stored(engine, "SELECT price::text FROM trades ORDER BY trade_id")
    assert [r["price"] for r in rows] == [t[0] for t in as_text]
    assert "0.0000001" in [r["price"] for r in rows] and "0.26220000" in [r["qty"] for r in rows]
    assert rows[0]["time"] == "2026-01-05T11:00:00.000007Z" and rows[0]["buyer_maker"] == "true"
    assert datetime.fromisoformat(rows[0]["time"]) == T0 + timedelta(microseconds=7)


def test_filters_and_every_table(engine, data, tmp_path):
    out = tmp_path / "k.parquet"
    res = export(engine, "klines", out, symbols=[SYM], start=T0 + 10 * M, end=T0 + 20 * M, interval="1m")
    assert res.rows == 10
    t = pq.read_table(out)
    assert set(t.column("symbol").to_pylist()) == {SYM}
    assert t.column("open_time").to_pylist()[0] == T0 + 10 * M
    want = stored(
        engine,
        "SELECT close FROM klines WHERE symbol = :s AND open_time >= :a AND open_time < :b ORDER BY open_time",
        s=SYM,
        a=T0 + 10 * M,
        b=T0 + 20 * M,
    )
    assert t.column("close").to_pylist() == [w[0] for w in want]
    for table in ("trades", "tickers_24hr", "depth"):
        for fmt in ("parquet", "csv"):
            path = tmp_path / f"{table}.{fmt}"
            n = export(engine, table, path, fmt, symbols=[SYM], start=T0, end=T1).rows
            assert n > 0
            count = pq.read_metadata(path).num_rows if fmt == "parquet" else len(path.read_text().splitlines()) - 1
            assert count == n
    book = pq.read_table(tmp_path / "depth.parquet").to_pylist()
    assert {r["side"] for r in book} == {"bid", "ask"} and book[0]["level"] == 0


def test_empty_result_is_a_valid_file(engine, tmp_path):
    out = tmp_path / "none.parquet"
    assert export(engine, "trades", out, symbols=["NOPE"]).rows == 0
    assert pq.read_table(out).num_rows == 0
    assert export(engine, "trades", tmp_path / "none.csv", "csv").rows == 0
    assert (tmp_path / "none.csv").read_text().strip() == "symbol,trade_id,time,price,qty,buyer_maker"


def test_failure_leaves_nothing_half_written(engine, tmp_path):
    with engine.begin() as conn:
        write_trades(conn, [Trade("X", 1, Decimal("1"), Decimal("1"), T0, True)])
        conn.execute(text("INSERT INTO trades VALUES ('X', 2, 'NaN', 1, :t, true)"), {"t": T0})
    out = tmp_path / "t.parquet"
    out.write_bytes(b"previous")
    with pytest.raises(pa.ArrowException):
        export(engine, "trades", out, chunk_rows=1)  # NaN has no decimal128 form: fails mid-way
    assert out.read_bytes() == b"previous" and list(tmp_path.iterdir()) == [out]


def test_bad_input(engine, tmp_path):
    with pytest.raises(ConfigError, match="unknown table"):
        export(engine, "orders", tmp_path / "x")
    with pytest.raises(ConfigError, match="klines only"):
        export(engine, "trades", tmp_path / "x", interval="1m")
    with pytest.raises(ConfigError, match="does not exist"):
        export(engine, "trades", tmp_path / "no" / "x")
    with pytest.raises(ConfigError, match="before"):
        export(engine, "trades", tmp_path / "x", start=T1, end=T0)
    assert list(tmp_path.iterdir()) == []
    assert datetime.now(UTC) > T0  # sanity of the fixtures' clock assumptions
