"""The exchange's truth against the database, for backfill tests: the simulator's trades and klines
of a window, what is stored, and the environment and command line of a `collector backfill`.

The comparison is on full value tuples (exact decimals, times in ms) and also checks that nothing
was stored twice under a checkpoint.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine, select, text

from collector.config import load_settings
from collector.simulator import Market, Simulator
from collector.store.models import KlineRow, TradeRow


def ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def dt(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


def settings_for(sim: Simulator):
    return load_settings(None, {"exchange_url": sim.base_url, "api_key": "testkey123456"}, defaults_file=None)


def window(now_ms: int) -> tuple[datetime, datetime]:
    """Off the minute grid; ends more than an hour before now, so every 1h kline in it is closed."""
    end = dt(now_ms - 70 * 60_000).replace(second=43, microsecond=0)
    return end - timedelta(hours=2, seconds=26, microseconds=250_000), end


def truth_trades(market: Market, symbols, start: datetime, end: datetime) -> set[tuple]:
    return {
        (s, t["id"], Decimal(t["price"]), Decimal(t["qty"]), t["time"], t["buyerMaker"])
        for s in symbols
        for t in market.trades(s, ms(start), ms(end))
    }


def stored_trades(engine: Engine) -> set[tuple]:
    t = TradeRow.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.symbol, t.c.trade_id, t.c.price, t.c.qty, t.c.time, t.c.buyer_maker))
        return {(r[0], r[1], r[2], r[3], ms(r[4]), r[5]) for r in rows}


def truth_klines(market: Market, symbols, intervals, start: datetime, end: datetime, now_ms: int) -> set[tuple]:
    out = set()
    for s in symbols:
        for iv in intervals:
            for k in market.klines(s, iv, ms(start), ms(end), now_ms):
                out.add(
                    (
                        s,
                        iv,
                        k[0],
                        *(Decimal(str(x)) for x in k[1:6]),
                        k[6],
                        *(Decimal(str(x)) for x in (k[7],)),
                        int(k[8]),
                        Decimal(str(k[9])),
                        Decimal(str(k[10])),
                    )
                )
    return out


def stored_klines(engine: Engine) -> set[tuple]:
    k = KlineRow.__table__
    cols = [
        k.c.symbol,
        k.c.interval,
        k.c.open_time,
        k.c.open,
        k.c.high,
        k.c.low,
        k.c.close,
        k.c.volume,
        k.c.close_time,
        k.c.quote_volume,
        k.c.trade_count,
        k.c.taker_buy_base_volume,
        k.c.taker_buy_quote_volume,
    ]
    with engine.connect() as conn:
        assert conn.execute(select(k.c.symbol).where(k.c.is_closed.is_(False))).first() is None
        return {(r[0], r[1], ms(r[2]), *r[3:8], ms(r[8]), *r[9:]) for r in conn.execute(select(*cols))}


API_KEY = "testkey123456"
INTERVALS = ("1m", "1h")


def cli_env(db_url: str, sim: Simulator, **extra: str) -> dict[str, str]:
    """The environment of a `python -m collector` subprocess: no COLLECTOR_* from outside, no push
    unless ``extra`` says so."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    env.update(COLLECTOR_DATABASE_URL=db_url, COLLECTOR_EXCHANGE_URL=sim.base_url, COLLECTOR_API_KEY=API_KEY)
    env["COLLECTOR_PUSH"] = ""  # REST alone, as the daemon tests were written (push: test_push.py)
    env.update(extra)
    return env


def backfill_cmd(start: datetime, end: datetime, symbols: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "collector", "backfill", "--start", start.isoformat(), "--end", end.isoformat()]
    for s in symbols:
        cmd += ["--symbol", s]
    for iv in INTERVALS:
        cmd += ["--interval", iv]
    return cmd


def trade_keys(engine: Engine) -> list[tuple[str, int]]:
    t = TradeRow.__table__
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(t.c.symbol, t.c.trade_id))]


def assert_equals_truth(
    engine: Engine, sim: Simulator, symbols: list[str], start: datetime, end: datetime, now_ms: int
) -> tuple[int, int]:
    """Trades and klines (1m, 1h) equal the simulator's, no duplicates, every checkpoint complete
    and its row counter equal to the rows stored (nothing was written twice). Returns the counts."""
    market = sim.market
    expected_trades = truth_trades(market, symbols, start, end)
    keys = trade_keys(engine)
    assert not [k for k, n in Counter(keys).items() if n > 1], "duplicate trades"
    got_trades = stored_trades(engine)
    assert len(got_trades) == len(expected_trades)
    assert got_trades == expected_trades
    expected_klines = truth_klines(market, symbols, INTERVALS, start, end, now_ms)
    assert stored_klines(engine) == expected_klines
    with engine.connect() as conn:
        assert (
            conn.execute(text("SELECT count(*) - count(DISTINCT (symbol, interval, open_time)) FROM klines")).scalar()
            == 0
        )
        cps = conn.execute(
            text("SELECT symbol, stream, interval, complete, rows FROM checkpoints WHERE scope LIKE 'backfill %'")
        ).all()
    wanted = {(s, "trades", "") for s in symbols} | {(s, "klines", iv) for s in symbols for iv in INTERVALS}
    assert {(c.symbol, c.stream, c.interval) for c in cps} == wanted
    assert all(c.complete for c in cps), [c for c in cps if not c.complete]
    # Rows and checkpoint commit together and a resumed task starts after its checkpoint, so the
    # counters add up to the tables exactly: a batch fetched and stored twice would show here.
    assert sum(c.rows for c in cps if c.stream == "trades") == len(expected_trades)
    assert sum(c.rows for c in cps if c.stream == "klines") == len(expected_klines)
    return len(expected_trades), len(expected_klines)


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""
