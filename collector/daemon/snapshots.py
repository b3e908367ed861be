"""Snapshot polls: depth per symbol, 24hr tickers, and optionally avgPrice and bookTicker.

Snapshots are samples, keyed by (symbol, captured_at), so polling again never duplicates a row.
For tickers the cheaper call is chosen by the number of symbols: one all-symbols call (weight 40)
or one call per symbol (weight 1 each).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import Engine

from collector import metrics
from collector.daemon.context import LiveContext
from collector.daemon.trades import note_volumes
from collector.domain import DepthSnapshot, Ticker24h
from collector.exchange import endpoints as ep
from collector.store.db import transaction
from collector.store.write import (
    set_strike_prices,
    write_avg_prices,
    write_book_tickers,
    write_depth,
    write_tickers,
)


async def _each(
    ctx: LiveContext, job: str, stream: str, symbols: list[str], fetch_store: Callable[[str], Awaitable[None]]
) -> None:
    async def one(symbol: str) -> None:
        started = ctx.clock()
        try:
            with ctx.polling(symbol) as mine:
                if not mine:
                    return
                await fetch_store(symbol)
            ctx.mark_caught_up(stream, symbol, started)
        except Exception as exc:  # noqa: BLE001 - one symbol's failure must not stop the others
            await ctx.record_error(job, symbol, exc, stream=stream)

    await ctx.each(symbols, one)


async def poll_depth(ctx: LiveContext) -> None:
    limit = ctx.settings.depth_limit

    async def one(symbol: str) -> None:
        snapshot = await ctx.client.depth(symbol, limit)
        await ctx.db(store_depth, ctx.engine, snapshot, limit)

    # a symbol whose book is pushed is stored from the push (daemon/push.py), not asked
    await _each(ctx, "depth", "depth", [s for s in ctx.trading() if s not in ctx.depth_pushed], one)


def store_depth(engine: Engine, snapshot: DepthSnapshot, limit: int | None) -> None:
    """One book and its levels (polled here, or pushed: daemon/push.py)."""
    with transaction(engine) as conn:
        write_depth(conn, snapshot, limit=limit)
    metrics.ROWS_UPSERTED.labels("depth_snapshots").inc()
    metrics.NEWEST_ROW.labels("depth", "", snapshot.symbol).set(snapshot.captured_at.timestamp())


async def poll_tickers(ctx: LiveContext) -> None:
    symbols = ctx.trading()
    if not symbols:
        return
    if ep.TICKER_24HR.all_symbols_is_cheaper(len(symbols)):
        started = ctx.clock()
        try:
            wanted = set(symbols)
            tickers = [t for t in await ctx.client.ticker_24hr() if t.symbol in wanted]
            note_volumes(ctx, tickers)
            await ctx.db(_store_tickers, ctx.engine, tickers)
            for t in tickers:
                ctx.mark_caught_up("tickers", t.symbol, started)
        except Exception as exc:  # noqa: BLE001
            await ctx.record_error("tickers", None, exc)
        return

    async def one(symbol: str) -> None:
        tickers = await ctx.client.ticker_24hr(symbol)
        note_volumes(ctx, tickers)
        await ctx.db(_store_tickers, ctx.engine, tickers)

    await _each(ctx, "tickers", "tickers", symbols, one)


def _store_tickers(engine: Engine, tickers: list[Ticker24h]) -> None:
    with transaction(engine) as conn:
        write_tickers(conn, tickers)
        set_strike_prices(conn, tickers)
    metrics.ROWS_UPSERTED.labels("tickers_24hr").inc(len(tickers))
    for t in tickers:
        metrics.NEWEST_ROW.labels("tickers", "", t.symbol).set(t.captured_at.timestamp())


async def poll_avg_price(ctx: LiveContext) -> None:
    async def one(symbol: str) -> None:
        price = await ctx.client.avg_price(symbol)
        await ctx.db(_write, ctx.engine, write_avg_prices, [price], "avg_prices")

    await _each(ctx, "avg_price", "avg_price", ctx.trading(), one)


async def poll_book_ticker(ctx: LiveContext) -> None:
    symbols = ctx.trading()
    if not symbols:
        return
    if ep.BOOK_TICKER.all_symbols_is_cheaper(len(symbols)):
        try:
            wanted = set(symbols)
            rows = [b for b in await ctx.client.book_ticker() if b.symbol in wanted]
            await ctx.db(_write, ctx.engine, write_book_tickers, rows, "book_tickers")
        except Exception as exc:  # noqa: BLE001
            await ctx.record_error("book_ticker", None, exc)
        return

    async def one(symbol: str) -> None:
        await ctx.db(_write, ctx.engine, write_book_tickers, await ctx.client.book_ticker(symbol), "book_tickers")

    await _each(ctx, "book_ticker", "book_ticker", symbols, one)


def _write(engine: Engine, writer, rows, table: str) -> None:
    with transaction(engine) as conn:
        writer(conn, rows)
    metrics.ROWS_UPSERTED.labels(table).inc(len(rows))
