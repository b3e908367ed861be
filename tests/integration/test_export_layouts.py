"""export: the format from the extension, every table and view, Hive-partitioned Parquet datasets."""

from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from sqlalchemy import text

from collector.analyst.export import EXTENSIONS, TABLES, export
from collector.cli.analyst import ExportTable
from collector.cli.commands import main
from collector.domain import Trade
from collector.errors import ConfigError
from collector.simulator import Market, SimConfig
from collector.store.write import write_trades
from tests.helpers.analyst_data import T0, T1, ms, populate, populate_account

ODD = [Decimal("0.0000001"), Decimal("123456789012.123456789"), Decimal("0.26220000"), Decimal("-5"), Decimal("1E+3")]
DAY = timedelta(days=1)


def stored(engine, sql: str, **params) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


def odd_trades(engine, n: int = 60) -> None:
    """Awkward decimals over three symbols and three UTC days (and one trade a microsecond before
    midnight, one at it)."""
    midnight = datetime(2026, 1, 6, tzinfo=UTC)
    times = [midnight - timedelta(microseconds=1), midnight] + [
        T0 + (i // 3 % 3) * DAY + i * timedelta(seconds=7) for i in range(n)
    ]
    trades = [
        Trade(f"S{i % 3}", i, ODD[i % len(ODD)], ODD[(i + 2) % len(ODD)], t, None if i % 4 == 0 else i % 2 == 0)
        for i, t in enumerate(times)
    ]
    with engine.begin() as conn:
        write_trades(conn, trades)


def read_back(path, fmt: str) -> list[dict]:
    """The file's rows as dicts of text (CSV) or of parsed JSON (numbers as Decimal)."""
    if fmt == "parquet":
        return pq.read_table(path).to_pylist()
    if fmt in ("csv", "csv.gz"):
        raw = gzip.decompress(path.read_bytes()) if fmt == "csv.gz" else path.read_bytes()
        return list(csv.DictReader(io.StringIO(raw.decode())))
    if fmt == "jsonl":
        return [json.loads(line, parse_float=Decimal) for line in path.read_text().splitlines()]
    return json.loads(path.read_text(), parse_float=Decimal)


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return exc.value.code or 0, out, err


# --- the format -----------------------------------------------------------------------------------


def test_the_format_comes_from_the_extension(engine, tmp_path):
    odd_trades(engine)
    want = stored(engine, "SELECT trade_id, price, price::text FROM trades ORDER BY symbol, time, trade_id")
    names = {"t.parquet": "parquet", "t.PQ": "parquet", "t.csv": "csv", "t.csv.gz": "csv.gz"}
    names |= {"t.jsonl": "jsonl", "t.ndjson": "jsonl", "t.json": "json"}
    assert {f for f in names.values()} == set(EXTENSIONS.values())
    for name, fmt in names.items():
        res = export(engine, "trades", tmp_path / name)
        assert (res.format, res.rows) == (fmt, len(want)), name
        got = read_back(tmp_path / name, fmt)
        assert [int(r["trade_id"]) for r in got] == [w[0] for w in want], name
        if fmt in ("csv", "csv.gz"):
            assert [r["price"] for r in got] == [w[2] for w in want], name  # the stored text
        else:
            assert [Decimal(r["price"]) for r in got] == [w[1] for w in want], name  # exact
    assert pq.read_table(tmp_path / "t.parquet").schema.field("price").type == pa.decimal128(21, 9)
    first = json.loads((tmp_path / "t.jsonl").read_text().splitlines()[0], parse_float=Decimal)
    assert first["time"].endswith("Z") and first["buyer_maker"] in (True, False, None)
    # --format wins over the extension
    assert export(engine, "trades", tmp_path / "t.txt", "csv").format == "csv"
    assert (tmp_path / "t.txt").read_text().startswith("symbol,trade_id,time,price,qty,buyer_maker\n")


def test_the_command_takes_the_format_from_the_extension_and_refuses_an_unknown_one(db_url, engine, tmp_path, capsys):
    odd_trades(engine)
    base = ["--database-url", db_url, "export", "--table", "trades", "-o"]
    code, _, err = run([*base, str(tmp_path / "k.csv")], capsys)
    assert code == 0, err
    assert (tmp_path / "k.csv").read_text().startswith("symbol,trade_id,")  # CSV, not Parquet
    code, _, err = run([*base, str(tmp_path / "k.bin"), "--format", "parquet"], capsys)
    assert code == 0 and pq.read_metadata(tmp_path / "k.bin").num_rows == 62
    code, _, err = run([*base, str(tmp_path / "k.dat"), "--format", "csv.gz"], capsys)
    assert code == 0 and gzip.decompress((tmp_path / "k.dat").read_bytes()).startswith(b"symbol,")
    before = sorted(p.name for p in tmp_path.iterdir())
    for name in ("k.xlsx", "k", "k.parquet.bak"):
        code, out, err = run([*base, str(tmp_path / name)], capsys)
        assert code == 2 and out == "", name
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert "cannot tell the format" in err and "--format" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
    with pytest.raises(ConfigError, match="cannot tell the format"):
        export(engine, "trades", tmp_path / "k.xlsx")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# --- views, option_symbols, every table -------------------------------------------------------------


@pytest.fixture
def market_and_account(engine):
    names = populate(engine)
    m = Market(SimConfig(seed=1, history_days=0.2, symbols=4, start_ms=ms(T1)))
    populate_account(engine, m, T1)
    return names


def test_views_and_option_symbols_are_exported_exactly(engine, market_and_account, tmp_path):
    book = export(engine, "top_of_book", tmp_path / "book.parquet")
    want = stored(
        engine,
        "SELECT symbol, captured_at, bid_price, ask_price, spread, mid_price FROM top_of_book "
        "ORDER BY symbol, captured_at",
    )
    got = pq.read_table(tmp_path / "book.parquet").to_pylist()
    assert book.rows == len(want) > 0
    assert [
        (r["symbol"], r["captured_at"], r["bid_price"], r["ask_price"], r["spread"], r["mid_price"]) for r in got
    ] == want
    assert pq.read_schema(tmp_path / "book.parquet").field("mid_price").type.scale >= 1

    enriched = export(engine, "trades_enriched", tmp_path / "te.csv", symbols=[market_and_account[0]], start=T0, end=T1)
    rows = read_back(tmp_path / "te.csv", "csv")
    want = stored(
        engine,
        "SELECT trade_id, notional::text, underlying_price::text FROM trades_enriched WHERE symbol = :s "
        "ORDER BY time, trade_id",
        s=market_and_account[0],
    )
    assert enriched.rows == len(rows) == len(want) > 0
    assert [(int(r["trade_id"]), r["notional"], r["underlying_price"] or None) for r in rows] == want
    assert rows[0]["time_to_expiry"]  # an interval, as PostgreSQL writes it

    export(engine, "trades_enriched", tmp_path / "te.parquet", symbols=[market_and_account[0]])
    te = pq.read_table(tmp_path / "te.parquet")
    assert te.schema.field("time_to_expiry").type == pa.duration("us")
    durations = stored(
        engine,
        "SELECT time_to_expiry FROM trades_enriched WHERE symbol = :s ORDER BY time, trade_id",
        s=market_and_account[0],
    )
    assert te.column("time_to_expiry").to_pylist() == [d[0] for d in durations]

    symbols = export(engine, "option_symbols", tmp_path / "symbols.jsonl")
    lines = read_back(tmp_path / "symbols.jsonl", "jsonl")
    want = stored(engine, "SELECT symbol, strike_price, expiry_time FROM option_symbols ORDER BY symbol")
    assert symbols.rows == len(lines) == len(want) > 0
    assert [(r["symbol"], r["strike_price"]) for r in lines] == [(w[0], w[1]) for w in want]
    assert [datetime.fromisoformat(r["expiry_time"]) for r in lines] == [w[2] for w in want]

    chain = export(engine, "option_chain", tmp_path / "chain.parquet")
    assert chain.rows == pq.read_metadata(tmp_path / "chain.parquet").num_rows
    assert pq.read_schema(tmp_path / "chain.parquet").field("days_to_expiry").type.id == pa.decimal128(1, 0).id

    daily = export(engine, "account_balance_daily", tmp_path / "daily.parquet")
    assert daily.rows > 0 and pq.read_schema(tmp_path / "daily.parquet").field("day").type == pa.date32()
    days = stored(engine, "SELECT day FROM account_balance_daily ORDER BY day, section, asset")
    assert pq.read_table(tmp_path / "daily.parquet").column("day").to_pylist() == [d[0] for d in days]


def test_every_table_and_view_exports_in_every_format(engine, market_and_account, tmp_path):
    assert {t.value for t in ExportTable} == set(TABLES)  # the command offers exactly what export takes
    for table, spec in TABLES.items():
        source = (
            spec.source.split(" ")[0]
            if table != "depth"
            else "depth_snapshots s JOIN depth_levels l ON l.snapshot_id = s.id"
        )
        (n,) = stored(engine, f"SELECT count(*) FROM {source}")[0]  # noqa: S608 - fixed names
        for ext in (".parquet", ".csv", ".jsonl", ".json"):
            res = export(engine, table, tmp_path / f"{table}{ext}")
            assert res.rows == n, (table, ext)
        assert pq.read_metadata(tmp_path / f"{table}.parquet").num_rows == n
        assert len(read_back(tmp_path / f"{table}.json", "json")) == n
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_filters_that_do_not_apply_are_refused(engine, tmp_path):
    with pytest.raises(ConfigError, match="no time of its own"):
        export(engine, "option_symbols", tmp_path / "s.csv", start=T0)
    with pytest.raises(ConfigError, match="no symbol"):
        export(engine, "account_balances", tmp_path / "b.csv", symbols=["X"])
    with pytest.raises(ConfigError, match="cannot partition option_chain by day"):
        export(engine, "option_chain", tmp_path / "c", partition_by="symbol,day")
    with pytest.raises(ConfigError, match="day or month, not both"):
        export(engine, "trades", tmp_path / "t", partition_by="day,month")
    with pytest.raises(ConfigError, match="cannot partition by hour"):
        export(engine, "trades", tmp_path / "t", partition_by="symbol,hour")
    with pytest.raises(ConfigError, match="Parquet directory"):
        export(engine, "trades", tmp_path / "t.csv", partition_by="symbol")
    with pytest.raises(ConfigError, match="--since-last applies to tables with an ingestion time"):
        export(engine, "option_symbols", tmp_path / "s.csv", since_last=True)
    with pytest.raises(ConfigError, match="goes with --since-last"):
        export(engine, "trades", tmp_path / "t.csv", cursor="mine")
    assert list(tmp_path.iterdir()) == []


# --- partitioned Parquet ------------------------------------------------------------------------------


def test_partitioned_parquet_reads_back_as_one_exact_table(engine, tmp_path):
    odd_trades(engine, n=300)
    out = tmp_path / "trades"
    res = export(engine, "trades", out, partition_by="symbol,day", chunk_rows=16, row_group_rows=32)
    want = stored(
        engine, "SELECT symbol, trade_id, time, price, qty, buyer_maker FROM trades ORDER BY symbol, trade_id"
    )
    days = {(s, t.astimezone(UTC).date()) for s, _, t, *_ in want}
    assert res.rows == len(want) and res.files == len(days) == 9
    parts = sorted(str(p.relative_to(out)) for p in out.rglob("*.parquet"))
    assert parts[0] == "symbol=S0/day=2026-01-05/part-0.parquet" and len(parts) == 9
    assert "symbol=S1/day=2026-01-05" in {str(p.parent.relative_to(out)) for p in out.rglob("*.parquet")}
    assert (out / "symbol=S0" / "day=2026-01-05").is_dir()  # the trade a microsecond before midnight
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]

    def as_rows(frame: pd.DataFrame) -> list[tuple]:
        frame = frame.sort_values(["symbol", "trade_id"])
        return [
            (
                str(r.symbol),
                int(r.trade_id),
                r.time.to_pydatetime(),
                r.price,
                r.qty,
                None if pd.isna(r.buyer_maker) else bool(r.buyer_maker),
            )
            for r in frame.itertuples()
        ]

    frame = pd.read_parquet(out)
    assert len(frame) == len(want)
    got = as_rows(frame)
    assert got == want
    assert all(type(r[3]) is Decimal and r[3] == w[3] and r[4] == w[4] for r, w in zip(got, want, strict=True))
    assert {str(d) for d in frame["day"].unique()} == {"2026-01-05", "2026-01-06", "2026-01-07"}

    dataset = ds.dataset(out, partitioning="hive", format="parquet")
    table = dataset.to_table()
    assert table.num_rows == len(want) and table.schema.field("price").type == pa.decimal128(21, 9)
    assert sorted(
        zip(table["symbol"].to_pylist(), table["trade_id"].to_pylist(), table["price"].to_pylist(), strict=True)
    ) == [(s, i, p) for s, i, _, p, *_ in want]
    one_day = dataset.to_table(filter=(ds.field("symbol") == "S2") & (ds.field("day") == "2026-01-06"))
    assert one_day.num_rows == sum(1 for s, _, t, *_ in want if s == "S2" and t.date().isoformat() == "2026-01-06")

    # Again: the directory is replaced whole; a foreign directory is never touched.
    export(engine, "trades", out, partition_by="symbol,day", symbols=["S1"])
    assert pd.read_parquet(out)["symbol"].astype(str).unique().tolist() == ["S1"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(ConfigError, match="not a partitioned export"):
        export(engine, "trades", tmp_path / "mine", partition_by="symbol")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_partition_by_month_and_depth_by_day(engine, tmp_path):
    populate(engine)
    res = export(engine, "depth", tmp_path / "depth", partition_by="day,symbol")
    n = stored(engine, "SELECT count(*) FROM depth_levels")[0][0]
    assert res.rows == n > 0
    first = sorted(p.relative_to(tmp_path / "depth") for p in (tmp_path / "depth").rglob("*.parquet"))[0]
    assert str(first).startswith("day=2026-01-05/symbol=")
    table = ds.dataset(tmp_path / "depth", partitioning="hive").to_table()
    want = stored(engine, "SELECT sum(price), sum(qty) FROM depth_levels")[0]
    assert (pa.compute.sum(table["price"]).as_py(), pa.compute.sum(table["qty"]).as_py()) == want
    res = export(engine, "klines", tmp_path / "klines", partition_by="month")
    assert res.files == 1 and (tmp_path / "klines" / "month=2026-01").is_dir()
    assert len(pd.read_parquet(tmp_path / "klines")) == stored(engine, "SELECT count(*) FROM klines")[0][0]
