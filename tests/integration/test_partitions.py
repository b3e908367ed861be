"""Monthly partitions of trades and klines: layout, routing, upserts, upkeep, retention, migration."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect, select, text

from collector.store.comments import described
from collector.store.db import make_engine
from collector.store.migrate import current_revision, head_revision, upgrade
from collector.store.models import KlineRow, TradeRow, metadata
from collector.store.partitions import (
    drop_partitions_before,
    ensure_partitions,
    include_name,
    monthly_partitions,
)
from collector.store.upsert import upsert

TRADES = TradeRow.__table__
KLINES = KlineRow.__table__
NOW = datetime(2030, 1, 15, 12, tzinfo=UTC)  # far from the wall clock: the months are ours alone
JAN, FEB, MAR = date(2030, 1, 1), date(2030, 2, 1), date(2030, 3, 1)


def trade(i: int, at: datetime, price: str = "1.5", symbol: str = "BTC-300125-50000-C") -> dict:
    return {
        "symbol": symbol,
        "trade_id": i,
        "price": Decimal(price),
        "qty": Decimal("0.01"),
        "time": at,
        "buyer_maker": i % 2 == 0,
    }


def kline(at: datetime, close: str = "2", symbol: str = "BTC-300125-50000-C") -> dict:
    d = Decimal
    return {
        "symbol": symbol,
        "interval": "1m",
        "open_time": at,
        "close_time": at + timedelta(seconds=59.999),
        "open": d("1"),
        "high": d("3"),
        "low": d("0.5"),
        "close": d(close),
        "volume": d("10"),
        "quote_volume": d("20"),
        "trade_count": 4,
        "taker_buy_base_volume": d("5"),
        "taker_buy_quote_volume": d("10"),
        "is_closed": True,
    }


def where(conn, table: str, column: str) -> dict:
    """Each row's key column -> the partition holding it."""
    rows = conn.execute(text(f"SELECT {column}, tableoid::regclass::text FROM {table}"))
    return {r[0]: r[1] for r in rows}


def ensure(engine, **kw) -> list[str]:
    with engine.begin() as conn:
        return ensure_partitions(conn, now=kw.pop("now", NOW), **kw)


def test_both_tables_are_range_partitioned_and_match_the_models(engine):
    ensure(engine)  # more children than the migration made: still no drift
    with engine.connect() as conn:
        keys = dict(
            conn.execute(
                text(
                    "SELECT c.relname, pg_get_partkeydef(c.oid) FROM pg_partitioned_table p "
                    "JOIN pg_class c ON c.oid = p.partrelid"
                )
            ).all()
        )
        assert keys == {"trades": 'RANGE ("time")', "klines": "RANGE (open_time)"}
        assert inspect(conn).get_pk_constraint("trades")["constrained_columns"] == ["symbol", "trade_id", "time"]
        assert {ix["name"] for ix in inspect(conn).get_indexes("trades")} == {
            "ix_trades_symbol_time",
            "ix_trades_time",
            "ix_trades_ingested_at",
        }
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": include_name})
        assert compare_metadata(ctx, described(metadata)) == []
        # Without the filter the partitions show up as tables the models do not have.
        plain = MigrationContext.configure(conn, opts={"compare_type": True})
        assert any(d[0] == "remove_table" and d[1].name == "trades_p2030_01" for d in compare_metadata(plain, metadata))


def test_rows_land_in_their_month(engine):
    assert ensure(engine) == [
        "trades_p2030_01",
        "trades_p2030_02",
        "trades_p2030_03",
        "klines_p2030_01",
        "klines_p2030_02",
        "klines_p2030_03",
    ]
    edge = datetime(2030, 2, 1, tzinfo=UTC)
    times = [
        edge - timedelta(microseconds=1),
        edge,
        datetime(2030, 3, 31, 23, 59, tzinfo=UTC),
        datetime(2030, 4, 1, tzinfo=UTC),
    ]
    with engine.begin() as conn:
        upsert(conn, TRADES, [trade(i, t) for i, t in enumerate(times)])
        upsert(conn, KLINES, [kline(t) for t in times])
    with engine.connect() as conn:
        expected = ["p2030_01", "p2030_02", "p2030_03", "default"]
        assert where(conn, "trades", "time") == {t: f"trades_{p}" for t, p in zip(times, expected, strict=True)}
        assert where(conn, "klines", "open_time") == {t: f"klines_{p}" for t, p in zip(times, expected, strict=True)}


