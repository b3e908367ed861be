"""`collector verify`: find what is missing or inconsistent in the stored history.

Four checks, each a kind of ``Problem`` with a half-open time range [start, end):

- ``kline_gap``: a slot of a kline interval's grid without a row. The exchange emits a kline for
  every interval of a symbol's life, trades or not, so the grid runs from the symbol's listing (its
  first stored kline, or first_seen if that is earlier) to its expiry once expired. For a symbol still
  trading it ends at the newest stored kline or the end the checkpoints claim, whichever is later:
  data not fetched *yet* is lag, which `collector status` shows, not a hole.
- ``trade_hole``: a minute the checkpoints claim complete for trades (a finished backfill window
  [start, end); an unfinished one up to its last trade; the live stream from the first stored trade up
  to its last trade) holding fewer trades than its closed 1m kline counts — or a checkpoint's last
  trade id that is not stored. Trade ids are numbered across all symbols, so a gap in ids is not a hole.
- ``kline_mismatch``: a claimed minute whose closed 1m kline disagrees with the stored trades on count
  or volume, other than by missing trades.
- ``crossed_book``: a depth snapshot whose best bid is at or above its best ask.

What the checks compare the rows against (listing, expiry, the checkpoints' claims) is read in
`collector.analyst.claims`. ``--repair`` re-fetches each kline gap, trade hole and mismatch as its own backfill
window (`collector.analyst.repair`), then verifies again. Crossed books are evidence and are left as they are.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Connection, Engine, text

from collector.analyst.claims import (
    Problem,
    SymbolMeta,
    kline_claims,
    symbol_meta,
    trade_claims,
)
from collector.domain import INTERVALS
from collector.errors import ConfigError
from collector.store.db import reading

MINUTE = timedelta(minutes=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
WEEK_EPOCH = datetime(1970, 1, 5, tzinfo=UTC)  # weekly klines open on Monday 00:00 UTC
MAX_REPORTED = 10_000  # per check: a wholly empty table must not flood the terminal


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def ok(self) -> bool:
        return not self.problems

    def count(self, kind: str) -> int:
        return sum(1 for p in self.problems if p.kind == kind)


# --- the grid ----------------------------------------------------------------------------------


def slot_floor(t: datetime, interval: str) -> datetime:
    step = INTERVALS[interval]
    origin = WEEK_EPOCH if interval == "1w" else EPOCH
    return origin + (t - origin) // step * step


def slot_ceil(t: datetime, interval: str) -> datetime:
    f = slot_floor(t, interval)
    return f if f == t else f + INTERVALS[interval]


# --- the checks ---------------------------------------------------------------------------------


def verify(
    engine: Engine,
    symbols: Sequence[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    now: datetime | None = None,
) -> Report:
    """Run every check over ``symbols`` (default all) within [start, end) (default all time)."""
    now = now or datetime.now(UTC)
    report = Report()
    # One snapshot for every check, so rows arriving meanwhile cannot make them disagree.
    with reading(engine, isolation="REPEATABLE READ") as conn:
        chosen = _symbols(conn, symbols)
        meta = symbol_meta(conn, chosen)
        claims = trade_claims(conn, chosen)
        claimed_klines = kline_claims(conn, chosen)
        report.problems += check_kline_gaps(conn, chosen, meta, claimed_klines, start, end, now, report)
        report.problems += check_trades(conn, claims, start, end, report)
        report.problems += check_checkpoint_ids(conn, chosen, start, end)
        report.problems += check_crossed_books(conn, chosen, start, end, report)
        conn.rollback()
    report.checked["symbols"] = len(chosen)
    report.problems.sort(key=lambda p: (p.symbol, p.kind, p.start, p.interval))
    return report


def _symbols(conn: Connection, wanted: Sequence[str] | None) -> list[str]:
    known = set(
        conn.execute(
            text(
                "SELECT symbol FROM option_symbols UNION SELECT DISTINCT symbol FROM checkpoints "
                "UNION SELECT DISTINCT symbol FROM klines WHERE interval = '1m'"
            )
        ).scalars()
    )
    if not wanted:
        return sorted(known)
    unknown = [s for s in wanted if s not in known]
    if unknown:
        raise ConfigError(f"unknown symbol {unknown[0]!r}: nothing is stored for it")
    return list(dict.fromkeys(wanted))


def check_kline_gaps(
    conn: Connection,
    symbols: list[str],
    meta: dict[str, SymbolMeta],
    claims: dict[tuple[str, str], datetime],
    start: datetime | None,
    end: datetime | None,
    now: datetime,
    report: Report,
) -> list[Problem]:
    bounds = conn.execute(
        text(
            "SELECT symbol, interval, min(open_time) AS first, max(open_time) AS last FROM klines "
            "WHERE symbol = ANY(:s) GROUP BY symbol, interval"
        ),
        {"s": symbols},
    ).all()
    problems: list[Problem] = []
    for b in bounds:
        if b.interval not in INTERVALS:
            continue
        iv = INTERVALS[b.interval]
        m = meta[b.symbol]
        lo = b.first if m.first_seen is None else min(b.first, slot_floor(m.first_seen, b.interval))
        if m.expiry is not None and m.expiry <= now:
            hi = slot_ceil(m.expiry, b.interval)  # the last kline opens before expiry
        else:
            hi = max(b.last + iv, claims.get((b.symbol, b.interval), b.last + iv))
            if m.expiry is not None:
                hi = min(hi, slot_ceil(m.expiry, b.interval))
        if start is not None:
            lo = max(lo, slot_ceil(start, b.interval))
        if end is not None:
            hi = min(hi, slot_ceil(end, b.interval))
        if lo >= hi:
            continue
        report.checked["kline_slots"] += (hi - lo) // iv
        problems += _grid_gaps(conn, b.symbol, b.interval, iv, lo, hi)
    return problems[:MAX_REPORTED]


def _grid_gaps(
    conn: Connection, symbol: str, interval: str, iv: timedelta, lo: datetime, hi: datetime
) -> list[Problem]:
    """Missing slots in [lo, hi): walk the stored open times in order (PK range scan)."""
    rows = conn.execute(
        text(
            "SELECT prev, open_time FROM (SELECT open_time, lag(open_time) OVER (ORDER BY open_time) AS prev "
            "FROM klines WHERE symbol = :s AND interval = :i AND open_time >= :lo AND open_time < :hi) x "
            "WHERE prev IS NULL OR open_time - prev > :iv"
        ),
        {"s": symbol, "i": interval, "lo": lo, "hi": hi, "iv": iv},
    ).all()
    last = conn.execute(
        text(
            "SELECT max(open_time) FROM klines WHERE symbol = :s AND interval = :i "
            "AND open_time >= :lo AND open_time < :hi"
        ),
        {"s": symbol, "i": interval, "lo": lo, "hi": hi},
    ).scalar()
    gaps: list[tuple[datetime, datetime]] = []
    if last is None:
        gaps.append((lo, hi))
    else:
        for prev, open_time in rows:
            gaps.append((lo, open_time) if prev is None else (prev + iv, open_time))
        if last + iv < hi:
            gaps.append((last + iv, hi))
    return [Problem("kline_gap", symbol, a, b, interval, f"{(b - a) // iv} missing") for a, b in gaps if a < b]


def check_trades(
    conn: Connection,
    claims: dict[str, list[tuple[datetime, datetime]]],
    start: datetime | None,
    end: datetime | None,
    report: Report,
) -> list[Problem]:
    """Compare each claimed whole minute's closed 1m kline with the trades stored in it."""
    problems: list[Problem] = []
    for symbol, ranges in sorted(claims.items()):
        for a, b in ranges:
            lo, hi = slot_ceil(a, "1m"), slot_floor(b, "1m")
            if start is not None:
                lo = max(lo, slot_ceil(start, "1m"))
            if end is not None:
                hi = min(hi, slot_floor(end, "1m"))
            if lo >= hi:
                continue
            report.checked["trade_minutes"] += (hi - lo) // MINUTE
            rows = conn.execute(
                text(
                    "SELECT k.open_time, k.trade_count, k.volume, coalesce(t.n, 0) AS n, "
                    "coalesce(t.v, 0) AS v FROM klines k LEFT JOIN ("
                    "  SELECT date_bin('1 minute', time, TIMESTAMPTZ '1970-01-01 00:00+00') AS m, "
                    "  count(*) AS n, sum(qty) AS v FROM trades "
                    "  WHERE symbol = :s AND time >= :lo AND time < :hi GROUP BY 1) t ON t.m = k.open_time "
                    "WHERE k.symbol = :s AND k.interval = '1m' AND k.is_closed "
                    "AND k.open_time >= :lo AND k.open_time < :hi "
                    "AND (k.trade_count <> coalesce(t.n, 0) OR k.volume <> coalesce(t.v, 0)) "
                    "ORDER BY k.open_time"
                ),
                {"s": symbol, "lo": lo, "hi": hi},
            ).all()
            problems += _minute_problems(symbol, rows)
            if len(problems) > MAX_REPORTED:
                return problems[:MAX_REPORTED]
    return problems


