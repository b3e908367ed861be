"""User data streams (JEX-STREAMS-NOTES.md, "User data streams"): listenKeys and the events of an account.

REST, weight 1 each, through `Simulator._serve` like every ``/api/`` request (limits and faults
apply); the account's API key in ``X-JEX-APIKEY`` (no signature); ``listenKey`` in the query string
or the form body:

- ``POST /api/v1/userDataStream`` -> ``{"listenKey": "<60 letters and digits>"}``, a new key each
  time, valid ``SimConfig.listen_key_ttl_s`` (60 minutes) from now;
- ``PUT /api/v1/userDataStream?listenKey=...`` -> ``{}``: valid ttl from now on;
- ``DELETE /api/v1/userDataStream?listenKey=...`` -> ``{}``: gone, its connections closed.

Refusals: 401 -2014 no or malformed API key, 401 -2015 an unknown one, 400 -1102 no listenKey,
400 -1125 ``This listenKey does not exist.`` (unknown, expired, deleted, or another account's).

The stream is ``ws://host:port/ws/<listenKey>`` (`streams` serves the connection; an unknown key is
refused 400 -1125 before the upgrade). When the key expires (simulated time, no PUT in time) or is
deleted, its connections are closed (close frame 1000, the reason as text). Every
``SimConfig.trade_push_ms`` the connection advances the account to now (``Accounts.get``: the same
state REST answers from) and sends what changed since it opened:

- ``execOptionReport`` ``{e, E, s, S: side, q, p, X: status, i: order id (number), z: filled qty,
  O: transaction ms, Z: filled quote}`` for every order change, as it happened: a new order (NEW),
  each fill (PARTIALLY_FILLED, FILLED; E = the trade's time), a cancel (CANCELED; E = the cancel's),
  an expiry (CANCELED; E = the expiry). The values are the order's right after that change, as
  openOrders / historyOrders showed them then (E = O = the change's simulated time);
- ``accountOptionInfo`` ``{e, E, m: maker fee, t: taker fee, u, B: [{a, f, l, T, W, D}...]}`` when
  the option balances differ from the last ones sent: the balances of REST account's
  ``optionBalances`` at the push, E = u = the account's ``updateTime`` (its latest change; so the
  last of these by E is the current state). No fees are charged: m = t = 0.

Events of one push are sent in the order they happened unless the reorder fault shuffles them: a
client orders by E (ties: execOptionReport before accountOptionInfo, by z).
"""

from __future__ import annotations

import json
import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field

from collector.simulator.accounts import Account, AccountError, Accounts, Order
from collector.simulator.config import SimConfig
from collector.simulator.limits import Stats
from collector.simulator.market import Option
from collector.simulator.streams import Conn, Messages, Stalled, StreamError, StreamHub, Subscription
from collector.simulator.wire import fmt_ticks

KEY_LENGTH = 60
_ALNUM = string.ascii_letters + string.digits
_API_KEY_RE = re.compile(r"^[A-Za-z0-9]{1,128}$")
NO_KEY = "This listenKey does not exist."


class StreamingAccounts(Accounts):
    """The exchange's accounts, telling ``listener`` of every order change (new, fill, cancel, expiry)
    with its simulated time, as it is applied."""

    def __init__(self, *args, **kw) -> None:
        self.listener: Callable[[Account, Order, int], None] | None = None
        super().__init__(*args, **kw)

    def place(self, account: Account, opt: Option, side: str, qty: int, price: int, now: int) -> Order:
        order = super().place(account, opt, side, qty, price, now)
        self._changed(account, order, now)
        return order

    def _fill(self, account: Account, order: Order, qty: int, at: int) -> None:
        super()._fill(account, order, qty, at)
        self._changed(account, order, at)

    def _close(self, account: Account, order: Order, status: str, at: int) -> None:
        super()._close(account, order, status, at)
        self._changed(account, order, at)

    def _changed(self, account: Account, order: Order, at: int) -> None:
        if self.listener is not None:
            self.listener(account, order, at)


@dataclass(eq=False)
class ListenKey:
    key: str
    api_key: str
    expires: int  # ms (simulated)
    subs: set[UserSub] = field(default_factory=set)
    ended: str | None = None  # why it no longer exists


def exec_report(order: Order, at: int) -> str:
    return json.dumps(
        {
            "e": "execOptionReport",
            "E": at,
            "s": order.symbol,
            "S": order.side,
            "q": str(order.qty),
            "p": fmt_ticks(order.price),
            "X": order.status,
            "i": order.order_id,
            "z": str(order.executed),
            "O": at,
            "Z": fmt_ticks(order.quote),
        },
        separators=(",", ":"),
    )


