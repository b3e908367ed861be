"""Trades poll: for each symbol, historicalTrades from its checkpoint until caught up.

A symbol seen for the first time starts ``lookback_hours`` before it was first seen (located by
interpolation search on fromId), so the daemon's history of it is gap-free from that point. Rows and the checkpoint
commit together; a crash or an outage just means the next poll catches up.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine

from collector import metrics
from collector.daemon.context import LiveContext
from collector.daemon.sweep import note_final, sweeping
from collector.domain import Trade
from collector.exchange.paging import locate_first_trade, trade_pages
from collector.exchange.ratelimit import Priority
from collector.store import checkpoints
from collector.store.history import load_checkpoint, save_trades

STREAM = "trades"


async def poll_trades(ctx: LiveContext) -> None:
    await asyncio.gather(*(_guarded(ctx, s) for s in ctx.with_history()))


async def _guarded(ctx: LiveContext, symbol: str) -> None:
    try:
        with ctx.polling(symbol) as mine:
            if mine:
                await poll_symbol_trades(ctx, symbol)
    except Exception as exc:  # noqa: BLE001 - one symbol's failure must not stop the others
        await ctx.record_error("trades", symbol, exc, stream=STREAM)


async def poll_symbol_trades(ctx: LiveContext, symbol: str) -> int:
    """Fetch and store every trade newer than the checkpoint; return how many were stored."""
    started = ctx.clock()
    # The final sweep of an expired symbol claims its history complete: that needs evidence (an
    # empty page), not a page shorter than asked.
    final = sweeping(ctx, symbol, started)
    cp = await ctx.db(_load, ctx.engine, symbol)
    if cp is not None and cp.last_trade_id is not None:
        pages = trade_pages(ctx.client, symbol, cp.last_trade_id + 1, priority=Priority.LIVE, evidence=final)
    else:
        since = cp.last_time if cp is not None and cp.last_time else ctx.history_start(symbol)
        located = await locate_first_trade(ctx.client, symbol, since, priority=Priority.LIVE)
        if located.first_id is None:
            # Nothing since then; remember where we looked so no later trade can slip before it.
            await ctx.db(_store, ctx.engine, symbol, [], since)
            ctx.mark_caught_up(STREAM, symbol, started)
            await note_final(ctx, symbol, STREAM, started)
            return 0
        pages = trade_pages(
            ctx.client, symbol, located.first_id, priority=Priority.LIVE, first_page=located.page, evidence=final
        )
    stored = 0
    # Each page commits with its checkpoint: a catch-up cut short (job timeout, shutdown) keeps
    # what it fetched, so the next poll continues instead of starting over.
    async for page in pages:
        stored += await ctx.db(_store, ctx.engine, symbol, page, None)
    ctx.mark_caught_up(STREAM, symbol, started)
    if not final or pages.exhausted:
        await note_final(ctx, symbol, STREAM, started)
    return stored


def _load(engine: Engine, symbol: str) -> checkpoints.Checkpoint | None:
    return load_checkpoint(engine, checkpoints.LIVE, symbol, STREAM)


def _store(engine: Engine, symbol: str, trades: list[Trade], anchor) -> int:
    save_trades(engine, checkpoints.LIVE, symbol, trades, anchor=anchor)
    metrics.ROWS_UPSERTED.labels("trades").inc(len(trades))
    if trades:
        metrics.NEWEST_ROW.labels(STREAM, symbol).set(trades[-1].time.timestamp())
    return len(trades)
