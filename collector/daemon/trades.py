"""Trades: for each symbol, historicalTrades from its checkpoint until caught up.

A symbol seen for the first time starts ``lookback_hours`` before it was first seen (located by
interpolation search on fromId), so the daemon's history of it is gap-free from that point. Rows and the checkpoint
commit together; a crash or an outage just means the next poll catches up.

Two schedules (``schedule``):

- **fixed** (``poll_trades``): every symbol every ``trades_poll_seconds``.
- **adaptive** (``poll_due_trades``, a tick every TICK_SECONDS): each symbol is polled when the
  interval the plan gives it has passed since its last poll; the plan (daemon/planner.py) gives
  a busy symbol a short interval and a quiet one a long one, from its estimated rate of trades
  (what its polls found, smoothed over RATE_SECONDS). With the price signal on
  (``poll_trade_signals``: all last prices, weight 2, every ``trades_signal_seconds``) the plan
  polls a symbol whose trades are rare only when the signal shows a trade: its last price changed
  since its previous poll, or its 24h volume did (``note_volumes``: the tickers job's answers, and
  ``poll_volume_signals``' for the symbols whose trades at an unchanged price the plan finds worth
  a weight-1 ticker every few seconds). A quiet symbol costs nothing
  while it does not trade. How many of a symbol's trades the price signal misses is measured
  (``unseen_rates``: trades a poll found that were made before a signal showed no change), and a
  symbol whose unseen trades are worth it is polled at its interval instead, signal or not.
  Every symbol is still polled within ``trades_sweep_seconds`` whatever the signals say, and an
  expired symbol at once after its expiry (its final sweep): correctness stays with the fromId
  checkpoint, never with a signal; a signal unanswered for SIGNAL_STALE periods is not waited for.
"""

from __future__ import annotations

import asyncio
import logging
import math

from sqlalchemy import Engine

from collector import metrics
from collector.daemon.context import LiveContext
from collector.daemon.sweep import note_final, sweeping
from collector.domain import Ticker24h, Trade
from collector.errors import TransientError
from collector.exchange import endpoints as ep
from collector.exchange.paging import locate_first_trade, trade_pages
from collector.exchange.ratelimit import Priority
from collector.store import checkpoints
from collector.store.history import load_checkpoint, save_trades

STREAM = "trades"
log = logging.getLogger(__name__)
TICK_SECONDS = 0.5  # how often the adaptive schedule looks for symbols due
SIGNAL_STALE = 3  # signal periods without an answer after which the signal is not waited for
POLL_TIMEOUT = 300.0  # seconds: a symbol's poll (a catch-up of many pages) is given up after this
MAX_POLLS = 8  # trades polls running at once (the longest waiting go first)
RATE_SECONDS = 300.0  # the estimated rate of trades forgets with this time constant
FINAL_RETRY = 15.0  # seconds between attempts at an expired symbol's final sweep that did not finish
UNSEEN_SECONDS = 120.0  # the estimated rate of trades unseen by the price signal forgets with this time constant
UNSEEN_PRIOR = 0.1  # share of a symbol's trades assumed unseen by the price signal until its polls say
REPAIR_SHARE = 0.5  # of the weight a minute: repairs beyond it wait at the live priority
UNSEEN_SLACK = 1.0  # seconds: a trade counts as unseen by the signal if made this long before it was asked


async def poll_trades(ctx: LiveContext) -> None:
    """The fixed schedule: every symbol with history, now (a pushed one only when REST is to
    confirm it: ``confirming``)."""
    now = ctx.clock()
    symbols = [s for s in ctx.with_history() if s not in ctx.push_up or confirming(ctx, s, now)]
    await ctx.each(symbols, lambda s: _guarded(ctx, s))


def confirming(ctx: LiveContext, symbol: str, now: float) -> bool:
    """A symbol whose trades are pushed is polled (from its checkpoint) only to confirm the push:
    never polled, its connection came up after its last poll (what happened while it was down),
    or its confirmation interval passed (the plan's; push_confirm_seconds unless the budget is short)."""
    last = ctx.trade_polls.get(symbol)
    every = ctx.trade_plan.get(symbol, ctx.settings.push_confirm_seconds)
    return last is None or last < ctx.push_up[symbol] or now - last >= every


