"""`collector status`: where every symbol's every stream stands, from the database alone.

Per (symbol, stream[, interval]): rows, first and newest time, lag (now - newest), open gaps and the
latest error; a row for every known symbol in every market stream in use, even when it has no rows
yet. ``summarize`` folds them into one line per stream (what `collector status` shows by default). Open gaps are what can be counted cheaply: for klines, the slots missing between the
first and newest kline (rows against the interval grid); for trades, backfill windows started but not
finished. `collector verify` runs the full checks.

One grouped scan per table, answered from its (symbol, time) index; nothing is read twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text

from collector.analyst.claims import trade_claims
from collector.domain import INTERVALS
from collector.store.db import reading

# stream -> (table, time column); klines are handled per interval.
SNAPSHOT_STREAMS = {
    "trades": ("trades", "time"),
    "depth": ("depth_snapshots", "captured_at"),
    "tickers": ("tickers_24hr", "captured_at"),
    "avg_price": ("avg_prices", "captured_at"),
    "book_ticker": ("book_tickers", "captured_at"),
}


@dataclass
class StreamStatus:
    symbol: str
    stream: str
    interval: str
    rows: int
    first: datetime | None
    newest: datetime | None
    lag: timedelta | None
    open_gaps: int | None
    last_error: str | None = None
    last_error_at: datetime | None = None
    note: str | None = None  # why it is not collected: refused by the exchange, or disabled
    listed: bool | None = None  # the exchange lists the symbol now (None: not an option symbol row)

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("first", "newest", "last_error_at"):
            d[k] = d[k].isoformat().replace("+00:00", "Z") if d[k] else None
        d["lag_seconds"] = None if self.lag is None else round(self.lag.total_seconds(), 3)
        del d["lag"]
        return d


def collect(
    engine: Engine,
    *,
    now: datetime | None = None,
    symbols: Sequence[str] | None = None,
    streams: Sequence[str] | None = None,
) -> list[StreamStatus]:
    """Every (symbol, stream[, interval]); ``symbols`` / ``streams`` keep only those named (a
    stream as 'klines' or 'klines 1m')."""
    now = now or datetime.now(UTC)
    out: list[StreamStatus] = []
    with reading(engine, isolation="REPEATABLE READ") as conn:
        for r in conn.execute(
            text(
                "SELECT symbol, interval, count(*) AS n, min(open_time) AS first, max(open_time) AS newest "
                "FROM klines GROUP BY symbol, interval"
            )
        ):
            iv = INTERVALS.get(r.interval)
            missing = None if iv is None else (r.newest - r.first) // iv + 1 - r.n
            # a kline's data is complete at its close: lag runs from there
            newest_end = r.newest + iv if iv else r.newest
            out.append(
                StreamStatus(
                    r.symbol,
                    "klines",
                    r.interval,
                    r.n,
                    r.first,
                    r.newest,
                    max(now - newest_end, timedelta(0)),
                    max(missing or 0, 0) if missing is not None else None,
                )
            )
        unfinished: dict[str, int] = dict(
            conn.execute(
                text(
                    "SELECT symbol, count(*) FROM checkpoints WHERE stream = 'trades' AND scope LIKE 'backfill %' "
                    "AND NOT complete GROUP BY symbol"
                )
            ).all()
        )
        for stream, (table, col) in SNAPSHOT_STREAMS.items():
            for r in conn.execute(
                text(
                    f"SELECT symbol, count(*) AS n, min({col}) AS first, max({col}) AS newest "
                    f"FROM {table} GROUP BY symbol"
                )
            ):
                gaps = unfinished.get(r.symbol, 0) if stream == "trades" else None
                out.append(StreamStatus(r.symbol, stream, "", r.n, r.first, r.newest, now - r.newest, gaps))
        listed: dict[str, bool] = {
            r.symbol: r.listed for r in conn.execute(text("SELECT symbol, listed FROM option_symbols"))
        }
        _fill_empty(out, listed)
        _account(conn, out, now)
        _attach_errors(conn, out)
        _attach_notes(conn, out)
        conn.rollback()
    for st in out:
        st.listed = listed.get(st.symbol)
    out = [st for st in out if _wanted(st, symbols, streams)]
    out.sort(key=lambda s: (s.symbol, s.stream, INTERVALS.get(s.interval, timedelta(0))))
    return out


MARKET_STREAMS = ("klines", *SNAPSHOT_STREAMS)


def _fill_empty(out: list[StreamStatus], listed: dict[str, bool]) -> None:
    """A row of its own for every known symbol in every market stream in use (one with rows for
    some symbol), so a symbol without trades shows 0 beside those with trades."""
    in_use = {(s.stream, s.interval) for s in out if s.stream in MARKET_STREAMS and s.rows}
    have = {(s.symbol, s.stream, s.interval) for s in out}
    for symbol in sorted(set(listed) | {s.symbol for s in out}):
        for stream, interval in sorted(in_use):
            if (symbol, stream, interval) not in have:
                out.append(StreamStatus(symbol, stream, interval, 0, None, None, None, None))


def _wanted(st: StreamStatus, symbols: Sequence[str] | None, streams: Sequence[str] | None) -> bool:
    if symbols and st.symbol.upper() not in {s.upper() for s in symbols}:
        return False
    label = f"{st.stream} {st.interval}".strip()
    return not streams or st.stream in streams or label in streams


@dataclass
class StreamSummary:
    """One stream over all symbols: what `collector status` shows first."""

    stream: str  # with its interval: 'klines 1m'
    symbols: int  # symbols with a row for it (stored or empty)
    with_rows: int  # of those, symbols with rows
    rows: int
    newest: datetime | None
    worst_lag: timedelta | None  # over the symbols listed now (all, when none is known as listed)
    worst_symbol: str | None
    open_gaps: int | None
    errors: int

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["newest"] = self.newest.isoformat().replace("+00:00", "Z") if self.newest else None
        d["worst_lag_seconds"] = None if self.worst_lag is None else round(self.worst_lag.total_seconds(), 3)
        del d["worst_lag"]
        return d


def summarize(statuses: Sequence[StreamStatus]) -> list[StreamSummary]:
    """One line per stream (and kline interval), in the order the details sort them."""
    groups: dict[tuple[str, str], list[StreamStatus]] = {}
    for st in statuses:
        if st.stream:
            groups.setdefault((st.stream, st.interval), []).append(st)
    out = []
    for (stream, interval), rows in sorted(groups.items(), key=lambda g: (g[0][0], INTERVALS.get(g[0][1], ZERO))):
        stored = [r for r in rows if r.rows]
        current = [r for r in stored if r.listed] or stored
        worst = max(current, key=lambda r: r.lag or ZERO, default=None)
        gaps = [r.open_gaps for r in rows if r.open_gaps is not None]
        out.append(
            StreamSummary(
                f"{stream} {interval}".strip(),
                len({r.symbol for r in rows}),
                len({r.symbol for r in stored}),
                sum(r.rows for r in rows),
                max((r.newest for r in stored if r.newest), default=None),
                worst.lag if worst else None,
                worst.symbol if worst else None,
                sum(gaps) if gaps else None,
                sum(1 for r in rows if r.last_error),
            )
        )
    return out


ZERO = timedelta(0)


# The account's streams: per symbol (orders, shorts and calls), or for the whole account ('*').
ACCOUNT_PER_SYMBOL = {"orders": ("account_orders", "update_time"), "records": ("account_option_records", "created_at")}
ACCOUNT_WHOLE = {"positions": "account_positions", "balances": "account_balances"}


def _account(conn, out: list[StreamStatus], now: datetime) -> None:
    for stream, (table, col) in ACCOUNT_PER_SYMBOL.items():
        for r in conn.execute(
            text(
                f"SELECT symbol, count(*) AS n, min({col}) AS first, max({col}) AS newest FROM {table} GROUP BY symbol"
            )
        ):
            lag = None if r.newest is None else now - r.newest
            out.append(StreamStatus(r.symbol, stream, "", r.n, r.first, r.newest, lag, None))
    for stream, table in ACCOUNT_WHOLE.items():
        r = conn.execute(
            text(f"SELECT count(*) AS n, min(captured_at) AS first, max(captured_at) AS newest FROM {table}")
        ).one()
        if r.n:
            out.append(StreamStatus("*", stream, "", r.n, r.first, r.newest, now - r.newest, None))


def _attach_errors(conn, statuses: list[StreamStatus]) -> None:
    """The latest error per (symbol, stream) from checkpoints and daemon job errors."""
    errors: dict[tuple[str, str], tuple[datetime, str]] = {}

    def keep(symbol: str, stream: str, at: datetime, message: str) -> None:
        if (symbol, stream) not in errors or errors[symbol, stream][0] < at:
            errors[symbol, stream] = (at, message)

    for r in conn.execute(
        text("SELECT symbol, stream, last_error, last_error_at FROM checkpoints WHERE last_error IS NOT NULL")
    ):
        keep(r.symbol, r.stream, r.last_error_at or datetime.min.replace(tzinfo=UTC), r.last_error)
    for r in conn.execute(
        text(
            "SELECT DISTINCT ON (symbol, job) symbol, job, at, error_class, message FROM job_errors "
            "WHERE symbol IS NOT NULL ORDER BY symbol, job, at DESC"
        )
    ):
        stream = _stream_of_job(r.job)
        keep(r.symbol, stream, r.at, f"{r.error_class}: {r.message}")
    known = {(s.symbol, s.stream) for s in statuses}
    for s in statuses:
        got = errors.get((s.symbol, s.stream))
        if got:
            s.last_error_at, s.last_error = got
    for (symbol, stream), (at, message) in errors.items():  # failing before any row was stored
        if (symbol, stream) not in known:
            statuses.append(StreamStatus(symbol, stream, "", 0, None, None, None, None, message, at))


def _attach_notes(conn, statuses: list[StreamStatus]) -> None:
    """Symbols the exchange refused (on each of their rows, or a row of their own), and streams the
    newest running daemon does not collect, with why (a row for all symbols: '*')."""
    refused = dict(conn.execute(text("SELECT symbol, refusal FROM option_symbols WHERE refused_at IS NOT NULL")).all())
    for s in statuses:
        if s.symbol in refused:
            s.note = f"refused by the exchange: {refused[s.symbol]}"
    have = {s.symbol for s in statuses}
    for symbol, why in refused.items():
        if symbol not in have:
            statuses.append(
                StreamStatus(symbol, "", "", 0, None, None, None, None, note=f"refused by the exchange: {why}")
            )
    run = conn.execute(
        text(
            "SELECT args FROM collector_runs WHERE kind = 'run' AND status = 'running' ORDER BY started_at DESC LIMIT 1"
        )
    ).scalar()
    for stream, why in ((run or {}).get("disabled") or {}).items():
        statuses.append(StreamStatus("*", stream, "", 0, None, None, None, None, note=f"disabled: {why}"))


def _stream_of_job(job: str) -> str:
    """Job names start with their stream ('trades', 'klines 1m', 'account orders'); others stay as they are."""
    job = job.removeprefix("account ")
    for stream in ("klines", *SNAPSHOT_STREAMS, *ACCOUNT_PER_SYMBOL):
        if job.startswith(stream):
            return stream
    return job


def push_state(engine) -> dict | None:
    """The push's state as the newest running daemon last noted it (once a minute), or None."""
    with reading(engine) as conn:
        counts = conn.execute(
            text(
                "SELECT counts FROM collector_runs WHERE kind = 'run' AND status = 'running' "
                "ORDER BY started_at DESC LIMIT 1"
            )
        ).scalar()
    return (counts or {}).get("push")


