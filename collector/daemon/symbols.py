"""Symbol refresh: optionInfo + exchangeInfo → option_symbols, and the daemon's symbol set.

New symbols are collected from this refresh on; symbols no longer listed are marked delisted
(never deleted); expired symbols keep being polled for trades and klines until their final sweep.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from collector.daemon.context import LiveContext, Symbol
from collector.store.db import reading, transaction
from collector.store.write import symbol_states, write_swept, write_symbols

log = logging.getLogger(__name__)


async def refresh_symbols(ctx: LiveContext) -> dict[str, list[str]]:
    info = await ctx.client.exchange_info()
    infos = await ctx.client.option_info()
    now = ctx.now()
    # A malformed entry is left out by the parser; its symbol is not taken for delisted.
    unreadable = info.rejected_symbols | infos.rejected_symbols
    changes = await ctx.db(_store, ctx.engine, infos, info.option_symbols, now, unreadable)
    before = set(ctx.with_history())
    ctx.symbols = await ctx.db(load_symbols, ctx.engine)
    after = set(ctx.with_history())
    if changes["new"]:
        log.info("new symbols: %s", ", ".join(changes["new"]))
    if changes["delisted"]:
        log.info("delisted (kept, no longer polled): %s", ", ".join(changes["delisted"]))
    if before != after and ctx.on_symbols_changed is not None:
        ctx.on_symbols_changed()
    return changes


def _store(engine: Engine, infos, listed, now, unreadable=frozenset()) -> dict[str, list[str]]:
    with transaction(engine) as conn:
        return write_symbols(conn, infos, listed, now=now, unreadable=unreadable)


def load_symbols(engine: Engine) -> dict[str, Symbol]:
    with reading(engine) as conn:
        rows = symbol_states(conn)
    return {
        r.symbol: Symbol(
            r.symbol,
            r.expiry_time,
            r.listed,
            r.final_sweep_at is not None,
            r.first_seen,
            r.refused_at is not None,
            bool(r.can_release),
        )
        for r in rows
    }


def mark_swept(engine: Engine, symbol: str, at) -> None:
    with transaction(engine) as conn:
        write_swept(conn, symbol, at)
