"""verify after a real backfill from the simulator: clean; after deleting rows and a kline it finds
exactly those holes; `verify --repair` restores them byte for byte."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

from collector.analyst.verify import verify
from collector.backfill.plan import BackfillPlan
from collector.backfill.run import run_backfill
from collector.cli.commands import main
from collector.config import load_settings
from collector.exchange.session import connect_exchange
from collector.simulator import SimConfig, Simulator

M = timedelta(minutes=1)
SIM = dict(seed=21, history_days=0.1, symbols=4, weight_limit=0, raw_limit=0, trades_per_minute=10, silent_share=0.0)


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def snapshot(engine: Engine) -> list[tuple]:
    """Every stored kline and trade, as PostgreSQL's text of each value: equal means byte for byte.
    (Not updated_at nor ingested_at: they record when a row was written, and a restored row was
    written now.)"""
    cols = (
        "symbol, interval, open_time, close_time, open, high, low, close, volume, quote_volume, "
        "trade_count, taker_buy_base_volume, taker_buy_quote_volume, is_closed"
    )
    with engine.connect() as conn:
        klines = (
            conn.execute(text(f"SELECT ({cols})::text FROM klines ORDER BY symbol, interval, open_time"))
            .scalars()
            .all()
        )
        trades = (
            conn.execute(
                text(
                    "SELECT (symbol, trade_id, time, price, qty, buyer_maker)::text FROM trades "
                    "ORDER BY symbol, trade_id"
                )
            )
            .scalars()
            .all()
        )
    return [*(("k", r) for r in klines), *(("t", r) for r in trades)]


def run_cli(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code


@pytest.fixture
async def sim():
    async with Simulator(SimConfig(**SIM), port=0) as s:
        s.clock.freeze()
        yield s


async def test_verify_clean_then_holes_then_repaired(sim, engine, db_url, clean_env, capsys):
    now = datetime.fromtimestamp(sim.clock.now_ms() / 1000, UTC)
    end = now.replace(second=0, microsecond=0) - 10 * M
    start = end - 40 * M
    symbols = sorted(
        o.name for o in sim.market.listed(sim.clock.now_ms() - 40 * 60_000) if o.expiry > sim.clock.now_ms()
    )[:3]
    settings = load_settings(None, {"exchange_url": sim.base_url, "api_key": "testkey123456"}, defaults_file=None)
    async with connect_exchange(settings) as client:
        summary = await run_backfill(client, engine, BackfillPlan(start, end, symbols))
    assert not summary.failed and not summary.incomplete
    assert verify(engine, now=now).ok
    before = snapshot(engine)
    assert sum(1 for kind, _ in before if kind == "t") > 200

    a, b, c = symbols
    with engine.begin() as conn:
        minute = conn.execute(
            text(
                "SELECT open_time FROM klines WHERE symbol = :s AND trade_count > 0 AND open_time >= :t "
                "ORDER BY open_time LIMIT 1"
            ),
            {"s": a, "t": start + 10 * M},
        ).scalar_one()
        gone = conn.execute(
            text("DELETE FROM trades WHERE symbol = :s AND time >= :a AND time < :b"),
            {"s": a, "a": minute, "b": minute + 2 * M},
        ).rowcount
        conn.execute(text("DELETE FROM klines WHERE symbol = :s AND open_time = :t"), {"s": b, "t": start + 20 * M})
        # c loses klines and trades together: the trades' hole shows only once the klines are back
        conn.execute(
            text("DELETE FROM klines WHERE symbol = :s AND open_time >= :a AND open_time < :b"),
            {"s": c, "a": start + 30 * M, "b": start + 32 * M},
        )
        lost_c = conn.execute(
            text("DELETE FROM trades WHERE symbol = :s AND time >= :a AND time < :b"),
            {"s": c, "a": start + 30 * M, "b": start + 32 * M},
        ).rowcount
        second = conn.execute(
            text("SELECT trade_count FROM klines WHERE symbol = :s AND interval = '1m' AND open_time = :t"),
            {"s": a, "t": minute + M},
        ).scalar_one()
    assert gone > 0 and lost_c > 0
    hole_end = minute + (2 * M if second else M)  # a quiet minute lost nothing
    found = [(p.kind, p.symbol, p.start, p.end) for p in verify(engine, now=now).problems]
    assert found == [
        ("trade_hole", a, minute, hole_end),
        ("kline_gap", b, start + 20 * M, start + 21 * M),
        ("kline_gap", c, start + 30 * M, start + 32 * M),
    ]

    clean_env.setenv("COLLECTOR_API_KEY", "testkey123456")
    base = ["--database-url", db_url, "verify", "--start", iso(start), "--end", iso(end)]
    assert await asyncio.to_thread(run_cli, base) == 1
    assert "trade_hole" in capsys.readouterr().out
    assert await asyncio.to_thread(run_cli, [*base, "--repair", "--exchange-url", sim.base_url]) == 0
    printed = capsys.readouterr()
    assert "repair round 2" in printed.err  # round 1 restored c's klines, which showed its trade hole
    assert printed.out.rstrip().splitlines()[-1].startswith("verify: clean")
    assert snapshot(engine) == before
    assert verify(engine, now=now).ok


def test_bad_input_is_exit_2(clean_env, db_url, capsys):
    assert run_cli(["--database-url", db_url, "verify", "--start", "2026-01-02", "--end", "2026-01-01"]) == 2
    assert "--start" in capsys.readouterr().err
    assert run_cli(["--database-url", db_url, "verify", "--symbol", "NOPE"]) == 2
    assert "unknown symbol 'NOPE'" in capsys.readouterr().err
    assert run_cli(["--database-url", db_url, "verify"]) == 0  # an empty database is clean