def _minute_problems(symbol: str, rows: Sequence) -> list[Problem]:
    """Consecutive disagreeing minutes of one kind become one problem."""
    out: list[Problem] = []
    run: list = []

    def flush() -> None:
        if not run:
            return
        kind = run[0][0]
        k_n = sum(r.trade_count for _, r in run)
        s_n = sum(r.n for _, r in run)
        k_v = sum((Decimal(r.volume) for _, r in run), Decimal(0))
        s_v = sum((Decimal(r.v) for _, r in run), Decimal(0))
        out.append(
            Problem(
                kind,
                symbol,
                run[0][1].open_time,
                run[-1][1].open_time + MINUTE,
                "1m",
                f"klines: {k_n} trades, volume {k_v}; stored: {s_n} trades, volume {s_v}",
            )
        )
        run.clear()

    for r in rows:
        kind = "trade_hole" if r.n < r.trade_count else "kline_mismatch"
        if run and (run[0][0] != kind or run[-1][1].open_time + MINUTE != r.open_time):
            flush()
        run.append((kind, r))
    flush()
    return out


def check_checkpoint_ids(
    conn: Connection, symbols: list[str], start: datetime | None, end: datetime | None
) -> list[Problem]:
    """A trades checkpoint vouches for its last trade id: that trade must be stored."""
    rows = conn.execute(
        text(
            "SELECT c.scope, c.symbol, c.last_trade_id, c.last_time FROM checkpoints c "
            "WHERE c.stream = 'trades' AND c.symbol = ANY(:s) AND c.last_trade_id IS NOT NULL "
            "AND c.last_time IS NOT NULL AND NOT EXISTS (SELECT 1 FROM trades t "
            "WHERE t.symbol = c.symbol AND t.trade_id = c.last_trade_id)"
        ),
        {"s": symbols},
    ).all()
    out = []
    for r in rows:
        if (start is not None and r.last_time < start) or (end is not None and r.last_time >= end):
            continue
        m = slot_floor(r.last_time, "1m")
        out.append(
            Problem(
                "trade_hole",
                r.symbol,
                m,
                m + MINUTE,
                "",
                f"checkpoint {r.scope!r} ends at trade {r.last_trade_id}, which is not stored",
            )
        )
    return out


