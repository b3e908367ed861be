"""Coverage: the times whose rows are all stored, per (symbol, stream, interval).

``backfill_coverage.covered`` is a ``tstzmultirange``. A range goes in only in the transaction that
commits the rows proving it (``add``, called beside the checkpoint), so the coverage never claims
more than is stored. A backfill asks for the ``holes`` of its window and fetches only those;
``forget`` takes a range out again (a repair found it was not whole after all).

What "all stored" means per stream: trades, every trade whose time lies in the range; klines,
every kline whose open time lies in it; the account's orders and records, every one made in it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Connection, text

Key = tuple[str, str, str]  # symbol, stream, interval ('' for streams without one)

_ADD = text(
    "INSERT INTO backfill_coverage (symbol, stream, interval, covered) "
    "VALUES (:symbol, :stream, :interval, tstzmultirange(tstzrange(:start, :end))) "
    "ON CONFLICT (symbol, stream, interval) DO UPDATE "
    "SET covered = backfill_coverage.covered + EXCLUDED.covered, updated_at = now() "
    "WHERE NOT backfill_coverage.covered @> EXCLUDED.covered"
)

_HOLES = text(
    "SELECT k.symbol, k.stream, k.interval, lower(h) AS start, upper(h) AS end "
    "FROM unnest(CAST(:symbols AS text[]), CAST(:streams AS text[]), CAST(:intervals AS text[]), "
    "            CAST(:starts AS timestamptz[]), CAST(:ends AS timestamptz[])) "
    '     AS k(symbol, stream, interval, start, "end") '
    "LEFT JOIN backfill_coverage c USING (symbol, stream, interval) "
    'CROSS JOIN LATERAL unnest(tstzmultirange(tstzrange(k.start, k."end")) '
    "                          - coalesce(c.covered, '{}'::tstzmultirange)) AS h "
    "ORDER BY k.symbol, k.stream, k.interval, lower(h)"
)

_ENDS = text(
    "SELECT symbol, stream, interval, upper(covered) AS covered_until FROM backfill_coverage "
    "WHERE (symbol, stream, interval) IN (SELECT * FROM unnest(CAST(:symbols AS text[]), "
    "CAST(:streams AS text[]), CAST(:intervals AS text[])))"
)

_FORGET = text(
    "UPDATE backfill_coverage SET covered = covered - tstzmultirange(tstzrange(:start, :end)), updated_at = now() "
    "WHERE symbol = ANY(:symbols) AND stream = ANY(:streams) AND covered && tstzrange(:start, :end)"
)


def add(conn: Connection, key: Key, start: datetime, end: datetime) -> None:
    """``[start, end)`` of ``key`` is stored whole (in the caller's transaction, beside its rows)."""
    if start >= end:
        return
    symbol, stream, interval = key
    conn.execute(_ADD, {"symbol": symbol, "stream": stream, "interval": interval, "start": start, "end": end})


def holes(
    conn: Connection, windows: Iterable[tuple[Key, datetime, datetime]]
) -> dict[Key, list[tuple[datetime, datetime]]]:
    """For each (key, start, end): the parts of ``[start, end)`` not covered, in time order (a key
    whose window is wholly covered maps to an empty list)."""
    rows = list(windows)
    out: dict[Key, list[tuple[datetime, datetime]]] = {key: [] for key, _, _ in rows}
    if not rows:
        return out
    params = {
        "symbols": [k[0] for k, _, _ in rows],
        "streams": [k[1] for k, _, _ in rows],
        "intervals": [k[2] for k, _, _ in rows],
        "starts": [s for _, s, _ in rows],
        "ends": [e for _, _, e in rows],
    }
    for r in conn.execute(_HOLES, params):
        out[(r.symbol, r.stream, r.interval)].append((r.start, r.end))
    return out


def covered_until(conn: Connection, keys: Sequence[Key]) -> dict[Key, datetime]:
    """Where each key's coverage ends (the upper bound of its latest range); keys never covered
    are absent."""
    if not keys:
        return {}
    params = {"symbols": [k[0] for k in keys], "streams": [k[1] for k in keys], "intervals": [k[2] for k in keys]}
    return {
        (r.symbol, r.stream, r.interval): r.covered_until
        for r in conn.execute(_ENDS, params)
        if r.covered_until is not None
    }


def forget(conn: Connection, symbols: Sequence[str], streams: Sequence[str], start: datetime, end: datetime) -> int:
    """Take ``[start, end)`` out of the coverage of these symbols' streams (all intervals)."""
    return conn.execute(
        _FORGET, {"symbols": list(symbols), "streams": list(streams), "start": start, "end": end}
    ).rowcount