def repair_priority(ctx: LiveContext, now: float) -> Priority:
    """The signals' priority for a repair, while repairs begun in the last minute asked less than
    REPAIR_SHARE of the weight a minute; the live priority beyond it, so that connections dropped
    faster than the budget can repair never starve the other streams (they queue with them)."""
    begun = ctx.repairs
    while begun and begun[0] < now - 60.0:
        begun.popleft()
    per_minute = ctx.client.governor.stats().weight_per_minute
    if (len(begun) + 1) * ep.HISTORICAL_TRADES.weight > REPAIR_SHARE * per_minute:
        return Priority.LIVE
    begun.append(now)
    return Priority.SIGNAL


def repairing(ctx: LiveContext, symbol: str) -> bool:
    """A pushed symbol whose trades stream came back after a loss since its last poll (or that was
    never polled): its next poll fetches what the stream missed while down. It goes before every
    routine poll, at the signals' priority (``repair_priority``): its freshness is the push's, not
    the plan's."""
    back = ctx.push_back.get(symbol)
    return back is not None and symbol in ctx.push_up and ctx.trade_polls.get(symbol, -math.inf) < back


async def poll_due_trades(ctx: LiveContext) -> None:
    """The adaptive schedule's tick: start a poll of each symbol due, each a task of its own (a long
    catch-up of one symbol holds neither the tick nor the others), and return."""
    for symbol in due(ctx, ctx.clock()):
        ctx.spawn(symbol, _timed(ctx, symbol))


async def _timed(ctx: LiveContext, symbol: str) -> None:
    try:
        async with asyncio.timeout(POLL_TIMEOUT):
            await _guarded(ctx, symbol)
    except TimeoutError:
        await ctx.record_error("trades", symbol, TransientError(f"poll ran over {POLL_TIMEOUT:g}s"), stream=STREAM)


def due(ctx: LiveContext, now: float) -> list[str]:
    """Symbols whose trades poll is due at ``now`` (host time): never polled; polled at its
    interval (the plan's ``trades``) and that passed; polled on signals and not polled for
    trades_sweep_seconds (or the plan's interval, when even that does not fit the budget), or its
    interval passed and (the price signal current) its last price or its 24h volume changed since
    its last poll; expired and awaiting the final sweep (again every FINAL_RETRY seconds until one
    finishes)."""
    s = ctx.settings
    signal = s.trades_signal_seconds > 0 and now - ctx.signal_at <= SIGNAL_STALE * s.trades_signal_seconds
    out = []
    for symbol in ctx.with_history():
        if symbol in ctx.spawned:
            continue  # a trades poll of it is running (a catch-up begun by an earlier tick); a poll
            # of another stream of it (depth, tickers) does not hold its trades back
        last = ctx.trade_polls.get(symbol)
        planned = ctx.trade_plan.get(symbol, s.trades_sweep_seconds)
        on_signals = symbol in ctx.on_signals
        if symbol in ctx.push_up and not sweeping(ctx, symbol, now):
            if confirming(ctx, symbol, now):  # its trades are pushed: REST confirms them
                out.append(symbol)
            continue
        # polled at its interval; on signals, swept at least every trades_sweep_seconds (or as the
        # plan stretched it when even that does not fit the budget)
        if last is None or now - last >= (max(s.trades_sweep_seconds, planned) if on_signals else planned):
            out.append(symbol)
        elif (
            sweeping(ctx, symbol, now)
            and STREAM not in ctx.final.get(symbol, ())
            and (not sweeping(ctx, symbol, last) or now - last >= FINAL_RETRY)
        ):
            out.append(symbol)  # its final sweep: the first poll after expiry, again if it did not finish
        elif (
            on_signals
            and now - last >= planned
            and signal
            and (ctx.price_changed.get(symbol, -math.inf) >= last or ctx.volume_changed.get(symbol, -math.inf) >= last)
        ):
            out.append(symbol)
    # A signal gone stale leaves the symbols on signals only their sweeps: polling them at intervals
    # planned for polls on change would ask far more than the budget. Repairs after a reconnect go
    # first, and do not wait for a free place among MAX_POLLS (one page each, mostly); then the
    # longest waiting.
    repairs: list[str] = []
    others: list[str] = []
    for sym in out:
        (repairs if repairing(ctx, sym) else others).append(sym)
    others.sort(key=lambda sym: ctx.trade_polls.get(sym, -math.inf))
    return repairs + others[: max(0, MAX_POLLS - len(ctx.spawned) - len(repairs))]


