"""Klines poll: for each symbol and interval, from the checkpoint (the open time after the last
closed kline) to now. The open kline is stored as partial (``is_closed = false``) and re-upserted
on every poll until it closes; the checkpoint only ever moves past closed klines."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from collector import metrics
from collector.daemon.context import LiveContext
from collector.daemon.sweep import note_final
from collector.domain import INTERVALS, Kline
from collector.exchange.paging import ONE_MS, kline_pages
from collector.exchange.ratelimit import Priority
from collector.store import checkpoints
from collector.store.history import load_checkpoint, save_klines

STREAM = "klines"


async def poll_klines(ctx: LiveContext, interval: str) -> None:
    await ctx.each(ctx.with_history(), lambda s: _guarded(ctx, s, interval))


async def _guarded(ctx: LiveContext, symbol: str, interval: str) -> None:
    try:
        with ctx.polling(symbol) as mine:
            if mine:
                await poll_symbol_klines(ctx, symbol, interval)
    except Exception as exc:  # noqa: BLE001 - one symbol's failure must not stop the others
        await ctx.record_error(f"klines {interval}", symbol, exc, stream=STREAM, interval=interval)


async def poll_symbol_klines(ctx: LiveContext, symbol: str, interval: str) -> int:
    started = ctx.clock()
    cp = await ctx.db(_load, ctx.engine, symbol, interval)
    start = cp.last_time if cp is not None and cp.last_time is not None else ctx.history_start(symbol)
    server_now = datetime.fromtimestamp(ctx.client.governor.server_time(), UTC)
    end = server_now + INTERVALS[interval]  # includes the open kline
    stored = 0
    last: Kline | None = None
    async for page in kline_pages(ctx.client, symbol, interval, start, end, priority=Priority.LIVE):
        stored += await ctx.db(_store, ctx.engine, symbol, interval, page, server_now)
        last = page[-1]
    ctx.mark_caught_up(f"{STREAM} {interval}", symbol, started)
    sym = ctx.symbols.get(symbol)
    # Final once the kline holding the expiry is closed (or there has never been one).
    if (
        sym is not None
        and sym.expiry is not None
        and (last is None or last.close_time < server_now)
        and (last is None or last.close_time >= sym.expiry - ONE_MS)
    ):
        await note_final(ctx, symbol, f"{STREAM} {interval}", started)
    return stored


def _load(engine: Engine, symbol: str, interval: str) -> checkpoints.Checkpoint | None:
    return load_checkpoint(engine, checkpoints.LIVE, symbol, STREAM, interval)


def _store(engine: Engine, symbol: str, interval: str, klines: list[Kline], server_now: datetime) -> int:
    # The open kline is stored as partial; the checkpoint moves past closed ones only.
    save_klines(engine, checkpoints.LIVE, symbol, interval, klines, now=server_now)
    metrics.ROWS_UPSERTED.labels("klines").inc(len(klines))
    if klines:
        metrics.NEWEST_ROW.labels(STREAM, interval, symbol).set(klines[-1].open_time.timestamp())
    return len(klines)