@pytest.mark.parametrize("method", ["values", "copy"])
def test_upserts_deduplicate_and_update_across_partitions(engine, method):
    ensure(engine)
    times = [NOW + timedelta(days=10 * i) for i in range(6)]  # Jan, Jan, Feb, Feb, Feb, Mar
    with engine.begin() as conn:
        assert upsert(conn, TRADES, [trade(i, t) for i, t in enumerate(times)], method=method) == 6
        assert upsert(conn, KLINES, [kline(t) for t in times], method=method, touch=("updated_at",)) == 6
    with engine.begin() as conn:  # the same rows again: nothing changes
        assert upsert(conn, TRADES, [trade(i, t) for i, t in enumerate(times)], method=method) == 0
        assert upsert(conn, KLINES, [kline(t) for t in times], method=method, touch=("updated_at",)) == 0
    with engine.begin() as conn:  # two changed, one new, duplicates in the batch (the last wins)
        rows = [trade(0, times[0], "9"), trade(3, times[3], "8"), trade(3, times[3], "7"), trade(6, NOW, "1")]
        assert upsert(conn, TRADES, rows, method=method) == 3
        assert (
            upsert(conn, KLINES, [kline(times[5], "4"), kline(times[5], "5")], method=method, touch=("updated_at",))
            == 1
        )
    with engine.connect() as conn:
        prices = dict(conn.execute(select(TRADES.c.trade_id, TRADES.c.price)).all())
        closes = dict(conn.execute(select(KLINES.c.open_time, KLINES.c.close)).all())
        counts = dict(conn.execute(text("SELECT tableoid::regclass::text, count(*) FROM trades GROUP BY 1")).all())
    assert prices == {
        0: Decimal("9"),
        1: Decimal("1.5"),
        2: Decimal("1.5"),
        3: Decimal("7"),
        4: Decimal("1.5"),
        5: Decimal("1.5"),
        6: Decimal("1"),
    }
    assert closes == {**{t: Decimal("2") for t in times[:5]}, times[5]: Decimal("5")}
    assert counts == {"trades_p2030_01": 3, "trades_p2030_02": 3, "trades_p2030_03": 1}


def test_ensure_partitions_is_idempotent_and_moves_rows_out_of_default(engine):
    may = datetime(2030, 5, 20, tzinfo=UTC)
    with engine.begin() as conn:  # no May partition yet: the rows wait in DEFAULT
        upsert(conn, TRADES, [trade(1, may), trade(2, may + timedelta(days=20))])  # May, June
    assert "trades_p2030_05" in ensure(engine)  # created for the rows in DEFAULT, not for the clock
    assert ensure(engine) == []
    with engine.connect() as conn:
        assert where(conn, "trades", "time") == {may: "trades_p2030_05", may + timedelta(days=20): "trades_p2030_06"}
        assert set(monthly_partitions(conn, "trades")) >= {JAN, FEB, MAR, date(2030, 5, 1), date(2030, 6, 1)}
        assert date(2030, 4, 1) not in monthly_partitions(conn, "trades")


