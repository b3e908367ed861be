"""Ground truth for backfill tests that run the real CLI: the simulator's data vs the database.

Shared by the crash and fault tests. The comparison is on full value tuples (exact decimals,
times in ms) and also checks that nothing was stored twice under a checkpoint.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, select, text

from collector.simulator import Simulator
from collector.store.models import TradeRow
from tests.integration.test_backfill import (
    ms,
    stored_klines,
    truth_klines,
    truth_trades,
)

API_KEY = "testkey123456"
INTERVALS = ("1m", "1h")


def cli_env(db_url: str, sim: Simulator, **extra: str) -> dict[str, str]:
    """The environment of a `python -m collector` subprocess: no COLLECTOR_* from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    env.update(COLLECTOR_DATABASE_URL=db_url, COLLECTOR_EXCHANGE_URL=sim.base_url, COLLECTOR_API_KEY=API_KEY)
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


def assert_equals_truth(engine: Engine, sim: Simulator, symbols: list[str], start: datetime, end: datetime,
                        now_ms: int) -> tuple[int, int]:
    """Trades and klines (1m, 1h) equal the simulator's, no duplicates, every checkpoint complete
    and its row counter equal to the rows stored (nothing was written twice). Returns the counts."""
    from tests.integration.test_backfill import stored_trades

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
        assert conn.execute(text("SELECT count(*) - count(DISTINCT (symbol, interval, open_time)) FROM klines")
                            ).scalar() == 0
        cps = conn.execute(text("SELECT symbol, stream, interval, complete, rows FROM checkpoints "
                                "WHERE scope LIKE 'backfill %'")).all()
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


__all__ = ["API_KEY", "INTERVALS", "assert_equals_truth", "backfill_cmd", "cli_env", "ms", "tail", "trade_keys"]