def check_crossed_books(
    conn: Connection, symbols: list[str], start: datetime | None, end: datetime | None, report: Report
) -> list[Problem]:
    params: dict = {"s": symbols}
    where = ""
    if start is not None:
        where += " AND s.captured_at >= :start"
        params["start"] = start
    if end is not None:
        where += " AND s.captured_at < :end"
        params["end"] = end
    report.checked["depth_snapshots"] += conn.execute(
        text(f"SELECT count(*) FROM depth_snapshots s WHERE s.symbol = ANY(:s){where}"), params
    ).scalar_one()
    rows = conn.execute(
        text(
            "SELECT s.symbol, s.captured_at, b.bid, a.ask FROM depth_snapshots s "
            "CROSS JOIN LATERAL (SELECT max(price) AS bid FROM depth_levels "
            "  WHERE snapshot_id = s.id AND side = 'bid') b "
            "CROSS JOIN LATERAL (SELECT min(price) AS ask FROM depth_levels "
            "  WHERE snapshot_id = s.id AND side = 'ask') a "
            f"WHERE s.symbol = ANY(:s){where} AND b.bid >= a.ask ORDER BY s.symbol, s.captured_at "
            f"LIMIT {MAX_REPORTED}"
        ),
        params,
    ).all()
    return [
        Problem(
            "crossed_book",
            r.symbol,
            r.captured_at,
            r.captured_at + timedelta(microseconds=1),
            "",
            f"best bid {r.bid} >= best ask {r.ask}",
        )
        for r in rows
    ]
