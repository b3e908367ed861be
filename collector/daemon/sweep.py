"""The final sweep of an expired symbol: once every history stream (trades, klines per interval,
the account's orders and shorts and calls) has caught up in a poll that began after the expiry, the
symbol is marked swept and no longer polled. Its rows stay; nothing is deleted."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from collector.daemon.context import LiveContext

log = logging.getLogger(__name__)
SETTLE = timedelta(seconds=2)  # trades of the last instant before expiry may still be in flight


def history_streams(ctx: LiveContext, symbol: str) -> set[str]:
    """What must catch up after expiry before ``symbol`` is swept: trades, klines per interval, and
    with the account, its orders (and shorts and calls where the option may be shorted)."""
    keys = set()
    if "trades" in ctx.settings.streams:
        keys.add("trades")
    if "klines" in ctx.settings.streams:
        keys.update(f"klines {iv}" for iv in ctx.settings.kline_intervals)
    if "account" in ctx.settings.streams:
        keys.add("orders")
        sym = ctx.symbols.get(symbol)
        if sym is not None and sym.can_release:
            keys.add("records")
    return keys


def sweeping(ctx: LiveContext, symbol: str, poll_started: float) -> bool:
    """Would a poll of ``symbol`` that started at ``poll_started`` (host time) be its final one?"""
    sym = ctx.symbols.get(symbol)
    if sym is None or sym.swept or sym.expiry is None:
        return False
    return datetime.fromtimestamp(poll_started + ctx.client.governor.offset, UTC) >= sym.expiry + SETTLE


async def note_final(ctx: LiveContext, symbol: str, stream: str, poll_started: float) -> None:
    """``stream`` caught up for ``symbol`` in a poll that started at ``poll_started`` (host time)."""
    if not sweeping(ctx, symbol, poll_started):
        return
    sym = ctx.symbols[symbol]
    done = ctx.final.setdefault(symbol, set())
    done.add(stream)
    if history_streams(ctx, symbol) <= done:
        from collector.daemon.symbols import mark_swept

        await ctx.db(mark_swept, ctx.engine, symbol, ctx.now())
        sym.swept = True
        ctx.final.pop(symbol, None)
        ctx.forget(symbol)
        log.info("final sweep of expired %s done; no longer polled", symbol)
        if ctx.on_symbols_changed is not None:
            ctx.on_symbols_changed()