class UserStreams:
    """The listenKeys of the exchange and the user-stream subscriptions reading them."""

    def __init__(self, accounts: StreamingAccounts, hub: StreamHub, cfg: SimConfig, stats: Stats, seed: int) -> None:
        self.accounts, self.hub, self.cfg, self.stats = accounts, hub, cfg, stats
        self._keys: dict[str, ListenKey] = {}
        self._by_account: dict[str, set[UserSub]] = {}
        self._rng = random.Random(seed * 1_000_033 + 0x115E)
        accounts.listener = self._on_order
        hub.user_streams = self

    # ---- REST ------------------------------------------------------------------------------
    def rest(self, method: str, api_key: str | None, params: dict[str, str], now: int) -> dict:
        """POST / PUT / DELETE /api/v1/userDataStream; raises AccountError."""
        if not api_key or not _API_KEY_RE.match(api_key):
            raise AccountError(401, -2014, "API-key format invalid.")
        if self.accounts.secret(api_key) is None:
            raise AccountError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        if method == "POST":
            return {"listenKey": self.create(api_key, now)}
        key = params.get("listenKey")
        if not key:
            raise AccountError(
                400, -1102, "Mandatory parameter 'listenKey' was not sent, was empty/null, or malformed."
            )
        lk = self.live(key, now)
        if lk is None or lk.api_key != api_key:
            raise AccountError(400, -1125, NO_KEY)
        if method == "PUT":
            lk.expires = now + round(self.cfg.listen_key_ttl_s * 1000)
        else:
            self._end(lk, "listenKey deleted")
        return {}

    def create(self, api_key: str, now: int) -> str:
        for lk in [lk for lk in self._keys.values() if now >= lk.expires]:
            self._end(lk, "listenKey expired")
        while True:  # a letter first: never all digits (numbers_as_json leaves it alone)
            key = self._rng.choice(string.ascii_letters) + "".join(self._rng.choices(_ALNUM, k=KEY_LENGTH - 1))
            if key not in self._keys:
                break
        self._keys[key] = ListenKey(key, api_key, now + round(self.cfg.listen_key_ttl_s * 1000))
        self.stats.listen_keys_created += 1
        return key

    def live(self, key: str, now: int) -> ListenKey | None:
        """The listenKey if it exists at now (an expired one ends here)."""
        lk = self._keys.get(key)
        if lk is not None and now >= lk.expires:
            self._end(lk, "listenKey expired")
            return None
        return lk

    def _end(self, lk: ListenKey, reason: str) -> None:
        self._keys.pop(lk.key, None)
        lk.ended = reason
        for sub in list(lk.subs):
            if sub.conn is not None:
                sub.conn.start_close(1000, reason, "listen_key")

    # ---- the stream --------------------------------------------------------------------------
    def subscription(self, key: str, now: int) -> UserSub:
        lk = self.live(key, now)
        if lk is None:
            raise StreamError(400, -1125, NO_KEY)
        return UserSub(self, key, lk)

    def _on_order(self, account: Account, order: Order, at: int) -> None:
        subs = self._by_account.get(account.key)
        if subs:
            payload = exec_report(order, at)
            for sub in subs:
                sub.pending.append((at, payload))


def _balances(accounts: Accounts, account: Account) -> list[dict]:
    return [
        {
            "a": b["asset"],
            "f": b["free"],
            "l": b["locked"],
            "T": b["canTrade"],
            "W": b["canWithdraw"],
            "D": b["canDeposit"],
        }
        for b in accounts.account_json(account)["optionBalances"]
    ]


class UserSub(Subscription):
    kind, fast, shuffle = "user", True, True

    def __init__(self, streams: UserStreams, name: str, lk: ListenKey) -> None:
        super().__init__(streams.hub, name)
        self.streams, self.lk = streams, lk
        self.pending: list[tuple[int, str]] = []  # (E, execOptionReport) since the last poll
        self.balances: list[dict] = []

    def attach(self, conn: Conn) -> None:
        super().attach(conn)
        account = self.streams.accounts.get(self.lk.api_key, conn.opened)  # changes up to now are history
        self.balances = _balances(self.streams.accounts, account)
        self.lk.subs.add(self)
        self.streams._by_account.setdefault(self.lk.api_key, set()).add(self)

    def detach(self) -> None:
        self.lk.subs.discard(self)
        subs = self.streams._by_account.get(self.lk.api_key)
        if subs is not None:
            subs.discard(self)

    def close_reason(self, now: int) -> str | None:
        if self.lk.ended is None:
            self.streams.live(self.lk.key, now)
        return self.lk.ended

    def poll(self, now: int, stalled: Stalled) -> Messages:
        accounts = self.streams.accounts
        account = accounts.get(self.lk.api_key, now)  # fills and expiries up to now: events in pending
        events, self.pending = self.pending, []
        out = [("execOptionReport", payload) for at, payload in events if not stalled(at)]
        balances = _balances(accounts, account)
        if balances != self.balances:
            self.balances = balances
            if not stalled(account.updated):
                info = {"e": "accountOptionInfo", "E": account.updated, "m": 0, "t": 0, "u": account.updated}
                info["B"] = balances
                out.append(("accountOptionInfo", json.dumps(info, separators=(",", ":"))))
        return out