async def poll_trade_signals(ctx: LiveContext) -> None:
    """All last prices (ticker/price without a symbol, weight 2): a symbol whose last price changed
    has traded since."""
    if not ctx.with_history():
        return
    asked = ctx.clock()
    prices = await ctx.client.ticker_price(priority=Priority.SIGNAL)
    answered = ctx.clock()
    for p in prices:
        before = ctx.last_prices.get(p.symbol)
        if before is None or before != p.price:
            # it traded before the answer (perhaps after ``asked``): a poll that began after the
            # answer has the trade, one that began before may have fetched too early
            ctx.price_changed[p.symbol] = answered
        ctx.last_prices[p.symbol] = p.price
    ctx.signal_at = asked


async def poll_volume_signals(ctx: LiveContext) -> None:
    """The 24hr tickers of the symbols the plan names (``volume_symbols``: polled on signals, with
    trades the price signal does not show): one call per symbol (weight 1), or one for all when
    that is cheaper. A symbol whose 24h volume moved has traded, even at an unchanged price."""
    symbols = sorted(ctx.volume_symbols & set(ctx.with_history()))
    if not symbols:
        return
    endpoint = ep.TICKER_24HR
    if endpoint.all_symbols_is_cheaper(len(symbols)):
        note_volumes(ctx, await ctx.client.ticker_24hr(priority=Priority.SIGNAL))
        return

    async def one(symbol: str) -> None:
        try:
            note_volumes(ctx, await ctx.client.ticker_24hr(symbol, priority=Priority.SIGNAL))
        except Exception as exc:  # noqa: BLE001 - one symbol's failure must not stop the others
            await ctx.record_error("volume signals", symbol, exc)

    await ctx.each(symbols, one)