def test_two_callers_at_once_create_each_partition_once(engine):
    first = engine.connect()
    tx = first.begin()
    created_first = ensure_partitions(first, now=NOW)  # holds the lock until it commits
    second: dict = {}

    def run() -> None:
        try:
            second["created"] = ensure(engine)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            second["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    with engine.connect() as watcher:  # wait (bounded) until the second caller queues on the lock
        deadline = time.monotonic() + 30
        while not watcher.execute(
            text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        ).scalar():
            assert time.monotonic() < deadline, "the second caller never waited for the lock"
            watcher.rollback()
            time.sleep(0.01)
    tx.commit()
    first.close()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert "error" not in second, second.get("error")
    assert len(created_first) == 6 and second["created"] == []


def test_many_threads_at_once(engine):
    barrier = threading.Barrier(4)
    results: list = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results.append(ensure(engine, now=NOW + timedelta(days=31 * i), months_ahead=3))
        except Exception as exc:  # noqa: BLE001
            results.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 4 and all(isinstance(r, list) for r in results), results
    created = [name for r in results for name in r]
    assert len(created) == len(set(created)) == 2 * 7  # Jan..Jul 2030, each made once, both tables


def test_retention_drops_whole_months(engine):
    ensure(engine)
    times = [NOW, NOW + timedelta(days=31), NOW + timedelta(days=60)]  # Jan, Feb, Mar
    old = datetime(2020, 6, 1, tzinfo=UTC)  # no partition: in DEFAULT
    with engine.begin() as conn:
        upsert(conn, TRADES, [trade(i, t) for i, t in enumerate([*times, old])])
        upsert(conn, KLINES, [kline(t) for t in times])
    with engine.begin() as conn:
        dropped = drop_partitions_before(conn, "trades", FEB)
        assert "trades_p2030_01" in dropped and "trades_p2030_02" not in dropped
        with pytest.raises(ValueError):
            drop_partitions_before(conn, "tickers_24hr", FEB)
    with engine.connect() as conn:
        assert sorted(where(conn, "trades", "time")) == times[1:]
        assert len(where(conn, "klines", "open_time")) == 3  # other tables untouched
        assert min(monthly_partitions(conn, "trades")) == FEB
    assert "trades_p2030_01" not in ensure(engine, now=datetime(2030, 2, 1, tzinfo=UTC))  # not re-made


def test_data_from_before_partitioning_survives_the_upgrade(empty_db_url):
    engine = make_engine(empty_db_url)
    try:
        upgrade(engine, "0003")
        times = [
            datetime(2024, 1, 31, 23, 59, 59, tzinfo=UTC),
            datetime(2024, 2, 1, tzinfo=UTC),
            datetime(2025, 7, 4, 12, 30, 0, 123456, tzinfo=UTC),
        ]
        trades = [trade(i, t, f"{i}.25") for i, t in enumerate(times)]
        klines = [kline(t, f"{i}.5") for i, t in enumerate(times)]
        with engine.begin() as conn:
            conn.execute(insert(TRADES), trades)
            conn.execute(insert(KLINES), klines)
            conn.execute(
                text("INSERT INTO tickers_24hr (symbol, captured_at, underlying_price) VALUES (:s, :t, 100)"),
                {"s": trades[0]["symbol"], "t": times[0]},
            )

        def snapshot():
            def at_0003(table):  # the columns the tables had then (ingested_at came with 0008)
                return select(*(c for c in table.c if c.name != "ingested_at"))

            with engine.connect() as conn:
                return (
                    conn.execute(at_0003(TRADES).order_by(TRADES.c.trade_id)).all(),
                    conn.execute(at_0003(KLINES).order_by(KLINES.c.open_time)).all(),
                    conn.execute(text("SELECT * FROM trades_enriched ORDER BY trade_id")).all(),
                )

        before = snapshot()
        assert len(before[2]) == 3
        assert upgrade(engine) == ("0003", head_revision())
        assert snapshot() == before
        with engine.connect() as conn:
            assert sorted(set(where(conn, "trades", "time").values())) == [
                "trades_p2024_01",
                "trades_p2024_02",
                "trades_p2025_07",
            ]
            assert sorted(set(where(conn, "klines", "open_time").values())) == [
                "klines_p2024_01",
                "klines_p2024_02",
                "klines_p2025_07",
            ]
            this_month = datetime.now(UTC).strftime("trades_p%Y_%m")
            assert conn.execute(text("SELECT to_regclass(:n) IS NOT NULL"), {"n": this_month}).scalar()
            assert conn.execute(text("SELECT count(*) FROM option_chain_at(now())")).scalar() == 0

        upgrade_down(engine, "0003")  # and back: plain tables, the old key, the same rows
        assert snapshot() == before
        with engine.connect() as conn:
            assert current_revision(conn) == "0003"
            assert inspect(conn).get_pk_constraint("trades")["constrained_columns"] == ["symbol", "trade_id"]
            assert not conn.execute(text("SELECT count(*) FROM pg_partitioned_table")).scalar()
            assert not conn.execute(text("SELECT to_regclass('trades_default')")).scalar()
        assert upgrade(engine) == ("0003", head_revision())
        assert snapshot() == before
    finally:
        engine.dispose()


def upgrade_down(engine, revision: str) -> None:
    from alembic import command

    from collector.store.migrate import alembic_config

    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
