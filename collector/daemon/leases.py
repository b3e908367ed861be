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
    candidates = ctx.candidates()
    owned, handing = await ctx.db(ctx.leases.balance, candidates)
    if owned != ctx.owned:
        gained = sorted(owned - (ctx.owned or set()))
        lost = sorted((ctx.owned or set()) - owned)
        ctx.owned = owned
        for symbol in lost:
            ctx.forget(symbol)  # another collector polls it now, or nobody must: its series go
        # a symbol still to be polled went to another collector; one that is not is finished
        still = set(candidates)
        handed = [s for s in lost if s in still]
        finished = [s for s in lost if s not in still]
        log.info(
            "now polling %d symbols%s%s%s",
            len(owned),
            f"; took {', '.join(gained)}" if gained else "",
            f"; handed over {', '.join(handed)}" if handed else "",
            f"; finished with {', '.join(finished)}" if finished else "",
        )
        if ctx.on_symbols_changed is not None:
            ctx.on_symbols_changed()
    if handing:
        idle = await ctx.wait_idle(handing, timeout=ctx.leases.ttl / 4)
        if idle:
            await ctx.db(ctx.leases.release, idle)