def note_volumes(ctx: LiveContext, tickers: list[Ticker24h]) -> None:
    """24hr tickers just answered, as a second signal: a symbol whose 24h volume moved since its
    previous ticker traded (or saw a trade of a day ago drop out), even at an unchanged price. Noted
    at the answer's time: a trades poll begun before it may have fetched before the trade."""
    answered = ctx.clock()
    for t in tickers:
        before = ctx.last_volumes.get(t.symbol)
        if before is not None and before != t.volume:
            ctx.volume_changed[t.symbol] = answered
        ctx.last_volumes[t.symbol] = t.volume


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
    previous = ctx.trade_polls.get(symbol)
    priority = repair_priority(ctx, started) if repairing(ctx, symbol) else Priority.LIVE
    ctx.trade_polls[symbol] = started
    # The final sweep of an expired symbol claims its history complete: that needs evidence (an
    # empty page), not a page shorter than asked.
    final = sweeping(ctx, symbol, started)
    cp = await ctx.db(_load, ctx.engine, symbol)
    if cp is not None and cp.last_trade_id is not None:
        pages = trade_pages(ctx.client, symbol, cp.last_trade_id + 1, priority=priority, evidence=final)
    else:
        since = cp.last_time if cp is not None and cp.last_time else ctx.history_start(symbol)
        located = await locate_first_trade(ctx.client, symbol, since, priority=priority)
        if located.first_id is None:
            # Nothing since then; remember where we looked so no later trade can slip before it.
            await ctx.db(_store, ctx.engine, symbol, [], since)
            ctx.mark_caught_up(STREAM, symbol, started)
            _learn_rate(ctx.trade_rates, symbol, 0, started - since.timestamp())
            _learn_rate(ctx.unseen_rates, symbol, 0, started - since.timestamp(), UNSEEN_SECONDS, 0.0)
            metrics.TRADES_RATE.labels(symbol).set(ctx.trade_rates.get(symbol, 0.0))
            await note_final(ctx, symbol, STREAM, started)
            return 0
        previous = since.timestamp()  # the first poll: its trades span the lookback
        pages = trade_pages(
            ctx.client, symbol, located.first_id, priority=priority, first_page=located.page, evidence=final
        )
    stored = unseen = 0
    # unseen by the price signal: trades made before its last answer, which showed no change since the
    # previous poll (the 24h volume may have shown them, a slower signal)
    hidden = previous is not None and ctx.price_changed.get(symbol, -math.inf) < previous
    unseen_before = ctx.signal_at - UNSEEN_SLACK if hidden else -math.inf
    # Each page commits with its checkpoint: a catch-up cut short (job timeout, shutdown) keeps
    # what it fetched, so the next poll continues instead of starting over.
    pushed_since = ctx.push_up.get(symbol)  # its trades stream was up from then (daemon/push.py)
    async for page in pages:
        stored += await ctx.db(_store, ctx.engine, symbol, page, None, ctx.push_stats, pushed_since)
        unseen += sum(1 for t in page if t.time.timestamp() < unseen_before)
    ctx.mark_caught_up(STREAM, symbol, started)
    if previous is not None:
        _learn_rate(ctx.trade_rates, symbol, stored, started - previous)
        first = UNSEEN_PRIOR * stored / (started - previous) if started > previous else 0.0
        _learn_rate(ctx.unseen_rates, symbol, unseen, started - previous, UNSEEN_SECONDS, first)
        metrics.TRADES_RATE.labels(symbol).set(ctx.trade_rates.get(symbol, 0.0))
    if not final or pages.exhausted:
        await note_final(ctx, symbol, STREAM, started)
    return stored


def _learn_rate(
    rates: dict[str, float],
    symbol: str,
    found: int,
    span: float,
    memory: float = RATE_SECONDS,
    first: float | None = None,
) -> None:
    """Fold what a poll found over ``span`` seconds into the symbol's estimated trades per second,
    forgotten with time constant ``memory``; ``first``: the estimate to start from (default: this
    poll's)."""
    if span <= 0:
        return
    weight = 1.0 - math.exp(-span / memory)
    before = rates.get(symbol)
    if before is None:
        rates[symbol] = found / span if first is None else first
    else:
        rates[symbol] = before + weight * (found / span - before)


def _load(engine: Engine, symbol: str) -> checkpoints.Checkpoint | None:
    return load_checkpoint(engine, checkpoints.LIVE, symbol, STREAM)


def _store(
    engine: Engine, symbol: str, trades: list[Trade], anchor, push_stats=None, pushed_since: float | None = None
) -> int:
    written = save_trades(engine, checkpoints.LIVE, symbol, trades, anchor=anchor)
    # Rows new here REST saw first. Those made while the symbol's trades stream was up, push missed:
    # repaired. Rows are counted, not named, so that share is a floor: every new row beyond the
    # page's trades from before the stream was up.
    before = len(trades) if pushed_since is None else sum(1 for t in trades if t.time.timestamp() < pushed_since)
    counts = {"rest": min(written, before), "repair": max(0, written - before)}
    for source, n in counts.items():
        metrics.TRADES_FIRST_SEEN.labels(source).inc(n)
        if push_stats is not None:
            push_stats.first_seen[source] += n
    metrics.ROWS_UPSERTED.labels("trades").inc(len(trades))
    if trades:
        metrics.NEWEST_ROW.labels(STREAM, "", symbol).set(trades[-1].time.timestamp())
    return len(trades)