def render_push(p: dict) -> str:
    """One line of the push's state: the figures the daemon's log line gave at the same minute."""
    conns = p["connections"]
    seen = p["trades_first_seen"]
    share = p.get("repaired_share")
    repaired = f", {seen['repair']} repairing the push ({share:.2%})" if share is not None else ""
    down = f"; down: {', '.join(p['down'][:5])}{'…' if len(p['down']) > 5 else ''}" if p.get("down") else ""
    return (
        f"push ({', '.join(p['streams'])} from {p['url']}, as of {p.get('at', '?')}): "
        f"{conns['up']} of {sum(conns.values())} connections up, {p['messages_per_second']} messages/s, "
        f"{p['reconnects']} reconnects ({p['stalls']} stalls); trades first seen by push {seen['push']}, "
        f"by REST {seen['rest'] + seen['repair']}{repaired}{down}"
    )


def format_lag(lag: timedelta | None) -> str:
    if lag is None:
        return "-"
    s = int(lag.total_seconds())
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def render(statuses: list[StreamStatus]):
    """A rich Table of the statuses."""
    from rich.table import Table

    table = Table(title="collector status", show_lines=False)
    for col, just in (
        ("symbol", "left"),
        ("stream", "left"),
        ("rows", "right"),
        ("first", "left"),
        ("newest", "left"),
        ("lag", "right"),
        ("open gaps", "right"),
        ("last error", "left"),
        ("note", "left"),
    ):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for s in statuses:
        stream = f"{s.stream} {s.interval}".strip()
        gaps = _gaps(s.open_gaps)
        err = "" if not s.last_error else f"[red]{s.last_error[:60]}[/red]"
        note = "" if not s.note else f"[yellow]{s.note}[/yellow]"
        table.add_row(s.symbol, stream, f"{s.rows:,}", _t(s.first), _t(s.newest), format_lag(s.lag), gaps, err, note)
    return table


