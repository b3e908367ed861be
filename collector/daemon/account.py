"""The account stream (on with both COLLECTOR_API_KEY and COLLECTOR_API_SECRET): two jobs.

- ``poll_account`` (every ``account_poll_seconds``): the balances (weight 1) and every position
  (weight 2), stored when they changed, by one daemon only (the one holding the first symbol's
  lease, when several share the work); the orders stored and not yet final, kept current symbol by
  symbol (openOrders, weight 5, for a symbol with 5 or more of them, then each order that left it
  looked up once; else each looked up, weight 1); the short & call position (weight 1) of every
  listed option the account shorted.
- ``poll_account_history`` (every ``account_history_seconds``): for every listed symbol not yet
  swept (whether or not the exchange still serves its market data), the orders since its checkpoint (historyOrders from the
  last id + 1, weight 5 a page), and for those that may be shorted, the shorts and calls since
  theirs (record from the last id + 1, weight 5 a page). Rows and checkpoint commit together. An
  expired symbol's final sweep waits for these too, so nothing placed before its expiry is missed.

An order is first found by the history sweep and then kept current by ``poll_account`` until it
is final, so every order of every symbol is stored once and ends in its final state. An order the
exchange no longer answers for (its symbol delisted, or "order does not exist") is no longer
followed: it keeps the last state the exchange gave.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from collector.daemon.context import LiveContext
from collector.daemon.sweep import note_final
from collector.errors import ExchangeRejected, SymbolRefused
from collector.exchange import endpoints as ep
from collector.exchange.client import JexClient
from collector.exchange.ratelimit import Priority
from collector.store import account as store
from collector.store import checkpoints
from collector.store.history import load_checkpoint

log = logging.getLogger(__name__)
STREAM = "account"
ORDER_GONE = -2013  # "Order does not exist."


def leads(ctx: LiveContext) -> bool:
    """Whether this daemon polls the account as a whole: always alone; with several, the holder of
    the first symbol's lease (exactly one daemon at a time)."""
    if ctx.owned is None:
        return True
    candidates = ctx.candidates()
    return bool(candidates) and candidates[0] in ctx.owned


async def poll_account(ctx: LiveContext) -> None:
    client, engine, name = ctx.client, ctx.engine, ctx.settings.account_name
    started = ctx.clock()
    if leads(ctx):
        info = await client.account()
        await ctx.db(store.save_balances, engine, info, ctx.now(), name)
        positions = await client.positions()
        await ctx.db(store.save_positions, engine, positions, ctx.now(), name)
    unfinished: dict[str, list[int]] = defaultdict(list)
    for symbol, order_id in await ctx.db(store.unfinished_orders, engine):
        unfinished[symbol].append(order_id)
    ctx.account_open_symbols = len(unfinished)
    await ctx.each(unfinished.items(), lambda item: _guarded(ctx, "orders", item[0], _follow_orders, item[1]))
    shorted = [
        s
        for s in await ctx.db(store.shorted_symbols, engine)
        if s in ctx.symbols and ctx.symbols[s].listed and not ctx.symbols[s].swept
    ]
    await ctx.each(shorted, lambda s: _guarded(ctx, "short_call", s, _short_call))
    ctx.mark_caught_up(STREAM, "*", started)


async def _follow_orders(ctx: LiveContext, symbol: str, ids: list[int]) -> None:
    """Bring the symbol's unfinished orders up to date, the cheaper way."""
    client = ctx.client
    current = []
    if len(ids) >= ep.OPEN_ORDERS.weight:  # one openOrders costs less than the lookups
        live = {o.order_id: o for o in await client.open_orders(symbol, order_id=min(ids))}
        current += [live[i] for i in ids if i in live]
        ids = [i for i in ids if i not in live]  # final since: each asked once
    gone = []
    for order_id in ids:
        try:
            current.append(await client.get_order(symbol, order_id))
        except (SymbolRefused, ExchangeRejected) as exc:
            if isinstance(exc, SymbolRefused) or exc.code == ORDER_GONE:
                gone.append((symbol, order_id))
            else:
                raise
    if current:
        await ctx.db(store.refresh_orders, ctx.engine, current, ctx.settings.account_name)
    if gone:
        await ctx.db(store.stop_following, ctx.engine, gone)
        log.warning(
            "%s: the exchange no longer answers for %d order(s) (%s); they keep their last known state",
            symbol,
            len(gone),
            ", ".join(str(i) for _, i in gone),
        )


async def _short_call(ctx: LiveContext, symbol: str) -> None:
    info = await ctx.client.short_call_info(symbol)
    await ctx.db(store.save_short_calls, ctx.engine, [info], ctx.now(), ctx.settings.account_name)


async def poll_account_history(ctx: LiveContext) -> None:
    symbols = ctx.account_symbols()
    releasable = [s for s in symbols if ctx.symbols[s].can_release]
    work = [("orders", s, _orders) for s in symbols] + [("records", s, _records) for s in releasable]
    await ctx.each(work, lambda w: _guarded(ctx, w[0], w[1], w[2], final=True))


async def _guarded(ctx: LiveContext, stream: str, symbol: str, fn, *args: Any, final: bool = False) -> None:
    """One symbol's part of a job, on the node that owns the symbol; its failure is recorded and
    leaves the others. ``final``: a history stream, part of an expired symbol's final sweep."""
    started = ctx.clock()
    try:
        with ctx.polling(symbol) as mine:
            if mine:
                await fn(ctx, symbol, *args)
                ctx.mark_caught_up(stream, symbol, started)
                if final:
                    await note_final(ctx, symbol, stream, started)
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
