"""Lease heartbeat: renew, rebalance and take over symbols (see collector/coordination.py)."""

from __future__ import annotations

import logging

from collector.jobs.context import LiveContext

log = logging.getLogger("collector.jobs.leases")


async def balance_leases(ctx: LiveContext) -> None:
    if ctx.leases is None:
        return
    owned = await ctx.db(ctx.leases.balance, ctx.candidates())
    if owned != ctx.owned:
        gained = sorted(owned - (ctx.owned or set()))
        lost = sorted((ctx.owned or set()) - owned)
        ctx.owned = owned
        log.info("now polling %d symbols%s%s", len(owned), f"; took {', '.join(gained)}" if gained else "",
                 f"; handed over {', '.join(lost)}" if lost else "")
        if ctx.on_symbols_changed is not None:
            ctx.on_symbols_changed()