def render_summary(summaries: Sequence[StreamSummary]):
    """A rich Table: one line per stream."""
    from rich.table import Table

    table = Table(
        title="collector status by stream (details: --symbol S, --stream NAME or --details)", show_lines=False
    )
    for col, just in (
        ("stream", "left"),
        ("symbols", "right"),
        ("with rows", "right"),
        ("rows", "right"),
        ("newest", "left"),
        ("worst lag (listed)", "right"),
        ("open gaps", "right"),
        ("errors", "right"),
    ):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for s in summaries:
        gaps = _gaps(s.open_gaps)
        lag = format_lag(s.worst_lag) + (f" {s.worst_symbol}" if s.worst_symbol and s.symbols > 1 else "")
        errors = f"[red]{s.errors}[/red]" if s.errors else "0"
        table.add_row(s.stream, f"{s.symbols:,}", f"{s.with_rows:,}", f"{s.rows:,}", _t(s.newest), lag, gaps, errors)
    return table


def _gaps(n: int | None) -> str:
    return "-" if n is None else (f"[red]{n}[/red]" if n else "0")


def _t(t: datetime | None) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if t else "-"


# --- coverage over time (for `status --plot`) ---------------------------------------------------


@dataclass
class Coverage:
    start: datetime
    end: datetime
    buckets: int
    # (symbol, stream label) -> per cell: the share of the cell covered by rows (klines: by the time
    # the stored klines span, at their interval's length; other streams: 1.0 when any row fell in it)
    rows: dict[tuple[str, str], list[float]]
    # (symbol, stream label) -> cells known complete (a finished backfill or the live checkpoints
    # vouch for every row in them): such a cell without rows is quiet, not missing
    known: dict[tuple[str, str], list[bool]] = field(default_factory=dict)
    # (symbol, stream label) -> cells holding a real gap that `collector verify` finds (missing klines,
    # trades missing against the klines' trade counts)
    gaps: dict[tuple[str, str], list[bool]] = field(default_factory=dict)

    @property
    def width(self) -> timedelta:
        return (self.end - self.start) / self.buckets

    def cells(self, a: datetime, b: datetime) -> range:
        """The cells [a, b) touches."""
        first = max(0, (a - self.start) // self.width)
        last = min(self.buckets, -(-(b - self.start) // self.width))
        return range(first, max(first, last))

    def whole_cells(self, a: datetime, b: datetime) -> range:
        """The cells [a, b) covers whole."""
        first = max(0, -(-(a - self.start) // self.width))
        last = min(self.buckets, (b - self.start) // self.width)
        return range(first, max(first, last))


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NICE_WIDTHS = [timedelta(minutes=m) for m in (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080)]
# the kline intervals as SQL, so that each kline fills every cell it spans
_IV_SPANS = (
    "(VALUES " + ", ".join(f"('{k}', interval '{int(v.total_seconds())} seconds')" for k, v in INTERVALS.items()) + ")"
)
_KLINE_END = "k.open_time + coalesce(iv.span, interval '1 minute') - interval '1 millisecond'"


def coverage(engine: Engine, *, buckets: int = 240, gaps: bool = True) -> Coverage | None:
    """Bucketed presence of rows per symbol and stream over the whole stored time range (at most
    ``buckets`` cells, each of a round length), with what is known complete and, with ``gaps``, the
    real gaps `collector verify` finds."""
    with reading(engine, isolation="REPEATABLE READ") as conn:
        bounds = [
            conn.execute(text(f"SELECT min({c}), max({c}) FROM {t}")).one()
            for t, c in (("klines", "open_time"), *SNAPSHOT_STREAMS.values())
        ]
        lows = [b[0] for b in bounds if b[0] is not None]
        if not lows:
            return None
        first = min(lows)
        last = max(b[1] for b in bounds if b[1] is not None) + timedelta(minutes=1)
        # cells of a round length, aligned to it, so a cell is a whole number of kline slots
        width = next((w for w in NICE_WIDTHS if w * buckets >= last - first), NICE_WIDTHS[-1])
        start = EPOCH + (first - EPOCH) // width * width
        buckets = -(-(last - start) // width)
        end = start + buckets * width
        cov = Coverage(start, end, buckets, {})
        params = {"lo": start, "w": width, "n": buckets}
        bucket = "least(floor(extract(epoch FROM {c} - :lo) / extract(epoch FROM :w))::int, :n - 1)"
        for r in conn.execute(
            text(
                f"SELECT k.symbol, k.interval, b, count(*) AS n FROM klines k "
                f"LEFT JOIN {_IV_SPANS} AS iv(name, span) ON iv.name = k.interval, "
                f"LATERAL generate_series({bucket.format(c='k.open_time')}, {bucket.format(c=_KLINE_END)}) AS b "
                "GROUP BY 1, 2, 3"
            ),
            params,
        ):
            iv = INTERVALS.get(r.interval)
            share = 1.0 if iv is None or iv >= width else min(1.0, r.n / (width / iv))
            cov.rows.setdefault((r.symbol, f"klines {r.interval}"), [0.0] * buckets)[r.b] = share
        for stream, (table, col) in SNAPSHOT_STREAMS.items():
            for r in conn.execute(text(f"SELECT DISTINCT symbol, {bucket.format(c=col)} AS b FROM {table}"), params):
                cov.rows.setdefault((r.symbol, stream), [0.0] * buckets)[r.b] = 1.0
        symbols = sorted({symbol for symbol, _ in cov.rows})
        for symbol, ranges in trade_claims(conn, symbols).items():
            _mark(cov, cov.known, (symbol, "trades"), ranges, whole=True)
        for r in conn.execute(
            text(
                "SELECT symbol, stream, interval, lower(c) AS a, upper(c) AS b "
                "FROM backfill_coverage, unnest(covered) AS c WHERE stream IN ('trades', 'klines')"
            )
        ):
            label = f"{r.stream} {r.interval}".strip()
            _mark(cov, cov.known, (r.symbol, label), [(r.a, r.b)], whole=True)
        conn.rollback()
    if gaps:
        from collector.analyst.verify import verify

        for problem in verify(engine, symbols).problems:
            if problem.kind == "kline_gap":
                label = f"klines {problem.interval}"
            elif problem.kind in ("trade_hole", "kline_mismatch"):
                label = "trades"
            else:
                continue  # crossed books are what the exchange sent, not gaps
            _mark(cov, cov.gaps, (problem.symbol, label), [(problem.start, problem.end)], whole=False)
    return cov


def _mark(
    cov: Coverage,
    into: dict[tuple[str, str], list[bool]],
    key: tuple[str, str],
    ranges: Sequence[tuple[datetime, datetime]],
    *,
    whole: bool,
) -> None:
    cells = into.setdefault(key, [False] * cov.buckets)
    for a, b in ranges:
        for i in cov.whole_cells(a, b) if whole else cov.cells(a, b):
            cells[i] = True
