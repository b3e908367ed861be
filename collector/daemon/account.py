"""The account stream (on with both COLLECTOR_API_KEY and COLLECTOR_API_SECRET): two jobs.

- ``poll_account`` (every ``account_poll_seconds``): the balances (weight 1) and every position
  (weight 2), stored when they changed; every stored order not yet final looked up (weight 1
  each) until it is; the short & call position (weight 1) of every option the account shorted.
- ``poll_account_history`` (every ``account_history_seconds``): for every symbol with history
  (trading, or expired and not yet swept), the orders since its checkpoint (historyOrders from the
  last id + 1, weight 5 a page), and for those that may be shorted, the shorts and calls since
  theirs (record from the last id + 1, weight 5 a page). Rows and checkpoint commit together.

An order is first found by the history sweep and then kept current by ``poll_account`` until it
is final, so every order of every symbol is stored once and ends in its final state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from collector.daemon.context import LiveContext
from collector.exchange import endpoints as ep
from collector.exchange.client import JexClient
from collector.exchange.ratelimit import Priority
from collector.store import account as store
from collector.store import checkpoints
from collector.store.history import load_checkpoint

log = logging.getLogger(__name__)
STREAM = "account"


async def poll_account(ctx: LiveContext) -> None:
    client, engine, name = ctx.client, ctx.engine, ctx.settings.account_name
    started = ctx.clock()
    info = await client.account()
    await ctx.db(store.save_balances, engine, info, ctx.now(), name)
    positions = await client.positions()
    await ctx.db(store.save_positions, engine, positions, ctx.now(), name)
    unfinished = await ctx.db(store.unfinished_orders, engine)
    orders = await _each(ctx, "orders", [(s, client.get_order(s, oid)) for s, oid in unfinished if _asked(ctx, s)])
    if orders:
        await ctx.db(store.refresh_orders, engine, orders, name)
    shorted = await ctx.db(store.shorted_symbols, engine)
    infos = await _each(ctx, "short_call", [(s, client.short_call_info(s)) for s in shorted if _asked(ctx, s)])
    if infos:
        await ctx.db(store.save_short_calls, engine, infos, ctx.now(), name)
    ctx.mark_caught_up(STREAM, "*", started)


async def _each(ctx: LiveContext, stream: str, calls: list) -> list:
    """Await every (symbol, call) at once; a symbol's failure is recorded and leaves the others."""
    results = await asyncio.gather(*(call for _, call in calls), return_exceptions=True)
    out = []
    for (symbol, _), result in zip(calls, results, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, Exception):
                raise result
            await ctx.record_error(f"account {stream}", symbol, result, stream=stream)
        else:
            out.append(result)
    return out


async def poll_account_history(ctx: LiveContext) -> None:
    symbols = ctx.with_history()
    releasable = [s for s in symbols if ctx.symbols[s].can_release]
    await asyncio.gather(
        *(_guarded(ctx, "orders", s, _orders) for s in symbols),
        *(_guarded(ctx, "records", s, _records) for s in releasable),
    )


def _asked(ctx: LiveContext, symbol: str) -> bool:
    sym = ctx.symbols.get(symbol)
    return sym is not None and not sym.refused


async def _guarded(ctx: LiveContext, stream: str, symbol: str, fn) -> None:
    started = ctx.clock()
    try:
        with ctx.polling(symbol) as mine:
            if mine:
                await fn(ctx, symbol)
                ctx.mark_caught_up(stream, symbol, started)
    except Exception as exc:  # noqa: BLE001 - one symbol's failure must not stop the others
        await ctx.record_error(f"account {stream}", symbol, exc, stream=stream)


async def _orders(ctx: LiveContext, symbol: str) -> None:
    async for page in id_pages(ctx.client, ctx, symbol, "orders", checkpoints.LIVE):
        await ctx.db(store.save_orders, ctx.engine, checkpoints.LIVE, symbol, page, ctx.settings.account_name)


async def _records(ctx: LiveContext, symbol: str) -> None:
    async for page in id_pages(ctx.client, ctx, symbol, "records", checkpoints.LIVE):
        await ctx.db(store.save_records, ctx.engine, checkpoints.LIVE, symbol, page, ctx.settings.account_name)


async def id_pages(client: JexClient, ctx: LiveContext, symbol: str, stream: str, scope: str):
    """Pages of the account's orders or records of ``symbol`` after the checkpoint, oldest first,
    until a page shorter than the server's (learned) page."""
    cp = await ctx.db(load_checkpoint, ctx.engine, scope, symbol, stream)
    after = cp.last_trade_id if cp is not None and cp.last_trade_id is not None else -1
    endpoint = ep.HISTORY_ORDERS if stream == "orders" else ep.RECORD
    key: Callable[[Any], int] = _order_id if stream == "orders" else _record_id
    while True:
        if stream == "orders":
            raw: list = await client.history_orders(symbol, order_id=after + 1, priority=Priority.LIVE)
        else:
            raw = await client.records(symbol, from_id=after + 1, priority=Priority.LIVE)
        client.pages.saw(endpoint.name, ep.MAX_ACCOUNT_PAGE, len(raw))
        page = [x for x in raw if key(x) > after]  # "after this id" or "from this id": either way
        if not page:
            return
        yield page
        after = key(page[-1])
        if not client.pages.full(endpoint.name, ep.MAX_ACCOUNT_PAGE, len(raw)):
            return


def _order_id(o: Any) -> int:
    return o.order_id


def _record_id(r: Any) -> int:
    return r.record_id
