"""The account's user data stream (JEX-STREAMS-NOTES.md, "User data streams"), beside its REST polls.

A listenKey (``POST /api/v1/userDataStream``, API key only) opens ``/ws/<listenKey>``; the key is
kept alive every ``user_stream_keepalive_seconds`` (30 minutes: it lapses after 60 without) and a
new one is asked for when the exchange no longer knows it. Its events are stored as they arrive,
**ordered by event time** (the exchange does not deliver them in order under load):

- ``execOptionReport``: the order's state after the change (status, filled quantity and quote),
  upserted on (symbol, order_id) and never over a newer state; a new order gets a row at once,
  which REST later completes (type, time in force);
- ``accountOptionInfo``: the option balances, stored as a snapshot when they changed, as the
  account poll stores REST's.

REST remains the reconciliation: the account jobs poll as before (every order is still found by
the history sweep, whose checkpoint alone proves nothing was missed), and each (re)connect is
followed at once by an account poll, for what happened while the stream was down. The listenKey is
a credential: it is never logged, and the state reports only whether the stream is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import UTC, datetime

import aiohttp

from collector.daemon.account import poll_account
from collector.daemon.context import LiveContext
from collector.domain import AccountInfo, AccountOrder
from collector.errors import CollectorError, ExchangeRejected, ParseError
from collector.exchange import streams as ws
from collector.exchange.parsers import parse_account_event, parse_exec_report
from collector.store import account as store

log = logging.getLogger(__name__)
KEY_GONE = -1125  # "This listenKey does not exist."
BACKOFF_FIRST, BACKOFF_CAP = 1.0, 60.0


class UserStream:
    """One listenKey and its connection, kept up while the daemon runs."""

    def __init__(self, ctx: LiveContext, session: aiohttp.ClientSession) -> None:
        self.ctx, self.session = ctx, session
        self.base = ctx.settings.push_url()
        self.up = False
        self.events = {"execOptionReport": 0, "accountOptionInfo": 0, "unreadable": 0}
        self.reconnects = 0
        self._key: str | None = None
        self._orders: list[tuple[int, AccountOrder]] = []
        self._balances: list[tuple[int, AccountInfo]] = []
        self._newest_balances = -1  # event time of the balances stored last
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._run(), name="user stream"),
            loop.create_task(self._keep_alive(), name="user stream keepalive"),
            loop.create_task(self._write_loop(), name="user stream writer"),
        ]

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        with contextlib.suppress(CollectorError):
            await self.ctx.db(self._store, *self._take())
        if self._key is not None:
            with contextlib.suppress(CollectorError, asyncio.TimeoutError):
                async with asyncio.timeout(2):
                    await self.ctx.client.close_listen_key(self._key)
            self._key = None

    def state(self) -> dict:
        return {"up": self.up, "events": dict(self.events), "reconnects": self.reconnects}

    async def _run(self) -> None:
        s = self.ctx.settings
        delay = BACKOFF_FIRST
        while True:
            try:
                if self._key is None:
                    self._key = await self.ctx.client.listen_key()
                async for msg in ws.messages(
                    self.session,
                    self.base,
                    [self._key],
                    stall=float("inf"),  # an account may be quiet for hours: silence is no stall
                    lifetime=s.stream_renew_seconds,
                    on_open=self._opened,
                    raw=True,
                ):
                    self._dispatch(msg)
                    delay = BACKOFF_FIRST
            except ws.StreamRenewal:
                pass
            except ExchangeRejected as exc:
                log.warning("user data stream: the exchange refused a listenKey (%s); retrying", exc)
            except CollectorError as exc:
                if self.up:
                    log.warning("user data stream lost (%s); reconnecting, the account poll covers the gap", exc)
                # a key the exchange forgot (expired, closed) refuses the connection: ask for a new one
                self._key = None if "HTTP 400" in str(exc) else self._key
            was_up, self.up = self.up, False
            self.reconnects += 1
            await asyncio.sleep(BACKOFF_FIRST * random.random() if was_up else delay * random.uniform(0.8, 1.2))
            delay = min(BACKOFF_CAP, delay * 2)

    def _opened(self) -> None:
        """Up: what changed while it was down is the account poll's to find, now."""
        self.up = True
        log.info("user data stream connected")
        task = asyncio.get_running_loop().create_task(self._reconcile())
        self._tasks.append(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task) -> None:
        if task in self._tasks:
            self._tasks.remove(task)

    async def _reconcile(self) -> None:
        try:
            await poll_account(self.ctx)
        except Exception as exc:  # noqa: BLE001 - the scheduled poll comes anyway
            await self.ctx.record_error("account", None, exc)

    async def _keep_alive(self) -> None:
        every = self.ctx.settings.user_stream_keepalive_seconds
        while True:
            await asyncio.sleep(every)
            key = self._key
            if key is None:
                continue
            try:
                await self.ctx.client.keep_listen_key(key)
            except ExchangeRejected as exc:
                if exc.code == KEY_GONE and self._key == key:
                    log.warning("user data stream: its listenKey lapsed; asking for a new one")
                    self._key = None
            except CollectorError as exc:
                log.warning("user data stream: keepalive failed (%s); trying again in %gs", exc, every)

    def _dispatch(self, msg: ws.Message) -> None:
        data = msg.data
        kind = data.get("e") if isinstance(data, dict) else None
        try:
            if kind == "execOptionReport":
                self._orders.append(parse_exec_report(data))
            elif kind == "accountOptionInfo":
                self._balances.append(parse_account_event(data))
            else:
                raise ParseError("user data stream", "e", msg.error or f"an event of kind {kind!r}")
        except ParseError as exc:
            self.events["unreadable"] += 1
            log.warning("user data stream: an event could not be read (%s); the account poll repairs it", exc)
            return
        self.events[kind] += 1
        self._wake.set()

    def _take(self) -> tuple[list[AccountOrder], AccountInfo | None, int]:
        """The orders' events by event time (ties: less filled first), and the newest balances."""
        orders = [o for _, o in sorted(self._orders, key=lambda eo: (eo[0], eo[1].executed_qty))]
        self._orders = []
        newest = max(self._balances, key=lambda eb: eb[0], default=None)
        self._balances = []
        if newest is None or newest[0] <= self._newest_balances:
            return orders, None, self._newest_balances  # older news than what is stored
        self._newest_balances = newest[0]
        return orders, newest[1], newest[0]

    def _store(self, orders: list[AccountOrder], balances: AccountInfo | None, at_ms: int) -> None:
        name = self.ctx.settings.account_name
        if orders:
            store.push_orders(self.ctx.engine, orders, name)
        if balances is not None:
            at = datetime.fromtimestamp(at_ms / 1000, UTC)
            store.save_balances(self.ctx.engine, balances, at, name)

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.ctx.db(self._store, *self._take())
            except CollectorError as exc:
                log.warning("user data stream: could not store events (%s); the account poll will", exc)
