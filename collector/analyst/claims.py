"""What the stored history should hold, per symbol: what `collector.analyst.verify` checks the rows
against, and the ``Problem`` it reports where they differ (which `repair` fixes).

A symbol's listing and expiry (``option_symbols``), and the ranges its checkpoints vouch for: per
(symbol, interval) the latest kline end, per symbol the merged ranges whose trades are all stored.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, text

from collector.domain import INTERVALS
from collector.store.checkpoints import LIVE, backfill_window


@dataclass(frozen=True, order=True)
class Problem:
    kind: str  # kline_gap | trade_hole | kline_mismatch | crossed_book
    symbol: str
    start: datetime
    end: datetime
    interval: str = ""
    detail: str = ""

    @property
    def repairable(self) -> bool:
        return self.kind != "crossed_book"


@dataclass(frozen=True)
class SymbolMeta:
    first_seen: datetime | None
    expiry: datetime | None


def symbol_meta(conn: Connection, symbols: list[str]) -> dict[str, SymbolMeta]:
    rows = conn.execute(
        text("SELECT symbol, first_seen, expiry_time FROM option_symbols WHERE symbol = ANY(:s)"), {"s": symbols}
    )
    meta = {r.symbol: SymbolMeta(r.first_seen, r.expiry_time) for r in rows}
    return {s: meta.get(s, SymbolMeta(None, None)) for s in symbols}


def kline_claims(conn: Connection, symbols: list[str]) -> dict[tuple[str, str], datetime]:
    """(symbol, interval) -> the latest end a kline checkpoint vouches for."""
    out: dict[tuple[str, str], datetime] = {}
    rows = conn.execute(
        text(
            "SELECT scope, symbol, interval, last_time, complete FROM checkpoints "
            "WHERE stream = 'klines' AND symbol = ANY(:s)"
        ),
        {"s": symbols},
    )
    for r in rows:
        if r.interval not in INTERVALS:
            continue
        window = backfill_window(r.scope)
        if r.scope == LIVE and r.last_time is not None:
            claimed = r.last_time + INTERVALS[r.interval]  # live: open time of the last closed kline
        elif window and r.complete:
            claimed = window[1]
        elif window and r.last_time is not None:
            claimed = r.last_time  # backfill: end of the last kline stored
        else:
            continue
        key = (r.symbol, r.interval)
        out[key] = max(out.get(key, claimed), claimed)
    return out


def trade_claims(conn: Connection, symbols: list[str]) -> dict[str, list[tuple[datetime, datetime]]]:
    """symbol -> merged ranges whose trades the checkpoints say are all stored."""
    ranges: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    rows = conn.execute(
        text("SELECT scope, symbol, last_time, complete FROM checkpoints WHERE stream = 'trades' AND symbol = ANY(:s)"),
        {"s": symbols},
    ).all()
    live = [r for r in rows if r.scope == LIVE and r.last_time is not None]
    firsts: dict[str, datetime] = {}
    if live:
        firsts = dict(
            conn.execute(
                text(
                    "SELECT s.symbol, (SELECT min(time) FROM trades t WHERE t.symbol = s.symbol) "
                    "FROM unnest(CAST(:s AS text[])) AS s(symbol)"
                ),
                {"s": [r.symbol for r in live]},
            ).all()
        )
    for r in rows:
        window = backfill_window(r.scope)
        if window and r.complete:
            ranges[r.symbol].append(window)
        elif window and r.last_time is not None:
            ranges[r.symbol].append((window[0], r.last_time))  # trades at last_time may follow
        elif r.scope == LIVE and r.last_time is not None and firsts.get(r.symbol) is not None:
            ranges[r.symbol].append((firsts[r.symbol], r.last_time))
    return {s: _merge(rs) for s, rs in ranges.items()}


def _merge(ranges: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    for a, b in sorted(ranges):
        if a >= b:
            continue
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out
