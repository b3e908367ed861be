"""One backfill task's work: fetch a (symbol, stream, interval) window page by page and store it.

Each task fetches one hole of the coverage (`collector.store.coverage`) into a bounded queue while a
writer drains it in batches; every batch commits its rows, the task's checkpoint (scope
``backfill <start>/<end>`` of the task's range) and the coverage they prove in one transaction, so a
crash loses at most the batch in flight. `collector.backfill.run` runs the tasks of a plan together.

What is stored: klines whose open time lies in the window and which are closed (close time before
the exchange's clock when fetched); trades whose time lies in the window.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from collector.backfill.plan import BackfillPlan, Reporter, Task
from collector.domain import Kline, Trade
from collector.exchange import endpoints as ep
from collector.exchange.client import JexClient
from collector.exchange.paging import ONE_MS, kline_pages, locate_first_trade, trade_pages
from collector.exchange.ratelimit import Priority
from collector.store import account as account_store
from collector.store.history import load_checkpoint, save_klines, save_trades

QUEUE_BATCHES = 2  # batches fetched ahead of the writer, per task: bounds memory
# A window counts as finished only when it ended this long before the exchange's clock, so trades
# of its last moments (and the offset between our clock estimate and the exchange's) cannot be missed.
SETTLE = timedelta(seconds=2)


# --- klines -------------------------------------------------------------------------------------


async def run_klines(client: JexClient, engine: Engine, plan: BackfillPlan, task: Task, reporter: Reporter) -> None:
    # Resume after the last stored closed kline; a finished window was skipped before we got here.
    start = task.start if task.covered_until is None else task.covered_until
    server_now = _server_now(client)
    met_open = False  # an unfinished kline inside the window: the window cannot be complete yet

    pages = kline_pages(client, task.symbol, task.interval, start, task.end, cost=task.cost, evidence=True)

    async def batches() -> AsyncIterator[tuple[list[Kline], bool]]:
        nonlocal met_open
        batch: list[Kline] = []
        async for page in pages:
            closed = [k for k in page if k.close_time < server_now]
            batch.extend(closed)
            if len(closed) < len(page):  # reached the open kline: nothing after it is final
                met_open = True
                break
            if len(batch) >= plan.batch_rows:
                yield batch, False
                batch = []
        yield batch, True

    def store(rows: list[Kline], last: bool) -> None:
        # Complete only on evidence: the window's end reached, or an empty page after the last kline.
        complete = last and pages.exhausted and not met_open and task.end <= server_now
        _store_klines(engine, plan, task, rows, complete)

    await _drain(batches(), store, task, reporter)


def _store_klines(engine: Engine, plan: BackfillPlan, task: Task, rows: list[Kline], complete: bool) -> None:
    """Rows and checkpoint in one transaction. Complete: every kline of the window is stored and
    closed (klines after a symbol's expiry simply do not exist)."""
    covered, written = save_klines(
        engine,
        task.scope,
        task.symbol,
        task.interval,
        rows,
        covered=task.covered_until,
        complete=complete,
        covers_from=task.start,
        covers_to=task.end if complete else None,
    )
    task.rows += len(rows)
    task.written += written
    task.covered_until = task.end if complete else covered
    task.complete = complete


# --- trades -------------------------------------------------------------------------------------


async def run_trades(client: JexClient, engine: Engine, plan: BackfillPlan, task: Task, reporter: Reporter) -> None:
    scope_cp = await asyncio.to_thread(load_checkpoint, engine, task.scope, task.symbol, "trades")
    server_now = _server_now(client)

    async def batches() -> AsyncIterator[tuple[list[Trade], bool]]:
        # The window is complete only on evidence: a trade at or past its end, or an empty page from
        # the next id (a short page is not the end: the server may serve less than asked).
        if scope_cp is not None and scope_cp.last_trade_id is not None:
            pages = trade_pages(client, task.symbol, scope_cp.last_trade_id + 1, cost=task.cost, evidence=True)
        else:
            located = await locate_first_trade(client, task.symbol, task.start, cost=task.cost)
            if located.first_id is None:
                yield [], True  # the newest trade is before the window: no trade in or after it
                return
            pages = trade_pages(
                client, task.symbol, located.first_id, cost=task.cost, first_page=located.page, evidence=True
            )
        batch: list[Trade] = []
        async for page in pages:
            inside = [t for t in page if task.start <= t.time < task.end]
            batch.extend(inside)
            if page[-1].time >= task.end:  # past the window: done
                yield batch, True
                return
            if len(batch) >= plan.batch_rows:
                yield batch, False
                batch = []
        yield batch, pages.exhausted  # the exchange had nothing newer (else: no evidence, not complete)

    await _drain(
        batches(), lambda rows, last: _store_trades(engine, plan, task, rows, last, server_now), task, reporter
    )


def _store_trades(
    engine: Engine, plan: BackfillPlan, task: Task, rows: list[Trade], last: bool, server_now: datetime
) -> None:
    # The window is complete once we saw a trade at or after its end, or the exchange had nothing
    # newer and the window ended before the exchange's clock when we started.
    past_end = last and (task.end <= server_now)
    # Every trade before the last one's millisecond is stored (ids grow with time; more trades may
    # share that millisecond), or the whole window once complete.
    until = task.end if past_end else (rows[-1].time if rows else None)
    covers = (task.start, until) if until is not None else None
    task.written += save_trades(engine, task.scope, task.symbol, rows, complete=past_end, covers=covers)
    task.rows += len(rows)
    if rows:
        task.covered_until = rows[-1].time
    if past_end:
        task.complete = True
        task.covered_until = task.end


# --- the account's orders and shorts/calls ------------------------------------------------------


async def run_account(client: JexClient, engine: Engine, plan: BackfillPlan, task: Task, reporter: Reporter) -> None:
    """Orders (or records) of the symbol made in the window, paged by id from the checkpoint; complete
    once a page from the next id is empty (and the window has ended)."""
    cp = await asyncio.to_thread(load_checkpoint, engine, task.scope, task.symbol, task.stream)
    after = cp.last_trade_id if cp is not None and cp.last_trade_id is not None else -1
    server_now = _server_now(client)
    start, end = task.start, task.end - ONE_MS
    endpoint = ep.HISTORY_ORDERS if task.stream == "orders" else ep.RECORD
    save = account_store.save_orders if task.stream == "orders" else account_store.save_records

    async def batches() -> AsyncIterator[tuple[list, bool]]:
        nonlocal after
        while True:
            task.cost.add(endpoint.weight)
            if task.stream == "orders":
                raw: list = await client.history_orders(
                    task.symbol, order_id=after + 1, start=start, end=end, priority=Priority.BACKFILL
                )
                ids = [o.order_id for o in raw]
            else:
                raw = await client.records(
                    task.symbol, from_id=after + 1, start=start, end=end, priority=Priority.BACKFILL
                )
                ids = [r.record_id for r in raw]
            page = [x for x, i in zip(raw, ids, strict=True) if i > after]
            if not page:
                yield [], True  # an empty page from the next id: nothing more in the window
                return
            after = max(ids)
            yield page, False

    def store(rows: list, last: bool) -> None:
        complete = last and task.end <= server_now
        covers = (task.start, task.end) if complete else None
        task.written += save(engine, task.scope, task.symbol, rows, plan.account_name, complete=complete, covers=covers)
        task.rows += len(rows)
        if complete:
            task.complete = True
            task.covered_until = task.end

    await _drain(batches(), store, task, reporter)


# --- plumbing -----------------------------------------------------------------------------------


async def _drain(batches: AsyncIterator[tuple[list, bool]], store, task: Task, reporter: Reporter) -> None:
    """Fetch ahead into a bounded queue while the previous batch is written."""
    queue: asyncio.Queue = asyncio.Queue(maxsize=QUEUE_BATCHES)

    async def produce() -> None:
        async for item in batches:
            await queue.put(item)
            reporter.updated(task)
        await queue.put(None)

    producer = asyncio.create_task(produce())
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, producer}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                producer.result()  # raises the fetch error
                continue
            item = getter.result()
            if item is None:
                break
            rows, last = item
            await asyncio.to_thread(store, rows, last)
            reporter.updated(task)
            if last:
                break
    finally:
        if not producer.done():
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)


def _server_now(client: JexClient) -> datetime:
    """The exchange's clock less SETTLE: what is before it is final."""
    return datetime.fromtimestamp(client.governor.server_time(), UTC) - SETTLE
