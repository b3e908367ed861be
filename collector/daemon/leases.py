"""Lease heartbeat: renew, rebalance and take over symbols (see collector/coordination.py)."""

from __future__ import annotations

import logging

from collector.daemon.context import LiveContext

log = logging.getLogger(__name__)


async def balance_leases(ctx: LiveContext) -> None:
    """Renew and claim; hand over what exceeds our share once our polls of it have ended.

    ``ctx.owned`` drops the symbols to hand over before waiting, so no new poll of them starts
    (``LiveContext.polling`` checks ownership as it begins); a symbol still being polled when the wait
    ends stays held and is handed over on a later run.
    """
    if ctx.leases is None:
        return
    owned, handing = await ctx.db(ctx.leases.balance, ctx.candidates())
    if owned != ctx.owned:
        gained = sorted(owned - (ctx.owned or set()))
        lost = sorted((ctx.owned or set()) - owned)
        ctx.owned = owned
        for symbol in lost:
            ctx.forget(symbol)  # another collector polls it now: its series are that one's
        log.info(
            "now polling %d symbols%s%s",
            len(owned),
            f"; took {', '.join(gained)}" if gained else "",
            f"; handed over {', '.join(lost)}" if lost else "",
        )
        if ctx.on_symbols_changed is not None:
            ctx.on_symbols_changed()
    if handing:
        idle = await ctx.wait_idle(handing, timeout=ctx.leases.ttl / 4)
        if idle:
            await ctx.db(ctx.leases.release, idle)
